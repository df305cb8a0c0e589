#include "cc/core/gpu_launch.h"
#include "cc/core/gpu_reduce.h"
#include "cc/core/update_store/update_store.h"

namespace kappa {
namespace {

constexpr int kUnroll = 4;

// Per-thread partial sums of the elements' statistics (32-bit counts: a
// thread sees at most n / (grid * 256) elements).
struct ThreadSums {
  double raw_sq = 0.0, actual_sq = 0.0, dot = 0.0;
  uint32_t nonzero = 0, underflow = 0, saturated = 0;
};

template <typename U, typename S, typename T>
__device__ __forceinline__ T UpdateOne(T w, T g, T neg_lr, const Quantizer<T>& qu,
                                       const Quantizer<T>& qs, const Rails<T>& rails,
                                       int64_t i, ThreadSums& t) {
  const UpdateElement<T> e =
      UpdateValue<U, S>(w, g, neg_lr, qu, qs, static_cast<uint64_t>(i));
  const double r = static_cast<double>(e.raw);
  const double d = static_cast<double>(e.next) - static_cast<double>(e.w);
  t.raw_sq += r * r;
  t.actual_sq += d * d;
  t.dot += r * d;
  const bool nz = IsNonzeroNumber(e.raw);
  t.nonzero += nz;
  t.underflow += nz & (e.delta == T(0));
  if constexpr (S::on) t.saturated += BeyondRails(e.sum, rails);
  return e.next;
}

// Grid-stride update (each element read, then written, by one thread: old ==
// next is fine), per-thread sums in a fixed order, a block sum, one partial
// per block.
template <typename U, typename S, typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    UpdateKernel(const T* old, T* next, const T* grad, const T* lr, int64_t n,
                 Quantizer<T> qu, Quantizer<T> qs, Rails<T> rails,
                 UpdateSums* partial) {
  const T neg_lr = FlushSubnormal(-*lr);
  ThreadSums t;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t i = start;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    T w[kUnroll], g[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      w[u] = old[i + u * stride];
      g[u] = grad[i + u * stride];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      next[i + u * stride] =
          UpdateOne<U, S>(w[u], g[u], neg_lr, qu, qs, rails, i + u * stride, t);
    }
  }
  for (; i < n; i += stride) {
    next[i] = UpdateOne<U, S>(old[i], grad[i], neg_lr, qu, qs, rails, i, t);
  }
  UpdateSums s;
  s.raw_sq = t.raw_sq;
  s.actual_sq = t.actual_sq;
  s.dot = t.dot;
  s.total = GridStrideCount(start, stride, n);
  s.nonzero_raw = t.nonzero;
  s.underflow = t.underflow;
  s.saturated = t.saturated;
  s = BlockSum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// One block adds the partials in a fixed order and writes the results.
__global__ void __launch_bounds__(kThreadsPerBlock)
    UpdateFinishKernel(const UpdateSums* partial, int blocks, UpdateSums* total,
                       UpdateStatsOutputs out) {
  UpdateSums s;
  for (int k = threadIdx.x; k < blocks; k += blockDim.x) s += partial[k];
  s = BlockSum(s);
  if (threadIdx.x == 0) {
    *total = s;
    const UpdateStats stats = StatsFromSums(s);
    *out.raw_update_norm = stats.raw_update_norm;
    *out.actual_update_norm = stats.actual_update_norm;
    *out.update_dot = stats.update_dot;
    *out.update_underflow_fraction = stats.update_underflow_fraction;
    *out.storage_saturation_fraction = stats.storage_saturation_fraction;
  }
}

}  // namespace

int64_t UpdateStoreGpuScratchBytes(int64_t n) {
  return static_cast<int64_t>(GridSizeFor(n) + 1) *
         static_cast<int64_t>(sizeof(UpdateSums));
}

template <typename T>
const char* UpdateStoreGpu(const T* old, T* next, const T* grad, const T* lr,
                           int64_t n, const UpdateConfig& config, void* scratch,
                           const UpdateStatsOutputs& outputs, void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int grid = GridSizeFor(n);
  if (n / (static_cast<int64_t>(grid) * kThreadsPerBlock) >= (int64_t{1} << 31)) {
    return "tensor too large for 32-bit per-thread counters";
  }
  UpdateSums* total = static_cast<UpdateSums*>(scratch);
  UpdateSums* partial = total + 1;
  if (n > 0) {
    const Quantizer<T> qu = MakeQuantizer<T>(config.update_format, config.seed0, config.seed1);
    const Quantizer<T> qs = MakeQuantizer<T>(config.storage_format, config.seed0,
                                             config.seed1 ^ kStorageSeedXor);
    const Rails<T> rails = MakeRails<T>(config.storage_format);
    DispatchSteps(config, [&](auto u, auto st) {
      UpdateKernel<decltype(u), decltype(st), T><<<grid, kThreadsPerBlock, 0, s>>>(
          old, next, grad, lr, n, qu, qs, rails, partial);
    });
  }
  UpdateFinishKernel<<<1, kThreadsPerBlock, 0, s>>>(partial, n > 0 ? grid : 0, total, outputs);
  return LaunchError();
}

template const char* UpdateStoreGpu<float>(const float*, float*, const float*,
                                           const float*, int64_t,
                                           const UpdateConfig&, void*,
                                           const UpdateStatsOutputs&, void*);
template const char* UpdateStoreGpu<double>(const double*, double*,
                                            const double*, const double*,
                                            int64_t, const UpdateConfig&, void*,
                                            const UpdateStatsOutputs&, void*);

}  // namespace kappa
