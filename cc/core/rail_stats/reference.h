// The scalar reference of the rail statistics, for the tests: counts taken
// by the definitions (rail_stats.h's header comment) in long double, one
// value at a time, with the quantization reference deciding underflow.
#ifndef KAPPA_CORE_RAIL_STATS_REFERENCE_H_
#define KAPPA_CORE_RAIL_STATS_REFERENCE_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "cc/core/formats/fixed_point.h"
#include "cc/core/quantize/reference.h"

namespace kappa {
namespace reference {

struct RailTotals {
  int64_t total = 0, saturated = 0, near = 0, nonzero = 0, underflow = 0;
};

// Saturated: x > max or x < min; near: x >= max - m or x <= min + m with
// m = (1 - near_rail) * (max - min) / 2 in double; underflow: nonzero
// non-NaN x that nearest-even saturating rounding sends to 0; a subnormal x
// reads as a zero of its sign.
template <typename T>
RailTotals CountRails(const std::vector<T>& x, const FixedPointFormat& f, double near_rail) {
  const double hi = static_cast<double>(MaxValue(f)), lo = static_cast<double>(MinValue(f));
  const double m = (1.0 - near_rail) * (hi - lo) / 2.0;
  const double near_hi = hi - m, near_lo = lo + m;
  FixedPointFormat ne = f;
  ne.rounding = Rounding::kNearestEven;
  ne.overflow = Overflow::kSaturate;
  RailTotals c;
  for (T v0 : x) {
    ++c.total;
    const T v = Flush(v0);
    if (std::isnan(v)) continue;
    const LD w = v;
    c.saturated += w > hi || w < lo;
    c.near += w >= near_hi || w <= near_lo;
    if (v != 0) {
      ++c.nonzero;
      c.underflow += Quantize<T>(v, ne, 0, 0, 0) == T(0);
    }
  }
  return c;
}

}  // namespace reference
}  // namespace kappa

#endif  // KAPPA_CORE_RAIL_STATS_REFERENCE_H_
