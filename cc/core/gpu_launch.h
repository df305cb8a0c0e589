// Launch geometry and error reporting shared by the CUDA functors.
// Included from .cu.cc files only.
#ifndef KAPPA_CORE_GPU_LAUNCH_H_
#define KAPPA_CORE_GPU_LAUNCH_H_

#include <cuda_runtime.h>

#include <cstdint>

namespace kappa {

constexpr int kThreadsPerBlock = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the device
// (a few resident blocks per multiprocessor), never more than the work needs.
inline int GridSizeFor(int64_t n, int blocks_per_sm = 8) {
  int device = 0;
  int sms = 80;
  if (cudaGetDevice(&device) == cudaSuccess) {
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  }
  const int64_t needed = (n + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const int64_t full = static_cast<int64_t>(sms) * blocks_per_sm;
  const int64_t grid = needed < full ? needed : full;
  return grid > 0 ? static_cast<int>(grid) : 1;
}

// How many of the indices start, start + stride, ... lie below n: the
// elements one thread of a grid-stride loop visits.
__device__ __forceinline__ int64_t GridStrideCount(int64_t start, int64_t stride, int64_t n) {
  return start < n ? (n - 1 - start) / stride + 1 : 0;
}

// nullptr when the last launch succeeded, else CUDA's message.
inline const char* LaunchError() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace kappa

#endif  // KAPPA_CORE_GPU_LAUNCH_H_
