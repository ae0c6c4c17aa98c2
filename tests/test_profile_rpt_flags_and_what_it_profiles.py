"""benchmarks/profile_rpt.py's flags and what it would profile, on the CPU with the profiler and the model
work stubbed: the defaults (device by CUDA, batch 16 on the CPU, 4 bits, PGD-7, fp32 and half eval), the
whole --bits range, --json refused before the run, the eval modes in a fixed order and once each on a
batch twice the train batch, files written only where --json / --md say, the training step's attack
(ε 8/255, step 2/255, --steps), the eval forward's dtype and no-grad per mode, the CPU rows of the profile
(aten / dwq ops with time only, their counts) and a report without quantizer time."""
import json
import types

import pytest
import torch
from torch import nn

from test_benchmarks_cli import _script


@pytest.fixture
def stubbed(monkeypatch):
    """profile_rpt with its model work stubbed: make() builds a one-layer model; train_step, eval_forward
    and profile record their arguments (profile runs the function once, as the real one does)."""
    pr = _script("profile_rpt")
    seen = dict(make=[], train=[], eval=[])

    def make(impl, device, batch, bits):
        seen["make"].append((impl, str(device), batch, bits))
        return nn.Linear(2, 2), torch.zeros(batch, 3, 32, 32), torch.zeros(batch, dtype=torch.long)

    def eval_forward(m, x, mode, device):
        seen["eval"].append((tuple(x.shape), mode))
        return lambda: None

    def profile(fn, device):
        fn()
        return {"conv": dict(us=1000.0, launches=1)}, 0

    monkeypatch.setattr(pr, "make", make)
    monkeypatch.setattr(pr, "train_step", lambda m, x, y, opt, steps: seen["train"].append(steps))
    monkeypatch.setattr(pr, "eval_forward", eval_forward)
    monkeypatch.setattr(pr, "profile", profile)
    return pr, seen


def test_defaults_on_the_cpu(stubbed, tmp_path, capsys):
    """No flag but --json: batch 16 (eval 32), 4 bits, PGD-7, the fp32 and half eval forwards, in the record too."""
    pr, seen = stubbed
    js = tmp_path / "p.json"
    pr.main(["--device", "cpu", "--json", str(js)])
    assert seen["make"] == [("float", "cpu", 16, 4), ("rpt", "cpu", 16, 4)], seen["make"]
    assert seen["train"] == [7, 7], seen["train"]
    assert seen["eval"] == [((32, 3, 32, 32), "fp32"), ((32, 3, 32, 32), "half")] * 2, seen["eval"]
    out = json.loads(js.read_text())
    assert {k: out[k] for k in ("device", "batch", "bits", "pgd_steps", "torch")} == dict(
        device="cpu", batch=16, bits=4, pgd_steps=7, torch=torch.__version__), out
    assert "train batch 16 PGD-7, eval batch 32, RPT at 4 bits" in capsys.readouterr().out


@pytest.mark.parametrize("cuda, device", [(True, "cuda"), (False, "cpu")])
def test_default_device_is_cuda_where_there_is_one(cuda, device, monkeypatch):
    pr = _script("profile_rpt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    named = []

    def device_arg(parser, name):
        named.append(name)
        raise SystemExit(0)

    monkeypatch.setattr(pr, "device_arg", device_arg)
    with pytest.raises(SystemExit):
        pr.main([])
    assert named == [device], f"--device defaulted to {named}"


@pytest.mark.parametrize("bits, steps", [(2, 0), (16, 3)])
def test_every_bit_width_and_the_steps_reach_the_run(bits, steps, stubbed, tmp_path):
    """--bits takes 2..16 (MIN_BITS..MAX_BITS, both ends); --steps goes to the train step and the record."""
    pr, seen = stubbed
    js = tmp_path / "p.json"
    pr.main(["--device", "cpu", "--batch", "2", "--bits", str(bits), "--steps", str(steps), "--json", str(js)])
    assert [m[3] for m in seen["make"]] == [bits, bits] and seen["train"] == [steps, steps], seen
    assert json.loads(js.read_text())["pgd_steps"] == steps


@pytest.mark.parametrize("argv, named", [
    (["--bits", "17"], "--bits"),
    (["--json", "/nonexistent/p.json"], "--json"),
    (["--json", "/tmp"], "--json /tmp: is a folder"),
    (["--steps", "-1"], "--steps"),
])
def test_bad_flag_is_refused_before_the_run(argv, named, stubbed, capsys):
    pr, seen = stubbed
    with pytest.raises(SystemExit) as e:
        pr.main(["--device", "cpu"] + argv)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and "error:" in last and named in last, last
    assert seen["make"] == [], "the run started before the refusal"


def test_eval_modes_run_in_their_fixed_order_once_each(stubbed, tmp_path):
    pr, seen = stubbed
    js = tmp_path / "p.json"
    pr.main(["--device", "cpu", "--batch", "3", "--eval-modes", "half", "fp32", "half", "--json", str(js)])
    assert seen["eval"] == [((6, 3, 32, 32), "fp32"), ((6, 3, 32, 32), "half")] * 2, seen["eval"]
    assert list(json.loads(js.read_text())["runs"]) == [
        "train_step/float", "eval_forward/float", "eval_forward_half/float",
        "train_step/rpt", "eval_forward/rpt", "eval_forward_half/rpt"]


def test_writes_nothing_without_json_or_md(stubbed, tmp_path, monkeypatch, capsys):
    """The table is printed; no file appears in the current folder (or anywhere under it)."""
    pr, _ = stubbed
    monkeypatch.chdir(tmp_path)
    pr.main(["--device", "cpu", "--batch", "2"])
    assert "| train_step/rpt | **total** |" in capsys.readouterr().out
    assert list(tmp_path.rglob("*")) == [], sorted(str(p) for p in tmp_path.rglob("*"))


def test_md_alone_writes_only_the_md(stubbed, tmp_path, monkeypatch):
    pr, _ = stubbed
    monkeypatch.chdir(tmp_path)
    pr.main(["--device", "cpu", "--batch", "2", "--md", "out.md"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.md"]


def test_report_of_runs_without_quantizer_time_gives_no_bandwidth(monkeypatch, tmp_path):
    """A run with no quantizer kind (the float model's) has a plain total line, not a division by its zero time."""
    pr = _script("profile_rpt")
    monkeypatch.setattr(pr, "profile", lambda fn, device: ({"conv": dict(us=2000.0, launches=3)}, 0))
    md = tmp_path / "p.md"
    pr.main(["--device", "cpu", "--batch", "1", "--steps", "0", "--md", str(md)])
    totals = [line for line in md.read_text().splitlines() if "**total**" in line]
    assert totals and all(line.endswith("| **total** | 2.00 | 3 |") for line in totals), totals


def test_train_step_attacks_at_the_documented_radius_and_step(monkeypatch):
    """PGD at ε 8/255 with step 2/255 and the given step count, then one SGD update."""
    pr = _script("profile_rpt")
    calls = []
    monkeypatch.setattr(pr, "pgd", lambda m, x, y, eps, alpha, steps: calls.append((eps, alpha, steps)) or x)
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    before = m[1].weight.detach().clone()
    pr.train_step(m, torch.rand(2, 3, 2, 2), torch.tensor([0, 2]), torch.optim.SGD(m.parameters(), lr=0.1), 5)
    assert calls == [(8 / 255, 2 / 255, 5)], calls
    assert not torch.equal(before, m[1].weight)


class _Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.seen = []

    def forward(self, x):
        y = self.lin(x)
        self.seen.append((y.dtype, torch.is_grad_enabled()))
        return y


@pytest.mark.parametrize("mode, dtype", [("fp32", torch.float32), ("half", torch.bfloat16),
                                         ("compiled", torch.float32)])
def test_eval_forward_on_the_cpu_runs_its_dtype_without_grad(mode, dtype, monkeypatch):
    """half: autocast to bfloat16 (the CPU's half); fp32 and compiled (torch.compile stubbed): float32; all
    under no_grad."""
    pr = _script("profile_rpt")
    compiled = []
    monkeypatch.setattr(pr, "inductor_exact_division", lambda: None)
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)
    m = _Probe()
    fwd = pr.eval_forward(m, torch.rand(2, 4), mode, torch.device("cpu"))
    fwd()
    assert m.seen == [(dtype, False)], m.seen
    assert compiled == ([m] if mode == "compiled" else []), compiled


def test_profile_on_the_cpu_counts_aten_and_dwq_ops_with_time(monkeypatch):
    """The CPU rows: only aten:: / dwq:: ops with self time > 0, their time and their call counts summed by kind."""
    pr = _script("profile_rpt")

    def ev(key, us, count):
        return types.SimpleNamespace(key=key, self_cpu_time_total=us, count=count)

    averages = [ev("aten::relu", 5.0, 2), ev("aten::add_", 3.0, 4), ev("aten::empty", 0.0, 9),
                ev("dwq::fake_quantize", 7.0, 3), ev("ProfilerStep#1", 50.0, 1),
                ev("aten::mkldnn_convolution", 11.0, 1)]

    class FakeProfile:
        profiler = types.SimpleNamespace(kineto_results=types.SimpleNamespace(events=lambda: []))

        def __init__(self, activities, record_shapes):
            assert activities == [torch.profiler.ProfilerActivity.CPU] and record_shapes

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def key_averages(self):
            return averages

        def events(self):
            return []

    monkeypatch.setattr(torch.profiler, "profile", FakeProfile)
    calls = []
    rows, qbytes = pr.profile(lambda: calls.append(1), torch.device("cpu"))
    assert len(calls) == 3, "two warm-up calls and the profiled one"
    assert rows == {"elementwise": dict(us=8.0, launches=6), "fake_quantize": dict(us=7.0, launches=3),
                    "conv": dict(us=11.0, launches=1)} and qbytes == 0, rows
