// Built instead of the XLA lowerings (cc/ops/*_xla.cc) where the installed
// TensorFlow wheel lacks XLA's headers or symbols (configure.py decides).
//
// Without XLA's headers no lowering can be registered through XLA's op
// registry, but XLA's compilation devices (XLA_CPU_JIT, XLA_GPU_JIT) find
// their kernels in TensorFlow's ordinary kernel registry, under those device
// names. So each Kappa> op gets an ordinary OpKernel there whose only work
// is to fail the compilation with a message that says what to do; without
// it XLA would report "No registered 'Kappa>Quantize' OpKernel for
// XLA_CPU_JIT devices", which does not. Outside XLA the ops run their usual
// CPU (and CUDA) kernels.
#include <string>

#include "tensorflow/core/framework/op_kernel.h"

namespace kappa {

bool HasXlaLowerings() { return false; }

namespace {

class NoXlaLoweringOp : public ::tensorflow::OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(::tensorflow::OpKernelContext* ctx) override {
    ctx->CtxFailure(::absl::UnimplementedError(
        type_string() +
        " has no XLA lowering in this build of tensorflow_kappa's op library: the "
        "TensorFlow it was built against lacked XLA's headers or symbols (`kappa info` "
        "shows 'XLA lowerings   no'). Inside tf.function(jit_compile=True) or a Keras "
        "model compiled with jit_compile, call the op within "
        "`with tensorflow_kappa.composite_ops():` (the pure-TensorFlow twins compile "
        "under XLA), or compile without XLA."));
  }
};

#define KAPPA_REGISTER_NO_XLA(OP)                                                      \
  REGISTER_KERNEL_BUILDER(Name(OP).Device("XLA_CPU_JIT").TypeConstraint<float>("T"),   \
                          NoXlaLoweringOp);                                            \
  REGISTER_KERNEL_BUILDER(Name(OP).Device("XLA_CPU_JIT").TypeConstraint<double>("T"),  \
                          NoXlaLoweringOp);                                            \
  REGISTER_KERNEL_BUILDER(Name(OP).Device("XLA_GPU_JIT").TypeConstraint<float>("T"),   \
                          NoXlaLoweringOp);                                            \
  REGISTER_KERNEL_BUILDER(Name(OP).Device("XLA_GPU_JIT").TypeConstraint<double>("T"),  \
                          NoXlaLoweringOp);
KAPPA_REGISTER_NO_XLA("Kappa>Quantize")
KAPPA_REGISTER_NO_XLA("Kappa>RailStats")
KAPPA_REGISTER_NO_XLA("Kappa>UpdateQuantizeStore")
#undef KAPPA_REGISTER_NO_XLA

}  // namespace
}  // namespace kappa
