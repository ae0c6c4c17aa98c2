"""docs/cpu_engine.md's "Paired padded tiles (AMX)" section, recomputed from its records: the engine
table from results_amx_pairs_bench_qgemm.json (the median of each build's per-process best, and their
ratio), the op-level ratios against oneDNN and 16-bit / 8-bit latencies from the four
bench_kernels.py runs it names, and the whole-model runs (bench_models.py) it quotes."""
import statistics

from test_docs_records import CPU_DOC, _bench, _best_int8_rows

BEFORE = ("results_amx_6a311ae_quick_1thread.json", "results_amx_6a311ae_quick_1thread_rerun.json")
AFTER = ("results_amx_pairs_quick_1thread.json", "results_amx_pairs_quick_1thread_rerun.json")


def _section():
    text = CPU_DOC.read_text()
    start = text.index("## Paired padded tiles (AMX)")
    return text[start:text.index("\n## ", start + 1)]


def test_engine_table_is_the_medians_of_its_record():
    records = _bench("results_amx_pairs_bench_qgemm.json")["records"]
    ms = {(r["shape"], r["threads"], r["bits"], r["build"]): statistics.median(r["best_ms_per_process"])
          for r in records}
    assert {len(r["best_ms_per_process"]) for r in records} == {3}
    section = _section()
    for shape, label in (("b32 128->128 16x16", "128→128 16×16"), ("b32 64->64 32x32", "64→64 32×32")):
        for threads in (1, 2):
            cells = []
            for bits in (4, 8, 16):
                a, p = ms[(shape, threads, bits, "6a311ae")], ms[(shape, threads, bits, "pairs")]
                cells.append(f"{a:.3f} → {p:.3f} ({a / p:.2f}×)")
            row = f"| {label} | {threads} | " + " | ".join(cells) + " |"
            assert row in section, row


def test_op_level_ratios_are_the_four_runs():
    flat = " ".join(_section().split())
    before, after = [[_best_int8_rows(n) for n in runs] for runs in (BEFORE, AFTER)]

    def both(rows, shape, i=1):
        return f"{rows[0][('conv3x3', shape)][i]:.2f}× and {rows[1][('conv3x3', shape)][i]:.2f}×"

    for label, shape in (("128→128", "b32 128->128 16x16 s1"), ("64→64", "b32 64->64 32x32 s1"),
                         ("256→256 (im2col, unchanged)", "b32 256->256 8x8 s1")):
        want = f"{label} {both(before, shape)} before, {both(after, shape)} after"
        assert want in flat, want
    r16 = [both(rows, "b32 128->128 16x16 s1", 3).replace("×", "") for rows in (before, after)]
    assert f"128-channel conv went from {r16[0]} to {r16[1]}." in flat, r16


def _model_ms(records):
    return {(r["op"], r["shape"].split()[0], r["impl"], r["bits"]): r["median_ms"] for r in records}


def test_whole_model_runs_are_their_records():
    """The whole-model paragraph: the 8-bit integer model over fp32 in each of the four full runs, PreActResNet18
    b32's medians in them, and the three alternating rounds of that case alone at 8 and 16 bits."""
    flat = " ".join(_section().split())
    runs = {}
    for name in ("6a311ae", "6a311ae_rerun", "pairs", "pairs_rerun"):
        runs[name] = _model_ms(_bench(f"results_amx_models_{name}.json"))
    labels = {"preact_resnet18": "PreActResNet18", "resnet50": "ResNet-50"}
    for net, batch in (("preact_resnet18", "b1"), ("preact_resnet18", "b32"), ("resnet50", "b1"), ("resnet50", "b8")):
        r = [runs[n][(net, batch, "torch_fp32", 32)] / runs[n][(net, batch, "dwq_int", 8)] for n in runs]
        want = f"{labels[net]} {batch} {r[0]:.2f}× and {r[1]:.2f}× before, {r[2]:.2f}× and {r[3]:.2f}× after"
        assert want in flat, want
    p8 = [runs[n][("preact_resnet18", "b32", "dwq_int", 8)] for n in runs]
    want = f"took {p8[2]:.2f} and {p8[3]:.2f} ms after the change against {p8[0]:.2f} and {p8[1]:.2f} before"
    assert want in flat, want
    ab = _bench("results_amx_models_preact_b32_ab.json")["runs"]
    ms = {(run["build"], run["round"], bits): _model_ms(run["records"])[("preact_resnet18", "b32", "dwq_int", bits)]
          for run in ab for bits in (8, 16)}

    def listed(build, bits):
        return ", ".join(f"{ms[(build, i, bits)]:.2f}" for i in (1, 2, 3))

    want = (f"it took {listed('6a311ae', 8)} ms at 8 bits before and {listed('pairs', 8)} ms after (medians), "
            f"{listed('6a311ae', 16)} and {listed('pairs', 16)} ms at 16 bits")
    assert want in flat, want
    swapped = _bench("results_amx_models_pairs_first.json")["runs"]
    sw = {(run["build"], run["round"]): _model_ms(run["records"])[("preact_resnet18", "b32", "dwq_int", 8)]
          for run in swapped}
    assert [run["build"] for run in swapped] == ["pairs", "6a311ae", "pairs", "6a311ae"]  # (the pairs first)
    want = (f"gave PreActResNet18 b32 {sw[('pairs', 1)]:.2f} and {sw[('pairs', 2)]:.2f} ms after against "
            f"{sw[('6a311ae', 1)]:.2f} and {sw[('6a311ae', 2)]:.2f} before: in all four rounds of full runs the "
            "build that ran first was the faster one there")
    assert want in flat, want
    # (first, second) of each round: 6a311ae first in the four runs above, the pairs first here
    firsts = [(p8[0], p8[2]), (p8[1], p8[3]), (sw[("pairs", 1)], sw[("6a311ae", 1)]),
              (sw[("pairs", 2)], sw[("6a311ae", 2)])]
    assert all(first < second for first, second in firsts), firsts
