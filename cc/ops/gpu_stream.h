// The CUDA stream of a GPU op, as the void* the CUDA functors take, without
// CUDA or Eigen-GPU headers in the op layer.
#ifndef KAPPA_OPS_GPU_STREAM_H_
#define KAPPA_OPS_GPU_STREAM_H_

#include "tensorflow/core/framework/op_kernel.h"
#include "xla/stream_executor/stream.h"

namespace kappa {

inline void* GpuStream(::tensorflow::OpKernelContext* ctx) {
  return ctx->op_device_context()->stream()->platform_specific_handle().stream;
}

}  // namespace kappa

#endif  // KAPPA_OPS_GPU_STREAM_H_
