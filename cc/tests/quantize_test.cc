// QuantizeCpu against the independent scalar reference (reference.h): every
// mode, dtype and a spread of formats, seeds using all 128 bits; the seed
// mixing; thread-count independence.
#include <cstring>
#include <limits>
#include <random>
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

// Seeds with their high halves set, negative, and the int64 extremes: the
// stochastic roundings against the reference, which uses all 64 bits of both.
constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kWideSeeds[][2] = {
    {1, 2}, {1, 2 + (int64_t{1} << 32)}, {1 + 5 * (int64_t{1} << 32), 2},
    {-1, -1}, {0, 0}, {kMin64, kMax64}, {kMax64, kMin64}, {kMin64, kMin64},
    {kMax64, kMax64}, {(int64_t{1} << 40) + 3, -(int64_t{1} << 33)}};

KAPPA_TEST(QuantizeWideSeedsMatchReference) {
  for (const auto& seed : kWideSeeds) {
    for (Overflow o : kOverflows) {
      const FixedPointFormat f = Format(8, 4, true, Rounding::kStochastic, o);
      const std::vector<double> x = Inputs<double>(f, 20000, 5);
      std::vector<double> y(x.size());
      kappa::QuantizeCpu<double>(x.data(), y.data(), static_cast<int64_t>(x.size()), f,
                                 seed[0], seed[1], kappa::SerialFor);
      int bad = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        bad += !SameBits(y[i], kappa::reference::Quantize<double>(x[i], f, seed[0], seed[1], i));
      }
      KAPPA_CHECK(bad == 0) << "seed (" << seed[0] << ", " << seed[1] << "): " << bad;
    }
  }
}

// (1, 2), (1, 2 + 2^32) and (1 + 5 * 2^32, 2) once rounded identically
// (only the low 32 bits of each word counted): now every seed bit matters.
KAPPA_TEST(EverySeedBitChangesTheRoundings) {
  const FixedPointFormat f = Format(8, 4, true, Rounding::kStochastic);
  std::vector<float> x(4096);
  for (size_t i = 0; i < x.size(); ++i) x[i] = (static_cast<float>(i % 97) + 0.5f) / 16;
  const int64_t n = static_cast<int64_t>(x.size());
  const int64_t base[2] = {0x0123456789abcdef, -0x0123456789abcdf0};
  std::vector<float> want(x.size()), got(x.size());
  kappa::QuantizeCpu<float>(x.data(), want.data(), n, f, base[0], base[1], kappa::SerialFor);
  for (int word = 0; word < 2; ++word) {
    for (int bit = 0; bit < 64; ++bit) {
      int64_t seed[2] = {base[0], base[1]};
      seed[word] = static_cast<int64_t>(static_cast<uint64_t>(seed[word]) ^ (uint64_t{1} << bit));
      kappa::QuantizeCpu<float>(x.data(), got.data(), n, f, seed[0], seed[1], kappa::SerialFor);
      int differ = 0;
      for (size_t i = 0; i < x.size(); ++i) differ += got[i] != want[i];
      // Each value is half-way between grid points: about half round the other way.
      KAPPA_CHECK(differ > 1600 && differ < 2500) << "word " << word << " bit " << bit << ": "
                                                  << differ;
    }
  }
}

// Mix64 is a bijection (its Feistel rounds undone in reverse order give the
// input back), so MakeRandomKey is one in each seed word for the other fixed.
KAPPA_TEST(SeedMixingIsABijection) {
  std::mt19937_64 rng(3);
  for (int k = 0; k < 100000; ++k) {
    const uint64_t v = k < 64 ? uint64_t{1} << k : rng();
    const kappa::RandomKey m = kappa::Mix64(static_cast<uint32_t>(v), static_cast<uint32_t>(v >> 32));
    uint32_t lo = m.k0, hi = m.k1;
    hi ^= kappa::Mix32(lo ^ 0xc2b2ae35U);
    lo ^= kappa::Mix32(hi ^ 0x85ebca6bU);
    hi ^= kappa::Mix32(lo ^ 0x9e3779b9U);
    KAPPA_CHECK(((static_cast<uint64_t>(hi) << 32) | lo) == v) << v;
  }
}

// The counter is 64 bits: elements beyond 2^32 (as a CPU block folds the
// high half into the key) draw the reference's numbers.
KAPPA_TEST(RandomBitsAtHighIndicesMatchReference) {
  const kappa::RandomKey key = kappa::MakeRandomKey(-7, kMax64);
  for (uint64_t i : {uint64_t{0}, uint64_t{1} << 32, (uint64_t{5} << 32) + 17, ~uint64_t{0},
                     uint64_t{0x8000000000000000}, uint64_t{0x123456789abcdef0}}) {
    const double got = kappa::UniformFromBits<double>(kappa::RandomBits(key, i));
    const double folded = kappa::UniformFromBits<double>(kappa::RandomBits(
        kappa::KeyForHighBits(key, static_cast<uint32_t>(i >> 32)), static_cast<uint32_t>(i)));
    const double want = static_cast<double>(kappa::reference::Uniform(-7, kMax64, i));
    KAPPA_CHECK(got == want && folded == want) << i << ": " << got << " " << folded << " " << want;
  }
}

KAPPA_TEST(QuantizeEmpty) {
  kappa::QuantizeCpu<float>(nullptr, nullptr, 0, Format(8, 4, true), 0, 0, kappa::SerialFor);
}

}  // namespace
}  // namespace kappa_test

KAPPA_TEST_MAIN()
