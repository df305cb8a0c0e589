#include "cc/kernels/gpu_launch.h"
#include "cc/kernels/gpu_reduce.h"
#include "cc/kernels/update_store.h"

namespace kappa {
namespace {

constexpr int kUnroll = 4;

// Per-thread partial sums of one element's statistics.
struct ThreadSums {
  double raw_sq = 0.0, actual_sq = 0.0, dot = 0.0;
  uint32_t nonzero = 0, underflow = 0, saturated = 0;
};

template <typename U, typename S, typename T>
__device__ __forceinline__ T UpdateOne(T w, T g, T neg_lr, const Quantizer<T>& qu,
                                       const Quantizer<T>& qs,
                                       const RailBounds<T>& rails, int64_t i,
                                       ThreadSums& t) {
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
                 Quantizer<T> qu, Quantizer<T> qs, RailBounds<T> rails,
                 UpdateSums* partial) {
  __shared__ double shared_d[kThreadsPerBlock / 32];
  __shared__ long long shared_i[kThreadsPerBlock / 32];
  const T neg_lr = FlushSubnormal(-*lr);
  ThreadSums t;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
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
  const double raw_sq = BlockSum(t.raw_sq, shared_d);
  const double actual_sq = BlockSum(t.actual_sq, shared_d);
  const double dot = BlockSum(t.dot, shared_d);
  const long long nonzero = BlockSum<long long>(t.nonzero, shared_i);
  const long long underflow = BlockSum<long long>(t.underflow, shared_i);
  const long long saturated = BlockSum<long long>(t.saturated, shared_i);
  if (threadIdx.x == 0) {
    UpdateSums s;
    s.raw_sq = raw_sq;
    s.actual_sq = actual_sq;
    s.dot = dot;
    s.nonzero_raw = nonzero;
    s.underflow = underflow;
    s.saturated = saturated;
    partial[blockIdx.x] = s;
  }
}

// One block adds the partials in a fixed order and writes the results.
__global__ void __launch_bounds__(kThreadsPerBlock)
    UpdateFinishKernel(const UpdateSums* partial, int blocks, int64_t n,
                       UpdateSums* total, UpdateStatsOutputs out) {
  __shared__ double shared_d[kThreadsPerBlock / 32];
  __shared__ long long shared_i[kThreadsPerBlock / 32];
  double raw_sq = 0.0, actual_sq = 0.0, dot = 0.0;
  long long nonzero = 0, underflow = 0, saturated = 0;
  for (int k = threadIdx.x; k < blocks; k += blockDim.x) {
    raw_sq += partial[k].raw_sq;
    actual_sq += partial[k].actual_sq;
    dot += partial[k].dot;
    nonzero += partial[k].nonzero_raw;
    underflow += partial[k].underflow;
    saturated += partial[k].saturated;
  }
  raw_sq = BlockSum(raw_sq, shared_d);
  actual_sq = BlockSum(actual_sq, shared_d);
  dot = BlockSum(dot, shared_d);
  nonzero = BlockSum(nonzero, shared_i);
  underflow = BlockSum(underflow, shared_i);
  saturated = BlockSum(saturated, shared_i);
  if (threadIdx.x == 0) {
    UpdateSums s;
    s.raw_sq = raw_sq;
    s.actual_sq = actual_sq;
    s.dot = dot;
    s.total = n;
    s.nonzero_raw = nonzero;
    s.underflow = underflow;
    s.saturated = saturated;
    *total = s;
    const UpdateStats stats = StatsFromSums(s);
    *out.raw_update_norm = stats.raw_update_norm;
    *out.actual_update_norm = stats.actual_update_norm;
    *out.update_dot = stats.update_dot;
    *out.update_underflow_fraction = stats.update_underflow_fraction;
    *out.storage_saturation_fraction = stats.storage_saturation_fraction;
  }
}

template <typename T>
struct Launch {
  const T* old;
  T* next;
  const T* grad;
  const T* lr;
  int64_t n;
  Quantizer<T> qu, qs;
  RailBounds<T> rails;
  UpdateSums* partial;
  int grid;
  cudaStream_t stream;

  template <typename U>
  struct Inner {
    const Launch& l;
    template <typename S>
    void operator()() const {
      UpdateKernel<U, S, T><<<l.grid, kThreadsPerBlock, 0, l.stream>>>(
          l.old, l.next, l.grad, l.lr, l.n, l.qu, l.qs, l.rails, l.partial);
    }
  };
};

template <typename T>
struct DispatchLaunch {
  const Launch<T>& launch;
  const UpdateConfig& config;
  template <typename U>
  void operator()() const {
    DispatchStep(config.has_storage_format, config.storage_format.rounding,
                 config.storage_format.overflow,
                 typename Launch<T>::template Inner<U>{launch});
  }
};

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
    Launch<T> launch{old, next, grad, lr, n,
                     MakeQuantizer<T>(config.update_format, config.seed0, config.seed1),
                     MakeQuantizer<T>(config.storage_format, config.seed0,
                                      config.seed1 ^ kStorageSeedXor),
                     MakeRailBounds<T>(config.storage_format, 1.0),
                     partial, grid, s};
    DispatchStep(config.has_update_format, config.update_format.rounding,
                 config.update_format.overflow, DispatchLaunch<T>{launch, config});
  }
  UpdateFinishKernel<<<1, kThreadsPerBlock, 0, s>>>(partial, n > 0 ? grid : 0, n,
                                                    total, outputs);
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
