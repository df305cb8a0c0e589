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


def test_any_metric_name_and_numpy_metadata_survive_save_and_load(tmp_path):
    """np.savez's own keywords ("file", "allow_pickle", ...) are ordinary metric names, and
    NumPy scalars and arrays in the metadata come back as numbers and lists."""
    names = ["file", "allow_pickle", "args", "kwds", "a/b", "loss"]
    h = FitHistory(metadata={"lr": np.float32(0.5), "steps": np.int64(7),
                             "flag": np.bool_(True), "shape": np.array([2, 3]),
                             "nested": {"k": (np.float64(1.5), None)}, "nan": float("nan")},
                   **{name: np.arange(3, dtype=np.float32) + i for i, name in enumerate(names)})
    back = FitHistory.load(h.save(tmp_path / "run.npz"))
    assert sorted(back.keys()) == sorted(names)
    for i, name in enumerate(names):
        np.testing.assert_array_equal(back[name], np.arange(3, dtype=np.float32) + i)
    meta = back.metadata
    assert meta["lr"] == 0.5 and type(meta["lr"]) is float
    assert meta["steps"] == 7 and type(meta["steps"]) is int
    assert meta["flag"] is True and meta["shape"] == [2, 3]
    assert meta["nested"] == {"k": [1.5, None]} and np.isnan(meta["nan"])
    assert not list(tmp_path.glob("*.partial"))


def test_metadata_json_cannot_hold_is_an_error_naming_the_key(tmp_path):
    h = FitHistory(metadata={"when": object()}, loss=[1.0])
    with pytest.raises(ValueError, match=r"metadata\['when'\] is a object"):
        h.save(tmp_path / "run")
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("content, reason", [
    (b"hello, I am a text file\n", "not a FitHistory file"),
    (b"", "not a FitHistory file"),
])
def test_loading_something_else_says_what_it_is_not(tmp_path, content, reason):
    path = tmp_path / "run.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=reason) as err:
        FitHistory.load(path)
    assert "allow_pickle" not in str(err.value) and str(path) in str(err.value)


def test_a_damaged_archive_names_the_file_and_the_problem(tmp_path):
    import zipfile
    good = FitHistory(loss=[1.0, 2.0]).save(tmp_path / "good.npz")
    bad_json = tmp_path / "meta.npz"
    with zipfile.ZipFile(bad_json, "w") as archive:
        with archive.open("loss.npy", "w") as member:
            np.lib.format.write_array(member, np.array([1.0]))
        with archive.open("__metadata__.npy", "w") as member:
            np.lib.format.write_array(member, np.asarray("{not json"))
    with pytest.raises(ValueError, match=r"meta.npz: the FitHistory metadata is not valid JSON"):
        FitHistory.load(bad_json)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, loss=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="'loss' is not a numeric array") as err:
        FitHistory.load(pickled)
    assert "allow_pickle" not in str(err.value)
    with pytest.raises(FileNotFoundError):
        FitHistory.load(tmp_path / "missing.npz")
    assert len(FitHistory.load(good)) == 2
