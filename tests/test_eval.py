"""dwq.eval: confidence intervals, paper vs adaptive protocol, transfer matrix, heatmap."""
import pytest
import torch

import dwq
from dwq import eval as E
from dwq.attacks import pgd
from dwq.models import small_cnn

SET = [2, 4, 8]


@pytest.fixture(scope="module")
def model_data():
    torch.manual_seed(0)
    from dwq.data import load_mnist5k
    m = small_cnn(precisions=SET, width=8)
    x, y = load_mnist5k("train").tensors
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    for i in range(60):  # a few natural RPT steps: enough for non-trivial accuracy
        dwq.set_precision(m, SET[i % 3])
        idx = torch.randint(len(y), (64,))
        loss = torch.nn.functional.cross_entropy(m(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # settle each branch's BN running statistics
        for p in SET:
            dwq.set_precision(m, p)
            for _ in range(10):
                m(x[torch.randint(len(y), (256,))])
    xt, yt = load_mnist5k("test").tensors
    return m.eval(), xt[:120], yt[:120]


def test_acc_ci_is_a_wilson_interval():
    r = E.acc_ci((500, 1000))
    assert r["acc"] == 0.5 and r["n"] == 1000
    lo, hi = r["ci95"]
    assert abs((hi - lo) / 2 - 0.031) < 0.001
    lo0, hi0 = E.acc_ci((0, 100))["ci95"]
    assert lo0 == 0.0 and 0 < hi0 < 0.05
    assert E.acc_ci(torch.tensor([True, False, True, True]))["acc"] == 0.75


def test_clean_accuracy_per_precision(model_data):
    m, x, y = model_data
    r = E.clean_accuracy(m, x, y, SET)
    assert list(r) == ["2", "4", "8"] and all(0.25 < v["acc"] <= 1 for v in r.values())


def test_paper_protocol_draws_attack_and_inference_precision_independently(model_data):
    m, x, y = model_data
    att, inf = [], []
    hook = m.fc.register_forward_hook(lambda mod, i, o: inf.append(dwq.get_precision(m)))

    def attack(f, xb, yb):
        att.append(f.precision)
        return xb

    E.paper_protocol(m, x, y, SET, attack, batch_size=5, seed=0)
    hook.remove()
    inf_robust = inf[0::2]  # per batch: robust forward, then clean forward
    assert len(att) == len(inf_robust) == 24
    assert set(att) == set(SET) and set(inf_robust) == set(SET)
    assert any(a != b for a, b in zip(att, inf_robust)) and any(a == b for a, b in zip(att, inf_robust))


def test_adaptive_protocol_expected_and_worst_case(model_data):
    m, x, y = model_data
    r = E.adaptive_protocol(m, x, y, SET, 0.1, 0.025, 5)
    per = [v["acc"] for v in r["per_precision"].values()]
    assert abs(r["expected"]["acc"] - sum(per) / 3) < 1 / len(y)
    assert r["worst_case"]["acc"] <= min(per)
    clean = E.clean_accuracy(m, x, y, SET)
    assert all(r["per_precision"][k]["acc"] <= clean[k]["acc"] for k in clean)


def test_transfer_matrix_and_heatmap(model_data, tmp_path):
    m, x, y = model_data
    atk = lambda f, xb, yb: pgd(f, xb, yb, 0.1, 0.025, 5)  # noqa: E731
    tm = E.transfer_matrix(m, x, y, SET, atk)
    assert tm["attack_precisions"] == tm["inference_precisions"] == ["2", "4", "8"]
    assert len(tm["acc"]) == 3 and all(len(r) == 3 and all(0 <= v <= 1 for v in r) for r in tm["acc"])
    assert all(lo <= a <= hi for row, crow in zip(tm["acc"], tm["ci95"]) for a, (lo, hi) in zip(row, crow))
    d = E.matrix_diagonal(tm)
    assert [round(d[k]["acc"], 6) for k in d] == [round(tm["acc"][i][i], 6) for i in range(3)]
    E.save_heatmap(tm, str(tmp_path / "t.png"))
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_autoattack_rand_against_rpi(model_data):
    m, x, y = model_data
    # few steps/EOT samples to stay fast; the defaults are the original's 100 steps, 20 samples
    r = E.autoattack_rpi(m, x[:20], y[:20], SET, 0.1, version="rand", seed=0, steps=5, eot_iter=2)
    assert r["n"] == 20 and 0 <= r["acc"] <= E.clean_accuracy(m, x[:20], y[:20], SET)["8"]["acc"] + 0.35


def test_rpi_best_of_attacks_takes_the_per_image_strongest_attack():
    # 2 attacks, 2 inference precisions, 3 images
    a = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)  # image means over precisions: 1, .5, 0
    b = torch.tensor([[0, 1, 1], [1, 1, 1]], dtype=torch.bool)  # .5, 1, 1
    r = E.rpi_best_of_attacks([a, b])
    assert abs(r["acc"] - (0.5 + 0.5 + 0.0) / 3) < 1e-6 and r["attacks"] == 2 and r["n"] == 3
    assert E.rpi_best_of_attacks([torch.stack([a, b])])["acc"] == r["acc"]


def test_best_of_attacks_is_never_above_eot_alone(model_data):
    m, x, y = model_data
    ad, c = E.adaptive_protocol(m, x, y, SET, 0.1, 0.025, 3, return_correct=True)
    tm, tc = E.transfer_matrix(m, x, y, SET, lambda f, xb, yb: pgd(f, xb, yb, 0.1, 0.025, 3), return_correct=True)
    assert c.shape == (3, len(y)) and tc.shape == (3, 3, len(y))
    assert E.rpi_best_of_attacks([c, tc])["acc"] <= ad["expected"]["acc"] + 1e-6
