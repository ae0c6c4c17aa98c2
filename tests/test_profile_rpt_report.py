"""benchmarks/profile_rpt.py's accounting, on the CPU and on small inputs: which kind a kernel or op
name is, the least bytes dwq's quantizers move (by dtype), what one RPT training step does, and the
--md / --json report made from the profile's rows (ms from us, sorted by time, GB/s, run names)."""
import json

import pytest
import torch

from test_benchmarks_cli import _script


@pytest.mark.parametrize("name, kind", [
    ("void dwq::weight_fake_quantize_kernel<float>(float const*, float*, int)", "weight_fake_quantize"),
    ("dwq::weight_fake_quantize", "weight_fake_quantize"),
    ("dwq::fake_quantize", "fake_quantize"),
    ("dwq::act_qparams", "act_qparams"),
    ("aten::mkldnn_convolution", "conv"),
    ("sm90_xmma_fprop_implicit_gemm_f32f32_tf32f32_f32_nhwckrsc_nhwc", "conv"),
    ("aten::native_batch_norm", "batchnorm"),
    ("Memcpy DtoD (Device -> Device)", "memset/copy"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>", "elementwise"),
    ("triton_poi_fused_relu_0", "inductor"),
    ("aten::empty_strided", "other"),
])
def test_kind_of_names_each_kind(name, kind):
    assert _script("profile_rpt").kind_of(name) == kind


def test_profile_counts_quantizer_rows_and_least_bytes_by_dtype():
    """read x + write out at their dtypes: float32 4 bytes, bfloat16 2; weight_fake_quantize writes its
    ``dtype`` argument (bfloat16: 2 bytes) or the input's; act_qparams only reads."""
    pr = _script("profile_rpt")
    x, xb, w = torch.rand(1000), torch.rand(500).bfloat16(), torch.randn(6, 100)
    s, z = torch.tensor([0.01]), torch.tensor([128], dtype=torch.int32)

    def fn():
        torch.ops.dwq.fake_quantize(x, s, z, 8, None, False)
        torch.ops.dwq.fake_quantize(xb, s, z, 8, None, False)
        torch.ops.dwq.weight_fake_quantize(w, 4, torch.bfloat16)
        torch.ops.dwq.weight_fake_quantize(w, 4, None)
        state = (torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool))
        torch.ops.dwq.act_qparams(x[:300], *state, 0, 2, 8, 0.1, True)

    rows, qbytes = pr.profile(fn, torch.device("cpu"))
    assert qbytes == 1000 * (4 + 4) + 500 * (2 + 2) + 600 * (4 + 2) + 600 * (4 + 4) + 300 * 4
    assert {k: rows[k]["launches"] for k in ("fake_quantize", "weight_fake_quantize", "act_qparams")} == {
        "fake_quantize": 2, "weight_fake_quantize": 2, "act_qparams": 1}
    assert all(rows[k]["us"] > 0 for k in rows)


def test_rpt_model_runs_at_bits_and_the_step_updates_weights():
    pr = _script("profile_rpt")
    from dwq import get_precision, precision_set

    m, x, y = pr.make("rpt", "cpu", 2, 5)
    assert x.shape == (2, 3, 32, 32) and y.shape == (2,)
    assert list(precision_set(m)) == [None, 5] and get_precision(m) == 5
    before = [p.detach().clone() for p in m.parameters()]
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    pr.train_step(m, x, y, opt, 0)
    assert any(not torch.equal(b, p) for b, p in zip(before, m.parameters()))


def test_md_and_json_report_from_the_rows(tmp_path, monkeypatch, capsys):
    """Rows in us become ms (2 decimals), sorted by time, the total's launches summed; quantizer bytes
    over the quantizer kinds' time as MB and GB/s; no host syncs on the CPU; each run by its name."""
    pr = _script("profile_rpt")
    rows = {"conv": dict(us=3000.0, launches=5), "fake_quantize": dict(us=1000.0, launches=2),
            "other": dict(us=4500.0, launches=7)}
    monkeypatch.setattr(pr, "profile", lambda fn, device: (dict(rows), 2_000_000_000))
    md, js = tmp_path / "p.md", tmp_path / "p.json"
    pr.main(["--device", "cpu", "--batch", "3", "--steps", "0", "--bits", "4", "--md", str(md), "--json", str(js)])
    printed = capsys.readouterr().out
    text = md.read_text()
    assert text.strip() in printed
    assert "train batch 3 PGD-0, eval batch 6, RPT at 4 bits" in text
    out = json.loads(js.read_text())
    names = ["train_step/float", "eval_forward/float", "eval_forward_half/float",
             "train_step/rpt", "eval_forward/rpt", "eval_forward_half/rpt"]
    assert list(out["runs"]) == names and out["batch"] == 3 and out["bits"] == 4
    assert all(r["host_syncs"] is None and r["quantizer_bytes"] == 2_000_000_000 for r in out["runs"].values())
    for run in names:
        got = [line for line in text.splitlines() if line.startswith(f"| {run} |")]
        assert got == [f"| {run} | other | 4.50 | 7 |", f"| {run} | conv | 3.00 | 5 |",
                       f"| {run} | fake_quantize | 1.00 | 2 |",
                       f"| {run} | **total** | 8.50 | 14, quantizers 2000 MB at 2000 GB/s |"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "p.md"]
