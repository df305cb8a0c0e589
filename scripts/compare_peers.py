"""Side-by-side checks of tensorflow_kappa against QPyTorch, QKeras (qkeras-v3) and HGQ2.

Not part of the package and never imported by it: run it with a SEPARATE
virtual environment that has the peers installed next to TensorFlow 2.21, and
this checkout on PYTHONPATH (the op library is built for the same TF), e.g.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch==2.13.0 qtorch \\
        tensorflow-cpu==2.21.0 qkeras-v3 hgq2
    PYTHONPATH=. /tmp/peers/bin/python scripts/compare_peers.py

It prints three tables (BENCHMARKS.md quotes them):

1. quantizer throughput on 2**24 float32 (64 MiB) against a memory copy,
   medians of interleaved rounds;
2. what "stochastic rounding" does: the mean of q(x) for x = 0.3 grid steps
   (unbiased stochastic rounding gives 0.3, rounding to nearest 0) and the
   share of outputs off the grid when the quantizer runs inside tf.function;
3. step time of the study's CNN in float and quantized, in each framework,
   as a ratio (each framework against its own float step).
"""
from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

N = 1 << 24
ROUNDS = 9


def qkeras_quantized_bits():
    """qkeras-v3's ``quantized_bits``. Its package ``__init__`` fails to import (1.2.1:
    "cannot import name 'get_auto_range_constraint_initializer'"), so the module is
    loaded under a stand-in package object."""
    import importlib.util
    import types

    if "qkeras" not in sys.modules:
        spec = importlib.util.find_spec("qkeras")
        package = types.ModuleType("qkeras")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["qkeras"] = package
    from qkeras.quantizers import quantized_bits

    return quantized_bits


def timed(fn, rounds=ROUNDS):
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput():
    import tensorflow as tf
    import torch
    from qtorch.quant import fixed_point_quantize
    from quantizers import get_fixed_quantizer

    import tensorflow_kappa as tk

    quantized_bits = qkeras_quantized_bits()
    src = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    dst = np.empty_like(src)
    xt = torch.from_numpy(src.copy())
    yt = torch.empty_like(xt)
    xf = tf.constant(src)
    qk = quantized_bits(16, 7, keep_negative=True, alpha=1).get_quantizer()
    qk.build((N,))
    hgq = get_fixed_quantizer("RND", "SAT")
    qk_graph = tf.function(lambda x: qk(x, training=True))
    hgq_graph = tf.function(lambda x: hgq(x, 1.0, 7.0, 8.0))
    candidates = {
        "memcpy (numpy copyto)": lambda: np.copyto(dst, src),
        "torch copy_": lambda: yt.copy_(xt),
        "qtorch fixed_point_quantize nearest": lambda: fixed_point_quantize(
            xt, 16, 8, rounding="nearest"),
        "qtorch fixed_point_quantize stochastic": lambda: fixed_point_quantize(
            xt, 16, 8, rounding="stochastic"),
        # TensorFlow runs eagerly and synchronously on the CPU: a returned tensor is done.
        "kappa quantize_tensor s16.8": lambda: tk.quantize_tensor(xf, "s16.8"),
        "kappa quantize_tensor s16.8:stochastic": lambda: tk.quantize_tensor(
            xf, "s16.8:stochastic", seed=(1, 2)),
        "qkeras-v3 quantized_bits(16,7) quantizer, tf.function": lambda: qk_graph(xf),
        "hgq2 fixed quantizer RND/SAT, tf.function": lambda: hgq_graph(xf),
    }
    results = {}
    for _ in range(1):
        for name, fn in candidates.items():
            results[name] = timed(fn)
    base = results["memcpy (numpy copyto)"]
    print(f"1. quantizer throughput, 2**24 float32 (64 MiB), CPU, median of {ROUNDS}")
    print(f"{'candidate':<46} {'ms':>8} {'x memcpy':>9}")
    for name, t in results.items():
        print(f"{name:<46} {1e3 * t:8.2f} {t / base:9.2f}")
    print()


def _grid_step(q_wide):
    """The grid step of a quantizer's outputs: the commonest gap between neighbours."""
    values = np.unique(np.asarray(q_wide, np.float64))
    gaps = np.diff(values)
    gaps = gaps[gaps > 0]
    return 2.0 ** np.round(np.log2(np.median(gaps)))


def stochastic_rounding():
    import keras
    import tensorflow as tf
    import torch
    from qtorch.quant import fixed_point_quantize
    from quantizers import get_fixed_quantizer

    import tensorflow_kappa as tk

    n = 1 << 20
    wide = (np.random.default_rng(1).standard_normal(n) * 0.05).astype(np.float32)
    qk = qkeras_quantized_bits()(16, 7, keep_negative=True, alpha=1,
                                 use_stochastic_rounding=True).get_quantizer()
    qk.build((n,))
    hgq = get_fixed_quantizer("S_RND", "SAT")
    seed_gen = keras.random.SeedGenerator(0)
    rows = {
        "kappa quantize_tensor s16.8:stochastic": lambda v: tk.quantize_tensor(
            v, "s16.8:stochastic", seed=(3, 4)),
        "qtorch fixed_point_quantize(16, 8, stochastic)": lambda v: fixed_point_quantize(
            torch.from_numpy(np.array(v)), 16, 8, rounding="stochastic").numpy(),
        "qkeras-v3 quantized_bits(16, 7, stochastic), training": lambda v: qk(
            tf.convert_to_tensor(v), training=True),
        "hgq2 S_RND/SAT (f=8), training": lambda v: hgq(tf.convert_to_tensor(v), 1.0, 7.0, 8.0,
                                                         training=True, seed_gen=seed_gen),
    }
    print("2. stochastic rounding of x = 0.3 grid steps (2**20 elements): mean(q(x)) / step "
          "(unbiased: 0.300; nearest: 0); outputs off the grid for N(0, 0.05) inputs")
    print(f"{'candidate':<56} {'step':>8} {'mean':>6} {'values':>7} {'off grid':>9} "
          f"{'off grid, tf.function':>22}")
    for name, fn in rows.items():
        q_wide = np.asarray(fn(wide))
        step = _grid_step(q_wide)
        q = np.asarray(fn(np.full(n, 0.3 * step, np.float32)))
        off = np.mean(q_wide / step != np.round(q_wide / step))
        graph_off = "-"
        if "qtorch" not in name:
            g = np.asarray(tf.function(lambda v, fn=fn: fn(v))(tf.constant(wide)), np.float64)
            graph_off = f"{np.mean(g / step != np.round(g / step)):.4f}"
        print(f"{name:<56} 2**{int(np.log2(step)):<4} {np.mean(q) / step:6.3f} "
              f"{len(np.unique(q)):7d} {off:9.4f} {graph_off:>22}")
    print()


def cnn_steps():
    import torch
    from qtorch import FixedPoint as QFixed
    from qtorch.optim import OptimLP
    from qtorch.quant import Quantizer, quantizer

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the CPUs this process may use
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((32, 1, 8, 8), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 10, 32))

    def net(quant):
        act = lambda: Quantizer(forward_number=QFixed(16, 10), backward_number=QFixed(16, 14),  # noqa: E731
                                forward_rounding="stochastic", backward_rounding="stochastic")
        q = act if quant else (lambda: torch.nn.Identity())
        return torch.nn.Sequential(
            q(), torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), q(), torch.nn.MaxPool2d(2), q(),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), q(), torch.nn.MaxPool2d(2), q(),
            torch.nn.Flatten(), torch.nn.Linear(32 * 2 * 2, 10), q())

    def setup(quant):
        torch.manual_seed(0)
        model = net(quant)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        if quant:
            weight = quantizer(forward_number=QFixed(16, 10), forward_rounding="stochastic")
            grad = quantizer(forward_number=QFixed(16, 14), forward_rounding="stochastic")
            opt = OptimLP(opt, weight_quant=weight, grad_quant=grad)
        loss = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss(model(x), y).backward()
            opt.step()

        return step

    steps = {"float": setup(False), "qtorch Quantizer + OptimLP": setup(True)}
    per_step = {k: [] for k in steps}
    for _ in range(ROUNDS):
        for k, step in steps.items():
            start = time.perf_counter()
            for _ in range(50):
                step()
            per_step[k].append((time.perf_counter() - start) / 50)
    med = {k: statistics.median(v) for k, v in per_step.items()}
    print(f"3. digits CNN, batch 32, one training step, median of {ROUNDS} rounds of 50")
    for k, v in med.items():
        print(f"torch {k:<34} {1e3 * v:8.3f} ms   x float {v / med['float']:.2f}")
    print("(tensorflow_kappa: `kappa bench fixed-point` gives the same ratio for model.fit)")
    print()


if __name__ == "__main__":
    print(sys.version.split()[0], flush=True)
    throughput()
    stochastic_rounding()
    cnn_steps()
