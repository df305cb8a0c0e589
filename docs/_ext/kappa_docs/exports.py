"""The public surface of the package, walked from its exports: which modules are public,
what each exports, and the one page ("home") where each exported object is described.

The public modules are the root, the modules its ``__all__`` names, and every package
or module below it that is a package or declares ``__all__``, where no part of its
dotted name starts with ``_``; a module's exports are its ``__all__``. An object exported from several modules (``tk.quantize_tensor`` is
``tk.quantization.quantize_tensor``) is described once, in its home: the shallowest
exporting module below the root, preferring the one that defines it; every other
exported name is an alias of it.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any, Dict, List, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Export:
    """One exported name: ``module.name`` and the object it is bound to."""

    module: str
    name: str
    obj: Any

    @property
    def path(self) -> str:
        """The dotted path a user writes, ``tensorflow_kappa.layers.INALU``."""
        return f"{self.module}.{self.name}"


def package_of(name: str) -> str:
    """The top-level package of a dotted name."""
    return name.partition(".")[0]


def public_modules(root: str) -> List[str]:
    """The public modules of ``root``, the root first, then in dotted-name order."""
    package = importlib.import_module(root)
    listed = {f"{root}.{name}" for name in package.__all__
              if inspect.ismodule(getattr(package, name))}
    found = {root} | listed
    for info in pkgutil.walk_packages(package.__path__, root + "."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if info.ispkg or hasattr(importlib.import_module(info.name), "__all__"):
            found.add(info.name)
    return sorted(found, key=lambda name: (name != root, name))


def exports(module: str) -> List[Export]:
    """The names ``module`` exports (its ``__all__``), submodules left out."""
    mod = importlib.import_module(module)
    result = []
    for name in getattr(mod, "__all__", ()):
        obj = getattr(mod, name)
        if not inspect.ismodule(obj):
            result.append(Export(module, name, obj))
    return result


def parent(module: str) -> str:
    """The package a module belongs to (the root is its own parent)."""
    return module.rpartition(".")[0] or module


def homes(modules: List[str]) -> Dict[str, Export]:
    """Every exported path (``module.name``) mapped to the export that describes it."""
    groups: Dict[Tuple[int, str], List[Export]] = {}
    for module in modules:
        for export in exports(module):
            groups.setdefault((id(export.obj), export.name), []).append(export)
    result = {}
    for group in groups.values():
        home = min(group, key=_home_rank)
        for export in group:
            result[export.path] = home
    return result


def _home_rank(export: Export) -> tuple:
    """Below the root before the root, shallow before deep, the defining module first."""
    defined_in = getattr(export.obj, "__module__", None) or ""
    return ("." not in export.module, export.module.count("."),
            not defined_in.startswith(export.module + "."), export.module)


def shadowed(module: str) -> bool:
    """Whether the package's attribute of the module's name is something else
    (``tensorflow_kappa.quantization.quantize_model`` is the function, not the module)."""
    package, _, name = module.rpartition(".")
    return bool(package) and getattr(importlib.import_module(package), name, None) is not \
        importlib.import_module(module)


def resolves(target: str, scopes: List[Optional[str]], root: str) -> bool:
    """Whether ``target``, taken as it is or inside one of ``scopes`` (dotted paths),
    names a module or an attribute of the package ``root``."""
    for scope in [*filter(None, scopes), None]:
        path = f"{scope}.{target}" if scope else target
        if package_of(path) == root:
            if _lookup(path)[0]:
                return True
    return False


def defining_module(path: str) -> Optional[str]:
    """The module that defines the class or function at ``path`` (None if none does)."""
    found, obj = _lookup(path)
    return getattr(obj, "__module__", None) if found else None


def _lookup(path: str) -> Tuple[bool, Any]:
    """Whether a dotted path imports (the longest module prefix, then attributes), and
    the object it names."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            if not hasattr(obj, part):
                return False, None
            obj = getattr(obj, part)
        return True, obj
    return False, None
