// XLA lowering of Kappa>UpdateQuantizeStore: reads the resource variable,
// builds UpdateValue (cc/core/update_store/update_store.h) over the whole
// tensor in HLO, assigns the new value to the variable inside the compiled
// graph (as XLA's own resource-variable updates do, through
// XlaOpKernelContext::ReadVariableInput / AssignVariable) and returns
// StatsFromSums of the same sums.
//
// The stored value equals the CPU kernel's bit for bit. The counts are
// exact; the three float64 sums are reduced in an order XLA chooses (the CPU
// kernel's is fixed by its blocks and lanes), so they may differ from the
// kernel's by the rounding of a float64 sum, which is far below the float32
// the results are returned in, except where the sum cancels.
#include <algorithm>

#include "cc/core/update_store/update_store.h"
#include "cc/ops/attrs.h"
#include "cc/ops/xla_fixed_point.h"
#include "cc/ops/xla_lowering.h"

namespace kappa {
namespace {

using ::tensorflow::XlaOpKernelContext;
using ::xla::XlaOp;

// UpdateElement's arrays.
struct UpdateArrays {
  XlaOp w, raw, delta, sum, next;
};

// ApplyStep: Q(v) for a present step, v itself for an absent one.
template <typename C>
XlaOp ApplyStep(bool on, XlaOp v, const Quantizer<C>& q, const hlo::RandomStream* random) {
  return on ? hlo::QuantizeFlushed<C>(v, q, random) : v;
}

template <typename C>
UpdateArrays UpdateValue(XlaOp w, XlaOp g, XlaOp neg_lr, const UpdateConfig& c,
                         const Quantizer<C>& qu, const Quantizer<C>& qs,
                         const hlo::RandomStream* ru, const hlo::RandomStream* rs) {
  UpdateArrays e;
  e.w = hlo::FlushSubnormal<C>(w);
  e.raw = hlo::FlushSubnormal<C>(::xla::Mul(neg_lr, hlo::FlushSubnormal<C>(g)));
  e.delta = ApplyStep<C>(c.has_update_format, e.raw, qu, ru);
  e.sum = hlo::FlushSubnormal<C>(::xla::Add(e.w, e.delta));
  e.next = ApplyStep<C>(c.has_storage_format, e.sum, qs, rs);
  return e;
}

// The random streams of the two steps: the update quantizer keyed by (seed0,
// seed1), the storage quantizer by (seed0, seed1 ^ kStorageSeedXor).
void MakeStreams(XlaOpKernelContext* ctx, const UpdateConfig& c, const ::xla::Shape& shape,
                 hlo::RandomStream* ru, hlo::RandomStream* rs) {
  const bool update = c.has_update_format && c.update_format.rounding == Rounding::kStochastic;
  const bool storage = c.has_storage_format && c.storage_format.rounding == Rounding::kStochastic;
  if (!update && !storage) return;
  XlaOp seed0, seed1;
  hlo::SeedWords(ctx->Input(3), &seed0, &seed1);
  const hlo::ElementIndex index = hlo::ElementIndices(ctx->builder(), shape.dimensions());
  ru->key = hlo::MakeRandomKey(seed0, seed1);
  ru->index = index;
  rs->key = hlo::MakeRandomKey(
      seed0, ::xla::Xor(seed1, hlo::Constant<int64_t>(ctx->builder(), kStorageSeedXor)));
  rs->index = index;
}

// StatsFromSums over the arrays, into the op's five outputs.
template <typename C>
void SetStats(XlaOpKernelContext* ctx, const UpdateArrays& e, const UpdateConfig& c, int64_t n) {
  ::xla::XlaBuilder* b = ctx->builder();
  const XlaOp raw = ::xla::ConvertElementType(e.raw, ::xla::F64);
  const XlaOp d = ::xla::Sub(::xla::ConvertElementType(e.next, ::xla::F64),
                             ::xla::ConvertElementType(e.w, ::xla::F64));
  const XlaOp raw_sq = hlo::SumAll<double>(::xla::Mul(raw, raw));
  const XlaOp actual_sq = hlo::SumAll<double>(::xla::Mul(d, d));
  const XlaOp dot = hlo::SumAll<double>(::xla::Mul(raw, d));
  const XlaOp nonzero = hlo::IsNonzeroNumber<C>(e.raw);
  const XlaOp nonzero_raw = hlo::Count(nonzero);
  const XlaOp underflow =
      hlo::Count(::xla::And(nonzero, ::xla::Eq(e.delta, hlo::Constant<C>(b, C(0)))));
  const XlaOp saturated = c.has_storage_format
                              ? hlo::Count(hlo::BeyondRails<C>(e.sum, MakeRails<C>(c.storage_format)))
                              : hlo::Constant<int64_t>(b, 0);
  const auto to_float = [](XlaOp v) {
    return hlo::FlushSubnormal<float>(::xla::ConvertElementType(v, ::xla::F32));
  };
  ctx->SetOutput(0, to_float(::xla::Sqrt(raw_sq)));
  ctx->SetOutput(1, to_float(::xla::Sqrt(actual_sq)));
  ctx->SetOutput(2, to_float(dot));
  ctx->SetOutput(3, hlo::CountFraction(underflow, nonzero_raw));
  ctx->SetOutput(4, hlo::CountFraction(saturated, hlo::Constant<int64_t>(b, n)));
}

template <typename C>
::absl::Status Update(XlaOpKernelContext* ctx, ::tensorflow::DataType dtype,
                      const UpdateConfig& c, const ::xla::Shape& shape, XlaOp w) {
  const Quantizer<C> qu = MakeQuantizer<C>(c.update_format);
  const Quantizer<C> qs = MakeQuantizer<C>(c.storage_format);
  hlo::RandomStream ru, rs;
  MakeStreams(ctx, c, shape, &ru, &rs);
  const XlaOp neg_lr = hlo::FlushSubnormal<C>(::xla::Neg(ctx->Input(2)));
  const UpdateArrays e = UpdateValue<C>(w, ctx->Input(1), neg_lr, c, qu, qs, &ru, &rs);
  SetStats<C>(ctx, e, c, ::xla::ShapeUtil::ElementsIn(shape));
  return ctx->AssignVariable(0, dtype, e.next);
}

class UpdateQuantizeStoreXlaOp : public ::tensorflow::XlaOpKernel {
 public:
  explicit UpdateQuantizeStoreXlaOp(::tensorflow::OpKernelConstruction* ctx) : XlaOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("T", &dtype_));
    OP_REQUIRES_OK(ctx, ReadUpdateFormats(dtype_, ctx, &config_.has_update_format,
                                          &config_.update_format, &config_.has_storage_format,
                                          &config_.storage_format));
  }

  void Compile(XlaOpKernelContext* ctx) override {
    const auto lr = ctx->InputXlaShape(2);
    OP_REQUIRES_OK(ctx, lr.status());
    OP_REQUIRES(ctx, lr->dimensions().empty(),
                ::absl::InvalidArgumentError("learning_rate must be a scalar, got shape " +
                                             ::xla::ShapeUtil::HumanString(*lr)));
    OP_REQUIRES_OK(ctx, CheckSeedShape(ctx, 3));
    ::tensorflow::TensorShape var_shape;
    XlaOp w;
    OP_REQUIRES_OK(ctx, ctx->ReadVariableInput(0, dtype_, &var_shape, &w));
    const auto grad = ctx->InputXlaShape(1);
    OP_REQUIRES_OK(ctx, grad.status());
    OP_REQUIRES_OK(ctx, CheckStaticShape(*grad, "Kappa>UpdateQuantizeStore"));
    const ::xla::Shape& shape = *grad;
    OP_REQUIRES(ctx,
                var_shape.dims() == static_cast<int>(shape.dimensions().size()) &&
                    std::equal(shape.dimensions().begin(), shape.dimensions().end(),
                               var_shape.dim_sizes().begin()),
                ::absl::InvalidArgumentError("variable shape " + var_shape.DebugString() +
                                             " and grad shape " +
                                             ::xla::ShapeUtil::HumanString(shape) + " differ"));
    OP_REQUIRES_OK(ctx, dtype_ == ::tensorflow::DT_FLOAT
                            ? Update<float>(ctx, dtype_, config_, shape, w)
                            : Update<double>(ctx, dtype_, config_, shape, w));
  }

 private:
  ::tensorflow::DataType dtype_ = ::tensorflow::DT_FLOAT;
  UpdateConfig config_;
};

KAPPA_REGISTER_XLA_LOWERING("Kappa>UpdateQuantizeStore", UpdateQuantizeStoreXlaOp);

}  // namespace
}  // namespace kappa
