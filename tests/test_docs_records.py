"""Figures quoted in user-facing help texts equal the benchmark records they cite (a rerun that
replaces the records must update the text, or this fails)."""
import json
import math
import pathlib
import re

import pytest

from dwq.cli.main import build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
CPU_DOC = ROOT / "docs" / "cpu_engine.md"  # the CPU engine's tables, moved out of the README


def _bench(name):
    """The records of benchmarks/<name>."""
    return json.loads((ROOT / "benchmarks" / name).read_text())


def _demo(name):
    """A kept demo report, docs/demo/<name>."""
    return json.loads((ROOT / "docs" / "demo" / name).read_text())


def _subcommand_help(name):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return " ".join(sub.choices[name].format_help().split())


def test_train_compile_help_quotes_results_compile_cpu():
    records = _bench("results_compile_cpu.json")
    step = {(r["shape"].split()[0], r["impl"]): r["median_ms"] for r in records if r["op"] == "train_step"}
    expected = [f"{step[(net, 'compiled')] / step[(net, 'eager')]:.2f}x" for net in ("small_cnn", "preact_resnet18")]
    text = _subcommand_help("train")
    m = re.search(r"a step took (\S+x) the eager time for the small CNN and (\S+x) for PreActResNet18", text)
    assert m, f"dwq train --help no longer quotes the compile benchmark: {text[:200]}..."
    assert [m.group(1), m.group(2)] == expected, \
        f"--compile help says {m.groups()}, benchmarks/results_compile_cpu.json gives {expected}"


def _wide_over_fp32_time(name):
    """(min, max) over the shapes of benchmarks/<name> of dwq's 12- and 16-bit median latency over
    torch fp32's, each ratio within that run."""
    records = _bench(name)
    ms = {(r["op"], r["shape"], r["impl"], r["bits"]): r["median_ms"] for r in records}
    ratios = [ms[(op, shape, "dwq", b)] / ms[(op, shape, "torch_fp32", 32)]
              for op, shape, impl, bits in ms if impl == "torch_fp32" for b in (12, 16)]
    return f"{min(ratios):.2f}", f"{max(ratios):.2f}"


def test_avx2_wide_widths_quote_their_fp32_time_ratio():
    """The READMEs' "X-Y× the fp32 time" of AVX2's 12/16-bit widths is their latency over fp32's in
    results_avx2_wide_quick_1thread.json, then results_avx2_quick_1thread.json (a speed-up quoted as
    a time ratio once read "0.48-0.94x the fp32 time" for widths slower than fp32)."""
    expected = [_wide_over_fp32_time("results_avx2_wide_quick_1thread.json"),
                _wide_over_fp32_time("results_avx2_quick_1thread.json")]
    for doc in ("docs/cpu_engine.md", "benchmarks/README.md"):
        text = " ".join((ROOT / doc).read_text().split())
        m = re.search(r"and (\S+?)[-–](\S+?)[x×] the fp32 time\S* [^(]*\((\S+?)[-–](\S+?)[x×]", text)
        assert m, f"{doc} no longer quotes the AVX2 12/16-bit time against fp32"
        assert [m.group(1, 2), m.group(3, 4)] == expected, f"{doc} says {m.groups()}, the records give {expected}"


def _h200_table(heading):
    """Rows (cells) of the first table after ``heading`` in docs/gpu_h200.md."""
    text = (ROOT / "docs" / "gpu_h200.md").read_text()
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


@pytest.mark.parametrize("heading, record", [("## Integer kernels (", "results_cuda_h200_kernels_014eb05.json"),
                                             ("## Integer kernels, call 6", "results_cuda_h200_kernels_call6.json"),
                                             ("## Integer kernels, call 7", "results_cuda_h200_kernels_call7.json")])
def test_h200_kernel_table_is_the_records(heading, record):
    """Every figure of docs/gpu_h200.md's kernel tables, re-derived from each run's own records."""
    recs = _bench(record)
    ms = {(r["op"], r["shape"], r["impl"], r["bits"]): r["median_ms"] for r in recs if "median_ms" in r}
    keys = {"GEMM 4096³": ("gemm", "4096x4096x4096"), "GEMM 8192³": ("gemm", "8192x8192x8192"),
            "GEMM 32×4096×4096": ("gemm", "32x4096x4096"), "GEMM 4096×512×1152": ("gemm", "4096x512x1152"),
            "conv 3×3 b256 64→64 32×32": ("conv3x3", "b256 64->64 32x32 s1"),
            "conv 3×3 b256 256→256 8×8": ("conv3x3", "b256 256->256 8x8 s1"),
            "conv 3×3 b256 128→128 28×28": ("conv3x3", "b256 128->128 28x28 s1"),
            "conv 1×1 b256 256→64 56×56": ("conv1x1", "b256 256->64 56x56 s1")}
    rows = _h200_table(heading)
    assert [r[0] for r in rows] == list(keys)

    def best(op, shape, bits):
        runs = {impl: t for (o, s, impl, b), t in ms.items() if (o, s, b) == (op, shape, bits) and impl.startswith("dwq")}
        impl = min(runs, key=runs.get)
        return runs[impl], impl.removeprefix("dwq_").replace("dwq", "mma")

    for label, fp16, int_mm, b8, x_fp16, x_int, b16, r16 in rows:
        op, shape = keys[label]
        base = ms[(op, shape, "torch_fp16" if op == "gemm" else "cudnn_fp16", 16)]
        assert float(fp16) == round(base, 4), label
        t8, e8 = best(op, shape, 8)
        t16, e16 = best(op, shape, 16)
        assert b8 == f"{t8:.4f} ({e8})" and b16 == f"{t16:.4f} ({e16})", label
        assert x_fp16 == f"{base / t8:.2f}" and r16 == f"{t16 / t8:.2f}", label
        if op == "gemm":
            i8 = ms[(op, shape, "torch_int_mm", 8)]
            assert float(int_mm) == round(i8, 4) and x_int == f"{i8 / t8:.2f}", label
        else:
            assert int_mm == x_int == "", label


def test_h200_train_table_is_the_records():
    recs = _bench("results_cuda_h200_train_5701ab8.json")
    ms = {(r["op"], r["mode"], r["impl"]): r["median_ms"] for r in recs}
    rows = _h200_table("## Training and eval")
    for label, op, mode in [("train step fp32, eager", "train_step", "fp32"),
                            ("train step AMP fp16, eager", "train_step", "amp"),
                            ("train step fp32, replayed from CUDA graphs (one per precision)", "train_step",
                             "fp32_graphs")]:
        row = next(r for r in rows if r[0] == label)
        f, q = ms[(op, mode, "float")], ms[(op, mode, "rpt")]
        assert row[1].startswith(f"{f:.1f} ms") and row[2].startswith(f"{q:.1f} ms"), label
        assert row[3].startswith(f"{q / f:.2f}"), label
    for label, mode in [("eval forward fp32", "fp32"), ("eval forward fp16 autocast", "fp16")]:
        row = next(r for r in rows if r[0] == label)
        f, q, qr = (ms[("eval_forward", mode, i)] for i in ("float", "rpt", "rpt_reuse"))
        assert row[1] == f"{f:.2f} ms" and row[2] == f"{q:.2f} ms (weights reused: {qr:.2f})", label
        assert row[3] == f"{q / f:.2f} ({qr / f:.2f})", label


def _span(values) -> str:
    lo, hi = round(min(values)), round(max(values))
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def test_layer_host_sentence_is_the_records():
    """benchmarks/README.md's before/after of the host time a quantized layer adds, from its records."""
    recs = _bench("results_cpu_layer_host.json")
    old, new = dict.fromkeys(r["commit"] for r in recs)  # (in the file's order: before, then after)

    def span(commit, mode, impl):
        return _span([r["us_per_layer_added"] for r in recs if (r["commit"], r["mode"], r["impl"]) == (commit, mode, impl)])

    text = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())
    want = (f"went from {span(old, 'eval', 'rpt')} to {span(new, 'eval', 'rpt')} µs in eval "
            f"({span(old, 'eval', 'rpt_reuse')} → {span(new, 'eval', 'rpt_reuse')} µs with the weights reused) "
            f"and from {span(old, 'train', 'rpt')} to {span(new, 'train', 'rpt')} µs in training "
            f"({span(old, 'train', 'rpt_reuse')} → {span(new, 'train', 'rpt_reuse')} µs reused)")
    assert want in text, want
    engine_doc = " ".join((ROOT / "docs" / "cuda_engine.md").read_text().split())
    assert (f"went from {span(old, 'eval', 'rpt')} to {span(new, 'eval', 'rpt')} µs of added time per layer in "
            f"eval, {span(old, 'train', 'rpt')} to {span(new, 'train', 'rpt')} µs in training") in engine_doc


def _layer_host_change(name: str):
    """change(mode, impl, tenths=False): "before → after" of a two-commit layer-host records file, the
    added µs per layer as spans over its runs (whole µs, or tenths)."""
    recs = _bench(name)
    old, new = dict.fromkeys(r["commit"] for r in recs)  # (in the file's order: before, then after)

    def span(commit, mode, impl, tenths):
        values = [r["us_per_layer_added"] for r in recs if (r["commit"], r["mode"], r["impl"]) == (commit, mode, impl)]
        assert values, (name, commit, mode, impl)
        if not tenths:
            return _span(values)
        lo, hi = f"{min(values):.1f}", f"{max(values):.1f}"
        return lo if lo == hi else f"{lo}–{hi}"

    def change(mode, impl, tenths=False):
        return f"{span(old, mode, impl, tenths)} → {span(new, mode, impl, tenths)}"

    return change


def test_layer_host_eval_fast_path_sentences_are_the_records():
    """The later before/after (fdada36 against the eval fast path), in benchmarks/README.md and docs/cuda_engine.md, from its own records."""
    change = _layer_host_change("results_cpu_layer_host_a83531f.json")
    bench = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())
    want = (f"eval {change('eval', 'rpt', True)} µs added per layer, reused {change('eval', 'rpt_reuse', True)}; "
            f"training {change('train', 'rpt')}, reused {change('train', 'rpt_reuse')}.")
    assert want in bench, want
    engine_doc = " ".join((ROOT / "docs" / "cuda_engine.md").read_text().split())
    want = (f"added time per layer in eval {change('eval', 'rpt', True)} µs, with the weights reused "
            f"{change('eval', 'rpt_reuse', True)} µs; in training {change('train', 'rpt')} µs "
            f"(reused {change('train', 'rpt_reuse')})")
    assert want in engine_doc, want


@pytest.mark.parametrize("records", [
    "results_cpu_layer_host_fad7c98.json",  # c6071fa against fad7c98: weights in autocast's dtype, CPU checks
    "results_cpu_layer_host_be80951.json",  # 2e5cae1 against be80951: quantizers called without Module.__call__
])
def test_layer_host_before_after_sentences_are_the_records(records):
    """A two-commit before/after of the layer-host benchmark, in docs/cuda_engine.md and
    benchmarks/README.md, from its own records."""
    change = _layer_host_change(records)
    want = (f"training {change('train', 'rpt')} µs, reused {change('train', 'rpt_reuse')}; eval "
            f"{change('eval', 'rpt', True)}, reused {change('eval', 'rpt_reuse', True)}; eval under bfloat16 "
            f"autocast {change('eval_amp', 'rpt', True)}, reused {change('eval_amp', 'rpt_reuse', True)}")
    for doc in ("docs/cuda_engine.md", "benchmarks/README.md"):
        assert want in " ".join((ROOT / doc).read_text().split()), (doc, want)


def test_compiled_eval_sentence_is_the_records():
    recs = _bench("results_train_cpu_eval_compiled.json")
    ms = {impl: [r["median_ms"] for r in recs if r["impl"] == impl] for impl in ("float", "rpt")}
    ratios = [q / f for f, q in zip(ms["float"], ms["rpt"])]

    def span(v, digits):
        lo, hi = f"{min(v):.{digits}f}", f"{max(v):.{digits}f}"
        return lo if lo == hi else f"{lo}–{hi}"

    text = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())
    want = (f"float {span(ms['float'], 1)} ms, RPT {span(ms['rpt'], 1)} ms, ratio {span(ratios, 2)}")
    assert want in text, want
    assert all(r["mode"] == "fp32_compiled" and r["commit"] in text for r in recs)


def test_h200_probe_table_is_the_records():
    """docs/gpu_h200.md's table of the wgmma_tma probe (calls 5 and 6), cell by cell from its records."""
    ms = {}
    for call in (5, 6):
        for r in _bench(f"results_cuda_h200_wgmma_probe_call{call}.json"):
            if r["impl"] == "2xn128":
                ms[(call, r["shape"], r["probe"])] = r["median_ms"]
    probe_of = {"whole (call 6: the int32 epilogue)": "whole", "whole, the old epilogue": "whole, int64 epi",
                "no epilogue": "no-epilogue", "MMAs only (no loads, no epilogue)": "mma-only",
                "loads only": "loads-only", "epilogue only (call 6: the int32 one)": "epilogue-only",
                "the old epilogue only": "int64 epi only"}
    rows = _h200_table("**The probe.**")
    assert [r[0] for r in rows] == list(probe_of)
    columns = [(5, "4096x4096x4096"), (5, "8192x8192x8192"), (6, "4096x4096x4096"), (6, "8192x8192x8192")]
    for label, *cells in rows:
        for (call, shape), cell in zip(columns, cells):
            want = ms.get((call, shape, probe_of[label]))
            assert cell == ("" if want is None else f"{want:.4f}"), (label, call, shape)



def _best_int8_rows(name):
    """{(op, shape): (dwq's best <= 8-bit median ms, the faster int8 baseline's speed-up, fp32's, 16-bit
    over 8-bit latency)} of a bench_kernels.py records file."""
    recs = _bench(name)
    out = {}
    for key in dict.fromkeys((r["op"], r["shape"]) for r in recs):
        rs = [r for r in recs if (r["op"], r["shape"]) == key]
        ms = {(r["impl"], r["bits"]): r["median_ms"] for r in rs}
        best = min(v for (impl, bits), v in ms.items() if impl == "dwq" and bits <= 8)
        int8 = min(v for (impl, _), v in ms.items() if impl in ("torch_int_mm", "torch_qlinear", "torch_qconv"))
        out[key] = (best, int8 / best, ms[("torch_fp32", 32)] / best, ms[("dwq", 16)] / ms[("dwq", 8)])
    return out


def test_amx_table_and_models_sentence_are_the_records():
    """docs/cpu_engine.md's AMX table (VNNI against AMX on the same machine, back to back) and its whole-model
    sentence, from their records."""
    vnni = _best_int8_rows("results_amx_machine_vnni_quick_1thread.json")
    amx = _best_int8_rows("results_amx_quick_1thread.json")
    readme = CPU_DOC.read_text()
    for (op, shape), (ms, int8, fp32, r16) in amx.items():
        v = vnni[(op, shape)]
        sh = shape.replace("x", "×").replace("->", "→").replace(" s1", "")
        row = (f"| {op} | {sh} | {v[0]:.3f} | {v[1]:.2f}× | {ms:.3f} | {int8:.2f}× | {fp32:.2f}× | "
               f"{v[3]:.2f} → {r16:.2f} |")
        assert row in readme, row

    def models(name):
        recs = _bench(name)
        ms = {(r["op"], r["shape"], r["impl"], r["bits"]): r["median_ms"] for r in recs}
        return {(op, shape): (v, ms[(op, shape, "torch_fp32", 32)] / v)
                for (op, shape, impl, bits), v in ms.items() if impl == "dwq_int" and bits == 8}

    mv, ma = models("results_amx_machine_vnni_models_quick.json"), models("results_amx_models_quick.json")
    text = " ".join(readme.split())
    for key, (ms, fp32) in ma.items():
        want = f"{key[0]} {key[1].split()[0]} {mv[key][0]:.2f} → {ms:.2f} ms ({mv[key][1]:.2f}× → {fp32:.2f}× fp32)"
        assert want in text, want
    # the AMX model at cda3350 (im2col), in the order of the sentence above
    old = models("results_amx_cda3350_models_quick.json")
    ratios = [f"{old[key][1]:.2f}×" for key in ma]
    assert f"At cda3350 the AMX model ran at {', '.join(ratios[:-1])} and {ratios[-1]} fp32" in text


def test_amx_in_place_conv_before_and_after_are_the_records():
    """docs/cpu_engine.md's before/after ratios of the b32 convs (AMX with im2col at cda3350 against the
    in-place conv) and the GEMM spread it quotes, from the two AMX records."""
    old = _best_int8_rows("results_amx_cda3350_quick_1thread.json")
    new = _best_int8_rows("results_amx_quick_1thread.json")
    text = " ".join(CPU_DOC.read_text().split())
    convs = [k for k in new if k[0] == "conv3x3" and k[1].startswith("b32")]
    assert len(convs) == 4
    pairs = ", ".join(f"{k[1].split()[1].replace('->', '→')} {old[k][1]:.2f}× → {new[k][1]:.2f}×" for k in convs)
    assert f"the b32 convs ran against torch's conv at {pairs}:" in text, pairs
    g = ("gemm", "1024x1024x1024")
    assert f"(1024³: {old[g][1]:.2f}× at cda3350, {new[g][1]:.2f}× here)" in text


def test_amx_warm_table_is_the_records():
    """docs/cpu_engine.md's "Timed warm" table: results_amx_warm_quick_1thread.json's medians and ratios."""
    recs = _bench("results_amx_warm_quick_1thread.json")
    best = _best_int8_rows("results_amx_warm_quick_1thread.json")
    readme = CPU_DOC.read_text()
    for (op, shape), (best_ms, int8_best, fp32, r16) in best.items():
        ms = {(r["impl"], r["bits"]): r["median_ms"] for r in recs if (r["op"], r["shape"]) == (op, shape)}
        int8 = min(v for (impl, _), v in ms.items() if impl in ("torch_int_mm", "torch_qlinear", "torch_qconv"))
        sh = shape.replace("x", "×").replace("->", "→").replace(" s1", "")
        row = (f"| {op} | {sh} | {int8:.3f} | {ms[('dwq', 8)]:.3f} | {int8 / ms[('dwq', 8)]:.2f}× | {int8_best:.2f}× | "
               f"{fp32:.2f}× | {r16:.2f} |")
        assert row in readme, row
    # the spreads the paragraph after it quotes, of both runs
    text = " ".join(readme.split())
    for name, quoted in (("results_amx_warm_quick_1thread.json", ("0.76–0.84×", "1.41–2.38×", "1.10–2.03×")),
                         ("results_amx_warm_quick_1thread_rerun.json", ("0.72–0.75×", "1.41–2.22×", "1.12–2.07×"))):
        r = {k: v[1] for k, v in _best_int8_rows(name).items()}
        groups = ([v for k, v in r.items() if k[1].startswith("b32") and "512->512" not in k[1]],
                  [v for k, v in r.items() if k[0] == "conv3x3" and (k[1].startswith("b1 ") or "512->512" in k[1])],
                  [v for k, v in r.items() if k[0] == "gemm"])
        for g, q in zip(groups, quoted):
            assert f"{min(g):.2f}–{max(g):.2f}×" == q and q in text, (name, q)


def test_random_order_train_step_sentence_is_the_records():
    """The README's RPT-step ratios at 0ea124b (random order each repetition) from their records."""
    recs = _bench("results_train_cpu_step_0ea124b.json")
    ms = {(r["mode"], r["impl"]): r["median_ms"] for r in recs}
    fp32, amp = ms[("fp32", "rpt")] / ms[("fp32", "float")], ms[("amp", "rpt")] / ms[("amp", "float")]
    text = " ".join((ROOT / "README.md").read_text().split())
    assert (f"{fp32:.2f}×, and {amp:.2f}× under bfloat16 autocast, at 0ea124b with a random order each repetition"
            in text), (fp32, amp)


def test_affine_table_is_the_records():
    """docs/cpu_engine.md's affine_quantize_act table and benchmarks/README's ratios are results_cpu_affine.json's."""
    records = _bench("results_cpu_affine.json")
    ms = {(r["op"], r["shape"], r["impl"]): r["median_ms"] for r in records}
    rows = {"b32 64×32×32 channels-last": ("affine_quantize", "b32 64x32x32 channels_last"),
            "b32 512×4×4 channels-last": ("affine_quantize", "b32 512x4x4 channels_last"),
            "PreActResNet18 integer model, 8 bits, b32": ("preact_resnet18", "b32 3x32x32"),
            "PreActResNet18 integer model, 8 bits, b1": ("preact_resnet18", "b1 3x32x32")}
    text = CPU_DOC.read_text()
    for label, (op, shape) in rows.items():
        c, f = ms[(op, shape, "composed")], ms[(op, shape, "fused")]
        want = f"| {label} | {c:.3f} | {f:.3f} | {c / f:.2f}× |"
        assert want in text, f"docs/cpu_engine.md's affine table lacks {want!r} (benchmarks/results_cpu_affine.json)"
    ratio = {k: ms[(*k, "composed")] / ms[(*k, "fused")] for k in {(o, s) for o, s, _ in ms}}
    cl = [v for (o, s), v in ratio.items() if s.endswith("channels_last")]
    bench = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())
    want = (f"{min(cl):.2f}–{max(cl):.2f}× on the channels-last shapes, "
            f"{ratio[('affine_quantize', 'b32 64x32x32 nchw')]:.2f}× NCHW; the model "
            f"{ratio[('preact_resnet18', 'b32 3x32x32')]:.2f}× at b32, {ratio[('preact_resnet18', 'b1 3x32x32')]:.2f}× at b1")
    assert want in bench, f"benchmarks/README.md should say {want!r}"


def test_host_glue_table_is_the_records():
    """docs/cpu_engine.md's before/after table of the integer models' host glue is the three bench_models runs."""
    runs = ["results_amx_models_host_aa6f2fa.json", "results_amx_models_host.json", "results_amx_models_host_rerun.json"]
    cells = {}
    for name in runs:
        ms = {(r["op"], r["shape"], r["impl"], r["bits"]): r["median_ms"]
              for r in _bench(name)}
        for net, shape in (("preact_resnet18", "b1 3x32x32"), ("resnet50", "b1 3x224x224"),
                           ("preact_resnet18", "b32 3x32x32")):
            d, fp = ms[(net, shape, "dwq_int", 8)], ms[(net, shape, "torch_fp32", 32)]
            cells.setdefault(f"{net} {shape.split()[0]}", []).append(f"{d:.2f} ({fp / d:.2f}×)")
    text = CPU_DOC.read_text()
    for label, row in cells.items():
        want = f"| {label} | " + " | ".join(row) + " |"
        assert want in text, f"docs/cpu_engine.md's host-glue table lacks {want!r}"


def test_malloc_table_is_the_records():
    """docs/cpu_engine.md's keep_freed_memory table is results_amx_models_malloc_{default,keep}.json's 8-bit medians
    (fp32: the records keep the faster of the two layouts)."""
    ms = {}
    for mode in ("default", "keep"):
        for r in _bench(f"results_amx_models_malloc_{mode}.json"):
            assert r["malloc"] == mode
            ms[(mode, r["op"], r["shape"], r["impl"], r["bits"])] = r["median_ms"]
    text = CPU_DOC.read_text()
    for net, shape in (("resnet50", "b8 3x224x224"), ("resnet50", "b1 3x224x224"),
                       ("preact_resnet18", "b32 3x32x32"), ("preact_resnet18", "b1 3x32x32")):
        def cell(impl, bits):
            v = [min(ms.get((m, net, shape, i, bits), math.inf) for i in impl) for m in ("default", "keep")]
            return f"{v[0]:.2f} → {v[1]:.2f}"
        want = (f"| {net} {shape.split()[0]} | {cell(['dwq_int'], 8)} | {cell(['torch_fp32', 'torch_fp32_cl'], 32)} | "
                f"{cell(['fake_quant'], 8)} |")
        assert want in text, f"docs/cpu_engine.md's malloc table lacks {want!r}"
    d = {m: ms[(m, "resnet50", "b8 3x224x224", "dwq_int", 8)] for m in ("default", "keep")}
    fp = {m: min(ms.get((m, "resnet50", "b8 3x224x224", i, 32), math.inf) for i in ("torch_fp32", "torch_fp32_cl"))
          for m in ("default", "keep")}
    want = (f"runs {d['default'] / d['keep']:.2f}× faster with it ({fp['default'] / d['default']:.2f}× → "
            f"{fp['keep'] / d['keep']:.2f}× fp32)")
    assert want in " ".join(text.split()), f"docs/cpu_engine.md should say {want!r}"


def test_conv_residual_table_is_the_records():
    """docs/cpu_engine.md's qconv2d_residual table: results_cpu_residual_conv.json's medians and ratios."""
    ms = {(r["op"], r["shape"], r["impl"]): r["median_ms"]
          for r in _bench("results_cpu_residual_conv.json")}
    text = CPU_DOC.read_text()
    for cin, cout, side in ((64, 256, 56), (128, 512, 28), (256, 1024, 14), (512, 2048, 7)):
        c, f = (ms[("qconv2d_residual", f"b8 {cin}->{cout}x{side}x{side} 1x1 channels_last", i)]
                for i in ("composed", "fused"))
        row = f"| qconv2d_residual, b8 1×1 {cin}→{cout} at {side}×{side} | {c:.3f} | | {f:.3f} | {c / f:.2f}× |"
        assert row in text, row
    for b in (8, 1):
        c, a, f = (ms[("resnet50", f"b{b} 3x224x224", i)] for i in ("composed", "fused_add", "fused"))
        row = f"| ResNet-50 integer model, 8 bits, b{b} | {c:.3f} | {a:.3f} | {f:.3f} | {a / f:.2f}× |"
        assert row in text, row
    p = {b: [ms[("preact_resnet18", f"b{b} 3x32x32", i)] for i in ("fused_add", "fused")] for b in (128, 32)}
    assert (f"{p[128][0]:.3f} → {p[128][1]:.3f} ms at b128, {p[32][0]:.3f} → {p[32][1]:.3f} at b32"
            in " ".join(text.split()))


def test_residual_table_is_the_records():
    """docs/cpu_engine.md's add_relu_ table and benchmarks/README's ratios are results_cpu_residual.json's."""
    records = _bench("results_cpu_residual.json")
    ms = {(r["op"], r["shape"], r["impl"]): r["median_ms"] for r in records}
    rows = {f"{op}_, b8 {shape} channels-last": (op, f"b8 {shape.replace('×', 'x')} channels_last")
            for op in ("add_relu", "add_relu_quantize") for shape in ("256×56×56", "2048×7×7")}
    rows.update({f"add_affine_quantize_, b128 {shape} channels-last":
                 ("add_affine_quantize", f"b128 {shape.replace('×', 'x')} channels_last")
                 for shape in ("64×32×32", "512×4×4")})
    rows.update({f"PreActResNet18 integer model, 8 bits, b{b}": ("preact_resnet18", f"b{b} 3x32x32")
                 for b in (128, 32)})
    rows.update({"ResNet-50 integer model, 8 bits, b8": ("resnet50", "b8 3x224x224"),
            "ResNet-50 integer model, 8 bits, b1": ("resnet50", "b1 3x224x224")})
    text = CPU_DOC.read_text()
    for label, (op, shape) in rows.items():
        c, f = ms[(op, shape, "composed")], ms[(op, shape, "fused")]
        want = f"| {label} | {c:.3f} | {f:.3f} | {c / f:.2f}× |"
        assert want in text, f"docs/cpu_engine.md's residual table lacks {want!r} (benchmarks/results_cpu_residual.json)"
    ratio = {k: ms[(*k, "composed")] / ms[(*k, "fused")] for k in {(o, s) for o, s, _ in ms}}
    op = [v for (o, s), v in ratio.items() if o == "add_relu"]
    opq = [v for (o, s), v in ratio.items() if o == "add_relu_quantize"]
    opa = [v for (o, s), v in ratio.items() if o == "add_affine_quantize"]
    bench = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())
    want = (f"{min(op):.2f}–{max(op):.2f}× on add_relu_, {min(opq):.2f}–{max(opq):.2f}× on add_relu_quantize_, "
            f"{min(opa):.2f}–{max(opa):.2f}× on add_affine_quantize_; ResNet-50 "
            f"{ratio[('resnet50', 'b8 3x224x224')]:.2f}× at b8, {ratio[('resnet50', 'b1 3x224x224')]:.2f}× at b1; "
            f"PreActResNet18 {ratio[('preact_resnet18', 'b128 3x32x32')]:.2f}× at b128, "
            f"{ratio[('preact_resnet18', 'b32 3x32x32')]:.2f}× at b32")
    assert want in bench, f"benchmarks/README.md should say {want!r}"


def test_zp_shift_table_is_the_records():
    """docs/cpu_engine.md's zero-point packing table and its ranges: results_cpu_zp_shift.json's medians."""
    records = _bench("results_cpu_zp_shift.json")
    ms = {(r["op"], r["shape"], r["bits"], r["impl"]): r["median_ms"] for r in records}
    text = CPU_DOC.read_text()
    for label, (op, shape) in {"3×3 conv b32 64→64 32×32": ("conv3x3", "b32 64->64 32x32 s1"),
                               "3×3 conv b32 128→128 16×16": ("conv3x3", "b32 128->128 16x16 s1"),
                               "3×3 conv b1 64→64 32×32": ("conv3x3", "b1 64->64 32x32 s1"),
                               "ResNet-50 integer model b8": ("resnet50", "b8 3x224x224"),
                               "ResNet-50 integer model b1": ("resnet50", "b1 3x224x224"),
                               "PreActResNet18 integer model b32": ("preact_resnet18", "b32 3x32x32")}.items():
        a, b = ms[(op, shape, 4, "offset128")], ms[(op, shape, 4, "zp_shift")]
        row = f"| {label} | {a:.3f} | {b:.3f} | {a / b:.2f}× |"
        assert row in text, row
    ratio = {k[:3]: ms[(*k[:3], "offset128")] / ms[(*k[:3], "zp_shift")] for k in ms}
    conv = [v for k, v in ratio.items() if k[0] == "conv3x3"]
    model = [v for k, v in ratio.items() if k[0] != "conv3x3"]
    flat = " ".join(text.split())
    assert f"Over all {len(conv)} conv rows" in flat and f"{min(conv):.2f}–{max(conv):.2f}×: the" in flat
    assert f"whole models {min(model):.2f}–{max(model):.2f}×" in flat
    for isa, label in (("vnni", "AVX-512 VNNI"), ("avx2", "AVX2")):
        recs = _bench(f"results_cpu_zp_shift_{isa}.json")
        m = {(r["op"], r["shape"], r["bits"], r["impl"]): r["median_ms"] for r in recs}
        r = {k[:3]: m[(*k[:3], "offset128")] / m[(*k[:3], "zp_shift")] for k in m}
        c, w = [v for k, v in r.items() if k[0] == "conv3x3"], [v for k, v in r.items() if k[0] != "conv3x3"]
        i = flat.index(f"(`results_cpu_zp_shift_{isa}.json`)")
        near = flat[max(0, i - 220):i]
        assert label in near and f"{min(c):.2f}–{max(c):.2f}×" in near and f"{min(w):.2f}–{max(w):.2f}×" in near, near


def test_limb_planes_ratios_are_the_records():
    """docs/cpu_engine.md's 16-bit / 8-bit ratios before and after the padded limb planes: the three AMX records'."""
    shapes = ["b32 64->64 32x32 s1", "b32 128->128 16x16 s1", "b1 64->64 32x32 s1", "b1 128->128 16x16 s1"]
    got = {}
    for f in ("results_amx_warm_quick_1thread", "results_amx_warm_quick_1thread_rerun", "results_amx_limbs_quick_1thread"):
        recs = _bench(f"{f}.json")
        recs = recs["records"] if isinstance(recs, dict) else recs
        ms = {(r["op"], r["shape"], r["impl"], r["bits"]): r["median_ms"] for r in recs}
        got[f] = [ms[("conv3x3", s, "dwq", 16)] / ms[("conv3x3", s, "dwq", 8)] for s in shapes]
    flat = " ".join(CPU_DOC.read_text().split())
    a, w, r = (got[k] for k in ("results_amx_limbs_quick_1thread", "results_amx_warm_quick_1thread",
                                 "results_amx_warm_quick_1thread_rerun"))
    assert (f"is {a[0]:.2f}× (b32 64→64) and {a[1]:.2f}× (b32 128→128) the 8-bit one, {a[2]:.2f}× "
            f"and {a[3]:.2f}× at batch 1, where the warm table's run had {w[0]:.2f}×, {w[1]:.2f}×, {w[2]:.2f}× "
            f"and {w[3]:.2f}× (its rerun {r[0]:.2f}×, {r[1]:.2f}×, {r[2]:.2f}×, {r[3]:.2f}×)") in flat


def _range(values, unit="×"):
    return f"{min(values):.2f}–{max(values):.2f}{unit}"


def test_readme_cpu_summary_is_each_isas_latest_records():
    """The README's one-line-per-ISA summary of the CPU engine (its ranges over every shape of the
    run) and its whole-model sentence, recomputed from the records it names; a rerun that replaces
    a record must update the summary."""
    readme = (ROOT / "README.md").read_text()
    for name, label in (("results_full_2threads_8474c03.json", "AVX-512 VNNI"),
                        ("results_vnni_intel_padded_quick_1thread.json", "AVX-512 VNNI"),
                        ("results_avx2_wide_quick_1thread.json", "AVX2"),
                        ("results_amx_pairs_quick_1thread.json", "AMX")):
        rows = _best_int8_rows(name)
        amx = label == "AMX"  # (its 512-channel conv, above oneDNN, is quoted apart from the others)
        b32 = [v[1] for k, v in rows.items() if k[1].startswith("b32") and not (amx and "512->512" in k[1])]
        cells = [_range([v[1] for k, v in rows.items() if k[0] == "gemm"]), _range(b32),
                 _range([v[1] for k, v in rows.items() if k[1].startswith("b1 ")]),
                 _range([v[2] for v in rows.values()]), _range([v[3] for v in rows.values()], "")]
        if amx:
            cells[1] += f" up to 256 channels, {rows[('conv3x3', 'b32 512->512 4x4 s1')][1]:.2f}× at 512"
        line = next((ln for ln in readme.splitlines() if ln.startswith(f"| {label}, ") and f"`{name}`" in ln), None)
        assert line is not None, f"README's CPU summary has no {label} row citing {name}"
        assert line.endswith("| " + " | ".join(cells) + " |"), (line, cells)

    def int8_over_fp32(name, bits):
        recs = _bench(name)
        ms = {(r["op"], r["shape"], r["impl"], r["bits"]): r["median_ms"] for r in recs}
        return {(op, shape.split()[0]): ms[(op, shape, "torch_fp32", 32)] / v
                for (op, shape, impl, b), v in ms.items() if impl == "dwq_int" and b == bits}

    text = " ".join(readme.split())
    vnni, vnni16 = (int8_over_fp32("results_vnni_models_quick_e7f02ba.json", b) for b in (8, 16))
    want = (f"on AVX-512 VNNI (Zen 4) PreActResNet18 {vnni[('preact_resnet18', 'b1')]:.2f}× at batch 1 and "
            f"{vnni[('preact_resnet18', 'b32')]:.2f}× at batch 32, ResNet-50 {vnni[('resnet50', 'b1')]:.2f}× at "
            f"batch 1 and {vnni[('resnet50', 'b8')]:.2f}× at batch 8 (`results_vnni_models_quick_e7f02ba.json`")
    assert want in text, want
    want = (f"on AVX-512 VNNI at the larger batches ({vnni16[('preact_resnet18', 'b32')]:.2f}× at PreActResNet18 "
            f"b32, {vnni16[('resnet50', 'b8')]:.2f}× at ResNet-50 b8)")
    assert want in text, want
    amx = int8_over_fp32("results_amx_models_pairs.json", 8)
    want = (f"on AMX PreActResNet18 {amx[('preact_resnet18', 'b1')]:.2f}× at batch 1 and "
            f"{amx[('preact_resnet18', 'b32')]:.2f}× at batch 32, ResNet-50 {amx[('resnet50', 'b1')]:.2f}× at "
            f"batch 1 and {amx[('resnet50', 'b8')]:.2f}× at batch 8 (`results_amx_models_pairs.json`); "
            f"on AVX2 {_range(int8_over_fp32('results_avx2_wide_models_quick.json', 8).values())}")
    assert want in text, want
    wide16 = _range(int8_over_fp32("results_avx2_wide_models_quick.json", 16).values())
    assert f"16-bit integer model is slower than fp32 on AVX2 ({wide16})" in text, wide16
    # the AMX b32 convs below oneDNN: the summary's run, its rerun and the three earlier ones it quotes
    runs = [_range([v[1] for k, v in _best_int8_rows(n).items() if k[1].startswith("b32") and "512->512" not in k[1]])
            for n in ("results_amx_pairs_quick_1thread.json", "results_amx_pairs_quick_1thread_rerun.json",
                      "results_amx_limbs_quick_1thread.json", "results_amx_warm_quick_1thread.json",
                      "results_amx_warm_quick_1thread_rerun.json")]
    assert (f"{runs[0]} in that run, {runs[1]} in its rerun (" in text
            and f"{runs[2]}, {runs[3]} and {runs[4]} in three earlier ones" in text), runs
    c128 = [_best_int8_rows(n)[("conv3x3", "b32 128->128 16x16 s1")][1]
            for n in ("results_amx_pairs_quick_1thread.json", "results_amx_pairs_quick_1thread_rerun.json",
                      "results_amx_6a311ae_quick_1thread.json", "results_amx_6a311ae_quick_1thread_rerun.json")]
    want = f"paired: {c128[0]:.2f}× and {c128[1]:.2f}×, from {c128[2]:.2f}× and {c128[3]:.2f}× before them"
    assert want in text, want
    zp = _bench("results_cpu_zp_shift.json")
    ms = {(r["op"], r["shape"], r["bits"], r["impl"]): r["median_ms"] for r in zp}
    gain = [ms[(*k[:3], "offset128")] / ms[(*k[:3], "zp_shift")] for k in ms if k[0] == "conv3x3"]
    assert f"made the 4- and 7-bit convs {_range(gain)} faster, `results_cpu_zp_shift.json`" in text, gain


def test_vnni_full_run_table_is_its_record():
    """docs/cpu_engine.md's table of the full VNNI run at 3151f8c: each row's 8-bit median, the speed-up
    of the best <= 8-bit width over the faster int8 baseline (named), over fp32, and 16 over 8 bits;
    and the ranges of the paragraph after it, this run's against the first table's."""
    name = "results_full_2threads_3151f8c.json"
    recs = _bench(name)
    label = {"torch_int_mm": "`_int_mm`", "torch_qlinear": "prepacked", "torch_qconv": "qconv"}
    text = CPU_DOC.read_text()
    for (op, shape), (best, int8, fp32, r16) in _best_int8_rows(name).items():
        ms = {(r["impl"], r["bits"]): r["median_ms"] for r in recs if (r["op"], r["shape"]) == (op, shape)}
        faster = min((impl for impl, _ in ms if impl in label), key=lambda i: ms[(i, 8)])
        sh = shape.replace("x", "×").replace("->", "→").replace(" s1", "")
        row = f"| {op} | {sh} | {ms[('dwq', 8)]:.3f} | {int8:.2f}× {label[faster]} | {fp32:.2f}× | {r16:.2f} |"
        assert row in text, row
    flat = " ".join(text.split())

    def ranges(n):
        r = _best_int8_rows(n)
        return (_range([v[1] for k, v in r.items() if k[0] == "gemm"]),
                _range([v[1] for k, v in r.items() if k[1].startswith("b32")]),
                _range([v[1] for k, v in r.items() if k[1].startswith("b1 ")]),
                _range([v[2] for v in r.values()]), _range([v[3] for v in r.values()], ""))

    (g, b32, b1, f, s), (g0, b320, b10, f0, s0) = ranges(name), ranges("results_full_2threads.json")
    want = (f"the GEMMs {g} ({g0} in the first table), the batch-32 convs {b32} ({b320}), and at batch 1, "
            f"where the ratios moved most, {b1} ({b10}); against fp32 {f} ({f0}).")
    assert want in flat, want
    assert f"16 bits costs {s}× the 8-bit time (four limb passes; {s0} in the first table)" in flat, (s, s0)
    dwq8 = {(r["op"], r["shape"]): r["median_ms"] for r in recs if r["impl"] == "dwq" and r["bits"] == 8}
    ratios = [r["median_ms"] / dwq8[(r["op"], r["shape"])] for r in recs if (r["impl"], r["bits"]) == ("brevitas", 8)]
    assert len(ratios) == len(dwq8), "a shape without its 8-bit Brevitas layer"
    assert f"Brevitas (8 bits) takes {min(ratios):.1f}–{max(ratios):.0f}× dwq's 8-bit latency" in flat, ratios


def test_vnni_rerun_paragraph_is_its_records():
    """docs/cpu_engine.md's rerun of the full VNNI kernel run and the whole-model run at 8474c03: dwq's 8-bit
    medians against the 3151f8c table's, the ranges of its speed-ups, and the integer models' speed-up over
    float32 beside the README table's run (e7f02ba), re-derived from the four records."""
    name, old = "results_full_2threads_8474c03.json", "results_full_2threads_3151f8c.json"

    def dwq8(n):
        recs = _bench(n)
        return {(r["op"], r["shape"]): r["median_ms"] for r in recs if (r["impl"], r["bits"]) == ("dwq", 8)}

    new8, old8 = dwq8(name), dwq8(old)
    assert new8.keys() == old8.keys(), "the rerun timed other shapes than the run it is compared with"
    rows = _best_int8_rows(name)
    want = (f"dwq's 8-bit medians are {_range([new8[k] / old8[k] for k in new8])} those of the 3151f8c table, "
            f"shape by shape; against the faster int8 baseline the GEMMs "
            f"{_range([v[1] for k, v in rows.items() if k[0] == 'gemm'])}, the batch-32 convs "
            f"{_range([v[1] for k, v in rows.items() if k[1].startswith('b32')])}, at batch 1 "
            f"{_range([v[1] for k, v in rows.items() if k[1].startswith('b1 ')])}; against fp32 "
            f"{_range([v[2] for v in rows.values()])}; 16 bits {_range([v[3] for v in rows.values()])} the 8-bit time.")
    flat = " ".join(CPU_DOC.read_text().split())
    assert want in flat, want
    cases = [("preact_resnet18", "b1 3x32x32"), ("preact_resnet18", "b32 3x32x32"), ("resnet50", "b1 3x224x224"),
             ("resnet50", "b8 3x224x224")]
    new, kept = (_model_rows(n) for n in ("results_vnni_models_quick_8474c03.json",
                                          "results_vnni_models_quick_e7f02ba.json"))
    f, g = ([f"{rows[c][0] / rows[c][1]:.2f}×" for c in cases] for rows in (new, kept))
    want = (f"the 8-bit integer model against float32 {f[0]} (PreActResNet18 b1), {f[1]} (b32), {f[2]} (ResNet-50 "
            f"b1) and {f[3]} (b8), where the README's table (e7f02ba) has {g[0]}, {g[1]}, {g[2]} and {g[3]}.")
    assert want in flat, want


def _model_rows(name, key="median_ms"):
    """Per (network, input) of a bench_models.py record: fp32 ms, dwq 8-bit ms, the worst speed-up over fp32
    and over the fake-quant model at widths <= 8, Brevitas 8-bit over dwq 8-bit, dwq 16-bit over 8-bit, and
    the fake-quant model's fastest width <= 8 over fp32."""
    recs = _bench(name)
    ms = {(r["op"], r["shape"], r["impl"], r["bits"]): r[key] for r in recs}
    rows = {}
    for net, shape in dict.fromkeys((op, s) for op, s, _, _ in ms):
        d = {b: v for (o, s, i, b), v in ms.items() if (o, s, i) == (net, shape, "dwq_int")}
        fq = {b: v for (o, s, i, b), v in ms.items() if (o, s, i) == (net, shape, "fake_quant")}
        fp32, le8 = ms[(net, shape, "torch_fp32", 32)], [b for b in d if b <= 8]
        rows[(net, shape)] = (fp32, d[8], min(fp32 / d[b] for b in le8), min(fq[b] / d[b] for b in le8),
                              ms[(net, shape, "brevitas", 8)] / d[8], d[16] / d[8], min(fq[b] for b in le8) / fp32)
    return rows


def test_vnni_whole_model_tables_are_their_record():
    """The README's and benchmarks/README.md's whole-model tables (the VNNI run at e7f02ba), the targets
    sentence under the README's, and the figures of the run it replaced, re-derived from the records."""
    new, old = "results_vnni_models_quick_e7f02ba.json", "results_models_quick.json"
    rows, best, prev = _model_rows(new), _model_rows(new, "min_ms"), _model_rows(old)
    names = {"preact_resnet18": "PreActResNet18", "resnet50": "ResNet-50"}
    readme = (ROOT / "README.md").read_text()
    bench = (ROOT / "benchmarks" / "README.md").read_text()
    for (net, shape), (fp32, d8, vfp, vfq, brev, r16, _) in rows.items():
        sh = shape.replace("x", "×")
        assert (f"| {names[net]} | {sh} | {fp32:.1f} | {d8:.2f} | {vfp:.2f}× | {vfq:.2f}× | {brev:.1f}× | "
                f"{r16:.2f} |") in readme, (net, shape)
        assert (f"| {net} | {shape} | {fp32:.2f} | {d8:.2f} | {vfp:.2f}x | {vfq:.2f}x | {brev:.2f}x | "
                f"{r16:.2f} |") in bench, (net, shape)
    flat = " ".join(readme.split())
    k32, kr8 = ("preact_resnet18", "b32 3x32x32"), ("resnet50", "b8 3x224x224")
    assert (f"hold in this run ({rows[k32][2]:.2f}×, {rows[k32][3]:.2f}×; best-of latencies give "
            f"{best[k32][2]:.2f}× and {best[k32][3]:.2f}×)") in flat
    over16 = {k: v[0] / (v[1] * v[5]) for k, v in rows.items()}  # fp32 over the 16-bit model
    b1 = [over16[k] for k in rows if k[1].startswith("b1 ")]
    assert (f"{over16[k32]:.2f}× at PreActResNet18 b32 and {over16[kr8]:.2f}× at ResNet-50 b8 "
            f"({b1[0]:.2f}× and {b1[1]:.2f}× at batch 1)") in flat
    assert all(over16[k] < 1 for k in (k32, kr8)), "the README says the 16-bit model is slower than fp32 there"
    for unit, doc in (("×", flat), ("x", " ".join(bench.split()))):
        fp = " / ".join(f"{v[2]:.2f}{unit}" for v in prev.values())
        fq = " / ".join(f"{v[3]:.2f}{unit}" for v in prev.values())
        assert f"{fp} against fp32 and {fq} against fake-quant" in doc, (fp, fq)
    assert (f"took {prev[k32][6]:.2f}× the float32 time at PreActResNet18 b32 then, {rows[k32][6]:.2f}× in this "
            "run") in flat


def test_workflow_transfer_rows_are_the_demo_reports():
    """docs/workflow.md's reading of the demo's transfer matrices (it once called row "2" gradient masking,
    where the 2-bit attack is the strongest at 2 bits), from docs/demo/report.json's findings."""
    rep = _demo("report.json")
    rows = {f.split(":")[0]: re.findall(r"\d+\.\d%|\d+\.\d-\d+\.\d%", f) for f in rep["findings"]
            if "transfer least" in f}
    text = " ".join((ROOT / "docs" / "workflow.md").read_text().split())
    assert f"(mean {rows['fp'][0]}, {rows['fixed4'][0]} and {rows['rpt'][0]} on the other inference precisions)" in text
    (fo, fr), (xo, xr), (ro, rr) = (rows[k][2:4] for k in ("fp", "fixed4", "rpt"))
    assert (f"leaves {fo} (fp) and {xo} (fixed4) against {fr[:-1]}% and {xr[:-1]}% for the others, and {ro} "
            f"against {rr[:-1]}% for rpt") in text, (rows, text[text.index("Row \"2\""):][:400])


def test_readme_ci_sentence_is_the_kept_ci_record():
    """The README's clean-clone CI figures (the latest run: its time, commit, CPU and test counts, each ISA
    path that skipped and the CUDA skips) are those of docs/ci_run.txt, the summary kept from that run's log."""
    record = (ROOT / "docs" / "ci_run.txt").read_text()
    commit = re.search(r"^Clean-clone CI run of dwq ([0-9a-f]{7,})", record, re.M).group(1)
    secs = int(re.search(r"rc=0 secs=(\d+)", record).group(1))
    passed, skipped = map(int, re.search(r"^(\d+) passed, (\d+) skipped", record, re.M).groups())
    listed = record.split("skip reasons")[1].split("exit status")[0]
    reasons = {why: int(n) for n, why in re.findall(r"^\s+(\d+)  (\S.*)$", listed, re.M)}
    assert sum(reasons.values()) == skipped, "the skip reasons do not add up to the skipped count"
    lacked = {isa: f"this CPU does not support the {isa} path" for isa in ("avx512_vnni", "amx")}
    isa_skips = [(isa, reasons[why]) for isa, why in lacked.items() if why in reasons]
    cuda = sum(n for why, n in reasons.items() if "CUDA" in why)
    assert cuda + sum(n for _, n in isa_skips) == skipped, "a skip that is neither an ISA path nor a GPU"
    vnni = re.search(r"^Machine: .*avx512_vnni: (yes|no)", record, re.M).group(1) == "yes"
    amx = re.search(r"^Machine: .*amx_int8: (yes|no)", record, re.M).group(1) == "yes"
    readme = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(r"took (\d+) min (\d+) s at ([0-9a-f]{7,}) on a 2-core ([^(]*) \(", readme)
    assert m, "the README no longer states the clean-clone CI time"
    assert (int(m.group(1)) * 60 + int(m.group(2)), m.group(3)) == (secs, commit)
    assert m.group(4).endswith("AVX-512 VNNI" if vnni else "with AVX2 only"), m.group(4)
    assert ("with AMX" in m.group(4)) == amx, m.group(4)
    assert (not isa_skips) == amx, "a CPU with AMX runs every ISA path's tests; one without skips the amx ones"
    if isa_skips:
        paths = " and ".join(f"the {n} {'tests ' if k == 0 else ''}of the `{isa}` path"
                             for k, (isa, n) in enumerate(isa_skips))
        want = (f"pytest {passed} passed, {skipped} skipped: {paths}, which this CPU lacks, and {cuda} that need a "
                "CUDA GPU")
    else:
        want = f"pytest {passed} passed, {skipped} skipped, every one a test that needs a CUDA GPU"
    assert want in readme, want


def _leaves(x, path=()):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, path + (str(k),))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, path + (str(i),))
    else:
        yield path, x


def test_readme_zen4_demo_rerun_is_its_report():
    """The README's comparison of the Zen 4 demo run (docs/demo/report_zen4.json) with the kept report: the
    count of fields both hold (timings aside), which of them differ, and the agreement figures it quotes."""
    kept, new = (dict(_leaves(_demo(n))) for n in ("report.json", "report_zen4.json"))
    timing = ("seconds", "train_seconds", "eval_seconds", "convert_seconds")
    both = [k for k in kept.keys() & new.keys() if k[-1] not in timing and "latency_ms" not in k]
    differ = sorted(k for k in both if kept[k] != new[k])
    agree = ("models", "rpt", "deploy", "agreement")
    assert differ == sorted([("findings", "17"), (*agree, "2", "max_abs_diff"), (*agree, "2", "mean_abs_diff"),
                             (*agree, "2", "rel_max_diff"), (*agree, "8", "mean_abs_diff")]), differ
    assert "[-8.0, -2.4]" in new[("findings", "17")] and "[-7.8, -2.6]" in kept[("findings", "17")]
    assert all(new[(*agree, p, "top1_agreement")] == kept[(*agree, p, "top1_agreement")] == 1.0
               for p in ("2", "3", "4", "6", "8"))
    ag = {(p, f): (f"{new[(*agree, p, f)]:.2e}", f"{kept[(*agree, p, f)]:.2e}")
          for p, f in (("2", "max_abs_diff"), ("2", "mean_abs_diff"), ("8", "mean_abs_diff"))}
    want = (f"of the {len(both):,} fields both reports hold, timings aside, {len(differ)} differ: AutoAttack's "
            f"finding prints the interval the reprint above gives ([−8.0, −2.4]), and four of the integer model's "
            f"agreement figures: at 2 bits its logits lie further from the fake-quant model's (max |diff| "
            f"{ag['2', 'max_abs_diff'][0]} against {ag['2', 'max_abs_diff'][1]}, mean {ag['2', 'mean_abs_diff'][0]} "
            f"against {ag['2', 'mean_abs_diff'][1]}), at 8 bits their mean |diff| is {ag['8', 'mean_abs_diff'][0]} "
            f"against {ag['8', 'mean_abs_diff'][1]}")
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert want in readme, want
    secs = round(new[("seconds",)])  # (an idle machine's run: its wall time is quoted twice)
    for said in (f"(CPU family 25, 2026-12-07; {secs} s)", f"186 s of demo on 2 idle Zen 5 cores, {secs} s on a Zen 4"):
        assert said in readme, said
