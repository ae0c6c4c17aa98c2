"""The README's sentences on the demo run on an Intel Xeon with AMX (docs/demo/report_amx.json): its wall
time (quoted twice), the paired differences it quotes (taken from the report's own findings, in the findings' order:
worst case over precisions under EOT-PGD and over every attack, clean RPI, RPI under EOT-PGD), and the
integer model's speed-up over the fake-quant one and its top-1 agreement."""
import re

from test_docs_records import ROOT, _demo

PRECISIONS = ("2", "3", "4", "6", "8")


def _quoted(report, prefix):
    finding = next(f for f in report["findings"] if f.startswith(prefix))
    pairs = re.findall(r"([+-]\d+\.\d) points (\[[^\]]+\])", finding)
    assert len(pairs) == 4, finding  # adaptive, worst case EOT-PGD, worst case of every attack, clean
    adaptive, worst, worst_all, clean = (f"{v} {ci}".replace("-", "−") for v, ci in pairs)
    return worst, worst_all, clean, adaptive


def test_readme_sentence_is_the_amx_demo_report():
    rep = _demo("report_amx.json")
    fp, fixed4 = _quoted(rep, "rpt minus fp,"), _quoted(rep, "rpt minus fixed4,")
    deploy = rep["models"]["rpt"]["deploy"]
    ms = deploy["latency_ms"]
    speed = [ms["fake_quant"][p] / ms["dwq_int"][p] for p in PRECISIONS]
    assert all(deploy["agreement"][p]["top1_agreement"] == 1.0 and deploy["agreement"][p]["n"] == 1000
               for p in PRECISIONS)
    want = (f"(2026-12-07, 6a311ae's code, {round(rep['seconds'])} s of demo), kept as "
            f"[docs/demo/report_amx.json](docs/demo/report_amx.json), the float kernels trained other weights "
            f"again, and the run agrees with the findings below. rpt over fp: worst case over precisions {fp[0]} "
            f"under EOT-PGD and {fp[1]} over every attack, clean RPI {fp[2]}, RPI under EOT-PGD {fp[3]}; over "
            f"fixed4: {fixed4[0]}, {fixed4[1]}, {fixed4[2]} and {fixed4[3]} in the same order. Its integer model "
            f"ran {min(speed):.2f}–{max(speed):.2f}× faster than the fake-quant one at batch "
            f"{deploy['latency_batch']}, top-1 identical on all 1,000 images at every precision.")
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert want in readme, want
    assert f"264 s on a Zen 4, {round(rep['seconds'])} s on an Intel Xeon with AMX," in readme
