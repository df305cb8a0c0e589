#include "cc/core/quantize/quantize.h"

#include "cc/core/cpu_dispatch.h"

namespace kappa {
namespace {

// Elements per block handed to the thread pool; the loop inside a block is
// what the compiler vectorises.
constexpr int64_t kBlock = 1 << 14;
// Rough cycles per element, for the thread pool's cost model.
constexpr int64_t kCostPerBlock = kBlock * 4;

// The hot loop, compiled per CPU path (cpu_dispatch.h): `count` elements
// from flat index `base`. The quantizer comes by value (a local of the
// clone, which the stores to `out` cannot alias), its key already holding
// the high half of the index.
template <Rounding R, Overflow O, typename T>
struct QuantizeLoop {
  static KAPPA_CPU_KERNEL void Run(const T* in, T* out, uint32_t count, uint32_t base,
                                   Quantizer<T> q) {
    for (uint32_t k = 0; k < count; ++k) out[k] = QuantizeValue<R, O>(in[k], q, base + k);
  }
};

template <Rounding R, Overflow O, typename T>
void QuantizeBlocks(const T* in, T* out, int64_t n, const Quantizer<T>& q,
                    const ParallelFor& parallel_for) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const auto loop = CpuKernel<QuantizeLoop<R, O, T>>();
  // `in` may alias `out`: each element is read before it is written.
  parallel_for(blocks, kCostPerBlock, [=](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * kBlock;
      const int64_t end = begin + kBlock < n ? begin + kBlock : n;
      // A block never crosses a multiple of 2^32 (kBlock divides it): fold
      // the high half of the index into the key once, so that the
      // vectorised loop hashes 32-bit indices (same numbers: RandomBits).
      Quantizer<T> keyed = q;
      keyed.key = KeyForHighBits(q.key, static_cast<uint32_t>(begin >> 32));
      loop(in + begin, out + begin, static_cast<uint32_t>(end - begin),
           static_cast<uint32_t>(begin), keyed);
    }
  });
}

}  // namespace

template <typename T>
void QuantizeCpu(const T* x, T* y, int64_t n, const FixedPointFormat& format,
                 int64_t seed0, int64_t seed1, const ParallelFor& parallel_for) {
  const Quantizer<T> q = MakeQuantizer<T>(format, seed0, seed1);
  DispatchModes(format.rounding, format.overflow, [&](auto m) {
    using M = decltype(m);
    QuantizeBlocks<M::rounding, M::overflow>(x, y, n, q, parallel_for);
  });
}

template void QuantizeCpu<float>(const float*, float*, int64_t,
                                 const FixedPointFormat&, int64_t, int64_t,
                                 const ParallelFor&);
template void QuantizeCpu<double>(const double*, double*, int64_t,
                                  const FixedPointFormat&, int64_t, int64_t,
                                  const ParallelFor&);

}  // namespace kappa
