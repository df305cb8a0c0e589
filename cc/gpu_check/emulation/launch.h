// What cc/gpu_check/run.sh --emulate compiles the kernel sources and the check
// program against (g++ -include): the CUDA host emulation, then
// cc/core/gpu_launch.h with its launch macro, which spells a launch in nvcc's
// <<<...>>> syntax that no C++ compiler parses, redefined as the same launch
// by a call: the same kernel instantiation, grid (as the functor's host code
// computes it), kThreadsPerBlock, stream and parameters.
#ifndef KAPPA_GPU_CHECK_EMULATION_LAUNCH_H_
#define KAPPA_GPU_CHECK_EMULATION_LAUNCH_H_

#include "cc/gpu_check/emulation/cuda_runtime.h"
#include "cc/core/gpu_launch.h"

#undef KAPPA_GPU_LAUNCH
#define KAPPA_GPU_LAUNCH(kernel, targs, grid, stream, params)                               \
  (::cuda_emulation::Launch<kernel<KAPPA_GPU_UNPAREN targs>>(                               \
       __FILE__, #kernel, (grid), ::kappa::kThreadsPerBlock, 0,                             \
       static_cast<cudaStream_t>(stream), (params)),                                        \
   ::kappa::LaunchError())

#endif  // KAPPA_GPU_CHECK_EMULATION_LAUNCH_H_
