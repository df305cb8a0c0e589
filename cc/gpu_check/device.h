// The little of a CUDA API that cc/gpu_check needs (device memory, copies,
// events, the device's name), for its two builds: with nvcc and the CUDA
// runtime (the static route), or with g++ and the driver API (the NVRTC
// route, whose kernels launch through the driver: cc/core/gpu_rtc.h). Each
// call exits with status 2 on a CUDA error.
#ifndef KAPPA_GPU_CHECK_DEVICE_H_
#define KAPPA_GPU_CHECK_DEVICE_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#else
#include <cuda.h>  // types only: the functions come from libcuda.so.1 by dlopen
#include <dlfcn.h>
#endif

namespace gpu_check {

#if !defined(__CUDACC__)
// A driver function, by the (versioned) name cuda.h maps it to: the program
// links no CUDA library, as the op library does not.
inline void* DriverSymbol(const char* name) {
  static void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  void* fn = lib ? dlsym(lib, name) : nullptr;
  if (fn == nullptr) {
    std::fprintf(stderr, "gpu_check: no %s in libcuda.so.1 (%s)\n", name,
                 lib ? "missing symbol" : "no NVIDIA driver");
    std::exit(2);
  }
  return fn;
}
#define KAPPA_CU_NAME(fn) #fn
#define KAPPA_CU(fn) (reinterpret_cast<decltype(&fn)>(DriverSymbol(KAPPA_CU_NAME(fn))))
#endif

#if defined(__CUDACC__)
inline void Ok(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  std::fprintf(stderr, "gpu_check: %s: %s\n", what, cudaGetErrorString(err));
  std::exit(2);
}
// The device's name, multiprocessors and compute capability; false without one.
inline bool Init(std::string* name, int* sms, int* arch) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) return false;
  cudaDeviceProp prop;
  Ok(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  *name = prop.name;
  *sms = prop.multiProcessorCount;
  *arch = 10 * prop.major + prop.minor;
  return true;
}
inline int DriverVersion() {
  int v = 0;
  cudaDriverGetVersion(&v);
  return v;
}
inline void* Malloc(size_t bytes) {
  void* p = nullptr;
  Ok(cudaMalloc(&p, bytes), "cudaMalloc");
  return p;
}
inline void Free(void* p) { cudaFree(p); }
inline void ToDevice(void* dst, const void* src, size_t bytes) {
  Ok(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
}
inline void ToHost(void* dst, const void* src, size_t bytes) {
  Ok(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
}
inline void DeviceCopyAsync(void* dst, const void* src, size_t bytes) {
  Ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpyAsync");
}
struct Event {
  cudaEvent_t e;
  Event() { Ok(cudaEventCreate(&e), "cudaEventCreate"); }
  ~Event() { cudaEventDestroy(e); }
  void Record() { Ok(cudaEventRecord(e), "cudaEventRecord"); }
  float MsSince(const Event& start) {
    Ok(cudaEventSynchronize(e), "cudaEventSynchronize");
    float ms = 0;
    Ok(cudaEventElapsedTime(&ms, start.e, e), "cudaEventElapsedTime");
    return ms;
  }
};
#else
inline void Ok(CUresult err, const char* what) {
  if (err == CUDA_SUCCESS) return;
  const char* text = nullptr;
  KAPPA_CU(cuGetErrorString)(err, &text);
  std::fprintf(stderr, "gpu_check: %s: %s\n", what, text ? text : "unknown CUDA error");
  std::exit(2);
}
inline bool Init(std::string* name, int* sms, int* arch) {
  int devices = 0;
  if (KAPPA_CU(cuInit)(0) != CUDA_SUCCESS || KAPPA_CU(cuDeviceGetCount)(&devices) != CUDA_SUCCESS || devices == 0) {
    return false;
  }
  CUdevice dev = 0;
  Ok(KAPPA_CU(cuDeviceGet)(&dev, 0), "cuDeviceGet");
  // The primary context, current on this thread: the one the NVRTC route
  // finds through the default stream (and the one TensorFlow uses).
  CUcontext ctx = nullptr;
  Ok(KAPPA_CU(cuDevicePrimaryCtxRetain)(&ctx, dev), "cuDevicePrimaryCtxRetain");
  Ok(KAPPA_CU(cuCtxSetCurrent)(ctx), "cuCtxSetCurrent");
  char text[256] = {};
  Ok(KAPPA_CU(cuDeviceGetName)(text, sizeof(text), dev), "cuDeviceGetName");
  *name = text;
  int major = 0, minor = 0;
  Ok(KAPPA_CU(cuDeviceGetAttribute)(sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev), "attribute");
  Ok(KAPPA_CU(cuDeviceGetAttribute)(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "attribute");
  Ok(KAPPA_CU(cuDeviceGetAttribute)(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "attribute");
  *arch = 10 * major + minor;
  return true;
}
inline int DriverVersion() {
  int v = 0;
  KAPPA_CU(cuDriverGetVersion)(&v);
  return v;
}
inline void* Malloc(size_t bytes) {
  CUdeviceptr p = 0;
  Ok(KAPPA_CU(cuMemAlloc)(&p, bytes), "cuMemAlloc");
  return reinterpret_cast<void*>(p);
}
inline void Free(void* p) { KAPPA_CU(cuMemFree)(reinterpret_cast<CUdeviceptr>(p)); }
inline void ToDevice(void* dst, const void* src, size_t bytes) {
  Ok(KAPPA_CU(cuMemcpyHtoD)(reinterpret_cast<CUdeviceptr>(dst), src, bytes), "cuMemcpyHtoD");
}
inline void ToHost(void* dst, const void* src, size_t bytes) {
  Ok(KAPPA_CU(cuMemcpyDtoH)(dst, reinterpret_cast<CUdeviceptr>(src), bytes), "cuMemcpyDtoH");
}
inline void DeviceCopyAsync(void* dst, const void* src, size_t bytes) {
  Ok(KAPPA_CU(cuMemcpyDtoDAsync)(reinterpret_cast<CUdeviceptr>(dst), reinterpret_cast<CUdeviceptr>(src),
                       bytes, nullptr),
     "cuMemcpyDtoDAsync");
}
struct Event {
  CUevent e;
  Event() { Ok(KAPPA_CU(cuEventCreate)(&e, CU_EVENT_DEFAULT), "cuEventCreate"); }
  ~Event() { KAPPA_CU(cuEventDestroy)(e); }
  void Record() { Ok(KAPPA_CU(cuEventRecord)(e, nullptr), "cuEventRecord"); }
  float MsSince(const Event& start) {
    Ok(KAPPA_CU(cuEventSynchronize)(e), "cuEventSynchronize");
    float ms = 0;
    Ok(KAPPA_CU(cuEventElapsedTime)(&ms, start.e, e), "cuEventElapsedTime");
    return ms;
  }
};
#endif

}  // namespace gpu_check

#endif  // KAPPA_GPU_CHECK_DEVICE_H_
