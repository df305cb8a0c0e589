"""The population path (``kappa arithmetic --seeds/--suite``) against the model.fit path.

Its forward pass is checked against the Keras INALU layers member by member; its
recipe decisions against an InaluController on the same weights and data; its
table against the CLI."""
import json

import keras
import numpy as np
import pytest

from tensorflow_kappa import cli
from tensorflow_kappa.datasets import ARITHMETIC_SUITE, arithmetic_task
from tensorflow_kappa.evaluation import wilson_interval
from tensorflow_kappa.experiments.arithmetic_population import (VARIABLES, ArithmeticPopulation,
                                                                _forward, train_population)
from tensorflow_kappa.layers import INALU
from tensorflow_kappa.recipes import BatchMSE, InaluRecipe, inalu_controller


def test_population_forward_is_the_keras_inalu_stack_member_by_member():
    pop = ArithmeticPopulation("(x1 - x2) * x3", [0, 1], InaluRecipe(candidates=3),
                               layers=(2, 1), num_inputs=3, n=128)
    x = np.random.default_rng(0).uniform(-3, 3, (6, 50, 3)).astype("float32")
    ours = _forward(x, pop.weights, 1e-7, 20.0).numpy()
    for p in range(6):
        np.testing.assert_allclose(ours[p], pop.keras_model(p)(x[p]).numpy(), rtol=2e-5,
                                   atol=1e-5)


def test_candidate_zero_starts_from_the_single_runs_weights_and_the_others_from_families():
    pop = ArithmeticPopulation("x1 * x2", [4], InaluRecipe(candidates=3), layers=(3, 1),
                               num_inputs=7, n=64)
    keras.utils.set_random_seed(4)
    single = keras.Sequential([keras.Input((7,)), INALU(3), INALU(1)])
    for k, layer in enumerate(single.layers):
        for j, v in enumerate(VARIABLES):
            np.testing.assert_array_equal(pop.weights[5 * k + j][0], getattr(layer, v).numpy())
    assert [pop.recipe.family(c, 0) for c in range(3)] == \
        ["published", "signed_a", "lastadd_signed"]
    assert np.any(pop.weights[0][1] < 0) and np.all(pop.weights[0][0] > 0)  # signed_a vs published
    assert float(pop.weights[9][2][0]) > 1.5  # lastadd_signed: the output gate starts at ~2


def _solution_and_random(seed):
    """Per-layer weights of INALU(1) on x1 * x2: the exact product, and a published draw."""
    exact = {"w_hat_a": np.zeros((2, 1)), "m_hat_a": np.full((2, 1), -20.0),
             "w_hat_m": np.full((2, 1), 20.0), "m_hat_m": np.full((2, 1), 20.0),
             "g": np.full((1,), -20.0)}
    keras.utils.set_random_seed(seed)
    layer = keras.Sequential([keras.Input((2,)), INALU(1)]).layers[0]
    random = {v: getattr(layer, v).numpy() for v in VARIABLES}
    return [{k: v.astype("float32") for k, v in exact.items()}], [random]


def test_members_reproduce_single_runs_recipe_decisions():
    """Same gate steps, same regularisation switch epoch, reinit of exactly the stuck member.

    Learning rate 0 keeps every member where it starts: member 0 at the exact
    solution (loss ~0: regularises after the delay, never stuck), member 1 at a
    random draw (loss ~9: never regularises, stuck once the detector may fire).
    """
    recipe = InaluRecipe(candidates=1, reinit_min_steps=15, reinit_window=10,
                         regularization_delay_epochs=1, early_stopping_threshold=None)
    exact, random = _solution_and_random(1)
    pop = ArithmeticPopulation("x1 * x2", [0, 1], recipe, layers=(1,), num_inputs=2, n=640,
                               learning_rate=0.0, initial_weights=[exact, random])
    pop.run(epochs=5)
    task = arithmetic_task("x1 * x2", 2, n=640, seed=0)
    for member, start in enumerate((exact, random)):
        model = keras.Sequential([keras.Input((2,)), INALU(1)])
        for v in VARIABLES:
            getattr(model.layers[0], v).assign(start[0][v])
        model.compile(optimizer=keras.optimizers.RMSprop(0.0), loss="mse", metrics=[BatchMSE()])
        cb = inalu_controller(loss_key="batch_mse", seed=0, **{
            k: getattr(recipe, k) for k in ("candidates", "reinit_min_steps", "reinit_window",
                                            "regularization_delay_epochs",
                                            "early_stopping_threshold")})
        model.fit(*task.train, batch_size=64, epochs=5, verbose=0, callbacks=[cb])
        events = pop.events[member]
        assert events["gate_steps"] == np.flatnonzero(~cb.history["gate"].astype(bool)).tolist()
        assert events["regularization_started"] == [e + 1 for e, _ in cb.regularization_started]
        assert events["reinitializations"] == [e for e, _ in cb.reinitializations]
    assert pop.events[0]["regularization_started"] == [3] and \
        pop.events[0]["reinitializations"] == []
    # the windowed detector: 20 losses (two windows of 10) at the end of epoch 2, 4
    assert pop.events[1]["reinitializations"] == [2, 4]
    assert pop.events[1]["regularization_started"] == []
    assert pop.events[1]["families"] == ["published", "signed_a", "lastadd_signed"]


def test_a_converged_candidate_stops_its_seed_only_and_is_the_seeds_result():
    recipe = InaluRecipe(candidates=2, early_stopping_threshold=1e-3, early_stopping_window=5,
                         regularization=False)
    exact, random = _solution_and_random(2)
    pop = ArithmeticPopulation("x1 * x2", [0, 1], recipe, layers=(1,), num_inputs=2, n=640,
                               learning_rate=0.0, initial_weights=[random, exact, random, random])
    results = pop.run(epochs=3)
    assert [ev["stopped"] for ev in pop.events] == [1, 1, None, None]
    assert results[0].success and results[0].candidate == 1 and results[0].formula_correct
    assert results[0].epochs == 1 and results[1].epochs == 3 and not results[1].success


def test_train_population_row_and_bad_arguments():
    row = train_population("x1 + x2", [0, 1], InaluRecipe(candidates=2), epochs=1,
                           layers=(1,), num_inputs=2, n=640)
    assert [r.seed for r in row.results] == [0, 1] and row.seeds == 2
    assert row.wilson_95 == wilson_interval(row.successes, 2)
    with pytest.raises(ValueError, match="epochs"):
        train_population("x1 + x2", [0], epochs=0, layers=(1,), num_inputs=2, n=64)
    with pytest.raises(ValueError, match="seeds"):
        ArithmeticPopulation("x1 + x2", [], num_inputs=2, n=64)
    with pytest.raises(ValueError, match="recipe"):
        ArithmeticPopulation("x1 + x2", [0], recipe={"candidates": 2}, num_inputs=2, n=64)
    with pytest.raises(ValueError, match="layers must end with a 1-unit layer"):
        ArithmeticPopulation("x1 + x2", [0], layers=(2,), num_inputs=2, n=64)


def test_the_suite_is_public_and_has_the_issues_expressions():
    assert len(ARITHMETIC_SUITE) >= 6 and ARITHMETIC_SUITE[0] == "(x1 - x2) * (x3 - x4) + x5 * x6"
    assert "(x1 - x3) * (x2 - x5) + x4 * x7" in ARITHMETIC_SUITE
    for text in ARITHMETIC_SUITE:
        task = arithmetic_task(text, 7, n=100, seed=0)
        np.testing.assert_allclose(task.train[1][:, 0], task.expression.evaluate(task.train[0]),
                                   rtol=1e-6)


def test_kappa_arithmetic_suite_smoke_writes_its_table(tmp_path, capsys):
    out = tmp_path / "suite"
    assert cli.main(["arithmetic", "--suite", "--seeds", "1", "--epochs", "1", "--n", "640",
                     "--candidates", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    table = (out / "arithmetic_suite.md").read_text().splitlines()
    assert len(table) == 2 + len(ARITHMETIC_SUITE)
    for expression, line in zip(ARITHMETIC_SUITE, table[2:]):
        assert f"`{expression}`" in line and "/1 |" in line
        assert line in text
    data = json.loads((out / "arithmetic_suite.json").read_text())
    assert [r["expression"] for r in data["rows"]] == list(ARITHMETIC_SUITE)
    assert data["recipe"]["candidates"] == 1 and data["recipe"]["detector"] == "window"


def test_kappa_arithmetic_seeds_runs_one_population(tmp_path, capsys):
    assert cli.main(["arithmetic", "--expression", "x1 + x2", "--inputs", "2", "--layers", "1",
                     "--seeds", "2", "--first-seed", "10", "--epochs", "1", "--n", "640",
                     "--extrapolation-range", "[[-15, -10], [10, 15]]",
                     "--report", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "seeds 10-11, 1 candidate(s) per seed" in text and "the report's recipe" in text
    assert "training range [-3, 3], extrapolation range [[-15, -10], [10, 15]]" in text
    data = json.loads((tmp_path / "arithmetic_suite.json").read_text())
    assert [r["seed"] for r in data["rows"][0]["results"]] == [10, 11]
    assert data["extrapolation_range"] == [[-15, -10], [10, 15]]
    assert data["train_range"] == [-3, 3]


def test_the_population_draws_from_the_ranges_it_is_given():
    pop = ArithmeticPopulation("x1 - x2", [0], InaluRecipe(candidates=1), layers=(1,),
                               num_inputs=2, n=4000, train_range=(-2, 2),
                               extrapolation_range=[[-15, -10], [10, 15]])
    x_train, x_extra = pop.tasks[0].train[0], pop.tasks[0].extrapolation[0]
    assert np.all(np.abs(x_train) <= 2)
    assert np.all((np.abs(x_extra) >= 10) & (np.abs(x_extra) <= 15))
    assert (x_extra < 0).any() and (x_extra > 0).any()
    with pytest.raises(SystemExit):
        cli.main(["arithmetic", "--seed", "1", "--seeds", "2"])


def test_a_suite_table_that_cannot_be_written_is_still_printed(tmp_path, capsys, monkeypatch):
    """The population's results are not lost to a full disk: the table is printed, the
    JSON that could be written is, the missing file is named, and the exit status is 1."""
    import builtins

    real_open = builtins.open

    def full_disk(path, mode="r", *args, **kwargs):
        if str(path).endswith("arithmetic_suite.md") and "w" in mode:
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    status = cli.main(["arithmetic", "--expression", "x1 + x2", "--inputs", "2", "--layers",
                       "1", "--seeds", "1", "--epochs", "1", "--n", "640", "--candidates", "1",
                       "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 1
    assert "| `x1 + x2` | " in out and "arithmetic_suite.json" in out
    assert "could not write" in err and "arithmetic_suite.md" in err
    assert json.loads((tmp_path / "arithmetic_suite.json").read_text())["rows"]
