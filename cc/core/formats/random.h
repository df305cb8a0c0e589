// The counter-based random numbers of stochastic rounding, for the host and
// the device (docs/rounding.md, "The random stream", is their definition).
//
// Element i of a tensor draws RandomBits(key, i), a hash of i under a key
// derived from the user's two int64 seeds. The same (seeds, i) give the same
// number on every device and with any number of threads. The XLA lowering
// (cc/ops/xla_fixed_point.h) and the pure-TensorFlow twin
// (tensorflow_kappa/quantization/composite.py) build the same functions from
// uint32 operations.
//
// Seeds to key: all 128 bits of (seed0, seed1) count. With Mix64 a bijection
// of 64 bits,
//   key = Mix64(Mix64(seed0) ^ seed1),
// so for a fixed seed0 the map seed1 -> key is a bijection, and so is
// seed0 -> key for a fixed seed1: two seed pairs that agree in either word
// never share a key (per-step seeds (run, step) never repeat a stream). The
// key has 64 bits: there are 2^64 distinct streams.
//
// How long a stream runs before it repeats: the counter i is 64 bits, so
// one key's stream is 2^64 numbers long; every op call counts from 0 over
// its own elements, so no two elements of a call share a counter value.
// Within each aligned run of 2^32 counter values the 32-bit numbers are all
// distinct (RandomBits is a bijection of the low half of i), and two such
// runs of one key differ at every position. The per-element cost is two
// Mix32; the key is derived once per call.
#ifndef KAPPA_CORE_FORMATS_RANDOM_H_
#define KAPPA_CORE_FORMATS_RANDOM_H_

#include <cstdint>

#include "cc/core/formats/float_math.h"

namespace kappa {

struct RandomKey {
  uint32_t k0 = 0;
  uint32_t k1 = 0;
};

// "lowbias32" integer hash (Chris Wellons' hash-prospector): a bijection on
// uint32 with good avalanche.
KAPPA_HD uint32_t Mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// A bijection of 64 bits (lo, hi): three Feistel rounds, each xoring one
// half with Mix32 of the other half and a round constant. A round is undone
// by applying it again, so the rounds in reverse order invert the whole;
// after three rounds every output bit depends on every input bit.
KAPPA_HD RandomKey Mix64(uint32_t lo, uint32_t hi) {
  hi ^= Mix32(lo ^ 0x9e3779b9U);
  lo ^= Mix32(hi ^ 0x85ebca6bU);
  hi ^= Mix32(lo ^ 0xc2b2ae35U);
  RandomKey out;
  out.k0 = lo;
  out.k1 = hi;
  return out;
}

KAPPA_HD RandomKey MakeRandomKey(int64_t seed0, int64_t seed1) {
  const uint64_t s0 = static_cast<uint64_t>(seed0);
  const uint64_t s1 = static_cast<uint64_t>(seed1);
  const RandomKey p = Mix64(static_cast<uint32_t>(s0), static_cast<uint32_t>(s0 >> 32));
  return Mix64(p.k0 ^ static_cast<uint32_t>(s1), p.k1 ^ static_cast<uint32_t>(s1 >> 32));
}

// 32 random bits for element `index` (a flat index into the tensor).
KAPPA_HD uint32_t RandomBits(RandomKey key, uint64_t index) {
  const uint32_t lo = static_cast<uint32_t>(index);
  const uint32_t hi = static_cast<uint32_t>(index >> 32);
  return Mix32(Mix32(lo ^ key.k0) ^ hi ^ key.k1);
}

// RandomBits(key, index) == RandomBits(KeyForHighBits(key, index >> 32),
// uint32_t(index)): a kernel walking a range that does not cross a multiple
// of 2^32 can fold the high half of the index into the key once, and hash
// 32-bit indices.
KAPPA_HD RandomKey KeyForHighBits(RandomKey key, uint32_t high) {
  key.k1 ^= high;
  return key;
}

// Uniform in [0, 1) on the grid 2^-24: exactly representable in float and
// double, so CPU, GPU and the TensorFlow fallback agree bit for bit.
template <typename C>
KAPPA_HD C UniformFromBits(uint32_t bits) {
  // Through int32 (the value fits): unsigned-to-double has no vector form.
  return static_cast<C>(static_cast<int32_t>(bits >> 8)) *
         static_cast<C>(5.9604644775390625e-08);
}

}  // namespace kappa

#endif  // KAPPA_CORE_FORMATS_RANDOM_H_
