#include "cc/kernels/gpu_launch.h"
#include "cc/kernels/gpu_reduce.h"
#include "cc/kernels/rail_stats.h"

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
  __shared__ long long shared[kThreadsPerBlock / 32];
  RailTally<uint32_t> t;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t seen = 0;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    T v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = x[i + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) TallyRail(v[u], b, t);
    seen += kUnroll;
  }
  for (; i < n; i += stride, ++seen) TallyRail(x[i], b, t);
  RailTally<long long> sum;
  sum.saturated = BlockSum<long long>(t.saturated, shared);
  sum.near_rail = BlockSum<long long>(t.near_rail, shared);
  sum.in_zero_set = BlockSum<long long>(t.in_zero_set, shared);
  sum.zeros = BlockSum<long long>(t.zeros, shared);
  sum.zero_or_nan = BlockSum<long long>(t.zero_or_nan, shared);
  const long long count = BlockSum<long long>(seen, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = CountsFromTally(count, sum);
}

// One block: adds the partials in a fixed order, writes the total and the
// fractions.
__global__ void __launch_bounds__(kThreadsPerBlock)
    RailFinishKernel(const RailCounts* partial, int blocks, int64_t n,
                     RailCounts* total, float* saturation, float* near_rail,
                     float* underflow) {
  __shared__ long long shared[kThreadsPerBlock / 32];
  long long s = 0, r = 0, z = 0, u = 0;
  for (int k = threadIdx.x; k < blocks; k += blockDim.x) {
    s += partial[k].saturated;
    r += partial[k].near_rail;
    z += partial[k].nonzero;
    u += partial[k].underflow;
  }
  s = BlockSum(s, shared);
  r = BlockSum(r, shared);
  z = BlockSum(z, shared);
  u = BlockSum(u, shared);
  if (threadIdx.x == 0) {
    RailCounts c;
    c.total = n;
    c.saturated = s;
    c.near_rail = r;
    c.nonzero = z;
    c.underflow = u;
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
      partial, n > 0 ? grid : 0, n, total, saturation, near_rail_fraction,
      underflow);
  return LaunchError();
}

template const char* RailStatsGpu<float>(const float*, int64_t,
                                         const FixedPointFormat&, double, void*,
                                         float*, float*, float*, void*);
template const char* RailStatsGpu<double>(const double*, int64_t,
                                          const FixedPointFormat&, double, void*,
                                          float*, float*, float*, void*);

}  // namespace kappa
