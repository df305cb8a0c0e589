// Kappa>BuildInfo: what this op library was compiled against, as JSON
// ({"tf_version": ..., "cuda": ..., "cuda_archs": [...]}), read by `kappa info`
// from the loaded binary itself.
#include "build_info.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace kappa {

REGISTER_OP("Kappa>BuildInfo")
    .Output("info: string")
    .SetShapeFn(::tensorflow::shape_inference::ScalarShape);

class BuildInfoOp : public ::tensorflow::OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(::tensorflow::OpKernelContext* ctx) override {
    ::tensorflow::Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, {}, &out));
    out->scalar<::tensorflow::tstring>()() = KAPPA_BUILD_INFO_JSON;
  }
};

REGISTER_KERNEL_BUILDER(Name("Kappa>BuildInfo").Device(::tensorflow::DEVICE_CPU),
                        BuildInfoOp);

}  // namespace kappa
