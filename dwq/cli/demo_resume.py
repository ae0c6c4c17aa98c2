"""``dwq demo --resume``: what an interrupted demo kept, and the check that it is the same demo.

A demo writes ``demo_run.json`` (the settings its figures depend on) before it starts, and
``result_<model>.json`` once a model is trained and evaluated. ``--resume`` keeps those models, resumes
the one in training from its ``last.pt`` (bit-exact: the Trainer's own resume), the one in evaluation
from its saved stages (``stages_<model>/``, :mod:`dwq.eval.stages`), and starts the rest. The files are
removed when report.json is written: a finished demo is its report.
"""
from __future__ import annotations

import json
import os
import shutil

from dwq._atomic import is_tmp_of

from .common import CLIError, flag, remove_resume_files, resumable_dir

SETTINGS = "demo_run.json"
# All a resume reads, and the temporaries of a kill while one was written (a finished demo is its report)
RESUME_FILES = (SETTINGS, "result_*.json", "stages_*", SETTINGS + ".*.tmp", "result_*.json.*.tmp")


def _result_path(out: str, name: str) -> str:
    return os.path.join(out, f"result_{name}.json")


def start(out: str, settings: dict) -> None:
    from dwq.eval import save_json

    save_json({"settings": settings}, os.path.join(out, SETTINGS))


def _unwritten_settings_only(names) -> bool:
    """Whether a folder's ``names`` are all temporary ``demo_run.json`` files (a kill while it was written;
    True for none)."""
    return all(is_tmp_of(name, SETTINGS) for name in names)


def interrupted(out: str) -> bool:
    """Whether ``out`` holds a demo that ``--resume`` continues: its settings and no report, or only a
    temporary settings file (a kill while it was written: --resume takes that folder too)."""
    if not os.path.isdir(out):
        return False
    held = os.listdir(out)
    if held and _unwritten_settings_only(held):
        return True
    return os.path.isfile(os.path.join(out, SETTINGS)) and not os.path.exists(os.path.join(out, "report.json"))


def check_resumable(out: str, settings: dict) -> bool:
    """CLIError unless ``out`` is an interrupted demo run with the same ``settings``. False (nothing to
    resume: start it) for a folder holding nothing of a run, which a kill before ``demo_run.json`` was
    written leaves: empty, or with a temporary ``demo_run.json.*.tmp``, removed here (else neither --resume nor a run
    without it took the folder)."""
    resumable_dir(out, "demo", RESUME_FILES)
    held = os.listdir(out)
    if _unwritten_settings_only(held):
        for f in held:
            os.remove(os.path.join(out, f))
        return False
    path = os.path.join(out, SETTINGS)
    try:
        with open(path) as f:
            theirs = json.load(f)["settings"]
        assert isinstance(theirs, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise CLIError(f"--resume: {out} is not an interrupted dwq demo (no readable {SETTINGS})") from None
    from dwq.eval.stages import ADDED_LATER

    changed = sorted(k for k in set(theirs) | set(settings) if theirs.get(k) != settings.get(k)
                     and (k in theirs or k not in ADDED_LATER))
    if changed:  # (named as flags where one sets it: autoattack_n is --autoattack-n)
        flags = {"epochs", "n_test", "train_images", "autoattack_n", "seed", "threads"}
        raise CLIError("--resume: the interrupted demo ran with other settings: " + "; ".join(
            f"{flag(k) if k in flags else k} {theirs.get(k)!r} there, {settings.get(k)!r} here"
            for k in changed))
    return True


def kept_result(out: str, name: str):
    """The finished model's part of the report, or None."""
    path = _result_path(out, name)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def stage_dir(out: str, name: str) -> str:
    """Where the evaluation of model ``name`` keeps its finished stages until its result is kept."""
    return os.path.join(out, f"stages_{name}")


def keep_result(out: str, name: str, result: dict) -> None:
    from dwq.eval import save_json

    save_json(result, _result_path(out, name))
    shutil.rmtree(stage_dir(out, name), ignore_errors=True)  # the result holds them now


def resume_training(trainer, out: str, name: str):
    """Resumes ``trainer`` from its ``last.pt``; returns the epoch it continues from, or None. A model
    interrupted before its first epoch ended has no checkpoint: its folder is removed, to start again."""
    folder = os.path.join(out, name)
    if trainer.resume():
        return trainer.epoch
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    return None


def finish(out: str) -> None:
    remove_resume_files(out, RESUME_FILES)
