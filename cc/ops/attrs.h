// Reading and checking what an op's attributes and its seed input say.
//
// An op that takes a format declares the attrs
//   <prefix>bits: int, <prefix>frac_bits: int, <prefix>signed: bool,
//   <prefix>rounding: string, <prefix>overflow: string
// with KAPPA_FORMAT_ATTRS("<prefix>") in its REGISTER_OP chain (the modes'
// allowed values are fixed_point.h's name lists), and its kernel reads them
// with ReadFormat, which rejects formats that the kernel's dtype T cannot
// hold exactly (the same rule the Python layer applies first, with
// friendlier messages).
#ifndef KAPPA_OPS_ATTRS_H_
#define KAPPA_OPS_ATTRS_H_

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "cc/core/fixed_point.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace kappa {

// "<name>: {'a', 'b', ...} = 'a'": a string attr taking one of `names`,
// the first by default.
template <size_t N>
std::string EnumAttr(const std::string& name, const char* const (&names)[N]) {
  std::string spec = name + ": {";
  for (size_t i = 0; i < N; ++i) {
    spec += (i ? ", '" : "'") + std::string(names[i]) + "'";
  }
  return spec + "} = '" + names[0] + "'";
}

}  // namespace kappa

// A fragment of a REGISTER_OP chain; prefix is a string literal.
#define KAPPA_FORMAT_ATTRS(prefix)                                           \
  .Attr(prefix "bits: int")                                                 \
      .Attr(prefix "frac_bits: int")                                        \
      .Attr(prefix "signed: bool = true")                                   \
      .Attr(::kappa::EnumAttr(prefix "rounding", ::kappa::kRoundingNames))  \
      .Attr(::kappa::EnumAttr(prefix "overflow", ::kappa::kOverflowNames))

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

// The index of `name` in `names`, or -1.
template <size_t N>
int FindName(const std::string& name, const char* const (&names)[N]) {
  for (size_t i = 0; i < N; ++i) {
    if (name == names[i]) return static_cast<int>(i);
  }
  return -1;
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
  const int r = FindName(rounding, kRoundingNames);
  const int o = FindName(overflow, kOverflowNames);
  if (r < 0 || o < 0) {
    return ::absl::InvalidArgumentError("unknown " + prefix + (r < 0 ? "rounding '" + rounding
                                                                     : "overflow '" + overflow) +
                                        "'");
  }
  format->rounding = static_cast<Rounding>(r);
  format->overflow = static_cast<Overflow>(o);
  return ::absl::OkStatus();
}

// The two stochastic-rounding seeds from a host int64[2] tensor.
inline ::absl::Status ReadSeed(const ::tensorflow::Tensor& seed, int64_t* seed0,
                               int64_t* seed1) {
  if (seed.dims() != 1 || seed.NumElements() != 2) {
    return ::absl::InvalidArgumentError(
        "seed must be an int64 vector of 2 elements, got shape " +
        seed.shape().DebugString());
  }
  *seed0 = seed.vec<int64_t>()(0);
  *seed1 = seed.vec<int64_t>()(1);
  return ::absl::OkStatus();
}

}  // namespace kappa

#endif  // KAPPA_OPS_ATTRS_H_
