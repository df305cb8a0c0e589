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

// ---------------------------------------------------------------------------
// Rail statistics (kappa::RailStats*): how close a tensor runs to the rails
// of a format. Per element x:
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

// The thresholds in the compute type C, as compared with x itself (not
// flushed: see FlushedGreaterThreshold). The rails are exact in C (the format
// fits the dtype). The near-rail thresholds are defined in double, as above,
// and converted to C rounding away from the middle (near_high up, near_low
// down): for every C value x, x >= near_high exactly when x >= the double
// threshold, and likewise below, so float32 comparisons give the double
// definition's answer.
template <typename C>
struct RailBounds {
  C low;        // x < low: below min_value
  C high;       // x > high: above max_value
  C near_low;   // x <= near_low: min_value + m, rounded down into C
  C near_high;  // x >= near_high: max_value - m, rounded up into C
  C zero_low;   // zero_low <= x <= zero_high: the values that round to 0
  C zero_high;  // (see Underflows)
};

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

template <typename C>
inline RailBounds<C> MakeRailBounds(const FixedPointFormat& f, double near_rail) {
  const Quantizer<C> q = MakeQuantizer<C>(f);
  double near_low = 0.0, near_high = 0.0;
  NearRailThresholds(f, near_rail, &near_low, &near_high);
  const C half_lsb = RoundDownTo<C>(std::ldexp(1.0, -f.frac_bits - 1));
  RailBounds<C> b;
  b.low = FlushedLessThreshold<C>(q.code_min * q.inv_scale);
  b.high = FlushedGreaterThreshold<C>(q.code_max * q.inv_scale);
  b.near_low = FlushedGreaterThreshold<C>(RoundDownTo<C>(near_low));
  b.near_high = FlushedLessThreshold<C>(RoundUpTo<C>(near_high));
  b.zero_high = FlushedGreaterThreshold<C>(half_lsb);
  b.zero_low = FlushedLessThreshold<C>(f.is_signed ? -half_lsb
                                                   : -std::numeric_limits<C>::infinity());
  return b;
}

template <typename C>
KAPPA_HD bool BeyondRails(C x, const RailBounds<C>& b) {
  return (x > b.high) | (x < b.low);
}

template <typename C>
KAPPA_HD bool NearRail(C x, const RailBounds<C>& b) {
  return (x >= b.near_high) | (x <= b.near_low);
}

// x is a number, and not zero once flushed: |x| >= min, or infinite.
template <typename C>
KAPPA_HD bool IsNonzeroNumber(C x) {
  return Abs(x) >= std::numeric_limits<C>::min();
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
  t.saturated += BeyondRails(x, b);
  t.near_rail += NearRail(x, b);
  t.in_zero_set += (x >= b.zero_low) & (x <= b.zero_high);
  t.zeros += a < min;
  t.zero_or_nan += !(a >= min);
}

// The counts of n elements from their (summed) tally.
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

// count / of as float32, through double; 0 when `of` is 0.
KAPPA_HD float CountFraction(int64_t count, int64_t of) {
  return of > 0 ? static_cast<float>(static_cast<double>(count) /
                                     static_cast<double>(of))
                : 0.0f;
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

// ---------------------------------------------------------------------------
// The fused weight update (kappa::UpdateStore*). Per element, with w the
// stored weight, g the gradient and lr the learning rate, in the compute
// type C, every value read through FlushSubnormal (the functors flush lr):
//   raw   = (-lr) * g
//   delta = Q_update(raw)      (raw when there is no update format)
//   sum   = w + delta
//   next  = Q_storage(sum)     (sum when there is no storage format)
// and the statistics, in double:
//   raw_sq += raw^2, actual_sq += (next - w)^2, dot += raw * (next - w)
//   (next - w is taken in double: exact for float storage),
//   nonzero_raw += raw is a nonzero number, underflow += that and delta == 0,
//   saturated += sum lies beyond the storage rails (storage format only).
// Stochastic rounding in the update quantizer is keyed by (seed0, seed1), as
// quantize_tensor is (so delta equals quantize_tensor(raw, fmt, seed)); the
// storage quantizer by (seed0, seed1 ^ kStorageSeedXor), so that the two
// draw independently.
constexpr int64_t kStorageSeedXor = 0x2545F491;

// A quantization step that may be absent, as a type: kOn false is the
// identity (R and O are then unused).
template <bool kOn, Rounding R, Overflow O>
struct Step {
  static constexpr bool on = kOn;
  static constexpr Rounding rounding = R;
  static constexpr Overflow overflow = O;
};
using NoStep = Step<false, Rounding::kNearestEven, Overflow::kSaturate>;

// v is already flushed.
template <typename S, typename C>
KAPPA_HD C ApplyStep(C v, const Quantizer<C>& q, uint64_t index) {
  if constexpr (S::on) {
    return QuantizeFlushed<S::rounding, S::overflow>(v, q, index);
  } else {
    return v;
  }
}

template <typename C>
struct UpdateElement {
  C w;  // the stored weight, flushed
  C raw;
  C delta;
  C sum;
  C next;
};

template <typename U, typename S, typename C>
KAPPA_HD UpdateElement<C> UpdateValue(C w, C g, C neg_lr, const Quantizer<C>& qu,
                                      const Quantizer<C>& qs, uint64_t index) {
  UpdateElement<C> e;
  e.w = FlushSubnormal(w);
  e.raw = FlushSubnormal(neg_lr * FlushSubnormal(g));
  e.delta = ApplyStep<U>(e.raw, qu, index);
  e.sum = FlushSubnormal(e.w + e.delta);
  e.next = ApplyStep<S>(e.sum, qs, index);
  return e;
}

struct UpdateSums {
  double raw_sq = 0.0;
  double actual_sq = 0.0;
  double dot = 0.0;
  int64_t total = 0;
  int64_t nonzero_raw = 0;
  int64_t underflow = 0;
  int64_t saturated = 0;
};

struct UpdateStats {
  float raw_update_norm = 0.0f;
  float actual_update_norm = 0.0f;
  float update_dot = 0.0f;
  float update_underflow_fraction = 0.0f;
  float storage_saturation_fraction = 0.0f;
};

#if defined(__CUDA_ARCH__)
KAPPA_HD double Sqrt(double v) { return sqrt(v); }
#else
KAPPA_HD double Sqrt(double v) { return std::sqrt(v); }
#endif

// The float32 results, read through FlushSubnormal like every value (a norm
// or dot product below float32's smallest normal number reports as 0).
KAPPA_HD UpdateStats StatsFromSums(const UpdateSums& s) {
  UpdateStats t;
  t.raw_update_norm = FlushSubnormal(static_cast<float>(Sqrt(s.raw_sq)));
  t.actual_update_norm = FlushSubnormal(static_cast<float>(Sqrt(s.actual_sq)));
  t.update_dot = FlushSubnormal(static_cast<float>(s.dot));
  t.update_underflow_fraction = CountFraction(s.underflow, s.nonzero_raw);
  t.storage_saturation_fraction = CountFraction(s.saturated, s.total);
  return t;
}

// Calls f.template operator()<Step<...>>() for an optional format's run-time
// modes (NoStep when absent).
template <typename F>
struct StepFromModes {
  F& f;
  template <Rounding R, Overflow O>
  void operator()() const {
    f.template operator()<Step<true, R, O>>();
  }
};

template <typename F>
inline void DispatchStep(bool on, Rounding r, Overflow o, F&& f) {
  if (on) {
    DispatchModes(r, o, StepFromModes<F>{f});
  } else {
    f.template operator()<NoStep>();
  }
}

}  // namespace kappa

#endif  // KAPPA_KERNELS_FIXED_POINT_H_
