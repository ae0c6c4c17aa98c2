"""The benchmark scripts' common pieces: the record schema, the conv shape spelling, the common end
(print the records and the ratio tables, then write the JSON records and the plot only where
``--json`` / ``--png`` say), a JSON save that survives a kill, the progress file of the scripts that
save after every measurement and the checks of the arguments the scripts share."""
import contextlib
import glob
import json
import os
import re
import shutil
import sys
import time

# "bits" of a float32 record: dwq.deploy.RECORD_FP_BITS, the convention dwq bench writes and
# latency_from_records reads (not imported: gpu_check loads this file before dwq is built)
FLOAT32_BITS = 32


@contextlib.contextmanager
def env_vars(**values):
    """Sets (a str) or unsets (None) each environment variable for the block, then puts back what was
    there before: the engine switches a script sets must not outlive the call that set them."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            _put_env(k, v)
        yield
    finally:
        for k, v in old.items():
            _put_env(k, v)


def _put_env(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def record(op, shape, bits, impl, median_ms, min_ms=None, **extra):
    """One benchmark record, the schema every script writes: ``op`` (what ran: "gemm", "conv3x3", a
    network, "train_step"), ``shape`` (a string: "MxNxK", :func:`conv_shape`, "b32 3x32x32"), ``bits``
    (the width this impl ran at: an int, 32 for float32, 16 for a float16/bfloat16 baseline, None
    when the timed calls ran at several widths, then listed in a ``precisions`` field), ``impl``,
    ``median_ms`` and ``min_ms`` (the best call; both None where no call was timed: an error, a compile
    warm-up), then the script's own fields."""
    return dict(op=op, shape=shape, bits=bits, impl=impl, median_ms=median_ms, min_ms=min_ms, **extra)


def cpu_isa(script: str) -> str:
    """The engine's kernel path for this run: ``DWQ_CPU_ISA`` if set (exits with one line naming it
    when this CPU has no such path: "isa=amx" was printed, then the first op's traceback), else the
    fastest this CPU has."""
    from dwq.ops import supported_cpu_isas

    have = supported_cpu_isas()
    isa = os.environ.get("DWQ_CPU_ISA")
    if isa and have and isa not in have:
        sys.exit(f"{script}: DWQ_CPU_ISA={isa!r}: expected one of this CPU's kernel paths {', '.join(have)} (or unset: "
                 f"the fastest)")
    return isa or (have[-1] if have else "none")


def device_name(device) -> str:
    """A record's ``device``: the GPU's name on CUDA (an H100's figures told from an H200's), else its type."""
    import torch

    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def faster_layout(records, impl="torch_fp32"):
    """The records of one op and shape with those of ``impl``'s layouts (impls starting with ``impl``:
    NCHW ``impl``, channels_last ``impl + "_cl"``) replaced by one ``impl`` record, first: the faster
    layout by median, with that layout's own min_ms (so the best-of table shows the layout the median
    table picked)."""
    fp = [r for r in records if r["impl"].startswith(impl)]
    rest = [r for r in records if not r["impl"].startswith(impl)]
    return ([dict(min(fp, key=lambda r: r["median_ms"]), impl=impl)] if fp else []) + rest


def calibrated_out_scale(y, bits):
    """A timed layer's output scale, as calibration would give a model's: ``y`` (float outputs of a
    sample) at +-3 standard deviations spans the ``bits``-wide code range around the middle zero point,
    so the timed codes spread over the range and the tails clamp (a fixed scale leaves every code at
    the zero point at 2 bits and nearly every one clamped at 16). Shape (1,), on ``y``'s device."""
    return (y.float().std() * (6.0 / ((1 << bits) - 1))).clamp_min(1e-12).reshape(1)


def conv_shape(batch, cin, cout, hw, stride):
    """The ``shape`` of a conv record: "b32 64->64 32x32 s1" (batch, C_in->C_out, H=W of the input,
    stride; the kernel size is in ``op``: "conv3x3", "conv1x1")."""
    return f"b{batch} {cin}->{cout} {hw}x{hw} s{stride}"


def save_json(path, obj):
    """Writes obj to path as JSON through a temporary file, so that a run killed or interrupted
    mid-write leaves the previous version, never a truncated one (nor, after Ctrl-C, the temporary
    file)."""
    try:
        with open(path + ".tmp", "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(path + ".tmp", path)
    except BaseException:
        if os.path.exists(path + ".tmp"):
            os.remove(path + ".tmp")
        raise


def save_records(path, records, done):
    """The JSON records of a script that saves after every measurement: while it runs (``done``
    False) they go to ``path + ".partial"``, so that a run cut short (Ctrl-C, a kill, a hang) keeps
    what it measured under a name that says so, not in a file that reads like a finished run; the
    finished run writes ``path`` and removes the partial file."""
    if not done:
        save_json(path + ".partial", records)
        return
    save_json(path, records)
    if os.path.exists(path + ".partial"):
        os.remove(path + ".partial")


def output_paths(parser, args, *dests):
    """A usage error before the run for an output flag (``dests``: "json", "png", ...) whose folder is
    missing or not writable, or that names a folder: after the run it was a traceback, and every
    measurement lost. A --png must end in .png (matplotlib wrote NAME.png for a NAME without it)."""
    from dwq.cli.common import CLIError, writable_dir

    for dest in dests:
        path = getattr(args, dest)
        if not path:
            continue
        # (a name ending in "/" passed as its parent's file under abspath, and the save failed after the run)
        if os.path.isdir(path) or path.endswith(("/", os.sep)):
            parser.error(f"--{dest} {path}: is a folder; give a file name, e.g. {os.path.join(path, 'results.' + dest)}")
        if dest == "png" and not path.lower().endswith(".png"):
            parser.error(f"--png {path}: the plot is a PNG file; give a name ending in .png")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            parser.error(f"--{dest} {path}: the folder {parent} does not exist")
        try:
            writable_dir(parent, f"--{dest}")
        except CLIError as e:
            parser.error(str(e))


def device_arg(parser, name):
    """``torch.device`` of ``--device name``, checked as dwq's commands check it (cpu, cuda or cuda:N
    of this machine); else a usage error that names it, not a traceback from the first CUDA call.
    (dwq imported here, not above: gpu_check loads this file before dwq is built.)"""
    import torch

    from dwq.cli.common import CLIError
    from dwq.cli.train_flags import device_arg as checked

    try:
        return torch.device(checked(name))
    except CLIError as e:
        parser.error(str(e))


def finish(records, args, ratio_table, plot, t0, first_column="op", digits=3):
    """Prints every record (median and best-of ms), ``ratio_table(records, key)`` for the medians and
    the best-of latencies, writes ``args.json`` / ``args.png`` when given, and the total seconds."""
    print()
    print(f"| {first_column} | shape | bits | impl | median ms | min ms |")
    print("|---|---|---|---|---|---|")
    for r in records:
        print(f"| {r['op']} | {r['shape']} | {r['bits']} | {r['impl']} | {r['median_ms']:.{digits}f} | "
              f"{r['min_ms']:.{digits}f} |")
    print()
    print(ratio_table(records, "median_ms"))
    print()
    print("Best-of latencies (less sensitive to other processes on a shared machine):")
    print(ratio_table(records, "min_ms"))
    if args.json:
        save_json(args.json, records)
    if args.png:
        plot(records, args.png)
        print(f"plot: {args.png}")
    print(f"total {time.time() - t0:.0f}s")


def latency_axis(ax, rs, lines, baselines, title, ylabel):
    """One panel of a latency-vs-bits plot: a line per impl in ``lines`` ((impl, style)), a dotted
    horizontal line per record of the impls in ``baselines`` ((impl, color)), log y."""
    for impl, style in lines:
        pts = sorted((r["bits"], r["median_ms"]) for r in rs if r["impl"] == impl)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=impl)
    for impl, color in baselines:
        for r in rs:
            if r["impl"] == impl:
                ax.axhline(r["median_ms"], color=color, ls=":", label=impl)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("bits")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.legend(fontsize=7)


def find_tool(name, *folders):
    """A CUDA tool (``ncu``, ``compute-sanitizer``) on PATH, else in the first of ``folders`` (glob
    patterns, the last match of each taken: the newest of several versions) that holds it; None
    where there is none."""
    found = shutil.which(name)
    if found:
        return found
    for pattern in folders:
        hits = sorted(glob.glob(os.path.join(pattern, name)), key=_version_key)
        if hits:
            return hits[-1]
    return None


def _version_key(path):
    """Orders paths by their numbers as numbers (2025.10.1 after 2025.9.2, which a string sort puts last)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", path)]


def find_ncu():
    """Nsight Compute's ``ncu``: on PATH, else where CUDA and Nsight Compute install it (the GPU
    machine's is /opt/nvidia/nsight-compute/<version>/ncu)."""
    return find_tool("ncu", "/usr/local/cuda/bin", "/opt/nvidia/nsight-compute", "/opt/nvidia/nsight-compute/*")
