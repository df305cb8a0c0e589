"""The API reference, generated from the package's exports at every build.

At ``builder-inited`` one page per public module (:func:`.exports.public_modules`) is
written to ``reference/api/``: the module's docstring, a table of every name it
exports, the pages of its public submodules, and the full description (autodoc) of
each object whose home it is. Every other exported path of an object is registered
as an alias of that description, so ``:class:`tensorflow_kappa.INALU``` and
``:class:`tensorflow_kappa.layers.INALU``` both resolve and the inventory
(``objects.inv``) lists every public name.

What a class page lists: its public methods and properties, and those it inherits
from the package's private bases (``INALU.explain``); members that override a
framework method without a docstring of their own (``call``, ``get_config``,
``on_epoch_end``) are left out, the framework documents them. A public object,
member or constant (``#:`` comment) without a docstring is a warning, and the build
treats warnings as errors.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import itertools
import pkgutil
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

from sphinx.application import Sphinx
from sphinx.domains.python import ObjectEntry
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.nodes import make_refnode

from kappa_docs import exports as ex

logger = logging.getLogger(__name__)
#: Where the pages are written, relative to the documentation's source folder.
API_DIR = Path("reference") / "api"
#: Constants whose value is short enough to show after their name.
_SHOWN_VALUE_TYPES = (bool, int, float, str)


def module_page(module: str, modules: List[str], homes: Dict[str, ex.Export]) -> str:
    """The reStructuredText of one module's page."""
    title = f"``{module}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {module}"]
    if ex.shadowed(module):
        lines.append("   :no-index:")  # the package's attribute of this name is not it
    lines.append("")
    names = ex.exports(module)
    if names:
        lines += [".. rubric:: Exported names", "", ".. list-table::", "   :widths: 1 3", ""]
        for export in names:
            lines += [f"   * - :py:obj:`~{homes[export.path].path}`",
                      f"     - {summary(homes[export.path])}"]
        lines.append("")
    children = [m for m in modules if m != module and ex.parent(m) == module]
    if children:
        lines += [".. rubric:: Modules", "", ".. toctree::", "   :maxdepth: 1", ""]
        lines += [f"   {child}" for child in children]
        lines.append("")
    described = [e for e in names if homes[e.path] == e]
    if described:
        lines += ["Reference", "---------", "", ".. currentmodule:: " + module, ""]
        for export in described:
            lines += describe(export) + [""]
    return "\n".join(lines)


def summary(export: ex.Export) -> str:
    """The first sentence of an object's docstring (of a constant's ``#:`` comment)."""
    if inspect.isclass(export.obj) or inspect.isroutine(export.obj):
        doc = (inspect.getdoc(export.obj) or "").splitlines()
    else:
        doc = constant_doc(export) or []
    paragraph = " ".join(line.strip() for line in
                         itertools.takewhile(lambda line: line.strip(), doc))
    for match in re.finditer(r"\.(\s|$)", paragraph):
        head = paragraph[:match.start() + 1]
        if _closed(head) and not head.endswith(("e.g.", "i.e.", "etc.")):
            return head
    return paragraph


def _closed(text: str) -> bool:
    """Whether every inline literal and role in ``text`` is closed."""
    rest = re.sub(r"``.*?``", "", text)
    return "``" not in rest and rest.count("`") % 2 == 0


def describe(export: ex.Export) -> List[str]:
    """The directive that describes one exported object."""
    obj = export.obj
    if inspect.isclass(obj):
        kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        members = class_members(obj)
        lines = [f".. {kind}:: {export.path}", "   :show-inheritance:"]
        return lines + ([f"   :members: {', '.join(members)}"] if members else [])
    if inspect.isroutine(obj):
        return [f".. autofunction:: {export.path}"]
    lines = [f".. py:data:: {export.name}", f"   :module: {export.module}"]
    if isinstance(obj, _SHOWN_VALUE_TYPES):
        lines.append(f"   :value: {obj!r}")
    doc = constant_doc(export)
    if doc is None:
        logger.warning("API reference: constant %s has no docstring (a #: comment where "
                       "it is assigned)", export.path)
    return lines + [""] + [f"   {line}" if line else "" for line in doc or []]


def class_members(cls: type) -> List[str]:
    """The public methods and properties a class page lists (see the module docstring);
    warns about those without a docstring."""
    names: List[str] = []
    root = ex.package_of(cls.__module__)
    for owner in cls.__mro__:
        if owner is not cls and not _private_base(owner, root):
            continue
        for name, value in vars(owner).items():
            function = _function(value)
            if name.startswith("_") or name in names or function is None:
                continue
            if (getattr(function, "__doc__", None) or "").strip():
                names.append(name)
            elif _defining_bases(owner, name):
                if all(_private_base(base, root) for base in _defining_bases(owner, name)):
                    names.append(name)  # autodoc shows the private base's docstring
            else:
                logger.warning("API reference: %s.%s.%s has no docstring", owner.__module__,
                               owner.__qualname__, name)
    return names


def _function(value: Any) -> Any:
    """The function behind a method, classmethod, staticmethod or property, or None."""
    if isinstance(value, property):
        return value.fget
    value = getattr(value, "__func__", value)
    return value if inspect.isroutine(value) else None


def _private_base(cls: type, root: str) -> bool:
    """A base class of the package ``root`` that the reference does not describe."""
    return cls.__module__.startswith(root + ".") and any(
        part.startswith("_") for part in f"{cls.__module__}.{cls.__qualname__}".split("."))


def _defining_bases(owner: type, name: str) -> List[type]:
    return [base for base in owner.__mro__[1:] if name in vars(base) and base is not object]


def constant_doc(export: ex.Export) -> Optional[List[str]]:
    """The ``#:`` comment of a constant, read where it is assigned: the exporting module
    or the module of the package that binds the same object under the same name."""
    for module in [export.module] + _all_modules(ex.package_of(export.module)):
        mod = importlib.import_module(module)
        if vars(mod).get(export.name) is not export.obj:
            continue
        doc = _attribute_docs(module).get(("", export.name))
        if doc:
            return list(doc)
    return None


@lru_cache(maxsize=None)
def _all_modules(root: str) -> List[str]:
    """Every Python module of the package, private ones included (not ``__main__``
    modules, which run when imported)."""
    package = importlib.import_module(root)
    return [info.name for info in pkgutil.walk_packages(package.__path__, root + ".")
            if not info.name.endswith(".__main__") and _is_python(info.name)]


def _is_python(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    return bool(spec and spec.origin and spec.origin.endswith(".py"))


@lru_cache(maxsize=None)
def _attribute_docs(module: str) -> Dict[tuple, List[str]]:
    """The ``#:`` comments of a module's assignments, ``{(class, name): lines}``."""
    return ModuleAnalyzer.for_module(module).find_attr_docs()


def write_pages(app: Sphinx) -> None:
    """builder-inited: (re)write the pages that changed, remove those of gone modules."""
    modules = ex.public_modules(app.config.kappa_api_package)
    homes = ex.homes(modules)
    app.env.kappa_aliases = {path: home.path for path, home in homes.items()
                             if home.path != path}
    folder = Path(app.srcdir) / API_DIR
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f"{module}.rst": module_page(module, modules, homes) for module in modules}
    for stale in set(p.name for p in folder.glob("*.rst")) - set(wanted):
        (folder / stale).unlink()
    for name, text in wanted.items():
        path = folder / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


def register_aliases(app: Sphinx, env: Any) -> None:
    """env-updated: every non-home exported path points at its home's description."""
    domain = env.get_domain("py")
    for alias, home in sorted(getattr(env, "kappa_aliases", {}).items()):
        entry = domain.objects.get(home)
        if entry is None:
            logger.warning("API reference: %s (exported as %s) has no description", home,
                           alias)
            continue
        domain.objects[alias] = ObjectEntry(entry.docname, entry.node_id, entry.objtype, True)


_SECTION = re.compile(r"^(Args|Arguments|Attributes|Example|Examples|Note|Notes|Raises|"
                      r"Returns|Yields|Warning|Warns|See Also|References|Todo):\s*$")


def indent_examples(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                    lines: List[str]) -> None:
    """autodoc-process-docstring, before napoleon: the package writes its examples as
    ``Example:`` followed by doctest lines at the same indentation; indent them, so
    that napoleon reads an Example section (up to the next section) and does not run
    the header and the code together into one paragraph."""
    index = 0
    while index < len(lines):
        header = _SECTION.match(lines[index])
        if header and header.group(1).startswith("Example") and index + 1 < len(lines) \
                and lines[index + 1].startswith(">>>"):
            end = index + 1
            while end < len(lines) and not _SECTION.match(lines[end]):
                end += 1
            lines[index + 1:end] = [f"    {line}" if line else "" for line in
                                    lines[index + 1:end]]
            index = end
        else:
            index += 1


def check_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                    lines: List[str]) -> None:
    """autodoc-process-docstring: a described module, class or function without a
    docstring is a warning."""
    if what in ("module", "class", "exception", "function") and not any(
            line.strip() for line in lines):
        logger.warning("API reference: %s %s has no docstring", what, name)


def dataclass_factories(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                        signature: Optional[str], return_annotation: Optional[str]) -> Any:
    """autodoc-process-signature: a dataclass field's ``<factory>`` default (which the
    signature parser cannot read) as the call that makes it, ``list()``."""
    if not signature or "<factory>" not in signature or not dataclasses.is_dataclass(obj):
        return None
    for field in dataclasses.fields(obj):
        if field.default_factory is not dataclasses.MISSING:
            made = getattr(field.default_factory, "__name__", "")
            shown = f"{made}()" if made.isidentifier() else "..."
            signature = signature.replace("<factory>", shown, 1)
    return signature, return_annotation


def public_bases(app: Sphinx, name: str, obj: Any, options: Any, bases: List[type]) -> None:
    """autodoc-process-bases: a private base is shown as its public bases."""
    result: List[type] = []
    root = ex.package_of(name)
    for base in bases:
        for shown in (_public_ancestors(base, root) if _private_base(base, root) else [base]):
            if shown not in result:
                result.append(shown)
    bases[:] = result


def _public_ancestors(cls: type, root: str) -> List[type]:
    result: List[type] = []
    for base in cls.__bases__:
        result += _public_ancestors(base, root) if _private_base(base, root) else [base]
    return result


def resolve_reference(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    """missing-reference: a Python reference the domain did not resolve.

    A short name (``LoopController``, ``LowPrecisionOptimizer.statistics``) resolves to
    the object of the reference whose full name ends with it; where several do, to the
    one whose module shares the longest prefix with the referring module (``rail_stats``
    in ``tensorflow_kappa.quantization`` is ``tensorflow_kappa.quantization.rail_stats``).
    A name of the package that exists but is not described in the reference (a private
    function, a module without ``__all__``) is shown as code, without a link. Anything
    else stays unresolved: a warning, which fails the build.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    module, cls = node.get("py:module"), node.get("py:class")
    domain = env.get_domain("py")
    matches = [(name, entry) for name, entry in domain.find_obj(
        env, module, cls, target, node["reftype"] if node["reftype"] != "obj" else None, 1)
        if not entry.aliased] if target else []
    if matches:
        best = _closest(matches, module or "")
        if best is not None:
            name, entry = best
            return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id,
                                contnode, name)
    scopes = [f"{module}.{cls}" if module and cls else None, module]
    if module and cls:  # a class's docstring also names what its own module holds
        scopes.append(ex.defining_module(f"{module}.{cls}"))
    if ex.resolves(target, scopes, app.config.kappa_api_package):
        return contnode
    return None


def _closest(matches: List[tuple], module: str) -> Optional[tuple]:
    """The match whose module shares the longest dotted prefix with ``module``, if one
    alone does."""
    def shared(name: str) -> int:
        count = 0
        for a, b in zip(name.split("."), module.split(".")):
            if a != b:
                break
            count += 1
        return count
    best = max(shared(name) for name, _ in matches)
    closest = [m for m in matches if shared(m[0]) == best]
    return closest[0] if len(closest) == 1 else None


def setup(app: Sphinx) -> dict:
    app.add_config_value("kappa_api_package", "tensorflow_kappa", "env")
    app.connect("builder-inited", write_pages)
    app.connect("env-updated", register_aliases)
    app.connect("autodoc-process-docstring", indent_examples, priority=400)
    app.connect("autodoc-process-docstring", check_docstring, priority=600)
    app.connect("autodoc-process-bases", public_bases)
    app.connect("autodoc-process-signature", dataclass_factories)
    app.connect("missing-reference", resolve_reference)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
