// Rail statistics (Kappa>RailStats): how close a tensor runs to the rails of
// a format. Per element x:
//   saturated:  x > max_value or x < min_value;
//   near rail:  x >= max_value - m or x <= min_value + m, with
//               m = (1 - near_rail) * (max_value - min_value) / 2 (so the
//               saturated ones are near the rail too);
//   nonzero:    x != 0 and x is not NaN (the underflow denominator);
//   underflow:  nonzero, and the format rounding to nearest-even with
//               saturation sends x to 0 (for an unsigned format that
//               includes every negative x: it saturates to code 0).
// NaN fails every comparison, so it counts in none of the numerators; it is
// in the element count (the denominator of the first two fractions) but not
// in `nonzero`. Like every input here, x is read through FlushSubnormal: a
// subnormal x counts as a zero of its sign.
//
// The functors make one pass over x. Counts are exact integers, so the
// result does not depend on how the work is split. T is float or double.
#ifndef KAPPA_CORE_RAIL_STATS_RAIL_STATS_H_
#define KAPPA_CORE_RAIL_STATS_RAIL_STATS_H_

#include <cmath>
#include <cstdint>

#include "cc/core/formats/fixed_point.h"
#include "cc/core/parallel.h"

namespace kappa {

// The thresholds in the compute type C, as compared with x itself (not
// flushed: see FlushedGreaterThreshold). The rails are exact in C (the format
// fits the dtype). The near-rail thresholds are defined in double, as above,
// and converted to C rounding away from the middle (near_high up, near_low
// down): for every C value x, x >= near_high exactly when x >= the double
// threshold, and likewise below, so float32 comparisons give the double
// definition's answer.
template <typename C>
struct RailBounds {
  Rails<C> rails;
  C near_low;   // x <= near_low: min_value + m, rounded down into C
  C near_high;  // x >= near_high: max_value - m, rounded up into C
  C zero_low;   // zero_low <= x <= zero_high: the values that round to 0
  C zero_high;  // (see Underflows)
};

// The near-rail thresholds in double, as the definition above writes them.
inline void NearRailThresholds(const FixedPointFormat& f, double near_rail,
                               double* near_low, double* near_high) {
  const double lsb = std::ldexp(1.0, -f.frac_bits);
  const double code_max = f.is_signed ? std::ldexp(1.0, f.bits - 1) - 1.0
                                      : std::ldexp(1.0, f.bits) - 1.0;
  const double code_min = f.is_signed ? -std::ldexp(1.0, f.bits - 1) : 0.0;
  const double max_value = code_max * lsb;
  const double min_value = code_min * lsb;
  const double m = (1.0 - near_rail) * (max_value - min_value) / 2.0;
  *near_high = max_value - m;
  *near_low = min_value + m;
}

template <typename C>
inline RailBounds<C> MakeRailBounds(const FixedPointFormat& f, double near_rail) {
  double near_low = 0.0, near_high = 0.0;
  NearRailThresholds(f, near_rail, &near_low, &near_high);
  const C half_lsb = RoundDownTo<C>(std::ldexp(1.0, -f.frac_bits - 1));
  RailBounds<C> b;
  b.rails = MakeRails<C>(f);
  b.near_low = FlushedGreaterThreshold<C>(RoundDownTo<C>(near_low));
  b.near_high = FlushedLessThreshold<C>(RoundUpTo<C>(near_high));
  b.zero_high = FlushedGreaterThreshold<C>(half_lsb);
  b.zero_low = FlushedLessThreshold<C>(f.is_signed ? -half_lsb
                                                   : -std::numeric_limits<C>::infinity());
  return b;
}

template <typename C>
KAPPA_HD bool NearRail(C x, const RailBounds<C>& b) {
  return (x >= b.near_high) | (x <= b.near_low);
}

// x is a nonzero number that the format, rounding to nearest-even and
// saturating, sends to 0; that is, QuantizeValue<kNearestEven, kSaturate>
// gives 0. Written as an interval test, which is equivalent: x * 2^frac_bits
// is exact (or underflows to 0 only for |x| far below lsb / 2), and rounds to
// 0 exactly when |x * 2^frac_bits| <= 1/2 (a tie goes to the even 0);
// saturation maps no other value to 0 in a signed format (0 lies strictly
// inside the code range) and maps every negative one to 0 in an unsigned
// format (code_min is 0), infinities included. So the set is
// [-lsb/2, lsb/2] (signed) or [-inf, lsb/2] (unsigned), lsb/2 rounded down
// into C (the format's lsb is a normal number, so lsb/2 is representable),
// bounds adjusted for flushed comparisons.
template <typename C>
KAPPA_HD bool Underflows(C x, const RailBounds<C>& b) {
  return IsNonzeroNumber(x) & (x >= b.zero_low) & (x <= b.zero_high);
}

struct RailCounts {
  int64_t total = 0;      // elements
  int64_t saturated = 0;
  int64_t near_rail = 0;
  int64_t nonzero = 0;    // nonzero, non-NaN elements
  int64_t underflow = 0;

  // The counts of two disjoint parts add up to the counts of their union.
  KAPPA_HD RailCounts& operator+=(const RailCounts& o) {
    total += o.total;
    saturated += o.saturated;
    near_rail += o.near_rail;
    nonzero += o.nonzero;
    underflow += o.underflow;
    return *this;
  }
};

// What the kernels add up per element: the predicates above in a form that
// is cheaper to count (fewer vector operations per element), with "zero"
// meaning |x| < min (a flushed zero),
//   count(Underflows)      = count(in zero set) - count(zero)
//                            (every zero is in [zero_low, zero_high], NaN is not),
//   count(IsNonzeroNumber) = n - count(zero or NaN).
// I is the counter type (int32 within a CPU block, uint32 per GPU thread).
template <typename I>
struct RailTally {
  I saturated = 0;
  I near_rail = 0;
  I in_zero_set = 0;
  I zeros = 0;
  I zero_or_nan = 0;
};

template <typename C, typename I>
KAPPA_HD void TallyRail(C x, const RailBounds<C>& b, RailTally<I>& t) {
  const C a = Abs(x);
  const C min = std::numeric_limits<C>::min();
  t.saturated += BeyondRails(x, b.rails);
  t.near_rail += NearRail(x, b);
  t.in_zero_set += (x >= b.zero_low) & (x <= b.zero_high);
  t.zeros += a < min;
  t.zero_or_nan += !(a >= min);
}

// The counts of n elements from their tally.
template <typename I>
KAPPA_HD RailCounts CountsFromTally(int64_t n, const RailTally<I>& t) {
  RailCounts c;
  c.total = n;
  c.saturated = static_cast<int64_t>(t.saturated);
  c.near_rail = static_cast<int64_t>(t.near_rail);
  c.nonzero = n - static_cast<int64_t>(t.zero_or_nan);
  c.underflow = static_cast<int64_t>(t.in_zero_set) - static_cast<int64_t>(t.zeros);
  return c;
}

struct RailFractions {
  float saturation = 0.0f;
  float near_rail = 0.0f;
  float underflow = 0.0f;
};

KAPPA_HD RailFractions FractionsFromCounts(const RailCounts& c) {
  RailFractions f;
  f.saturation = CountFraction(c.saturated, c.total);
  f.near_rail = CountFraction(c.near_rail, c.total);
  f.underflow = CountFraction(c.underflow, c.nonzero);
  return f;
}

// Counts over n elements of x. Only the format's bits, frac_bits and
// signedness matter (underflow is defined by nearest-even saturating
// rounding, whatever the format's modes). near_rail is in [0, 1].
template <typename T>
RailCounts RailStatsCpu(const T* x, int64_t n, const FixedPointFormat& format,
                        double near_rail, const ParallelFor& parallel_for);

// Bytes of device scratch that RailStatsGpu needs for n elements (on the
// current device): per-block partial counts plus the total.
int64_t RailStatsGpuScratchBytes(int64_t n);

// The same on a CUDA stream, asynchronous and without host synchronisation:
// a grid-stride kernel writes per-block partial counts into `scratch`
// (device memory of RailStatsGpuScratchBytes(n) bytes), a second one-block
// kernel adds them in block order, stores the total RailCounts at the start
// of `scratch` and the three fractions (FractionsFromCounts) at the device
// pointers `saturation`, `near_rail_fraction`, `underflow`. Returns nullptr,
// or the CUDA error message if a launch failed.
template <typename T>
const char* RailStatsGpu(const T* x, int64_t n, const FixedPointFormat& format,
                         double near_rail, void* scratch, float* saturation,
                         float* near_rail_fraction, float* underflow,
                         void* stream);

}  // namespace kappa

#endif  // KAPPA_CORE_RAIL_STATS_RAIL_STATS_H_
