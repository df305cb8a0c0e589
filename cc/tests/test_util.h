// Shared by the functor tests, the kernel benchmark and cc/gpu_check: the
// formats to test, their names, test inputs (edge values, then random ones),
// bitwise comparison and a thread pool that shuffles the work. The scalar
// references the functors are held to live beside their ops
// (cc/core/<op>/reference.h).
#ifndef KAPPA_TESTS_TEST_UTIL_H_
#define KAPPA_TESTS_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cc/core/formats/fixed_point.h"
#include "cc/core/parallel.h"
#include "cc/core/quantize/reference.h"

namespace kappa_test {

using kappa::FixedPointFormat;
using kappa::Overflow;
using kappa::Rounding;
using kappa::reference::CodeMax;
using kappa::reference::CodeMin;
using kappa::reference::LD;
using kappa::reference::MaxValue;
using kappa::reference::MinValue;
using kappa::reference::Pow2;

// Every mode, from the one table (formats/rounding.h).
using kappa::kOverflows;
using kappa::kRoundings;

inline FixedPointFormat Format(int bits, int frac, bool is_signed,
                               Rounding r = Rounding::kNearestEven,
                               Overflow o = Overflow::kSaturate) {
  FixedPointFormat f;
  f.bits = bits;
  f.frac_bits = frac;
  f.is_signed = is_signed;
  f.rounding = r;
  f.overflow = o;
  return f;
}

inline std::string Describe(const FixedPointFormat& f) {
  return std::string(f.is_signed ? "s" : "u") + std::to_string(f.bits) + "." +
         std::to_string(f.frac_bits) + ":" + kappa::RoundingName(f.rounding) + ":" +
         kappa::OverflowName(f.overflow);
}

// Whether every value of the format is exact in T (the Python rule).
template <typename T>
bool Fits(const FixedPointFormat& f) {
  const int digits = std::numeric_limits<T>::digits;
  const int min_exp = std::numeric_limits<T>::min_exponent - digits;
  return f.bits <= digits && -f.frac_bits >= min_exp &&
         f.bits - f.frac_bits <= std::numeric_limits<T>::max_exponent;
}

// A spread of formats that fit T: narrow and wide, negative frac_bits, frac
// beyond bits, unsigned.
template <typename T>
std::vector<FixedPointFormat> Formats(Rounding r, Overflow o) {
  const int spec[][3] = {{8, 4, 1},  {6, 0, 1},   {4, -2, 1},  {8, 10, 1},
                         {8, 8, 0},  {3, 1, 0},   {2, 0, 1},   {1, 0, 0},
                         {12, 3, 1}, {16, 20, 1}, {24, 12, 1}, {24, 30, 0},
                         {32, 16, 1}, {32, 40, 0}};
  std::vector<FixedPointFormat> out;
  for (const auto& s : spec) {
    FixedPointFormat f = Format(s[0], s[1], s[2] != 0, r, o);
    if (Fits<T>(f)) out.push_back(f);
  }
  return out;
}

// Test inputs: ties, values on, next to and beyond the grid and the rails,
// signed zeros, NaN, infinities, tiny and huge values, then random values
// spread over and beyond the format's range.
template <typename T>
std::vector<T> Inputs(const FixedPointFormat& f, size_t random_count, uint64_t seed) {
  std::vector<T> v;
  const LD lsb = Pow2(-f.frac_bits);
  const LD ks[] = {0, 1, 2, 3, CodeMin(f), CodeMax(f), CodeMin(f) + 1, CodeMax(f) - 1};
  for (LD k : ks) {
    for (LD d : {LD(0.5), LD(0), LD(0.25), LD(-0.25), LD(0.75)}) {
      v.push_back(static_cast<T>((k + d) * lsb));
      v.push_back(static_cast<T>((-k - d) * lsb));
    }
  }
  for (LD r : {MinValue(f), MaxValue(f)}) {
    for (LD d : {LD(-1), LD(1), LD(-0.5), LD(0.5), LD(1e-3)}) v.push_back(static_cast<T>(r + d * lsb));
    v.push_back(static_cast<T>(3 * r));
  }
  const T special[] = {T(0), -T(0), std::numeric_limits<T>::quiet_NaN(),
                       std::numeric_limits<T>::infinity(),
                       -std::numeric_limits<T>::infinity(),
                       std::numeric_limits<T>::min(), -std::numeric_limits<T>::min(),
                       std::numeric_limits<T>::denorm_min(),
                       std::numeric_limits<T>::max(), -std::numeric_limits<T>::max()};
  v.insert(v.end(), std::begin(special), std::end(special));
  std::mt19937_64 rng(seed);
  const double scale = static_cast<double>(std::max(std::fabs(MaxValue(f)), lsb * 4));
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_int_distribution<int> kind(0, 9);
  for (size_t k = 0; k < random_count; ++k) {
    const int c = kind(rng);
    double x = normal(rng);
    if (c < 5) x *= scale;                              // the range
    else if (c < 7) x *= 3 * scale;                     // beyond the rails
    else if (c < 9) x *= static_cast<double>(lsb) * 2;  // around zero
    else x = std::ldexp(normal(rng), static_cast<int>(rng() % 200) - 100);
    v.push_back(static_cast<T>(x));
  }
  return v;
}

// Bitwise equality (NaN payloads aside: any NaN equals any NaN).
template <typename T>
bool SameBits(T a, T b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// A ParallelFor that splits [0, total) into `threads` * 3 chunks and runs them
// on std::threads in a shuffled order: a functor whose result depends on the
// split or the order fails the thread-independence tests.
inline kappa::ParallelFor ShuffledThreads(int threads, uint64_t seed) {
  return [threads, seed](int64_t total, int64_t,
                         const std::function<void(int64_t, int64_t)>& work) {
    if (total <= 0) return;
    const int64_t chunks = std::min<int64_t>(total, threads * 3);
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (int64_t c = 0; c < chunks; ++c) {
      ranges.emplace_back(total * c / chunks, total * (c + 1) / chunks);
    }
    std::shuffle(ranges.begin(), ranges.end(), std::mt19937_64(seed));
    std::mutex mu;
    size_t next = 0;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        for (;;) {
          std::pair<int64_t, int64_t> r;
          {
            std::lock_guard<std::mutex> lock(mu);
            if (next == ranges.size()) return;
            r = ranges[next++];
          }
          if (r.first < r.second) work(r.first, r.second);
        }
      });
    }
    for (auto& t : pool) t.join();
  };
}

}  // namespace kappa_test

#endif  // KAPPA_TESTS_TEST_UTIL_H_
