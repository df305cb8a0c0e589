#include "cc/core/cpu_dispatch.h"

#include <cstdlib>
#include <cstring>

namespace kappa {
namespace {

// What this CPU and its OS can run (libgcc's checks include the OS's
// support for the AVX and AVX-512 register state).
bool CpuRuns(CpuPath p) {
#if KAPPA_CPU_DISPATCH
  __builtin_cpu_init();
  switch (p) {
    case CpuPath::kBaseline: return true;
    case CpuPath::kAvx2: return __builtin_cpu_supports("x86-64-v3");
    case CpuPath::kAvx512: return __builtin_cpu_supports("x86-64-v4");
  }
  return false;
#else
  return p == CpuPath::kBaseline;
#endif
}

std::string Choices(const bool available[kCpuPathCount]) {
  std::string out = "auto";
  for (int k = 0; k < kCpuPathCount; ++k) {
    if (available[k]) out += std::string(", ") + kCpuPathNames[k];
  }
  return out;
}

struct Choice {
  CpuPath path;
  std::string problem;
};

const Choice& ActiveChoice() {
  static const Choice choice = [] {
    bool available[kCpuPathCount];
    for (int k = 0; k < kCpuPathCount; ++k) available[k] = CpuPathAvailable(static_cast<CpuPath>(k));
    Choice c;
    c.path = ChooseCpuPath(std::getenv(kCpuPathEnv), available, &c.problem);
    return c;
  }();
  return choice;
}

}  // namespace

bool CpuPathAvailable(CpuPath p) {
  const int k = static_cast<int>(p);
  return k >= 0 && k < kCpuPathCount && CpuRuns(p);
}

CpuPath ChooseCpuPath(const char* requested, const bool available[kCpuPathCount],
                      std::string* problem) {
  CpuPath best = CpuPath::kBaseline;
  for (int k = 0; k < kCpuPathCount; ++k) {
    if (available[k]) best = static_cast<CpuPath>(k);
  }
  problem->clear();
  if (requested == nullptr || requested[0] == '\0' || std::strcmp(requested, "auto") == 0) {
    return best;
  }
  for (int k = 0; k < kCpuPathCount; ++k) {
    if (std::strcmp(requested, kCpuPathNames[k]) != 0) continue;
    if (available[k]) return static_cast<CpuPath>(k);
    *problem = std::string(kCpuPathEnv) + "=" + requested + " names a path that " +
               (KAPPA_CPU_DISPATCH ? "this CPU cannot run"
                                   : "this build does not have (it was built without "
                                     "run-time dispatch, e.g. --march=native)") +
               "; expected one of: " + Choices(available);
    return best;
  }
  *problem = std::string(kCpuPathEnv) + "='" + requested +
             "' is not a CPU path; expected one of: " + Choices(available);
  return best;
}

CpuPath ActiveCpuPath() { return ActiveChoice().path; }

const char* CpuPathProblem() {
  const Choice& c = ActiveChoice();
  return c.problem.empty() ? nullptr : c.problem.c_str();
}

}  // namespace kappa
