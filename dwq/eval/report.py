"""Reporting of evaluation results: report keys, JSON, heatmaps (intervals: :mod:`dwq.eval.intervals`)."""
from __future__ import annotations

import json

import torch

from dwq._atomic import atomic_open
from dwq.eval.intervals import acc_ci
from dwq.quant import precision_name

__all__ = ["acc_ci", "pname", "save_heatmap", "save_json"]


def pname(p) -> str:
    """Report key of a precision: 'fp', '4' or '4w8a'."""
    return precision_name(p)


def save_heatmap(matrix: dict, path: str, title: str = "robust accuracy (%)") -> None:
    """Draw a transfer matrix (see :func:`dwq.eval.transfer_matrix`) as a PNG heatmap. When the
    matrix records its attack's ``epsilon`` (as :func:`dwq.eval.evaluate` writes it), the title
    says it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = torch.tensor(matrix["acc"]) * 100
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * a.shape[1], 0.8 + 0.7 * a.shape[0]))
    im = ax.imshow(a.numpy(), cmap="viridis")
    ax.set_xticks(range(a.shape[1]), matrix["inference_precisions"])
    ax.set_yticks(range(a.shape[0]), matrix["attack_precisions"])
    ax.set_xlabel("inference precision (bits)")
    ax.set_ylabel("attack precision (bits)")
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            ax.text(j, i, f"{a[i, j]:.1f}", ha="center", va="center",
                    color="white" if a[i, j] < a.mean() else "black", fontsize=8)
    if "epsilon" in matrix and "ε" not in title:
        title = f"{title}, ε={matrix['epsilon']:.4g}"
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    try:
        # atomically, like save_json: an interrupted run must not leave a half-written PNG under
        # the final name beside a complete report
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=120)
    finally:
        plt.close(fig)


def save_json(obj, path):
    """Write ``obj`` as indented JSON, atomically: a report is read again later (``python -m
    dwq.cli.demo report.json``), and ``json.dump`` writes it in pieces (tens of ms for the demo's),
    so a Ctrl-C or kill in between would leave a truncated file under the final name."""
    with atomic_open(path) as f:
        json.dump(obj, f, indent=2)
