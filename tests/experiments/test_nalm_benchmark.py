"""The NALM benchmark: its element-wise optimizers against Keras, its vectorised members
against the real layers, the recipe's per-member reinitialisation, and a tiny run."""
import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa import cli
from tensorflow_kappa.experiments.nalm import MODELS, Member, run_nalm_benchmark
from tensorflow_kappa.experiments.nalm.optimizers import MaskedOptimizer
from tensorflow_kappa.experiments.nalm.population import Population


@pytest.mark.parametrize("kind, reference", [
    ("rmsprop", lambda: keras.optimizers.RMSprop(0.01)),
    ("adam", lambda: keras.optimizers.Adam(0.01)),
])
def test_masked_optimizer_matches_keras_and_leaves_masked_members_alone(kind, reference):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 2, 1)).astype("float32")
    grads = [rng.normal(size=(3, 2, 1)).astype("float32") for _ in range(4)]
    stacked = tf.Variable(start)
    opt = MaskedOptimizer(kind, 0.01, [stacked], 3)
    masks = [[True, True, False], [True, False, False], [True, True, False],
             [True, True, False]]
    for g, mask in zip(grads, masks):
        opt.apply([tf.constant(g)], [stacked], tf.constant(mask))
    np.testing.assert_array_equal(stacked.numpy()[2], start[2])  # never selected
    for member, steps in [(0, [0, 1, 2, 3]), (1, [0, 2, 3])]:
        single = keras.Variable(start[member])
        keras_opt = reference()
        for s in steps:
            keras_opt.apply([tf.constant(grads[s][member])], [single])
        np.testing.assert_allclose(stacked.numpy()[member], single.numpy(), rtol=1e-5,
                                   atol=1e-7)
    opt.reset(np.array([True, False, False]))
    for slot in opt.slots[stacked.ref()]:
        assert np.all(slot.numpy()[0] == 0) and np.any(slot.numpy()[1] != 0)


@pytest.mark.parametrize("name", ["inalu", "inalu-shared", "nalu", "nau", "nmu"])
def test_vectorised_members_compute_what_the_layers_compute(name):
    spec = MODELS[name]
    members = [Member(spec.name, spec.ops[-1], 0, s) for s in range(3)]
    pop = Population(spec, members, [((1, 2), (2, 6))], steps=10, batch_size=16,
                      n_eval=50, epsilon=1e-5, base_seed=0)
    # different seeds, different initial weights
    assert not np.array_equal(pop.vars[0].numpy()[0], pop.vars[0].numpy()[1])
    x = tf.constant(np.random.default_rng(1).uniform(-3, 3, (3, 16, 2)).astype("float32"))
    pred, reg = pop.forward(x, pop.vars, pop.member_steps, False)
    for p in range(3):
        for v, stacked in zip(pop.variables_template, pop.vars):
            v.assign(stacked.numpy()[p])
        np.testing.assert_allclose(pred.numpy()[p], pop.layer(x[p]).numpy()[:, 0],
                                   rtol=1e-5, atol=1e-6)


def test_stuck_members_are_reinitialised_alone():
    spec = dataclasses.replace(MODELS["inalu"], learning_rate=0.0, reinit_min_steps=150,
                               reinit_loss_threshold=0.0, regularization_delay=10 ** 6)
    members = [Member(spec.name, "mul", 0, s) for s in range(2)]
    pop = Population(spec, members, [((1, 2), (2, 6))], steps=300, batch_size=16,
                      n_eval=50, epsilon=1e-5, base_seed=0)
    before = [v.numpy().copy() for v in pop.vars]
    pop.run(100, None)
    # lr 0: nothing learns, so every member is stuck once > 150 losses are recorded:
    # checked at steps 100 (too few), 200 (redrawn), 300 (100 since the redraw)
    assert pop.reinits.tolist() == [1, 1]
    assert all(not np.array_equal(b, v.numpy()) for b, v in zip(before, pop.vars))
    assert pop.member_steps.numpy().tolist() == [100, 100]  # counted since the redraw


def test_tiny_benchmark_run_and_cli(tmp_path, capsys):
    result = run_nalm_benchmark(ops=["add", "mul"], ranges=[((1, 2), (2, 6))],
                                models=["nau", "nmu"], seeds=3, steps=1500, eval_every=250,
                                n_eval=500, out_dir=str(tmp_path), verbose=0)
    # NAU only on +, NMU only on ×
    assert [(c.model, c.op) for c in result.cells] == [("NAU", "add"), ("NMU", "mul")]
    for cell in result.cells:
        assert cell.runs == 3
        assert cell.successes == 3, result.table()
        assert cell.solved_at_median is not None and cell.solved_at_median <= 1500
        assert cell.sparsity_error_median < 1e-3
    for m in result.members:
        assert m.formula in ("x1 + x2", "x1 * x2")
        np.testing.assert_allclose(m.layer_mse, m.extrapolation_mse, rtol=1e-3, atol=1e-12)
    assert result.max_layer_discrepancy < 1e-3
    table = (tmp_path / "nalm_benchmark.md").read_text()
    assert "| NAU | + | U(1, 2) → U(2, 6) | 3/3 |" in table
    data = json.loads((tmp_path / "nalm_benchmark.json").read_text())
    assert len(data["members"]) == 6 and data["cells"][0]["success_rate"] == 1.0

    code = cli.main(["nalm-benchmark", "--ops", "sub", "--ranges", "2", "--models", "nau",
                     "--seeds", "2", "--steps", "500", "--eval-every", "250", "--n-eval",
                     "300", "--out", str(tmp_path / "cli")])
    assert code == 0
    out = capsys.readouterr().out
    assert "| NAU | − | U(1, 2) → U(2, 6) |" in out
    assert (tmp_path / "cli" / "nalm_benchmark.md").exists()
    with pytest.raises(ValueError, match="unknown op"):
        run_nalm_benchmark(ops=["pow"], verbose=0)
    with pytest.raises(ValueError, match="unknown model"):
        run_nalm_benchmark(models=["npu"], verbose=0)
