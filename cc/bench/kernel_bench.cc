// Throughput of the CPU functors on 2^24 float32 elements, next to memcpy and
// a plain sum (the machine's copy and read bandwidth), on
// std::thread::hardware_concurrency() threads. Prints medians over the
// repeats; quick by default (a test that only has to run), more repeats and
// every mode with --long:
//   bazel test //cc/bench:kernel_bench --config=long_bench
//   bazel run //cc/bench:kernel_bench -- --long
// Not a timed test: it fails only if a functor's result is inconsistent.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cc/bench/timing.h"
#include "cc/core/cpu_dispatch.h"
#include "cc/core/quantize/quantize.h"
#include "cc/core/rail_stats/rail_stats.h"
#include "cc/core/thread_parallel.h"
#include "cc/core/update_store/update_store.h"
#include "cc/tests/test_util.h"

namespace {

using kappa_test::Format;
using kappa_bench::MedianMs;
constexpr kappa_bench::SteadyClockMs kClock;

void Row(const std::string& name, double ms, double bytes) {
  std::printf("%-44s %9.2f ms %8.2f GB/s\n", name.c_str(), ms, bytes / ms / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  bool long_mode = false;
  for (int i = 1; i < argc; ++i) long_mode |= std::string(argv[i]) == "--long";
  const int64_t n = int64_t{1} << 24;
  const int repeats = long_mode ? 21 : 3;
  const int threads = std::max(1u, std::thread::hardware_concurrency());
  const kappa::ParallelFor pf = kappa::ThreadParallelFor(threads);
  std::printf("kernel_bench: %lld float32 elements, %d threads, median of %d%s\n",
              static_cast<long long>(n), threads, repeats, long_mode ? " (--long)" : "");
#if KAPPA_CPU_DISPATCH
  std::printf("CPU path: %s (portable build, chosen at run time)\n",
              kappa::CpuPathName(kappa::ActiveCpuPath()));
#else
  std::printf("CPU path: one (built without run-time dispatch)\n");
#endif

  std::vector<float> x(n), y(n), w(n), g(n);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = normal(rng) * 4.0f;
    g[i] = normal(rng) * 1e-2f;
    w[i] = normal(rng);
  }
  const double b = static_cast<double>(n) * sizeof(float);

  Row("memcpy (read + write)", MedianMs(repeats, [&] {
        pf(64, 1, [&](int64_t b0, int64_t b1) {
          std::memcpy(y.data() + n * b0 / 64, x.data() + n * b0 / 64,
                      static_cast<size_t>(n * (b1 - b0) / 64) * sizeof(float));
        });
      }, kClock), 2 * b);
  volatile double sink = 0;
  Row("sum (read)", MedianMs(repeats, [&] {
        std::vector<double> part(64);
        pf(64, 1, [&](int64_t b0, int64_t b1) {
          for (int64_t k = b0; k < b1; ++k) {
            float s[16] = {};
            for (int64_t i = n * k / 64; i < n * (k + 1) / 64; i += 16)
              for (int j = 0; j < 16; ++j) s[j] += x[i + j];
            for (int j = 0; j < 16; ++j) part[k] += s[j];
          }
        });
        sink = part[0];
      }, kClock), b);

  std::vector<kappa::Rounding> roundings = {kappa::Rounding::kNearestEven,
                                            kappa::Rounding::kStochastic};
  if (long_mode) {
    roundings = std::vector<kappa::Rounding>(std::begin(kappa_test::kRoundings),
                                             std::end(kappa_test::kRoundings));
  }
  for (kappa::Rounding r : roundings) {
    const kappa::FixedPointFormat f = Format(8, 4, true, r);
    Row(std::string("quantize s8.4 ") + kappa::RoundingName(r), MedianMs(repeats, [&] {
          kappa::QuantizeCpu<float>(x.data(), y.data(), n, f, 1, 2, pf);
        }, kClock), 2 * b);
  }
  Row("quantize s8.4 nearest_even (in place)", MedianMs(repeats, [&] {
        kappa::QuantizeCpu<float>(y.data(), y.data(), n, Format(8, 4, true), 1, 2, pf);
      }, kClock), 2 * b);

  kappa::RailCounts counts{};
  Row("rail_stats s8.4", MedianMs(repeats, [&] {
        counts = kappa::RailStatsCpu<float>(x.data(), n, Format(8, 4, true), 0.9, pf);
      }, kClock), b);
  const kappa::RailCounts serial =
      kappa::RailStatsCpu<float>(x.data(), n, Format(8, 4, true), 0.9, kappa::SerialFor);
  int failed = std::memcmp(&serial, &counts, sizeof(counts)) != 0;

  struct Case {
    const char* name;
    bool u, s;
    kappa::Rounding ru, rs;
  };
  std::vector<Case> cases = {
      {"update none/none", false, false, {}, {}},
      {"update s8.12/s8.6 nearest_even", true, true, kappa::Rounding::kNearestEven,
       kappa::Rounding::kNearestEven},
      {"update s8.12 stochastic/s8.6 nearest_even", true, true, kappa::Rounding::kStochastic,
       kappa::Rounding::kNearestEven},
  };
  if (long_mode) {
    cases.push_back({"update s8.12 stochastic/s8.6 stochastic", true, true,
                     kappa::Rounding::kStochastic, kappa::Rounding::kStochastic});
    cases.push_back({"update none/s8.6 nearest_even", false, true, {},
                     kappa::Rounding::kNearestEven});
  }
  for (const Case& c : cases) {
    kappa::UpdateConfig config;
    config.has_update_format = c.u;
    config.update_format = Format(8, 12, true, c.ru);
    config.has_storage_format = c.s;
    config.storage_format = Format(8, 6, true, c.rs);
    config.seed0 = 3;
    Row(c.name, MedianMs(repeats, [&] {
          kappa::UpdateStoreCpu<float>(w.data(), w.data(), g.data(), 1e-3f, n, config, pf);
        }, kClock), 3 * b);
  }
  (void)sink;
  return failed;
}
