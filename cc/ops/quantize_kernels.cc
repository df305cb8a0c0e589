// OpKernels for Kappa>Quantize: validate, allocate, call the functor.
#include "cc/core/quantize/quantize.h"
#include "cc/ops/attrs.h"
#include "cc/ops/cpu_parallel.h"
#include "cc/ops/op_kernel.h"

namespace kappa {

template <typename T, bool kGpu>
class QuantizeOp : public FormatKernel {
 public:
  using FormatKernel::FormatKernel;

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
      OP_REQUIRES_OK(ctx, LaunchStatus("Kappa>Quantize",
                                       QuantizeGpu<T>(in, out, n, format_, seed0, seed1,
                                                      GpuStream(ctx))));
#endif
    } else {
      QuantizeCpu<T>(in, out, n, format_, seed0, seed1, IntraOpParallelFor(ctx));
    }
  }
};

KAPPA_REGISTER_KERNELS("Kappa>Quantize", QuantizeOp, .HostMemory("seed"));

}  // namespace kappa
