// tensorflow_kappa._kappa_core: the functors of //cc/core bound to NumPy
// arrays with pybind11, without TensorFlow.
//
// The same functors the ops call (QuantizeCpu, RailStatsCpu, UpdateStoreCpu)
// on the arrays' own memory: no copy, no arithmetic of its own. They run on
// ThreadParallelFor (std::threads, fixed blocks: results do not depend on the
// number of threads) with the GIL released; new results come from
// ResultMemory, which reuses freed ones. The Python package
// tensorflow_kappa.core wraps these functions: it parses formats and seeds
// and checks formats against the dtype (FixedPoint.check_dtype, the rule the
// ops' kernels apply) and gives the errors users see. The checks here keep
// the memory safe on their own: dtype, C-contiguity, writeability, shapes,
// overlap.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "cc/core/formats/fixed_point.h"
#include "cc/core/quantize/quantize.h"
#include "cc/core/rail_stats/rail_stats.h"
#include "cc/core/thread_parallel.h"
#include "cc/core/update_store/update_store.h"

namespace py = pybind11;

namespace kappa {
namespace {

// ---------------------------------------------------------------------------
// Threads.

// The CPUs this process may run on (what TensorFlow's intra-op pool sizes
// itself by), at least 1.
int DefaultThreads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

std::atomic<int>& MaxThreads() {
  static std::atomic<int> threads{DefaultThreads()};
  return threads;
}

void SetNumThreads(int threads) {
  if (threads < 1) {
    throw py::value_error("threads must be a positive integer, got " + std::to_string(threads));
  }
  MaxThreads().store(threads);
}

// ---------------------------------------------------------------------------
// Memory for the results the binding allocates (quantize without out=).
//
// A large NumPy array is freed back to the operating system, and the next one
// of its size is faulted in page by page and zero-filled by the kernel, which
// costs about as much as quantizing it; TensorFlow's CPU allocator reuses
// freed memory instead. So does this: the buffers of freed results of at
// least kMinCachedBytes are kept, kMaxCachedBytes in all (the oldest go
// first), and handed out again for a result of the same size. Smaller
// results use NumPy's own allocation.
//
// A result starts at the same offset within a 4 KiB page as its input: a
// kernel storing to addresses a little above the ones it loads next, modulo
// 4 KiB, makes the CPU stall those loads on the stores (4K aliasing), which
// costs up to a third of the time at some offsets.
class ResultMemory {
 public:
  // Asks for transparent huge pages for a new buffer, as NumPy does for its
  // own large arrays (fewer TLB misses while a kernel streams through it;
  // where the system offers none, the advice is ignored).
  static void AdviseHugePages(void* p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#endif
  }

  static constexpr size_t kMinCachedBytes = size_t{1} << 20;
  static constexpr size_t kMaxCachedBytes = size_t{256} << 20;
  static constexpr size_t kPage = 4096;

  // Never destroyed: an array may outlive static destruction at exit.
  static ResultMemory& Get() {
    static ResultMemory* memory = new ResultMemory;
    return *memory;
  }

  // A buffer of `bytes`, aligned to kPage (a multiple of it).
  void* Take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = free_.begin(); it != free_.end(); ++it) {
        if (it->second == bytes) {
          void* p = it->first;
          cached_ -= bytes;
          free_.erase(it);
          return p;
        }
      }
    }
    void* p = std::aligned_alloc(kPage, bytes);
    if (p == nullptr) throw std::bad_alloc();
    AdviseHugePages(p, bytes);
    return p;
  }

  void Give(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.emplace_front(p, bytes);
    cached_ += bytes;
    while (cached_ > kMaxCachedBytes) {
      std::free(free_.back().first);
      cached_ -= free_.back().second;
      free_.pop_back();
    }
  }

 private:
  std::mutex mu_;
  std::list<std::pair<void*, size_t>> free_;  // most recently freed first
  size_t cached_ = 0;
};

// A new C-contiguous array of the dtype and shape of `like`, at the offset of
// `like`'s data within a page.
py::array NewResult(const py::array& like) {
  std::vector<py::ssize_t> shape(like.shape(), like.shape() + like.ndim());
  const size_t bytes = static_cast<size_t>(like.nbytes());
  if (bytes < ResultMemory::kMinCachedBytes) return py::array(like.dtype(), shape);
  constexpr size_t kPage = ResultMemory::kPage;
  // One page more than the data needs, whatever the offset: equal sizes match.
  const size_t size = (bytes + kPage - 1) / kPage * kPage + kPage;
  const size_t offset = reinterpret_cast<uintptr_t>(like.data()) % kPage;
  void* p = ResultMemory::Get().Take(size);
  // The capsule owns the buffer and returns it when the array is freed.
  py::capsule owner(new std::pair<void*, size_t>(p, size), [](void* block) {
    auto* b = static_cast<std::pair<void*, size_t>*>(block);
    ResultMemory::Get().Give(b->first, b->second);
    delete b;
  });
  return py::array(like.dtype(), shape, static_cast<char*>(p) + offset, owner);
}

// ---------------------------------------------------------------------------
// Arguments.

// A format as Python passes it: (bits, frac_bits, signed, rounding, overflow)
// with the modes by name (formats/rounding.h's name lists).
using FormatTuple = std::tuple<int32_t, int32_t, bool, std::string, std::string>;

template <int N>
int IndexOf(const std::string& name, const char* const (&names)[N], const char* what) {
  const int i = ModeIndex(name.c_str(), names);
  if (i < 0) throw py::value_error(std::string(what) + " '" + name + "' is not one of the modes");
  return i;
}

// A table of mode names as a Python tuple.
template <int N>
py::tuple NameTuple(const char* const (&names)[N]) {
  py::tuple t(N);
  for (int i = 0; i < N; ++i) t[i] = py::str(names[i]);
  return t;
}

FixedPointFormat ToFormat(const FormatTuple& t) {
  FixedPointFormat f;
  f.bits = std::get<0>(t);
  f.frac_bits = std::get<1>(t);
  f.is_signed = std::get<2>(t);
  if (f.bits < (f.is_signed ? 2 : 1) || f.bits > 32) {
    throw py::value_error("format bits=" + std::to_string(f.bits) + " is out of range");
  }
  f.rounding = static_cast<Rounding>(IndexOf(std::get<3>(t), kRoundingNames, "rounding"));
  f.overflow = static_cast<Overflow>(IndexOf(std::get<4>(t), kOverflowNames, "overflow"));
  return f;
}

enum class Dtype { kFloat32, kFloat64 };

// The dtype of `a`, which must be float32 or float64 and C-contiguous.
Dtype CheckArray(const py::array& a, const char* name) {
  Dtype d;
  if (a.dtype().equal(py::dtype::of<float>())) {
    d = Dtype::kFloat32;
  } else if (a.dtype().equal(py::dtype::of<double>())) {
    d = Dtype::kFloat64;
  } else {
    throw py::type_error(std::string(name) + " must be a float32 or float64 array, got dtype " +
                         py::str(a.dtype()).cast<std::string>());
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + " must be C-contiguous");
  }
  return d;
}

void CheckWriteable(const py::array& a, const char* name) {
  if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
}

// `b` has the dtype and shape of `a`.
void CheckSameLayout(const py::array& a, const char* a_name, const py::array& b,
                     const char* b_name) {
  if (!a.dtype().equal(b.dtype())) {
    throw py::type_error(std::string(b_name) + " must have the dtype of " + a_name);
  }
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  if (!same) throw py::value_error(std::string(b_name) + " must have the shape of " + a_name);
}

// The memory of `a` and `b` (C-contiguous) overlaps.
bool Overlap(const py::array& a, const py::array& b) {
  const char* a0 = static_cast<const char*>(a.data());
  const char* b0 = static_cast<const char*>(b.data());
  return a.nbytes() > 0 && b.nbytes() > 0 && a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

template <typename T>
const T* Data(const py::array& a) {
  return static_cast<const T*>(a.data());
}

template <typename T>
T* MutableData(py::array a) {
  return static_cast<T*>(a.mutable_data());
}

// ---------------------------------------------------------------------------
// The functions.

template <typename T>
void QuantizeT(const py::array& x, py::array out, const FixedPointFormat& f, int64_t seed0,
               int64_t seed1) {
  const T* in = Data<T>(x);
  T* y = MutableData<T>(out);
  const int64_t n = static_cast<int64_t>(x.size());
  const ParallelFor pf = ThreadParallelFor(MaxThreads().load());
  py::gil_scoped_release release;
  QuantizeCpu<T>(in, y, n, f, seed0, seed1, pf);
}

// Quantizes x into `out` (None: a new array); returns it.
py::array Quantize(const py::array& x, std::optional<py::array> out, const FormatTuple& format,
                   int64_t seed0, int64_t seed1) {
  const Dtype d = CheckArray(x, "x");
  const FixedPointFormat f = ToFormat(format);
  if (out) {
    CheckArray(*out, "out");
    CheckWriteable(*out, "out");
    CheckSameLayout(x, "x", *out, "out");
    if (Overlap(x, *out) && x.data() != out->data()) {
      throw py::value_error("out must be x itself or not overlap it");
    }
  } else {
    out = NewResult(x);
  }
  if (d == Dtype::kFloat32) {
    QuantizeT<float>(x, *out, f, seed0, seed1);
  } else {
    QuantizeT<double>(x, *out, f, seed0, seed1);
  }
  return *out;
}

template <typename T>
RailCounts RailStatsT(const py::array& x, const FixedPointFormat& f, double near_rail) {
  const T* in = Data<T>(x);
  const int64_t n = static_cast<int64_t>(x.size());
  const ParallelFor pf = ThreadParallelFor(MaxThreads().load());
  py::gil_scoped_release release;
  return RailStatsCpu<T>(in, n, f, near_rail, pf);
}

// The op's three float32 fractions (FractionsFromCounts), as Python floats.
std::tuple<float, float, float> RailStats(const py::array& x, const FormatTuple& format,
                                          double near_rail) {
  const Dtype d = CheckArray(x, "x");
  if (!(near_rail >= 0.0 && near_rail <= 1.0)) {
    throw py::value_error("near_rail must lie in [0, 1]");
  }
  const FixedPointFormat f = ToFormat(format);
  const RailCounts c = d == Dtype::kFloat32 ? RailStatsT<float>(x, f, near_rail)
                                            : RailStatsT<double>(x, f, near_rail);
  const RailFractions r = FractionsFromCounts(c);
  return {r.saturation, r.near_rail, r.underflow};
}

template <typename T>
UpdateSums UpdateT(py::array w, const py::array& g, double lr, const UpdateConfig& config) {
  T* var = MutableData<T>(w);
  const T* grad = Data<T>(g);
  const int64_t n = static_cast<int64_t>(w.size());
  const ParallelFor pf = ThreadParallelFor(MaxThreads().load());
  py::gil_scoped_release release;
  // In place (old == next); lr in the compute dtype, as the op casts it.
  return UpdateStoreCpu<T>(var, var, grad, static_cast<T>(lr), n, config, pf);
}

// Updates w in place; returns the op's five float32 statistics (StatsFromSums).
std::tuple<float, float, float, float, float> UpdateQuantizeStore(
    py::array w, const py::array& g, double lr, const std::optional<FormatTuple>& update,
    const std::optional<FormatTuple>& storage, int64_t seed0, int64_t seed1) {
  const Dtype d = CheckArray(w, "w");
  CheckWriteable(w, "w");
  CheckArray(g, "grad");
  CheckSameLayout(w, "w", g, "grad");
  if (Overlap(w, g)) throw py::value_error("grad must not overlap w");
  UpdateConfig config;
  config.has_update_format = update.has_value();
  if (update) config.update_format = ToFormat(*update);
  config.has_storage_format = storage.has_value();
  if (storage) config.storage_format = ToFormat(*storage);
  config.seed0 = seed0;
  config.seed1 = seed1;
  const UpdateSums s = d == Dtype::kFloat32 ? UpdateT<float>(w, g, lr, config)
                                            : UpdateT<double>(w, g, lr, config);
  const UpdateStats t = StatsFromSums(s);
  return {t.raw_update_norm, t.actual_update_norm, t.update_dot, t.update_underflow_fraction,
          t.storage_saturation_fraction};
}

}  // namespace
}  // namespace kappa

PYBIND11_MODULE(_kappa_core, m) {
  m.doc() =
      "The framework-free fixed-point functors of tensorflow_kappa on NumPy arrays "
      "(private: use tensorflow_kappa.core).";
  m.def("quantize", &kappa::Quantize, py::arg("x").noconvert(), py::arg("out").noconvert(),
        py::arg("format"), py::arg("seed0"), py::arg("seed1"),
        "Q(x) into out (x itself, another array, or None: a new one); returns out. "
        "format: (bits, frac_bits, signed, rounding, overflow).");
  m.def("rail_stats", &kappa::RailStats, py::arg("x").noconvert(), py::arg("format"),
        py::arg("near_rail"),
        "(saturation, near_rail, underflow) fractions, as float32 values.");
  m.def("update_quantize_store", &kappa::UpdateQuantizeStore, py::arg("w").noconvert(),
        py::arg("grad").noconvert(),
        py::arg("learning_rate"), py::arg("update_format"), py::arg("storage_format"),
        py::arg("seed0"), py::arg("seed1"),
        "w := Q_storage(w + Q_update(-lr * grad)) in place; the five float32 statistics.");
  // The modes it takes by name: the C++ table (formats/rounding.h).
  m.attr("ROUNDING_MODES") = kappa::NameTuple(kappa::kRoundingNames);
  m.attr("OVERFLOW_MODES") = kappa::NameTuple(kappa::kOverflowNames);
  m.def("set_num_threads", &kappa::SetNumThreads, py::arg("threads"),
        "Use at most this many threads per call.");
  m.def("get_num_threads", [] { return kappa::MaxThreads().load(); },
        "The most threads a call uses.");
}
