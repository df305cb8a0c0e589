// Run-time selection of the CPU functors' hot loops.
//
// A released op library must run on every x86-64 CPU that TensorFlow runs
// on, yet be as fast as a -march=native build. configure.py's default
// ("portable") build compiles everything for the baseline x86-64-v2 (SSE4.2)
// and defines KAPPA_CPU_DISPATCH=1; each functor's hot loop is then a
// kernel class K (a static, always-inline K::Run) that CpuKernel<K>()
// compiles three times, as CpuClone<path, K>::Run:
//   baseline  the build's own flags (x86-64-v2)
//   avx2      target("arch=x86-64-v3"): AVX2, BMI2, ...
//   avx512    target("arch=x86-64-v4"): AVX-512 F/BW/CD/DQ/VL
// and returns a pointer to the clone of the active path (ActiveCpuPath:
// chosen once per process, the best this CPU runs unless KAPPA_CPU_PATH
// names one). Each clone is `flatten`ed, so every function the loop calls is
// inlined into it and compiled for the clone's instruction set; nothing
// outside the clones uses AVX (tests/test_cpu_dispatch.py checks the
// library's disassembly).
//
// The arithmetic is the same on every path: the flags that fix it
// (-ffp-contract=off: no a*b + c is fused into an FMA, although the avx2
// and avx512 targets have FMA instructions; -fno-trapping-math; no
// -ffast-math) are optimisation options of the whole translation unit and
// hold for every clone, and all the per-element operations are correctly
// rounded IEEE operations (add, multiply, compare, rint/floor/trunc,
// int<->float conversions of exact values) whatever their vector width. The
// sums that depend on order (update_store's double statistics) are written
// with a fixed lane structure (explicit vector types), which no target
// changes.
//
// Builds without dispatch (--march=native or another explicit --march, other
// architectures, nvcc): one clone, compiled with the build's flags, reported
// as "baseline".
#ifndef KAPPA_CORE_CPU_DISPATCH_H_
#define KAPPA_CORE_CPU_DISPATCH_H_

#include <cstdint>
#include <string>

#if !defined(KAPPA_CPU_DISPATCH) || defined(__CUDACC__) || !defined(__x86_64__) || \
    !defined(__GNUC__)
#undef KAPPA_CPU_DISPATCH
#define KAPPA_CPU_DISPATCH 0
#endif

namespace kappa {

enum class CpuPath : int32_t {
  kBaseline = 0,
  kAvx2 = 1,
  kAvx512 = 2,
};
constexpr int kCpuPathCount = 3;

// The paths' names, indexed by CpuPath: what KAPPA_CPU_PATH accepts and
// `kappa info` prints.
inline constexpr const char* kCpuPathNames[kCpuPathCount] = {"baseline", "avx2", "avx512"};
inline constexpr const char kCpuPathEnv[] = "KAPPA_CPU_PATH";

inline const char* CpuPathName(CpuPath p) { return kCpuPathNames[static_cast<int>(p)]; }

// Whether this library holds the clone of path p and this CPU (and OS) can
// run it. Without dispatch only kBaseline is available.
bool CpuPathAvailable(CpuPath p);

// The path the functors use, chosen on the first call and then fixed for the
// process: KAPPA_CPU_PATH if it names an available path, else the best
// available one ("auto" or unset asks for the best).
CpuPath ActiveCpuPath();

// nullptr, or why KAPPA_CPU_PATH was not followed (an unknown name, or a path
// this CPU or build cannot run), naming the value and the choices. The
// functors then run on the best available path; the Python loader turns the
// message into a ValueError.
const char* CpuPathProblem();

// The choice ActiveCpuPath makes, for a given KAPPA_CPU_PATH value (nullptr:
// unset) and availability; `problem` receives the message, or is cleared.
// Exposed for tests.
CpuPath ChooseCpuPath(const char* requested, const bool available[kCpuPathCount],
                      std::string* problem);

// Attributes of the clones (flatten: everything the loop calls is inlined
// into the clone and so compiled for its instruction set).
#if defined(__GNUC__)
#define KAPPA_CPU_TARGET_Baseline __attribute__((flatten))
#define KAPPA_CPU_TARGET_Avx2 __attribute__((target("arch=x86-64-v3"), flatten))
#define KAPPA_CPU_TARGET_Avx512 __attribute__((target("arch=x86-64-v4"), flatten))
// For the kernel classes' Run.
#define KAPPA_CPU_KERNEL inline __attribute__((always_inline))
#else
#define KAPPA_CPU_TARGET_Baseline
#define KAPPA_CPU_KERNEL inline
#endif

// CpuClone<P, K>::Run: K::Run compiled for path P, with K::Run's signature.
template <CpuPath P, typename K, typename Fn = decltype(&K::Run)>
struct CpuClone;

#define KAPPA_CPU_CLONE(path)                                               \
  template <typename K, typename R, typename... A>                          \
  struct CpuClone<CpuPath::k##path, K, R (*)(A...)> {                       \
    KAPPA_CPU_TARGET_##path static R Run(A... a) { return K::Run(a...); } \
  };
KAPPA_CPU_CLONE(Baseline)
#if KAPPA_CPU_DISPATCH
KAPPA_CPU_CLONE(Avx2)
KAPPA_CPU_CLONE(Avx512)
#endif
#undef KAPPA_CPU_CLONE

// The clone of K::Run for the active path. Call it once per functor call
// (outside the parallel loop) and the pointer per block.
template <typename K>
decltype(&K::Run) CpuKernel() {
#if KAPPA_CPU_DISPATCH
  switch (ActiveCpuPath()) {
    case CpuPath::kAvx512: return &CpuClone<CpuPath::kAvx512, K>::Run;
    case CpuPath::kAvx2: return &CpuClone<CpuPath::kAvx2, K>::Run;
    case CpuPath::kBaseline: break;
  }
#endif
  return &CpuClone<CpuPath::kBaseline, K>::Run;
}

}  // namespace kappa

#endif  // KAPPA_CORE_CPU_DISPATCH_H_
