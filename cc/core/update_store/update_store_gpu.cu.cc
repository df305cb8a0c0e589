// The CUDA functors of Kappa>UpdateQuantizeStore (kernels and their host
// code: see cc/core/gpu_launch.h for the three ways this file is compiled).
#include "cc/core/gpu_launch.h"
#include "cc/core/gpu_reduce.h"
#include "cc/core/update_store/update_store.h"

namespace kappa {
namespace {

constexpr int kUnroll = 4;

template <typename T>
struct UpdateParams {
  const T* old;
  T* next;
  const T* grad;
  const T* lr;
  int64_t n;
  Quantizer<T> qu;
  Quantizer<T> qs;
  Rails<T> rails;
  UpdateSums* partial;
};

struct UpdateFinishParams {
  const UpdateSums* partial;
  int blocks;
  UpdateSums* total;
  UpdateStatsOutputs out;
};

#if defined(__CUDACC__)
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
__global__ void __launch_bounds__(kThreadsPerBlock) UpdateKernel(UpdateParams<T> p) {
  const T* old = p.old;
  T* next = p.next;
  const T* grad = p.grad;
  const int64_t n = p.n;
  const Quantizer<T>& qu = p.qu;
  const Quantizer<T>& qs = p.qs;
  const Rails<T>& rails = p.rails;
  const T neg_lr = FlushSubnormal(-*p.lr);
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
  if (threadIdx.x == 0) p.partial[blockIdx.x] = s;
}

// One block adds the partials in a fixed order and writes the results. (T
// only names the instantiation alongside UpdateKernel's.)
template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock) UpdateFinishKernel(UpdateFinishParams p) {
  UpdateSums s;
  for (int k = threadIdx.x; k < p.blocks; k += blockDim.x) s += p.partial[k];
  s = BlockSum(s);
  if (threadIdx.x == 0) {
    *p.total = s;
    const UpdateStats stats = StatsFromSums(s);
    *p.out.raw_update_norm = stats.raw_update_norm;
    *p.out.actual_update_norm = stats.actual_update_norm;
    *p.out.update_dot = stats.update_dot;
    *p.out.update_underflow_fraction = stats.update_underflow_fraction;
    *p.out.storage_saturation_fraction = stats.storage_saturation_fraction;
  }
}
#endif

}  // namespace

#if !defined(__CUDACC_RTC__)
#if !defined(__CUDACC__)
template <bool kOn, Rounding R, Overflow O>
struct KernelArgName<Step<kOn, R, O>> {
  static std::string Get() {
    return std::string("kappa::Step<") + (kOn ? "true" : "false") + ",(kappa::Rounding)" +
           std::to_string(static_cast<int>(R)) + ",(kappa::Overflow)" +
           std::to_string(static_cast<int>(O)) + ">";
  }
};
#endif

int64_t UpdateStoreGpuScratchBytes(int64_t n) {
  return (MaxGridFor(n) + 1) * static_cast<int64_t>(sizeof(UpdateSums));
}

template <typename T>
const char* UpdateStoreGpu(const T* old, T* next, const T* grad, const T* lr,
                           int64_t n, const UpdateConfig& config, void* scratch,
                           const UpdateStatsOutputs& outputs, void* stream) {
  const int grid = GridSizeFor(n, stream);
  if (n / (static_cast<int64_t>(grid) * kThreadsPerBlock) >= (int64_t{1} << 31)) {
    return "tensor too large for 32-bit per-thread counters";
  }
  UpdateSums* total = static_cast<UpdateSums*>(scratch);
  UpdateSums* partial = total + 1;
  if (n > 0) {
    const Quantizer<T> qu = MakeQuantizer<T>(config.update_format, config.seed0, config.seed1);
    const Quantizer<T> qs = MakeQuantizer<T>(config.storage_format, config.seed0,
                                             config.seed1 ^ kStorageSeedXor);
    const UpdateParams<T> params{old, next, grad, lr, n, qu, qs,
                                 MakeRails<T>(config.storage_format), partial};
    const char* error = nullptr;
    DispatchSteps(config, [&](auto u, auto st) {
      error = KAPPA_GPU_LAUNCH(UpdateKernel, (decltype(u), decltype(st), T), grid, stream,
                               params);
    });
    if (error) return error;
  }
  const UpdateFinishParams finish{partial, n > 0 ? grid : 0, total, outputs};
  return KAPPA_GPU_LAUNCH(UpdateFinishKernel, (T), 1, stream, finish);
}

template const char* UpdateStoreGpu<float>(const float*, float*, const float*,
                                           const float*, int64_t,
                                           const UpdateConfig&, void*,
                                           const UpdateStatsOutputs&, void*);
template const char* UpdateStoreGpu<double>(const double*, double*,
                                            const double*, const double*,
                                            int64_t, const UpdateConfig&, void*,
                                            const UpdateStatsOutputs&, void*);
#endif

}  // namespace kappa
