"""Source checks: the package uses only public TensorFlow and Keras APIs."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tensorflow_kappa"
FORBIDDEN = ("tensorflow.python", "keras.src", "tf_keras")


def _imported_modules(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            yield str(node.args[0].value)


def test_no_private_modules_imported():
    offenders = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 5
    for path in files:
        for module in _imported_modules(ast.parse(path.read_text(), str(path))):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {module}")
    assert not offenders, "private modules imported:\n" + "\n".join(offenders)


def test_checker_catches_private_imports():
    sample = ast.parse("import keras.src.layers\nfrom tensorflow.python.ops import math_ops\n"
                       "import importlib\nimportlib.import_module('tf_keras')\n")
    assert list(_imported_modules(sample)) == [
        "keras.src.layers", "tensorflow.python.ops", "importlib", "tf_keras"]
