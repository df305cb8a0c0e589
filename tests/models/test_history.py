"""FitHistory: access, save/load, summary, plots."""
import numpy as np
import pytest

from tensorflow_kappa.models.history import FitHistory


def _history(**extra):
    rng = np.random.default_rng(0)
    n = 40
    return FitHistory(
        metadata={"learning_rate": 0.1, "precision": {"*": {"weight": "s8.6"}}, **extra},
        loss=np.exp(-np.arange(n) / 10.0),
        alpha=np.minimum(1, rng.uniform(0.3, 1.5, n)),
        alpha_would=np.minimum(1, rng.uniform(0.3, 1.5, n)),
        curvature_proxy=rng.uniform(1, 3, n), curvature_ema=np.linspace(0, 2, n),
        stability_margin_lambda_raw=np.full(n, 2.4), stability_margin_lambda_ctrl=np.full(n, 1.5),
        spectral_radius_raw=np.full(n, 1.4), spectral_radius_ctrl=np.full(n, 0.5),
        update_cosine=np.ones(n), update_angle_rad=np.zeros(n), update_radius_ratio=np.ones(n),
        raw_update_norm=np.full(n, 0.1), actual_update_norm=np.r_[np.full(n - 5, 0.1), np.zeros(5)],
        update_underflow_fraction_max=np.linspace(0, 1, n),
        weight_error_fro=np.full(n, np.nan), finite=np.ones(n, np.float32),
    )


def test_access_by_key_and_attribute():
    h = _history()
    assert len(h) == 40 and "loss" in h and "nope" not in h
    np.testing.assert_array_equal(h.loss, h["loss"])
    with pytest.raises(AttributeError, match="no metric 'nope'"):
        h.nope
    assert not h.diverged


def test_diverged_from_metadata_or_the_finite_column():
    assert _history(diverged=True).diverged
    h = FitHistory(loss=[1.0, np.inf], finite=[1.0, 0.0])
    assert h.diverged


def test_save_load_round_trip(tmp_path):
    h = _history(diverged=False)
    path = h.save(str(tmp_path / "run"))
    assert path.endswith(".npz")
    back = FitHistory.load(path)
    assert sorted(back.keys()) == sorted(h.keys())
    for k in h.keys():
        np.testing.assert_array_equal(back[k], h[k])
        assert back[k].dtype == h[k].dtype
    assert back.metadata == h.metadata


def test_summary_table_reports_first_last_min_max():
    h = _history()
    text = h.summary()
    lines = text.splitlines()
    assert lines[0] == "40 steps"
    row = next(l for l in lines if l.startswith("loss ")).split()
    assert [float(x) for x in row[1:]] == pytest.approx(
        [1.0, np.exp(-3.9), np.exp(-3.9), 1.0], rel=1e-3)
    assert next(l for l in lines if l.startswith("weight_error_fro")).split()[1:] == [
        "nan", "nan", "nan", "nan"]
    assert "DIVERGED" in FitHistory(loss=[1.0, np.nan], finite=[1, 0]).summary()


def test_plot_results_writes_a_png(tmp_path):
    path = _history().plot_results(str(tmp_path / "run.png"))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_plot_results_without_path_returns_a_figure():
    import matplotlib.pyplot as plt

    fig = FitHistory(loss=[1.0, 0.5]).plot_results()
    assert len(fig.axes) == 8
    plt.close(fig)
