"""Per-precision figures are keyed by the precision that computed them, on a stub model right at 4 bits
and wrong at 8 (tests/test_protocol_edges._ByPrecision): clean accuracy, robust accuracy (attacked and
classified at the same precision) and the transfer matrix (row = attack precision, column = inference
precision), with a stub attack that records which precision it attacked and changes nothing."""
import torch
from test_protocol_edges import _ByPrecision, _data

from dwq import eval as E


def _recording_attack(seen):
    def attack(f, xb, yb):
        seen.append(f.precision)
        return xb.clone()
    return attack


def test_clean_accuracy_is_keyed_by_the_precision_that_classified():
    x, y = _data(10)
    r, corr = E.clean_accuracy(_ByPrecision(), x, y, [4, 8], return_correct=True)
    assert {k: v["acc"] for k, v in r.items()} == {"4": 1.0, "8": 0.0}
    assert corr[0].all() and not corr[1].any()
    r = E.clean_accuracy(_ByPrecision(), x, y, [8, 4])
    assert list(r) == ["8", "4"] and {k: v["acc"] for k, v in r.items()} == {"4": 1.0, "8": 0.0}


def test_robust_accuracy_classifies_at_the_precision_it_attacked():
    x, y = _data(10)
    seen = []
    r = E.robust_accuracy(_ByPrecision(), x, y, [4, 8], _recording_attack(seen), batch_size=4)
    assert seen == [4, 4, 4, 8, 8, 8]
    assert {k: v["acc"] for k, v in r.items()} == {"4": 1.0, "8": 0.0}


def test_transfer_matrix_attacks_at_the_row_and_classifies_at_the_column():
    x, y = _data(6)
    seen = []
    tm, c = E.transfer_matrix(_ByPrecision(), x, y, [4, 8], _recording_attack(seen), batch_size=4,
                              return_correct=True)
    assert seen == [4, 4, 8, 8]
    assert tm["acc"] == [[1.0, 0.0], [1.0, 0.0]]  # the attack changes nothing: columns differ, rows do not
    assert c.shape == (2, 2, 6)
    assert {k: v["acc"] for k, v in E.matrix_diagonal(tm).items()} == {"4": 1.0, "8": 0.0}
