"""Reporting of evaluation results: accuracies with 95% intervals, JSON, heatmaps."""
from __future__ import annotations

import json
import math

import torch

from dwq.quant import precision_name

__all__ = ["acc_ci", "pname", "save_heatmap", "save_json"]


def pname(p) -> str:
    """Report key of a precision: 'fp', '4' or '4w8a'."""
    return precision_name(p)


def acc_ci(correct) -> dict:
    """Accuracy with its Wilson 95% confidence interval. ``correct``: bool tensor or (k, n)."""
    if isinstance(correct, tuple):
        k, n = correct
    else:
        k, n = int(correct.sum().item()), correct.numel()
    if n == 0:
        return {"acc": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    z = 1.959963984540054
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    lo = 0.0 if k == 0 else max(0.0, c - h)
    hi = 1.0 if k == n else min(1.0, c + h)
    return {"acc": p, "ci95": [lo, hi], "n": n}


def save_heatmap(matrix: dict, path: str, title: str = "robust accuracy (%)") -> None:
    """Draw a transfer matrix (see :func:`transfer_matrix`) as a PNG heatmap."""
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
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_json(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
