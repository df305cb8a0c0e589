// The library's information ops, each returning one JSON string (CPU only):
//
// Kappa>BuildInfo: what this op library was compiled against
// ({"tf_version": ..., "cuda": ..., "cuda_archs": [...], "xla": ...}), read
// by `kappa info` from the loaded binary itself.
//
// Kappa>RuntimeInfo: what the op library chose at run time in this process,
// read by `kappa info` and by the Python loader (which turns
// cpu_path_problem into a ValueError):
//   {"cpu_path": "avx512", "cpu_paths": ["baseline", "avx2", "avx512"],
//    "cpu_path_problem": null}
// cpu_paths are the paths this library has and this CPU runs; cpu_path is
// the one the functors use (cc/core/cpu_dispatch.h).
//
// Kappa>CudaRuntimeInfo: for the NVRTC route (cc/core/gpu_rtc.h), the CUDA
// driver and NVRTC this process finds ({} in other builds); it opens them,
// so only `kappa info` asks.
#include <string>

#include "build_info.h"
#include "cc/core/cpu_dispatch.h"
#if KAPPA_WITH_CUDA && KAPPA_CUDA_NVRTC
#include "cc/core/gpu_rtc.h"
#endif
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace kappa {

// Whether this library holds the ops' XLA lowerings: defined by the one of
// xla_lowering.cc (true) and xla_unavailable.cc (false) that it links.
bool HasXlaLowerings();

namespace {

// The configured build info with "xla" added from what was linked.
std::string BuildInfoJson() {
  std::string json = KAPPA_BUILD_INFO_JSON;
  json.pop_back();  // the closing brace of a non-empty object
  return json + ",\"xla\":" + (HasXlaLowerings() ? "true" : "false") + "}";
}

std::string JsonString(const char* s) {
  if (s == nullptr) return "null";
  std::string out = "\"";
  for (const char* p = s; *p; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string RuntimeInfoJson() {
  std::string paths;
  for (int k = 0; k < kCpuPathCount; ++k) {
    const CpuPath p = static_cast<CpuPath>(k);
    if (!CpuPathAvailable(p)) continue;
    paths += (paths.empty() ? "" : ", ") + JsonString(CpuPathName(p));
  }
  return "{\"cpu_path\": " + JsonString(CpuPathName(ActiveCpuPath())) + ", \"cpu_paths\": [" +
         paths + "], \"cpu_path_problem\": " + JsonString(CpuPathProblem()) + "}";
}

std::string CudaRuntimeInfoJson() {
#if KAPPA_WITH_CUDA && KAPPA_CUDA_NVRTC
  return rtc::StatusJson();
#else
  return "{}";
#endif
}

// A CPU op that returns one JSON string.
template <std::string (*kJson)()>
class JsonInfoOp : public ::tensorflow::OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(::tensorflow::OpKernelContext* ctx) override {
    ::tensorflow::Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, {}, &out));
    out->scalar<::tensorflow::tstring>()() = kJson();
  }
};

}  // namespace

REGISTER_OP("Kappa>BuildInfo")
    .Output("info: string")
    .SetShapeFn(::tensorflow::shape_inference::ScalarShape);

REGISTER_KERNEL_BUILDER(Name("Kappa>BuildInfo").Device(::tensorflow::DEVICE_CPU),
                        JsonInfoOp<BuildInfoJson>);

REGISTER_OP("Kappa>RuntimeInfo")
    .Output("info: string")
    .SetIsStateful()  // the answer is the process's, not a constant to fold
    .SetShapeFn(::tensorflow::shape_inference::ScalarShape);

REGISTER_KERNEL_BUILDER(Name("Kappa>RuntimeInfo").Device(::tensorflow::DEVICE_CPU),
                        JsonInfoOp<RuntimeInfoJson>);

REGISTER_OP("Kappa>CudaRuntimeInfo")
    .Output("info: string")
    .SetIsStateful()
    .SetShapeFn(::tensorflow::shape_inference::ScalarShape);

REGISTER_KERNEL_BUILDER(Name("Kappa>CudaRuntimeInfo").Device(::tensorflow::DEVICE_CPU),
                        JsonInfoOp<CudaRuntimeInfoJson>);

}  // namespace kappa
