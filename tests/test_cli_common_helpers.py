"""dwq.cli.common's argument types and helpers called directly, at the edges of what they take: the bounds
of fractions, counts, seeds and thread counts, --val-size's whole numbers, --num-bits-schedule's spans,
--precisions checked in any spelling, given_flags with parser-level defaults, StageLog's lines and
the removal of a resume's files in a folder whose name holds glob characters."""
import argparse
import re

import pytest

import dwq.cli.common as common
from dwq.cli.common import (INT_MAX, ArgumentParser, CLIError, StageLog, fraction, given_flags, positive_int,
                            precision_set_from_args, precisions_within, remove_resume_files, seed_arg, threads_arg,
                            unit_float, val_size_arg)


def test_fraction_takes_both_ends_of_0_to_1():
    assert fraction("0") == 0.0 and fraction("1") == 1.0 and fraction("255/255") == 1.0
    for bad in ("1.0001", "256/255", "-0.0001"):
        with pytest.raises(argparse.ArgumentTypeError, match="outside"):
            fraction(bad)


def test_a_count_may_be_int_max_but_not_more():
    assert positive_int(str(INT_MAX)) == INT_MAX
    with pytest.raises(argparse.ArgumentTypeError, match=f"must be at most {INT_MAX}, got {INT_MAX + 1}"):
        positive_int(str(INT_MAX + 1))


def test_threads_may_be_every_cpu_of_the_process_but_not_more(monkeypatch):
    monkeypatch.setattr(common, "cpu_count", lambda: 3)
    assert threads_arg("3") == 3 and threads_arg("1") == 1
    with pytest.raises(argparse.ArgumentTypeError, match="4 threads, but this process may use 3 CPUs"):
        threads_arg("4")


def test_a_seed_is_any_int_below_2_to_the_63():
    """A seed is no count: past INT_MAX is fine, up to what torch's and numpy's generators take."""
    assert seed_arg(str(2**40)) == 2**40 and seed_arg(str(2**63 - 1)) == 2**63 - 1 and seed_arg("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="must be below 2\\^63"):
        seed_arg(str(2**63))


@pytest.mark.parametrize("text, value", [("0", 0.0), ("0.25", 0.25), ("1", 1), ("500", 500), ("500.0", 500)])
def test_val_size_is_a_fraction_or_a_whole_number(text, value):
    v = val_size_arg(text)
    assert v == value and type(v) is type(value)


@pytest.mark.parametrize("bad", ["2.5", "1.5", "-1", "-0.1"])
def test_val_size_refuses_a_count_that_is_not_whole(bad):
    """2.5 would have been int() to 2 images, silently."""
    with pytest.raises(argparse.ArgumentTypeError, match="neither a fraction in \\[0, 1\\) nor a whole number"):
        val_size_arg(bad)


def test_momentum_is_in_0_to_1_excluding_1():
    assert unit_float("0") == 0.0 and unit_float("0.999") == 0.999
    with pytest.raises(argparse.ArgumentTypeError, match="must be in \\[0, 1\\), got 1"):
        unit_float("1")


@pytest.mark.parametrize("schedule, out", [((2, 4), [2, 3, 4]), ((4, 4), [4]), ((2, 16), list(range(2, 17)))])
def test_num_bits_schedule_spans_lo_to_hi_inclusive(schedule, out):
    assert precision_set_from_args(None, schedule) == out


@pytest.mark.parametrize("schedule", [(1, 4), (4, 3), (2, 17)])
def test_num_bits_schedule_out_of_order_or_range_is_refused(schedule):
    with pytest.raises(CLIError, match="--num-bits-schedule needs 2 <= LO <= HI <= 16"):
        precision_set_from_args(None, schedule)


def test_precisions_within_compares_any_spelling():
    """--precisions 4w4a is the checkpoint's precision 4; 4w8a is not 8w4a."""
    assert precisions_within([(4, 4), "fp", (8, 4)], [4, None, "8w4a"], "the checkpoint's") == [(4, 4), "fp", (8, 4)]
    with pytest.raises(CLIError, match="precision 4w8a is not in the checkpoint's precision set 4 fp 8w4a"):
        precisions_within([(4, 8)], [4, None, (8, 4)], "the checkpoint's")
    with pytest.raises(CLIError, match="repeats a precision: 4 4"):
        precisions_within([4, (4, 4)], [4], "the checkpoint's")


def test_given_flags_leaves_out_parser_level_defaults():
    """Only what the command line wrote: a set_defaults value (e.g. a subcommand's handler) is no flag."""
    p = ArgumentParser(prog="t")
    p.add_argument("--a", type=int, default=1)
    p.add_argument("--b", type=int, default=2)
    p.set_defaults(handler="run")
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("go")
    s.add_argument("--c", default=3)
    s.set_defaults(inner="x")
    assert given_flags(p, ["--b", "5", "go"]) == {"b", "cmd"}
    assert given_flags(p, ["--a", "1", "go", "--c", "3"]) == {"a", "cmd", "c"}


def test_stage_log_prints_each_stage_once_and_times_each(capsys):
    log = StageLog(progress=False, indent="> ")
    log("first", 0, 2)
    log("second", 1, 2)
    log.close()
    log.close()  # (a close in a finally after the normal one)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["first", "second"] and all(line.startswith("> ") for line in lines)
    assert set(log.seconds) == {"first", "second"} and all(s >= 0 for s in log.seconds.values())


def test_resume_files_are_removed_in_a_folder_named_with_glob_characters(tmp_path):
    run = tmp_path / "run[1]"
    (run / "stage_b").mkdir(parents=True)
    (run / "stage_a.pt").write_bytes(b"x")
    (run / "report.json").write_text("{}")
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "stage_z.pt").write_bytes(b"x")  # what "run[1]" matches as a pattern
    assert remove_resume_files(str(run), ["stage_*"]) == ["stage_a.pt", "stage_b"]
    assert sorted(p.name for p in run.iterdir()) == ["report.json"]
    assert (tmp_path / "run1" / "stage_z.pt").exists()


def test_an_out_that_links_to_nothing_is_named_as_such(tmp_path):
    """A link to a missing folder as --out passed the "not a folder" check (os.path.exists follows the
    link) and ended as "cannot create the folder (File exists)"; with --resume, as "does not exist"."""
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "missing")
    said = f"exists and is not a folder (a link to {tmp_path / 'missing'}, which does not exist)"
    with pytest.raises(CLIError, match=re.escape(f"--out {link} {said}") + "$"):
        common.fresh_dir(str(link))
    with pytest.raises(CLIError, match=re.escape(f"--resume: --out {link} {said}") + "$"):
        common.resumable_dir(str(link), "evaluation")
    assert link.is_symlink() and not (tmp_path / "missing").exists()
    (tmp_path / "missing").mkdir()  # a link to a folder is a folder: taken as before
    assert common.fresh_dir(str(link)) == str(link)
