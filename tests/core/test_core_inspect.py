"""``kappa inspect`` on a model the test trains and saves: the statistics against
independent NumPy references, the comparison table and suggestion, and the
command running without importing TensorFlow."""
import math
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from references.fixed_point import quantize_reference
from references.stats import rail_stats_reference
from tensorflow_kappa import cli
from tensorflow_kappa.experiments import inspect_weights as iw
from tensorflow_kappa.quantization import FixedPoint

FORMATS = ["s4.2", "s8.4", "s8.6:stochastic"]
OUTLIER = 5.0  # beyond the rails of s4.2 (+-2) and s8.6 (+-2), within s8.4's (+-8)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small model trained for a few steps, one weight set to OUTLIER, saved as
    .keras, .weights.h5, .npz and .npy; and its weights by layer."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, name="hidden"),
                              keras.layers.Dense(1, name="out")])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(256, 6)).astype(np.float32)
    model.fit(x, x.sum(axis=1, keepdims=True), epochs=2, batch_size=32, verbose=0)
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[0, 0] = OUTLIER
    model.get_layer("hidden").set_weights([kernel, bias])
    folder = tmp_path_factory.mktemp("inspect")
    paths = {"keras": folder / "model.keras", "h5": folder / "model.weights.h5",
             "npz": folder / "weights.npz", "npy": folder / "kernel.npy"}
    model.save(paths["keras"])
    model.save_weights(paths["h5"])
    weights = {f"{layer}/{i}": w for layer in ("hidden", "out")
               for i, w in enumerate(model.get_layer(layer).get_weights())}
    np.savez(paths["npz"], **{f"{k.split('/')[0]}/{'kernel' if k.endswith('0') else 'bias'}": v
                              for k, v in weights.items()})
    np.save(paths["npy"], kernel)
    return paths, weights


def test_reads_every_format_of_file(saved):
    paths, weights = saved
    for kind in ("keras", "h5"):
        loaded = iw.load_weights(paths[kind])
        assert [w.label for w in loaded] == list(weights)  # optimizer state left out
        for w in loaded:
            np.testing.assert_array_equal(w.values, weights[w.label])
    npz = iw.load_weights(paths["npz"])
    assert [w.label for w in npz] == ["hidden/kernel", "hidden/bias", "out/kernel", "out/bias"]
    np.testing.assert_array_equal(npz[0].values, weights["hidden/0"])
    (npy,) = iw.load_weights(paths["npy"])
    assert npy.label == "kernel"
    np.testing.assert_array_equal(npy.values, weights["hidden/0"])


def test_statistics_match_the_references(saved):
    paths, weights = saved
    reports = iw.inspect_weights(iw.load_weights(paths["keras"]), FORMATS, near_rail=0.75,
                                 seed=(4, 2))
    assert [(r.fmt_text, r.label) for r in reports] == [
        (str(FixedPoint.parse(f)), label) for f in FORMATS for label in weights]
    for r in reports:
        fmt, w = FixedPoint.parse(r.fmt_text), weights[r.label]
        saturation, near, underflow = rail_stats_reference(w, fmt, 0.75)
        assert (r.saturation, r.near_rail, r.underflow) == (saturation, near, underflow), r
        error = quantize_reference(w, fmt, (4, 2)).astype(np.float64) - w.astype(np.float64)
        assert r.max_error == np.max(np.abs(error))
        assert r.rms_error == pytest.approx(math.sqrt(np.mean(error**2)), rel=1e-12)
    by = {(r.fmt_text, r.label): r for r in reports}
    assert by[("s4.2", "hidden/0")].saturation == np.float32(1 / weights["hidden/0"].size)
    assert by[("s4.2", "hidden/0")].max_error == OUTLIER - 1.75  # clipped to the rail 1.75


def test_summary_and_suggestion(saved):
    paths, weights = saved
    loaded = iw.load_weights(paths["keras"])
    summaries = iw.summarize(iw.inspect_weights(loaded, FORMATS))
    for s in summaries:
        fmt = FixedPoint.parse(s.fmt_text)
        # Each weight quantized on its own (stochastic streams start at index 0).
        error = np.concatenate([(quantize_reference(w, fmt, (0, 0)).astype(np.float64)
                                 - w.astype(np.float64)).ravel() for w in weights.values()])
        assert s.rms_error == pytest.approx(math.sqrt(np.mean(error**2)), rel=1e-12)
        assert s.max_error == np.max(np.abs(error))
    worst = {s.fmt_text: s.worst_saturation for s in summaries}
    assert worst["s8.4"].saturation == 0 and worst["s4.2"].label == "hidden/0"
    # Only s8.4 holds the outlier; the finest 4- and 8-bit formats that hold 5.0
    # have rails -8..7 (s4.0) and -8..7.9375 (s8.4).
    assert iw.suggest(summaries, loaded) == (
        "suggestion: s8.4 (no weight saturates); finest without saturation: s4.0, s8.4")


def test_finest_without_saturation_is_exact():
    w = [iw.Weight("a", "", np.array([-4.0, 3.0]))]
    assert str(iw.finest_without_saturation(w, 8)) == "s8.5"  # rails -4 .. 3.96875
    w = [iw.Weight("a", "", np.array([-4.0, 3.99]))]
    assert str(iw.finest_without_saturation(w, 8)) == "s8.4"  # 3.99 > 3.96875
    w = [iw.Weight("a", "", np.array([0.0, 1.0]))]
    assert str(iw.finest_without_saturation(w, 4, signed=False)) == "u4.3"  # 15/8 >= 1
    assert iw.finest_without_saturation([iw.Weight("a", "", np.array([-1.0]))], 4, False) is None


def run_kappa(*args):
    """``kappa`` in a fresh Python that fails if TensorFlow was imported by exit."""
    code = ("import sys\nfrom tensorflow_kappa import cli\n"
            "try:\n    rc = cli.main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
            "assert 'keras' not in sys.modules, 'Keras was imported'\n"
            "sys.exit(rc)\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_kappa_inspect_without_tensorflow(saved):
    paths, weights = saved
    one = run_kappa("inspect", str(paths["keras"]), "--format", "s8.4")
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    assert lines[0] == f"kappa inspect: {paths['keras']}: 4 weights, " \
                       f"{sum(w.size for w in weights.values())} values; near rail: in the " \
                       "outer 10% of each half-range"
    rows = [line.split() for line in lines if line.startswith("s8.4 ")]
    assert [r[1] for r in rows[:4]] == list(weights) and rows[0][2] == "6x16"
    assert lines[-1].startswith("suggestion: s8.4 (no weight saturates)")

    many = run_kappa("inspect", str(paths["h5"]), "--formats", ",".join(FORMATS))
    assert many.returncode == 0, many.stderr
    table = [line.split() for line in many.stdout.splitlines()
             if line.startswith(("s4.2 ", "s8.4 ", "s8.6:stochastic "))]
    assert [r[0] for r in table] == ["s4.2", "s8.4", "s8.6:stochastic"]  # one row per format
    assert table[0][3:5] == [f"{100 / 96:.2f}%", "(hidden/0)"]  # 1 of 96 kernel values
    assert table[1][3] == "0.00%"
    assert many.stdout.splitlines()[-1] == (
        "suggestion: s8.4 (no weight saturates); finest without saturation: s4.0, s8.4")


def test_kappa_inspect_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["inspect", str(tmp_path / "missing.keras"), "--format", "s8.4"])
    assert exit_info.value.code == 2
    assert "missing.keras' does not exist" in capsys.readouterr().err
    (tmp_path / "w.txt").write_text("1 2 3")
    with pytest.raises(SystemExit):
        cli.main(["inspect", str(tmp_path / "w.txt"), "--format", "s8.4"])
    assert "expected one of .keras, .h5, .hdf5, .npz, .npy" in capsys.readouterr().err
    np.save(tmp_path / "w.npy", np.arange(3))
    with pytest.raises(SystemExit):
        cli.main(["inspect", str(tmp_path / "w.npy"), "--format", "s8.4"])
    assert "holds no float arrays" in capsys.readouterr().err
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(SystemExit):
        cli.main(["inspect", str(tmp_path / "broken.keras"), "--format", "s8.4"])
    assert "cannot be read" in capsys.readouterr().err
    for bad, message in [(["--format", "s8"], "Cannot parse fixed-point format 's8'"),
                         (["--format", ","], "must name at least one format"),
                         (["--format", "s8.4", "--seed", "1"], "seed must be two integers"),
                         (["--format", "s8.4", "--near-rail", "2"],
                          "must be a finite number in [0, 1], got 2")]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["inspect", str(tmp_path / "w.npy"), *bad])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err, bad


def test_keras_zip_without_weights_is_reported(tmp_path, capsys):
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(SystemExit):
        cli.main(["inspect", str(path), "--format", "s8.4"])
    assert "cannot be read" in capsys.readouterr().err


def _contents(folder, weights):
    """{kind: bytes} of one small file of every kind load_weights reads, a damaged
    one of each, and some that are none of them."""
    kernel = weights["hidden/0"]
    made = {}
    for kind, save in (("npy", lambda p: np.save(p, kernel)),
                       ("npz", lambda p: np.savez(p, **{"hidden/kernel": kernel})),
                       ("pickled", lambda p: np.save(p, np.array([{"a": 1}], object)))):
        path = folder / f"made.{kind}"
        with open(path, "wb") as handle:  # np.save would add its own suffix to a name
            save(handle)
        made[kind] = path.read_bytes()
    made["npy-truncated"] = made["npy"][:-8]
    made["npz-truncated"] = made["npz"][: len(made["npz"]) // 2]
    made["text"] = b"1 2 3"
    made["empty"] = b""
    made["zip-of-text"] = _zip_of({"notes.txt": "hello"})
    return made


def _zip_of(members):
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


NAMES = ["w.npy", "w.npz", "w.keras", "w.weights.h5", "w.hdf5", "w.bin", "w"]


def test_every_file_is_read_by_its_content_or_refused_by_name(saved, tmp_path):
    """Every content under every name: a readable file gives the weights its content
    holds, whatever its name; anything else is a ValueError naming the file, never
    another exception (an .npz under an .npy name printed a traceback)."""
    paths, weights = saved
    contents = {kind: paths[kind].read_bytes() for kind in ("keras", "h5")}
    contents.update(_contents(tmp_path, weights))
    expected = {"keras": iw.load_weights(paths["keras"]), "h5": iw.load_weights(paths["h5"])}
    for kind, data in contents.items():
        for name in NAMES:
            path = tmp_path / kind / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            try:
                loaded = iw.load_weights(path)
            except ValueError as err:
                assert str(path) in str(err), (kind, name, err)
                assert kind not in ("keras", "h5", "npy", "npz"), (kind, name, err)
                continue
            assert kind in ("keras", "h5", "npy", "npz"), (kind, name)
            if kind in expected:
                assert [(w.label, w.values.tolist()) for w in loaded] == \
                    [(w.label, w.values.tolist()) for w in expected[kind]]
            else:
                np.testing.assert_array_equal(loaded[0].values, weights["hidden/0"])
                assert loaded[0].name == ("kernel" if kind == "npz" else "")
