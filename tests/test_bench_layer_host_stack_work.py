"""benchmarks/bench_layer_host.py's timed stacks, seen from a forward hook on every layer: one timed call
runs FORWARDS forwards of the stack; eval modes in eval mode without autograd, train mode in train mode
with a backward to every weight and the input's gradient asked for; the quantized stacks at 4 bits
with their ranges tracked first, under reuse_quantized_weights only for rpt_reuse."""
import pytest
import torch

import dwq
from dwq.nn import QConv2d
from dwq.quant.quantizers import ActQuantizer, WeightQuantizer
from test_benchmarks_cli import _script

CPU = torch.device("cpu")


@pytest.mark.parametrize("impl", ["float", "rpt", "rpt_reuse"])
@pytest.mark.parametrize("mode", ["eval", "eval_amp", "train"])
def test_a_timed_call_runs_the_stack_as_its_mode_and_impl_say(mode, impl):
    """What each of a timed call's layer forwards sees: the mode's training flag and autograd, the
    input's gradient in train mode, 4 bits for the quantized impls, the weights' reuse for rpt_reuse
    only, ranges tracked before the call; and FORWARDS forwards, each weight given a gradient in train."""
    blh = _script("bench_layer_host")
    run = blh.stack_fn(impl, mode, CPU, 2)
    seen, layers = [], {}

    def hook(mod, inp):
        if isinstance(mod, torch.nn.Conv2d):
            layers[id(mod)] = mod
            qs = [m for m in mod.modules() if isinstance(m, (WeightQuantizer, ActQuantizer))]
            seen.append(dict(
                training=mod.training,
                grad=torch.is_grad_enabled(), input_grad=inp[0].requires_grad,
                precision=dwq.get_precision(mod) if isinstance(mod, QConv2d) else None,
                reuse=any(q._reuse for q in qs if isinstance(q, WeightQuantizer)),
                tracked=all(bool(q.initialized.any()) for q in qs if isinstance(q, ActQuantizer))))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    train = mode == "train"
    assert len(layers) == 2 and len(seen) == 2 * blh.FORWARDS, f"{len(seen)} layer forwards in one timed call"
    assert all(s["training"] == train and s["grad"] == train for s in seen), f"{mode}: {seen[0]}"
    assert all(s["input_grad"] == train for s in seen[::2]), f"{mode}: the input's gradient"
    quantized = impl != "float"
    assert all(s["precision"] == (4 if quantized else None) for s in seen), seen[0]
    assert all(s["reuse"] == (impl == "rpt_reuse") for s in seen), f"{impl}: weight reuse {seen[0]['reuse']}"
    assert all(s["tracked"] for s in seen), "the activation ranges were not tracked before the timing"
    assert all((m.weight.grad is not None) == train for m in layers.values()), f"{mode}: the weights' gradients"
