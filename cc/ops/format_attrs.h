// Reading and checking a fixed-point format from an op's attributes.
//
// An op that takes a format declares the attrs
//   <prefix>bits: int, <prefix>frac_bits: int, <prefix>signed: bool,
//   <prefix>rounding: string, <prefix>overflow: string
// with KAPPA_FORMAT_ATTRS("<prefix>") in its REGISTER_OP chain, and its kernel
// reads them with ReadFormat, which
// rejects formats that the kernel's dtype T cannot hold exactly (the same
// rule the Python layer applies first, with friendlier messages).
#ifndef KAPPA_OPS_FORMAT_ATTRS_H_
#define KAPPA_OPS_FORMAT_ATTRS_H_

#include <cmath>
#include <limits>
#include <string>

#include "cc/kernels/fixed_point.h"
#include "tensorflow/core/framework/op_kernel.h"

// A fragment of a REGISTER_OP chain; prefix is a string literal.
#define KAPPA_FORMAT_ATTRS(prefix)                                          \
  .Attr(prefix "bits: int")                                                \
      .Attr(prefix "frac_bits: int")                                       \
      .Attr(prefix "signed: bool = true")                                  \
      .Attr(prefix                                                         \
            "rounding: {'nearest_even', 'nearest_away', 'truncate', "      \
            "'toward_zero', 'stochastic'} = 'nearest_even'")               \
      .Attr(prefix "overflow: {'saturate', 'wrap'} = 'saturate'")

namespace kappa {

// Whether every value of the format is exactly representable in T.
template <typename T>
bool FormatFitsType(const FixedPointFormat& f) {
  const int digits = std::numeric_limits<T>::digits;
  const int max_exponent = std::numeric_limits<T>::max_exponent;
  // The smallest normal number is 2^(min_exponent - 1): subnormal grid
  // points would be flushed to zero by TensorFlow's CPU kernels.
  const int min_exponent = std::numeric_limits<T>::min_exponent - 1;
  // The rails +-2^(bits-1-frac_bits) (signed) or 2^(bits-frac_bits) - lsb
  // (unsigned) stay finite, the lsb is a normal number, and
  // no code has more significant bits than T.
  return f.bits <= digits && -f.frac_bits >= min_exponent &&
         f.bits - f.frac_bits <= max_exponent;
}

template <typename T>
::absl::Status ReadFormat(::tensorflow::OpKernelConstruction* ctx,
                          const std::string& prefix, FixedPointFormat* format) {
  std::string rounding, overflow;
  TF_RETURN_IF_ERROR(ctx->GetAttr(prefix + "bits", &format->bits));
  TF_RETURN_IF_ERROR(ctx->GetAttr(prefix + "frac_bits", &format->frac_bits));
  TF_RETURN_IF_ERROR(ctx->GetAttr(prefix + "signed", &format->is_signed));
  TF_RETURN_IF_ERROR(ctx->GetAttr(prefix + "rounding", &rounding));
  TF_RETURN_IF_ERROR(ctx->GetAttr(prefix + "overflow", &overflow));
  const int min_bits = format->is_signed ? 2 : 1;
  if (format->bits < min_bits || format->bits > 32) {
    return ::absl::InvalidArgumentError(
        prefix + "bits=" + std::to_string(format->bits) + " is out of range: " +
        (format->is_signed ? "signed" : "unsigned") + " formats take " +
        std::to_string(min_bits) + " to 32 bits");
  }
  if (!FormatFitsType<T>(*format)) {
    return ::absl::InvalidArgumentError(
        "format " + std::string(format->is_signed ? "s" : "u") +
        std::to_string(format->bits) + "." + std::to_string(format->frac_bits) +
        " is not exactly representable in this dtype; use a wider dtype");
  }
  static const char* kRoundings[] = {"nearest_even", "nearest_away", "truncate",
                                     "toward_zero", "stochastic"};
  for (int i = 0; i < 5; ++i) {
    if (rounding == kRoundings[i]) format->rounding = static_cast<Rounding>(i);
  }
  format->overflow = overflow == "wrap" ? Overflow::kWrap : Overflow::kSaturate;
  return ::absl::OkStatus();
}

}  // namespace kappa

#endif  // KAPPA_OPS_FORMAT_ATTRS_H_
