// Deterministic block reductions for the CUDA functors: a fixed shuffle tree
// within each warp, then warp 0 adds the warps' sums in the same fixed
// pattern. The order depends only on blockDim, so results repeat bit for
// bit. Included from .cu.cc files only.
#ifndef KAPPA_KERNELS_GPU_REDUCE_H_
#define KAPPA_KERNELS_GPU_REDUCE_H_

#include <cuda_runtime.h>

#include "cc/kernels/gpu_launch.h"

namespace kappa {

template <typename V>
__device__ __forceinline__ V WarpSum(V v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

// The sum of v over the block, valid in thread 0. `shared` holds at least
// kThreadsPerBlock / 32 values; blockDim.x must be kThreadsPerBlock. Ends
// with a barrier, so it may be called again at once with the same buffer.
template <typename V>
__device__ __forceinline__ V BlockSum(V v, V* shared) {
  constexpr int kWarps = kThreadsPerBlock / 32;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = WarpSum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  V total = V(0);
  if (warp == 0) {
    total = lane < kWarps ? shared[lane] : V(0);
    total = WarpSum(total);
  }
  __syncthreads();
  return total;
}

}  // namespace kappa

#endif  // KAPPA_KERNELS_GPU_REDUCE_H_
