"""benchmarks/bench_compile.py: what each timed training step runs (on a tiny small_cnn, torch.compile and
the PGD attack stubbed, a stand-in clock): the compiled warm-up first, then an untimed eager round, then per
rep every precision eager and compiled; each step attacks the model it times (PGD eps 0.1, step 0.025),
trains on the attack's output at that step's precision in train mode, and updates the weights; the
inductor setting that dwq.train's --compile makes comes before torch.compile. And main: the flags' defaults
reach bench, the printed ratio is eager over compiled, and --json holds every network's records."""
import json
import types

import torch

import dwq
from dwq.models import small_cnn
from test_benchmarks_cli import _script

PS = [2, 4]


def test_each_step_attacks_and_trains_the_timed_model_at_its_precision(monkeypatch):
    """Per step: the PGD attack (eps 0.1, step 0.025, --steps) runs on the impl being timed, the loss's
    forward takes the attack's output at the step's precision in train mode, and the SGD step changes
    the weights; the order is compiled warm-up, eager warm-up, then each rep in its drawn order
    (dwq.deploy.timing.round_orders with the default seed: compiled first, then eager first, here)."""
    bc = _script("bench_compile")
    monkeypatch.setitem(bc.CASES, "small_cnn",
                        (lambda ps: small_cnn(precisions=ps, width=4, switchable_bn=True), (1, 8, 8), 4, PS))
    order = []
    monkeypatch.setattr(bc, "inductor_exact_division", lambda: order.append("inductor_exact_division"))
    state = {}

    def fake_compile(m):
        order.append("compile")
        state["model"], state["before"] = m, [p.detach().clone() for p in m.parameters()]
        forwards = state["forwards"] = []
        m.register_forward_pre_hook(lambda mod, args: forwards.append(
            (state.get("impl", "eager"), dwq.get_precision(mod), mod.training, args[0] is state.get("xa"))))

        def compiled(x):
            state["impl"] = "compiled"
            try:
                return m(x)
            finally:
                state["impl"] = "eager"
        state["compiled"] = compiled
        return compiled

    attacks = []

    def fake_pgd(f, x, y, eps, alpha, steps):
        impl = "compiled" if f is state["compiled"] else "eager" if f is state["model"] else repr(f)
        attacks.append((impl, dwq.get_precision(state["model"]), eps, alpha, steps))
        state["xa"] = (x * 0.5).detach()
        return state["xa"]

    monkeypatch.setattr(bc.torch, "compile", fake_compile)
    monkeypatch.setattr(bc, "pgd", fake_pgd)
    clock = iter(range(1000))
    monkeypatch.setattr(bc, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    bc.bench("small_cnn", torch.device("cpu"), steps=2, reps=2)

    assert order == ["inductor_exact_division", "compile"], f"the inductor setting must precede compile: {order}"
    from dwq.deploy.timing import round_orders

    drawn = list(round_orders(["eager", "compiled"], 2))
    want = [("compiled", p) for p in PS] + [("eager", p) for p in PS]
    for rep in drawn:
        want += [(impl, p) for impl in rep for p in PS]
    assert [a[:2] for a in attacks] == want, f"attacked impls and precisions, in step order: {attacks}"
    assert {a[2:] for a in attacks} == {(0.1, 0.025, 2)}, f"PGD eps, step and steps: {set(a[2:] for a in attacks)}"
    # the loss forward of each step: after the attack's own forwards (none here: pgd is stubbed)
    assert [f[:2] for f in state["forwards"]] == want, f"loss forwards (impl, precision): {state['forwards']}"
    assert all(f[2] for f in state["forwards"]), "a training step ran with the model in eval mode"
    assert all(f[3] for f in state["forwards"]), "the loss was not taken on the attack's output"
    moved = [not torch.equal(a, b.detach()) for a, b in zip(state["before"], state["model"].parameters())]
    assert any(moved), "no optimizer step: the weights are those of the start"


def test_main_passes_the_defaults_prints_eager_over_compiled_and_saves_every_net(tmp_path, monkeypatch, capsys):
    """main: bench gets --steps 3 and --reps 3 by default, the printed ratio is eager / compiled, and
    --json holds the records of every network of --nets, in order."""
    bc = _script("bench_compile")
    rec = _script("records").record
    calls = []

    def fake_bench(net, device, steps, reps):
        calls.append((net, device.type, steps, reps))
        return [rec("train_step", net, None, "eager", 6.0, 5.0, device="cpu", precisions=["4"]),
                rec("train_step", net, None, "compiled", 2.0, 1.0, device="cpu", precisions=["4"]),
                rec("compile_warmup", net, None, "compiled", None, device="cpu", precisions=["4"], warmup_s=7.0)]

    monkeypatch.setattr(bc, "bench", fake_bench)
    out = tmp_path / "c.json"
    bc.main(["--nets", "small_cnn", "preact_resnet18", "--json", str(out)])
    assert calls == [("small_cnn", "cpu", 3, 3), ("preact_resnet18", "cpu", 3, 3)], calls
    printed = capsys.readouterr().out
    assert "(eager / compiled = 3.00)" in printed, printed
    saved = json.loads(out.read_text())
    assert [(r["shape"], r["op"], r["impl"]) for r in saved] == [
        (n, op, i) for n in ("small_cnn", "preact_resnet18")
        for op, i in (("train_step", "eager"), ("train_step", "compiled"), ("compile_warmup", "compiled"))], saved
