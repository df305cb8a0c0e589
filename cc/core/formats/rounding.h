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

// The modes' names, indexed by the enums' values: the C++ side's one table
// (tensorflow_kappa/core/fixed_point.py holds Python's; a test keeps them
// equal). The op attrs' allowed values (cc/ops/attrs.h) and the NumPy
// binding's mode names are built from it, and DispatchModes instantiates
// every entry.
inline constexpr const char* kRoundingNames[] = {"nearest_even", "nearest_away", "truncate",
                                                 "toward_zero", "stochastic"};
inline constexpr const char* kOverflowNames[] = {"saturate", "wrap"};
inline constexpr int kRoundingCount = sizeof(kRoundingNames) / sizeof(kRoundingNames[0]);
inline constexpr int kOverflowCount = sizeof(kOverflowNames) / sizeof(kOverflowNames[0]);
static_assert(kRoundingCount == static_cast<int>(Rounding::kStochastic) + 1,
              "one name per rounding mode");
static_assert(kOverflowCount == static_cast<int>(Overflow::kWrap) + 1,
              "one name per overflow mode");

inline const char* RoundingName(Rounding r) { return kRoundingNames[static_cast<int>(r)]; }
inline const char* OverflowName(Overflow o) { return kOverflowNames[static_cast<int>(o)]; }

// The index of `name` in a table of names (kRoundingNames, kOverflowNames),
// or -1: how a mode given by name becomes its enum value.
template <int N>
inline int ModeIndex(const char* name, const char* const (&names)[N]) {
  for (int i = 0; i < N; ++i) {
    const char* a = name;
    const char* b = names[i];
    while (*a != '\0' && *a == *b) {
      ++a;
      ++b;
    }
    if (*a == *b) return i;
  }
  return -1;
}

// Every mode of a table in its order, as a range:
// for (Rounding r : kRoundings) ...
template <typename Mode, int N>
struct ModeList {
  Mode modes[N];
  constexpr const Mode* begin() const { return modes; }
  constexpr const Mode* end() const { return modes + N; }
};

template <typename Mode, int N>
constexpr ModeList<Mode, N> ListModes() {
  ModeList<Mode, N> list{};
  for (int i = 0; i < N; ++i) list.modes[i] = static_cast<Mode>(i);
  return list;
}

inline constexpr ModeList<Rounding, kRoundingCount> kRoundings =
    ListModes<Rounding, kRoundingCount>();
inline constexpr ModeList<Overflow, kOverflowCount> kOverflows =
    ListModes<Overflow, kOverflowCount>();

// The two modes of a quantizer as a type: DispatchModes passes a value of
// Modes<R, O> to its callback, which reads them as constants.
template <Rounding R, Overflow O>
struct Modes {
  static constexpr Rounding rounding = R;
  static constexpr Overflow overflow = O;
};

// Calls f(Modes<R, O>{}) for the run-time modes (r, o), walking the tables:
// f is instantiated for every (rounding, overflow) pair of the tables, so
// kernels are instantiated (and vectorised) once per mode pair, and an
// implementation reached through here that lacks a mode of the tables does
// not compile (RoundScaled and OverflowCode end in a static_assert). Values
// outside the tables (which the op attrs and the binding reject) call
// nothing.
template <int kR = 0, int kO = 0, typename F>
inline void DispatchModes(Rounding r, Overflow o, F&& f) {
  if constexpr (kR < kRoundingCount) {
    if (static_cast<int>(r) != kR) {
      DispatchModes<kR + 1, 0>(r, o, f);
    } else if constexpr (kO < kOverflowCount) {
      if (static_cast<int>(o) != kO) {
        DispatchModes<kR, kO + 1>(r, o, f);
      } else {
        f(Modes<static_cast<Rounding>(kR), static_cast<Overflow>(kO)>{});
      }
    }
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
    const C frac = w - f;  // frac(w) as C holds it (rounded, see docs/rounding.md)
    const C u = UniformFromBits<C>(RandomBits(key, index));
    return u < frac ? f + C(1) : f;
  }
}

}  // namespace kappa

#endif  // KAPPA_CORE_FORMATS_ROUNDING_H_
