"""The package's counter-based random numbers, written from their documented definition.

``docs/rounding.md`` defines the stream of stochastic rounding: element ``i``
of a call with seed ``(seed0, seed1)`` draws ``RandomBits(key, i)`` where
``key = Mix64(Mix64(seed0) ^ seed1)``; its top 24 bits give the uniform
``u`` in [0, 1) on the grid 2**-24.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["mix32", "mix64", "stochastic_uniforms"]


def mix32(x):
    """The lowbias32 hash, on uint32 arrays."""
    x = np.asarray(x, np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = (x * np.uint32(0x7FEB352D)).astype(np.uint32)
        x = x ^ (x >> np.uint32(15))
        x = (x * np.uint32(0x846CA68B)).astype(np.uint32)
        return x ^ (x >> np.uint32(16))


def mix64(v: int) -> int:
    """The documented 64-bit seed mixing, on a Python int's 64 bits (lo, hi):
    hi ^= H(lo ^ 0x9E3779B9); lo ^= H(hi ^ 0x85EBCA6B); hi ^= H(lo ^ 0xC2B2AE35)."""
    lo, hi = int(v) & 0xFFFFFFFF, (int(v) >> 32) & 0xFFFFFFFF
    hi ^= int(mix32(lo ^ 0x9E3779B9))
    lo ^= int(mix32(hi ^ 0x85EBCA6B))
    hi ^= int(mix32(lo ^ 0xC2B2AE35))
    return (hi << 32) | lo


def stochastic_uniforms(seed: Sequence[int], n: int) -> np.ndarray:
    """The uniforms the package's counter-based generator gives elements 0..n-1:
    key = mix64(mix64(seed0) ^ seed1) over all 64 bits of each seed word."""
    s0, s1 = (int(s) & 0xFFFFFFFFFFFFFFFF for s in seed)
    key = mix64(mix64(s0) ^ s1)
    k0, k1 = np.uint32(key & 0xFFFFFFFF), np.uint32(key >> 32)
    index = np.arange(n, dtype=np.uint64)
    lo = (index & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (index >> np.uint64(32)).astype(np.uint32)
    bits = mix32(mix32(lo ^ k0) ^ hi ^ k1)
    return (bits >> np.uint32(8)).astype(np.float64) * 2.0**-24
