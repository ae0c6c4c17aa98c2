"""The common end of the benchmark scripts: print the records and the ratio tables, then write the
JSON records and the plot only where ``--json`` / ``--png`` say."""
import json
import os
import time


def save_json(path, obj):
    """Writes obj to path as JSON through a temporary file, so that a run killed mid-write leaves the
    previous version, never a truncated one (the scripts that save after every measurement)."""
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


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
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
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
