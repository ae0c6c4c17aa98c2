"""``dwq train --resume --out RUN`` (glue only): the run's checkpoint and recorded flags, loaded and
checked to be that run's; the flags given again compared with the run's; the others restored.

``RUN/last.pt`` records the run's flags (:mod:`dwq.cli.train_flags`); the flags in
:data:`~dwq.cli.train_flags.RESUME_MAY_CHANGE` may be given again with another value, any other flag
that resolves differently is an error naming them all.
"""
from __future__ import annotations

import os

from .common import CLIError, flag
from .train_flags import PRECISION_FLAGS, RESUME_MAY_CHANGE, SPELLING_OF, precision_json, precision_value, show_value

__all__ = ["load_run", "check_resume", "restore_flags", "differing_flags"]


def _upgrade_flags(flags: dict) -> dict:
    """Flags recorded by an older dwq train, in today's form: a full-precision fixed run recorded
    ``num_bits`` null, which now means "played no part" (RPT runs); it is "fp"."""
    if "num_bits" in flags and flags["num_bits"] is None and not flags.get("random_precision_training"):
        flags["num_bits"] = "fp"
    return flags


def load_run(out):
    """``(checkpoint, its recorded flags, the folder as read)`` of the run in ``out``, checked to be that
    run's; the last (a :class:`dwq.train.run_folder.RunFolder`) is for ``Trainer.restore``."""
    from dwq.train import CheckpointError, load_checkpoint
    from dwq.train.run_folder import check_run_checkpoint

    path = os.path.join(out, "last.pt")
    if not os.path.isfile(path):
        if os.path.isdir(out) and os.path.isfile(os.path.join(out, "config.json")):
            raise CLIError(f"--resume: {out} has no last.pt (no epoch was completed); start it again with a "
                           f"new --out")
        raise CLIError(f"--resume: {path} does not exist")
    ck = load_checkpoint(path, map_location="cpu")
    flags = ck["config"].get("extra", {}).get("flags")
    if not isinstance(flags, dict):
        raise CLIError(f"--resume: {path} does not record its run's flags (written by dwq demo or an older dwq "
                       f"train); it cannot be resumed safely")
    swapped = " (copied from another run?); nothing was changed"
    try:
        run = check_run_checkpoint(out, ck, path)
    except CheckpointError as e:  # (an unreadable config.json: not a swap, its message says what to do)
        raise CLIError(f"--resume: {e}" + ("; nothing was changed" if "is not a run's config" in str(e) else swapped)) \
            from None
    if ck["config"].get("run_id") is None:
        bad = _legacy_run_differences(run.config, ck, flags)
        if bad:
            raise CLIError(f"--resume: {path} is not the checkpoint of the run in {out}: {', '.join(bad)}{swapped}")
    return ck, _upgrade_flags(flags), run


def _legacy_run_differences(config, ck, flags) -> list:
    """A checkpoint written before run ids against ``config`` (config.json as check_run_checkpoint read
    it: a JSON object, or None when absent): the flags a resume may not change (those both record: a
    later dwq records more), and the command that started the run (a resume rewrites config.json but
    keeps both)."""
    if config is None:
        return []
    run = config.get("extra", {})
    ours, theirs = _upgrade_flags(dict(flags)), _upgrade_flags(dict(run.get("flags") or {}))
    bad = [f"{flag(d)} {show_value(ours[d])} (config.json: {show_value(theirs[d])})"
           for d in sorted(set(ours) & set(theirs)) if d not in RESUME_MAY_CHANGE and ours[d] != theirs[d]]
    started = [(h or [{}])[0].get("command") for h in (ck["config"]["extra"].get("history"), run.get("history"))]
    if not bad and started[0] != started[1]:
        bad.append(f"started by `{started[0]}` (config.json: `{started[1]}`)")
    return bad


def _given_json(dest, v):
    """A given flag's value in the recorded form (see :func:`~dwq.cli.train_flags.resolve_flags`): ``(recorded dest, value)``."""
    if dest in SPELLING_OF:  # --num-bits-schedule LO HI is the set LO..HI
        return SPELLING_OF[dest], [str(b) for b in range(v[0], v[1] + 1)]
    if dest in PRECISION_FLAGS:
        return dest, precision_json(PRECISION_FLAGS[dest], v)
    if dest in ("data_dir", "pretrained") and v is not None:
        return dest, os.path.abspath(v)
    if dest == "network":  # recorded as its zoo key: "PreActResNet18", as the run was started, is "preact_resnet18"
        from dwq.models import canonical_network
        try:
            return dest, canonical_network(v)
        except ValueError:  # an unknown name: refused below as a flag that differs from the run's
            return dest, v
    return dest, list(v) if isinstance(v, tuple) else v


def differing_flags(recorded: dict, values: dict, given) -> dict:
    """``{dest: (run's value, new value)}`` for each flag in ``values`` (recorded form) that differs
    from the run's; a flag newer than the run differs only where it was given."""
    out = {}
    for dest, v in values.items():
        if dest in recorded:
            if recorded[dest] != v:
                out[dest] = (recorded[dest], v)
        elif dest in given:
            out[dest] = (None, v)
    return out


def check_resume(a, given, recorded: dict, done: int):
    """CLIError naming every given flag that differs from the run (other than RESUME_MAY_CHANGE), or
    an --epochs that would not train further."""
    bad = []
    for dest in sorted(given, key=lambda d: list(recorded).index(SPELLING_OF.get(d, d))
                       if SPELLING_OF.get(d, d) in recorded else len(recorded)):
        if dest in RESUME_MAY_CHANGE:
            continue
        key, v = _given_json(dest, getattr(a, dest))
        if recorded.get(key) != v or key not in recorded:
            run = f"{flag(key)} {show_value(recorded[key])}" if key in recorded else "not set"
            given_as = " ".join(map(str, getattr(a, dest))) if dest in SPELLING_OF else show_value(v)
            bad.append(f"{flag(dest)} {given_as} (run: {run})" if key != dest else
                       f"{flag(dest)} {show_value(v, recorded.get(key))} (run: {show_value(recorded.get(key), v)})")
    if bad:
        raise CLIError(f"--resume: {a.out} was trained with other flags: {', '.join(bad)}; drop them to continue "
                       f"the run as it was, or start a new run with another --out")
    epochs = a.epochs if "epochs" in given else recorded.get("epochs")
    if epochs <= done:
        raise CLIError(f"--resume: {a.out} has trained {done} epoch{'s' if done > 1 else ''} and --epochs is "
                       f"{epochs}: nothing to do; give --epochs N with N > {done} to train longer")


def restore_flags(a, given, recorded: dict):
    """``a`` with every recorded flag of the run that was not given (nor another spelling of it).
    ``--device`` is not restored: a run continues on this machine's default unless told otherwise."""
    covered = set(given) | {SPELLING_OF[d] for d in given if d in SPELLING_OF}
    for dest, v in recorded.items():
        if dest in covered or dest == "device" or not hasattr(a, dest):
            continue
        if v is None and dest in ("width", "attack_iters", "free_replays", "lr_milestones", "val_pgd_steps",
                                   "val_every"):
            continue  # played no part in the run: the parser's default stands in
        setattr(a, dest, precision_value(PRECISION_FLAGS[dest], v) if dest in PRECISION_FLAGS else v)
    for dest in SPELLING_OF:
        if dest not in given:
            setattr(a, dest, None)
    return a
