// RailStatsCpu against counts taken by the definitions in long double
// (reference.h); fractions; NaN; empty input; thread-count independence.
#include <vector>

#include "cc/core/rail_stats/rail_stats.h"
#include "cc/core/rail_stats/reference.h"
#include "cc/tests/check.h"
#include "cc/tests/test_util.h"

namespace kappa_test {
namespace {

using kappa::reference::CountRails;
using kappa::reference::RailTotals;

template <typename T>
void CheckAgainstReference() {
  int cases = 0;
  for (Rounding r : kRoundings) {  // the format's modes must not matter
    for (const FixedPointFormat& f : Formats<T>(r, Overflow::kWrap)) {
      for (double near_rail : {0.9, 0.0, 1.0, 0.5, 0.999, 0.8999999761581421}) {
        const std::vector<T> x = Inputs<T>(f, 3000, cases++);
        const kappa::RailCounts got = kappa::RailStatsCpu<T>(
            x.data(), static_cast<int64_t>(x.size()), f, near_rail, kappa::SerialFor);
        const RailTotals want = CountRails(x, f, near_rail);
        KAPPA_CHECK(got.total == want.total && got.saturated == want.saturated &&
                    got.near_rail == want.near && got.nonzero == want.nonzero &&
                    got.underflow == want.underflow)
            << Describe(f) << " near_rail=" << near_rail << " got (" << got.total << ","
            << got.saturated << "," << got.near_rail << "," << got.nonzero << ","
            << got.underflow << ") want (" << want.total << "," << want.saturated << ","
            << want.near << "," << want.nonzero << "," << want.underflow << ")";
      }
    }
  }
}

KAPPA_TEST(RailStatsFloatMatchesReference) { CheckAgainstReference<float>(); }
KAPPA_TEST(RailStatsDoubleMatchesReference) { CheckAgainstReference<double>(); }

// Values exactly at, and one float step either side of, the near-rail
// thresholds: the float32 comparison must give the double definition.
KAPPA_TEST(RailStatsThresholdsAreExact) {
  const FixedPointFormat f = Format(8, 4, true);
  for (double near_rail : {0.9, 0.3, 0.123456789}) {
    const double hi = static_cast<double>(MaxValue(f)), lo = static_cast<double>(MinValue(f));
    const double m = (1.0 - near_rail) * (hi - lo) / 2.0;
    std::vector<float> x;
    for (double t : {hi - m, lo + m}) {
      float c = static_cast<float>(t);
      for (int k = 0; k < 3; ++k) c = std::nextafter(c, -1e9f);
      for (int k = 0; k < 7; ++k, c = std::nextafter(c, 1e9f)) x.push_back(c);
    }
    const kappa::RailCounts got = kappa::RailStatsCpu<float>(
        x.data(), static_cast<int64_t>(x.size()), f, near_rail, kappa::SerialFor);
    KAPPA_CHECK(got.near_rail == CountRails(x, f, near_rail).near) << near_rail;
  }
}

// The adjusted thresholds compare unflushed x as the definition compares
// flushed x, for thresholds and values around the subnormal range.
template <typename T>
void CheckFlushedThresholds() {
  const T min = std::numeric_limits<T>::min(), den = std::numeric_limits<T>::denorm_min();
  const T below = std::nextafter(min, T(0));
  std::vector<T> v = {T(0), den, min / 2, below, min, std::nextafter(min, T(1)), T(1), 2 * min,
                      std::numeric_limits<T>::infinity()};
  const size_t k = v.size();
  for (size_t i = 0; i < k; ++i) v.push_back(-v[i]);
  for (T t : v) {
    const T g = kappa::FlushedGreaterThreshold(t), l = kappa::FlushedLessThreshold(t);
    for (T x : v) {
      const T f = kappa::reference::Flush(x);
      KAPPA_CHECK((x > g) == (f > t) && (x <= g) == (f <= t)) << "t=" << t << " x=" << x;
      KAPPA_CHECK((x < l) == (f < t) && (x >= l) == (f >= t)) << "t=" << t << " x=" << x;
    }
  }
}

KAPPA_TEST(FlushedThresholdsFloat) { CheckFlushedThresholds<float>(); }
KAPPA_TEST(FlushedThresholdsDouble) { CheckFlushedThresholds<double>(); }

// Subnormal values count as zeros (of their sign) in every statistic, also
// for an unsigned format (a negative subnormal is not below its rail 0) and
// near_rail = 1 (a positive subnormal is at the lower rail 0).
KAPPA_TEST(RailStatsSubnormalsAreZeros) {
  const float den = std::numeric_limits<float>::denorm_min();
  const std::vector<float> x = {den, -den, std::numeric_limits<float>::min() / 3, 0.0f, 1.0f};
  for (const FixedPointFormat& f : {Format(8, 4, false), Format(8, 4, true), Format(4, 125, false)}) {
    for (double near_rail : {1.0, 0.9}) {
      const kappa::RailCounts got = kappa::RailStatsCpu<float>(x.data(), 5, f, near_rail,
                                                               kappa::SerialFor);
      const RailTotals want = CountRails(x, f, near_rail);
      KAPPA_CHECK(got.saturated == want.saturated && got.near_rail == want.near &&
                  got.nonzero == want.nonzero && got.underflow == want.underflow)
          << Describe(f) << " near_rail=" << near_rail << ": " << got.saturated << "/"
          << want.saturated << " " << got.near_rail << "/" << want.near << " " << got.nonzero
          << "/" << want.nonzero << " " << got.underflow << "/" << want.underflow;
    }
  }
}

KAPPA_TEST(RailStatsFractionsAndNaN) {
  // s4.0: rails -8, 7; near_rail 0.5: m = 3.75, near at >= 3.25 or <= -4.25.
  const FixedPointFormat f = Format(4, 0, true);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {nan, 8.0f, -9.0f, 3.5f, 0.25f, 0.5f, -0.5f, 0.0f, 2.0f, nan};
  const kappa::RailCounts c = kappa::RailStatsCpu<float>(x.data(), 10, f, 0.5, kappa::SerialFor);
  KAPPA_CHECK(c.total == 10 && c.saturated == 2 && c.near_rail == 3) << c.saturated << " " << c.near_rail;
  KAPPA_CHECK(c.nonzero == 7 && c.underflow == 3) << c.nonzero << " " << c.underflow;
  const kappa::RailFractions fr = kappa::FractionsFromCounts(c);
  KAPPA_CHECK(fr.saturation == 0.2f && fr.near_rail == 0.3f);
  KAPPA_CHECK(fr.underflow == static_cast<float>(3.0 / 7.0));
}

KAPPA_TEST(RailStatsEmptyAndAllZero) {
  const kappa::RailCounts e =
      kappa::RailStatsCpu<float>(nullptr, 0, Format(8, 4, true), 0.9, kappa::SerialFor);
  const kappa::RailFractions fe = kappa::FractionsFromCounts(e);
  KAPPA_CHECK(e.total == 0 && fe.saturation == 0.0f && fe.near_rail == 0.0f && fe.underflow == 0.0f);
  const std::vector<float> zeros(1000, 0.0f);
  const kappa::RailCounts z =
      kappa::RailStatsCpu<float>(zeros.data(), 1000, Format(8, 4, true), 0.9, kappa::SerialFor);
  KAPPA_CHECK(z.nonzero == 0 && kappa::FractionsFromCounts(z).underflow == 0.0f);
}

KAPPA_TEST(RailStatsIndependentOfThreads) {
  const FixedPointFormat f = Format(6, 3, true);
  const std::vector<float> x = Inputs<float>(f, 500000, 5);
  const int64_t n = static_cast<int64_t>(x.size());
  const kappa::RailCounts serial = kappa::RailStatsCpu<float>(x.data(), n, f, 0.9, kappa::SerialFor);
  for (int threads : {2, 5}) {
    const kappa::RailCounts t =
        kappa::RailStatsCpu<float>(x.data(), n, f, 0.9, ShuffledThreads(threads, 11));
    KAPPA_CHECK(std::memcmp(&t, &serial, sizeof(t)) == 0) << threads;
  }
}

}  // namespace
}  // namespace kappa_test

KAPPA_TEST_MAIN()
