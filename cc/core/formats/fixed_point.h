// The fixed-point format: FixedPointFormat, its rails, and quantization into
// it (QuantizeValue), for the host and the device.
//
// A format Q(bits, frac_bits) represents code * 2^-frac_bits for an integer
// code in [-2^(bits-1), 2^(bits-1) - 1] (signed) or [0, 2^bits - 1]
// (unsigned). Quantizing x (docs/rounding.md defines each step):
//   1. v = x * 2^frac_bits (exact: a power-of-two scaling);
//   2. r = round(v) by the rounding mode (rounding.h: RoundScaled);
//   3. code = saturate(r) or wrap(r) (two's complement, modulo 2^bits);
//   4. result = code * 2^-frac_bits.
// NaN stays NaN. +-Inf go to the rails under both overflow modes (there is no
// meaningful residue of an infinity). Finite inputs whose scaled value
// overflows the compute type are multiples of 2^bits, so they wrap to 0.
//
// The compute type C is float for float16, bfloat16 and float32 storage and
// double for float64. The op layer (cc/ops/attrs.h) only accepts formats
// whose grid is exactly representable in the storage type, which makes
// every step above exact in C; the one case where step 1 loses information
// (a nonzero x whose scaled value underflows to zero) is corrected
// explicitly (RoundScaled).
//
// No TensorFlow headers: the per-op functors built on this file
// (cc/core/<op>/) are checked without TensorFlow (cc/tests on the CPU,
// cc/gpu_check on a GPU). What only one op computes per element (rail
// statistics, the fused update) lives in that op's header.
#ifndef KAPPA_CORE_FORMATS_FIXED_POINT_H_
#define KAPPA_CORE_FORMATS_FIXED_POINT_H_

#include <cmath>
#include <cstdint>

#include "cc/core/formats/float_math.h"
#include "cc/core/formats/rails.h"
#include "cc/core/formats/random.h"
#include "cc/core/formats/rounding.h"

namespace kappa {

// A fixed-point format plus how to get there. Plain data, passed by value to
// kernels.
struct FixedPointFormat {
  int32_t bits = 8;
  int32_t frac_bits = 0;
  bool is_signed = true;
  Rounding rounding = Rounding::kNearestEven;
  Overflow overflow = Overflow::kSaturate;
};

// Everything about a format that the per-element loop needs, precomputed once
// per kernel launch in the compute type C.
template <typename C>
struct Quantizer {
  C scale;      // 2^frac_bits
  C inv_scale;  // 2^-frac_bits
  C code_min;
  C code_max;
  C modulus;      // 2^bits
  C inv_modulus;  // 2^-bits
  Rounding rounding;
  Overflow overflow;
  RandomKey key;
};

template <typename C>
inline Quantizer<C> MakeQuantizer(const FixedPointFormat& f, int64_t seed0 = 0,
                                  int64_t seed1 = 0) {
  Quantizer<C> q;
  q.scale = std::ldexp(C(1), f.frac_bits);
  q.inv_scale = std::ldexp(C(1), -f.frac_bits);
  q.modulus = std::ldexp(C(1), f.bits);
  q.inv_modulus = std::ldexp(C(1), -f.bits);
  if (f.is_signed) {
    q.code_min = -std::ldexp(C(1), f.bits - 1);
    q.code_max = std::ldexp(C(1), f.bits - 1) - C(1);
  } else {
    q.code_min = C(0);
    q.code_max = q.modulus - C(1);
  }
  q.rounding = f.rounding;
  q.overflow = f.overflow;
  q.key = MakeRandomKey(seed0, seed1);
  return q;
}

// Step 3: bring an integer-valued r into the code range.
template <Overflow O, typename C>
KAPPA_HD C OverflowCode(C r, const Quantizer<C>& q) {
  if constexpr (O == Overflow::kSaturate) {
    return r < q.code_min ? q.code_min : (r > q.code_max ? q.code_max : r);
  } else {
    static_assert(O == Overflow::kWrap, "unknown overflow mode");
    // r - k * 2^bits is exact (Sterbenz) and lands in [0, 2^bits). An r that
    // overflowed to +-Inf came from a finite x too large to scale: a multiple
    // of 2^bits, whose residue is 0.
    const C k = Floor(r * q.inv_modulus);
    C t = r - k * q.modulus;
    t = t > q.code_max ? t - q.modulus : t;
    return IsInf(r) ? C(0) : t;
  }
}

// The whole quantizer for one element x that is not subnormal (flushed).
template <Rounding R, Overflow O, typename C>
KAPPA_HD C QuantizeFlushed(C x, const Quantizer<C>& q, uint64_t index) {
  const C code = OverflowCode<O>(RoundScaled<R>(x * q.scale, x, q.key, index), q);
  if constexpr (O == Overflow::kSaturate) {
    // No special cases needed: every rounding mode maps +-Inf to +-Inf, which
    // saturates to the rails, and NaN to NaN, which the clamp passes through.
    return code * q.inv_scale;
  } else {
    static_assert(O == Overflow::kWrap, "unknown overflow mode");
    const C rail = x > C(0) ? q.code_max : q.code_min;
    const C y = (IsInf(x) ? rail : code) * q.inv_scale;
    return IsNan(x) ? x : y;
  }
}

// The whole quantizer for one element x.
template <Rounding R, Overflow O, typename C>
KAPPA_HD C QuantizeValue(C x, const Quantizer<C>& q, uint64_t index) {
  return QuantizeFlushed<R, O>(FlushSubnormal(x), q, index);
}

// The rails min_value = code_min * lsb and max_value = code_max * lsb (exact
// in C: the format fits the dtype), adjusted for flushed comparisons.
template <typename C>
inline Rails<C> MakeRails(const FixedPointFormat& f) {
  const Quantizer<C> q = MakeQuantizer<C>(f);
  Rails<C> r;
  r.low = FlushedLessThreshold<C>(q.code_min * q.inv_scale);
  r.high = FlushedGreaterThreshold<C>(q.code_max * q.inv_scale);
  return r;
}

}  // namespace kappa

#endif  // KAPPA_CORE_FORMATS_FIXED_POINT_H_
