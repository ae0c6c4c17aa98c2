"""matrix_diagonal recovers each diagonal cell's correct count from its stored accuracy: 29 of 100 is
stored as 0.29, and 0.29 * 100 is 28.999999999999996 in floating point (truncating it gave 28)."""
from dwq import eval as E


def test_matrix_diagonal_rounds_the_stored_accuracy_back_to_its_count():
    tm = {"attack_precisions": ["4", "8"], "inference_precisions": ["4", "8"], "n": 100,
          "acc": [[0.29, 0.5], [0.5, 0.57]]}
    assert 0.29 * 100 < 29  # (else the test checks nothing)
    d = E.matrix_diagonal(tm)
    assert d == {"4": E.acc_ci((29, 100)), "8": E.acc_ci((57, 100))}
