// Launch geometry, kernel launches and error reporting shared by the CUDA
// functors (the ops' .cu.cc files), which are compiled in three ways:
//   nvcc  (configure.py --cuda-runtime=static): kernels and host code; the
//         host code launches with <<<...>>> through the CUDA runtime;
//   g++   (--cuda-runtime=nvrtc, the default): the host code only, which
//         launches through gpu_rtc.h;
//   NVRTC (at first use, from the text embedded by the g++ build): the
//         kernels only (__CUDACC_RTC__).
// So in a .cu.cc, kernels stand under `#if defined(__CUDACC__)`, host code
// under `#if !defined(__CUDACC_RTC__)`, and the host code launches a kernel
// template with KAPPA_GPU_LAUNCH(kernel, (template args), grid, stream,
// params): each kernel takes one parameter, a struct that host and device
// lay out alike.
#ifndef KAPPA_CORE_GPU_LAUNCH_H_
#define KAPPA_CORE_GPU_LAUNCH_H_

#include <cstdint>

#include "cc/core/formats/rounding.h"

#if defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#include <cuda_runtime.h>
#elif !defined(__CUDACC__)
#include <string>

#include "cc/core/gpu_rtc.h"
#endif

namespace kappa {

constexpr int kThreadsPerBlock = 256;
// No grid is larger: scratch sized by MaxGridFor holds every grid's partials,
// whatever device the launch then runs on.
constexpr int64_t kMaxGrid = 4096;

#if defined(__CUDACC__)
// How many of the indices start, start + stride, ... lie below n: the
// elements one thread of a grid-stride loop visits.
__device__ __forceinline__ int64_t GridStrideCount(int64_t start, int64_t stride, int64_t n) {
  return start < n ? (n - 1 - start) / stride + 1 : 0;
}
#endif

#if !defined(__CUDACC_RTC__)
// The most blocks a grid-stride loop over n elements uses.
inline int64_t MaxGridFor(int64_t n) {
  const int64_t needed = (n + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return needed < 1 ? 1 : (needed < kMaxGrid ? needed : kMaxGrid);
}

// Blocks for a grid-stride loop over n elements on `stream`'s device: enough
// to fill it (a few resident blocks per multiprocessor), never more than the
// work needs or MaxGridFor(n).
inline int GridSizeFor(int64_t n, void* stream, int blocks_per_sm = 8) {
#if defined(__CUDACC__)
  (void)stream;
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) == cudaSuccess) {
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  }
#else
  int sms = rtc::MultiprocessorCount(stream);
#endif
  if (sms <= 0) sms = 80;
  const int64_t full = static_cast<int64_t>(sms) * blocks_per_sm;
  const int64_t most = MaxGridFor(n);
  return static_cast<int>(full < most ? full : most);
}
#endif

#if defined(__CUDACC__) && !defined(__CUDACC_RTC__)
// nullptr when the last launch succeeded, else CUDA's message.
inline const char* LaunchError() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}
#endif

#define KAPPA_GPU_UNPAREN(...) __VA_ARGS__

#if defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#define KAPPA_GPU_LAUNCH(kernel, targs, grid, stream, params)                    \
  (kernel<KAPPA_GPU_UNPAREN targs><<<(grid), ::kappa::kThreadsPerBlock, 0,       \
                                     static_cast<cudaStream_t>(stream)>>>(params), \
   ::kappa::LaunchError())
#elif !defined(__CUDACC__)
// The kernels' template arguments as NVRTC name expressions spell them.
template <typename T>
struct KernelArgName;
template <>
struct KernelArgName<float> {
  static std::string Get() { return "float"; }
};
template <>
struct KernelArgName<double> {
  static std::string Get() { return "double"; }
};
template <Rounding R, Overflow O>
struct KernelArgName<Modes<R, O>> {
  static std::string Get() {
    return "kappa::Modes<(kappa::Rounding)" + std::to_string(static_cast<int>(R)) +
           ",(kappa::Overflow)" + std::to_string(static_cast<int>(O)) + ">";
  }
};

template <typename... A>
std::string KernelName(const char* kernel) {
  std::string args;
  for (const std::string& a : {KernelArgName<A>::Get()...}) {
    args += (args.empty() ? "" : ",") + a;
  }
  return std::string(kernel) + "<" + args + ">";
}

#define KAPPA_GPU_LAUNCH(kernel, targs, grid, stream, params)                                  \
  ::kappa::rtc::Launch(__FILE__, ::kappa::KernelName<KAPPA_GPU_UNPAREN targs>("kappa::" #kernel), \
                       (grid), ::kappa::kThreadsPerBlock, (stream), &(params))
#endif

}  // namespace kappa

#endif  // KAPPA_CORE_GPU_LAUNCH_H_
