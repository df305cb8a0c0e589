// The CUDA runtime calls of cc/gpu_check/device.h and cc/core/gpu_launch.h
// on the CUDA host emulation (cuda_host.h): one device, "CUDA host emulation",
// with cuda_emulation::kMultiprocessors multiprocessors; device memory is host
// memory (each allocation ending at an inaccessible page, cuda_host.h); copies
// and launches complete before the call returns; events read the steady
// clock. Found as <cuda_runtime.h> by sources compiled against the emulation
// (-I cc/gpu_check/emulation).
#ifndef KAPPA_GPU_CHECK_EMULATION_CUDA_RUNTIME_H_
#define KAPPA_GPU_CHECK_EMULATION_CUDA_RUNTIME_H_

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "cc/gpu_check/emulation/cuda_host.h"

enum cudaMemcpyKind {
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
struct CUevent_st {
  std::chrono::steady_clock::time_point at;
};
using cudaEvent_t = CUevent_st*;
struct cudaDeviceProp {
  char name[256];
  int multiProcessorCount, major, minor;
};

inline cudaError_t cudaGetLastError() {
  const cudaError_t error = cuda_emulation::detail::LastError();
  cuda_emulation::detail::LastError() = cudaSuccess;
  return error;
}
inline const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  }
  return "unknown error";
}
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidValue;
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "CUDA host emulation");
  prop->multiProcessorCount = cuda_emulation::kMultiprocessors;
  prop->major = 7;
  prop->minor = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0 || attr != cudaDevAttrMultiProcessorCount) return cudaErrorInvalidValue;
  *value = cuda_emulation::kMultiprocessors;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* version) {  // no driver
  *version = 0;
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  using cuda_emulation::detail::Allocation;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t padded = (bytes + 15) / 16 * 16;
  const size_t body = (padded + page - 1) / page * page;
  char* map = static_cast<char*>(mmap(nullptr, body + page, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (map == MAP_FAILED) return cudaErrorMemoryAllocation;
  mprotect(map + body, page, PROT_NONE);
  char* start = map + body - padded;
  std::memset(start + bytes, cuda_emulation::detail::kCanary, padded - bytes);
  cuda_emulation::detail::Allocations()[start] =
      Allocation{map, body + page, bytes, padded - bytes};
  *ptr = start;
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* ptr) {
  auto& allocations = cuda_emulation::detail::Allocations();
  const auto it = allocations.find(static_cast<char*>(ptr));
  if (it == allocations.end()) return cudaErrorInvalidValue;
  munmap(it->second.map, it->second.map_bytes);
  allocations.erase(it);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t = nullptr) {
  return cudaMemcpy(dst, src, bytes, kind);
}
inline cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_st;
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t = nullptr) {
  event->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

#endif  // KAPPA_GPU_CHECK_EMULATION_CUDA_RUNTIME_H_
