#include "cc/core/gpu_launch.h"
#include "cc/core/gpu_reduce.h"
#include "cc/core/rail_stats/rail_stats.h"

namespace kappa {
namespace {

// Loads in flight per thread and loop trip: a few independent loads hide
// memory latency better than one.
constexpr int kUnroll = 4;

inline int RailGrid(int64_t n) { return GridSizeFor(n); }

// Grid-stride pass: per-thread 32-bit tallies (a thread sees at most
// n / (grid * 256) elements), block sums, one partial per block.
template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    RailCountKernel(const T* x, int64_t n, RailBounds<T> b, RailCounts* partial) {
  RailTally<uint32_t> t;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t i = start;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    T v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = x[i + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) TallyRail(v[u], b, t);
  }
  for (; i < n; i += stride) TallyRail(x[i], b, t);
  const RailCounts sum = BlockSum(CountsFromTally(GridStrideCount(start, stride, n), t));
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// One block: adds the partials in a fixed order, writes the total and the
// fractions.
__global__ void __launch_bounds__(kThreadsPerBlock)
    RailFinishKernel(const RailCounts* partial, int blocks, RailCounts* total,
                     float* saturation, float* near_rail, float* underflow) {
  RailCounts c;
  for (int k = threadIdx.x; k < blocks; k += blockDim.x) c += partial[k];
  c = BlockSum(c);
  if (threadIdx.x == 0) {
    *total = c;
    const RailFractions f = FractionsFromCounts(c);
    *saturation = f.saturation;
    *near_rail = f.near_rail;
    *underflow = f.underflow;
  }
}

}  // namespace

int64_t RailStatsGpuScratchBytes(int64_t n) {
  return static_cast<int64_t>(RailGrid(n) + 1) * static_cast<int64_t>(sizeof(RailCounts));
}

template <typename T>
const char* RailStatsGpu(const T* x, int64_t n, const FixedPointFormat& format,
                         double near_rail, void* scratch, float* saturation,
                         float* near_rail_fraction, float* underflow,
                         void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int grid = RailGrid(n);
  if (n / (static_cast<int64_t>(grid) * kThreadsPerBlock) >= (int64_t{1} << 31)) {
    return "tensor too large for 32-bit per-thread counters";
  }
  RailCounts* total = static_cast<RailCounts*>(scratch);
  RailCounts* partial = total + 1;
  if (n > 0) {
    RailCountKernel<T><<<grid, kThreadsPerBlock, 0, s>>>(
        x, n, MakeRailBounds<T>(format, near_rail), partial);
  }
  RailFinishKernel<<<1, kThreadsPerBlock, 0, s>>>(
      partial, n > 0 ? grid : 0, total, saturation, near_rail_fraction, underflow);
  return LaunchError();
}

template const char* RailStatsGpu<float>(const float*, int64_t,
                                         const FixedPointFormat&, double, void*,
                                         float*, float*, float*, void*);
template const char* RailStatsGpu<double>(const double*, int64_t,
                                          const FixedPointFormat&, double, void*,
                                          float*, float*, float*, void*);

}  // namespace kappa
