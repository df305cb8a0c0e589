// The few standard-library names the CUDA functors' headers use, for NVRTC,
// which compiles the kernels at first use (gpu_rtc.h) and has no standard
// headers of its own. gpu_rtc.cc hands NVRTC this file under each of the
// names <cmath>, <cstdint>, <cstring>, <functional>, <limits> and
// <type_traits>.
//
// NVRTC compiles with -default-device (gpu_rtc.cc): every function without
// an execution-space annotation is a device function, host-only code of the
// headers included (MakeQuantizer, the CPU functor declarations) too, which
// no kernel calls and so is never compiled. Device code gets definitions
// (fixed-width integers, numeric_limits of float and double,
// is_trivially_copyable); the host-only code gets declarations.
#ifndef KAPPA_CORE_RTC_STD_H_
#define KAPPA_CORE_RTC_STD_H_

#if !defined(__CUDACC_RTC__)
#error "cc/core/rtc_std.h stands in for standard headers under NVRTC only"
#endif

typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long int64_t;  // NVRTC follows the host's LP64 data model
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long uint64_t;
typedef decltype(sizeof(0)) size_t;

namespace std {

using ::int16_t;
using ::int32_t;
using ::int64_t;
using ::int8_t;
using ::size_t;
using ::uint16_t;
using ::uint32_t;
using ::uint64_t;
using ::uint8_t;

template <typename T>
struct numeric_limits;

// The members the device code reads: the smallest normal number and
// infinity.
template <>
struct numeric_limits<float> {
  static constexpr float min() { return 0x1p-126f; }
  static float infinity() { return __int_as_float(0x7f800000); }
};

template <>
struct numeric_limits<double> {
  static constexpr double min() { return 0x1p-1022; }
  static double infinity() { return __longlong_as_double(0x7ff0000000000000LL); }
};

template <typename T>
struct is_trivially_copyable {
  static constexpr bool value = __is_trivially_copyable(T);
};

// Host-only names: declared for parsing, never compiled by NVRTC.
float ldexp(float, int);
double ldexp(double, int);
float fabs(float);
double fabs(double);
float nextafter(float, float);
double nextafter(double, double);
float floor(float);
double floor(double);
float trunc(float);
double trunc(double);
float rint(float);
double rint(double);
double sqrt(double);

template <typename Signature>
class function;
template <typename R, typename... A>
class function<R(A...)> {
 public:
  R operator()(A...) const;
};

}  // namespace std

#endif  // KAPPA_CORE_RTC_STD_H_
