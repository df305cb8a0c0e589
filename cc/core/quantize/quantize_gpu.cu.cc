#include "cc/core/gpu_launch.h"
#include "cc/core/quantize/quantize.h"

namespace kappa {
namespace {

template <Rounding R, Overflow O, typename T>
__global__ void QuantizeKernel(const T* x, T* y, int64_t n, Quantizer<T> q) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride) {
    y[i] = QuantizeValue<R, O>(x[i], q, static_cast<uint64_t>(i));
  }
}

}  // namespace

template <typename T>
const char* QuantizeGpu(const T* x, T* y, int64_t n,
                        const FixedPointFormat& format, int64_t seed0,
                        int64_t seed1, void* stream) {
  if (n == 0) return nullptr;
  const Quantizer<T> q = MakeQuantizer<T>(format, seed0, seed1);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  DispatchModes(format.rounding, format.overflow, [&](auto m) {
    using M = decltype(m);
    QuantizeKernel<M::rounding, M::overflow, T>
        <<<GridSizeFor(n), kThreadsPerBlock, 0, s>>>(x, y, n, q);
  });
  return LaunchError();
}

template const char* QuantizeGpu<float>(const float*, float*, int64_t,
                                        const FixedPointFormat&, int64_t,
                                        int64_t, void*);
template const char* QuantizeGpu<double>(const double*, double*, int64_t,
                                         const FixedPointFormat&, int64_t,
                                         int64_t, void*);

}  // namespace kappa
