// How CPU functors are parallelised without depending on TensorFlow.
//
// A functor receives a ParallelFor and splits its work into a fixed number of
// blocks that does not depend on the thread count; the op layer passes
// TensorFlow's intra-op thread pool, tests pass SerialFor. Reductions combine
// per-block partial results in block order, so results are identical whatever
// the number of threads.
#ifndef KAPPA_CORE_PARALLEL_H_
#define KAPPA_CORE_PARALLEL_H_

#include <cstdint>
#include <functional>

namespace kappa {

// Runs work(begin, end) over disjoint ranges covering [0, total), possibly
// concurrently. cost_per_unit is a rough cycle count per unit of work, used
// by the thread pool to choose how finely to split.
using ParallelFor = std::function<void(
    int64_t total, int64_t cost_per_unit,
    const std::function<void(int64_t begin, int64_t end)>& work)>;

inline void SerialFor(int64_t total, int64_t /*cost_per_unit*/,
                      const std::function<void(int64_t, int64_t)>& work) {
  if (total > 0) work(0, total);
}

}  // namespace kappa

#endif  // KAPPA_CORE_PARALLEL_H_
