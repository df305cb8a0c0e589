"""The NALM benchmark: its vectorised members against the real layers, the recipe's
per-member reinitialisation, and a tiny run (the masked optimizer against Keras:
tests/experiments/test_population.py)."""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa import cli
from tensorflow_kappa.experiments.nalm import (INALU_RECIPE, MODELS, Member, ModelSpec,
                                               run_nalm_benchmark)
from tensorflow_kappa.experiments.nalm.module_population import ModulePopulation
from tensorflow_kappa.recipes import InaluRecipe


@pytest.mark.parametrize("name", ["inalu", "inalu-shared", "nalu", "nau", "nmu"])
def test_vectorised_members_compute_what_the_layers_compute(name):
    spec = MODELS[name]
    members = [Member(spec.name, spec.ops[-1], 0, s) for s in range(3)]
    pop = ModulePopulation(spec, members, [((1, 2), (2, 6))], steps=10, eval_every=10,
                           batch_size=16, n_eval=50, epsilon=1e-5, base_seed=0)
    # different seeds, different initial weights
    assert not np.array_equal(pop.weights[0][0], pop.weights[0][1])
    x = tf.constant(np.random.default_rng(1).uniform(-3, 3, (3, 16, 2)).astype("float32"))
    pred, reg = pop.forward(x, [tf.constant(w) for w in pop.weights],
                            tf.constant(pop.member_steps), False)
    for p in range(3):
        for v, value in zip(pop.variables_template, pop.member_weights(p)):
            v.assign(value)
        np.testing.assert_allclose(pred.numpy()[p], pop.layer(x[p]).numpy()[:, 0],
                                   rtol=1e-5, atol=1e-6)


def test_stuck_members_are_reinitialised_alone():
    recipe = dataclasses.replace(MODELS["inalu"].recipe, reinit_min_steps=150,
                                 reinit_loss_threshold=0.0, regularization=False)
    spec = dataclasses.replace(MODELS["inalu"], learning_rate=0.0, recipe=recipe)
    members = [Member(spec.name, "mul", 0, s) for s in range(2)]
    pop = ModulePopulation(spec, members, [((1, 2), (2, 6))], steps=300, eval_every=100,
                           batch_size=16, n_eval=50, epsilon=1e-5, base_seed=0)
    before = [w.copy() for w in pop.weights]
    pop.run(None)
    # lr 0: nothing learns, so every member is stuck once > 150 losses are recorded:
    # checked at steps 100 (too few), 200 (redrawn), 300 (100 since the redraw)
    assert pop.redraws.tolist() == [1, 1]
    assert all(not np.array_equal(b, w) for b, w in zip(before, pop.weights))
    assert pop.member_steps.tolist() == [100, 100]  # counted since the redraw


def _inalu_population(recipe, steps, eval_every, seeds=2, spe=1000, lr=0.01):
    spec = dataclasses.replace(MODELS["inalu"], recipe=recipe, steps_per_epoch=spe,
                               learning_rate=lr)
    members = [Member(spec.name, "mul", 0, s) for s in range(seeds)]
    return ModulePopulation(spec, members, [((1, 2), (2, 6))], steps=steps,
                            eval_every=eval_every, batch_size=16, n_eval=50, epsilon=1e-5,
                            base_seed=0)


def test_inalu_specs_run_the_reports_record_with_the_stated_deviations():
    report = InaluRecipe.report().to_dict()
    for name in ("inalu", "inalu-shared"):
        assert MODELS[name].recipe is INALU_RECIPE
    changed = {k for k, v in INALU_RECIPE.to_dict().items() if report[k] != v}
    assert changed == {"reinit_min_steps", "reinit_window", "reinit_loss_threshold",
                       "regularization_delay_epochs", "early_stopping_threshold"}
    assert MODELS["inalu"].settings()["recipe"]["detector"] == "authors"
    with pytest.raises(ValueError, match="recipe.candidates"):
        ModelSpec("x", MODELS["inalu"].make_layer, ("add",), recipe=InaluRecipe())
    with pytest.raises(ValueError, match="recipe must be an InaluRecipe"):
        ModelSpec("x", MODELS["inalu"].make_layer, ("add",), recipe=True)


@pytest.mark.parametrize("period, batches", [(3, 1), (4, 2)])
def test_gate_steps_follow_the_records_gate_open(period, batches):
    recipe = dataclasses.replace(INALU_RECIPE, gate_period=period, gate_batches=batches,
                                 regularization=False)
    pop = _inalu_population(recipe, steps=8, eval_every=1)
    gate = pop.is_gate.index(True)
    trained_gate = []
    for step in range(8):
        before = [w.copy() for w in pop.weights]
        pop.train_chunk(step)
        changed = [not np.array_equal(b, w) for b, w in zip(before, pop.weights)]
        # exactly one branch per step: the gates alone, or everything but the gates
        assert changed[gate] != any(c for j, c in enumerate(changed) if j != gate)
        trained_gate.append(changed[gate])
    assert trained_gate == [not recipe.gate_open(step) for step in range(8)]
    assert trained_gate == [step % period >= period - batches for step in range(8)]


@pytest.mark.parametrize("delay_epochs, spe", [(1, 2), (2, 3)])
def test_regulariser_switches_on_where_the_record_says(delay_epochs, spe):
    recipe = dataclasses.replace(INALU_RECIPE, regularization_delay_epochs=delay_epochs,
                                 regularization_loss_threshold=1e9)
    pop = _inalu_population(recipe, steps=12, eval_every=1, spe=spe)
    switched = []
    for step in range(12):
        pop.train_chunk(step)
        switched.append(pop.reg_on.tolist())
    # per step: epochs completed since the (re)initialisation, counted in steps_per_epoch
    expected = [recipe.regularize(step // spe, 0.0) for step in range(12)]
    assert [s[0] for s in switched] == [s[1] for s in switched] == expected
    assert expected.index(True) == (delay_epochs + 1) * spe  # not a vacuous check
    low = dataclasses.replace(recipe, regularization_loss_threshold=0.0)
    pop = _inalu_population(low, steps=12, eval_every=12, spe=spe)
    pop.run(None)
    assert not pop.reg_on.any()  # the record's loss condition holds too


@pytest.mark.parametrize("min_steps, limit, expected", [
    (150, None, [2, 2]),   # checked at 100 (too few), 200 (redrawn), 300, 400 (redrawn)
    (250, None, [1, 1]),   # 300 (redrawn); 100 since then at 400
    (150, 1, [1, 1]),      # max_reinitializations of the record
])
def test_reinitialisation_follows_the_records_stuck_rule(min_steps, limit, expected):
    recipe = dataclasses.replace(INALU_RECIPE, reinit_min_steps=min_steps,
                                 reinit_loss_threshold=0.0, regularization=False,
                                 max_reinitializations=limit)
    pop = _inalu_population(recipe, steps=400, eval_every=100, lr=0.0)
    pop.run(None)
    assert pop.redraws.tolist() == expected


def test_redraws_take_the_records_init_family():
    signed = dataclasses.replace(INALU_RECIPE, init_families=("published", "signed_a"))
    pop = _inalu_population(signed, steps=10, eval_every=10, seeds=8)
    index = [v.name for v in pop.variables_template].index("w_hat_a")
    assert np.all(pop.weights[index] > 0)  # attempt 0: published N(1, .1)
    # attempt 1: signed_a, random signs
    drawn = np.concatenate([pop._draw(p, 1)[index].ravel() for p in range(pop.P)])
    assert (drawn < 0).any() and (drawn > 0).any()
    np.testing.assert_allclose(np.abs(drawn), 1.0, atol=0.6)


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
    code = cli.main(["nalm-benchmark", "--ops", "sub", "--ranges", "2", "--models", "nau",
                     "--seeds", "2", "--first-seed", "7", "--steps", "250", "--eval-every",
                     "250", "--n-eval", "300", "--out", str(tmp_path / "cli7")])
    assert code == 0
    data = json.loads((tmp_path / "cli7" / "nalm_benchmark.json").read_text())
    assert sorted(m["seed"] for m in data["members"]) == [7, 8]
    assert data["config"]["first_seed"] == 7
    with pytest.raises(ValueError, match="op must be one of .add., .sub., .mul., .div."):
        run_nalm_benchmark(ops=["pow"], verbose=0)
    with pytest.raises(ValueError, match="model must be one of"):
        run_nalm_benchmark(models=["npu"], verbose=0)
