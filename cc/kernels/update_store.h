// The fused weight update: var := Q_storage(var + Q_update(-lr * grad)) in
// one pass, with statistics of what the quantization did to the step (see
// UpdateValue / UpdateSums in fixed_point.h for the per-element definition).
//
// T is float or double. Counts are exact. The double sums are accumulated
// in a fixed order that depends only on n (CPU: blocks of kUpdateBlock
// elements, each summed in kUpdateLanes interleaved lanes, lanes and blocks
// combined in index order; GPU: per-thread grid-stride sums, a fixed
// shuffle tree per block, blocks added in block order by one thread block),
// so results do not depend on the number of threads, and repeat bit for bit.
#ifndef KAPPA_KERNELS_UPDATE_STORE_H_
#define KAPPA_KERNELS_UPDATE_STORE_H_

#include <cstdint>

#include "cc/kernels/fixed_point.h"
#include "cc/kernels/parallel.h"

namespace kappa {

constexpr int64_t kUpdateBlock = 1 << 13;
constexpr int kUpdateLanes = 8;

struct UpdateConfig {
  bool has_update_format = false;
  FixedPointFormat update_format;
  bool has_storage_format = false;
  FixedPointFormat storage_format;
  int64_t seed0 = 0;
  int64_t seed1 = 0;
};

// Updates n elements: reads old[i] and grad[i], writes next[i] (old == next
// for an update in place is allowed; grad must not overlap next otherwise).
// lr is the learning rate. Returns the sums of the statistics.
template <typename T>
UpdateSums UpdateStoreCpu(const T* old, T* next, const T* grad, T lr, int64_t n,
                          const UpdateConfig& config,
                          const ParallelFor& parallel_for);

// Bytes of device scratch UpdateStoreGpu needs for n elements (current
// device): per-block partial sums plus the total.
int64_t UpdateStoreGpuScratchBytes(int64_t n);

// Device pointers to the five float32 results (UpdateStats' fields).
struct UpdateStatsOutputs {
  float* raw_update_norm;
  float* actual_update_norm;
  float* update_dot;
  float* update_underflow_fraction;
  float* storage_saturation_fraction;
};

// The same on a CUDA stream, asynchronous, with no host synchronisation: lr
// is a device pointer to the learning rate, scratch is device memory of
// UpdateStoreGpuScratchBytes(n) bytes (the total UpdateSums are left at its
// start), outputs are device pointers. Returns nullptr or the CUDA error.
template <typename T>
const char* UpdateStoreGpu(const T* old, T* next, const T* grad, const T* lr,
                           int64_t n, const UpdateConfig& config, void* scratch,
                           const UpdateStatsOutputs& outputs, void* stream);

}  // namespace kappa

#endif  // KAPPA_KERNELS_UPDATE_STORE_H_
