// The CUDA functors of Kappa>RailStats (kernels and their host code: see
// cc/core/gpu_launch.h for the three ways this file is compiled).
#include "cc/core/gpu_launch.h"
#include "cc/core/gpu_reduce.h"
#include "cc/core/rail_stats/rail_stats.h"

namespace kappa {
namespace {

// Loads in flight per thread and loop trip: a few independent loads hide
// memory latency better than one.
constexpr int kUnroll = 4;

template <typename T>
struct RailCountParams {
  const T* x;
  int64_t n;
  RailBounds<T> b;
  RailCounts* partial;
};

struct RailFinishParams {
  const RailCounts* partial;
  int blocks;
  RailCounts* total;
  float* saturation;
  float* near_rail;
  float* underflow;
};

#if defined(__CUDACC__)
// Grid-stride pass: per-thread 32-bit tallies (a thread sees at most
// n / (grid * 256) elements), block sums, one partial per block.
template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock) RailCountKernel(RailCountParams<T> p) {
  RailTally<uint32_t> t;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t i = start;
  for (; i + (kUnroll - 1) * stride < p.n; i += kUnroll * stride) {
    T v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = p.x[i + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) TallyRail(v[u], p.b, t);
  }
  for (; i < p.n; i += stride) TallyRail(p.x[i], p.b, t);
  const RailCounts sum = BlockSum(CountsFromTally(GridStrideCount(start, stride, p.n), t));
  if (threadIdx.x == 0) p.partial[blockIdx.x] = sum;
}

// One block: adds the partials in a fixed order, writes the total and the
// fractions. (T only names the instantiation alongside RailCountKernel's.)
template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock) RailFinishKernel(RailFinishParams p) {
  RailCounts c;
  for (int k = threadIdx.x; k < p.blocks; k += blockDim.x) c += p.partial[k];
  c = BlockSum(c);
  if (threadIdx.x == 0) {
    *p.total = c;
    const RailFractions f = FractionsFromCounts(c);
    *p.saturation = f.saturation;
    *p.near_rail = f.near_rail;
    *p.underflow = f.underflow;
  }
}
#endif

}  // namespace

#if !defined(__CUDACC_RTC__)
int64_t RailStatsGpuScratchBytes(int64_t n) {
  return (MaxGridFor(n) + 1) * static_cast<int64_t>(sizeof(RailCounts));
}

template <typename T>
const char* RailStatsGpu(const T* x, int64_t n, const FixedPointFormat& format,
                         double near_rail, void* scratch, float* saturation,
                         float* near_rail_fraction, float* underflow,
                         void* stream) {
  const int grid = GridSizeFor(n, stream);
  if (n / (static_cast<int64_t>(grid) * kThreadsPerBlock) >= (int64_t{1} << 31)) {
    return "tensor too large for 32-bit per-thread counters";
  }
  RailCounts* total = static_cast<RailCounts*>(scratch);
  RailCounts* partial = total + 1;
  if (n > 0) {
    const RailCountParams<T> count{x, n, MakeRailBounds<T>(format, near_rail), partial};
    if (const char* error = KAPPA_GPU_LAUNCH(RailCountKernel, (T), grid, stream, count)) {
      return error;
    }
  }
  const RailFinishParams finish{partial, n > 0 ? grid : 0, total,
                                saturation, near_rail_fraction, underflow};
  return KAPPA_GPU_LAUNCH(RailFinishKernel, (T), 1, stream, finish);
}

template const char* RailStatsGpu<float>(const float*, int64_t,
                                         const FixedPointFormat&, double, void*,
                                         float*, float*, float*, void*);
template const char* RailStatsGpu<double>(const double*, int64_t,
                                          const FixedPointFormat&, double, void*,
                                          float*, float*, float*, void*);
#endif

}  // namespace kappa
