// XLA lowering of Kappa>Quantize: QuantizeValue (formats/fixed_point.h) over the
// whole input, in HLO, so that XLA fuses it with its producer and consumers.
// Same attrs checks as the OpKernel (ReadFormat), same values bit for bit.
#include "cc/ops/attrs.h"
#include "cc/ops/xla_fixed_point.h"
#include "cc/ops/xla_lowering.h"

namespace kappa {
namespace {

using ::tensorflow::XlaOpKernelContext;

template <typename C>
::xla::XlaOp Quantize(XlaOpKernelContext* ctx, const ::xla::Shape& shape,
                      const FixedPointFormat& format) {
  const Quantizer<C> q = MakeQuantizer<C>(format);
  hlo::RandomStream random;
  if (format.rounding == Rounding::kStochastic) {
    ::xla::XlaOp seed0, seed1;
    hlo::SeedWords(ctx->Input(1), &seed0, &seed1);
    random.key = hlo::MakeRandomKey(seed0, seed1);
    random.index = hlo::ElementIndices(ctx->builder(), shape.dimensions());
  }
  return hlo::QuantizeValue<C>(ctx->Input(0), q, &random);
}

class QuantizeXlaOp : public ::tensorflow::XlaOpKernel {
 public:
  explicit QuantizeXlaOp(::tensorflow::OpKernelConstruction* ctx) : XlaOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("T", &dtype_));
    OP_REQUIRES_OK(ctx, ReadFormatOf(dtype_, ctx, "", &format_));
  }

  void Compile(XlaOpKernelContext* ctx) override {
    OP_REQUIRES_OK(ctx, CheckSeedShape(ctx, 1));
    const auto shape = ctx->InputXlaShape(0);
    OP_REQUIRES_OK(ctx, shape.status());
    if (format_.rounding == Rounding::kStochastic) {
      OP_REQUIRES_OK(ctx, CheckStaticShape(*shape, "Kappa>Quantize with stochastic rounding"));
    }
    ctx->SetOutput(0, dtype_ == ::tensorflow::DT_FLOAT ? Quantize<float>(ctx, *shape, format_)
                                                       : Quantize<double>(ctx, *shape, format_));
  }

 private:
  ::tensorflow::DataType dtype_ = ::tensorflow::DT_FLOAT;
  FixedPointFormat format_;
};

KAPPA_REGISTER_XLA_LOWERING("Kappa>Quantize", QuantizeXlaOp);

}  // namespace
}  // namespace kappa
