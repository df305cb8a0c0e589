"""The experiments' shared reporting helpers."""
import json
import math

import numpy as np
import pytest

from tensorflow_kappa.experiments.reporting import format_number, jsonable, text_table, write_json


def test_jsonable_makes_values_json_ready_recursively():
    value = {1: (np.float32(0.5), np.int64(3), np.bool_(True)),
             "nested": [{"nan": float("nan"), "inf": np.float64(-np.inf)}], "text": "x"}
    got = jsonable(value)
    assert got == {"1": [0.5, 3, True], "nested": [{"nan": None, "inf": None}], "text": "x"}
    assert type(got["1"][1]) is int and type(got["1"][2]) is bool
    json.dumps(got, allow_nan=False)


def test_write_json_creates_the_folder_and_writes_jsonable(tmp_path):
    path = write_json(str(tmp_path / "a" / "b.json"), {"x": np.float32(math.nan), "y": (1, 2)})
    assert json.loads(open(path).read()) == {"x": None, "y": [1, 2]}


@pytest.mark.parametrize("value, spec, text", [
    (None, ".3g", "-"), (float("nan"), ".3g", "-"), (np.float32("nan"), ".3g", "-"),
    (0.000123456, ".3g", "0.000123"), (1234567.0, ".3g", "1.23e+06"), (2, "g", "2"),
    (0.25, "g", "0.25"), (1500.0, ".0f", "1500"), (3e-5, ".1e", "3.0e-05"),
])
def test_format_number(value, spec, text):
    assert format_number(value, spec) == text


def test_text_table_aligns_left_and_right_columns():
    table = text_table([("run", "ctrl", "loss"), ("float-off", "on", "0.5"), ("x", "off", "12")],
                       left=2)
    assert table.splitlines() == [
        "run        ctrl  loss",
        "---------------------",
        "float-off  on     0.5",
        "x          off     12",
    ]
