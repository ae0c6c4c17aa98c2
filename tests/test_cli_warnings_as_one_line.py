"""dwq's own warnings reach a command-line user as one line ``dwq <cmd>: warning: ...``: dwq deploy of
a checkpoint with an untrained switchable-BN branch printed Python's two-line UserWarning with a
source line and a path inside the package. Other libraries' warnings are shown as Python shows them."""
import warnings

import pytest
import torch
from deploy_models import calibrated

from dwq import SwitchableBatchNorm2d
from dwq.cli.common import dwq_warnings_as_lines
from dwq.cli.main import main
from dwq.models import small_cnn
from dwq.ops import HAS_EXT


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
def test_deploy_says_an_untrained_branch_in_one_line(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    m = calibrated(small_cnn(precisions=[2, 8], width=4), (8, 1, 28, 28))
    for bn in (b for b in m.modules() if isinstance(b, SwitchableBatchNorm2d)):
        bn._trained[1] = False  # the branch of 8 bits as if RPT never drew it
    ck = {"config": {"extra": {"network": "small_cnn", "dataset": "mnist5k"}}}
    monkeypatch.setattr("dwq.train.load_trained_model", lambda p, device="cpu": (m, ck))
    (tmp_path / "c.pt").write_bytes(b"stand-in")
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        assert main(["deploy", "--checkpoint", str(tmp_path / "c.pt"), "--out", str(tmp_path / "m.safetensors")]) == 0
    err = capsys.readouterr().err
    assert err == ("dwq deploy: warning: convert: the switchable batch norm never saw a training batch at "
                   "precision(s) 8; their folded statistics are the initial ones (mean 0, variance 1)\n"), err


def test_only_dwqs_own_warnings_are_rewritten(capsys):
    import dwq.quant.quantizers as q

    with warnings.catch_warnings(record=True) as shown_by_python:
        warnings.simplefilter("always")
        with dwq_warnings_as_lines("eval"):
            warnings.warn_explicit("two\n  lines", UserWarning, q.__file__, 7)
            warnings.warn_explicit("a library's", DeprecationWarning, "/elsewhere/lib.py", 3)
        warnings.warn_explicit("after", UserWarning, q.__file__, 8)  # the formatter is gone after the block
    assert capsys.readouterr().err == "dwq eval: warning: two lines\n"
    assert [(str(w.message), w.filename) for w in shown_by_python] == [("a library's", "/elsewhere/lib.py"),
                                                                       ("after", q.__file__)]
