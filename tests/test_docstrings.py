"""Every docstring example in the package runs as written (doctest, module by module)."""
import doctest
import importlib
import importlib.util
import pkgutil

import numpy as np
import pytest
import tensorflow as tf

import tensorflow_kappa

MODULES = sorted(info.name for info in pkgutil.walk_packages(tensorflow_kappa.__path__,
                                                              "tensorflow_kappa.")
                 # Python sources only, not the op library
                 if importlib.util.find_spec(info.name).origin.endswith(".py"))


def test_the_walk_finds_the_package():
    assert {"tensorflow_kappa.quantization.seeds", "tensorflow_kappa.experiments.reporting",
            "tensorflow_kappa.experiments.nalm.specs"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    globs = {"np": np, "tf": tf, **vars(module)}
    result = doctest.testmod(module, globs=globs, optionflags=doctest.ELLIPSIS,
                             raise_on_error=False, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
