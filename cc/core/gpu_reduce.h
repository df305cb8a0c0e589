// Deterministic block reductions for the CUDA functors: a fixed shuffle tree
// within each warp, then warp 0 adds the warps' sums in the same fixed
// pattern. The order depends only on blockDim, so results repeat bit for
// bit. V is a number or a struct of numbers with operator+= (the ops'
// statistic sums); a struct is reduced field by field in the same pattern
// as a number. Included from .cu.cc files only; device code, so empty in
// their host-only (g++) build.
#ifndef KAPPA_CORE_GPU_REDUCE_H_
#define KAPPA_CORE_GPU_REDUCE_H_

#include "cc/core/gpu_launch.h"

#if defined(__CUDACC__)
#include <cstring>
#include <type_traits>

namespace kappa {

// __shfl_down_sync for any trivially copyable V, as 32-bit words (what the
// intrinsic does for 64-bit types too).
template <typename V>
__device__ __forceinline__ V ShuffleDown(const V& v, int offset) {
  static_assert(std::is_trivially_copyable<V>::value && sizeof(V) % 4 == 0,
                "shuffled as 32-bit words");
  constexpr int kWords = sizeof(V) / 4;
  unsigned words[kWords];
  memcpy(words, &v, sizeof(V));
#pragma unroll
  for (int k = 0; k < kWords; ++k) {
    words[k] = __shfl_down_sync(0xffffffffu, words[k], offset);
  }
  V out;
  memcpy(&out, words, sizeof(V));
  return out;
}

template <typename V>
__device__ __forceinline__ V WarpSum(V v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v += ShuffleDown(v, offset);
  }
  return v;
}

// The sum of v over the block, valid in thread 0; blockDim.x must be
// kThreadsPerBlock. Ends with a barrier, so it may be called again at once.
template <typename V>
__device__ __forceinline__ V BlockSum(V v) {
  constexpr int kWarps = kThreadsPerBlock / 32;
  // Raw storage: a __shared__ variable takes no initializer, and V's members
  // may have default ones.
  __shared__ alignas(V) unsigned char storage[kWarps * sizeof(V)];
  V* shared = reinterpret_cast<V*>(storage);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = WarpSum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  V total{};
  if (warp == 0) {
    total = lane < kWarps ? shared[lane] : V{};
    total = WarpSum(total);
  }
  __syncthreads();
  return total;
}

}  // namespace kappa

#endif  // defined(__CUDACC__)

#endif  // KAPPA_CORE_GPU_REDUCE_H_
