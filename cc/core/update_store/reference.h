// The scalar reference of the fused update, for the tests: update_store.h's
// per-element definition, one value at a time, with the quantization
// reference for both steps and the sums in long double.
#ifndef KAPPA_CORE_UPDATE_STORE_REFERENCE_H_
#define KAPPA_CORE_UPDATE_STORE_REFERENCE_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "cc/core/quantize/reference.h"
#include "cc/core/update_store/update_store.h"

namespace kappa {
namespace reference {

struct UpdateTotals {
  LD raw_sq = 0, actual_sq = 0, dot = 0, abs_dot = 0;
  int64_t nonzero = 0, underflow = 0, saturated = 0;
};

// raw = -lr * g (in T); delta = Q_u(raw) keyed by (s0, s1); sum = w + delta
// (in T); next = Q_s(sum) keyed by (s0, s1 ^ 0x2545F491); every value (lr, w,
// g, raw, sum) reads subnormals as signed zeros; the sums exactly enough in
// long double. Only UpdateConfig's plain fields are read from the functors'
// header.
template <typename T>
std::vector<T> Update(const std::vector<T>& w, const std::vector<T>& g, T lr,
                      const UpdateConfig& c, UpdateTotals* out) {
  std::vector<T> next(w.size());
  const LD hi = MaxValue(c.storage_format), lo = MinValue(c.storage_format);
  for (size_t i = 0; i < w.size(); ++i) {
    const T wi = Flush(w[i]);
    const T raw = Flush<T>(Flush(-lr) * Flush(g[i]));
    const T delta = c.has_update_format
                        ? Quantize<T>(raw, c.update_format, c.seed0, c.seed1, i)
                        : raw;
    const T sum = Flush<T>(wi + delta);
    next[i] = c.has_storage_format
                  ? Quantize<T>(sum, c.storage_format, c.seed0, c.seed1 ^ 0x2545F491, i)
                  : sum;
    const LD d = LD(static_cast<double>(next[i]) - static_cast<double>(wi));
    out->raw_sq += LD(raw) * LD(raw);
    out->actual_sq += d * d;
    out->dot += LD(raw) * d;
    out->abs_dot += std::fabs(LD(raw) * d);
    if (raw != 0 && !std::isnan(raw)) {
      ++out->nonzero;
      out->underflow += delta == 0;
    }
    if (c.has_storage_format) out->saturated += LD(sum) > hi || LD(sum) < lo;
  }
  return next;
}

}  // namespace reference
}  // namespace kappa

#endif  // KAPPA_CORE_UPDATE_STORE_REFERENCE_H_
