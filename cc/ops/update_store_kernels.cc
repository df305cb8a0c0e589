// OpKernels for Kappa>UpdateQuantizeStore: look up and lock the resource
// variable, validate, update it in one pass.
//
// The variable follows TensorFlow's copy-on-write protocol for dense
// resource-variable updates (as ResourceApplyGradientDescent does through
// training_op_helpers.h, whose PrepareToUpdateVariable relies on a GPU copy
// functor that libtensorflow_framework does not export): under the
// variable's exclusive lock, if its buffer may be aliased (a read still
// holds it: refcount > 1) or the variable is in copy-on-read mode, the new
// values go to a fresh buffer that then replaces the variable's tensor;
// otherwise the update is in place. Writing the new values straight into
// the fresh buffer replaces TensorFlow's copy-then-update with a single pass.
#include "cc/core/update_store/update_store.h"
#include "cc/ops/attrs.h"
#include "cc/ops/cpu_parallel.h"
#include "cc/ops/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/types.h"

namespace kappa {

using ::tensorflow::DataTypeString;
using ::tensorflow::DataTypeToEnum;
using ::tensorflow::TensorShapeUtils;
using ::tensorflow::Var;

template <typename T, bool kGpu>
class UpdateQuantizeStoreOp : public OpKernel {
 public:
  explicit UpdateQuantizeStoreOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadUpdateFormats(DataTypeToEnum<T>::value, ctx,
                                          &config_.has_update_format, &config_.update_format,
                                          &config_.has_storage_format, &config_.storage_format));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(1);
    const Tensor& lr = ctx->input(2);
    const Tensor& seed = ctx->input(3);
    OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(lr.shape()),
                ::absl::InvalidArgumentError(
                    "learning_rate must be a scalar, got shape " + lr.shape().DebugString()));
    UpdateConfig config = config_;
    OP_REQUIRES_OK(ctx, ReadSeed(seed, &config.seed0, &config.seed1));

    ::tensorflow::core::RefCountPtr<Var> var;
    OP_REQUIRES_OK(ctx, ::tensorflow::LookupResource(
                            ctx, ::tensorflow::HandleFromInput(ctx, 0), &var));
    ::tensorflow::mutex_lock lock(*var->mu());
    OP_REQUIRES(ctx, var->is_initialized,
                ::absl::FailedPreconditionError(
                    "Kappa>UpdateQuantizeStore: the variable is not initialized"));
    Tensor* value = var->tensor();
    const auto dtype = DataTypeToEnum<T>::value;
    OP_REQUIRES(ctx, value->dtype() == dtype,
                ::absl::InvalidArgumentError(
                    "variable dtype " + DataTypeString(value->dtype()) +
                    " and grad dtype " + DataTypeString(dtype) + " differ"));
    OP_REQUIRES(ctx, value->shape() == grad.shape(),
                ::absl::InvalidArgumentError(
                    "variable shape " + value->shape().DebugString() + " and grad shape " +
                    grad.shape().DebugString() + " differ"));

    float* out[5];
    OP_REQUIRES_OK(ctx, AllocateScalarOutputs(ctx, 5, out));
    // Copy on write: a fresh buffer when the current one may be aliased.
    Tensor fresh;
    T* next = value->flat<T>().data();
    const bool copy = var->copy_on_read_mode.load() || !value->RefCountIsOne();
    if (copy) {
      ::tensorflow::AllocatorAttributes attr;
      attr.set_gpu_compatible(true);
      attr.set_nic_compatible(true);
      OP_REQUIRES_OK(ctx, ctx->allocate_temp(dtype, value->shape(), &fresh, attr));
      next = fresh.flat<T>().data();
    }
    const T* old = value->flat<T>().data();
    const T* g = grad.flat<T>().data();
    const int64_t n = grad.NumElements();
    if constexpr (kGpu) {
#if KAPPA_WITH_CUDA
      Tensor scratch;
      OP_REQUIRES_OK(ctx, AllocateScratch(ctx, UpdateStoreGpuScratchBytes(n), &scratch));
      const UpdateStatsOutputs outputs{out[0], out[1], out[2], out[3], out[4]};
      OP_REQUIRES_OK(ctx, LaunchStatus("Kappa>UpdateQuantizeStore",
                                       UpdateStoreGpu<T>(old, next, g, lr.scalar<T>().data(), n,
                                                         config, scratch.flat<int8_t>().data(),
                                                         outputs, GpuStream(ctx))));
#endif
    } else {
      const UpdateSums sums = UpdateStoreCpu<T>(old, next, g, lr.scalar<T>()(), n,
                                                config, IntraOpParallelFor(ctx));
      const UpdateStats stats = StatsFromSums(sums);
      *out[0] = stats.raw_update_norm;
      *out[1] = stats.actual_update_norm;
      *out[2] = stats.update_dot;
      *out[3] = stats.update_underflow_fraction;
      *out[4] = stats.storage_saturation_fraction;
    }
    if (copy) *value = fresh;
  }

 private:
  UpdateConfig config_;
};

KAPPA_REGISTER_KERNELS("Kappa>UpdateQuantizeStore", UpdateQuantizeStoreOp,
                       .HostMemory("var").HostMemory("seed"));

}  // namespace kappa
