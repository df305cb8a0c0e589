// Op registration for Kappa>Quantize. Kernels: quantize_kernels.cc.
#include "cc/ops/attrs.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"

// y = Q(x) for the fixed-point format given by the attrs (the arithmetic is
// cc/core/formats/). `seed` (int64[2], all 128 bits) keys stochastic
// rounding and is ignored by the other modes. `ste` is read by the Python
// gradient only: "identity" passes the gradient through, "clipped" zeroes it
// where x lies outside the rails, "none" gives x no gradient.
REGISTER_OP("Kappa>Quantize")
    .Input("x: T")
    .Input("seed: int64")
    .Output("y: T")
    .Attr("T: {float, double}")
    KAPPA_FORMAT_ATTRS("")
    .Attr("ste: {'identity', 'clipped', 'none'} = 'identity'")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      ::tensorflow::shape_inference::ShapeHandle seed;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &seed));
      ::tensorflow::shape_inference::DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(seed, 0), 2, &unused));
      c->set_output(0, c->input(0));
      return ::absl::OkStatus();
    });
