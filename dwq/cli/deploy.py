"""``dwq deploy`` (checkpoint -> integer model artifact) and ``dwq bench`` (its latency per precision):
parsers and commands, glue over :mod:`dwq.deploy`.

``dwq/cli/main.py`` registers them with :func:`add_parsers` and dispatches through ``COMMANDS``.
User errors raise ``CLIError`` (one line, exit status 2); nothing is written before every input is checked.
"""
from __future__ import annotations

import json
import math
import os

from dwq._atomic import check_name_length
from dwq._errors import first_line

from .common import (CLIError, HelpFormatter, ListOnce, dangling, existing_checkpoint, finite_checkpoint,
                     no_repeated_precisions, path_arg, positive_float, positive_int, precision_arg, precisions_within,
                     threads_arg, writable_dir)


def add_parsers(sub) -> None:
    """Adds the ``deploy`` and ``bench`` sub-commands to an argparse subparsers object."""
    d = sub.add_parser("deploy", formatter_class=HelpFormatter,
                       help="convert a trained checkpoint into a true-integer model file (safetensors)",
                       description="Converts a checkpoint written by dwq train into an integer random-precision "
                                   "model (per precision: BN folded into the epilogue, weights quantized and packed, "
                                   "integer codes between quantized layers) and writes it as one safetensors file "
                                   "with JSON metadata. Prints the size per precision.")
    d.add_argument("--checkpoint", type=path_arg, required=True, help="a best.pt or last.pt from dwq train")
    d.add_argument("--precisions", nargs="+", action=ListOnce, type=precision_arg, default=None,
                   help="precisions to keep, e.g. 4 5 6 7 8 (each must be in the checkpoint's set; fp = full "
                        "precision, 4w8a = 4-bit weights, 8-bit activations); default: the whole set")
    d.add_argument("--out", type=path_arg, required=True,
                   help="new file to write, e.g. model.safetensors (never overwritten)")

    b = sub.add_parser("bench", formatter_class=HelpFormatter,
                       help="whole-model latency per precision of an integer model file",
                       description="Times the integer model written by dwq deploy at each precision (median of "
                                   "repeated forwards on random images, precisions timed in turn). Optionally "
                                   "proposes the largest precision set whose expected latency under random "
                                   "precision inference fits --budget-ms.")
    b.add_argument("--model", type=path_arg, required=True, help="a .safetensors file written by dwq deploy")
    b.add_argument("--precisions", nargs="+", action=ListOnce, type=precision_arg, default=None,
                   help="precisions to time (default: the model's whole set)")
    b.add_argument("--batch-size", nargs="+", action=ListOnce, type=positive_int, default=[1], help="batch sizes to time")
    b.add_argument("--input-size", nargs=3, type=positive_int, metavar=("C", "H", "W"), default=None,
                   help="image size (default: the one recorded in the model file)")
    b.add_argument("--seconds", type=positive_float, default=2.0,
                   help="timing budget per batch size: rounds over the precisions go on until it has passed, at "
                        "least 3 and at most 50 rounds (so a fast model may finish sooner)")
    b.add_argument("--threads", type=threads_arg, default=None,
                   help="torch CPU threads, at most the CPUs this process may use (default: torch's)")
    b.add_argument("--json", type=path_arg, default=None, help="also write the records to this new file")
    b.add_argument("--budget-ms", type=float, default=None,
                   help="propose the largest set whose mean latency (first batch size) fits this budget")


def _new_file(path: str, flag: str) -> None:
    if not os.path.basename(path):  # "dir/": abspath drops the slash, and the write failed after the work
        raise CLIError(f"{flag} {path}: names a folder; give the new file's name")
    if os.path.lexists(path):  # (a link to a missing file too: the exclusive write refused it after the work)
        raise CLIError(f"{flag} {path} already exists{dangling(path)}; choose another path (dwq never overwrites)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CLIError(f"{flag} {path}: the folder {parent} does not exist")
    try:  # (else refused by the write, after the work)
        check_name_length(path)
    except OSError as e:
        raise CLIError(f"{flag} {path}: {e.strerror}") from None
    # a read-only folder fails now, not with a traceback after the conversion or the timing
    writable_dir(parent, flag)


def _write_error(path: str, flag: str, e: OSError) -> CLIError:
    if isinstance(e, FileExistsError):  # (another command given the same new file finished first)
        return CLIError(f"{flag} {path} was written by another process meanwhile; not overwritten (dwq never overwrites)")
    return CLIError(f"{flag} {path}: cannot write ({e.strerror or e})")


def cmd_deploy(a) -> int:
    from dwq.data import dataset_info
    from dwq.deploy import ConversionError, convert, format_size_report, save, size_report
    from dwq.nn import precision_set
    from dwq.train import CheckpointError, load_trained_model

    _new_file(a.out, "--out")
    existing_checkpoint(a.checkpoint)
    try:
        model, ck = load_trained_model(a.checkpoint, "cpu")
    except CheckpointError as e:
        raise CLIError(str(e)) from None
    finite_checkpoint(model, a.checkpoint)
    ex = ck["config"].get("extra", {})
    allowed = precision_set(model)
    ps = a.precisions or allowed
    precisions_within(ps, allowed, "the checkpoint's")
    info = {"network": ex.get("network"), "dataset": ex.get("dataset"), "checkpoint": os.path.abspath(a.checkpoint)}
    try:
        ds = dataset_info(ex["dataset"])
        info.update(num_classes=ds.num_classes, input_size=list(ds.input_size))
    except (KeyError, ValueError):
        pass
    try:
        int_model = convert(model, ps, info=info)
    except ConversionError as e:
        raise CLIError(str(e)) from None
    _new_file(a.out, "--out")  # again: conversion takes a while
    try:
        save(int_model, a.out, overwrite=False)
    except OSError as e:  # (e.g. the disk filled up; the write left nothing behind)
        raise _write_error(a.out, "--out", e) from None
    only_fp = all(p == "fp" for p in int_model.info["precisions"])
    print(f"wrote {a.out}: {ex.get('network')} integer model, precisions {' '.join(int_model.info['precisions'])}"
          + (" (no quantized precision: every layer computes in float32)" if only_fp else ""))
    print(format_size_report(size_report(int_model), os.path.getsize(a.out)))
    return 0


def cmd_bench(a) -> int:
    import torch

    from dwq._atomic import atomic_open
    from dwq.deploy import ArtifactError, choose_precisions, latency_per_precision, load, record_bits
    from dwq.deploy.layers import is_int
    from dwq.quant import precision_name

    if a.json:
        _new_file(a.json, "--json")
    # a repeat would time twice and write records of one precision twice, which latency_from_records refuses
    if a.precisions:
        no_repeated_precisions(a.precisions)
    if len(set(a.batch_size)) != len(a.batch_size):
        raise CLIError(f"--batch-size repeats a size: {' '.join(map(str, a.batch_size))}")
    if a.budget_ms is not None and not (math.isfinite(a.budget_ms) and a.budget_ms > 0):
        raise CLIError(f"--budget-ms must be a finite number > 0, got {a.budget_ms}")
    try:
        model = load(a.model)
    except ArtifactError as e:
        raise CLIError(str(e)) from None
    ps = a.precisions or model.precisions
    precisions_within(ps, model.precisions, "the model's")
    size = a.input_size or model.info.get("input_size")
    if not size:
        raise CLIError(f"{a.model} does not record its input size; give --input-size C H W")
    if not (isinstance(size, list) and len(size) == 3
            and all(is_int(n) and n > 0 for n in size)):
        raise CLIError(f"{a.model} records input_size {size!r}, expected three positive ints [C, H, W]; "
                       f"give --input-size C H W")
    if a.threads:
        torch.set_num_threads(a.threads)
    name = model.info.get("network") or model.info.get("model_class", "model")
    print(f"{name} integer model, {torch.get_num_threads()} threads, input {'x'.join(map(str, size))}")
    print(f"{'batch':>6} " + " ".join(f"{precision_name(p):>9}" for p in ps) + "   (median ms per forward)")
    g = torch.Generator().manual_seed(0)
    records, first = [], None
    for bs in a.batch_size:
        try:
            x = torch.rand(bs, *size, generator=g)
        except RuntimeError as e:  # the allocator's refusal
            raise CLIError(f"cannot allocate a random input of {bs}x{'x'.join(map(str, size))} (--batch-size x "
                           f"--input-size): {first_line(e)}") from None
        try:
            lat = latency_per_precision(model, x, ps, budget_s=a.seconds)
        except (ValueError, RuntimeError, ArithmeticError, IndexError) as e:  # (torch's and the program's refusals)
            raise CLIError(f"the model does not run on {bs}x{'x'.join(map(str, size))} inputs: "
                           f"{first_line(e)}") from None
        first = first or lat
        print(f"{bs:>6} " + " ".join(f"{lat[precision_name(p)]['median_ms']:>9.3f}" for p in ps))
        shape = f"b{bs} {'x'.join(map(str, size))}"
        records += [{"op": name, "shape": shape, "bits": record_bits(k), "impl": "dwq_int", "median_ms": v["median_ms"],
                     "min_ms": v["min_ms"], "threads": torch.get_num_threads()} for k, v in lat.items()]
    if a.json:  # before the choice: a budget nothing fits must not lose the measurements
        _new_file(a.json, "--json")  # again: the timing took a while (never overwrite)
        try:
            with atomic_open(a.json, exclusive=True) as f:
                json.dump(records, f, indent=1)
        except OSError as e:
            raise _write_error(a.json, "--json", e) from None
        print(f"wrote {a.json}")
    if a.budget_ms is not None:
        try:
            ch = choose_precisions(first, a.budget_ms)
        except ValueError as e:
            raise CLIError(str(e)) from None
        print(f"largest set within {a.budget_ms:g} ms at batch {a.batch_size[0]}: "
              f"{' '.join(precision_name(p) for p in ch.precisions)} (expected {ch.expected_latency_ms:.3f} ms)")
    return 0


COMMANDS = {"deploy": cmd_deploy, "bench": cmd_bench}
