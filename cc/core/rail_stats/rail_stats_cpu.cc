#include <vector>

#include "cc/core/cpu_dispatch.h"
#include "cc/core/rail_stats/rail_stats.h"

namespace kappa {
namespace {

// Elements per block handed to the thread pool (a multiple of the vector
// width; int32 counters cannot overflow within a block).
constexpr int64_t kBlock = 1 << 14;
constexpr int64_t kCostPerBlock = kBlock * 3;

// The loop the compiler vectorises (compiled per CPU path, cpu_dispatch.h):
// branch-free predicates (TallyRail), int32 counters.
template <typename T>
struct CountLoop {
  static KAPPA_CPU_KERNEL RailCounts Run(const T* x, int64_t n, RailBounds<T> b) {
    RailTally<int32_t> t;
    for (int64_t i = 0; i < n; ++i) TallyRail(x[i], b, t);
    return CountsFromTally(n, t);
  }
};

}  // namespace

template <typename T>
RailCounts RailStatsCpu(const T* x, int64_t n, const FixedPointFormat& format,
                        double near_rail, const ParallelFor& parallel_for) {
  const RailBounds<T> b = MakeRailBounds<T>(format, near_rail);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<RailCounts> partial(static_cast<size_t>(blocks));
  RailCounts* out = partial.data();
  const auto count = CpuKernel<CountLoop<T>>();
  parallel_for(blocks, kCostPerBlock, [=](int64_t b0, int64_t b1) {
    for (int64_t k = b0; k < b1; ++k) {
      const int64_t begin = k * kBlock;
      const int64_t size = n - begin < kBlock ? n - begin : kBlock;
      out[k] = count(x + begin, size, b);
    }
  });
  RailCounts total;
  for (const RailCounts& c : partial) total += c;  // block order
  return total;
}

template RailCounts RailStatsCpu<float>(const float*, int64_t,
                                        const FixedPointFormat&, double,
                                        const ParallelFor&);
template RailCounts RailStatsCpu<double>(const double*, int64_t,
                                         const FixedPointFormat&, double,
                                         const ParallelFor&);

}  // namespace kappa
