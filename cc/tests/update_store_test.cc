// UpdateStoreCpu against the scalar reference written from the definition
// (reference.h); every mode pair of the two optional formats; in place and out
// of place; thread-count independence of the (double) sums, bit for bit.
#include <vector>

#include "cc/core/update_store/reference.h"
#include "cc/core/update_store/update_store.h"
#include "cc/tests/check.h"
#include "cc/tests/test_util.h"

namespace kappa_test {
namespace {

using kappa::reference::UpdateTotals;

// Weights on and off the storage grid, gradients from tiny to huge.
template <typename T>
void MakeInputs(const FixedPointFormat& storage, size_t n, uint64_t seed,
                std::vector<T>* w, std::vector<T>* g) {
  *w = Inputs<T>(storage, n, seed);
  std::mt19937_64 rng(seed + 1);
  std::normal_distribution<double> normal(0.0, 1.0);
  g->resize(w->size());
  for (size_t i = 0; i < g->size(); ++i) {
    const int e = static_cast<int>(rng() % 24) - 16;
    (*g)[i] = static_cast<T>(std::ldexp(normal(rng), e));
  }
  // Keep the statistics finite: no NaN/Inf weights here (tested separately).
  for (T& v : *w) {
    if (!std::isfinite(v) || std::fabs(v) > T(1e6)) v = T(0.5);
  }
}

template <typename T>
void CheckCase(const kappa::UpdateConfig& c, T lr, uint64_t seed, bool in_place) {
  std::vector<T> w, g;
  MakeInputs<T>(c.storage_format, 1500, seed, &w, &g);
  UpdateTotals ref;
  const std::vector<T> want = kappa::reference::Update<T>(w, g, lr, c, &ref);
  std::vector<T> next(w.size());
  T* dst = in_place ? w.data() : next.data();
  const kappa::UpdateSums s = kappa::UpdateStoreCpu<T>(
      w.data(), dst, g.data(), lr, static_cast<int64_t>(w.size()), c, kappa::SerialFor);
  const std::string what = (c.has_update_format ? Describe(c.update_format) : "none") +
                           " / " +
                           (c.has_storage_format ? Describe(c.storage_format) : "none");
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!SameBits(dst[i], want[i]) && ++bad <= 3) {
      KAPPA_CHECK(false) << what << " element " << i << " got " << dst[i] << " want " << want[i];
    }
  }
  KAPPA_CHECK(bad == 0) << what << ": " << bad << " mismatched weights";
  KAPPA_CHECK(s.total == static_cast<int64_t>(w.size()) && s.nonzero_raw == ref.nonzero &&
              s.underflow == ref.underflow && s.saturated == ref.saturated)
      << what << " counts " << s.nonzero_raw << "/" << ref.nonzero << " " << s.underflow
      << "/" << ref.underflow << " " << s.saturated << "/" << ref.saturated;
  // Double sums of n terms: |error| <= n * 2^-53 * sum of |terms| (plus the
  // reference's own, far smaller, long double error).
  const LD tol = LD(w.size()) * std::ldexp(LD(1), -52);
  KAPPA_CHECK(std::fabs(LD(s.raw_sq) - ref.raw_sq) <= tol * ref.raw_sq) << what;
  KAPPA_CHECK(std::fabs(LD(s.actual_sq) - ref.actual_sq) <= tol * ref.actual_sq) << what;
  KAPPA_CHECK(std::fabs(LD(s.dot) - ref.dot) <= tol * ref.abs_dot) << what << " dot "
      << s.dot << " vs " << static_cast<double>(ref.dot);
}

template <typename T>
void CheckAllModes() {
  int seed = 0;
  std::vector<std::pair<bool, FixedPointFormat>> formats = {{false, Format(8, 0, true)}};
  for (Rounding r : kRoundings) {
    for (Overflow o : kOverflows) formats.push_back({true, Format(8, 6, true, r, o)});
  }
  for (const auto& [has_u, uf] : formats) {
    for (const auto& [has_s, sf0] : formats) {
      kappa::UpdateConfig c;
      c.has_update_format = has_u;
      c.update_format = Format(10, 14, true, uf.rounding, uf.overflow);
      c.has_storage_format = has_s;
      c.storage_format = sf0;
      c.seed0 = 77 + seed;
      c.seed1 = -3;
      CheckCase<T>(c, T(0.375), seed, seed % 2 == 0);
      ++seed;
    }
  }
  // Formats of other widths and signedness.
  for (const FixedPointFormat& sf : Formats<T>(Rounding::kStochastic, Overflow::kSaturate)) {
    kappa::UpdateConfig c;
    c.has_update_format = true;
    c.update_format = Format(6, sf.frac_bits + 3, true, Rounding::kNearestAway);
    if (!Fits<T>(c.update_format)) continue;
    c.has_storage_format = true;
    c.storage_format = sf;
    CheckCase<T>(c, T(0.01), seed++, true);
  }
}

KAPPA_TEST(UpdateFloatMatchesReference) { CheckAllModes<float>(); }
KAPPA_TEST(UpdateDoubleMatchesReference) { CheckAllModes<double>(); }

KAPPA_TEST(UpdateStatsFromSums) {
  // Hand-made: w = {1, 1, 1}, g = {1, 0, 1e-6}, lr = 0.5, update s8.4 nearest,
  // storage s8.4: raw = {-0.5, 0, -5e-7}; delta = {-0.5, 0, 0} (underflow 1 of
  // 2 nonzero); next = {0.5, 1, 1}; actual = {-0.5, 0, 0}.
  kappa::UpdateConfig c;
  c.has_update_format = c.has_storage_format = true;
  c.update_format = c.storage_format = Format(8, 4, true);
  std::vector<float> w = {1, 1, 1}, g = {1, 0, 1e-6f};
  const kappa::UpdateSums s =
      kappa::UpdateStoreCpu<float>(w.data(), w.data(), g.data(), 0.5f, 3, c, kappa::SerialFor);
  KAPPA_CHECK(w[0] == 0.5f && w[1] == 1.0f && w[2] == 1.0f);
  const kappa::UpdateStats t = kappa::StatsFromSums(s);
  const double raw_sq = 0.25 + static_cast<double>(-0.5f * 1e-6f) * static_cast<double>(-0.5f * 1e-6f);
  KAPPA_CHECK(t.raw_update_norm == static_cast<float>(std::sqrt(raw_sq)));
  KAPPA_CHECK(t.actual_update_norm == 0.5f && t.update_dot == 0.25f);
  KAPPA_CHECK(t.update_underflow_fraction == 0.5f && t.storage_saturation_fraction == 0.0f);
}

KAPPA_TEST(UpdateSaturationAndNoNonzero) {
  kappa::UpdateConfig c;
  c.has_storage_format = true;
  c.storage_format = Format(4, 0, true);  // rails -8, 7
  std::vector<float> w = {7, -8, 0, 6}, g = {-2, 2, 0, -1};
  const kappa::UpdateSums s =
      kappa::UpdateStoreCpu<float>(w.data(), w.data(), g.data(), 1.0f, 4, c, kappa::SerialFor);
  KAPPA_CHECK(w[0] == 7 && w[1] == -8 && w[2] == 0 && w[3] == 7);
  const kappa::UpdateStats t = kappa::StatsFromSums(s);
  KAPPA_CHECK(t.storage_saturation_fraction == 0.5f);
  KAPPA_CHECK(t.update_underflow_fraction == 0.0f);  // no update format
  std::vector<float> z(5, 0.0f);
  const kappa::UpdateStats e = kappa::StatsFromSums(
      kappa::UpdateStoreCpu<float>(z.data(), z.data(), z.data(), 1.0f, 5, c, kappa::SerialFor));
  KAPPA_CHECK(e.update_underflow_fraction == 0.0f && e.raw_update_norm == 0.0f);
  const kappa::UpdateStats none = kappa::StatsFromSums(
      kappa::UpdateStoreCpu<float>(nullptr, nullptr, nullptr, 1.0f, 0, c, kappa::SerialFor));
  KAPPA_CHECK(none.storage_saturation_fraction == 0.0f && none.actual_update_norm == 0.0f);
}

KAPPA_TEST(UpdateIndependentOfThreads) {
  kappa::UpdateConfig c;
  c.has_update_format = c.has_storage_format = true;
  c.update_format = Format(8, 12, true, Rounding::kStochastic);
  c.storage_format = Format(8, 6, true, Rounding::kNearestEven);
  c.seed0 = 5;
  std::vector<float> w0, g;
  MakeInputs<float>(c.storage_format, 400000, 21, &w0, &g);
  const int64_t n = static_cast<int64_t>(w0.size());
  std::vector<float> serial = w0;
  const kappa::UpdateSums s = kappa::UpdateStoreCpu<float>(
      serial.data(), serial.data(), g.data(), 0.1f, n, c, kappa::SerialFor);
  for (int threads : {2, 3, 8}) {
    std::vector<float> w = w0;
    const kappa::UpdateSums t = kappa::UpdateStoreCpu<float>(
        w.data(), w.data(), g.data(), 0.1f, n, c, ShuffledThreads(threads, 100 + threads));
    KAPPA_CHECK(std::memcmp(&s, &t, sizeof(s)) == 0) << "threads=" << threads;
    KAPPA_CHECK(std::memcmp(w.data(), serial.data(), w.size() * sizeof(float)) == 0);
  }
}

// Subnormal weights, gradients and learning rates read as signed zeros,
// also where a large learning rate would lift a subnormal gradient's
// product into the normal range.
KAPPA_TEST(UpdateSubnormalInputsAreZeros) {
  const float den = std::numeric_limits<float>::denorm_min();
  for (float lr : {1e30f, 0.5f, den}) {
    kappa::UpdateConfig c;
    std::vector<float> w = {den, -den, 1.0f, 3.0f}, g = {1000 * den, 1.0f, -den, 2.0f};
    UpdateTotals ref;
    const std::vector<float> want = kappa::reference::Update<float>(w, g, lr, c, &ref);
    const kappa::UpdateSums s =
        kappa::UpdateStoreCpu<float>(w.data(), w.data(), g.data(), lr, 4, c, kappa::SerialFor);
    for (int i = 0; i < 4; ++i) KAPPA_CHECK(SameBits(w[i], want[i])) << "lr=" << lr << " i=" << i;
    KAPPA_CHECK(s.nonzero_raw == ref.nonzero) << lr;
  }
  std::vector<float> w = {den}, g = {1000 * den};
  kappa::UpdateStoreCpu<float>(w.data(), w.data(), g.data(), 1e30f, 1, kappa::UpdateConfig(),
                               kappa::SerialFor);
  KAPPA_CHECK(w[0] == 0.0f) << w[0];
}

KAPPA_TEST(UpdateNaNPropagatesToNorms) {
  kappa::UpdateConfig c;
  std::vector<float> w = {1, 2}, g = {std::numeric_limits<float>::quiet_NaN(), 1};
  const kappa::UpdateSums s =
      kappa::UpdateStoreCpu<float>(w.data(), w.data(), g.data(), 1.0f, 2, c, kappa::SerialFor);
  KAPPA_CHECK(std::isnan(s.raw_sq) && std::isnan(s.actual_sq) && s.nonzero_raw == 1);
}

}  // namespace
}  // namespace kappa_test

KAPPA_TEST_MAIN()
