"""The README's API example runs as printed; its Layout section matches the tree."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def test_readme_api_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "RailStats(" in out and "UpdateStats(" in out
    assert (tmp_path / "run.png").stat().st_size > 10_000


def _layout_folders():
    section = README.read_text().split("## Layout", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.DOTALL).group(1)
    return [line.split()[0] for line in block.splitlines() if line.strip()]


def test_readme_layout_lists_existing_folders_and_every_package_and_test_folder():
    listed = _layout_folders()
    assert all(name.endswith("/") for name in listed), listed
    missing = [name for name in listed if not (REPO / name).is_dir()]
    assert not missing, f"README Layout lists folders that do not exist: {missing}"
    packages = {f"tensorflow_kappa/{p.parent.relative_to(REPO / 'tensorflow_kappa')}/"
                for p in (REPO / "tensorflow_kappa").glob("*/__init__.py")}
    assert packages <= set(listed), f"not in the README Layout: {packages - set(listed)}"
    assert "tests/" in listed and "tensorflow_kappa/" in listed


def test_tests_mirror_the_package():
    packages = {p.parent.name for p in (REPO / "tensorflow_kappa").glob("*/__init__.py")}
    test_folders = {p.name for p in (REPO / "tests").iterdir() if p.is_dir()
                    and not p.name.startswith((".", "__"))}
    assert packages == test_folders, (packages, test_folders)


def _module_table():
    """(modules, names) per row of the README's module table."""
    text = README.read_text()
    table = text[text.index("| module | what it holds |"):].split("\n\n", 1)[0]
    for row in table.splitlines()[2:]:
        modules_cell, names_cell = row.strip("|").split("|")[:2]
        modules = re.findall(r"`([\w.]+)`", modules_cell)
        modules = [m if m.startswith("tensorflow_kappa") else "tensorflow_kappa" + m
                   for m in modules]
        yield modules, re.findall(r"`([A-Za-z_][\w.]*)`", names_cell)


def _resolves(name, modules):
    """``name`` is a module path, or an attribute (chain) or submodule of one of ``modules``."""
    import importlib

    candidates = [name] if name.startswith("tensorflow_kappa") else [
        f"{m}.{name}" for m in modules]
    for path in candidates:
        head, *rest = path.split(".")
        obj = importlib.import_module(head)
        for part in rest:
            if not hasattr(obj, part):
                try:
                    importlib.import_module(f"{obj.__name__}.{part}")
                except (ImportError, AttributeError):
                    break
            obj = getattr(obj, part)
        else:
            return True
    return False


def test_every_name_in_the_readme_module_table_imports():
    rows = list(_module_table())
    assert len(rows) >= 9
    missing = [(modules, name) for modules, names in rows for name in names
               if not _resolves(name, modules)]
    assert not missing, missing
