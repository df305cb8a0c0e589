// ChooseCpuPath (cc/core/cpu_dispatch.h): what KAPPA_CPU_PATH selects for
// every availability, and the messages for values it refuses; and that the
// active path is one this CPU runs.
#include <string>

#include "cc/core/cpu_dispatch.h"
#include "cc/tests/check.h"

namespace {

using kappa::ChooseCpuPath;
using kappa::CpuPath;

constexpr bool kAll[kappa::kCpuPathCount] = {true, true, true};
constexpr bool kNoAvx512[kappa::kCpuPathCount] = {true, true, false};
constexpr bool kBaselineOnly[kappa::kCpuPathCount] = {true, false, false};

KAPPA_TEST(UnsetOrAutoTakesTheBestAvailablePath) {
  std::string problem = "stale";
  for (const char* value : {static_cast<const char*>(nullptr), "", "auto"}) {
    KAPPA_CHECK(ChooseCpuPath(value, kAll, &problem) == CpuPath::kAvx512);
    KAPPA_CHECK(problem.empty()) << problem;
    KAPPA_CHECK(ChooseCpuPath(value, kNoAvx512, &problem) == CpuPath::kAvx2);
    KAPPA_CHECK(ChooseCpuPath(value, kBaselineOnly, &problem) == CpuPath::kBaseline);
    KAPPA_CHECK(problem.empty()) << problem;
  }
}

KAPPA_TEST(ANamedAvailablePathIsTaken) {
  std::string problem;
  KAPPA_CHECK(ChooseCpuPath("baseline", kAll, &problem) == CpuPath::kBaseline);
  KAPPA_CHECK(ChooseCpuPath("avx2", kAll, &problem) == CpuPath::kAvx2);
  KAPPA_CHECK(ChooseCpuPath("avx512", kAll, &problem) == CpuPath::kAvx512);
  KAPPA_CHECK(problem.empty()) << problem;
}

KAPPA_TEST(AnUnavailablePathIsRefusedWithTheChoices) {
  std::string problem;
  // Never the path asked for: running it would be an illegal instruction.
  KAPPA_CHECK(ChooseCpuPath("avx512", kNoAvx512, &problem) == CpuPath::kAvx2);
  KAPPA_CHECK(problem.find("KAPPA_CPU_PATH=avx512 names a path that") == 0) << problem;
  KAPPA_CHECK(problem.find("expected one of: auto, baseline, avx2") != std::string::npos)
      << problem;
  KAPPA_CHECK(problem.find("avx512", 20) == std::string::npos) << problem;
}

KAPPA_TEST(AnUnknownNameIsRefused) {
  std::string problem;
  KAPPA_CHECK(ChooseCpuPath("AVX2", kAll, &problem) == CpuPath::kAvx512);
  KAPPA_CHECK(problem ==
              "KAPPA_CPU_PATH='AVX2' is not a CPU path; expected one of: auto, baseline, "
              "avx2, avx512")
      << problem;
}

KAPPA_TEST(TheActivePathIsAvailable) {
  KAPPA_CHECK(kappa::CpuPathAvailable(kappa::ActiveCpuPath()));
  KAPPA_CHECK(kappa::CpuPathAvailable(CpuPath::kBaseline));
#if !KAPPA_CPU_DISPATCH
  KAPPA_CHECK(!kappa::CpuPathAvailable(CpuPath::kAvx2));
  KAPPA_CHECK(!kappa::CpuPathAvailable(CpuPath::kAvx512));
#endif
}

}  // namespace

KAPPA_TEST_MAIN()
