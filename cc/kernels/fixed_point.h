// The one definition of tensorflow_kappa's fixed-point arithmetic.
//
// Everything the CPU and CUDA kernels compute per element lives here, as
// inline functions usable on the host and on the device. No TensorFlow
// headers: kernels built from this file can be checked without TensorFlow
// (cc/tests on the CPU, cc/gpu_check on a GPU).
//
// A format Q(bits, frac_bits) represents code * 2^-frac_bits for an integer
// code in [-2^(bits-1), 2^(bits-1) - 1] (signed) or [0, 2^bits - 1]
// (unsigned). Quantizing x:
//   1. v = x * 2^frac_bits (exact: a power-of-two scaling);
//   2. r = round(v) by the rounding mode;
//   3. code = saturate(r) or wrap(r) (two's complement, modulo 2^bits);
//   4. result = code * 2^-frac_bits.
// NaN stays NaN. +-Inf go to the rails under both overflow modes (there is no
// meaningful residue of an infinity). Finite inputs whose scaled value
// overflows the compute type are multiples of 2^bits, so they wrap to 0.
//
// The compute type C is float for float16, bfloat16 and float32 storage and
// double for float64. The Python layer only accepts formats whose grid is
// exactly representable in the storage type, which makes every step above
// exact in C; the one case where step 1 loses information (a nonzero x whose
// scaled value underflows to zero) is corrected explicitly below.
#ifndef KAPPA_KERNELS_FIXED_POINT_H_
#define KAPPA_KERNELS_FIXED_POINT_H_

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define KAPPA_HD __host__ __device__ __forceinline__
#else
#define KAPPA_HD inline
#endif

namespace kappa {

enum class Rounding : int32_t {
  kNearestEven = 0,
  kNearestAway = 1,
  kTruncate = 2,  // floor: what dropping two's-complement bits does
  kTowardZero = 3,
  kStochastic = 4,
};

enum class Overflow : int32_t {
  kSaturate = 0,
  kWrap = 1,
};

// A fixed-point format plus how to get there. Plain data, passed by value to
// kernels.
struct FixedPointFormat {
  int32_t bits = 8;
  int32_t frac_bits = 0;
  bool is_signed = true;
  Rounding rounding = Rounding::kNearestEven;
  Overflow overflow = Overflow::kSaturate;
};

// Counter-based random numbers for stochastic rounding: element i of a tensor
// draws from Hash(i) under a key derived from the user's two seeds. The same
// (seeds, i) give the same number on every device and with any number of
// threads. The pure-TensorFlow fallback (tensorflow_kappa/quantization) builds
// the same function from uint32 TensorFlow ops.
struct RandomKey {
  uint32_t k0 = 0;
  uint32_t k1 = 0;
};

// "lowbias32" integer hash (Chris Wellons' hash-prospector): a bijection on
// uint32 with good avalanche.
KAPPA_HD uint32_t Mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

KAPPA_HD RandomKey MakeRandomKey(int64_t seed0, int64_t seed1) {
  RandomKey key;
  key.k0 = Mix32(static_cast<uint32_t>(seed0) ^ 0x9e3779b9U);
  key.k1 = Mix32(static_cast<uint32_t>(seed1) ^ key.k0);
  return key;
}

// 32 random bits for element `index` (a flat index into the tensor).
KAPPA_HD uint32_t RandomBits(RandomKey key, uint64_t index) {
  const uint32_t lo = static_cast<uint32_t>(index);
  const uint32_t hi = static_cast<uint32_t>(index >> 32);
  return Mix32(Mix32(lo ^ key.k0) ^ hi ^ key.k1);
}

// Uniform in [0, 1) on the grid 2^-24: exactly representable in float and
// double, so CPU, GPU and the TensorFlow fallback agree bit for bit.
template <typename C>
KAPPA_HD C UniformFromBits(uint32_t bits) {
  // Through int32 (the value fits): unsigned-to-double has no vector form.
  return static_cast<C>(static_cast<int32_t>(bits >> 8)) *
         static_cast<C>(5.9604644775390625e-08);
}

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

// Host/device overloads of the few math functions used below, so that float
// stays float on both sides (the C library's unsuffixed functions are double).
#if defined(__CUDA_ARCH__)
KAPPA_HD float Rint(float v) { return rintf(v); }
KAPPA_HD double Rint(double v) { return rint(v); }
KAPPA_HD float Floor(float v) { return floorf(v); }
KAPPA_HD double Floor(double v) { return floor(v); }
KAPPA_HD float Trunc(float v) { return truncf(v); }
KAPPA_HD double Trunc(double v) { return trunc(v); }
#else
KAPPA_HD float Rint(float v) { return std::rint(v); }
KAPPA_HD double Rint(double v) { return std::rint(v); }
KAPPA_HD float Floor(float v) { return std::floor(v); }
KAPPA_HD double Floor(double v) { return std::floor(v); }
KAPPA_HD float Trunc(float v) { return std::trunc(v); }
KAPPA_HD double Trunc(double v) { return std::trunc(v); }
#endif
template <typename C>
KAPPA_HD bool IsNan(C v) { return v != v; }
template <typename C>
KAPPA_HD bool IsInf(C v) {
  // Non-short-circuit operators keep the element loops branch-free.
  return (v == std::numeric_limits<C>::infinity()) |
         (v == -std::numeric_limits<C>::infinity());
}

// Step 2: round the scaled value v = x * 2^frac_bits to an integer-valued C.
// x is passed for its sign; `index` (the element's flat index) feeds
// stochastic rounding only.
template <Rounding R, typename C>
KAPPA_HD C RoundScaled(C v, C x, const Quantizer<C>& q, uint64_t index) {
  if constexpr (R == Rounding::kNearestEven) {
    return Rint(v);  // default floating-point environment: ties to even
  } else if constexpr (R == Rounding::kNearestAway) {
    const C t = Trunc(v);
    const C d = v - t;  // exact
    const C step = v < C(0) ? C(-1) : C(1);
    return ((d >= C(0.5)) | (d <= C(-0.5))) ? t + step : t;
  } else if constexpr (R == Rounding::kTruncate) {
    // A negative x whose scaled value underflowed to -0 still floors to -1.
    const C f = Floor(v);
    return f - (((v == C(0)) & (x < C(0))) ? C(1) : C(0));
  } else if constexpr (R == Rounding::kTowardZero) {
    return Trunc(v);
  } else {
    static_assert(R == Rounding::kStochastic, "unknown rounding mode");
    const C f = Floor(v);
    const C frac = v - f;  // exact, in [0, 1)
    const C u = UniformFromBits<C>(RandomBits(q.key, index));
    return u < frac ? f + C(1) : f;
  }
}

// Step 3: bring an integer-valued r into the code range.
template <Overflow O, typename C>
KAPPA_HD C OverflowCode(C r, const Quantizer<C>& q) {
  if constexpr (O == Overflow::kSaturate) {
    return r < q.code_min ? q.code_min : (r > q.code_max ? q.code_max : r);
  } else {
    // r - k * 2^bits is exact (Sterbenz) and lands in [0, 2^bits). An r that
    // overflowed to +-Inf came from a finite x too large to scale: a multiple
    // of 2^bits, whose residue is 0.
    const C k = Floor(r * q.inv_modulus);
    C t = r - k * q.modulus;
    t = t > q.code_max ? t - q.modulus : t;
    return IsInf(r) ? C(0) : t;
  }
}

// The whole quantizer for one element x.
template <Rounding R, Overflow O, typename C>
KAPPA_HD C QuantizeValue(C x, const Quantizer<C>& q, uint64_t index) {
  const C rail = x > C(0) ? q.code_max : q.code_min;
  const C code = OverflowCode<O>(RoundScaled<R>(x * q.scale, x, q, index), q);
  const C y = (IsInf(x) ? rail : code) * q.inv_scale;
  return IsNan(x) ? x : y;
}

// Calls f.template operator()<R, O>() for the format's run-time modes, so
// that kernels are instantiated (and vectorised) once per mode pair.
template <typename F>
inline void DispatchModes(Rounding r, Overflow o, F&& f) {
#define KAPPA_DISPATCH_OVERFLOW(R)                                     \
  if (o == Overflow::kSaturate) {                                      \
    f.template operator()<R, Overflow::kSaturate>();                   \
  } else {                                                             \
    f.template operator()<R, Overflow::kWrap>();                       \
  }
  switch (r) {
    case Rounding::kNearestEven: KAPPA_DISPATCH_OVERFLOW(Rounding::kNearestEven) break;
    case Rounding::kNearestAway: KAPPA_DISPATCH_OVERFLOW(Rounding::kNearestAway) break;
    case Rounding::kTruncate: KAPPA_DISPATCH_OVERFLOW(Rounding::kTruncate) break;
    case Rounding::kTowardZero: KAPPA_DISPATCH_OVERFLOW(Rounding::kTowardZero) break;
    case Rounding::kStochastic: KAPPA_DISPATCH_OVERFLOW(Rounding::kStochastic) break;
  }
#undef KAPPA_DISPATCH_OVERFLOW
}

}  // namespace kappa

#endif  // KAPPA_KERNELS_FIXED_POINT_H_
