// What every Kappa> OpKernel shares: TensorFlow's kernel names in namespace
// kappa, the kernel of one format, scalar float outputs, device scratch, a
// CUDA functor's result as a status, and the registration of a kernel
// template for float and double on the CPU and, in CUDA builds, the GPU.
//
// An op's kernel is a class template CLASS<T, kGpu> (T: float or double);
// its file ends with KAPPA_REGISTER_KERNELS(NAME, CLASS, <GPU builder calls>),
// the builder calls naming the inputs the GPU kernel reads on the host
// (.HostMemory("seed")).
#ifndef KAPPA_OPS_OP_KERNEL_H_
#define KAPPA_OPS_OP_KERNEL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "cc/core/formats/fixed_point.h"
#include "cc/ops/attrs.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#if KAPPA_WITH_CUDA
#include "cc/ops/gpu_stream.h"
#endif

namespace kappa {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;

// The kernel of an op of one format (attrs without a prefix), which it reads
// and checks for the op's dtype (its first input's) at construction.
class FormatKernel : public OpKernel {
 public:
  explicit FormatKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadFormatOf(ctx->input_type(0), ctx, "", &format_));
  }

 protected:
  FixedPointFormat format_;
};

// Allocates the op's first `n` outputs as float32 scalars; out[i] points at
// output i's value (in the op's device memory).
inline ::absl::Status AllocateScalarOutputs(OpKernelContext* ctx, int n, float** out) {
  for (int i = 0; i < n; ++i) {
    Tensor* t = nullptr;
    TF_RETURN_IF_ERROR(ctx->allocate_output(i, TensorShape({}), &t));
    out[i] = t->scalar<float>().data();
  }
  return ::absl::OkStatus();
}

// Device scratch of `bytes` bytes for a CUDA functor, held by `scratch`.
inline ::absl::Status AllocateScratch(OpKernelContext* ctx, int64_t bytes, Tensor* scratch) {
  return ctx->allocate_temp(::tensorflow::DT_INT8, TensorShape({bytes}), scratch);
}

// A CUDA functor's result (nullptr, or its error message) as a status that
// names the op.
inline ::absl::Status LaunchStatus(const char* op, const char* error) {
  if (error == nullptr) return ::absl::OkStatus();
  return ::absl::InternalError(std::string(op) + ": " + error);
}

}  // namespace kappa

#define KAPPA_REGISTER_CPU_KERNEL(NAME, CLASS, T)                                   \
  REGISTER_KERNEL_BUILDER(                                                         \
      Name(NAME).Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), CLASS<T, false>)

#if KAPPA_WITH_CUDA
#define KAPPA_REGISTER_GPU_KERNEL(NAME, CLASS, T, ...)                                       \
  REGISTER_KERNEL_BUILDER(                                                                  \
      Name(NAME).Device(::tensorflow::DEVICE_GPU) __VA_ARGS__.TypeConstraint<T>("T"), \
      CLASS<T, true>)
#else
#define KAPPA_REGISTER_GPU_KERNEL(NAME, CLASS, T, ...)
#endif

#define KAPPA_REGISTER_KERNELS(NAME, CLASS, ...)              \
  KAPPA_REGISTER_CPU_KERNEL(NAME, CLASS, float);              \
  KAPPA_REGISTER_CPU_KERNEL(NAME, CLASS, double);             \
  KAPPA_REGISTER_GPU_KERNEL(NAME, CLASS, float, __VA_ARGS__); \
  KAPPA_REGISTER_GPU_KERNEL(NAME, CLASS, double, __VA_ARGS__)

#endif  // KAPPA_OPS_OP_KERNEL_H_
