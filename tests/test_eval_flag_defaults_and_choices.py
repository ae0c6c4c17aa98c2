"""dwq eval's and dwq demo's flags as parsed: the defaults their help texts and the README state (no test
read them: an evaluation with another default would pass every test that gives the flag), what each refuses,
and the lists that may be given only once."""
import pytest

from dwq.cli.main import build_parser

EVAL = ["eval", "--checkpoint", "c.pt", "--out", "o"]


def _parse(argv):
    return vars(build_parser().parse_args(argv))


def test_eval_defaults():
    a = _parse(EVAL)
    want = dict(attack="pgd", epsilon=None, alpha=None, steps=20, restarts=1, cw_tau=0.05, cw_steps=100,
                bandits_queries=1000, bandits_tile=4, protocols=["paper", "adaptive", "transfer"], paper_batch=100,
                eot_iter=20, autoattack_steps=100, autoattack_n=None, reference=False, integer=False, n_test=None,
                batch_size=250, seed=0, device=None, no_progress=False, resume=False, precisions=None,
                data_dir=None)
    assert {k: a[k] for k in want} == want


def test_demo_defaults():
    a = _parse(["demo"])
    want = dict(out="runs/demo", epochs=6, n_test=1000, train_images=None, autoattack_n=100, seed=0, threads=2,
                no_progress=False, resume=False)
    assert {k: a[k] for k in want} == want


@pytest.mark.parametrize("flag", ["--n-test", "--autoattack-n", "--batch-size", "--steps", "--paper-batch"])
def test_eval_counts_refuse_zero(flag, capsys):
    """--n-test 0 or --autoattack-n 0 would read as "not given" (all images): refused, not taken as all."""
    with pytest.raises(SystemExit) as e:
        _parse(EVAL + [flag, "0"])
    assert e.value.code == 2 and f"argument {flag}: must be >= 1, got 0" in capsys.readouterr().err


def test_demo_autoattack_n_takes_zero_to_skip_autoattack():
    assert _parse(["demo", "--autoattack-n", "0"])["autoattack_n"] == 0


def test_eval_protocols_given_twice_are_refused(capsys):
    """argparse kept the last list alone: --protocols paper ... --protocols adaptive ran adaptive only."""
    with pytest.raises(SystemExit) as e:
        _parse(EVAL + ["--protocols", "paper", "--protocols", "adaptive"])
    assert e.value.code == 2 and "--protocols given twice" in capsys.readouterr().err
    assert _parse(EVAL + ["--protocols", "paper", "adaptive"])["protocols"] == ["paper", "adaptive"]
