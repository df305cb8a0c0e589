#include "cc/kernels/gpu_launch.h"
#include "cc/kernels/quantize.h"

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

template <typename T>
struct QuantizeLaunch {
  const T* x;
  T* y;
  int64_t n;
  Quantizer<T> q;
  cudaStream_t stream;

  template <Rounding R, Overflow O>
  void operator()() const {
    QuantizeKernel<R, O, T>
        <<<GridSizeFor(n), kThreadsPerBlock, 0, stream>>>(x, y, n, q);
  }
};

}  // namespace

template <typename T>
const char* QuantizeGpu(const T* x, T* y, int64_t n,
                        const FixedPointFormat& format, int64_t seed0,
                        int64_t seed1, void* stream) {
  if (n == 0) return nullptr;
  const Quantizer<T> q = MakeQuantizer<T>(format, seed0, seed1);
  DispatchModes(format.rounding, format.overflow,
                QuantizeLaunch<T>{x, y, n, q, static_cast<cudaStream_t>(stream)});
  return LaunchError();
}

template const char* QuantizeGpu<float>(const float*, float*, int64_t,
                                        const FixedPointFormat&, int64_t,
                                        int64_t, void*);
template const char* QuantizeGpu<double>(const double*, double*, int64_t,
                                         const FixedPointFormat&, int64_t,
                                         int64_t, void*);

}  // namespace kappa
