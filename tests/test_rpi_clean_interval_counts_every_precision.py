"""RPI's clean accuracy is the mean over the set's P precisions of per-image correctness: its interval
counts up to P outcomes per image (mean_ci's cap n * P), directly and through the paper protocol."""
import pytest
import torch

from dwq import eval as E


def test_rpi_clean_interval_counts_every_precision():
    clean = torch.zeros(2, 300, dtype=torch.bool)
    clean[0] = True  # every image right at exactly one of the two precisions: scores of 1/2
    scores = torch.full((300,), 0.5)
    r = E.rpi_clean(clean)
    assert r == E.mean_ci(scores, 2)
    assert r["ci95"] != pytest.approx(E.mean_ci(scores, 1)["ci95"])  # (identical scores: the cap binds)
    assert E.paper_protocol(torch.ones(2, 2, 300, dtype=torch.bool), clean)["clean"] == r
