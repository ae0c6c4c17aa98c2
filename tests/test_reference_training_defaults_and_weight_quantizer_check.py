"""dwq.train.reference: the reference defaults the first tests leave out (PGD's 7 iterations of its
train.py, seed 0), and the quantizer check on weight quantizers: a weight quantizer with an integer zero
point is refused by name even where every activation quantizer is the reference's."""
import pytest

from dwq.models import QuantPolicy, small_cnn
from dwq.quant import WeightQuantizer
from dwq.train.reference import REFERENCE_CIFAR_TRAIN, check_reference_quantizers


@pytest.mark.parametrize("key,value", [("attack_iters", 7), ("seed", 0)])
def test_reference_default(key, value):
    """CIFAR/train.py: --attack_iters 7, --seed 0."""
    assert REFERENCE_CIFAR_TRAIN[key] == value, f"{key} is {REFERENCE_CIFAR_TRAIN[key]!r}, the reference's is {value!r}"


def test_a_weight_quantizer_with_an_integer_zero_point_is_named():
    model = small_cnn(precisions=[4, 8], width=8, policy=QuantPolicy(zero_point="float", shared_act_range=True))
    check_reference_quantizers(model)
    name, wq = [(n, m) for n, m in model.named_modules() if isinstance(m, WeightQuantizer)][-1]
    wq.zero_point = "int"
    with pytest.raises(ValueError, match=rf"layer '{name}' has zero_point='int'$|layer '{name}' has zero_point='int':"):
        check_reference_quantizers(model)
