// The fused weight update (Kappa>UpdateQuantizeStore):
// var := Q_storage(var + Q_update(-lr * grad)) in one pass, with statistics
// of what the quantization did to the step.
//
// Per element, with w the stored weight, g the gradient and lr the learning
// rate, in the compute type C, every value read through FlushSubnormal (the
// functors flush lr):
//   raw   = (-lr) * g
//   delta = Q_update(raw)      (raw when there is no update format)
//   sum   = w + delta
//   next  = Q_storage(sum)     (sum when there is no storage format)
// and the statistics, in double:
//   raw_sq += raw^2, actual_sq += (next - w)^2, dot += raw * (next - w)
//   (next - w is taken in double: exact for float storage),
//   nonzero_raw += raw is a nonzero number, underflow += that and delta == 0,
//   saturated += sum lies beyond the storage rails (storage format only).
// Stochastic rounding in the update quantizer is keyed by (seed0, seed1), as
// quantize_tensor is (so delta equals quantize_tensor(raw, fmt, seed)); the
// storage quantizer by (seed0, seed1 ^ kStorageSeedXor), so that the two
// draw independently.
//
// T is float or double. Counts are exact. The double sums are accumulated
// in a fixed order that depends only on n (CPU: blocks of kUpdateBlock
// elements, each summed in kUpdateLanes interleaved lanes, lanes and blocks
// combined in index order; GPU: per-thread grid-stride sums, a fixed
// shuffle tree per block, blocks added in block order by one thread block),
// so results do not depend on the number of threads, and repeat bit for bit.
#ifndef KAPPA_CORE_UPDATE_STORE_UPDATE_STORE_H_
#define KAPPA_CORE_UPDATE_STORE_UPDATE_STORE_H_

#include <cmath>
#include <cstdint>

#include "cc/core/formats/fixed_point.h"
#include "cc/core/parallel.h"

namespace kappa {

constexpr int64_t kStorageSeedXor = 0x2545F491;
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

// A quantization step that may be absent, as a type: kOn false is the
// identity (the modes are then unused).
template <bool kOn, Rounding R, Overflow O>
struct Step : Modes<R, O> {
  static constexpr bool on = kOn;
};
using NoStep = Step<false, Rounding::kNearestEven, Overflow::kSaturate>;

// v is already flushed.
template <typename S, typename C>
KAPPA_HD C ApplyStep(C v, const Quantizer<C>& q, uint64_t index) {
  if constexpr (S::on) {
    return QuantizeFlushed<S::rounding, S::overflow>(v, q, index);
  } else {
    return v;
  }
}

// Calls f(U{}, S{}) with the Step types of the config's update (U) and
// storage (S) steps, so that the functors are instantiated once per pair of
// steps (11 x 11: absent, or one of the 10 mode pairs).
template <typename F>
inline void DispatchSteps(const UpdateConfig& c, F&& f) {
  const auto with_step = [](bool on, const FixedPointFormat& format, auto&& then) {
    if (!on) return then(NoStep{});
    DispatchModes(format.rounding, format.overflow, [&](auto m) {
      using M = decltype(m);
      then(Step<true, M::rounding, M::overflow>{});
    });
  };
  with_step(c.has_update_format, c.update_format, [&](auto u) {
    with_step(c.has_storage_format, c.storage_format, [&](auto s) { f(u, s); });
  });
}

template <typename C>
struct UpdateElement {
  C w;  // the stored weight, flushed
  C raw;
  C delta;
  C sum;
  C next;
};

template <typename U, typename S, typename C>
KAPPA_HD UpdateElement<C> UpdateValue(C w, C g, C neg_lr, const Quantizer<C>& qu,
                                      const Quantizer<C>& qs, uint64_t index) {
  UpdateElement<C> e;
  e.w = FlushSubnormal(w);
  e.raw = FlushSubnormal(neg_lr * FlushSubnormal(g));
  e.delta = ApplyStep<U>(e.raw, qu, index);
  e.sum = FlushSubnormal(e.w + e.delta);
  e.next = ApplyStep<S>(e.sum, qs, index);
  return e;
}

struct UpdateSums {
  double raw_sq = 0.0;
  double actual_sq = 0.0;
  double dot = 0.0;
  int64_t total = 0;
  int64_t nonzero_raw = 0;
  int64_t underflow = 0;
  int64_t saturated = 0;

  // The sums of two disjoint parts add up to the sums of their union (the
  // double sums in the order of the calls).
  KAPPA_HD UpdateSums& operator+=(const UpdateSums& o) {
    raw_sq += o.raw_sq;
    actual_sq += o.actual_sq;
    dot += o.dot;
    total += o.total;
    nonzero_raw += o.nonzero_raw;
    underflow += o.underflow;
    saturated += o.saturated;
    return *this;
  }
};

struct UpdateStats {
  float raw_update_norm = 0.0f;
  float actual_update_norm = 0.0f;
  float update_dot = 0.0f;
  float update_underflow_fraction = 0.0f;
  float storage_saturation_fraction = 0.0f;
};

#if defined(__CUDA_ARCH__)
KAPPA_HD double Sqrt(double v) { return sqrt(v); }
#else
KAPPA_HD double Sqrt(double v) { return std::sqrt(v); }
#endif

// The float32 results, read through FlushSubnormal like every value (a norm
// or dot product below float32's smallest normal number reports as 0).
KAPPA_HD UpdateStats StatsFromSums(const UpdateSums& s) {
  UpdateStats t;
  t.raw_update_norm = FlushSubnormal(static_cast<float>(Sqrt(s.raw_sq)));
  t.actual_update_norm = FlushSubnormal(static_cast<float>(Sqrt(s.actual_sq)));
  t.update_dot = FlushSubnormal(static_cast<float>(s.dot));
  t.update_underflow_fraction = CountFraction(s.underflow, s.nonzero_raw);
  t.storage_saturation_fraction = CountFraction(s.saturated, s.total);
  return t;
}

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

#endif  // KAPPA_CORE_UPDATE_STORE_UPDATE_STORE_H_
