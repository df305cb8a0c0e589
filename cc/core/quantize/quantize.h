// Fixed-point quantize functors (Kappa>Quantize): y[i] = Q(x[i]) for a
// FixedPointFormat.
//
// The per-element arithmetic is kappa::QuantizeValue
// (cc/core/formats/fixed_point.h); these functors only walk the tensor. T is
// float or double.
#ifndef KAPPA_CORE_QUANTIZE_QUANTIZE_H_
#define KAPPA_CORE_QUANTIZE_QUANTIZE_H_

#include <cstdint>

#include "cc/core/formats/fixed_point.h"
#include "cc/core/parallel.h"

namespace kappa {

// Quantizes n elements of x into y (x == y is allowed). seed0/seed1 key the
// counter-based generator of stochastic rounding and are ignored otherwise.
template <typename T>
void QuantizeCpu(const T* x, T* y, int64_t n, const FixedPointFormat& format,
                 int64_t seed0, int64_t seed1, const ParallelFor& parallel_for);

// The same on a CUDA stream (a cudaStream_t passed as void* so that callers
// need no CUDA headers). Asynchronous; returns nullptr, or the CUDA error
// message if the launch failed.
template <typename T>
const char* QuantizeGpu(const T* x, T* y, int64_t n,
                        const FixedPointFormat& format, int64_t seed0,
                        int64_t seed1, void* stream);

}  // namespace kappa

#endif  // KAPPA_CORE_QUANTIZE_QUANTIZE_H_
