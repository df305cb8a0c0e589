// The arithmetic of cc/core/formats/ as XLA builder code (HLO), for the ops'
// lowerings (cc/ops/<op>_xla.cc).
//
// Each function here carries the name of the formats/ function whose
// per-element definition it builds, applied to whole arrays, so that the
// files read side by side. Everything that depends only on the op's attrs
// (the scale, rails and code range of a format) is computed on the host by
// formats/fixed_point.h itself (MakeQuantizer, MakeRails) and enters the
// graph as a constant; only what depends on the data is built here. Where an HLO form
// differs from the C++ one, a comment says why the values are the same.
//
// Two properties of XLA shape the code:
//   * XLA's CPU and GPU backends let LLVM contract a multiply feeding an add
//     into one fused multiply-add, which skips the product's rounding (the
//     CPU kernels are built with -ffp-contract=off, the CUDA ones with
//     --fmad=false). Every product in the quantizer is exact (power-of-two
//     scalings of integers), so contraction cannot change it; the one
//     inexact product, the weight update's -lr * grad, reaches its sum only
//     through FlushSubnormal, which is built on the bits: integer operations
//     that no contraction looks through. (Without the flush XLA:CPU does
//     contract w + (-lr * g): 20735 of 100000 float32 sums differed from the
//     separately rounded ones; a float select in between happened to stop
//     it there too, but only the integer form rules it out by construction.)
//   * Scalars broadcast implicitly in XlaBuilder's binary operations and in
//     Select, so constants are scalars.
#ifndef KAPPA_OPS_XLA_FIXED_POINT_H_
#define KAPPA_OPS_XLA_FIXED_POINT_H_

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/types/span.h"
#include "cc/core/formats/fixed_point.h"
#include "xla/hlo/builder/lib/arithmetic.h"
#include "xla/hlo/builder/xla_builder.h"
#include "xla/primitive_util.h"
#include "xla/xla_data.pb.h"

namespace kappa {
namespace hlo {

using ::xla::XlaBuilder;
using ::xla::XlaOp;

// The XLA element type of C (float: F32, double: F64, uint32_t: U32, ...).
template <typename C>
constexpr ::xla::PrimitiveType TypeOf() {
  return ::xla::primitive_util::NativeToPrimitiveType<C>();
}

// A scalar constant of type C.
template <typename C>
XlaOp Constant(XlaBuilder* b, C value) {
  return ::xla::ConstantR0<C>(b, value);
}

inline XlaOp U32(XlaBuilder* b, uint32_t value) { return Constant<uint32_t>(b, value); }

// ---------------------------------------------------------------------------
// Counter-based random numbers (formats/random.h: Mix32 ... UniformFromBits).
// uint32 multiplication wraps modulo 2^32 in HLO as in C++.

inline XlaOp Mix32(XlaOp x) {
  XlaBuilder* b = x.builder();
  x = ::xla::Xor(x, ::xla::ShiftRightLogical(x, U32(b, 16)));
  x = ::xla::Mul(x, U32(b, 0x7feb352dU));
  x = ::xla::Xor(x, ::xla::ShiftRightLogical(x, U32(b, 15)));
  x = ::xla::Mul(x, U32(b, 0x846ca68bU));
  x = ::xla::Xor(x, ::xla::ShiftRightLogical(x, U32(b, 16)));
  return x;
}

// The key's two words: uint32 scalars.
struct RandomKey {
  XlaOp k0;
  XlaOp k1;
};

inline RandomKey Mix64(XlaOp lo, XlaOp hi) {
  XlaBuilder* b = lo.builder();
  hi = ::xla::Xor(hi, Mix32(::xla::Xor(lo, U32(b, 0x9e3779b9U))));
  lo = ::xla::Xor(lo, Mix32(::xla::Xor(hi, U32(b, 0x85ebca6bU))));
  hi = ::xla::Xor(hi, Mix32(::xla::Xor(lo, U32(b, 0xc2b2ae35U))));
  return RandomKey{lo, hi};
}

// The low and the high 32 bits of an int64 scalar, as uint32 scalars (the
// static_casts of MakeRandomKey).
inline void Halves(XlaOp word, XlaOp* low, XlaOp* high) {
  XlaBuilder* b = word.builder();
  const XlaOp bits = ::xla::BitcastConvertType(word, ::xla::U64);
  *low = ::xla::ConvertElementType(
      ::xla::And(bits, Constant<uint64_t>(b, 0xffffffffULL)), ::xla::U32);
  *high = ::xla::ConvertElementType(
      ::xla::ShiftRightLogical(bits, Constant<uint64_t>(b, 32)), ::xla::U32);
}

// The two words of an op's int64[2] seed input, as int64 scalars.
inline void SeedWords(XlaOp seed, XlaOp* seed0, XlaOp* seed1) {
  *seed0 = ::xla::Reshape(::xla::SliceInDim(seed, 0, 1, 1, 0), {});
  *seed1 = ::xla::Reshape(::xla::SliceInDim(seed, 1, 2, 1, 0), {});
}

// MakeRandomKey(seed0, seed1) of int64 scalars.
inline RandomKey MakeRandomKey(XlaOp seed0, XlaOp seed1) {
  XlaOp s0_lo, s0_hi, s1_lo, s1_hi;
  Halves(seed0, &s0_lo, &s0_hi);
  Halves(seed1, &s1_lo, &s1_hi);
  const RandomKey p = Mix64(s0_lo, s0_hi);
  return Mix64(::xla::Xor(p.k0, s1_lo), ::xla::Xor(p.k1, s1_hi));
}

// RandomBits' counter for every element of an array of shape `dims`: its flat
// (row-major) index, as the uint32 halves of the 64-bit counter. `high` is
// only built where an index can reach 2^32; below, it is 0 for every element
// and XOR with it is the identity.
struct ElementIndex {
  XlaOp low;
  XlaOp high;  // unset (not valid()) when every index is below 2^32
};

inline ElementIndex ElementIndices(XlaBuilder* b, absl::Span<const int64_t> dims) {
  int64_t n = 1;
  for (const int64_t d : dims) n *= d;
  ElementIndex index;
  if (n <= (int64_t{1} << 32)) {
    index.low = ::xla::Reshape(::xla::Iota(b, ::xla::U32, n), dims);
    return index;
  }
  const XlaOp flat = ::xla::Reshape(::xla::Iota(b, ::xla::U64, n), dims);
  index.low = ::xla::ConvertElementType(
      ::xla::And(flat, Constant<uint64_t>(b, 0xffffffffULL)), ::xla::U32);
  index.high = ::xla::ConvertElementType(
      ::xla::ShiftRightLogical(flat, Constant<uint64_t>(b, 32)), ::xla::U32);
  return index;
}

// RandomBits(key, index) = Mix32(Mix32(lo ^ k0) ^ hi ^ k1).
inline XlaOp RandomBits(const RandomKey& key, const ElementIndex& index) {
  XlaOp inner = ::xla::Xor(Mix32(::xla::Xor(index.low, key.k0)), key.k1);
  if (index.high.valid()) inner = ::xla::Xor(inner, index.high);
  return Mix32(inner);
}

// UniformFromBits<C>: (bits >> 8) * 2^-24, through int32 as in C++ (the
// value fits in 24 bits, so every conversion is exact).
template <typename C>
XlaOp UniformFromBits(XlaOp bits) {
  XlaBuilder* b = bits.builder();
  const XlaOp top = ::xla::ConvertElementType(
      ::xla::ShiftRightLogical(bits, U32(b, 8)), ::xla::S32);
  return ::xla::Mul(::xla::ConvertElementType(top, TypeOf<C>()),
                    Constant<C>(b, static_cast<C>(5.9604644775390625e-08)));
}

// What stochastic rounding draws from: the key and every element's counter.
struct RandomStream {
  RandomKey key;
  ElementIndex index;
};

// ---------------------------------------------------------------------------
// Per-element predicates and helpers.

inline XlaOp IsNan(XlaOp v) { return ::xla::Ne(v, v); }

template <typename C>
XlaOp IsInf(XlaOp v) {
  return ::xla::Eq(::xla::Abs(v), Constant<C>(v.builder(), std::numeric_limits<C>::infinity()));
}

// C++'s trunc: ceil below zero, floor otherwise (signed zeros included:
// ceil(-0.5) is -0, as trunc(-0.5) is).
inline XlaOp Trunc(XlaOp v, XlaOp zero) {
  return ::xla::Select(::xla::Lt(v, zero), ::xla::Ceil(v), ::xla::Floor(v));
}

// The unsigned integer type of C's width, and C's sign bit in it.
template <typename C>
struct Bits;
template <>
struct Bits<float> {
  using U = uint32_t;
  static constexpr U kSign = 0x80000000U;
};
template <>
struct Bits<double> {
  using U = uint64_t;
  static constexpr U kSign = 0x8000000000000000ULL;
};

// FlushSubnormal: a subnormal x becomes the zero of its sign, which is x's
// sign bit alone (x * 0 in formats/float_math.h). Built on the bits, so that a
// product that reaches a sum only through this flush is never contracted
// with it into a fused multiply-add (see the top of this file).
template <typename C>
XlaOp FlushSubnormal(XlaOp x) {
  using U = typename Bits<C>::U;
  XlaBuilder* b = x.builder();
  const XlaOp bits = ::xla::BitcastConvertType(x, TypeOf<U>());
  const XlaOp zero_of_sign = ::xla::And(bits, Constant<U>(b, Bits<C>::kSign));
  const XlaOp subnormal =
      ::xla::Lt(::xla::Abs(x), Constant<C>(b, std::numeric_limits<C>::min()));
  return ::xla::BitcastConvertType(::xla::Select(subnormal, zero_of_sign, bits), TypeOf<C>());
}

// ---------------------------------------------------------------------------
// Rounding and overflow (formats/: RoundScaled, OverflowCode,
// QuantizeFlushed, QuantizeValue). The modes are template arguments, as in
// C++; QuantizeFlushed<C> picks them from the Quantizer at graph-building
// time through DispatchModes, so every mode of the table is lowered and a
// mode missing here does not compile.

// Step 2: round v = x * 2^frac_bits by the mode R; `random` is used by
// stochastic rounding only (and may be null otherwise).
template <Rounding R, typename C>
XlaOp RoundScaled(XlaOp v, XlaOp x, const RandomStream* random) {
  XlaBuilder* b = v.builder();
  const auto c = [b](double value) { return Constant<C>(b, static_cast<C>(value)); };
  if constexpr (R == Rounding::kNearestEven) {
    return ::xla::RoundNearestEven(v);
  } else if constexpr (R == Rounding::kNearestAway) {
    const XlaOp t = Trunc(v, c(0));
    const XlaOp d = ::xla::Sub(v, t);  // exact
    const XlaOp step = ::xla::Select(::xla::Lt(v, c(0)), c(-1), c(1));
    return ::xla::Select(::xla::Or(::xla::Ge(d, c(0.5)), ::xla::Le(d, c(-0.5))),
                         ::xla::Add(t, step), t);
  } else if constexpr (R == Rounding::kTruncate) {
    // A negative x whose scaled value underflowed to -0 still floors to -1.
    const XlaOp f = ::xla::Floor(v);
    const XlaOp below = ::xla::And(::xla::Eq(v, c(0)), ::xla::Lt(x, c(0)));
    return ::xla::Sub(f, ::xla::Select(below, c(1), c(0)));
  } else if constexpr (R == Rounding::kTowardZero) {
    return Trunc(v, c(0));
  } else {
    static_assert(R == Rounding::kStochastic, "unknown rounding mode");
    // A negative x whose scaled value underflowed to -0 rounds up to +0:
    // -2^-30 stands in, as in formats/rounding.h.
    const XlaOp below = ::xla::And(::xla::Eq(v, c(0)), ::xla::Lt(x, c(0)));
    const XlaOp w = ::xla::Select(below, c(-9.313225746154785e-10), v);
    const XlaOp f = ::xla::Floor(w);
    const XlaOp frac = ::xla::Sub(w, f);  // frac(w) as C holds it (rounded)
    const XlaOp u = UniformFromBits<C>(RandomBits(random->key, random->index));
    return ::xla::Select(::xla::Lt(u, frac), ::xla::Add(f, c(1)), f);
  }
}

// Step 3: bring an integer-valued r into the code range by the mode O.
template <Overflow O, typename C>
XlaOp OverflowCode(XlaOp r, const Quantizer<C>& q) {
  XlaBuilder* b = r.builder();
  const XlaOp code_min = Constant<C>(b, q.code_min);
  const XlaOp code_max = Constant<C>(b, q.code_max);
  if constexpr (O == Overflow::kSaturate) {
    return ::xla::Select(::xla::Lt(r, code_min), code_min,
                         ::xla::Select(::xla::Gt(r, code_max), code_max, r));
  } else {
    static_assert(O == Overflow::kWrap, "unknown overflow mode");
    // r - k * 2^bits is exact (a fused multiply-add gives the same value).
    const XlaOp modulus = Constant<C>(b, q.modulus);
    const XlaOp k = ::xla::Floor(::xla::Mul(r, Constant<C>(b, q.inv_modulus)));
    XlaOp t = ::xla::Sub(r, ::xla::Mul(k, modulus));
    t = ::xla::Select(::xla::Gt(t, code_max), ::xla::Sub(t, modulus), t);
    return ::xla::Select(IsInf<C>(r), Constant<C>(b, C(0)), t);
  }
}

// The whole quantizer, modes (R, O), for an x that is already flushed.
template <Rounding R, Overflow O, typename C>
XlaOp QuantizeFlushed(XlaOp x, const Quantizer<C>& q, const RandomStream* random) {
  XlaBuilder* b = x.builder();
  const XlaOp scaled = ::xla::Mul(x, Constant<C>(b, q.scale));
  const XlaOp code = OverflowCode<O, C>(RoundScaled<R, C>(scaled, x, random), q);
  const XlaOp inv_scale = Constant<C>(b, q.inv_scale);
  if constexpr (O == Overflow::kSaturate) {
    return ::xla::Mul(code, inv_scale);
  } else {
    static_assert(O == Overflow::kWrap, "unknown overflow mode");
    const XlaOp rail = ::xla::Select(::xla::Gt(x, Constant<C>(b, C(0))),
                                     Constant<C>(b, q.code_max), Constant<C>(b, q.code_min));
    const XlaOp y = ::xla::Mul(::xla::Select(IsInf<C>(x), rail, code), inv_scale);
    return ::xla::Select(IsNan(x), x, y);
  }
}

// The same for the quantizer's own (run-time) modes.
template <typename C>
XlaOp QuantizeFlushed(XlaOp x, const Quantizer<C>& q, const RandomStream* random) {
  XlaOp y;
  DispatchModes(q.rounding, q.overflow, [&](auto m) {
    using M = decltype(m);
    y = QuantizeFlushed<M::rounding, M::overflow, C>(x, q, random);
  });
  return y;
}

template <typename C>
XlaOp QuantizeValue(XlaOp x, const Quantizer<C>& q, const RandomStream* random) {
  return QuantizeFlushed<C>(FlushSubnormal<C>(x), q, random);
}

// ---------------------------------------------------------------------------
// Rails and counts (formats/: BeyondRails, IsNonzeroNumber,
// CountFraction). The thresholds come from MakeRails on the host.

template <typename C>
XlaOp BeyondRails(XlaOp x, const Rails<C>& r) {
  XlaBuilder* b = x.builder();
  return ::xla::Or(::xla::Gt(x, Constant<C>(b, r.high)), ::xla::Lt(x, Constant<C>(b, r.low)));
}

template <typename C>
XlaOp IsNonzeroNumber(XlaOp x) {
  return ::xla::Ge(::xla::Abs(x), Constant<C>(x.builder(), std::numeric_limits<C>::min()));
}

// The sum of every element of x, of type C (int64_t for counts, double for
// the update's sums), in an order XLA chooses: exact for integers.
template <typename C>
XlaOp SumAll(XlaOp x) {
  XlaBuilder* b = x.builder();
  return ::xla::ReduceAll(x, Constant<C>(b, C(0)), ::xla::CreateScalarAddComputation(TypeOf<C>(), b));
}

// The number of true elements of a predicate array, as an int64 scalar.
inline XlaOp Count(XlaOp predicate) {
  return SumAll<int64_t>(::xla::ConvertElementType(predicate, ::xla::S64));
}

// CountFraction(count, of) of int64 scalars: float32(double(count) /
// double(of)), 0 when `of` is 0.
inline XlaOp CountFraction(XlaOp count, XlaOp of) {
  XlaBuilder* b = count.builder();
  const XlaOp ratio = ::xla::Div(::xla::ConvertElementType(count, ::xla::F64),
                                 ::xla::ConvertElementType(of, ::xla::F64));
  return ::xla::Select(::xla::Gt(of, Constant<int64_t>(b, 0)),
                       ::xla::ConvertElementType(ratio, ::xla::F32), Constant<float>(b, 0.0f));
}

}  // namespace hlo
}  // namespace kappa

#endif  // KAPPA_OPS_XLA_FIXED_POINT_H_
