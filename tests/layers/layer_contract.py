"""The contract every Keras layer of the package keeps, checked by one harness.

As Keras' ``run_layer_test`` and TF Addons' ``layer_test`` do, for every layer
class :func:`exported_layers` finds in ``tensorflow_kappa.layers``:

* its config round-trips (``get_config`` -> ``from_config`` -> ``get_config``,
  JSON-serialisable, and through ``keras.layers.serialize``/``deserialize``);
* a model holding it, trained a few steps and saved, loads in a fresh Python
  process with identical weights (trainable and not) and identical outputs;
* bad constructor arguments raise ValueError naming the argument;
* ``reinitialize`` redraws every trainable weight (and refuses before ``build``), for
  the layers that have it.

Each layer class needs a :class:`LayerCase` in :data:`CASES` (a test fails for
an exported layer without one): non-default constructor arguments and the bad
arguments specific to it.
"""
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Tuple

import keras
import numpy as np

import tensorflow_kappa.layers as package_layers
from tensorflow_kappa.layers import INALU, NAC, NALU, NAU, NMU, NACMultiplicative, Quantize
from tensorflow_kappa.quantization import FixedPoint

REPO = Path(__file__).resolve().parents[2]

#: Bad arguments every layer with ``units`` rejects: (kwargs, word the message must contain).
COMMON_BAD_ARGUMENTS: List[Tuple[Dict[str, Any], str]] = [
    ({"units": 0}, "units"),
    ({"units": -2}, "units"),
    ({"units": 2.5}, "units"),
    ({"units": True}, "units"),
    ({"units": "2"}, "units"),
    ({"units": 2, "no_such_option": 1}, "no_such_option"),
]


@dataclasses.dataclass
class LayerCase:
    """How the harness exercises one layer class."""

    kwargs: Dict[str, Any]                   # non-default constructor arguments
    bad_arguments: List[Tuple[Dict[str, Any], str]]  # (kwargs, word in the message)
    input_range: Tuple[float, float] = (-2.0, 2.0)
    has_units: bool = True                   # takes ``units`` (COMMON_BAD_ARGUMENTS apply)


CASES: Dict[type, LayerCase] = {
    INALU: LayerCase(
        dict(units=3, omega=12.0, epsilon=1e-5, share_weights=True, t=15.0,
             m_hat_initializer=keras.initializers.RandomNormal(-2.0, 0.5, seed=4)),
        [({"units": 2, "omega": -1.0}, "omega"), ({"units": 2, "omega": 0.0}, "omega"),
         ({"units": 2, "epsilon": -1e-7}, "epsilon"),
         ({"units": 2, "epsilon": float("nan")}, "epsilon"),
         ({"units": 2, "t": 0}, "t must be"),
         ({"units": 2, "share_weights": "yes"}, "share_weights"),
         ({"units": 2, "sparsity_regularization": 1}, "sparsity_regularization"),
         ({"units": 2, "clipping": 20}, "clipping"),
         ({"units": 2, "w_hat_initializer": "no_such_init"}, "w_hat_initializer")]),
    NALU: LayerCase(
        dict(units=2, epsilon=1e-5, g_initializer="zeros"),
        [({"units": 2, "epsilon": -1.0}, "epsilon"), ({"units": 2, "gate": "input"}, "gate")],
        input_range=(0.5, 2.0)),
    NAC: LayerCase(
        dict(units=2, w_hat_initializer=keras.initializers.RandomNormal(0.0, 2.0)),
        [({"units": 2, "omega": 3.0}, "omega")]),
    NACMultiplicative: LayerCase(
        dict(units=2, epsilon=1e-4),
        [({"units": 2, "epsilon": 0.0}, "epsilon")], input_range=(0.5, 2.0)),
    NAU: LayerCase(
        dict(units=2, regularization_scale=3.0, warmup_start=1, warmup_end=3),
        [({"units": 2, "regularization_scale": -1.0}, "regularization_scale"),
         ({"units": 2, "warmup_start": -1}, "warmup_start"),
         ({"units": 2, "lambda_sparse": 1.0}, "lambda_sparse")]),
    NMU: LayerCase(
        dict(units=2, regularization_scale=2.0, warmup_start=0, warmup_end=2),
        [({"units": 2, "warmup_start": 10, "warmup_end": 5}, "warmup_end"),
         ({"units": 2, "warmup_end": 2.5}, "warmup_end")], input_range=(0.5, 2.0)),
    Quantize: LayerCase(
        dict(forward=FixedPoint.parse("s8.4:stochastic"), backward=FixedPoint.parse("s8.6"),
             ste="clipped", seed=3),
        [({"forward": "s8"}, "forward"), ({"backward": "x"}, "backward"),
         ({"ste": "no"}, "ste"), ({"seed": -1}, "seed"), ({"no_such_option": 1}, "no_such_option")],
        has_units=False),
}

INPUT_DIM = 4


def exported_layers() -> List[type]:
    """Every Keras layer class ``tensorflow_kappa.layers`` exports."""
    return sorted((obj for obj in vars(package_layers).values()
                   if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
                   and obj.__name__ in package_layers.__all__), key=lambda c: c.__name__)


def make_layer(cls: type, **overrides) -> keras.layers.Layer:
    return cls(**{**CASES[cls].kwargs, "name": f"under_test_{cls.__name__.lower()}", **overrides})


def check_config_round_trip(cls: type) -> None:
    layer = make_layer(cls)
    config = layer.get_config()
    json.dumps(config)
    clone = cls.from_config(config)
    assert type(clone) is cls and clone.get_config() == config
    for name, value in CASES[cls].kwargs.items():
        if not name.endswith("_initializer"):
            assert getattr(clone, name) == value, name
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is cls and revived.get_config() == config


def check_bad_arguments(cls: type, kwargs: Dict[str, Any], word: str) -> None:
    try:
        cls(**kwargs)
    except ValueError as err:
        assert word in str(err), f"{cls.__name__}({kwargs}): {err}"
    else:
        raise AssertionError(f"{cls.__name__}({kwargs}) raised no ValueError")


def check_reinitialize(cls: type) -> None:
    layer = cls(3)  # default (random, unseeded) initializers
    try:
        layer.reinitialize()
    except RuntimeError as err:
        assert "not built" in str(err)
    else:
        raise AssertionError(f"{cls.__name__}.reinitialize() before build raised nothing")
    keras.utils.set_random_seed(0)
    layer.build((None, INPUT_DIM))
    before = [w.numpy().copy() for w in layer.trainable_weights]
    layer.reinitialize()
    for w, b in zip(layer.trainable_weights, before):
        assert not np.allclose(w.numpy(), b), f"{cls.__name__}: {w.name} was not redrawn"


def _data(cls: type, seed: int = 0) -> np.ndarray:
    low, high = CASES[cls].input_range
    return np.random.default_rng(seed).uniform(low, high, (32, INPUT_DIM)).astype("float32")


def save_trained_models(folder: Path) -> Dict[str, dict]:
    """For each layer class: a model Dense -> layer, trained 4 steps, saved under ``folder``.

    Returns, per class name, the paths and what the loaded model must reproduce.
    """
    out = {}
    for cls in exported_layers():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((INPUT_DIM,)), keras.layers.Dense(INPUT_DIM),
                                  make_layer(cls)])
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        x = _data(cls)
        model.fit(x, x[:, :1] * x[:, 1:2], batch_size=8, epochs=1, verbose=0)
        name = cls.__name__
        np.save(folder / f"{name}_x.npy", x)
        model.save(folder / f"{name}.keras")
        out[name] = {"predictions": model.predict(x, verbose=0),
                     "weights": [w.numpy() for w in model.weights]}
    return out


def load_in_fresh_process(folder: Path, names: List[str]) -> None:
    """Load every saved model in a new interpreter; it writes ``<name>_loaded.npz``."""
    code = textwrap.dedent(f"""
        import numpy as np, keras, tensorflow_kappa
        from pathlib import Path
        folder = Path({str(folder)!r})
        for name in {names!r}:
            model = keras.models.load_model(folder / f"{{name}}.keras")
            x = np.load(folder / f"{{name}}_x.npy")
            np.savez(folder / f"{{name}}_loaded.npz", predictions=model.predict(x, verbose=0),
                     layer_class=type(model.layers[-1]).__name__,
                     **{{f"w{{i}}": w.numpy() for i, w in enumerate(model.weights)}})
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr


def check_reloaded(folder: Path, name: str, expected: dict) -> None:
    with np.load(folder / f"{name}_loaded.npz") as got:
        assert str(got["layer_class"]) == name
        np.testing.assert_array_equal(got["predictions"], expected["predictions"])
        weights = [got[f"w{i}"] for i in range(len(expected["weights"]))]
        assert f"w{len(weights)}" not in got.files
    for w, want in zip(weights, expected["weights"]):
        np.testing.assert_array_equal(w, want)
