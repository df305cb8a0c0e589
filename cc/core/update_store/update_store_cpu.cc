#include <vector>

#include "cc/core/cpu_dispatch.h"
#include "cc/core/update_store/update_store.h"

namespace kappa {
namespace {

constexpr int64_t kCostPerBlock = kUpdateBlock * 12;
constexpr int kLanes = kUpdateLanes;
static_assert(kLanes == 8, "UpdateBlock holds 8 lanes as two 4-double vectors");
static_assert(kUpdateBlock % kLanes == 0, "blocks hold whole lane groups");
static_assert((int64_t{1} << 32) % kUpdateBlock == 0,
              "blocks never cross a multiple of 2^32");

template <typename T>
struct Quantizers {
  Quantizer<T> update;
  Quantizer<T> storage;
  Rails<T> storage_rails;
};

// One block: elements [begin, end), in groups of kLanes = 8 elements. A group
// is loaded into local arrays (so that an update in place does not stop
// vectorisation), updated by a plain loop over its lanes, and stored; its
// double statistics are added into 8 lane accumulators held as two
// 4-double vectors (GCC/Clang vector extensions: the same arithmetic as 8
// scalar accumulators, in a form the compiler keeps in registers). The last,
// partial group is padded with w = g = 0, which adds exact zeros and counts
// nothing. Lanes are combined in a fixed pairwise order at the end.
typedef double V4d __attribute__((vector_size(32)));

// Through a pointer: a vector returned by value has another ABI with AVX
// than without, and the baseline build has none.
template <typename T>
inline void Widen(const T* p, V4d* out) {
  *out = V4d{static_cast<double>(p[0]), static_cast<double>(p[1]),
             static_cast<double>(p[2]), static_cast<double>(p[3])};
}

template <typename U, typename S, typename T>
struct GroupSums {
  V4d raw_sq[2] = {}, actual_sq[2] = {}, dot[2] = {};
  int32_t nonzero[kLanes] = {}, underflow[kLanes] = {}, saturated[kLanes] = {};

  // Updates the kLanes elements at old/grad into next (old == next is fine:
  // every element is loaded before any is stored).
  inline __attribute__((always_inline)) void Run(
      const T* old, T* next, const T* grad, uint32_t low, T neg_lr,
      const Quantizer<T>& qu, const Quantizer<T>& qs, const Rails<T>& rails) {
    T w[kLanes], g[kLanes], raw[kLanes], out[kLanes];
    for (int j = 0; j < kLanes; ++j) {
      w[j] = old[j];
      g[j] = grad[j];
    }
    for (int j = 0; j < kLanes; ++j) {
      const UpdateElement<T> e = UpdateValue<U, S>(w[j], g[j], neg_lr, qu, qs, low + j);
      w[j] = e.w;
      raw[j] = e.raw;
      out[j] = e.next;
      const bool nz = IsNonzeroNumber(e.raw);
      nonzero[j] += nz;
      underflow[j] += nz & (e.delta == T(0));
      if constexpr (S::on) saturated[j] += BeyondRails(e.sum, rails);
    }
    for (int h = 0; h < 2; ++h) {
      V4d r, o, before;
      Widen(raw + 4 * h, &r);
      Widen(out + 4 * h, &o);
      Widen(w + 4 * h, &before);
      const V4d d = o - before;
      raw_sq[h] += r * r;
      actual_sq[h] += d * d;
      dot[h] += r * d;
    }
    for (int j = 0; j < kLanes; ++j) next[j] = out[j];
  }
};

// One block, compiled per CPU path (cpu_dispatch.h).
template <typename U, typename S, typename T>
struct UpdateBlock {
  static KAPPA_CPU_KERNEL UpdateSums Run(const T* old, T* next, const T* grad, int64_t begin,
                                         int64_t end, T neg_lr, const Quantizers<T>& q);
};

template <typename U, typename S, typename T>
KAPPA_CPU_KERNEL UpdateSums UpdateBlock<U, S, T>::Run(const T* old, T* next, const T* grad,
                                                      int64_t begin, int64_t end, T neg_lr,
                                                      const Quantizers<T>& q) {
  // A block never crosses a multiple of 2^32 (kUpdateBlock divides it): the
  // high half of the element index goes into the keys, lanes hash 32 bits.
  const uint32_t high = static_cast<uint32_t>(static_cast<uint64_t>(begin) >> 32);
  Quantizer<T> qu = q.update;
  Quantizer<T> qs = q.storage;
  qu.key = KeyForHighBits(qu.key, high);
  qs.key = KeyForHighBits(qs.key, high);
  const Rails<T> rails = q.storage_rails;
  GroupSums<U, S, T> acc;
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes) {
    acc.Run(old + i, next + i, grad + i, static_cast<uint32_t>(i), neg_lr, qu, qs, rails);
  }
  if (i < end) {
    T w[kLanes] = {}, g[kLanes] = {}, out[kLanes];
    const int tail = static_cast<int>(end - i);
    for (int j = 0; j < tail; ++j) {
      w[j] = old[i + j];
      g[j] = grad[i + j];
    }
    acc.Run(w, out, g, static_cast<uint32_t>(i), neg_lr, qu, qs, rails);
    for (int j = 0; j < tail; ++j) next[i + j] = out[j];
  }
  UpdateSums s;
  s.total = end - begin;
  // Lanes 0..7 = v[0][0..3], v[1][0..3]: add 4 apart, then 2 apart, then 1.
  const auto combine = [](const V4d* v) {
    const V4d a = v[0] + v[1];
    return (a[0] + a[2]) + (a[1] + a[3]);
  };
  s.raw_sq = combine(acc.raw_sq);
  s.actual_sq = combine(acc.actual_sq);
  s.dot = combine(acc.dot);
  for (int j = 0; j < kLanes; ++j) {
    s.nonzero_raw += acc.nonzero[j];
    s.underflow += acc.underflow[j];
    s.saturated += acc.saturated[j];
  }
  return s;
}

}  // namespace

template <typename T>
UpdateSums UpdateStoreCpu(const T* old, T* next, const T* grad, T lr, int64_t n,
                          const UpdateConfig& config,
                          const ParallelFor& parallel_for) {
  Quantizers<T> q;
  q.update = MakeQuantizer<T>(config.update_format, config.seed0, config.seed1);
  q.storage = MakeQuantizer<T>(config.storage_format, config.seed0,
                               config.seed1 ^ kStorageSeedXor);
  q.storage_rails = MakeRails<T>(config.storage_format);
  const T neg_lr = FlushSubnormal(-lr);
  const int64_t blocks = (n + kUpdateBlock - 1) / kUpdateBlock;
  std::vector<UpdateSums> partial(static_cast<size_t>(blocks));
  UpdateSums* out = partial.data();
  DispatchSteps(config, [&](auto u, auto s) {
    using U = decltype(u);
    using S = decltype(s);
    const auto block = CpuKernel<UpdateBlock<U, S, T>>();
    parallel_for(blocks, kCostPerBlock, [=, &q](int64_t b0, int64_t b1) {
      for (int64_t k = b0; k < b1; ++k) {
        const int64_t begin = k * kUpdateBlock;
        const int64_t end = n - begin < kUpdateBlock ? n : begin + kUpdateBlock;
        out[k] = block(old, next, grad, begin, end, neg_lr, q);
      }
    });
  });
  UpdateSums total;
  for (const UpdateSums& s : partial) total += s;  // block order
  return total;
}

template UpdateSums UpdateStoreCpu<float>(const float*, float*, const float*,
                                          float, int64_t, const UpdateConfig&,
                                          const ParallelFor&);
template UpdateSums UpdateStoreCpu<double>(const double*, double*, const double*,
                                           double, int64_t, const UpdateConfig&,
                                           const ParallelFor&);

}  // namespace kappa
