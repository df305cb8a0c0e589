// What every XLA lowering of a Kappa> op shares: its registration, and the
// checks of its inputs' shapes at compile time.
//
// Registration timing. REGISTER_XLA_OP adds a lowering to XLA's op registry
// (XlaOpRegistry). XLA turns that registry into kernels on its compilation
// devices (XLA_CPU_JIT, XLA_GPU_JIT) once per process, in
// XlaOpRegistry::RegisterCompilationKernels, which runs at the first XLA
// compilation; lowerings that arrive later are recorded but never become
// kernels, and XLA then reports "No registered 'Kappa>Quantize' OpKernel
// for XLA_CPU_JIT devices". tensorflow_kappa loads its op library on the
// first op call, which may well come after some other function was compiled
// with XLA. So KAPPA_REGISTER_XLA_LOWERING registers through REGISTER_XLA_OP
// and, when the library loads, checks whether XLA's kernels exist already
// (XLA always lowers NoOp): if they do and this op has none, it registers
// the op's kernel on each compilation device itself, as
// RegisterCompilationKernels would have (same KernelDef, same factory).
// Either way the op compiles in every order of loading and compiling.
// (The check and XLA's own registration are not under one lock: a library
// loaded while another thread runs the process's very first XLA compilation
// could, in principle, register one kernel twice.)
#ifndef KAPPA_OPS_XLA_LOWERING_H_
#define KAPPA_OPS_XLA_LOWERING_H_

#include <string>

#include "absl/status/status.h"
#include "tensorflow/compiler/tf2xla/xla_op_kernel.h"
#include "tensorflow/compiler/tf2xla/xla_op_registry.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "xla/shape.h"

namespace kappa {

// The dtypes every Kappa> op takes for its "T" attr.
inline constexpr ::tensorflow::DataType kLoweredTypes[] = {::tensorflow::DT_FLOAT,
                                                            ::tensorflow::DT_DOUBLE};

// Registers `factory`'s kernel for `op` on the XLA compilation devices when
// XLA's kernels were registered before this library loaded (see above).
// Returns the number of kernels it registered (0 in the usual order).
int RegisterLateXlaKernels(const char* op, ::tensorflow::XlaOpRegistry::Factory factory);

struct LateXlaKernelRegistration {
  LateXlaKernelRegistration(const char* op, ::tensorflow::XlaOpRegistry::Factory factory) {
    RegisterLateXlaKernels(op, factory);
  }
};

// Input `index` must be an int64 vector of 2 elements (the seed), as
// ReadSeed requires in the OpKernels.
::absl::Status CheckSeedShape(::tensorflow::XlaOpKernelContext* ctx, int index);

// Element indices and element counts are taken from the static shape: a
// dynamic (bounded) one is refused with a message that names `what`.
::absl::Status CheckStaticShape(const ::xla::Shape& shape, const std::string& what);

}  // namespace kappa

#define KAPPA_XLA_FACTORY(CLASS) \
  [](::tensorflow::OpKernelConstruction* c) -> ::tensorflow::OpKernel* { return new CLASS(c); }

// Registers CLASS (an XlaOpKernel) as the lowering of op NAME for the dtypes
// kLoweredTypes, through XLA's registry, and directly where that registry has
// already become kernels. Use once per op, at namespace scope, after the
// class; the two static objects are constructed in this order.
#define KAPPA_REGISTER_XLA_LOWERING(NAME, CLASS)                               \
  REGISTER_XLA_OP(Name(NAME).TypeConstraint("T", ::kappa::kLoweredTypes), CLASS); \
  static ::kappa::LateXlaKernelRegistration kappa_late_xla_##CLASS(NAME, KAPPA_XLA_FACTORY(CLASS))

#endif  // KAPPA_OPS_XLA_LOWERING_H_
