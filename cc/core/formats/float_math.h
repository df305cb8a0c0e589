// The float operations every format of the arithmetic builds on, for the
// host and the device: KAPPA_HD, the few math functions the formats use
// (float stays float on both sides), NaN and infinity tests, and how every
// value is read (FlushSubnormal; docs/rounding.md, "Reading a value").
//
// Inline, no TensorFlow, parsed by nvcc, g++ and NVRTC alike (rtc_std.h
// stands in for the standard headers under NVRTC).
#ifndef KAPPA_CORE_FORMATS_FLOAT_MATH_H_
#define KAPPA_CORE_FORMATS_FLOAT_MATH_H_

#include <cmath>
#include <limits>

#if defined(__CUDACC__)
#define KAPPA_HD __host__ __device__ __forceinline__
#else
#define KAPPA_HD inline
#endif

namespace kappa {

// Host/device overloads of the few math functions used by the formats, so
// that float stays float on both sides (the C library's unsuffixed functions
// are double).
#if defined(__CUDA_ARCH__)
KAPPA_HD float Rint(float v) { return rintf(v); }
KAPPA_HD double Rint(double v) { return rint(v); }
KAPPA_HD float Floor(float v) { return floorf(v); }
KAPPA_HD double Floor(double v) { return floor(v); }
KAPPA_HD float Trunc(float v) { return truncf(v); }
KAPPA_HD double Trunc(double v) { return trunc(v); }
KAPPA_HD float Abs(float v) { return fabsf(v); }
KAPPA_HD double Abs(double v) { return fabs(v); }
#else
KAPPA_HD float Rint(float v) { return std::rint(v); }
KAPPA_HD double Rint(double v) { return std::rint(v); }
KAPPA_HD float Floor(float v) { return std::floor(v); }
KAPPA_HD double Floor(double v) { return std::floor(v); }
KAPPA_HD float Trunc(float v) { return std::trunc(v); }
KAPPA_HD double Trunc(double v) { return std::trunc(v); }
KAPPA_HD float Abs(float v) { return std::fabs(v); }
KAPPA_HD double Abs(double v) { return std::fabs(v); }
#endif
template <typename C>
KAPPA_HD bool IsNan(C v) { return v != v; }
template <typename C>
KAPPA_HD bool IsInf(C v) {
  // Non-short-circuit operators keep the element loops branch-free.
  return (v == std::numeric_limits<C>::infinity()) |
         (v == -std::numeric_limits<C>::infinity());
}

// TensorFlow's CPU kernels run with denormals flushed to zero (FTZ/DAZ), so
// there a subnormal value already reads as zero; GPUs keep subnormals. To
// give one answer on every device, the kernels flush explicitly: a subnormal
// input is the zero of its sign (x * 0 keeps the sign, also under DAZ).
template <typename C>
KAPPA_HD C FlushSubnormal(C x) {
  return Abs(x) < std::numeric_limits<C>::min() ? x * C(0) : x;
}

// x is a number, and not zero once flushed: |x| >= min, or infinite.
template <typename C>
KAPPA_HD bool IsNonzeroNumber(C x) {
  return Abs(x) >= std::numeric_limits<C>::min();
}

}  // namespace kappa

#endif  // KAPPA_CORE_FORMATS_FLOAT_MATH_H_
