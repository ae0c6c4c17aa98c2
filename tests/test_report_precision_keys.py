"""dwq.eval.pname, the key every per-precision figure of a report is filed under: 'fp' for full
precision (None or 'fp'), the bit count for one precision of weights and activations, 'XwYa' for
a mixed one; every spelling of one precision gives the same key."""
import pytest

from dwq import eval as E


@pytest.mark.parametrize("p,key", [(None, "fp"), ("fp", "fp"), (4, "4"), ((8, 8), "8"), ((4, 8), "4w8a"),
                                   ("4w8a", "4w8a")])
def test_report_keys_of_precisions(p, key):
    assert E.pname(p) == key
