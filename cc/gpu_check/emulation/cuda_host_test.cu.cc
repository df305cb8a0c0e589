// Small kernels for the CUDA host emulation's own test (tests/test_gpu_emulation.py
// builds this file against cuda_host.h with g++ -include and runs one case per
// process): kernels that break CUDA's rules, which the emulation must reject
// with exit status 1 and a reason on stderr, and kernels whose results show
// how it runs threads.
//
//   cuda_host_test CASE
#include <cstdio>
#include <cstring>
#include <string>

namespace {

// Threads 0-127 of a 256-thread block wait at a barrier that the others never
// reach: a deadlock.
__global__ void DivergentBarrier(int* out) {
  if (threadIdx.x < 128) __syncthreads();
  out[threadIdx.x] = 1;
}

// Lanes 16-31 call a shuffle whose mask leaves them out.
__global__ void CallerOutsideMask(int* out) {
  out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, static_cast<int>(threadIdx.x), 1);
}

// Lanes 8-15 read lanes 16-23, outside the mask.
__global__ void SourceOutsideMask(int* out) {
  const int lane = static_cast<int>(threadIdx.x);
  if (lane < 16) out[lane] = __shfl_down_sync(0x0000ffffu, lane, 8);
}

// Lanes 0-15 shuffle with mask 0x0000ffff, lanes 8-31 with 0xffffff00: masks
// that overlap.
__global__ void OverlappingMasks(int* out) {
  const unsigned mask = threadIdx.x < 16 ? 0x0000ffffu : 0xffffff00u;
  out[threadIdx.x] = __shfl_down_sync(mask, static_cast<int>(threadIdx.x), 1, 8);
}

// The two half-warps shuffle independently, each in segments of 8 lanes:
// lane l gets l + 2 within its segment, else its own value.
__global__ void DisjointMasks(int* out) {
  const unsigned mask = threadIdx.x < 16 ? 0x0000ffffu : 0xffff0000u;
  out[threadIdx.x] = __shfl_down_sync(mask, static_cast<int>(threadIdx.x), 2, 8);
}

// A warp-synchronous tree sum of 64 ones without __syncwarp(): 64 only if the
// warp's lanes run in lockstep, which CUDA does not promise since compute
// capability 7.0 (and the emulation does not do).
__global__ void WarpSynchronousSum(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = 1.0f;
  s[threadIdx.x + 32] = 1.0f;
  __syncthreads();
  volatile float* v = s;
  for (int offset = 32; offset > 0; offset >>= 1) v[threadIdx.x] += v[threadIdx.x + offset];
  if (threadIdx.x == 0) *out = v[0];
}

// Every thread reads the element after the last one.
__global__ void PastTheEnd(const float* in, float* out) { out[threadIdx.x] = in[threadIdx.x + 64]; }

// One block of `threads` threads.
template <auto Kernel, typename... P>
void Run(const char* name, unsigned threads, P... params) {
  cuda_emulation::Launch<Kernel>(__FILE__, name, 1, threads, 0, nullptr, params...);
}

void PrintInts(const int* v, int n) {
  for (int i = 0; i < n; ++i) std::printf("%d%c", v[i], i + 1 < n ? ' ' : '\n');
}

}  // namespace

int main(int argc, char** argv) {
  const std::string name = argc == 2 ? argv[1] : "";
  int* ints = nullptr;
  float* floats = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&ints), 256 * sizeof(int));
  cudaMalloc(reinterpret_cast<void**>(&floats), 64 * sizeof(float));
  std::memset(floats, 0, 64 * sizeof(float));
  if (name == "divergent_barrier") {
    Run<DivergentBarrier>("DivergentBarrier", 256, ints);
  } else if (name == "caller_outside_mask") {
    Run<CallerOutsideMask>("CallerOutsideMask", 32, ints);
  } else if (name == "source_outside_mask") {
    Run<SourceOutsideMask>("SourceOutsideMask", 32, ints);
  } else if (name == "overlapping_masks") {
    Run<OverlappingMasks>("OverlappingMasks", 32, ints);
  } else if (name == "disjoint_masks") {
    Run<DisjointMasks>("DisjointMasks", 32, ints);
    PrintInts(ints, 32);
  } else if (name == "warp_synchronous_sum") {
    Run<WarpSynchronousSum>("WarpSynchronousSum", 32, floats);
    std::printf("%g\n", floats[0]);
  } else if (name == "past_the_end") {
    Run<PastTheEnd>("PastTheEnd", 64, static_cast<const float*>(floats), floats);
  } else if (name == "empty_grid") {
    cuda_emulation::Launch<DisjointMasks>(__FILE__, "DisjointMasks", 0, 32, 0, nullptr, ints);
    std::printf("%s\n", cudaGetErrorString(cudaGetLastError()));
  } else {
    std::fprintf(stderr, "usage: %s CASE\n", argv[0]);
    return 2;
  }
  return 0;
}
