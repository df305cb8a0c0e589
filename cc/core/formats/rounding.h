// The rounding and overflow modes: their table (enums and names), and the
// rounding of a scaled value, for the host and the device.
//
// docs/rounding.md is the one written specification of every mode; each
// implementation (these functors, the XLA lowering, the pure-TensorFlow twin,
// the NumPy binding and the tests' references) follows it.
#ifndef KAPPA_CORE_FORMATS_ROUNDING_H_
#define KAPPA_CORE_FORMATS_ROUNDING_H_

#include <cstdint>

#include "cc/core/formats/float_math.h"
#include "cc/core/formats/random.h"

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

// Rounds the scaled value v = x * 2^k (k: the format's scale exponent) to an
// integer-valued C by the mode R. x is passed for its sign; `index` (the
// element's flat index) and `key` feed stochastic rounding only.
template <Rounding R, typename C>
KAPPA_HD C RoundScaled(C v, C x, RandomKey key, uint64_t index) {
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
    const C u = UniformFromBits<C>(RandomBits(key, index));
    return u < frac ? f + C(1) : f;
  }
}

}  // namespace kappa

#endif  // KAPPA_CORE_FORMATS_ROUNDING_H_
