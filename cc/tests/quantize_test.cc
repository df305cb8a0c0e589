// QuantizeCpu against the independent scalar reference (reference.h), every mode, dtype
// and a spread of formats; thread-count independence.
#include <vector>

#include "cc/core/quantize/quantize.h"
#include "cc/core/quantize/reference.h"
#include "cc/tests/check.h"
#include "cc/tests/test_util.h"

namespace kappa_test {
namespace {

template <typename T>
void CheckAgainstReference() {
  for (Rounding r : kRoundings) {
    for (Overflow o : kOverflows) {
      for (const FixedPointFormat& f : Formats<T>(r, o)) {
        const std::vector<T> x = Inputs<T>(f, 4000, 17);
        std::vector<T> y(x.size());
        kappa::QuantizeCpu<T>(x.data(), y.data(), static_cast<int64_t>(x.size()), f,
                              -5, 123, kappa::SerialFor);
        int mismatches = 0;
        for (size_t i = 0; i < x.size(); ++i) {
          const T want = kappa::reference::Quantize<T>(x[i], f, -5, 123, i);
          if (!SameBits(y[i], want) && ++mismatches <= 3) {
            KAPPA_CHECK(false) << Describe(f) << " x=" << x[i] << " got " << y[i]
                               << " want " << want;
          }
        }
        KAPPA_CHECK(mismatches == 0) << Describe(f) << ": " << mismatches << " mismatches";
      }
    }
  }
}

KAPPA_TEST(QuantizeFloatMatchesReference) { CheckAgainstReference<float>(); }
KAPPA_TEST(QuantizeDoubleMatchesReference) { CheckAgainstReference<double>(); }

KAPPA_TEST(QuantizeInPlaceEqualsOutOfPlace) {
  const FixedPointFormat f = Format(8, 4, true, Rounding::kStochastic, Overflow::kWrap);
  std::vector<float> x = Inputs<float>(f, 50000, 3);
  std::vector<float> y(x.size());
  const int64_t n = static_cast<int64_t>(x.size());
  kappa::QuantizeCpu<float>(x.data(), y.data(), n, f, 1, 2, kappa::SerialFor);
  kappa::QuantizeCpu<float>(x.data(), x.data(), n, f, 1, 2, kappa::SerialFor);
  KAPPA_CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
}

KAPPA_TEST(QuantizeIndependentOfThreads) {
  for (Rounding r : kRoundings) {
    const FixedPointFormat f = Format(8, 5, true, r, Overflow::kSaturate);
    const std::vector<float> x = Inputs<float>(f, 300000, 9);
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<float> serial(x.size()), threaded(x.size());
    kappa::QuantizeCpu<float>(x.data(), serial.data(), n, f, 4, 4, kappa::SerialFor);
    for (int threads : {2, 3, 7}) {
      kappa::QuantizeCpu<float>(x.data(), threaded.data(), n, f, 4, 4,
                                ShuffledThreads(threads, threads));
      KAPPA_CHECK(std::memcmp(serial.data(), threaded.data(), x.size() * sizeof(float)) == 0)
          << kappa::RoundingName(r) << " threads=" << threads;
    }
  }
}

KAPPA_TEST(QuantizeEmpty) {
  kappa::QuantizeCpu<float>(nullptr, nullptr, 0, Format(8, 4, true), 0, 0, kappa::SerialFor);
}

}  // namespace
}  // namespace kappa_test

KAPPA_TEST_MAIN()
