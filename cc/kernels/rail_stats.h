// Rail statistics functors: one pass over x counting, per the predicates of
// fixed_point.h, the elements beyond the rails of a format, near them, and
// the nonzero ones that the format rounds to zero.
//
// Counts are exact integers, so the result does not depend on how the work
// is split. T is float or double.
#ifndef KAPPA_KERNELS_RAIL_STATS_H_
#define KAPPA_KERNELS_RAIL_STATS_H_

#include <cstdint>

#include "cc/kernels/fixed_point.h"
#include "cc/kernels/parallel.h"

namespace kappa {

// Counts over n elements of x. Only the format's bits, frac_bits and
// signedness matter (underflow is defined by nearest-even saturating
// rounding, whatever the format's modes). near_rail is in [0, 1].
template <typename T>
RailCounts RailStatsCpu(const T* x, int64_t n, const FixedPointFormat& format,
                        double near_rail, const ParallelFor& parallel_for);

// Bytes of device scratch that RailStatsGpu needs for n elements (on the
// current device): per-block partial counts plus the total.
int64_t RailStatsGpuScratchBytes(int64_t n);

// The same on a CUDA stream, asynchronous and without host synchronisation:
// a grid-stride kernel writes per-block partial counts into `scratch`
// (device memory of RailStatsGpuScratchBytes(n) bytes), a second one-block
// kernel adds them in block order, stores the total RailCounts at the start
// of `scratch` and the three fractions (FractionsFromCounts) at the device
// pointers `saturation`, `near_rail_fraction`, `underflow`. Returns nullptr,
// or the CUDA error message if a launch failed.
template <typename T>
const char* RailStatsGpu(const T* x, int64_t n, const FixedPointFormat& format,
                         double near_rail, void* scratch, float* saturation,
                         float* near_rail_fraction, float* underflow,
                         void* stream);

}  // namespace kappa

#endif  // KAPPA_KERNELS_RAIL_STATS_H_
