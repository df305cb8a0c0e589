// The one definition of tensorflow_kappa's fixed-point arithmetic: formats,
// their rails, the counter-based random numbers of stochastic rounding, and
// rounding itself (QuantizeValue).
//
// Everything here is inline and usable on the host and on the device. No
// TensorFlow headers: the per-op functors built on this file
// (cc/core/<op>/) are checked without TensorFlow (cc/tests on the CPU,
// cc/gpu_check on a GPU). What only one op computes per element (rail
// statistics, the fused update) lives in that op's header.
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
// double for float64. The op layer (cc/ops/attrs.h) only accepts formats
// whose grid is exactly representable in the storage type, which makes
// every step above exact in C; the one case where step 1 loses information
// (a nonzero x whose scaled value underflows to zero) is corrected
// explicitly below.
#ifndef KAPPA_CORE_FIXED_POINT_H_
#define KAPPA_CORE_FIXED_POINT_H_

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

// The modes' names, indexed by the enums' values: the C++ side's one list
// (the op attrs' allowed values are built from it, cc/ops/attrs.h).
inline constexpr const char* kRoundingNames[] = {"nearest_even", "nearest_away", "truncate",
                                                 "toward_zero", "stochastic"};
inline constexpr const char* kOverflowNames[] = {"saturate", "wrap"};
static_assert(sizeof(kRoundingNames) / sizeof(kRoundingNames[0]) ==
                  static_cast<int>(Rounding::kStochastic) + 1,
              "one name per rounding mode");
static_assert(sizeof(kOverflowNames) / sizeof(kOverflowNames[0]) ==
                  static_cast<int>(Overflow::kWrap) + 1,
              "one name per overflow mode");

inline const char* RoundingName(Rounding r) { return kRoundingNames[static_cast<int>(r)]; }
inline const char* OverflowName(Overflow o) { return kOverflowNames[static_cast<int>(o)]; }

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
// draws RandomBits(key, i), a hash of i under a key derived from the user's
// two int64 seeds. The same (seeds, i) give the same number on every device
// and with any number of threads. The pure-TensorFlow twin
// (tensorflow_kappa/quantization/composite.py) builds the same functions
// from uint32 TensorFlow ops.
//
// Seeds to key: all 128 bits of (seed0, seed1) count. With Mix64 a bijection
// of 64 bits,
//   key = Mix64(Mix64(seed0) ^ seed1),
// so for a fixed seed0 the map seed1 -> key is a bijection, and so is
// seed0 -> key for a fixed seed1: two seed pairs that agree in either word
// never share a key (per-step seeds (run, step) never repeat a stream). The
// key has 64 bits: there are 2^64 distinct streams.
//
// How long a stream runs before it repeats: the counter i is 64 bits, so
// one key's stream is 2^64 numbers long; every op call counts from 0 over
// its own elements, so no two elements of a call share a counter value.
// Within each aligned run of 2^32 counter values the 32-bit numbers are all
// distinct (RandomBits is a bijection of the low half of i), and two such
// runs of one key differ at every position. The per-element cost is two
// Mix32; the key is derived once per call.
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

// A bijection of 64 bits (lo, hi): three Feistel rounds, each xoring one
// half with Mix32 of the other half and a round constant. A round is undone
// by applying it again, so the rounds in reverse order invert the whole;
// after three rounds every output bit depends on every input bit.
KAPPA_HD RandomKey Mix64(uint32_t lo, uint32_t hi) {
  hi ^= Mix32(lo ^ 0x9e3779b9U);
  lo ^= Mix32(hi ^ 0x85ebca6bU);
  hi ^= Mix32(lo ^ 0xc2b2ae35U);
  RandomKey out;
  out.k0 = lo;
  out.k1 = hi;
  return out;
}

KAPPA_HD RandomKey MakeRandomKey(int64_t seed0, int64_t seed1) {
  const uint64_t s0 = static_cast<uint64_t>(seed0);
  const uint64_t s1 = static_cast<uint64_t>(seed1);
  const RandomKey p = Mix64(static_cast<uint32_t>(s0), static_cast<uint32_t>(s0 >> 32));
  return Mix64(p.k0 ^ static_cast<uint32_t>(s1), p.k1 ^ static_cast<uint32_t>(s1 >> 32));
}

// 32 random bits for element `index` (a flat index into the tensor).
KAPPA_HD uint32_t RandomBits(RandomKey key, uint64_t index) {
  const uint32_t lo = static_cast<uint32_t>(index);
  const uint32_t hi = static_cast<uint32_t>(index >> 32);
  return Mix32(Mix32(lo ^ key.k0) ^ hi ^ key.k1);
}

// RandomBits(key, index) == RandomBits(KeyForHighBits(key, index >> 32),
// uint32_t(index)): a kernel walking a range that does not cross a multiple
// of 2^32 can fold the high half of the index into the key once, and hash
// 32-bit indices.
KAPPA_HD RandomKey KeyForHighBits(RandomKey key, uint32_t high) {
  key.k1 ^= high;
  return key;
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
KAPPA_HD float Abs(float v) { return fabsf(v); }
KAPPA_HD double Abs(double v) { return fabs(v); }
#else
KAPPA_HD float Rint(float v) { return std::rint(v); }
KAPPA_HD double Rint(double v) { return std::rint(v); }
KAPPA_HD float Floor(float v) { return std::floor(v); }
KAPPA_HD double Floor(double v) { return std::floor(v); }
KAPPA_HD float Trunc(float v) { return std::trunc(v); }
KAPPA_HD double Trunc(double v) { return std::trunc(v); }
KAPPA_HD float Abs(float v) { return std::fabs(v); }
KAPPA_HD double Abs(double v) { return std::fabs(v); }
#endif
template <typename C>
KAPPA_HD bool IsNan(C v) { return v != v; }
template <typename C>
KAPPA_HD bool IsInf(C v) {
  // Non-short-circuit operators keep the element loops branch-free.
  return (v == std::numeric_limits<C>::infinity()) |
         (v == -std::numeric_limits<C>::infinity());
}

// TensorFlow's CPU kernels run with denormals flushed to zero (FTZ/DAZ), so
// there a subnormal value already reads as zero; GPUs keep subnormals. To
// give one answer on every device, the kernels flush explicitly: a subnormal
// input is the zero of its sign (x * 0 keeps the sign, also under DAZ).
template <typename C>
KAPPA_HD C FlushSubnormal(C x) {
  return Abs(x) < std::numeric_limits<C>::min() ? x * C(0) : x;
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
    // A negative x whose scaled value underflowed to -0 lies just below 0
    // and rounds up to +0 (the chance of -1 is below 2^-100): stand in
    // -2^-30, which does so for every u.
    const C w = ((v == C(0)) & (x < C(0))) ? C(-9.313225746154785e-10) : v;
    const C f = Floor(w);
    const C frac = w - f;  // exact, in [0, 1)
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

// The whole quantizer for one element x that is not subnormal (flushed).
template <Rounding R, Overflow O, typename C>
KAPPA_HD C QuantizeFlushed(C x, const Quantizer<C>& q, uint64_t index) {
  const C code = OverflowCode<O>(RoundScaled<R>(x * q.scale, x, q, index), q);
  if constexpr (O == Overflow::kSaturate) {
    // No special cases needed: every rounding mode maps +-Inf to +-Inf, which
    // saturates to the rails, and NaN to NaN, which the clamp passes through.
    return code * q.inv_scale;
  } else {
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

// The two modes of a quantizer as a type: DispatchModes passes a value of
// Modes<R, O> to its callback, which reads them as constants.
template <Rounding R, Overflow O>
struct Modes {
  static constexpr Rounding rounding = R;
  static constexpr Overflow overflow = O;
};

// DispatchModes' second half: f(Modes<R, O>{}) for the run-time overflow o.
template <Rounding R, typename F>
inline void DispatchOverflow(Overflow o, F& f) {
  if (o == Overflow::kSaturate) {
    f(Modes<R, Overflow::kSaturate>{});
  } else {
    f(Modes<R, Overflow::kWrap>{});
  }
}

// Calls f(Modes<R, O>{}) for the run-time modes (r, o), so that kernels are
// instantiated (and vectorised) once per mode pair.
template <typename F>
inline void DispatchModes(Rounding r, Overflow o, F&& f) {
  switch (r) {
    case Rounding::kNearestEven: return DispatchOverflow<Rounding::kNearestEven>(o, f);
    case Rounding::kNearestAway: return DispatchOverflow<Rounding::kNearestAway>(o, f);
    case Rounding::kTruncate: return DispatchOverflow<Rounding::kTruncate>(o, f);
    case Rounding::kTowardZero: return DispatchOverflow<Rounding::kTowardZero>(o, f);
    case Rounding::kStochastic: return DispatchOverflow<Rounding::kStochastic>(o, f);
  }
}

// ---------------------------------------------------------------------------
// The rails of a format as thresholds that the ops' statistics compare values
// with, reading every value through FlushSubnormal.
//
// Comparing FlushSubnormal(x) with a threshold t equals comparing x itself
// with an adjusted threshold, so the predicates need no per-element flush:
// only a t strictly between -min and min (min: the smallest normal number)
// moves, to the edge of the subnormal range on the side where a flushed
// zero compares as 0 does:
//   x >  Greater(t)  <=>  flush(x) >  t   (so x <= Greater(t) <=> flush(x) <= t)
//   x <  Less(t)     <=>  flush(x) <  t   (so x >= Less(t)    <=> flush(x) >= t)
// for every non-NaN x (NaN compares false either way). Under DAZ, where the
// subnormal thresholds themselves read as zeros, the answers stay the same.
template <typename C>
inline C FlushedGreaterThreshold(C t) {
  const C min = std::numeric_limits<C>::min();
  if (!(std::fabs(t) < min)) return t;
  // 0 > t holds for t < 0: then every x above -min; else every x from min.
  return t < C(0) ? -min : std::nextafter(min, C(0));
}

template <typename C>
inline C FlushedLessThreshold(C t) {
  const C min = std::numeric_limits<C>::min();
  if (!(std::fabs(t) < min)) return t;
  // 0 < t holds for t > 0: then every x below min; else every x to -min.
  return t > C(0) ? min : -std::nextafter(min, C(0));
}

// A double rounded up (RoundUpTo) or down (RoundDownTo) into C.
template <typename C>
inline C RoundUpTo(double v) {
  C c = static_cast<C>(v);
  if (static_cast<double>(c) < v) c = std::nextafter(c, std::numeric_limits<C>::infinity());
  return c;
}

template <typename C>
inline C RoundDownTo(double v) {
  C c = static_cast<C>(v);
  if (static_cast<double>(c) > v) c = std::nextafter(c, -std::numeric_limits<C>::infinity());
  return c;
}

// The rails min_value = code_min * lsb and max_value = code_max * lsb (exact
// in C: the format fits the dtype), adjusted for flushed comparisons.
template <typename C>
struct Rails {
  C low;   // x < low: below min_value
  C high;  // x > high: above max_value
};

template <typename C>
inline Rails<C> MakeRails(const FixedPointFormat& f) {
  const Quantizer<C> q = MakeQuantizer<C>(f);
  Rails<C> r;
  r.low = FlushedLessThreshold<C>(q.code_min * q.inv_scale);
  r.high = FlushedGreaterThreshold<C>(q.code_max * q.inv_scale);
  return r;
}

// x lies beyond the rails: saturating would change it.
template <typename C>
KAPPA_HD bool BeyondRails(C x, const Rails<C>& r) {
  return (x > r.high) | (x < r.low);
}

// x is a number, and not zero once flushed: |x| >= min, or infinite.
template <typename C>
KAPPA_HD bool IsNonzeroNumber(C x) {
  return Abs(x) >= std::numeric_limits<C>::min();
}

// count / of as float32, through double; 0 when `of` is 0 (the statistics'
// fractions).
KAPPA_HD float CountFraction(int64_t count, int64_t of) {
  return of > 0 ? static_cast<float>(static_cast<double>(count) /
                                     static_cast<double>(of))
                : 0.0f;
}

}  // namespace kappa

#endif  // KAPPA_CORE_FIXED_POINT_H_
