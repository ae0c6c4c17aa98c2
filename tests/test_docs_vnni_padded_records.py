"""docs/cpu_engine.md's "The padded copy on AVX-512 VNNI" section and the README's Intel Xeon (no AMX)
sentences, recomputed from their records: the engine table from results_vnni_padded_bench_qgemm.json
(the median of each path's per-process best, and their ratio), the op-level ratios against oneDNN and
16-bit / 8-bit latencies from the four bench_kernels.py runs, the PreActResNet18 b32 rounds and the
whole-model runs."""
import statistics

from test_docs_amx_pairs_records import _model_ms
from test_docs_records import CPU_DOC, ROOT, _bench, _best_int8_rows

RUNS = ("results_vnni_intel_b478e9c_quick_1thread.json", "results_vnni_intel_b478e9c_quick_1thread_rerun.json",
        "results_vnni_intel_padded_quick_1thread.json", "results_vnni_intel_padded_quick_1thread_rerun.json")
MODELS = ("results_vnni_intel_b478e9c_models_quick.json", "results_vnni_intel_padded_models_quick.json")


def _section():
    text = CPU_DOC.read_text()
    start = text.index("## The padded copy on AVX-512 VNNI")
    return text[start:text.index("\n## ", start + 1)]


def _flat(text):
    return " ".join(text.split())


def test_engine_table_is_the_medians_of_its_record():
    records = _bench("results_vnni_padded_bench_qgemm.json")["records"]
    assert {len(r["best_ms_per_process"]) for r in records} == {5}
    ms = {(r["shape"], r["threads"], r["bits"], r["build"]): statistics.median(r["best_ms_per_process"])
          for r in records}
    section = _section()
    cases = list(dict.fromkeys((r["shape"], r["threads"]) for r in records))
    assert len(cases) == 13
    for shape, threads in cases:
        cells = []
        for bits in (4, 8, 16):
            a, p = ms[(shape, threads, bits, "implicit" if bits <= 8 else "im2col")], ms[(shape, threads, bits, "padded")]
            cells.append(f"{a:.3f} → {p:.3f} ({a / p:.2f}×)")
        batch, rest = shape.split(" ", 1)
        channels, hw = rest.split(" ")
        label = f"{batch} {channels.replace('->', '→')} {hw.replace('x', '×')}"
        row = f"| {label} | {threads} | " + " | ".join(cells) + " |"
        assert row in section, row


def _before_after(shape, i, unit="×"):
    v = [_best_int8_rows(n)[("conv3x3", shape)][i] for n in RUNS]
    return f"{v[0]:.2f}{unit} and {v[1]:.2f}{unit} before, {v[2]:.2f}{unit} and {v[3]:.2f}{unit} after"


def test_op_level_ratios_are_the_four_runs():
    flat = _flat(_section())
    b32, b1 = "b32 64->64 32x32 s1", "b1 64->64 32x32 s1"
    want = f"at b32 64→64 {_before_after(b32, 1)}; at b1 64→64 {_before_after(b1, 1)}."
    assert want in flat, want
    want = (f"16-bit / 8-bit latency: {_before_after(b32, 3, '')} at batch 32, {_before_after(b1, 3, '')} at "
            "batch 1.")
    assert want in flat, want


def test_readme_intel_paragraph_is_the_four_runs():
    flat = _flat((ROOT / "README.md").read_text())
    rows = [_best_int8_rows(n)[("conv3x3", "b32 64->64 32x32 s1")] for n in RUNS]
    want = (f"b32 64→64 at {rows[0][1]:.2f}× and {rows[1][1]:.2f}×, reached {rows[2][1]:.2f}× and {rows[3][1]:.2f}× "
            "once that path read 64-channel convs from the zero-point-padded copy where it pays (weights of at most 7 "
            f"bits, and limbs), which also cut the conv's 16-bit / 8-bit latency from {rows[0][3]:.2f} and {rows[1][3]:.2f} to {rows[2][3]:.2f} and {rows[3][3]:.2f}")
    assert want in flat, want
    assert all(r[1] < 1 for r in rows[:2]) and all(r[1] > 1 for r in rows[2:]), rows  # (below oneDNN, then above)


def test_model_rounds_and_runs_are_their_records():
    flat = _flat(_section())
    ab = _bench("results_vnni_intel_models_padded_ab.json")["runs"]
    assert [r["build"] for r in ab] == ["padded", "b478e9c"] * 3  # (the new build first in each round)

    def listed(build, bits):
        return ", ".join(f"{_model_ms(r['records'])[('preact_resnet18', 'b32', 'dwq_int', bits)]:.2f}"
                         for r in ab if r["build"] == build)

    want = " and ".join(f"{listed('padded', b)} ms against {listed('b478e9c', b)} ms at {b} bits" for b in (4, 8, 16))
    assert want in flat, want
    before, after = (_model_ms(_bench(n)) for n in MODELS)
    cases = (("preact_resnet18", "b1"), ("preact_resnet18", "b32"), ("resnet50", "b1"), ("resnet50", "b8"))

    def speedups(m, bits):
        return ", ".join(f"{m[(net, b, 'torch_fp32', 32)] / m[(net, b, 'dwq_int', bits)]:.2f}×" for net, b in cases)

    want = (f"the 8-bit models ran {speedups(before, 8)} as fast as fp32 before and {speedups(after, 8)} after "
            "(PreActResNet18 b1, b32, ResNet-50 b1, b8)")
    assert want in flat, want
    p16 = after[("preact_resnet18", "b32", "torch_fp32", 32)] / after[("preact_resnet18", "b32", "dwq_int", 16)]
    r16 = after[("resnet50", "b8", "torch_fp32", 32)] / after[("resnet50", "b8", "dwq_int", 16)]
    want = f"16-bit PreActResNet18 at batch 32 {p16:.2f}× fp32 and ResNet-50 at batch 8 {r16:.2f}×"
    assert want in flat, want
    readme = _flat((ROOT / "README.md").read_text())
    assert f"and on the Intel Xeon without AMX ({p16:.2f}× and {r16:.2f}×)" in readme, (p16, r16)
    m8 = [after[(net, b, "torch_fp32", 32)] / after[(net, b, "dwq_int", 8)] for net, b in cases]
    want = (f"on AVX-512 VNNI (the Intel Xeon without AMX) PreActResNet18 {m8[0]:.2f}× at batch 1 and {m8[1]:.2f}× at "
            f"batch 32, ResNet-50 {m8[2]:.2f}× at batch 1 and {m8[3]:.2f}× at batch 8 (`{MODELS[1]}`)")
    assert want in readme, want
