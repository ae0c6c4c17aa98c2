"""What else save_heatmap draws: cell text white on cells below the matrix's mean (viridis is dark
there) and black from the mean up, a figure sized by columns across and rows down, axis labels that
match the ticks (inference precisions across, attack precisions down), epsilon in the title to 4
significant digits (8/255 is 0.03137, not 0.031); and save_json's indented JSON."""
import json

import pytest

from dwq import eval as E


@pytest.fixture
def drawn(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    got = {"cells": {}, "size": None, "xlabel": [], "ylabel": [], "title": []}
    text, xl, yl, title = Axes.text, Axes.set_xlabel, Axes.set_ylabel, Axes.set_title

    def on_text(ax, x, y, s, *a, **k):
        got["cells"][(x, y)] = (s, k.get("color"))
        got["size"] = tuple(float(v) for v in ax.figure.get_size_inches())
        return text(ax, x, y, s, *a, **k)

    monkeypatch.setattr(Axes, "text", on_text)
    monkeypatch.setattr(Axes, "set_xlabel", lambda ax, s, *a, **k: got["xlabel"].append(s) or xl(ax, s, *a, **k))
    monkeypatch.setattr(Axes, "set_ylabel", lambda ax, s, *a, **k: got["ylabel"].append(s) or yl(ax, s, *a, **k))
    monkeypatch.setattr(Axes, "set_title", lambda ax, t, *a, **k: got["title"].append(t) or title(ax, t, *a, **k))
    return got


def test_heatmap_text_is_white_below_the_mean_and_black_from_it(drawn, tmp_path):
    # cells 50, 25, 75 (%): mean 50; the cell at the mean is black
    E.save_heatmap({"acc": [[0.5, 0.25, 0.75]], "attack_precisions": ["4"], "inference_precisions": ["2", "4", "8"]},
                   str(tmp_path / "h.png"))
    assert drawn["cells"] == {(0, 0): ("50.0", "black"), (1, 0): ("25.0", "white"), (2, 0): ("75.0", "black")}


def test_heatmap_figure_is_sized_by_columns_across_and_rows_down(drawn, tmp_path):
    tm = {"acc": [[0.5, 0.25, 0.125], [1.0, 0.0, 0.75]], "attack_precisions": ["4", "8"],
          "inference_precisions": ["2", "4", "8"]}
    E.save_heatmap(tm, str(tmp_path / "h.png"))
    assert drawn["size"] == pytest.approx((1.0 + 0.8 * 3, 0.8 + 0.7 * 2))
    # (the colorbar's axes may set empty labels of their own after these)
    assert drawn["xlabel"][0] == "inference precision (bits)" and drawn["ylabel"][0] == "attack precision (bits)"


def test_heatmap_title_gives_epsilon_to_four_significant_digits(drawn, tmp_path):
    tm = {"acc": [[0.5]], "attack_precisions": ["4"], "inference_precisions": ["4"], "epsilon": 8 / 255}
    E.save_heatmap(tm, str(tmp_path / "h.png"))
    assert drawn["title"] == ["robust accuracy (%), ε=0.03137"]


def test_save_json_writes_indented_json(tmp_path):
    obj = {"acc": 0.5, "ci95": [0.25, 0.75], "per_image": {"paper": [1.0, 0.0]}}
    path = tmp_path / "r.json"
    E.save_json(obj, str(path))
    text = path.read_text()
    assert json.loads(text) == obj
    assert text == json.dumps(obj, indent=2)
