// A host emulation of CUDA's execution model, enough of it for the kernels of
// cc/core/<op>/<op>_gpu.cu.cc to compile unchanged as C++ for the host and run
// on the CPU (cc/gpu_check/run.sh --emulate, through launch.h). It models:
//   - the qualifiers (__global__, __device__, __host__, __forceinline__,
//     __launch_bounds__) and the built-ins threadIdx, blockIdx, blockDim and
//     gridDim; the semantics of compute capability 7.0 and later (threads of
//     a warp scheduled independently, *_sync intrinsics);
//   - a launch: the grid's blocks one after another; each block's threads as
//     fibers (one stack each) on the calling thread that switch only at
//     __syncthreads() and warp shuffles, in rounds: every round runs each
//     thread that can run, in an order drawn afresh (seeded by launch and
//     block, so runs repeat), until it next waits. Code that relies on an
//     order CUDA does not guarantee (a missing barrier) reads stale shared
//     memory in some blocks and so gives wrong results;
//   - __shared__ variables: one per block (static storage: blocks run in turn);
//   - __syncthreads(): a barrier of all the block's threads;
//   - __shfl_down_sync: each lane leaves its value in its warp's buffer, waits
//     for every lane of the mask, then reads its source lane's value (lanes
//     with disjoint masks shuffle independently). A lane that calls it outside
//     the mask, a lane whose source lies outside the mask, and lanes of one
//     warp at shuffles with overlapping, different masks fail;
//   - a barrier or shuffle that some of its threads never reach (they
//     returned, or wait elsewhere): fails as a deadlock;
//   - device memory: host memory, each allocation ending at an inaccessible
//     page; the few bytes between its end and that page are checked after
//     every launch. An access past the end fails;
//   - the CUDA runtime calls of cc/gpu_check/device.h and cc/core/gpu_launch.h
//     (cuda_runtime.h), on one device with kMultiprocessors multiprocessors.
// A failure prints the kernel, block, thread and reason and exits with status
// 1. Not modelled: blocks running concurrently with each other or with the
// host, the memory model (fences, atomics: no kernel uses them), dynamic
// shared memory, warp intrinsics other than __shfl_down_sync; a kernel that
// uses them does not compile here. x86-64 only (the fibers' stack switch).
#ifndef KAPPA_GPU_CHECK_EMULATION_CUDA_HOST_H_
#define KAPPA_GPU_CHECK_EMULATION_CUDA_HOST_H_

// What the kernel sources test for: device code is compiled.
#define __CUDACC__ 1
#define KAPPA_CUDA_EMULATION 1

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#if !defined(__x86_64__)
#error "cuda_host.h switches the fibers' stacks with x86-64 code (SwitchStack)"
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline  // inlining is the compiler's choice: it changes no result
#define __launch_bounds__(...)
#define __shared__ static
// g++ rejects a storage class before a standard attribute, which is what
// `__shared__ alignas(V)` becomes; the same alignment as a GNU attribute is
// accepted there. (The standard headers above are included before this.)
#define alignas(...) __attribute__((aligned(::cuda_emulation::detail::AlignOf<__VA_ARGS__>())))

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

// What a launch reports (cudaGetLastError: cuda_runtime.h), and its stream.
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
};
struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace cuda_emulation {

constexpr int kWarpSize = 32;
// Few, so that grids are small and a grid-stride loop wraps at a few thousand
// elements (the functors size their grids by it: cc/core/gpu_launch.h).
constexpr int kMultiprocessors = 2;

namespace detail {

template <typename T>
constexpr std::size_t AlignOf() { return alignof(T); }
template <std::size_t N>
constexpr std::size_t AlignOf() { return N; }

inline cudaError_t& LastError() {
  static cudaError_t error = cudaSuccess;
  return error;
}

// Device memory: [start, start + bytes) ends less than 16 bytes before an
// inaccessible page; the bytes in between hold kCanary.
struct Allocation {
  char* map;
  size_t map_bytes, bytes, slack;
};
constexpr unsigned char kCanary = 0xA5;
inline std::map<char*, Allocation>& Allocations() {
  static std::map<char*, Allocation> allocations;
  return allocations;
}
inline bool CanaryIntact(char* start, const Allocation& a) {
  for (size_t k = 0; k < a.slack; ++k) {
    if (static_cast<unsigned char>(start[a.bytes + k]) != kCanary) return false;
  }
  return true;
}

// Fibers. SwitchStack saves the callee-saved registers on the running stack
// and its stack pointer in *save, then resumes the stack `load` (saved by an
// earlier SwitchStack, or made by PrepareStack).
__attribute__((naked, noinline)) inline void SwitchStack(void** /*save*/, void* /*load*/) {
  asm volatile(
      "pushq %rbp\n pushq %rbx\n pushq %r12\n pushq %r13\n pushq %r14\n pushq %r15\n"
      "movq %rsp, (%rdi)\n movq %rsi, %rsp\n"
      "popq %r15\n popq %r14\n popq %r13\n popq %r12\n popq %rbx\n popq %rbp\n ret\n");
}
// Where a prepared stack starts: calls r12(rbx), which never returns.
__attribute__((naked, noinline)) inline void StackEntry() {
  asm volatile("movq %rbx, %rdi\n callq *%r12\n ud2\n");
}
// A stack ending at `top` (16-byte aligned) that, resumed, calls fn(arg).
inline void* PrepareStack(char* top, void (*fn)(void*), void* arg) {
  void** sp = reinterpret_cast<void**>(top);
  *--sp = reinterpret_cast<void*>(&StackEntry);  // popped by ret: entered with sp == top
  *--sp = nullptr;                               // rbp
  *--sp = arg;                                   // rbx
  *--sp = reinterpret_cast<void*>(fn);           // r12
  *--sp = nullptr;                               // r13
  *--sp = nullptr;                               // r14
  *--sp = nullptr;                               // r15
  return sp;
}
constexpr size_t kStackBytes = size_t{64} << 10;

enum class Wait : uint8_t { kNone, kBarrier, kShuffle, kReturned };
struct Thread {
  void* sp;
  uint3 idx;
  int lane, warp;
  Wait wait;
};
struct Shuffling {  // a shuffle in flight: its mask, the lanes arrived
  unsigned mask, arrived;
};
struct Warp {
  unsigned lanes;  // the lanes that exist
  int shuffles;    // in flight, in shuffling[0, shuffles): their masks are disjoint
  Shuffling shuffling[kWarpSize];
  uint64_t value[kWarpSize], result[kWarpSize];
  int source[kWarpSize];
};
struct KernelUse {
  std::set<std::string> instantiations;
  uint64_t launches = 0, blocks = 0;
};

// The launch in progress and what launches have run.
struct Device {
  const char* kernel = nullptr;
  void (*entry)(const void*) = nullptr;
  const void* params = nullptr;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  std::vector<char*> stack_tops;
  std::vector<Thread*> round;  // this round's threads, in their order
  size_t next = 0;             // the next of them to run
  Thread* current = nullptr;   // the running thread; nullptr outside threads
  void* scheduler_sp = nullptr;
  int at_barrier = 0, returned = 0;
  uint64_t launches = 0, rng = 0;
  std::map<std::string, KernelUse> uses;  // by "<file> <kernel>"
};
inline Device& TheDevice() {
  static Device device;
  return device;
}

// Prints where (kernel, block, thread) and why, and exits with status 1.
[[noreturn]] __attribute__((format(printf, 1, 2))) inline void Fail(const char* format, ...) {
  const Device& d = TheDevice();
  std::fflush(stdout);
  std::fprintf(stderr, "cuda emulation: %s block (%u,%u,%u)", d.kernel ? d.kernel : "?",
               blockIdx.x, blockIdx.y, blockIdx.z);
  if (d.current) std::fprintf(stderr, " thread (%u,%u,%u)", threadIdx.x, threadIdx.y, threadIdx.z);
  std::fprintf(stderr, ": ");
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fprintf(stderr, "\n");
  std::exit(1);
}

inline void OnSegfault(int, siginfo_t* info, void*) {
  if (TheDevice().current == nullptr) {  // host code: the default action
    signal(SIGSEGV, SIG_DFL);
    return;
  }
  Fail("invalid memory access at %p: past the end of a device allocation (each ends at an "
       "inaccessible page), or beyond the thread's stack", info->si_addr);
}

inline void InstallSegfaultHandler() {
  static bool done = false;
  if (done) return;
  done = true;
  static char handler_stack[1 << 16];
  stack_t ss{};
  ss.ss_sp = handler_stack;
  ss.ss_size = sizeof(handler_stack);
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_sigaction = OnSegfault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGSEGV, &sa, nullptr);
}

// The running thread waits: the next thread of the round runs, or, at the
// round's end, the scheduler.
inline void Yield() {
  Device& d = TheDevice();
  Thread* self = d.current;
  void* to = d.scheduler_sp;
  d.current = nullptr;
  if (d.next < d.round.size()) {
    d.current = d.round[d.next++];
    threadIdx = d.current->idx;
    to = d.current->sp;
  }
  SwitchStack(&self->sp, to);
}

inline void ThreadMain(void*) {
  Device& d = TheDevice();
  d.entry(d.params);
  d.current->wait = Wait::kReturned;
  ++d.returned;
  Yield();  // never resumed
  __builtin_unreachable();
}

[[noreturn]] inline void Deadlock() {
  const Device& d = TheDevice();
  int shuffle = 0;
  for (const Thread& t : d.threads) shuffle += t.wait == Wait::kShuffle;
  std::string first;
  for (size_t k = 0; k < d.warps.size() && first.empty(); ++k) {
    if (d.warps[k].shuffles == 0) continue;
    const Shuffling& s = d.warps[k].shuffling[0];
    char text[96];
    std::snprintf(text, sizeof(text), " (warp %zu: mask 0x%08x, lanes not arrived 0x%08x)", k,
                  s.mask, s.mask & ~s.arrived);
    first = text;
  }
  Fail("deadlock: of %zu threads, %d wait at __syncthreads(), %d at a shuffle%s, %d returned: a "
       "barrier or shuffle that some of its threads never reach", d.threads.size(), d.at_barrier,
       shuffle, first.c_str(), d.returned);
}

// Runs one block: rounds until every thread has returned.
inline void RunBlock() {
  Device& d = TheDevice();
  for (size_t k = 0; k < d.threads.size(); ++k) {
    d.threads[k].sp = PrepareStack(d.stack_tops[k], &ThreadMain, nullptr);
    d.threads[k].wait = Wait::kNone;
  }
  for (Warp& w : d.warps) w.shuffles = 0;
  d.at_barrier = d.returned = 0;
  while (d.returned < static_cast<int>(d.threads.size())) {
    d.round.clear();
    for (Thread& t : d.threads) {
      if (t.wait == Wait::kNone) d.round.push_back(&t);
    }
    if (d.round.empty()) Deadlock();
    for (size_t k = d.round.size() - 1; k > 0; --k) {  // Fisher-Yates, xorshift64
      d.rng ^= d.rng << 13;
      d.rng ^= d.rng >> 7;
      d.rng ^= d.rng << 17;
      std::swap(d.round[k], d.round[d.rng % (k + 1)]);
    }
    d.next = 1;
    d.current = d.round[0];
    threadIdx = d.current->idx;
    SwitchStack(&d.scheduler_sp, d.current->sp);
  }
}

// One shuffle of `value` by the running lane from lane `source` (its own when
// the source lies outside the width's segment). Lanes with one mask wait for
// each other; lanes with disjoint masks shuffle independently.
__attribute__((noinline)) inline uint64_t Shuffle(const char* name, unsigned mask, uint64_t value,
                                                  int source) {
  Device& d = TheDevice();
  Thread& t = *d.current;
  Warp& w = d.warps[t.warp];
  const unsigned bit = 1u << t.lane;
  if (!(mask & bit)) {
    Fail("%s with mask 0x%08x, which leaves out the calling lane %d", name, mask, t.lane);
  }
  if (mask & ~w.lanes) Fail("%s with mask 0x%08x naming lanes the warp does not have", name, mask);
  if (!(mask & (1u << source))) {
    Fail("%s: lane %d reads lane %d, outside the mask 0x%08x", name, t.lane, source, mask);
  }
  int k = 0;
  for (; k < w.shuffles && w.shuffling[k].mask != mask; ++k) {
    if (w.shuffling[k].mask & mask) {
      Fail("lanes of warp %d at %s with overlapping masks 0x%08x and 0x%08x: the warp diverged "
           "at a shuffle", t.warp, name, w.shuffling[k].mask, mask);
    }
  }
  if (k == w.shuffles) w.shuffling[w.shuffles++] = Shuffling{mask, 0};
  Shuffling& s = w.shuffling[k];
  w.value[t.lane] = value;
  w.source[t.lane] = source;
  s.arrived |= bit;
  t.wait = Wait::kShuffle;
  if (s.arrived == mask) {  // the last lane: every lane's result, and all run on
    for (int lane = 0; lane < kWarpSize; ++lane) {
      if (!(mask & (1u << lane))) continue;
      w.result[lane] = w.value[w.source[lane]];
      d.threads[t.warp * kWarpSize + lane].wait = Wait::kNone;
    }
    s = w.shuffling[--w.shuffles];
  }
  Yield();
  return w.result[t.lane];
}

// __syncthreads(): the running thread waits until every thread of the block
// has arrived.
__attribute__((noinline)) inline void Barrier() {
  Device& d = TheDevice();
  d.current->wait = Wait::kBarrier;
  if (++d.at_barrier == static_cast<int>(d.threads.size())) {
    for (Thread& t : d.threads) t.wait = Wait::kNone;
    d.at_barrier = 0;
  }
  Yield();
}

// The threads and warps of a block of shape `block`, a stack for each thread.
inline void ShapeBlocks(dim3 block) {
  Device& d = TheDevice();
  const size_t threads = size_t{block.x} * block.y * block.z;
  d.threads.resize(threads);
  d.warps.assign((threads + kWarpSize - 1) / kWarpSize, Warp{});
  for (size_t k = 0; k < threads; ++k) {
    Thread& t = d.threads[k];
    t.idx = {static_cast<unsigned>(k % block.x), static_cast<unsigned>(k / block.x % block.y),
             static_cast<unsigned>(k / (block.x * block.y))};
    t.lane = static_cast<int>(k % kWarpSize);
    t.warp = static_cast<int>(k / kWarpSize);
    d.warps[t.warp].lanes |= 1u << t.lane;
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  while (d.stack_tops.size() < threads) {  // each with an inaccessible page below
    char* map = static_cast<char*>(mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (map == MAP_FAILED || mprotect(map, page, PROT_NONE) != 0) {
      Fail("no memory for a thread's stack");
    }
    d.stack_tops.push_back(map + page + kStackBytes);
  }
}

inline void CheckAllocations() {
  for (const auto& [start, a] : Allocations()) {
    if (!CanaryIntact(start, a)) {
      Fail("wrote past the end of a %zu-byte device allocation", a.bytes);
    }
  }
}

}  // namespace detail

// Runs Kernel(params...) on every thread of the grid, as a launch
// kernel<<<grid, block, shared_bytes, stream>>>(params...) does on a GPU, and
// records it for PrintLaunches (file and name: where the launch stands).
template <auto Kernel, typename... P>
void Launch(const char* file, const char* name, dim3 grid, dim3 block, size_t shared_bytes,
            cudaStream_t /*stream: launches run at once, in order*/, const P&... params) {
  using detail::Device;
  const uint64_t blocks = uint64_t{grid.x} * grid.y * grid.z;
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (blocks == 0 || threads == 0 || threads > 1024 || block.z > 64 || grid.y > 65535 ||
      grid.z > 65535 || grid.x > 0x7fffffffu) {
    detail::LastError() = cudaErrorInvalidConfiguration;
    return;
  }
  Device& d = detail::TheDevice();
  d.kernel = name;
  if (shared_bytes != 0) detail::Fail("dynamic shared memory is not emulated");
  detail::KernelUse& use = d.uses[std::string(file) + " " + name];
  use.instantiations.insert(__PRETTY_FUNCTION__);
  ++use.launches;
  use.blocks += blocks;
  detail::InstallSegfaultHandler();
  const std::tuple<P...> args(params...);
  d.entry = [](const void* a) { std::apply(Kernel, *static_cast<const std::tuple<P...>*>(a)); };
  d.params = &args;
  detail::ShapeBlocks(block);
  blockDim = block;
  gridDim = grid;
  ++d.launches;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = {x, y, z};
        d.rng = ((d.launches * 0x9E3779B97F4A7C15ull) ^
                 ((uint64_t{z} << 48) + (uint64_t{y} << 32) + x)) | 1;  // xorshift: nonzero
        detail::RunBlock();
      }
    }
  }
  detail::CheckAllocations();
  d.kernel = nullptr;
}

// One line per kernel launched so far, by source file and name:
// "emulated kernel <file> <name>: <I> instantiations, <L> launches, <B> blocks".
inline void PrintLaunches() {
  for (const auto& [where, use] : detail::TheDevice().uses) {
    std::printf("emulated kernel %s: %zu instantiations, %llu launches, %llu blocks\n",
                where.c_str(), use.instantiations.size(),
                static_cast<unsigned long long>(use.launches),
                static_cast<unsigned long long>(use.blocks));
  }
}

}  // namespace cuda_emulation

inline void __syncthreads() { cuda_emulation::detail::Barrier(); }

template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = cuda_emulation::kWarpSize) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8,
                "a shuffle moves 4 or 8 bytes");
  if (width <= 0 || width > cuda_emulation::kWarpSize || (width & (width - 1))) {
    cuda_emulation::detail::Fail("__shfl_down_sync with width %d", width);
  }
  const int lane = cuda_emulation::detail::TheDevice().current->lane;
  const int source = static_cast<unsigned>(lane % width) + delta < static_cast<unsigned>(width)
                         ? lane + static_cast<int>(delta)
                         : lane;
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = cuda_emulation::detail::Shuffle("__shfl_down_sync", mask, bits, source);
  std::memcpy(&var, &bits, sizeof(T));
  return var;
}

#endif  // KAPPA_GPU_CHECK_EMULATION_CUDA_HOST_H_
