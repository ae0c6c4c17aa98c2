"""A training run's folder: the files a run writes there, whether a folder may take a new run,
whether a checkpoint is that of the run recorded there, and metrics.jsonl cut back to a checkpoint
on resume.

A folder holds ``config.json`` (the run's config, with its ``run_id``), ``metrics.jsonl`` (one JSON
object per epoch), ``last.pt`` (every epoch), ``best.pt`` and, with the reference's rule,
:data:`REFERENCE_SELECT_CKPT`. An epoch writes its metrics line, then its ``last.pt``, then the best
checkpoints it chose.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional

from dwq._atomic import atomic_open, is_tmp_of

from .checkpoint import CheckpointError

__all__ = ["REFERENCE_SELECT_CKPT", "RUN_FILES", "RunFolder", "check_fresh_run_folder", "check_run_checkpoint",
           "read_metrics", "remove_run_files"]

REFERENCE_SELECT_CKPT = "best_test_reference.pt"
# What a run writes into its folder besides last.pt (config.json and metrics.jsonl before the first one).
RUN_FILES = ("config.json", "metrics.jsonl", "best.pt", REFERENCE_SELECT_CKPT)


@dataclass
class RunFolder:
    """A run folder as :func:`check_run_checkpoint` read it, once: ``config`` is config.json (None when
    absent), ``metrics`` the lines of metrics.jsonl, newlines kept (None when absent)."""
    path: str
    config: Optional[dict]
    metrics: Optional[list]

    def trim_metrics(self, epoch: int) -> None:
        """metrics.jsonl keeps the lines of epochs up to ``epoch`` (the checkpoint's): a line written by
        an epoch whose last.pt did not follow is that epoch's, which the resumed run writes again."""
        if self.metrics is None:
            return
        keep = [ln for ln in self.metrics if _epoch_of(ln) <= epoch]
        if len(keep) != len(self.metrics):
            with atomic_open(os.path.join(self.path, "metrics.jsonl")) as f:
                f.writelines(keep)

    def record(self, epoch: int) -> Optional[dict]:
        """The metrics.jsonl line of ``epoch`` as a dict (the last such line), or None."""
        found = None
        for ln in self.metrics or []:
            if _epoch_of(ln) == epoch:
                found = json.loads(ln)
        return found


def read_metrics(out_dir: str) -> Optional[list]:
    """The lines of ``out_dir/metrics.jsonl``, newlines kept; None when there is no such file."""
    path = os.path.join(out_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return f.readlines()


def _epoch_of(line: str) -> float:
    """The epoch of a metrics.jsonl line; a line cut short by a kill, or one that is no epoch record
    (edited by hand: 7, null, an object without an epoch or with one that is no number), belongs to no
    kept epoch."""
    try:
        epoch = json.loads(line).get("epoch")
    except (ValueError, AttributeError):
        return float("inf")
    return epoch if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else float("inf")


def check_fresh_run_folder(out_dir: str) -> None:
    """ValueError naming the run files ``out_dir`` holds, if any: a new run there would append to their
    metrics.jsonl and leave their best.pt beside its own config.json (and a later resume would accept
    the mix)."""
    found = [f for f in RUN_FILES + ("last.pt",) if os.path.exists(os.path.join(out_dir, f))]
    if found and "last.pt" not in found:  # (resume() has nothing to continue: it said so, a dead end)
        raise ValueError(f"{out_dir} holds a run that stopped before its first epoch ended ({', '.join(found)}, no "
                         f"last.pt): nothing to resume; train into an empty folder, or remove those files "
                         f"(dwq.train.run_folder.remove_run_files) to train there again")
    if found:
        raise ValueError(f"{out_dir} already holds a run ({', '.join(found)}): train into an empty "
                         f"folder, or continue that run with resume()")


def remove_run_files(out_dir: str) -> None:
    """Removes what a run wrote into ``out_dir`` before its first last.pt (:data:`RUN_FILES` and the
    temporary files of their writes and of last.pt's), so that the folder can take a new run again.
    Other files are the user's and stay (every ``*.tmp`` went, ``my_notes.tmp`` included)."""
    for name in os.listdir(out_dir):
        if name in RUN_FILES or any(is_tmp_of(name, f) for f in RUN_FILES + ("last.pt",)):
            os.remove(os.path.join(out_dir, name))


def check_run_checkpoint(out_dir: str, ck: dict, path: Optional[str] = None) -> RunFolder:
    """CheckpointError (one line, naming the folder and what disagrees) unless checkpoint ``ck``, read
    from ``path`` (default ``out_dir/last.pt``), belongs to the run recorded in ``out_dir``:

    * its ``config["run_id"]`` is config.json's;
    * metrics.jsonl ends at its epoch, or at the next one (that epoch's line is written before its
      last.pt, so a kill between the two leaves it ahead).

    A checkpoint written before run ids is checked on metrics.jsonl alone, where the line may also be
    one epoch behind (dwq then wrote last.pt first). A file that is absent is not checked. Returns
    the folder as read, for :meth:`RunFolder.trim_metrics` and the caller's own checks.
    """
    path = path or os.path.join(out_dir, "last.pt")
    not_ours = f"{path} is not the checkpoint of the run in {out_dir}"
    ck_id = ck["config"].get("run_id")
    cfg_path = os.path.join(out_dir, "config.json")
    config = None
    if os.path.isfile(cfg_path):
        try:
            with open(cfg_path) as f:
                config = json.load(f)
            run_id = config.get("run_id")
        except (ValueError, AttributeError) as e:
            why = "not a JSON object" if isinstance(e, AttributeError) else f"not JSON: {e}"
            raise CheckpointError(f"{cfg_path} is not a run's config ({why}); cannot check that {path} belongs "
                                  f"to it; restore it, or remove it (the run writes it again)") from None
        if ck_id is not None and run_id != ck_id:
            raise CheckpointError(f"{not_ours}: its run id is {ck_id}, config.json's is "
                                  f"{run_id or 'absent (written before run ids)'}")
    metrics = read_metrics(out_dir)
    if metrics is not None:
        done = [e for e in map(_epoch_of, metrics) if e != float("inf")]
        last, epoch = (done[-1] if done else 0), ck["epoch"]
        lowest = epoch - 1 if ck_id is None else epoch
        if not lowest <= last <= epoch + 1:
            raise CheckpointError(f"{not_ours}: it has trained {epoch} epoch{'s' if epoch != 1 else ''}, and "
                                  f"metrics.jsonl ends at epoch {last}")
    return RunFolder(out_dir, config, metrics)
