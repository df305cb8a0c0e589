// Compiles every kernel the CUDA functors can launch with NVRTC, as the
// NVRTC route does at first use, for the architectures given (default 75 80
// 90), without a GPU or driver: the host code runs with null pointers in
// rtc::CompileOnly scopes, so the kernel names are the ones a real launch
// asks for. NVRTC is found as at run time (KAPPA_NVRTC, or the loader's path).
//
//   rtc_compile [ARCH...]        exit status 0 when every kernel compiled
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "cc/core/formats/fixed_point.h"
#include "cc/core/gpu_rtc.h"
#include "cc/core/quantize/quantize.h"
#include "cc/core/rail_stats/rail_stats.h"
#include "cc/core/update_store/update_store.h"

namespace {

using kappa::FixedPointFormat;
using kappa::Overflow;
using kappa::Rounding;

int failures = 0;

void Check(const char* what, const char* error) {
  if (error == nullptr) return;
  ++failures;
  std::fprintf(stderr, "%s: %s\n", what, error);
}

FixedPointFormat Format(int r, int o) {
  FixedPointFormat f;
  f.bits = 8;
  f.frac_bits = 4;
  f.rounding = static_cast<Rounding>(r);
  f.overflow = static_cast<Overflow>(o);
  return f;
}

template <typename T>
void LaunchEverything() {
  for (int r = 0; r < 5; ++r) {
    for (int o = 0; o < 2; ++o) {
      Check("quantize", kappa::QuantizeGpu<T>(nullptr, nullptr, 1000, Format(r, o), 1, 2, nullptr));
    }
  }
  Check("rail_stats", kappa::RailStatsGpu<T>(nullptr, 1000, Format(0, 0), 0.9, nullptr, nullptr,
                                             nullptr, nullptr, nullptr));
  kappa::UpdateStatsOutputs out{};
  for (int u = -1; u < 10; ++u) {
    for (int s = -1; s < 10; ++s) {
      kappa::UpdateConfig c;
      c.has_update_format = u >= 0;
      c.has_storage_format = s >= 0;
      if (u >= 0) c.update_format = Format(u / 2, u % 2);
      if (s >= 0) c.storage_format = Format(s / 2, s % 2);
      Check("update_store", kappa::UpdateStoreGpu<T>(nullptr, nullptr, nullptr, nullptr, 1000, c,
                                                     nullptr, out, nullptr));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> archs;
  for (int i = 1; i < argc; ++i) archs.push_back(std::atoi(argv[i]));
  if (archs.empty()) archs = {75, 80, 90};
  for (int arch : archs) {
    kappa::rtc::CompileOnly scope(arch);
    LaunchEverything<float>();
    LaunchEverything<double>();
    const std::set<std::string> kernels(scope.kernels().begin(), scope.kernels().end());
    std::printf("sm_%d: %zu kernels compiled\n", arch, kernels.size());
  }
  std::printf("%s\n", kappa::rtc::StatusJson().c_str());
  std::printf("%s (%d failures)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
