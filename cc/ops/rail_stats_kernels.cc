// OpKernels for Kappa>RailStats: validate, call the functor.
#include "cc/core/rail_stats/rail_stats.h"
#include "cc/ops/attrs.h"
#include "cc/ops/cpu_parallel.h"
#include "cc/ops/op_kernel.h"

namespace kappa {

template <typename T, bool kGpu>
class RailStatsOp : public FormatKernel {
 public:
  explicit RailStatsOp(OpKernelConstruction* ctx) : FormatKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadUnitInterval(ctx, "near_rail", &near_rail_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    float* out[3] = {nullptr, nullptr, nullptr};
    OP_REQUIRES_OK(ctx, AllocateScalarOutputs(ctx, 3, out));
    const T* in = x.flat<T>().data();
    const int64_t n = x.NumElements();
    if constexpr (kGpu) {
#if KAPPA_WITH_CUDA
      Tensor scratch;
      OP_REQUIRES_OK(ctx, AllocateScratch(ctx, RailStatsGpuScratchBytes(n), &scratch));
      OP_REQUIRES_OK(ctx, LaunchStatus("Kappa>RailStats",
                                       RailStatsGpu<T>(in, n, format_, near_rail_,
                                                       scratch.flat<int8_t>().data(), out[0],
                                                       out[1], out[2], GpuStream(ctx))));
#endif
    } else {
      const RailCounts c =
          RailStatsCpu<T>(in, n, format_, near_rail_, IntraOpParallelFor(ctx));
      const RailFractions f = FractionsFromCounts(c);
      *out[0] = f.saturation;
      *out[1] = f.near_rail;
      *out[2] = f.underflow;
    }
  }

 private:
  double near_rail_ = 0.9;
};

KAPPA_REGISTER_KERNELS("Kappa>RailStats", RailStatsOp);

}  // namespace kappa
