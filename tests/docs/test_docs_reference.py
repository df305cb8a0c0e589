"""The built reference holds every public name, every ``kappa`` command and option,
and the format tables computed from the code agree with independent references."""
import importlib
import inspect
import pkgutil
import re
import zlib
from pathlib import Path

import numpy as np

import tensorflow_kappa as tk
from tensorflow_kappa import core


def inventory(site: Path) -> dict:
    """``{(role, name): uri}`` from the site's ``objects.inv`` (Sphinx inventory v2:
    four header lines, then zlib-compressed ``name role priority uri display`` lines)."""
    raw = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    entries = {}
    for line in zlib.decompress(raw[header_end:]).decode().splitlines():
        match = re.match(r"(.+?)\s+(\S+:\S+)\s+(-?\d+)\s+(\S+)\s+(.*)", line)
        name, role, _, uri, _ = match.groups()
        entries[role, name] = uri.replace("$", name) if uri.endswith("$") else uri
    return entries


def exported_names() -> list:
    """``module.name`` for every name in ``tensorflow_kappa.__all__`` and in the
    ``__all__`` of every public subpackage and module below it (walked here,
    independently of the generator)."""
    modules = [tk] + [importlib.import_module(info.name) for info in
                      pkgutil.walk_packages(tk.__path__, "tensorflow_kappa.")
                      if not any(p.startswith("_") for p in info.name.split("."))]
    names = []
    for module in modules:
        for name in getattr(module, "__all__", ()):
            if not inspect.ismodule(getattr(module, name)):
                names.append(f"{module.__name__}.{name}")
    return names


def test_the_walk_finds_the_public_names():
    names = exported_names()
    assert {"tensorflow_kappa.quantize_tensor", "tensorflow_kappa.layers.INALU",
            "tensorflow_kappa.core.quantize", "tensorflow_kappa.cli.main",
            "tensorflow_kappa.experiments.nalm.run_nalm_benchmark"} <= set(names)
    assert len(names) > 300


def test_every_public_name_is_in_the_reference(site):
    entries = inventory(site)
    documented = {name for (role, name) in entries if role.startswith("py:")}
    missing = [name for name in exported_names() if name not in documented]
    assert not missing, f"exported but not in the reference: {missing}"


def test_every_reference_entry_points_at_its_description(site):
    entries = inventory(site)
    for name in exported_names():
        (uri,) = [u for (role, n), u in entries.items() if n == name and role.startswith("py:")]
        page, _, anchor = uri.partition("#")
        html = (site / page).read_text()
        assert f'id="{anchor}"' in html, (name, uri)


def test_every_module_of_the_package_has_a_page(site):
    entries = inventory(site)
    modules = {name for (role, name) in entries if role == "py:module"}
    expected = {"tensorflow_kappa"} | {f"tensorflow_kappa.{n}" for n in tk.__all__
                                       if inspect.ismodule(getattr(tk, n))}
    assert expected <= modules, expected - modules


def test_a_description_shows_its_signature_types_and_docstring(site):
    html = (site / "reference/api/tensorflow_kappa.quantization.html").read_text()
    start = html.index('id="tensorflow_kappa.quantization.quantize_tensor"')
    entry = re.sub(r"<[^>]+>", "", html[start:start + 20000])
    assert "quantize_tensor(x" in entry and "FixedPoint" in entry and "seed" in entry
    assert "Raises" in entry and "ValueError" in entry
    # cross-linked: the format type links to FixedPoint's description
    assert 'href="tensorflow_kappa.core.html#tensorflow_kappa.core.FixedPoint"' in \
        html[start:start + 20000]


def test_every_kappa_command_and_option_is_in_the_reference(site):
    from tensorflow_kappa.cli import build_parser

    entries = inventory(site)
    options = {name for (role, name) in entries if role == "std:cmdoption"}
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    assert len(commands.choices) >= 7
    for command, subparser in commands.choices.items():
        for action in subparser._actions:
            for option in action.option_strings or [action.dest]:
                if option not in ("-h", "--help"):
                    assert f"kappa-{command}.{option}" in options, (command, option)


def _table_rows(html: str, table_id: str) -> list:
    """The rows (lists of cell texts) of the table with the HTML id ``table_id``."""
    start = html.index(f'id="{table_id}"')
    table = html[start:html.index("</table>", start)]
    rows = []
    for row in re.findall(r"<tr.*?</tr>", table, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip()
                 for c in re.findall(r"<t[dh].*?</t[dh]>", row, re.S)]
        rows.append(cells)
    return rows


def _number(text: str) -> float:
    text = text.replace("−", "-")
    return float(2.0 ** int(text[3:])) * (-1 if text.startswith("-") else 1) \
        if "2^" in text else float(text)


def test_the_rounding_table_covers_every_mode_and_agrees_with_numpy(site):
    html = (site / "guides/ops_and_formats.html").read_text()
    header, *rows = _table_rows(html, "modes-rounding")
    probes = [float(h.split("=")[1].replace("−", "-")) for h in header[1:]]
    assert [r[0] for r in rows] == list(core.ROUNDING_MODES)
    reference = {"nearest_even": np.round, "truncate": np.floor, "toward_zero": np.trunc,
                 "nearest_away": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5)}
    for mode, *cells in rows:
        for x, cell in zip(probes, cells):
            if mode == "stochastic":
                low, high, share = re.match(r"(\S+) or (\S+) \(([\d.]+) up\)", cell).groups()
                assert (_number(low), _number(high)) == (np.floor(x), np.ceil(x)), cell
                assert abs(float(share) - (x - np.floor(x))) < 0.02, (x, cell)
            else:
                assert _number(cell) == reference[mode](x) + 0.0, (mode, x, cell)


def test_the_overflow_table_covers_every_mode_and_agrees_with_twos_complement(site):
    html = (site / "guides/ops_and_formats.html").read_text()
    header, *rows = _table_rows(html, "modes-overflow")
    probes = [float(h.split("=")[1].replace("−", "-")) for h in header[1:]]
    assert [r[0] for r in rows] == list(core.OVERFLOW_MODES)
    reference = {"saturate": lambda x: np.clip(x, -8, 7),
                 "wrap": lambda x: (x + 8) % 16 - 8}     # s4.0: codes -8 ... 7
    for mode, *cells in rows:
        assert [_number(c) for c in cells] == [reference[mode](x) for x in probes], mode


def test_the_formats_table_gives_each_formats_grid(site):
    html = (site / "guides/ops_and_formats.html").read_text()
    header, *rows = _table_rows(html, "formats-table")
    table = {row[0]: dict(zip(header, row)) for row in rows}
    assert table["s8.4"]["grid step"] == "0.0625"
    assert (table["s8.4"]["smallest"], table["s8.4"]["largest"]) == ("-8", "7.9375")
    assert "float16" in table["s8.4"]["exact in"]
    assert "float16" not in table["s16.14"]["exact in"]    # 16 bits: more than float16's 11
    assert table["u8.8"]["smallest"] == "0"
