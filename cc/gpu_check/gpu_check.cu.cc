// Standalone check of the CUDA functors against the CPU functors (no
// TensorFlow), and their bandwidth next to a device-to-device copy measured
// in the same run. Build and run with cc/gpu_check/run.sh: with nvcc (the
// static route), for the NVRTC route with g++ (this file as C++; the kernels
// compiled at first use by NVRTC and launched through the driver), or with
// --emulate on the CPU (the kernels' source and this file compiled by g++
// against cc/gpu_check/emulation/cuda_host.h; no bandwidth).
//
//   gpu_check [--fail-fast]      --fail-fast: exit at the first mismatch
//
// For each functor, on random inputs mixed with edge values, every mode, at
// sizes 0, 1, 31, 32, 33, 1023, 1025, the device's full grid less one
// element and 4.5 full grids (the grid-stride loops wrap):
//   quantize:     GPU output == CPU output, bit for bit;
//   rail_stats:   counts and fractions equal;
//   update_store: stored weights bit for bit, counts equal, the double sums
//                 within n * 2^-52 * sum(|terms|) (the two devices add in
//                 different orders).
// Then GB/s of compulsory traffic on 2^24 float32 elements (median of 20
// timed launches, CUDA events), and the ratio to the device-to-device copy.
// Exit status 1 on any mismatch, 2 without a usable GPU.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cc/bench/timing.h"
#include "cc/core/formats/fixed_point.h"
#include "cc/core/gpu_launch.h"
#include "cc/core/parallel.h"
#include "cc/core/quantize/quantize.h"
#include "cc/core/rail_stats/rail_stats.h"
#include "cc/core/update_store/update_store.h"
#include "cc/gpu_check/device.h"
#include "cc/tests/test_util.h"
#if !defined(__CUDACC__)
#include "cc/core/gpu_rtc.h"
#endif

namespace {

using kappa::FixedPointFormat;
using kappa::Overflow;
using kappa::Rounding;
// Formats, their names, test inputs (edge values, then random ones) and
// bitwise comparison are shared with the CPU functor tests.
using kappa_test::Describe;
using kappa_test::Format;
using kappa_test::Inputs;
using kappa_test::SameBits;

int failures = 0;
bool fail_fast = false;

void Fail(const std::string& what) {
  if (++failures <= 30) std::fprintf(stderr, "MISMATCH %s\n", what.c_str());
  if (fail_fast) {
    std::printf("\nFAILED (--fail-fast: stopped at the first mismatch)\n");
    std::exit(1);
  }
}

// The sizes every check runs at: empty, one element, around a warp, around
// four blocks, the full grid that the functors launch on this device less one
// element (every block; the last thread idle), and 4.5 full grids (the
// grid-stride loops wrap: the unrolled loop, then the remainder loop for half
// of the threads).
std::vector<int64_t> Sizes() {
  const int64_t grid =
      int64_t{kappa::GridSizeFor(int64_t{1} << 40, nullptr)} * kappa::kThreadsPerBlock;
  return {0, 1, 31, 32, 33, 1023, 1025, grid - 1, 4 * grid + grid / 2 + 3};
}

// Test inputs of exactly n elements: the edge values first, then random ones.
template <typename T>
std::vector<T> InputsOfSize(const FixedPointFormat& f, int64_t n, uint64_t seed) {
  std::vector<T> x = Inputs<T>(f, static_cast<size_t>(n), seed);
  x.resize(static_cast<size_t>(n));
  return x;
}

template <typename T>
struct Device {
  T* p = nullptr;
  size_t n = 0;
  explicit Device(size_t count) : n(count) {
    p = static_cast<T*>(gpu_check::Malloc(std::max<size_t>(count, 1) * sizeof(T)));
  }
  Device(const std::vector<T>& host) : Device(host.size()) { Upload(host); }
  ~Device() { gpu_check::Free(p); }
  void Upload(const std::vector<T>& host) { gpu_check::ToDevice(p, host.data(), n * sizeof(T)); }
  std::vector<T> Download() const {
    std::vector<T> host(n);
    gpu_check::ToHost(host.data(), p, n * sizeof(T));
    return host;
  }
};

template <typename T>
void CheckQuantize(const std::vector<int64_t>& sizes) {
  const FixedPointFormat shapes[] = {Format(8, 4, true), Format(8, 8, false), Format(4, -2, true),
                                     Format(16, 10, true), Format(2, 0, true)};
  for (const FixedPointFormat& shape : shapes) {
    for (int r = 0; r < 5; ++r) {
      for (int o = 0; o < 2; ++o) {
        FixedPointFormat f = shape;
        f.rounding = static_cast<Rounding>(r);
        f.overflow = static_cast<Overflow>(o);
        for (const int64_t n : sizes) {
          const std::vector<T> x = InputsOfSize<T>(f, n, 1 + r * 2 + o);
          std::vector<T> want(x.size());
          kappa::QuantizeCpu<T>(x.data(), want.data(), n, f, 3, -4, kappa::SerialFor);
          Device<T> dx(x), dy(x.size());
          const std::string what = "quantize " + Describe(f) + " n=" + std::to_string(n);
          const char* err = kappa::QuantizeGpu<T>(dx.p, dy.p, n, f, 3, -4, nullptr);
          if (err) Fail(what + " launch: " + err);
          const std::vector<T> got = dy.Download();
          size_t bad = 0;
          for (size_t i = 0; i < x.size(); ++i) bad += !SameBits(got[i], want[i]);
          if (bad) Fail(what + ": " + std::to_string(bad) + " elements differ");
        }
      }
    }
  }
}

template <typename T>
void CheckRailStats(const std::vector<int64_t>& sizes) {
  const FixedPointFormat formats[] = {Format(8, 4, true), Format(8, 8, false), Format(6, 0, true),
                                      Format(12, 14, true)};
  for (const FixedPointFormat& f : formats) {
    for (double near_rail : {0.9, 0.5, 1.0, 0.0}) {
      for (const int64_t n : sizes) {
        const std::vector<T> x = InputsOfSize<T>(f, n, 7);
        const kappa::RailCounts want =
            kappa::RailStatsCpu<T>(x.data(), n, f, near_rail, kappa::SerialFor);
        Device<T> dx(x);
        Device<char> scratch(kappa::RailStatsGpuScratchBytes(n));
        Device<float> out(3);
        const std::string what = "rail_stats " + Describe(f) +
                                 " near_rail=" + std::to_string(near_rail) +
                                 " n=" + std::to_string(n);
        const char* err = kappa::RailStatsGpu<T>(dx.p, n, f, near_rail, scratch.p, out.p,
                                                 out.p + 1, out.p + 2, nullptr);
        if (err) Fail(what + " launch: " + err);
        kappa::RailCounts got;
        gpu_check::ToHost(&got, scratch.p, sizeof(got));
        const std::vector<float> fr = out.Download();
        const kappa::RailFractions wf = kappa::FractionsFromCounts(want);
        if (std::memcmp(&got, &want, sizeof(got)) != 0 || fr[0] != wf.saturation ||
            fr[1] != wf.near_rail || fr[2] != wf.underflow) {
          Fail(what);
        }
      }
    }
  }
}

// Every pair of (update, storage) steps: none, or s8.6 in each of the 10 modes.
template <typename T>
void CheckUpdateAtSize(int64_t n) {
  std::vector<std::pair<bool, FixedPointFormat>> steps = {{false, Format(8, 0, true)}};
  for (int r = 0; r < 5; ++r) {
    for (int o = 0; o < 2; ++o) {
      steps.push_back({true, Format(8, 6, true, static_cast<Rounding>(r), static_cast<Overflow>(o))});
    }
  }
  const std::vector<T> w0 = InputsOfSize<T>(Format(8, 6, true), n, 11);
  std::vector<T> g(n);
  std::mt19937_64 rng(12);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (T& v : g) v = static_cast<T>(std::ldexp(normal(rng), static_cast<int>(rng() % 20) - 12));
  std::vector<T> w = w0;
  for (T& v : w) {
    if (!std::isfinite(v)) v = T(1);
  }
  const T lr = T(0.3);
  Device<T> dg(g), dlr(std::vector<T>{lr});
  Device<char> scratch(kappa::UpdateStoreGpuScratchBytes(n));
  Device<float> out(5);
  for (const auto& [has_u, uf] : steps) {
    for (const auto& [has_s, sf] : steps) {
      kappa::UpdateConfig c;
      c.has_update_format = has_u;
      c.update_format = Format(10, 14, true, uf.rounding, uf.overflow);
      c.has_storage_format = has_s;
      c.storage_format = sf;
      c.seed0 = 5;
      c.seed1 = 9;
      std::vector<T> want = w;
      const kappa::UpdateSums ws = kappa::UpdateStoreCpu<T>(want.data(), want.data(), g.data(),
                                                            lr, n, c, kappa::SerialFor);
      Device<T> dw(w);
      kappa::UpdateStatsOutputs o{out.p, out.p + 1, out.p + 2, out.p + 3, out.p + 4};
      const char* err = kappa::UpdateStoreGpu<T>(dw.p, dw.p, dg.p, dlr.p, n, c, scratch.p, o,
                                                 nullptr);
      const std::string what = std::string("update ") + (has_u ? Describe(c.update_format) : "none") +
                               " / " + (has_s ? Describe(sf) : "none") + " n=" + std::to_string(n);
      if (err) Fail(what + " launch: " + err);
      kappa::UpdateSums gs;
      gpu_check::ToHost(&gs, scratch.p, sizeof(gs));
      const std::vector<T> got = dw.Download();
      size_t bad = 0;
      for (int64_t i = 0; i < n; ++i) bad += !SameBits(got[i], want[i]);
      if (bad) Fail(what + ": " + std::to_string(bad) + " weights differ");
      if (gs.total != ws.total || gs.nonzero_raw != ws.nonzero_raw ||
          gs.underflow != ws.underflow || gs.saturated != ws.saturated) {
        Fail(what + ": counts differ");
      }
      // Sums of nonnegative terms: relative bound; the dot: relative to the
      // Cauchy-Schwarz bound sqrt(raw_sq * actual_sq) >= sum |raw * d|.
      const double tol = static_cast<double>(n) * std::ldexp(1.0, -52);
      const double dot_scale = std::sqrt(ws.raw_sq * ws.actual_sq);
      if (std::fabs(gs.raw_sq - ws.raw_sq) > tol * ws.raw_sq ||
          std::fabs(gs.actual_sq - ws.actual_sq) > tol * ws.actual_sq ||
          std::fabs(gs.dot - ws.dot) > tol * dot_scale) {
        Fail(what + ": sums differ beyond the summation-order bound");
      }
    }
  }
}

template <typename T>
void CheckUpdate(const std::vector<int64_t>& sizes) {
  for (const int64_t n : sizes) CheckUpdateAtSize<T>(n);
}

#if !defined(KAPPA_CUDA_EMULATION)
// Milliseconds that one call of launch() takes on the device, by CUDA events.
struct EventClockMs {
  template <typename Launch>
  double operator()(Launch& launch) const {
    gpu_check::Event a, b;
    a.Record();
    launch();
    b.Record();
    return b.MsSince(a);
  }
};

void Bandwidth() {
  const int64_t n = int64_t{1} << 24;
  const double bytes = static_cast<double>(n) * sizeof(float);
  std::vector<float> host = Inputs<float>(Format(8, 4, true), n, 99);
  host.resize(n);  // the edge values first, then random ones
  for (float& v : host) {
    if (!std::isfinite(v)) v = 0.5f;
  }
  Device<float> x(host), y(n), w(host), g(host), lr(std::vector<float>{1e-3f});
  Device<char> scratch(std::max(kappa::UpdateStoreGpuScratchBytes(n),
                                kappa::RailStatsGpuScratchBytes(n)));
  Device<float> out(5);
  const int reps = 20;
  const EventClockMs events;
  const double copy = kappa_bench::MedianMs(
      reps, [&] { gpu_check::DeviceCopyAsync(y.p, x.p, n * sizeof(float)); }, events);
  const double copy_gbs = 2 * bytes / copy / 1e6;
  std::printf("\nbandwidth on %lld float32 (median of %d, CUDA events)\n",
              static_cast<long long>(n), reps);
  std::printf("%-40s %8.3f ms %8.1f GB/s\n", "device-to-device copy", copy, copy_gbs);
  auto row = [&](const char* name, double traffic, double ms) {
    const double gbs = traffic * bytes / ms / 1e6;
    std::printf("%-40s %8.3f ms %8.1f GB/s  %5.1f%% of copy\n", name, ms, gbs,
                100.0 * gbs / copy_gbs);
  };
  row("quantize s8.4 nearest_even", 2, kappa_bench::MedianMs(reps, [&] {
        kappa::QuantizeGpu<float>(x.p, y.p, n, Format(8, 4, true), 1, 2, nullptr);
      }, events));
  row("quantize s8.4 stochastic", 2, kappa_bench::MedianMs(reps, [&] {
        kappa::QuantizeGpu<float>(x.p, y.p, n, Format(8, 4, true, Rounding::kStochastic), 1, 2,
                                  nullptr);
      }, events));
  row("rail_stats s8.4 (read only)", 1, kappa_bench::MedianMs(reps, [&] {
        kappa::RailStatsGpu<float>(x.p, n, Format(8, 4, true), 0.9, scratch.p, out.p, out.p + 1,
                                   out.p + 2, nullptr);
      }, events));
  kappa::UpdateStatsOutputs o{out.p, out.p + 1, out.p + 2, out.p + 3, out.p + 4};
  kappa::UpdateConfig c;
  c.has_update_format = c.has_storage_format = true;
  c.update_format = Format(16, 16, true);
  c.storage_format = Format(16, 12, true);
  row("update s16.16 / s16.12 nearest_even", 3, kappa_bench::MedianMs(reps, [&] {
        kappa::UpdateStoreGpu<float>(w.p, w.p, g.p, lr.p, n, c, scratch.p, o, nullptr);
      }, events));
  c.update_format.rounding = Rounding::kStochastic;
  row("update s16.16 stochastic / s16.12", 3, kappa_bench::MedianMs(reps, [&] {
        kappa::UpdateStoreGpu<float>(w.p, w.p, g.p, lr.p, n, c, scratch.p, o, nullptr);
      }, events));
}
#endif  // !defined(KAPPA_CUDA_EMULATION)

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) != "--fail-fast") {
      std::fprintf(stderr, "usage: %s [--fail-fast]\n", argv[0]);
      return 2;
    }
    fail_fast = true;
  }
  std::string name;
  int sms = 0, arch = 0;
  if (!gpu_check::Init(&name, &sms, &arch)) {
    std::fprintf(stderr, "gpu_check: no CUDA device\n");
    return 2;
  }
#if defined(KAPPA_CUDA_EMULATION)
  std::printf("gpu_check on %s (%d SMs)\n", name.c_str(), sms);
  std::printf("route: emulated (the kernels' source compiled by the host compiler against "
              "cc/gpu_check/emulation/cuda_host.h, each block's threads run as fibers)\n");
#else
  const int driver = gpu_check::DriverVersion();
  std::printf("gpu_check on %s (sm_%d, %d SMs), driver for CUDA %d.%d\n", name.c_str(), arch,
              sms, driver / 1000, driver % 1000 / 10);
#if defined(__CUDACC__)
  std::printf("route: static (nvcc %d.%d, its CUDA runtime linked in)\n", __CUDACC_VER_MAJOR__,
              __CUDACC_VER_MINOR__);
#else
  std::printf("route: nvrtc (kernels compiled here at first use, launched through the "
              "driver API): %s\n", kappa::rtc::StatusJson().c_str());
#endif
#endif
  const std::vector<int64_t> sizes = Sizes();
  std::printf("sizes:");
  for (const int64_t n : sizes) std::printf(" %lld", static_cast<long long>(n));
  std::printf("\n");
  CheckQuantize<float>(sizes);
  CheckQuantize<double>(sizes);
  std::printf("quantize:     GPU == CPU bit for bit, 5 shapes x 10 modes x 2 dtypes x %zu "
              "sizes%s\n", sizes.size(), failures ? " -- MISMATCHES above" : "");
  const int before_rail = failures;
  CheckRailStats<float>(sizes);
  CheckRailStats<double>(sizes);
  std::printf("rail_stats:   counts and fractions equal, 4 formats x 4 near_rail x 2 dtypes x %zu "
              "sizes%s\n", sizes.size(), failures > before_rail ? " -- MISMATCHES above" : "");
  const int before_update = failures;
  CheckUpdate<float>(sizes);
  CheckUpdate<double>(sizes);
  std::printf("update_store: weights bit for bit, counts equal, sums within bound, "
              "11 x 11 step pairs x 2 dtypes x %zu sizes%s\n",
              sizes.size(), failures > before_update ? " -- MISMATCHES above" : "");
#if defined(KAPPA_CUDA_EMULATION)
  std::printf("\nbandwidth: not measured on the emulated device\n");
  cuda_emulation::PrintLaunches();
#else
  Bandwidth();
#endif
  std::printf("\n%s (%d mismatches)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
