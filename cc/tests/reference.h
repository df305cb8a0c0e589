// Independent scalar references and test inputs for the functor tests.
//
// Written from the specification (FixedPoint's docstring, the issue's
// definitions), not from fixed_point.h: quantization scales and rounds in
// long double (64-bit significand, 15-bit exponent), where x * 2^frac_bits is
// exact for every float and double x, so no underflow special cases arise.
// Nothing here includes the kernels' arithmetic; the kernels' headers are
// only used for their plain structs (formats, results).
#ifndef KAPPA_TESTS_REFERENCE_H_
#define KAPPA_TESTS_REFERENCE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "cc/kernels/fixed_point.h"
#include "cc/kernels/parallel.h"

namespace kappa_test {

using kappa::FixedPointFormat;
using kappa::Overflow;
using kappa::Rounding;
using LD = long double;

constexpr Rounding kRoundings[] = {Rounding::kNearestEven, Rounding::kNearestAway,
                                   Rounding::kTruncate, Rounding::kTowardZero,
                                   Rounding::kStochastic};
constexpr Overflow kOverflows[] = {Overflow::kSaturate, Overflow::kWrap};

inline const char* Name(Rounding r) {
  static const char* names[] = {"nearest_even", "nearest_away", "truncate",
                                "toward_zero", "stochastic"};
  return names[static_cast<int>(r)];
}
inline const char* Name(Overflow o) { return o == Overflow::kWrap ? "wrap" : "saturate"; }

inline FixedPointFormat Format(int bits, int frac, bool is_signed,
                               Rounding r = Rounding::kNearestEven,
                               Overflow o = Overflow::kSaturate) {
  FixedPointFormat f;
  f.bits = bits;
  f.frac_bits = frac;
  f.is_signed = is_signed;
  f.rounding = r;
  f.overflow = o;
  return f;
}

inline std::string Describe(const FixedPointFormat& f) {
  return std::string(f.is_signed ? "s" : "u") + std::to_string(f.bits) + "." +
         std::to_string(f.frac_bits) + ":" + Name(f.rounding) + ":" + Name(f.overflow);
}

// Whether every value of the format is exact in T (the Python rule).
template <typename T>
bool Fits(const FixedPointFormat& f) {
  const int digits = std::numeric_limits<T>::digits;
  const int min_exp = std::numeric_limits<T>::min_exponent - digits;
  return f.bits <= digits && -f.frac_bits >= min_exp &&
         f.bits - f.frac_bits <= std::numeric_limits<T>::max_exponent;
}

// A spread of formats that fit T: narrow and wide, negative frac_bits, frac
// beyond bits, unsigned.
template <typename T>
std::vector<FixedPointFormat> Formats(Rounding r, Overflow o) {
  const int spec[][3] = {{8, 4, 1},  {6, 0, 1},   {4, -2, 1},  {8, 10, 1},
                         {8, 8, 0},  {3, 1, 0},   {2, 0, 1},   {1, 0, 0},
                         {12, 3, 1}, {16, 20, 1}, {24, 12, 1}, {24, 30, 0},
                         {32, 16, 1}, {32, 40, 0}};
  std::vector<FixedPointFormat> out;
  for (const auto& s : spec) {
    FixedPointFormat f = Format(s[0], s[1], s[2] != 0, r, o);
    if (Fits<T>(f)) out.push_back(f);
  }
  return out;
}

inline LD Pow2(int e) { return std::ldexp(LD(1), e); }
inline LD CodeMin(const FixedPointFormat& f) { return f.is_signed ? -Pow2(f.bits - 1) : LD(0); }
inline LD CodeMax(const FixedPointFormat& f) {
  return f.is_signed ? Pow2(f.bits - 1) - 1 : Pow2(f.bits) - 1;
}
inline LD MinValue(const FixedPointFormat& f) { return CodeMin(f) * Pow2(-f.frac_bits); }
inline LD MaxValue(const FixedPointFormat& f) { return CodeMax(f) * Pow2(-f.frac_bits); }

// lowbias32 (Chris Wellons), transcribed from its published constants.
inline uint32_t Hash(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// The package's documented stochastic-rounding uniform for element i under
// seeds (s0, s1): keys k0 = H(lo32(s0) ^ 0x9e3779b9), k1 = H(lo32(s1) ^ k0);
// bits = H(H(lo32(i) ^ k0) ^ hi32(i) ^ k1); u = (bits >> 8) / 2^24.
inline LD Uniform(int64_t s0, int64_t s1, uint64_t i) {
  const uint32_t k0 = Hash(static_cast<uint32_t>(s0) ^ 0x9e3779b9U);
  const uint32_t k1 = Hash(static_cast<uint32_t>(s1) ^ k0);
  const uint32_t bits =
      Hash(Hash(static_cast<uint32_t>(i) ^ k0) ^ static_cast<uint32_t>(i >> 32) ^ k1);
  return LD(bits >> 8) / Pow2(24);
}

// The specification reads a value subnormal in T as the zero of its sign.
template <typename T>
T RefFlush(T x) {
  return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(T(0), x) : x;
}

// Quantize one value by the specification.
template <typename T>
T RefQuantize(T x_in, const FixedPointFormat& f, int64_t s0, int64_t s1, uint64_t i) {
  const T x = RefFlush(x_in);
  if (std::isnan(x)) return x;
  const LD lo = CodeMin(f), hi = CodeMax(f);
  LD code;
  if (std::isinf(x)) {
    code = x > 0 ? hi : lo;
  } else {
    const LD v = LD(x) * Pow2(f.frac_bits);
    LD r;
    switch (f.rounding) {
      case Rounding::kNearestEven:
        r = std::nearbyint(v);  // default rounding mode: ties to even
        break;
      case Rounding::kNearestAway:
        r = std::fabs(v) >= Pow2(62) ? v
            : !std::signbit(v)       ? std::floor(v + LD(0.5))
                                     : -std::floor(-v + LD(0.5));
        break;
      case Rounding::kTruncate:
        r = std::floor(v);
        break;
      case Rounding::kTowardZero:
        r = std::trunc(v);
        break;
      default: {
        const LD fl = std::floor(v);
        r = Uniform(s0, s1, i) < v - fl ? fl + 1 : fl;
      }
    }
    if (f.overflow == Overflow::kSaturate) {
      code = std::min(std::max(r, lo), hi);
    } else {
      const LD m = Pow2(f.bits);
      LD t = std::fmod(r, m);  // exact
      if (t < 0) t += m;
      if (t > hi) t -= m;
      code = t == 0 ? LD(0) : t;  // a two's-complement code has no -0
    }
  }
  return static_cast<T>(code * Pow2(-f.frac_bits));
}

// Test inputs: ties, values on, next to and beyond the grid and the rails,
// signed zeros, NaN, infinities, tiny and huge values, then random values
// spread over and beyond the format's range.
template <typename T>
std::vector<T> Inputs(const FixedPointFormat& f, size_t random_count, uint64_t seed) {
  std::vector<T> v;
  const LD lsb = Pow2(-f.frac_bits);
  const LD ks[] = {0, 1, 2, 3, CodeMin(f), CodeMax(f), CodeMin(f) + 1, CodeMax(f) - 1};
  for (LD k : ks) {
    for (LD d : {LD(0.5), LD(0), LD(0.25), LD(-0.25), LD(0.75)}) {
      v.push_back(static_cast<T>((k + d) * lsb));
      v.push_back(static_cast<T>((-k - d) * lsb));
    }
  }
  for (LD r : {MinValue(f), MaxValue(f)}) {
    for (LD d : {LD(-1), LD(1), LD(-0.5), LD(0.5), LD(1e-3)}) v.push_back(static_cast<T>(r + d * lsb));
    v.push_back(static_cast<T>(3 * r));
  }
  const T special[] = {T(0), -T(0), std::numeric_limits<T>::quiet_NaN(),
                       std::numeric_limits<T>::infinity(),
                       -std::numeric_limits<T>::infinity(),
                       std::numeric_limits<T>::min(), -std::numeric_limits<T>::min(),
                       std::numeric_limits<T>::denorm_min(),
                       std::numeric_limits<T>::max(), -std::numeric_limits<T>::max()};
  v.insert(v.end(), std::begin(special), std::end(special));
  std::mt19937_64 rng(seed);
  const double scale = static_cast<double>(std::max(std::fabs(MaxValue(f)), lsb * 4));
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_int_distribution<int> kind(0, 9);
  for (size_t k = 0; k < random_count; ++k) {
    const int c = kind(rng);
    double x = normal(rng);
    if (c < 5) x *= scale;                              // the range
    else if (c < 7) x *= 3 * scale;                     // beyond the rails
    else if (c < 9) x *= static_cast<double>(lsb) * 2;  // around zero
    else x = std::ldexp(normal(rng), static_cast<int>(rng() % 200) - 100);
    v.push_back(static_cast<T>(x));
  }
  return v;
}

// Bitwise equality (NaN payloads aside: any NaN equals any NaN).
template <typename T>
bool SameBits(T a, T b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// A ParallelFor that splits [0, total) into `threads` * 3 chunks and runs them
// on std::threads in a shuffled order: a functor whose result depends on the
// split or the order fails the thread-independence tests.
inline kappa::ParallelFor ShuffledThreads(int threads, uint64_t seed) {
  return [threads, seed](int64_t total, int64_t,
                         const std::function<void(int64_t, int64_t)>& work) {
    if (total <= 0) return;
    const int64_t chunks = std::min<int64_t>(total, threads * 3);
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (int64_t c = 0; c < chunks; ++c) {
      ranges.emplace_back(total * c / chunks, total * (c + 1) / chunks);
    }
    std::shuffle(ranges.begin(), ranges.end(), std::mt19937_64(seed));
    std::mutex mu;
    size_t next = 0;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        for (;;) {
          std::pair<int64_t, int64_t> r;
          {
            std::lock_guard<std::mutex> lock(mu);
            if (next == ranges.size()) return;
            r = ranges[next++];
          }
          if (r.first < r.second) work(r.first, r.second);
        }
      });
    }
    for (auto& t : pool) t.join();
  };
}

}  // namespace kappa_test

#endif  // KAPPA_TESTS_REFERENCE_H_
