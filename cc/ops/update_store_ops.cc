// Op registration for Kappa>UpdateQuantizeStore. Kernels:
// update_store_kernels.cc.
#include "cc/ops/attrs.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"

// In place on the dense resource variable `var`, in one pass (definitions:
// cc/core/update_store/update_store.h):
//   raw = -learning_rate * grad
//   delta = Q_update(raw)            (raw unless has_update_format)
//   var := Q_storage(var + delta)    (unquantized unless has_storage_format)
// Outputs, float32 scalars: the L2 norms of raw and of the applied change
// (new - old), their dot product, the fraction of nonzero (non-NaN) raw
// entries whose delta is 0, and the fraction of entries whose var + delta
// lay beyond the storage format's rails. `seed` (int64[2], all 128 bits)
// keys stochastic rounding: the update quantizer by (seed0, seed1), the
// storage quantizer by (seed0, seed1 ^ 0x2545F491). The update_* / storage_*
// format attrs are ignored (and not checked) when the matching has_* attr is
// false.
REGISTER_OP("Kappa>UpdateQuantizeStore")
    .Input("var: resource")
    .Input("grad: T")
    .Input("learning_rate: T")
    .Input("seed: int64")
    .Output("raw_update_norm: float")
    .Output("actual_update_norm: float")
    .Output("update_dot: float")
    .Output("update_underflow_fraction: float")
    .Output("storage_saturation_fraction: float")
    .Attr("T: {float, double}")
    .Attr("has_update_format: bool = false")
    KAPPA_FORMAT_ATTRS("update_")
    .Attr("has_storage_format: bool = false")
    KAPPA_FORMAT_ATTRS("storage_")
    .SetIsStateful()
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      using ::tensorflow::shape_inference::DimensionHandle;
      using ::tensorflow::shape_inference::ShapeHandle;
      ShapeHandle unused;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 0, &unused));
      ShapeHandle seed;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &seed));
      DimensionHandle two;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(seed, 0), 2, &two));
      const auto* handle = c->input_handle_shapes_and_types(0);
      if (handle != nullptr && handle->size() == 1) {
        TF_RETURN_IF_ERROR(c->Merge((*handle)[0].shape, c->input(1), &unused));
      }
      for (int i = 0; i < 5; ++i) c->set_output(i, c->Scalar());
      return ::absl::OkStatus();
    });
