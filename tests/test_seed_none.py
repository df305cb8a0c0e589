"""Every ``seed=None`` of the package follows Keras' global seed the same way: after
``keras.utils.set_random_seed(s)`` each seeded object built without a seed draws the
same numbers, in a fresh process as in this one; another ``s`` draws others.

The table below holds one row per public callable that takes a seed and accepts None
(found by signature, so a new one needs a row), each a function producing what the
seed decides."""
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tensorflow_kappa
from tensorflow_kappa import core
from tensorflow_kappa.datasets import TeacherStudentDataset, arithmetic_task
from tensorflow_kappa.layers import Quantize
from tensorflow_kappa.models import LinearBlockModel
from tensorflow_kappa.optimizers import LowPrecisionOptimizer
from tensorflow_kappa.quantization import quantize_tensor, update_quantize_store
from tensorflow_kappa.quantization.seeds import op_seed
from tensorflow_kappa.recipes import InaluController, inalu_controller

REPO = Path(__file__).resolve().parents[1]
STOCHASTIC = "s8.2:stochastic"
X = np.linspace(-1, 1, 64).astype(np.float32)


def _controller_draw(controller):
    """The redraw stream of an InaluController: what its stuck members are redrawn from."""
    return controller._rng.random(8)


def _instrumented_run():
    model = LinearBlockModel(dataset=TeacherStudentDataset(32, 3, 2, seed=0), num_hidden=[])
    history = model.train_instrumented(model.dataset.X, model.dataset.Y, epochs=1, batch_size=8,
                                       precision_dict={"*": {"weight": STOCHASTIC}})
    return np.asarray(history.loss)


def _reinitialized():
    model = LinearBlockModel(dataset=TeacherStudentDataset(8, 3, 2, seed=0), num_hidden=[])
    model.reinitialize_weights()
    return model.model.weights[0].numpy()


#: qualified name -> what the seed decides, built with seed=None.
SEEDED = {
    "tensorflow_kappa.optimizers.low_precision.LowPrecisionOptimizer":
        lambda: LowPrecisionOptimizer(keras.optimizers.SGD(0.1)).seed,
    "tensorflow_kappa.layers.quantize.Quantize":
        lambda: Quantize(forward=STOCHASTIC)(X).numpy(),
    "tensorflow_kappa.datasets.base.TeacherStudentDataset":
        lambda: TeacherStudentDataset(16, 3, 2).X,
    "tensorflow_kappa.datasets.arithmetic.arithmetic_task":
        lambda: arithmetic_task("x1 * x2", num_inputs=2, n=16).train[0],
    "tensorflow_kappa.models.base.BaseModel": _reinitialized,
    "tensorflow_kappa.models.linear_block.LinearBlockModel": _instrumented_run,
    "tensorflow_kappa.recipes.controller.InaluController":
        lambda: _controller_draw(InaluController()),
    "tensorflow_kappa.recipes.controller.inalu_controller":
        lambda: _controller_draw(inalu_controller()),
    "tensorflow_kappa.quantization.quantize.quantize_tensor":
        lambda: quantize_tensor(X, STOCHASTIC).numpy(),
    "tensorflow_kappa.quantization.update_store.update_quantize_store":
        lambda: _updated(lambda v, g: update_quantize_store(v, g, 0.1, STOCHASTIC, STOCHASTIC)),
    "tensorflow_kappa.quantization.seeds.op_seed":
        lambda: op_seed(None, tensorflow_kappa.quantization.FixedPoint.parse(STOCHASTIC)).numpy(),
    "tensorflow_kappa.core.ops.quantize": lambda: core.quantize(X.copy(), STOCHASTIC),
    "tensorflow_kappa.core.ops.update_quantize_store":
        lambda: _updated_numpy(),
}
#: Callables whose seed=None means "no seed is used" rather than "draw one".
NOT_DRAWN = {
    "tensorflow_kappa.experiments.arithmetic.train_arithmetic":
        "seed=None leaves Keras' global state as it is (the caller's seeding rules)",
    "tensorflow_kappa.models.quantized_forward.forward_with_precision":
        "seeds=None passes no seed on: quantize_tensor draws (its row)",
}


def _updated(update):
    variable = tf.Variable(X.copy())
    update(variable, tf.constant(X))
    return variable.numpy()


def _updated_numpy():
    w = X.copy()
    core.update_quantize_store(w, X.copy(), 0.1, STOCHASTIC, STOCHASTIC)
    return w


def seeded_callables():
    """Qualified names of the public callables with a seed parameter defaulting to None."""
    found = set()
    for info in pkgutil.walk_packages(tensorflow_kappa.__path__, "tensorflow_kappa."):
        parts = info.name.split(".")[1:]
        if any(p.startswith("_") for p in parts) or parts[0] in ("cli", "experiments"):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            target = obj.__init__ if inspect.isclass(obj) else obj
            try:
                parameters = inspect.signature(target).parameters.values()
            except (TypeError, ValueError):
                continue
            if any("seed" in p.name and p.default is None for p in parameters):
                found.add(f"{obj.__module__}.{obj.__qualname__}")
    return found


def test_the_table_holds_every_seeded_callable():
    found = seeded_callables()
    assert found, "the walk found nothing"
    missing = found - set(SEEDED) - set(NOT_DRAWN)
    assert not missing, f"seed=None callables without a row: {sorted(missing)}"


def drawn(name, seed):
    keras.utils.set_random_seed(seed)
    return np.asarray(SEEDED[name]())


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_seed_none_is_reproducible_under_keras_global_seed(name):
    first, again, other = drawn(name, 7), drawn(name, 7), drawn(name, 8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other), "the global seed does not reach it"


def test_seed_none_is_the_same_in_a_fresh_process(tmp_path):
    """The same global seed gives the same draws in another process (no entropy from
    the operating system, no process-dependent state)."""
    names = sorted(SEEDED)
    here = {name: drawn(name, 11) for name in names}
    out = tmp_path / "drawn.npz"
    script = ("import sys, numpy as np\n"
              f"sys.path.insert(0, {str(REPO / 'tests')!r})\n"
              "import test_seed_none as t\n"
              "names = sorted(t.SEEDED)\n"
              "np.savez(sys.argv[1], **{str(i): t.drawn(n, 11) for i, n in enumerate(names)})\n")
    result = subprocess.run([sys.executable, "-c", script, str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as there:
        for i, name in enumerate(names):
            np.testing.assert_array_equal(here[name], there[str(i)], err_msg=name)
