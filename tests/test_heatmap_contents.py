"""What save_heatmap draws: cell labels in percent, inference precisions on the x axis and attack
precisions on the y axis (a non-square matrix tells them apart), and an epsilon title said once."""
import pytest

from dwq import eval as E


@pytest.fixture
def drawn(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    got = {"text": [], "x": None, "y": None, "title": []}
    text, xt, yt, title = Axes.text, Axes.set_xticks, Axes.set_yticks, Axes.set_title
    monkeypatch.setattr(Axes, "text", lambda ax, x, y, s, *a, **k: got["text"].append((x, y, s)) or text(ax, x, y, s, *a, **k))
    monkeypatch.setattr(Axes, "set_xticks", lambda ax, t, labels=None, *a, **k: got.update(x=list(labels)) or xt(ax, t, labels, *a, **k))
    monkeypatch.setattr(Axes, "set_yticks", lambda ax, t, labels=None, *a, **k: got.update(y=list(labels)) or yt(ax, t, labels, *a, **k))
    monkeypatch.setattr(Axes, "set_title", lambda ax, t, *a, **k: got["title"].append(t) or title(ax, t, *a, **k))
    return got


def test_heatmap_cells_are_percent_with_attack_rows_and_inference_columns(drawn, tmp_path):
    tm = {"acc": [[0.5, 0.25, 0.125], [1.0, 0.0, 0.75]], "attack_precisions": ["4", "8"],
          "inference_precisions": ["2", "4", "8"]}
    E.save_heatmap(tm, str(tmp_path / "h.png"))
    assert drawn["x"] == ["2", "4", "8"] and drawn["y"] == ["4", "8"]
    assert sorted(drawn["text"]) == sorted([(0, 0, "50.0"), (1, 0, "25.0"), (2, 0, "12.5"),
                                            (0, 1, "100.0"), (1, 1, "0.0"), (2, 1, "75.0")])


def test_heatmap_title_names_epsilon_once(drawn, tmp_path):
    tm = {"acc": [[0.5]], "attack_precisions": ["4"], "inference_precisions": ["4"], "epsilon": 0.1}
    E.save_heatmap(tm, str(tmp_path / "a.png"))
    E.save_heatmap(tm, str(tmp_path / "b.png"), title="PGD at ε=0.1")
    assert drawn["title"] == ["robust accuracy (%), ε=0.1", "PGD at ε=0.1"]
