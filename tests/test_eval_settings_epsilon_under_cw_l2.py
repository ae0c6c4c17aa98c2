"""--epsilon and the ε row of dwq eval's settings (dwq.cli.main._eval_settings) under --attack cw-l2: CW-L2 is
unbounded, so --epsilon is taken only with a protocol it bounds (adaptive, autoattack-rand or
autoattack-standard) and refused otherwise, and the row says that ε bounds only those protocols; an L-inf
attack's ε row carries no such note, whichever of the checkpoint or the command line it came from."""
import pytest
from test_eval_settings_rows_and_refusals import _settings

from dwq.cli.common import CLIError

NOTE = "; bounds the adaptive and AutoAttack protocols, not cw-l2 (unbounded L2)"


@pytest.mark.parametrize("argv, row", [
    (["--attack", "cw-l2", "--protocols", "paper"], ("0.1", "checkpoint: the training ε" + NOTE)),
    (["--attack", "cw-l2", "--protocols", "adaptive", "--epsilon", "0.2"], ("0.2", "given" + NOTE)),
    (["--attack", "cw-linf", "--protocols", "paper"], ("0.1", "checkpoint: the training ε")),
    (["--attack", "pgd", "--protocols", "paper", "--epsilon", "0.2"], ("0.2", "given")),
])
def test_the_epsilon_row_says_it_does_not_bound_cw_l2(argv, row):
    """The ε row's value and source, with the unbounded-L2 note for --attack cw-l2 alone."""
    _, rows = _settings(argv)
    assert rows["epsilon"] == row, f"{argv}: ε row {rows['epsilon']}, expected {row}"


@pytest.mark.parametrize("protocol", ["adaptive", "autoattack-rand", "autoattack-standard"])
def test_cw_l2_takes_epsilon_with_each_protocol_it_bounds(protocol):
    """--attack cw-l2 --epsilon is taken beside each of the three protocols that ε bounds, alone."""
    a, rows = _settings(["--attack", "cw-l2", "--protocols", protocol, "--epsilon", "0.2"])
    assert a.epsilon == 0.2 and rows["epsilon"] == ("0.2", "given" + NOTE), (protocol, rows["epsilon"])


@pytest.mark.parametrize("protocols", [["paper"], ["transfer"], ["paper", "paper-sampled", "transfer"]])
def test_cw_l2_refuses_epsilon_without_a_protocol_it_bounds(protocols):
    """--attack cw-l2 --epsilon with only the paper, paper-sampled and transfer protocols plays no part: refused."""
    with pytest.raises(CLIError, match="^--epsilon is for an L-inf attack or the adaptive and AutoAttack protocols; "
                                       "--attack cw-l2 with protocols "):
        _settings(["--attack", "cw-l2", "--protocols", *protocols, "--epsilon", "0.2"])
