// XLA lowering of Kappa>RailStats: TallyRail (cc/core/rail_stats/rail_stats.h)
// over the whole input as five int64 counts, then CountsFromTally and
// FractionsFromCounts. The thresholds are MakeRailBounds' own, computed on
// the host; counts are exact in any order, so the fractions equal the CPU
// kernel's bit for bit.
#include <limits>

#include "cc/core/rail_stats/rail_stats.h"
#include "cc/ops/attrs.h"
#include "cc/ops/xla_fixed_point.h"
#include "cc/ops/xla_lowering.h"

namespace kappa {
namespace {

using ::tensorflow::XlaOpKernelContext;
using ::xla::XlaOp;

template <typename C>
XlaOp NearRail(XlaOp x, const RailBounds<C>& b) {
  return ::xla::Or(::xla::Ge(x, hlo::Constant<C>(x.builder(), b.near_high)),
                   ::xla::Le(x, hlo::Constant<C>(x.builder(), b.near_low)));
}

// RailTally<int64>: the five counts TallyRail adds up.
struct Tally {
  XlaOp saturated, near_rail, in_zero_set, zeros, zero_or_nan;
};

template <typename C>
Tally TallyRail(XlaOp x, const RailBounds<C>& b) {
  ::xla::XlaBuilder* builder = x.builder();
  const XlaOp a = ::xla::Abs(x);
  const XlaOp min = hlo::Constant<C>(builder, std::numeric_limits<C>::min());
  Tally t;
  t.saturated = hlo::Count(hlo::BeyondRails<C>(x, b.rails));
  t.near_rail = hlo::Count(NearRail<C>(x, b));
  t.in_zero_set = hlo::Count(::xla::And(::xla::Ge(x, hlo::Constant<C>(builder, b.zero_low)),
                                        ::xla::Le(x, hlo::Constant<C>(builder, b.zero_high))));
  t.zeros = hlo::Count(::xla::Lt(a, min));
  t.zero_or_nan = hlo::Count(::xla::Not(::xla::Ge(a, min)));
  return t;
}

template <typename C>
void RailStats(XlaOpKernelContext* ctx, int64_t n, const FixedPointFormat& format,
               double near_rail) {
  const Tally t = TallyRail<C>(ctx->Input(0), MakeRailBounds<C>(format, near_rail));
  // CountsFromTally, then FractionsFromCounts.
  const XlaOp total = hlo::Constant<int64_t>(ctx->builder(), n);
  const XlaOp nonzero = ::xla::Sub(total, t.zero_or_nan);
  const XlaOp underflow = ::xla::Sub(t.in_zero_set, t.zeros);
  ctx->SetOutput(0, hlo::CountFraction(t.saturated, total));
  ctx->SetOutput(1, hlo::CountFraction(t.near_rail, total));
  ctx->SetOutput(2, hlo::CountFraction(underflow, nonzero));
}

class RailStatsXlaOp : public ::tensorflow::XlaOpKernel {
 public:
  explicit RailStatsXlaOp(::tensorflow::OpKernelConstruction* ctx) : XlaOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("T", &dtype_));
    OP_REQUIRES_OK(ctx, ReadFormatOf(dtype_, ctx, "", &format_));
    OP_REQUIRES_OK(ctx, ReadUnitInterval(ctx, "near_rail", &near_rail_));
  }

  void Compile(XlaOpKernelContext* ctx) override {
    const auto shape = ctx->InputXlaShape(0);
    OP_REQUIRES_OK(ctx, shape.status());
    OP_REQUIRES_OK(ctx, CheckStaticShape(*shape, "Kappa>RailStats"));
    const int64_t n = ::xla::ShapeUtil::ElementsIn(*shape);
    if (dtype_ == ::tensorflow::DT_FLOAT) {
      RailStats<float>(ctx, n, format_, near_rail_);
    } else {
      RailStats<double>(ctx, n, format_, near_rail_);
    }
  }

 private:
  ::tensorflow::DataType dtype_ = ::tensorflow::DT_FLOAT;
  FixedPointFormat format_;
  double near_rail_ = 0.9;
};

KAPPA_REGISTER_XLA_LOWERING("Kappa>RailStats", RailStatsXlaOp);

}  // namespace
}  // namespace kappa
