// The one C++ timing loop: the median of repeated timings of a call, with the
// clock as a parameter (the CPU benchmark: SteadyClockMs; the GPU check: CUDA
// events, cc/gpu_check/device.h).
//
//   const double ms = kappa_bench::MedianMs(21, [&] { Work(); }, kappa_bench::SteadyClockMs{});
#ifndef KAPPA_BENCH_TIMING_H_
#define KAPPA_BENCH_TIMING_H_

#include <algorithm>
#include <chrono>
#include <vector>

namespace kappa_bench {

// Milliseconds that one call of run() takes, by std::chrono::steady_clock.
struct SteadyClockMs {
  template <typename Run>
  double operator()(Run& run) const {
    const auto start = std::chrono::steady_clock::now();
    run();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
  }
};

// The median of `repeats` (>= 1) timings of run() by time_ms(run) (milliseconds
// for one call), after one warm-up call whose timing is dropped.
template <typename Run, typename TimeMs>
double MedianMs(int repeats, Run&& run, TimeMs&& time_ms) {
  time_ms(run);
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) ms.push_back(time_ms(run));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace kappa_bench

#endif  // KAPPA_BENCH_TIMING_H_
