// Reading and checking what an op's attributes and its seed input say.
//
// An op that takes a format declares the attrs
//   <prefix>bits: int, <prefix>frac_bits: int, <prefix>signed: bool,
//   <prefix>rounding: string, <prefix>overflow: string
// with KAPPA_FORMAT_ATTRS("<prefix>") in its REGISTER_OP chain (the modes'
// allowed values are formats/rounding.h's name lists), and its kernel reads them
// with ReadFormat, which rejects formats that the kernel's dtype T cannot
// hold exactly (the rule the Python layer applies first). Every check here
// stands on its own: graphs can be built without the Python wrappers, so an
// attr may hold any value of its type, and an error names the attr and the
// range it takes.
#ifndef KAPPA_OPS_ATTRS_H_
#define KAPPA_OPS_ATTRS_H_

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include "cc/core/formats/fixed_point.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"

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

// The formats whose every value is exactly representable in T, as ranges of
// the attrs. Graph attrs are int64 and may hold any value (a graph can be
// built without the Python wrappers), so every bound is compared in int64:
// no attr value overflows a check.
//   bits:      1 (unsigned) or 2 (signed) to min(32, T's significand bits):
//              every code is an integer T holds exactly;
//   frac_bits: bits - max_exponent to 1 - min_exponent (float32: bits - 128
//              to 126): the rails 2^(bits - frac_bits) stay finite and the
//              step 2^-frac_bits is a normal number (subnormal grid points
//              would be flushed to zero by TensorFlow's CPU kernels).
template <typename T>
struct FormatRange {
  static constexpr int64_t kMaxBits =
      std::numeric_limits<T>::digits < 32 ? std::numeric_limits<T>::digits : 32;
  static int64_t MinBits(bool is_signed) { return is_signed ? 2 : 1; }
  static int64_t MinFracBits(int64_t bits) {
    return bits - std::numeric_limits<T>::max_exponent;
  }
  static constexpr int64_t kMaxFracBits = 1 - std::numeric_limits<T>::min_exponent;
};

template <typename T>
::absl::Status CheckFormat(const std::string& prefix, int64_t bits, int64_t frac_bits,
                           bool is_signed) {
  using Range = FormatRange<T>;
  const std::string dtype = ::tensorflow::DataTypeString(::tensorflow::DataTypeToEnum<T>::value);
  const int64_t min_bits = Range::MinBits(is_signed);
  if (bits < min_bits || bits > Range::kMaxBits) {
    return ::absl::InvalidArgumentError(
        prefix + "bits=" + std::to_string(bits) + " is out of range: a " +
        (is_signed ? "signed" : "unsigned") + " format of dtype " + dtype + " takes " +
        std::to_string(min_bits) + " to " + std::to_string(Range::kMaxBits) + " bits");
  }
  const int64_t min_frac = Range::MinFracBits(bits);
  if (frac_bits < min_frac || frac_bits > Range::kMaxFracBits) {
    return ::absl::InvalidArgumentError(
        prefix + "frac_bits=" + std::to_string(frac_bits) + " is out of range: a format of " +
        std::to_string(bits) + " bits and dtype " + dtype + " takes frac_bits from " +
        std::to_string(min_frac) + " to " + std::to_string(Range::kMaxFracBits) +
        " (finite rails, a normal step)");
  }
  return ::absl::OkStatus();
}

// Reads the format attrs with the given prefix and checks them (CheckFormat;
// the modes' values are checked by TensorFlow against the attrs' lists).
template <typename T>
::absl::Status ReadFormat(::tensorflow::OpKernelConstruction* ctx,
                          const std::string& prefix, FixedPointFormat* format) {
  int64_t bits = 0, frac_bits = 0;
  bool is_signed = true;
  std::string rounding, overflow;
  TF_RETURN_IF_ERROR(ctx->GetAttr(prefix + "bits", &bits));
  TF_RETURN_IF_ERROR(ctx->GetAttr(prefix + "frac_bits", &frac_bits));
  TF_RETURN_IF_ERROR(ctx->GetAttr(prefix + "signed", &is_signed));
  TF_RETURN_IF_ERROR(ctx->GetAttr(prefix + "rounding", &rounding));
  TF_RETURN_IF_ERROR(ctx->GetAttr(prefix + "overflow", &overflow));
  TF_RETURN_IF_ERROR(CheckFormat<T>(prefix, bits, frac_bits, is_signed));
  const int r = ModeIndex(rounding.c_str(), kRoundingNames);
  if (r < 0) {
    return ::absl::InvalidArgumentError(prefix + "rounding='" + rounding + "' is not a rounding mode");
  }
  const int o = ModeIndex(overflow.c_str(), kOverflowNames);
  if (o < 0) {
    return ::absl::InvalidArgumentError(prefix + "overflow='" + overflow + "' is not an overflow mode");
  }
  format->bits = static_cast<int32_t>(bits);  // in range: checked above
  format->frac_bits = static_cast<int32_t>(frac_bits);
  format->is_signed = is_signed;
  format->rounding = static_cast<Rounding>(r);
  format->overflow = static_cast<Overflow>(o);
  return ::absl::OkStatus();
}

// ReadFormat for the dtype held in the op's "T" attr (float or double).
inline ::absl::Status ReadFormatOf(::tensorflow::DataType dtype,
                                   ::tensorflow::OpKernelConstruction* ctx,
                                   const std::string& prefix, FixedPointFormat* format) {
  switch (dtype) {
    case ::tensorflow::DT_FLOAT:
      return ReadFormat<float>(ctx, prefix, format);
    case ::tensorflow::DT_DOUBLE:
      return ReadFormat<double>(ctx, prefix, format);
    default:
      return ::absl::InvalidArgumentError("T=" + ::tensorflow::DataTypeString(dtype) +
                                          " is not a dtype of the ops: float or double");
  }
}

// The fused update's optional formats: has_update_format with the update_*
// attrs, has_storage_format with the storage_* attrs (a format's attrs are
// read and checked only when its has_* attr is true).
inline ::absl::Status ReadUpdateFormats(::tensorflow::DataType dtype,
                                        ::tensorflow::OpKernelConstruction* ctx,
                                        bool* has_update, FixedPointFormat* update,
                                        bool* has_storage, FixedPointFormat* storage) {
  TF_RETURN_IF_ERROR(ctx->GetAttr("has_update_format", has_update));
  TF_RETURN_IF_ERROR(ctx->GetAttr("has_storage_format", has_storage));
  if (*has_update) TF_RETURN_IF_ERROR(ReadFormatOf(dtype, ctx, "update_", update));
  if (*has_storage) TF_RETURN_IF_ERROR(ReadFormatOf(dtype, ctx, "storage_", storage));
  return ::absl::OkStatus();
}

// Reads the float attr `name` and checks that it is a number in [0, 1] (NaN
// and infinities are not).
inline ::absl::Status ReadUnitInterval(::tensorflow::OpKernelConstruction* ctx,
                                       const std::string& name, double* value) {
  float v = 0.0f;
  TF_RETURN_IF_ERROR(ctx->GetAttr(name, &v));
  if (!(v >= 0.0f && v <= 1.0f)) {
    std::ostringstream got;
    got << v;
    return ::absl::InvalidArgumentError(name + "=" + got.str() +
                                        " is out of range: it takes a number in [0, 1]");
  }
  *value = v;
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
