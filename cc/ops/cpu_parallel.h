// Adapts TensorFlow's intra-op thread pool to kappa::ParallelFor.
#ifndef KAPPA_OPS_CPU_PARALLEL_H_
#define KAPPA_OPS_CPU_PARALLEL_H_

#include "cc/core/parallel.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/threadpool.h"

namespace kappa {

inline ParallelFor IntraOpParallelFor(::tensorflow::OpKernelContext* ctx) {
  ::tensorflow::thread::ThreadPool* pool =
      ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [pool](int64_t total, int64_t cost_per_unit,
                const std::function<void(int64_t, int64_t)>& work) {
    if (total <= 0) return;
    pool->ParallelFor(total, cost_per_unit, work);
  };
}

}  // namespace kappa

#endif  // KAPPA_OPS_CPU_PARALLEL_H_
