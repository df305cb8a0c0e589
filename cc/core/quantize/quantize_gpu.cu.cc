// The CUDA functors of Kappa>Quantize (kernels and their host code: see
// cc/core/gpu_launch.h for the three ways this file is compiled).
#include "cc/core/gpu_launch.h"
#include "cc/core/quantize/quantize.h"

namespace kappa {
namespace {

template <typename T>
struct QuantizeParams {
  const T* x;
  T* y;
  int64_t n;
  Quantizer<T> q;
};

#if defined(__CUDACC__)
template <typename M, typename T>
__global__ void QuantizeKernel(QuantizeParams<T> p) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
       i += stride) {
    p.y[i] = QuantizeValue<M::rounding, M::overflow>(p.x[i], p.q, static_cast<uint64_t>(i));
  }
}
#endif

}  // namespace

#if !defined(__CUDACC_RTC__)
template <typename T>
const char* QuantizeGpu(const T* x, T* y, int64_t n,
                        const FixedPointFormat& format, int64_t seed0,
                        int64_t seed1, void* stream) {
  if (n == 0) return nullptr;
  const QuantizeParams<T> params{x, y, n, MakeQuantizer<T>(format, seed0, seed1)};
  const int grid = GridSizeFor(n, stream);
  const char* error = nullptr;
  DispatchModes(format.rounding, format.overflow, [&](auto m) {
    error = KAPPA_GPU_LAUNCH(QuantizeKernel, (decltype(m), T), grid, stream, params);
  });
  return error;
}

template const char* QuantizeGpu<float>(const float*, float*, int64_t,
                                        const FixedPointFormat&, int64_t,
                                        int64_t, void*);
template const char* QuantizeGpu<double>(const double*, double*, int64_t,
                                         const FixedPointFormat&, int64_t,
                                         int64_t, void*);
#endif

}  // namespace kappa
