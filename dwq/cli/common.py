"""Pieces shared by the dwq commands (glue only): the parser class, argument types, which flags the
user gave, the output-folder check and the per-stage progress of long jobs."""
from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import sys
import tempfile
import time
from fractions import Fraction
from typing import Optional


class CLIError(Exception):
    """A user error: printed as ``dwq <cmd>: error: ...`` with exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error: ``dwq train: error: ... (see dwq train --help)``, exit 2.
    (argparse's own prints the whole usage, 10-20 lines, before the line that matters.) No prefixes of
    long flags: ``dwq train --cuda`` meant --cuda-graphs, silently."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


class ListOnce(argparse.Action):
    """A list flag (``nargs="+"``) refused when given twice: argparse kept the last list alone, so
    ``--precisions 4 8 ... --precisions 8`` evaluated 8 only, silently."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, argparse.SUPPRESS)
        if current is not self.default and current is not argparse.SUPPRESS:
            parser.error(f"{option_string} given twice; give all its values once ({option_string} A B ...)")
        setattr(namespace, self.dest, values)


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` only where the help text does not already state the default and the
    default is a value (not None/False)."""

    def _get_help_string(self, action):
        h = action.help or ""
        if (not action.option_strings or "default" in h or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or isinstance(action, argparse._VersionAction)):
            return h
        return h + " (default: %(default)s)"


def given_flags(parser: argparse.ArgumentParser, argv) -> frozenset:
    """The destinations of the flags written on the command line ``argv`` (not those left at their
    default): a second parse in which every default is suppressed."""
    def suppress(p):
        for act in p._actions:
            if isinstance(act, argparse._SubParsersAction):
                for sp in act.choices.values():
                    suppress(sp)
            elif not isinstance(act, (argparse._HelpAction, argparse._VersionAction)):
                act.default = argparse.SUPPRESS
        p._defaults.clear()

    suppress(parser)
    return frozenset(vars(parser.parse_args(argv)))


def flag(dest: str) -> str:
    """The command-line spelling of an argparse destination: ``val_size`` -> ``--val-size``."""
    return "--" + dest.replace("_", "-")


def fraction(text: str) -> float:
    """Parse ``8/255`` or ``0.0314``; must lie in [0, 1] (pixel units)."""
    try:
        v = float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or fraction such as 8/255") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(
            f"{text} is outside [0, 1]; ε and step sizes are in pixel units of images in [0, 1] "
            f"(write 8/255, not 8)")
    return v


def positive_fraction(text: str) -> float:
    """Like :func:`fraction`, but 0 is refused: an attack radius or step must be in (0, 1]."""
    v = fraction(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be in (0, 1] (pixel units of images in [0, 1], e.g. 8/255)")
    return v


INT_MAX = 2**31 - 1  # a count beyond it is a typo (--epochs 99999999999999999999 trained on; a batch size a TypeError)


def _int_at_least(lo: int, hi: Optional[int] = INT_MAX):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi}, got {v}")
        return v

    return parse


positive_int = _int_at_least(1)
nonneg_int = _int_at_least(0)
bandits_budget = _int_at_least(2)  # (one Bandits step is 2 queries: fewer attacked nothing)


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity call (macOS, Windows)
        return os.cpu_count() or 1


def threads_arg(text: str) -> int:
    """A torch CPU thread count: 1 .. the CPUs this process may use. More threads than CPUs only
    contend (a latency measured so means nothing), and thousands of them crash the OpenMP runtime
    (a segfault, not an error). Checked when given: a default is not passed through here."""
    v = positive_int(text)
    n = cpu_count()
    if v > n:
        raise argparse.ArgumentTypeError(f"{v} threads, but this process may use {n} CPU{'s' * (n > 1)}")
    return v


def seed_arg(text: str) -> int:
    """A seed: an integer in 0..2^63 - 1 (what every RNG it seeds takes)."""
    v = _int_at_least(0, None)(text)  # (not a count: no 2^31 bound)
    if v >= 2**63:
        raise argparse.ArgumentTypeError(f"must be below 2^63, got {text}")
    return v


def existing_checkpoint(path: str) -> None:
    """CLIError unless ``--checkpoint path`` is a file (a run folder is named as one, with its files;
    a missing file of a run folder, with the checkpoints it does hold: a run without validation has no
    best.pt)."""
    if os.path.isdir(path):
        raise CLIError(f"--checkpoint {path} is a run folder; give a checkpoint file in it, e.g. "
                       f"{os.path.join(path, 'best.pt')} or {os.path.join(path, 'last.pt')}")
    if not os.path.isfile(path):
        folder = os.path.dirname(path) or "."
        held = [os.path.join(folder, f) for f in ("best.pt", "last.pt", "best_test_reference.pt")
                if os.path.isfile(os.path.join(folder, f))]
        raise CLIError(f"checkpoint {path} does not exist" + (f"; {folder} holds {', '.join(held)}" if held else ""))


def path_arg(text: str) -> str:
    """A file or folder flag's value; an empty one is refused (it was read as "not given" by some
    flags, e.g. ``--json ''`` wrote nothing and said nothing, and as the current folder by others)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty path ({text!r}); give a file or folder name")
    # (the shell expands no ~ after "=": --out=~/x made a folder "~" here, and "wrote ~/x/" read as one in $HOME)
    return os.path.expanduser(text)


def write_failure(e: OSError, folder: str):
    """``"<file>: <reason>"`` for an OSError that is a failed write of the run ``folder`` (a full
    disk, a read-only or vanished folder), else None (a bug to show in full). A failed write of an
    open file names no file: the folder being written is the one."""
    if e.filename is None and e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
        return None
    return f"{e.filename or folder}: {e.strerror or e}"


def _finite(text: str) -> float:
    """The number ``text``, or ArgumentTypeError if it is none or not finite."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):  # inf and nan parse as floats; no setting takes them
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return v


FLOAT32_MAX = 3.4028234663852886e38  # (torch.finfo(torch.float32).max, without importing torch for --help)


def _float32(v: float, text: str) -> float:
    # (--lr 1e308: the first SGD step raised "value cannot be converted to type float without overflow")
    if abs(v) > FLOAT32_MAX:
        raise argparse.ArgumentTypeError(f"must be at most {FLOAT32_MAX:.4g} (the largest float32), got {text}")
    return v


def positive_float(text: str) -> float:
    v = _finite(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return _float32(v, text)


def unit_float(text: str) -> float:
    """A number in [0, 1) (momentum)."""
    v = _finite(text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return v


def nonneg_float(text: str) -> float:
    v = _finite(text)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return _float32(v, text)


def val_size_arg(text: str):
    """A fraction in [0, 1) of the training set, or a whole number (>= 1) of images."""
    v = _finite(text)
    if 0 <= v < 1:
        return v
    if v >= 1 and v.is_integer():
        return int(v)
    raise argparse.ArgumentTypeError(
        f"{text} is neither a fraction in [0, 1) nor a whole number of images (e.g. 0.1 or 500)")


def precision_arg(text: str):
    """``fp`` -> None (full precision), ``4`` -> 4, ``4w8a`` -> (4, 8): dwq.quant's one spelling."""
    from dwq.quant.precision import parse_precision

    try:
        return parse_precision(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def pnames(ps) -> str:
    """A precision list in the one spelling, for messages: ``fp 2 4w8a``."""
    from dwq.quant import precision_name

    return " ".join(precision_name(p) for p in ps)


def precision_set_from_args(precisions, schedule):
    """``--precisions`` or ``--num-bits-schedule LO HI`` (-> LO..HI); None when neither is given."""
    if precisions and schedule:
        raise CLIError("give the precision set once: --precisions or --num-bits-schedule, not both")
    if precisions:
        out = list(precisions)
    elif schedule:
        lo, hi = schedule
        if not (2 <= lo <= hi <= 16):
            raise CLIError(f"--num-bits-schedule needs 2 <= LO <= HI <= 16, got {lo} {hi}")
        out = list(range(lo, hi + 1))
    else:
        return None
    return no_repeated_precisions(out)


def no_repeated_precisions(ps):
    """``ps`` (a ``--precisions`` list) unchanged, or CLIError if two of its entries spell one precision."""
    from dwq.quant import normalize_precision

    if len({normalize_precision(p) for p in ps}) != len(ps):
        raise CLIError(f"--precisions repeats a precision: {pnames(ps)}")
    return ps


def precisions_within(ps, allowed, whose: str):
    """``ps`` (a ``--precisions`` list) unchanged, or CLIError naming the first that is not in ``allowed``
    (``whose``: "the checkpoint's", for the message) or a repeat."""
    from dwq.quant import normalize_precision

    known = {normalize_precision(q) for q in allowed}
    for p in ps:
        if normalize_precision(p) not in known:
            raise CLIError(f"--precisions: precision {pnames([p])} is not in {whose} precision set {pnames(allowed)}")
    return no_repeated_precisions(ps)


def stdout_to_devnull() -> None:
    """After a BrokenPipeError (the reader of ``dwq ... | head -1`` went away): stdout points at
    /dev/null, so that the interpreter's final flush of the dead pipe does not raise again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def dangling(path: str) -> str:
    """What a path that exists as a link to nothing is, for a refusal ("" for anything else)."""
    return f" (a link to {os.readlink(path)}, which does not exist)" if not os.path.exists(path) else ""


def resumable_dir(path: str, what: str, resume_files=()) -> None:
    """CLIError unless ``path`` is a folder that may hold an interrupted ``what`` ("demo", "evaluation"):
    it exists, is a folder, and holds no report.json (a finished one). ``resume_files`` (glob patterns)
    name what a resume reads: a kill after report.json was written but before they were removed leaves
    them beside the report, which holds all they did; they are removed here, and the error says so."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise CLIError(f"--resume: --out {path} exists and is not a folder{dangling(path)}")
    if not os.path.isdir(path):
        raise CLIError(f"--resume: {path} does not exist (run the {what} without --resume to start it)")
    if os.path.exists(os.path.join(path, "report.json")):
        gone = remove_resume_files(path, resume_files)
        tidied = (f" (removed {', '.join(gone)}, which a kill after report.json was written had left)"
                  if gone else "")
        raise CLIError(f"--resume: {path} holds a finished {what} (report.json); nothing to resume{tidied}")


def remove_resume_files(path: str, patterns) -> list:
    """Removes the files and folders in ``path`` matching the glob ``patterns``; their sorted names."""
    import glob
    import shutil

    gone = sorted({os.path.basename(f) for pat in patterns for f in glob.glob(os.path.join(glob.escape(path), pat))})
    for name in gone:
        f = os.path.join(path, name)
        if os.path.isdir(f) and not os.path.islink(f):
            shutil.rmtree(f)
        else:
            os.remove(f)
    return gone


def fresh_dir(path: str, create: bool = True, hint: str = "") -> str:
    """Refuse to write into a folder that already holds something (no overwriting).
    ``create=False`` only checks (so that a later error leaves nothing behind); else
    :func:`writable_dir` creates it."""
    if os.path.lexists(path) and not os.path.isdir(path):  # (a link to nothing: "cannot create the folder")
        raise CLIError(f"--out {path} exists and is not a folder{dangling(path)}")
    if os.path.isdir(path) and os.listdir(path):
        raise CLIError(f"{path} already exists and is not empty; choose another --out{hint}")
    if create:
        writable_dir(path)
    return path


def writable_dir(path: str, name: str = "--out") -> str:
    """Create the folder ``path`` (with missing parents) unless it exists, and write and remove a
    probe file in it: CLIError naming ``name``, the path and the OS's reason if either fails, with
    the folders this call created removed again. (Permission bits alone do not tell: root passes
    them, and /proc or a read-only mount refuse writes they allow.)"""
    created, p = [], os.path.abspath(path)
    while not os.path.exists(p):
        created.append(p)
        p = os.path.dirname(p)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        _remove_dirs(created)
        raise CLIError(f"{name} {path}: cannot create the folder ({e.strerror or e})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".dwq-write-check-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        _remove_dirs(created)
        raise CLIError(f"{name} {path}: cannot write into the folder ({e.strerror or e})") from None
    return path


@contextlib.contextmanager
def folder_lock(path: str, name: str = "--out"):
    """Hold an exclusive lock on the folder ``path`` for the block: CLIError naming ``name`` when another
    process holds it (two resumes of one run, e.g. a requeued job beside the original, would both append
    to its metrics.jsonl and overwrite its checkpoints). An advisory flock on the folder itself: nothing
    is written into it, and the lock ends with the process however it ends. No-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # (not POSIX)
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CLIError(f"{name} {path}: another process (a dwq command still running?) is writing to this "
                           f"folder; wait for it to end, or choose another folder") from None
        except OSError as e:  # (a file system without flock, e.g. some NFS: ENOLCK, EOPNOTSUPP) a traceback
            print(f"dwq: warning: {name} {path}: the folder cannot be locked ({e.strerror or e}); make sure no "
                  f"other dwq command writes to it meanwhile", file=sys.stderr)
        yield
    finally:
        os.close(fd)


def _remove_dirs(deepest_first) -> None:
    for d in deepest_first:
        try:
            os.rmdir(d)
        except OSError:  # not created after all, or holds something now: leave it
            pass


class StageLog:
    """The console of a job that runs named stages one after the other (``dwq eval``'s
    ``progress(stage, done, total)`` callback): when a stage starts, the previous one gets its line
    with the seconds it took; a tqdm bar over the stages runs on stderr unless ``progress`` is
    False. ``close()`` ends the last stage; ``seconds`` keeps each stage's time by name.
    """

    def __init__(self, progress: bool = True, indent: str = "  "):
        self.progress, self.indent, self.seconds = progress, indent, {}
        self._bar = self._name = None
        self._t0 = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        self._end()
        if self.progress:
            from tqdm import tqdm

            if self._bar is None:
                self._bar = tqdm(total=total, unit="stage", leave=False, file=sys.stderr)
            self._bar.n = done
            self._bar.set_description(f"{self.indent}{stage}")
        self._name, self._t0 = stage, time.time()

    def _end(self) -> None:
        if self._name is not None:
            self.seconds[self._name] = dt = time.time() - self._t0
            if self._bar is not None:
                self._bar.clear()
            print(f"{self.indent}{self._name:<44}{dt:8.1f} s", flush=True)
            self._name = None

    def close(self) -> None:
        self._end()
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's preemption, `kill`, `timeout`), handled as Ctrl-C: a training run stopped in
    its first epoch removes what it wrote, so that the same command (a requeued job) starts afresh
    instead of finding a folder that is neither empty nor resumable, and every command says where it
    stopped and how to continue."""


def interrupt_outcome(e: KeyboardInterrupt) -> tuple[str, int]:
    """(what stopped the command, its exit status) for Ctrl-C or a SIGTERM (:class:`Terminated`)."""
    return ("terminated (SIGTERM)", 143) if isinstance(e, Terminated) else ("interrupted", 130)


_stopping = False  # set by stopping(), read by sigterm_as_interrupt's handler


def stopping() -> None:
    """The command is stopping (an error, a first SIGTERM or Ctrl-C): until sigterm_as_interrupt's block
    ends, a SIGTERM is ignored. A second request cut the clean-up short: torchrun's agent, seeing one rank
    exit, sends the others SIGTERM while they handle their own loss of the peer, so rank 0 said only
    "terminated (SIGTERM)" instead of why the run stopped, with its files perhaps half removed."""
    global _stopping
    _stopping = True


@contextlib.contextmanager
def dwq_warnings_as_lines(command: str):
    """dwq's own warnings (an untrained switchable-BN branch, a quantizer without a range) as one line
    ``dwq <command>: warning: ...`` on stderr, not Python's two lines naming a file inside the package;
    other libraries' warnings as Python shows them. Python's once-per-place record is unchanged."""
    import warnings

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not os.path.abspath(filename).startswith(root):
            return previous(message, category, filename, lineno, file, line)
        try:
            print(f"dwq {command}: warning: {' '.join(str(message).split())}", file=sys.stderr if file is None else file)
        except OSError:  # (stderr closed: a warning must not end the run)
            pass

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


@contextlib.contextmanager
def sigterm_as_interrupt():
    import signal
    import threading

    global _stopping
    if threading.current_thread() is not threading.main_thread():  # (signal handlers: main thread only)
        yield
        return

    def terminated(signum, frame):
        if not _stopping:
            stopping()
            raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    _stopping = False
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stopping = False


def nonfinite_parameters(model) -> list:
    """The names of ``model``'s parameters that hold NaN or inf (a diverged run's)."""
    import torch

    return [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]


def finite_checkpoint(model, path: str) -> None:
    """CLIError if the checkpoint's model has NaN or inf weights: evaluated, its NaN logits name one class
    for every image, which read as an accuracy; converted, they are NaN at every precision."""
    bad = nonfinite_parameters(model)
    if bad:
        raise CLIError(f"--checkpoint {path}: {len(bad)} parameter tensor(s) hold NaN or inf, first {bad[0]} (the run "
                       f"diverged); give a checkpoint of an epoch before it")


def check_run_classes(ex: dict, dataset, data_dir, what: str) -> None:
    """A folder dataset's labels are its class folders' positions: the run's folders (recorded by dwq train
    since they were; a checkpoint without them is taken as it is) must be this one's, or label 0 meant
    another class than in training, silently."""
    from dwq.data import class_folder_difference

    run, here = ex.get("classes"), getattr(dataset, "classes", None)
    if run is None or here is None or list(run) == list(here):
        return
    diff = class_folder_difference(run, here, "not here", "not in the run", most=3)
    raise CLIError(f"{what}: {data_dir} has other class folders than the run's ({len(here)} here, {len(run)} in "
                   f"the run; {diff}): labels are folder positions, so they would name other classes")
