// The scalar reference of quantization, for the tests.
//
// Written from the specification (docs/rounding.md), not from
// cc/core/formats/: quantization scales and rounds in long double (64-bit
// significand, 15-bit exponent), where x * 2^frac_bits is exact for every
// float and double x, so no underflow special cases arise. Nothing here uses
// the functors' arithmetic; formats/fixed_point.h is only included for the
// plain format struct.
#ifndef KAPPA_CORE_QUANTIZE_REFERENCE_H_
#define KAPPA_CORE_QUANTIZE_REFERENCE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cc/core/formats/fixed_point.h"

namespace kappa {
namespace reference {

using LD = long double;

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

// The documented 64-bit mixing of the seeds: on the halves (lo, hi) of v,
//   hi ^= H(lo ^ 0x9e3779b9); lo ^= H(hi ^ 0x85ebca6b); hi ^= H(lo ^ 0xc2b2ae35).
inline uint64_t Mix64(uint64_t v) {
  uint32_t lo = static_cast<uint32_t>(v), hi = static_cast<uint32_t>(v >> 32);
  hi ^= Hash(lo ^ 0x9e3779b9U);
  lo ^= Hash(hi ^ 0x85ebca6bU);
  hi ^= Hash(lo ^ 0xc2b2ae35U);
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// The package's documented stochastic-rounding uniform for element i under
// seeds (s0, s1), all 64 bits of each: key = Mix64(Mix64(s0) ^ s1),
// k0 = lo32(key), k1 = hi32(key); bits = H(H(lo32(i) ^ k0) ^ hi32(i) ^ k1);
// u = (bits >> 8) / 2^24.
inline LD Uniform(int64_t s0, int64_t s1, uint64_t i) {
  const uint64_t key = Mix64(Mix64(static_cast<uint64_t>(s0)) ^ static_cast<uint64_t>(s1));
  const uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  const uint32_t bits =
      Hash(Hash(static_cast<uint32_t>(i) ^ k0) ^ static_cast<uint32_t>(i >> 32) ^ k1);
  return LD(bits >> 8) / Pow2(24);
}

// The specification reads a value subnormal in T as the zero of its sign.
template <typename T>
T Flush(T x) {
  return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(T(0), x) : x;
}

// Quantize one value (element i of its tensor) by the specification.
template <typename T>
T Quantize(T x_in, const FixedPointFormat& f, int64_t s0, int64_t s1, uint64_t i) {
  const T x = Flush(x_in);
  if (std::isnan(x)) return x;
  const LD lo = CodeMin(f), hi = CodeMax(f);
  LD code = 0;
  if (std::isinf(x)) {
    code = x > 0 ? hi : lo;
  } else {
    const LD v = LD(x) * Pow2(f.frac_bits);
    // One case per mode, no default: the tests build with -Werror=switch, so
    // a mode missing here does not compile.
    LD r = 0;
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
      case Rounding::kStochastic: {
        // The fraction as T holds it: rounded into T, a subnormal read as 0.
        const LD fl = std::floor(v);
        const T frac = Flush(static_cast<T>(v - fl));
        r = Uniform(s0, s1, i) < LD(frac) ? fl + 1 : fl;
        break;
      }
    }
    switch (f.overflow) {
      case Overflow::kSaturate:
        code = std::min(std::max(r, lo), hi);
        break;
      case Overflow::kWrap: {
        const LD m = Pow2(f.bits);
        LD t = std::fmod(r, m);  // exact
        if (t < 0) t += m;
        if (t > hi) t -= m;
        code = t == 0 ? LD(0) : t;  // a two's-complement code has no -0
        break;
      }
    }
  }
  return static_cast<T>(code * Pow2(-f.frac_bits));
}

}  // namespace reference
}  // namespace kappa

#endif  // KAPPA_CORE_QUANTIZE_REFERENCE_H_
