"""dwq.models.reference_import on one-layer models: reference_precisions must name exactly the checkpoint's
switchable-BN branches (one more entry is another num_bits_list, whose branch i is not ours); each branch takes
the checkpoint branch of its precision and a missing BN counter becomes 1; a zero-width activation range at a
non-zero zero point is a trained range."""
import pytest
import torch

from dwq.models import load_reference_state_dict
from dwq.models.reference_import import reference_to_dwq_state_dict
from dwq.nn import QConv2d, SwitchableBatchNorm2d
from test_reference_import_ranges_and_duplicates import _conv_sd

ENTRIES = ("weight", "bias", "running_mean", "running_var")


def _sbn_sd(branches):
    """A reference switchable BN of 4 channels with ``branches`` branches, without counters."""
    g = torch.Generator().manual_seed(0)
    return {f"bn.{i}.{e}": torch.rand(4, generator=g) for i in range(branches) for e in ENTRIES}


@pytest.mark.parametrize("theirs", [[4, 6, 8, 10], [4, 6], [2, 4, 6, 8, 10]])
def test_reference_precisions_of_another_length_than_the_branches_are_refused(theirs):
    """A checkpoint with 3 branches and reference_precisions of 2, 4 or 5 entries: refused by name, whether
    or not the model's precisions are among them (a longer list mapped [4, 8] onto branches 0 and 2 silently)."""
    with pytest.raises(RuntimeError, match=rf"reference_precisions has {len(theirs)} entries, the checkpoint has 3 "
                                           r"switchable-BN branches per layer"):
        reference_to_dwq_state_dict(SwitchableBatchNorm2d(4, [4, 6]), _sbn_sd(3), reference_precisions=theirs)


def test_reference_precisions_of_the_branch_count_map_each_precision_to_its_branch():
    """Model [8, 4], checkpoint [4, 6, 8]: our branch 0 is theirs 2, ours 1 theirs 0; a missing counter is 1."""
    sd = _sbn_sd(3)
    sbn = load_reference_state_dict(SwitchableBatchNorm2d(4, [8, 4]), sd, reference_precisions=[4, 6, 8])
    for ours, theirs in ((0, 2), (1, 0)):
        for e in ENTRIES:
            assert torch.equal(getattr(sbn.bn[ours], e), sd[f"bn.{theirs}.{e}"]), f"bn.{ours}.{e} != bn.{theirs}.{e}"
    # the checkpoint has no counters: each branch counts as trained (1), not as never having seen a batch (0)
    counts = [int(b.num_batches_tracked) for b in sbn.bn]
    assert counts == [1, 1], f"num_batches_tracked of branches the checkpoint has no counter for: {counts}"


@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_a_zero_width_range_at_a_nonzero_zero_point_is_a_trained_range(zero_point):
    """A layer whose every input was -1 (range 0 at zero point -1): data was seen, so the range is imported as
    initialized, not refused and not left for calibration; only zero point and range both 0 mean never updated."""
    conv = QConv2d(3, 4, 3, precisions=[4, 8], zero_point=zero_point, shared_act_range=zero_point == "float")
    sd = reference_to_dwq_state_dict(conv, _conv_sd(-1.0, 0.0))
    assert sd["input_quant.initialized"].all(), "a range seen at zero point -1 with width 0 was taken as never updated"
    assert sd["input_quant.running_min"].eq(-1.0).all()
    upper = "running_range" if zero_point == "float" else "running_max"
    assert sd[f"input_quant.{upper}"].eq(0.0 if zero_point == "float" else -1.0).all()
