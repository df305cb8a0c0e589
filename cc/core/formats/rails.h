// The rails of a format as thresholds that the ops' statistics compare
// values with, reading every value through FlushSubnormal; the statistics'
// fractions. Format-independent: a format makes its Rails (fixed_point.h:
// MakeRails).
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
#ifndef KAPPA_CORE_FORMATS_RAILS_H_
#define KAPPA_CORE_FORMATS_RAILS_H_

#include <cmath>
#include <cstdint>
#include <limits>

#include "cc/core/formats/float_math.h"

namespace kappa {

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

// The rails min_value and max_value of a format, adjusted for flushed
// comparisons.
template <typename C>
struct Rails {
  C low;   // x < low: below min_value
  C high;  // x > high: above max_value
};

// x lies beyond the rails: saturating would change it.
template <typename C>
KAPPA_HD bool BeyondRails(C x, const Rails<C>& r) {
  return (x > r.high) | (x < r.low);
}

// count / of as float32, through double; 0 when `of` is 0 (the statistics'
// fractions).
KAPPA_HD float CountFraction(int64_t count, int64_t of) {
  return of > 0 ? static_cast<float>(static_cast<double>(count) /
                                     static_cast<double>(of))
                : 0.0f;
}

}  // namespace kappa

#endif  // KAPPA_CORE_FORMATS_RAILS_H_
