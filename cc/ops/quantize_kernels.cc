// OpKernels for Kappa>Quantize: validate, allocate, call the functor.
#include "cc/core/quantize/quantize.h"
#include "cc/ops/attrs.h"
#include "cc/ops/cpu_parallel.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#if KAPPA_WITH_CUDA
#include "cc/ops/gpu_stream.h"
#endif

namespace kappa {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;

template <typename T, bool kGpu>
class QuantizeOp : public OpKernel {
 public:
  explicit QuantizeOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadFormat<T>(ctx, "", &format_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    int64_t seed0 = 0, seed1 = 0;
    OP_REQUIRES_OK(ctx, ReadSeed(ctx->input(1), &seed0, &seed1));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, x.shape(), &y));
    const T* in = x.flat<T>().data();
    T* out = y->flat<T>().data();
    const int64_t n = x.NumElements();
    if constexpr (kGpu) {
#if KAPPA_WITH_CUDA
      const char* error =
          QuantizeGpu<T>(in, out, n, format_, seed0, seed1, GpuStream(ctx));
      OP_REQUIRES(ctx, error == nullptr,
                  ::absl::InternalError(std::string("Kappa>Quantize: ") + error));
#endif
    } else {
      QuantizeCpu<T>(in, out, n, format_, seed0, seed1, IntraOpParallelFor(ctx));
    }
  }

 private:
  FixedPointFormat format_;
};

#define KAPPA_REGISTER_QUANTIZE(T)                                           \
  REGISTER_KERNEL_BUILDER(                                                   \
      Name("Kappa>Quantize").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      QuantizeOp<T, false>);
KAPPA_REGISTER_QUANTIZE(float)
KAPPA_REGISTER_QUANTIZE(double)
#undef KAPPA_REGISTER_QUANTIZE

#if KAPPA_WITH_CUDA
#define KAPPA_REGISTER_QUANTIZE_GPU(T)                    \
  REGISTER_KERNEL_BUILDER(Name("Kappa>Quantize")          \
                              .Device(::tensorflow::DEVICE_GPU) \
                              .HostMemory("seed")         \
                              .TypeConstraint<T>("T"),    \
                          QuantizeOp<T, true>);
KAPPA_REGISTER_QUANTIZE_GPU(float)
KAPPA_REGISTER_QUANTIZE_GPU(double)
#undef KAPPA_REGISTER_QUANTIZE_GPU
#endif

}  // namespace kappa
