// OpKernels for Kappa>RailStats: validate, call the functor.
#include <string>

#include "cc/core/rail_stats/rail_stats.h"
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
using ::tensorflow::TensorShape;

template <typename T, bool kGpu>
class RailStatsOp : public OpKernel {
 public:
  explicit RailStatsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadFormat<T>(ctx, "", &format_));
    OP_REQUIRES_OK(ctx, ReadUnitInterval(ctx, "near_rail", &near_rail_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Tensor* out[3] = {nullptr, nullptr, nullptr};
    for (int i = 0; i < 3; ++i) {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, TensorShape({}), &out[i]));
    }
    const T* in = x.flat<T>().data();
    const int64_t n = x.NumElements();
    if constexpr (kGpu) {
#if KAPPA_WITH_CUDA
      Tensor scratch;
      OP_REQUIRES_OK(ctx, ctx->allocate_temp(::tensorflow::DT_INT8,
                                             TensorShape({RailStatsGpuScratchBytes(n)}),
                                             &scratch));
      const char* error = RailStatsGpu<T>(
          in, n, format_, near_rail_, scratch.flat<int8_t>().data(),
          out[0]->scalar<float>().data(), out[1]->scalar<float>().data(),
          out[2]->scalar<float>().data(), GpuStream(ctx));
      OP_REQUIRES(ctx, error == nullptr,
                  ::absl::InternalError(std::string("Kappa>RailStats: ") + error));
#endif
    } else {
      const RailCounts c =
          RailStatsCpu<T>(in, n, format_, near_rail_, IntraOpParallelFor(ctx));
      const RailFractions f = FractionsFromCounts(c);
      out[0]->scalar<float>()() = f.saturation;
      out[1]->scalar<float>()() = f.near_rail;
      out[2]->scalar<float>()() = f.underflow;
    }
  }

 private:
  FixedPointFormat format_;
  double near_rail_ = 0.9;
};

#define KAPPA_REGISTER_RAIL_STATS(T)                                       \
  REGISTER_KERNEL_BUILDER(Name("Kappa>RailStats")                          \
                              .Device(::tensorflow::DEVICE_CPU)            \
                              .TypeConstraint<T>("T"),                     \
                          RailStatsOp<T, false>);
KAPPA_REGISTER_RAIL_STATS(float)
KAPPA_REGISTER_RAIL_STATS(double)
#undef KAPPA_REGISTER_RAIL_STATS

#if KAPPA_WITH_CUDA
#define KAPPA_REGISTER_RAIL_STATS_GPU(T)                                   \
  REGISTER_KERNEL_BUILDER(Name("Kappa>RailStats")                          \
                              .Device(::tensorflow::DEVICE_GPU)            \
                              .TypeConstraint<T>("T"),                     \
                          RailStatsOp<T, true>);
KAPPA_REGISTER_RAIL_STATS_GPU(float)
KAPPA_REGISTER_RAIL_STATS_GPU(double)
#undef KAPPA_REGISTER_RAIL_STATS_GPU
#endif

}  // namespace kappa
