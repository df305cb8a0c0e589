// Op registration for Kappa>RailStats. Kernels: rail_stats_kernels.cc.
#include "cc/ops/attrs.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"

// One pass over x: the fraction of elements beyond the format's rails
// (x > max_value or x < min_value), the fraction near them (x >= max_value - m
// or x <= min_value + m, m = (1 - near_rail) * (max_value - min_value) / 2,
// computed in double; the saturated ones included), and among the nonzero,
// non-NaN elements the fraction that the format rounds (nearest-even,
// saturating) to 0 (0 when there are none). NaN counts in no numerator; it is
// in the element count of the first two. Only the format's bits, frac_bits
// and signed attrs matter. An empty x gives zeros. Definitions:
// cc/core/rail_stats/rail_stats.h.
REGISTER_OP("Kappa>RailStats")
    .Input("x: T")
    .Output("saturation_fraction: float")
    .Output("near_rail_fraction: float")
    .Output("underflow_fraction: float")
    .Attr("T: {float, double}")
    KAPPA_FORMAT_ATTRS("")
    .Attr("near_rail: float = 0.9")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      for (int i = 0; i < 3; ++i) c->set_output(i, c->Scalar());
      return ::absl::OkStatus();
    });
