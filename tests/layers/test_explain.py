"""Formula read-out: per layer, composed through stacks, sparsity error, gate variables."""
import keras
import numpy as np
import pytest

from references import nalm as ref
from tensorflow_kappa.layers import (INALU, NAC, NALU, NAU, NMU, Formula, NACMultiplicative,
                                     explain, gate_variables, sparsity_error)
from tensorflow_kappa.layers import _formula as F

BIG = 15.0  # tanh(15) ≈ σ(15) ≈ 1 − 3e-7


def _raw_for(targets, magnitude=1.0):
    """Raw (Ŵ, M̂) whose tanh(Ŵ)·σ(M̂) is ``magnitude * target`` for targets in {−1, 0, 1}."""
    targets = np.asarray(targets, np.float64)
    w_hat = np.where(targets == 0, 1.0, BIG * np.sign(targets))
    if magnitude < 1.0:
        m_on = np.log(magnitude / np.tanh(BIG)) - np.log1p(-magnitude / np.tanh(BIG))
    else:
        m_on = BIG
    m_hat = np.where(targets == 0, -BIG, m_on)
    return w_hat, m_hat


def set_inalu(layer, w_a, w_m, gates, magnitude=1.0):
    """Give an INALU discrete weights: ``gates`` 1 = additive, 0 = multiplicative."""
    w_a, w_m = np.asarray(w_a, float), np.asarray(w_m, float)
    if not layer.built:
        layer.build((None, w_a.shape[0]))
    for (w_hat, m_hat), (nw, nm) in [(_raw_for(w_a, magnitude), ("w_hat_a", "m_hat_a")),
                                     (_raw_for(w_m, magnitude), ("w_hat_m", "m_hat_m"))]:
        getattr(layer, nw).assign(w_hat.astype(layer.variable_dtype))
        getattr(layer, nm).assign(m_hat.astype(layer.variable_dtype))
    layer.g.assign(np.where(np.asarray(gates) > 0.5, BIG, -BIG).astype(layer.variable_dtype))


def evaluate(formula, x):
    """Evaluate a rendered formula (a Python expression over x1 … xN) on columns of x."""
    names = {f"x{i + 1}": x[:, i] for i in range(x.shape[1])}
    return eval(str(formula), {"__builtins__": {}}, {"abs": np.abs, **names})  # noqa: S307


def test_single_inalu_reads_add_sub_mul_div():
    layer = INALU(4, dtype="float64")
    zero = [0] * 6
    w_a = np.array([[1, -1, 0, 0, 0, 0], zero, zero, [1, 1, 0, 0, 0, 0]]).T
    w_m = np.array([zero, [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, -1], zero]).T
    set_inalu(layer, w_a, w_m, gates=[1, 0, 0, 1])
    formulas = layer.explain()
    assert formulas == ["x1 - x2", "x3 * x4", "x5 / x6", "x1 + x2"]
    assert all(isinstance(f, Formula) and f.discrete and not f.reasons for f in formulas)
    # The strings mean what the layer computes (negative inputs included).
    x = np.random.default_rng(0).uniform(-4, 4, (50, 6))
    x[np.abs(x) < 0.5] = 0.5
    out = layer(x).numpy()
    for o, formula in enumerate(formulas):
        np.testing.assert_allclose(evaluate(formula, x), out[:, o], rtol=1e-5, atol=1e-5)


def test_custom_input_names():
    layer = INALU(1)
    set_inalu(layer, [[1], [-1]], [[0], [0]], gates=[1])
    assert layer.explain(input_names=["price", "cost"]) == ["price - cost"]
    with pytest.raises(ValueError, match="2 inputs"):
        layer.explain(input_names=["a"])


@pytest.mark.parametrize("names", [["a + b", "c"], ["2x", "y"], ["a*b", "c"], ["", "c"],
                                   ["a", "a"]])
def test_input_names_that_would_read_ambiguously_are_rejected(names):
    """explain(model, ["a + b", "c"]) would print "a + b * c" for (a + b) * c."""
    model = keras.Sequential([keras.Input((2,)), INALU(1)])
    set_inalu(model.layers[-1], [[0], [0]], [[1], [1]], gates=[0])
    assert explain(model, input_names=["ab", "c"]) == ["ab * c"]
    with pytest.raises(ValueError, match="input_names"):
        explain(model, input_names=names)


def test_tolerance_decides_discreteness_and_names_the_weight():
    layer = INALU(1, name="inalu_t")
    set_inalu(layer, [[1], [1]], [[0], [0]], gates=[1], magnitude=0.93)
    assert layer.explain(tolerance=0.1) == ["x1 + x2"]
    formula = layer.explain(tolerance=0.05)[0]
    assert not formula.discrete and formula.startswith("not discrete:")
    assert "inalu_t: W_A[0, 0] = 0.93" in formula and "W_A[1, 0]" in formula
    with pytest.raises(ValueError, match="tolerance"):
        layer.explain(tolerance=0.5)
    with pytest.raises(ValueError, match="tolerance"):
        layer.explain(tolerance=-0.1)


def test_undecided_gate_is_reported_and_unused_path_is_ignored():
    layer = INALU(2, name="gated")
    set_inalu(layer, [[1, 1], [1, 1]], [[1, 1], [1, 1]], gates=[1, 1])
    # Unit 0: multiplicative weights far from discrete, but the gate selects addition.
    w_hat_m = layer.w_hat_m.numpy(); w_hat_m[:, 0] = 0.3; layer.w_hat_m.assign(w_hat_m)
    g = layer.g.numpy(); g[1] = 0.2; layer.g.assign(g)  # unit 1: σ(0.2) ≈ 0.55
    first, second = layer.explain()
    assert first == "x1 + x2"
    assert not second.discrete and "gated: gate g[1] = 0.55" in second


def test_composed_report_task_reads_figure_6_11():
    """The report's 3-layer stack for (x1 - x2) * (x3 - x4) + x5 * x6 on 7 inputs."""
    l1, l2, l3 = INALU(3, dtype="float64"), INALU(2, dtype="float64"), INALU(1, dtype="float64")
    model = keras.Sequential([keras.Input((7,), dtype="float64"), l1, l2, l3])
    set_inalu(l1, w_a=np.array([[1, -1, 0, 0, 0, 0, 0], [0, 0, 1, -1, 0, 0, 0], [0] * 7]).T,
              w_m=np.array([[0] * 7, [0] * 7, [0, 0, 0, 0, 1, 1, 0]]).T, gates=[1, 1, 0])
    set_inalu(l2, w_a=np.array([[0, 0, 0], [0, 0, 1]]).T,
              w_m=np.array([[1, 1, 0], [0, 0, 0]]).T, gates=[0, 1])
    set_inalu(l3, w_a=[[1], [1]], w_m=[[0], [0]], gates=[1])
    formulas = explain(model)
    assert formulas == ["(x1 - x2) * (x3 - x4) + x5 * x6"]
    x = np.random.default_rng(1).uniform(-3, 3, (64, 7))
    np.testing.assert_allclose(evaluate(formulas[0], x), model.predict(x, verbose=0)[:, 0],
                               rtol=1e-4, atol=1e-4)
    names = ["a", "b", "c", "d", "e", "f", "g"]
    assert explain(model, input_names=names) == ["(a - b) * (c - d) + e * f"]


def test_composition_only_reports_undiscrete_units_that_are_used():
    l1, l2 = INALU(2, name="inner"), INALU(1, name="outer")
    model = keras.Sequential([keras.Input((2,)), l1, l2])
    set_inalu(l1, [[1, 1], [1, 1]], [[0, 0], [0, 0]], gates=[1, 1])
    g = l1.g.numpy(); g[1] = 0.0; l1.g.assign(g)  # inner unit 2 undecided
    set_inalu(l2, [[1], [0]], [[0], [0]], gates=[1])
    assert explain(model) == ["x1 + x2"]
    set_inalu(l2, [[1], [1]], [[0], [0]], gates=[1])
    (formula,) = explain(model)
    assert not formula.discrete and "inner: gate g[1] = 0.5" in formula


def test_mixed_family_stack():
    nau, nmu, out = NAU(2), NMU(1), NAU(1)
    model = keras.Sequential([keras.Input((4,)), nau, nmu, out])
    nau.w.assign(np.array([[1, 1, 0, 0], [0, 0, 1, -1]], "float32").T)
    nmu.w.assign(np.array([[1], [1]], "float32"))
    out.w.assign(np.array([[-1]], "float32"))
    assert explain(model) == ["-(x1 + x2) * (x3 - x4)"]
    x = np.random.default_rng(2).uniform(-3, 3, (16, 4))
    np.testing.assert_allclose(evaluate(explain(model)[0], x),
                               model.predict(x, verbose=0)[:, 0], rtol=1e-5, atol=1e-5)
    nmu.w.assign(np.array([[1], [0.4]], "float32"))
    (formula,) = explain(model)
    assert not formula.discrete and "W[1, 0] = 0.4" in formula


def test_nac_nalu_readouts():
    nac = NAC(1)
    nac.build((None, 3))
    w_hat, m_hat = _raw_for([[1], [0], [-1]])
    nac.w_hat.assign(w_hat); nac.m_hat.assign(m_hat)
    assert nac.explain() == ["x1 - x3"]
    mul = NACMultiplicative(1)
    mul.build((None, 3))
    mul.w_hat.assign(w_hat); mul.m_hat.assign(m_hat)
    assert mul.explain() == ["abs(x1 / x3)"]
    nalu = NALU(1, name="nalu_r")
    nalu.build((None, 3))
    nalu.w_hat.assign(w_hat); nalu.m_hat.assign(m_hat)
    (formula,) = nalu.explain()
    assert not formula.discrete
    assert "depends on the input" in formula and "x1 - x3" in formula and "abs(x1 / x3)" in formula


def test_functional_chain_and_rejected_models():
    inputs = keras.Input((2,))
    l1 = INALU(1)
    outputs = l1(inputs)
    set_inalu(l1, [[1], [-1]], [[0], [0]], gates=[1])
    assert explain(keras.Model(inputs, outputs)) == ["x1 - x2"]
    with pytest.raises(ValueError, match="'dense_in_chain'"):
        explain(keras.Sequential([keras.Input((2,)), INALU(2),
                                  keras.layers.Dense(1, name="dense_in_chain")]))
    a, b = INALU(1), INALU(1)
    branched = keras.Model(inputs, [a(inputs), b(inputs)])
    with pytest.raises(ValueError, match="chain"):
        explain(branched)
    with pytest.raises(ValueError, match="NALM layer or a keras.Model"):
        explain("not a model")


@pytest.mark.parametrize("seed", range(5))
def test_rendered_formulas_evaluate_like_the_expressions_they_render(seed):
    """Random compositions: the rendered text must evaluate to the value built alongside."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 3.0, (8, 4)) * rng.choice([-1, 1], (8, 4))
    pool = [(F.Var(f"x{i + 1}", i), x[:, i]) for i in range(4)]
    for _ in range(12):
        k = rng.integers(1, 4)
        picks = [pool[i] for i in rng.choice(len(pool), size=k)]
        if rng.random() < 0.5:
            coeffs = rng.choice([-2, -1, 1, 2], size=k)
            expr = F.linear((int(c), e) for c, (e, _) in zip(coeffs, picks))
            value = sum(c * v for c, (_, v) in zip(coeffs, picks))
        else:
            powers = rng.choice([-1, 1, 2], size=k)
            expr = F.product((e, int(p)) for p, (e, _) in zip(powers, picks))
            value = np.prod([v ** float(p) for p, (_, v) in zip(powers, picks)], axis=0)
        if np.all(np.isfinite(value)) and np.all(np.abs(value) > 1e-3) and np.all(np.abs(value) < 1e6):
            pool.append((expr, value))
            np.testing.assert_allclose(evaluate(str(expr), x), value, rtol=1e-9)


@pytest.mark.parametrize("build, text", [
    (lambda v: F.linear([(1, F.linear([(1, v[0]), (1, v[1])])), (-1, v[1])]), "x1"),
    (lambda v: F.linear([(1, v[0]), (1, v[0])]), "2 * x1"),
    (lambda v: F.linear([(1, v[0]), (-1, v[0])]), "0"),
    (lambda v: F.product([(F.linear([(1, v[0]), (-1, v[1])]), 1),
                          (F.linear([(1, v[2]), (1, v[3])]), -1)]), "(x1 - x2) / (x3 + x4)"),
    (lambda v: F.product([(v[0], -1), (v[1], -1)]), "1 / (x1 * x2)"),
    (lambda v: F.product([(v[0], 1), (v[0], 1)]), "x1 ** 2"),
    (lambda v: F.product([(v[0], 1), (v[0], -1)]), "1"),
    (lambda v: F.linear([(-1, F.product([(v[0], 1), (v[1], 1)])), (1, v[2])]), "x3 - x1 * x2"),
    (lambda v: F.product([(F.linear([(1, v[0]), (1, v[1])]), 2)]), "(x1 + x2) ** 2"),
    (lambda v: F.absolute(F.product([(v[0], 1), (v[1], -1)])), "abs(x1 / x2)"),
    (lambda v: F.product([(F.linear([(2, v[0])]), 1), (v[1], 1)]), "2 * x1 * x2"),
    # Canonical order and sign: hidden-unit order and sign flips do not change the text.
    (lambda v: F.linear([(1, F.product([(v[2], 1), (v[3], 1)])),
                         (1, F.product([(F.linear([(1, v[1]), (-1, v[0])]), 1), (v[0], 1)]))]),
     "x3 * x4 - x1 * (x1 - x2)"),
    (lambda v: F.product([(F.linear([(1, v[1]), (-1, v[0])]), 1),
                          (F.linear([(1, v[3]), (-1, v[2])]), 1)]), "(x1 - x2) * (x3 - x4)"),
    (lambda v: F.linear([(-1, v[0]), (1, v[1])]), "x2 - x1"),
    (lambda v: F.linear([(1, v[2]), (-1, v[1]), (1, v[0])]), "x1 - x2 + x3"),
])
def test_simplification_and_parentheses(build, text):
    v = [F.Var(f"x{i + 1}", i) for i in range(4)]
    assert str(build(v)) == text


def test_sparsity_error_matches_madsen_johansen_definition():
    rng = np.random.default_rng(3)
    nau = NAU(3)
    nau.build((None, 4))
    w = rng.uniform(-1, 1, (4, 3))
    nau.w.assign(w.astype("float32"))
    np.testing.assert_allclose(sparsity_error(nau), ref.sparsity_error(w), rtol=1e-6)
    inalu = INALU(2)
    inalu.build((None, 3))
    values = {v.name: rng.normal(0, 2, v.shape) for v in inalu.weights}
    for v in inalu.weights:
        v.assign(values[v.name].astype("float32"))
    expected = ref.sparsity_error(ref.nac_weight(values["w_hat_a"], values["m_hat_a"]),
                                  ref.nac_weight(values["w_hat_m"], values["m_hat_m"]))
    np.testing.assert_allclose(sparsity_error(inalu), expected, rtol=1e-5)
    model = keras.Sequential([keras.Input((4,)), nau, keras.layers.Dense(3), inalu])
    np.testing.assert_allclose(sparsity_error(model), max(ref.sparsity_error(w), expected), rtol=1e-5)
    nau.w.assign(np.array([[1, 0, -1]] * 4, "float32"))
    assert sparsity_error(nau) == 0.0
    with pytest.raises(ValueError, match="NALM"):
        sparsity_error(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))


def test_gate_variables_finds_every_gate_in_order():
    inner = keras.Sequential([keras.Input((3,)), INALU(3, name="nested")])
    model = keras.Sequential([keras.Input((4,)), INALU(3, name="first"), keras.layers.Dense(3),
                              NALU(3, name="second"), NAU(3), inner, NMU(1)])
    gates = gate_variables(model)
    expected = [model.get_layer("first").g, model.get_layer("second").g,
                inner.get_layer("nested").g]
    assert len(gates) == 3 and all(a is b for a, b in zip(gates, expected))
    # The report's own expression gives the same for a flat model.
    assert [layer.g for layer in model.layers if isinstance(layer, (INALU, NALU))] == gates[:2]
