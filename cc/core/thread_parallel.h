// A kappa::ParallelFor on plain std::threads, for callers without a thread
// pool of their own (the NumPy binding, the kernel benchmark).
//
// The functors split their work into a fixed number of blocks whatever the
// ParallelFor does (parallel.h), so results do not depend on the number of
// threads used here, nor on which thread runs which part. Threads are started per call and joined before it
// returns: no state outlives a call, and nothing runs after the caller's
// buffers go away.
#ifndef KAPPA_CORE_THREAD_PARALLEL_H_
#define KAPPA_CORE_THREAD_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "cc/core/parallel.h"

namespace kappa {

// Work below this many cycles (about 0.1 ms) per extra thread is not worth
// starting one for.
constexpr int64_t kMinCostPerThread = int64_t{1} << 18;

// How many threads ThreadParallelFor uses for `total` units of
// `cost_per_unit` cycles each: at most `max_threads` and `total`, and few
// enough that each gets kMinCostPerThread cycles (at least one).
inline int ThreadCount(int max_threads, int64_t total, int64_t cost_per_unit) {
  const int64_t by_cost = total * std::max<int64_t>(cost_per_unit, 1) / kMinCostPerThread;
  const int64_t count = std::min<int64_t>({max_threads, total, std::max<int64_t>(by_cost, 1)});
  return static_cast<int>(std::max<int64_t>(count, 1));
}

// Chunks of work per thread: threads take chunks from a shared counter, so
// that a thread the OS holds back (on a machine shared with other work)
// delays the call by one chunk, not by a whole thread's share.
constexpr int64_t kChunksPerThread = 4;

// Runs work over [0, total) on ThreadCount(...) threads (the calling thread
// is one of them), in up to kChunksPerThread contiguous chunks per thread.
inline ParallelFor ThreadParallelFor(int max_threads) {
  return [max_threads](int64_t total, int64_t cost_per_unit,
                       const std::function<void(int64_t, int64_t)>& work) {
    if (total <= 0) return;
    const int t = ThreadCount(max_threads, total, cost_per_unit);
    if (t == 1) {
      work(0, total);
      return;
    }
    const int64_t chunks = std::min<int64_t>(total, t * kChunksPerThread);
    std::atomic<int64_t> next{0};
    const auto run = [&] {
      for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
        work(total * c / chunks, total * (c + 1) / chunks);
      }
    };
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(t - 1));
    for (int k = 1; k < t; ++k) pool.emplace_back(run);
    run();
    for (std::thread& th : pool) th.join();
  };
}

}  // namespace kappa

#endif  // KAPPA_CORE_THREAD_PARALLEL_H_
