#include "cc/ops/xla_lowering.h"

#include "tensorflow/core/framework/kernel_def.pb.h"
#include "tensorflow/core/framework/node_def.pb.h"
#include "tensorflow/core/framework/types.h"
#include "xla/shape_util.h"

namespace kappa {
namespace {

using ::tensorflow::DeviceType;
using ::tensorflow::NodeDef;

// Whether `device` has a kernel for op `op` (with T = float when `typed`).
bool HasKernel(const char* device, const char* op, bool typed) {
  NodeDef node;
  node.set_name("kappa_xla_probe");
  node.set_op(op);
  if (typed) (*node.mutable_attr())["T"].set_type(::tensorflow::DT_FLOAT);
  return ::tensorflow::FindKernelDef(DeviceType(device), node, nullptr, nullptr).ok();
}

}  // namespace

bool HasXlaLowerings() { return true; }

int RegisterLateXlaKernels(const char* op, ::tensorflow::XlaOpRegistry::Factory factory) {
  int registered = 0;
  for (const char* device : {::tensorflow::DEVICE_CPU_XLA_JIT, ::tensorflow::DEVICE_GPU_XLA_JIT}) {
    if (!::tensorflow::XlaOpRegistry::IsBackendRegistered(device)) continue;
    // Before XLA's first compilation no op has a kernel there yet: then
    // RegisterCompilationKernels will register this op with the others.
    if (!HasKernel(device, "NoOp", false) || HasKernel(device, op, true)) continue;
    auto* def = new ::tensorflow::KernelDef();
    def->set_op(op);
    def->set_device_type(device);
    auto* constraint = def->add_constraint();
    constraint->set_name("T");
    for (const ::tensorflow::DataType t : kLoweredTypes) {
      constraint->mutable_allowed_values()->mutable_list()->add_type(t);
    }
    // Kept for the life of the process, as XLA keeps its own registrars.
    new ::tensorflow::kernel_factory::OpKernelRegistrar(def, "XlaJitOp", factory);
    ++registered;
  }
  return registered;
}

::absl::Status CheckSeedShape(::tensorflow::XlaOpKernelContext* ctx, int index) {
  const auto shape = ctx->InputXlaShape(index);
  if (!shape.ok()) return shape.status();
  if (shape->dimensions().size() != 1 || shape->dimensions(0) != 2) {
    return ::absl::InvalidArgumentError(
        "seed must be an int64 vector of 2 elements, got shape " + ::xla::ShapeUtil::HumanString(*shape));
  }
  return ::absl::OkStatus();
}

::absl::Status CheckStaticShape(const ::xla::Shape& shape, const std::string& what) {
  if (shape.is_static()) return ::absl::OkStatus();
  return ::absl::UnimplementedError(
      what + " under XLA needs a static shape, got " + ::xla::ShapeUtil::HumanString(shape) +
      "; run it outside XLA, or with tensorflow_kappa.composite_ops()");
}

}  // namespace kappa
