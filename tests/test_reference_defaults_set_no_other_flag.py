"""dwq.train.reference.REFERENCE_CIFAR_TRAIN holds the reference's CIFAR defaults and nothing else: ``dwq train
--reference`` sets every flag in it that the user did not give, so an extra entry (a validation setting, the
test-set rule, the precision draw, a compile or workers setting) would silently change a reference run.
Values are pinned by test_reference_determinism_and_dist_single_process and
test_reference_training_defaults_and_weight_quantizer_check; this pins the set of flags."""
from dwq.train.reference import REFERENCE_CIFAR_TRAIN

REFERENCE_FLAGS = {"attack", "epsilon", "alpha", "attack_iters", "epochs", "batch_size", "lr", "momentum",
                   "weight_decay", "lr_schedule", "lr_milestones", "lr_gamma", "seed", "amp", "val_size"}


def test_the_reference_sets_exactly_its_trainings_flags():
    """The keys are the reference train.py's settings (docs/workflow.md's map), no more and no fewer."""
    keys = set(REFERENCE_CIFAR_TRAIN)
    assert keys == REFERENCE_FLAGS, (f"REFERENCE_CIFAR_TRAIN sets also {sorted(keys - REFERENCE_FLAGS)} and "
                                     f"lacks {sorted(REFERENCE_FLAGS - keys)}")
