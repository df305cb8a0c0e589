// Kappa>BuildInfo: what this op library was compiled against, as JSON
// ({"tf_version": ..., "cuda": ..., "cuda_archs": [...], "xla": ...}), read by
// `kappa info` from the loaded binary itself.
#include <string>

#include "build_info.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace kappa {

// Whether this library holds the ops' XLA lowerings: defined by the one of
// xla_lowering.cc (true) and xla_unavailable.cc (false) that it links.
bool HasXlaLowerings();

// The configured build info with "xla" added from what was linked.
std::string BuildInfoJson() {
  std::string json = KAPPA_BUILD_INFO_JSON;
  json.pop_back();  // the closing brace of a non-empty object
  return json + ",\"xla\":" + (HasXlaLowerings() ? "true" : "false") + "}";
}

REGISTER_OP("Kappa>BuildInfo")
    .Output("info: string")
    .SetShapeFn(::tensorflow::shape_inference::ScalarShape);

class BuildInfoOp : public ::tensorflow::OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(::tensorflow::OpKernelContext* ctx) override {
    ::tensorflow::Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, {}, &out));
    out->scalar<::tensorflow::tstring>()() = BuildInfoJson();
  }
};

REGISTER_KERNEL_BUILDER(Name("Kappa>BuildInfo").Device(::tensorflow::DEVICE_CPU),
                        BuildInfoOp);

}  // namespace kappa
