"""dwq.train.config.jsonable, the form config.json, checkpoints and metrics.jsonl lines are written in: strict
JSON, so every non-finite float (a diverged run's inf loss as well as its NaN) is spelled as a string."""
import json
import math

import pytest

from dwq.train.config import jsonable


@pytest.mark.parametrize("value", [float("inf"), -float("inf"), float("nan")])
def test_every_non_finite_float_becomes_its_string(value):
    """inf and -inf, not only NaN, are strings: json.dumps wrote them as the bare Infinity, which strict JSON
    readers refuse."""
    rec = {"epoch": 3, "train_loss": value, "per_precision": {4: [value, 0.5]}, "milestones": (0.5, value)}
    got = jsonable(rec)
    want = {"epoch": 3, "train_loss": str(value), "per_precision": {"4": [str(value), 0.5]},
            "milestones": [0.5, str(value)]}
    assert got == want, f"jsonable({rec!r}) gave {got!r}, expected {want!r}"
    text = json.dumps(got, allow_nan=False)  # strict JSON: raises on any float left non-finite
    assert json.loads(text) == want


def test_finite_values_and_other_types_are_kept():
    """Finite floats, ints, bools, None and strings pass unchanged; keys become strings, tuples lists."""
    rec = {1: 2.5, "b": True, "c": None, "d": "x", (1, 2): (1, -0.0), "e": [math.pi]}
    assert jsonable(rec) == {"1": 2.5, "b": True, "c": None, "d": "x", "(1, 2)": [1, -0.0], "e": [math.pi]}
