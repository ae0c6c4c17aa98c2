"""dwq.attacks: sanity of every attack on a small model trained in a second."""
import pytest
import torch
import torch.nn.functional as F

import dwq
from dwq import attacks as A
from dwq.data import load_mnist5k
from dwq.eval import make_attack, run_at

EPS = 0.1


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    x, y = load_mnist5k("train").tensors
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for _ in range(60):
        idx = torch.randint(len(y), (256,))
        loss = F.cross_entropy(m(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    xt, yt = load_mnist5k("test").tensors
    return m.eval(), xt[:200], yt[:200]


def acc(m, x, y):
    with torch.no_grad():
        return (m(x).argmax(1) == y).float().mean().item()


def test_model_is_accurate(trained):
    m, x, y = trained
    assert acc(m, x, y) > 0.8


def test_eps_zero_leaves_accuracy_unchanged(trained):
    m, x, y = trained
    for xa in (A.pgd(m, x, y, 0.0, 0.0, 5), A.fgsm(m, x, y, 0.0), A.fgsm_rs(m, x, y, 0.0),
               A.eot_pgd([m, m], x, y, 0.0, 0.0, 3), A.bandits_td(m, x, y, 0.0, max_queries=20)[0]):
        assert torch.equal(xa, x)
        assert acc(m, xa, y) == acc(m, x, y)


def test_accuracy_falls_as_steps_grow(trained):
    m, x, y = trained
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    accs = [acc(m, A.pgd(m, x, y, EPS, EPS / 4, s, generator=g()), y) for s in (0, 1, 3, 10)]
    assert accs[0] > accs[1] >= accs[2] >= accs[3], accs
    assert accs[3] < 0.5 * acc(m, x, y)
    # restarts and per-sample early stop never make PGD weaker
    assert acc(m, A.pgd(m, x, y, EPS, EPS / 4, 10, restarts=3, generator=g()), y) <= accs[3] + 1e-9
    assert acc(m, A.pgd(m, x, y, EPS, EPS / 4, 10, early_stop=True, generator=g()), y) <= accs[3] + 0.02


@pytest.mark.parametrize("name", ["pgd", "pgd-cw", "fgsm", "fgsm-rs", "eot", "eot-fn", "bandits", "cw-linf"])
def test_perturbation_respects_eps_and_image_range(trained, name):
    m, x, y = trained
    xa = {
        "pgd": lambda: A.pgd(m, x, y, EPS, 0.05, 5),
        "pgd-cw": lambda: A.pgd(m, x, y, EPS, 0.05, 5, loss=A.cw_margin_loss),
        "fgsm": lambda: A.fgsm(m, x, y, EPS, alpha=0.3),  # step larger than ε: projection must hold
        "fgsm-rs": lambda: A.fgsm_rs(m, x, y, EPS),
        "eot": lambda: A.eot_pgd([m, m], x, y, EPS, 0.05, 3),
        "eot-fn": lambda: A.eot_pgd(lambda z: A.ce_loss(m(z), y), x, y, EPS, 0.05, 3),
        "bandits": lambda: A.bandits_td(m, x, y, EPS, max_queries=40)[0],
        "cw-linf": lambda: A.project_linf(A.cw_linf(m, x, y, tau=EPS, steps=10, binary_steps=2), x, EPS),
    }[name]()
    assert xa.shape == x.shape
    assert (xa - x).abs().max() <= EPS + 1e-6
    assert xa.min() >= 0.0 and xa.max() <= 1.0
    assert acc(m, xa, y) <= acc(m, x, y)


def test_cw_linf_fools_images_itself(trained):
    """The cw-linf case above checks the attack after project_linf, which holds whatever it returns: a
    cw_linf returning x unchanged passed every test of this file."""
    m, x, y = trained
    raw = A.cw_linf(m, x, y, tau=EPS, steps=10, binary_steps=2)
    assert acc(m, raw, y) < acc(m, x, y)
    changed = (raw != x).flatten(1).any(1)
    assert changed.any() and bool((m(raw[changed]).argmax(1) != y[changed]).all())  # (kept only when fooled)


def test_fgsm_weaker_than_pgd_and_attacks_hurt(trained):
    m, x, y = trained
    clean = acc(m, x, y)
    assert acc(m, A.fgsm(m, x, y, EPS), y) < clean
    assert acc(m, A.pgd(m, x, y, EPS, EPS / 4, 10), y) <= acc(m, A.fgsm(m, x, y, EPS), y) + 0.02


def test_bandits_is_black_box_and_query_limited(trained):
    m, x, y = trained
    calls = {"n": 0}

    def counted(z):
        calls["n"] += 1
        assert not torch.is_grad_enabled()  # outputs only, never gradients
        return m(z)

    xa, q = A.bandits_td(counted, x, y, EPS, max_queries=100, generator=torch.Generator().manual_seed(0))
    assert int(q.max()) <= 100 and q.dtype == torch.int64
    assert acc(m, xa, y) < acc(m, x, y)


def test_bandits_never_queries_nan_on_a_confident_model(trained):
    """The prior's exponentiated-gradient step overflowed (inf / inf) once online_lr times a loss
    difference passed 88: with the logits scaled by 10, 98 of 151 forwards got NaN images and those
    images stopped moving. The closed form keeps the prior in [-1, 1] and the same attack otherwise."""
    m, x, y = trained
    seen = []

    def confident(z):
        seen.append(bool(torch.isnan(z).any()))
        return m(z) * 10

    # (all 200 images: on 60, the NaN tiles were all in images already fooled, whose queries are discarded)
    xa, q = A.bandits_td(confident, x, y, EPS, max_queries=100, generator=torch.Generator().manual_seed(0))
    assert len(seen) > 1 and not any(seen)
    assert not torch.isnan(xa).any() and (xa - x).abs().max() <= EPS + 1e-6
    assert acc(m, xa, y) < acc(m, x, y)


def test_cw_l2_and_autoattack_run(trained):
    m, x, y = trained
    xs, ys = x[:20], y[:20]
    assert acc(m, A.cw_l2(m, xs, ys, steps=20), ys) <= acc(m, xs, ys)
    xa = A.autoattack(m, xs, ys, EPS, version="standard", seed=0, steps=10, square_queries=50)
    assert (xa - xs).abs().max() <= EPS + 1e-6
    assert acc(m, xa, ys) <= acc(m, A.pgd(m, xs, ys, EPS, EPS / 4, 10), ys) + 0.05
    with pytest.raises(ValueError, match="AutoAttack version must be 'standard' or 'rand', got 'plus-typo'"):
        A.autoattack(m, xs, ys, EPS, version="plus-typo")


def test_torchattacks_based_attacks_print_nothing_for_a_model_callable(trained, capsys):
    # torchattacks printed 'Failed to set device automatically ...' for each attack it built around a
    # callable without parameters (run_at's), once per batch in dwq eval's output
    m, x, y = trained
    f = lambda z: m(z)  # noqa: E731
    xs, ys = x[:4], y[:4]
    A.cw_l2(f, xs, ys, steps=1)
    A.autoattack(f, xs, ys, EPS, version="rand", steps=1, eot_iter=1)
    A.apgd_eot(f, xs, ys, EPS, steps=1, eot_iter=1)
    assert capsys.readouterr().out == ""


def test_torchattacks_based_attacks_keep_the_callers_mode_and_rng(trained):
    """cw_l2 and autoattack leave an eval-mode model in eval mode (torchattacks restored the train mode
    of the wrapper it was handed) and leave torch's global RNG where it was (its components seed it)."""
    m, x, y = trained
    xs, ys = x[:8], y[:8]
    m.eval()
    for attack in (lambda: A.cw_l2(m, xs, ys, steps=2),
                   lambda: A.autoattack(m, xs, ys, EPS, version="rand", seed=3, steps=2, eot_iter=1)):
        torch.manual_seed(123)
        want = torch.rand(3)
        torch.manual_seed(123)
        attack()
        assert not any(mod.training for mod in m.modules())
        assert torch.equal(torch.rand(3), want)
    m.train()
    A.cw_l2(m, xs, ys, steps=2)
    assert all(mod.training for mod in m.modules())  # a training model stays training
    m.eval()


def test_bad_eps_is_rejected(trained):
    m, x, y = trained
    with pytest.raises(ValueError, match="epsilon"):
        A.pgd(m, x, y, 8, 2 / 255, 5)
    with pytest.raises(ValueError, match="step"):
        A.pgd(m, x, y, 8 / 255, -1.0, 5)


def _ce_of(m, y):
    return lambda z: F.cross_entropy(m(z), y, reduction="none")


@pytest.mark.parametrize("call,msg", [
    # eot_pgd's loss-callable form returned the clean images for restarts=0 and took any step
    (lambda m, x, y: A.eot_pgd(_ce_of(m, y), x, y, EPS, 0.02, 2, restarts=0), r"restarts must be an int >= 1, got 0"),
    (lambda m, x, y: A.eot_pgd(_ce_of(m, y), x, y, EPS, 0.02, -1), r"steps must be an int >= 0, got -1"),
    (lambda m, x, y: A.eot_pgd(_ce_of(m, y), x, y, EPS, -0.02, 2), r"step size must be in \[0, 1\].*got -0.02"),
    # FGSM's step was unchecked: NaN gave NaN images, a negative step descended the loss
    (lambda m, x, y: A.fgsm(m, x, y, EPS, float("nan")), r"step size must be in \[0, 1\].*got nan"),
    (lambda m, x, y: A.fgsm_rs(m, x, y, EPS, -0.1), r"step size must be in \[0, 1\].*got -0.1"),
    (lambda m, x, y: A.pgd(m, x, y, EPS, 0.02, 2.5), r"steps must be an int >= 0, got 2.5"),  # range() TypeError
    (lambda m, x, y: A.pgd(m, x, y, True, 0.02, 2), r"epsilon must be in \[0, 1\].*got True"),  # bool tensor error
    (lambda m, x, y: A.bandits_td(m, x, y, EPS, tile_size=0), r"tile_size must be an int >= 1, got 0"),  # ZeroDivision
    (lambda m, x, y: A.bandits_td(m, x, y, EPS, max_queries=-2), r"max_queries must be an int >= 0, got -2"),
    (lambda m, x, y: A.cw_linf(m, x, y, tau=-1.0), r"tau must be in \(0, 1\].*got -1.0"),  # penalized every pixel
    (lambda m, x, y: A.cw_linf(m, x, y, steps=0), r"steps must be an int >= 1, got 0"),  # returned x
    # ten identical runs reported as PGD with ten restarts
    (lambda m, x, y: A.pgd(m, x, y, EPS, 0.02, 2, restarts=10, random_start=False), r"restarts=10 needs random_start"),
    (lambda m, x, y: A.eot_pgd(_ce_of(m, y), x, y, EPS, 0.02, 2, loss=A.cw_margin_loss), r"loss applies to a list"),
    # unchecked settings that switched the attack off (the clean images back), reversed it or gave NaN images
    (lambda m, x, y: A.bandits_td(m, x, y, EPS, fd_eta=0), r"fd_eta must be a finite number > 0, got 0"),
    (lambda m, x, y: A.bandits_td(m, x, y, EPS, exploration=0.0), r"exploration must be a finite number > 0"),
    (lambda m, x, y: A.bandits_td(m, x, y, EPS, online_lr=float("inf")), r"online_lr must be a finite number > 0"),
    (lambda m, x, y: A.bandits_td(m, x, y, EPS, image_lr=float("nan")), r"image_lr must be in \(0, 1\].*got nan"),
    (lambda m, x, y: A.bandits_td(m, x, y, EPS, image_lr=-0.025), r"image_lr must be in \(0, 1\].*got -0.025"),
    (lambda m, x, y: A.bandits_td(m, x[:, 0], y, EPS), r"x must be images \[N, C, H, W\].*got shape \(4, 28, 28\)"),
    (lambda m, x, y: A.cw_linf(m, x, y, c_init=0.0), r"c_init must be a finite number > 0, got 0.0"),
    # a bare TypeError from 1.25 * eps, a self-contradicting "n_classes is 10, but the model has 10 outputs"
    (lambda m, x, y: A.fgsm_rs(m, x, y, None), r"epsilon must be in \[0, 1\].*got None"),
    (lambda m, x, y: A.autoattack(m, x, y, EPS, n_classes="10"), r"n_classes must be an int >= 1, got '10'"),
    (lambda m, x, y: A.autoattack(m, x, y, EPS, seed=None), r"seed must be an int >= 0, got None"),
    (lambda m, x, y: A.apgd_eot(m, x, y, EPS, seed="0"), r"seed must be an int >= 0, got '0'"),
    # cross-entropy ignores label -100: that image had no gradient and came back unattacked
    (lambda m, x, y: A.pgd(m, x, torch.full_like(y, -100), EPS, 0.02, 2), r"y must hold class indices >= 0"),
    (lambda m, x, y: A.fgsm(m, x, torch.full_like(y, -100), EPS), r"y must hold class indices >= 0"),
    # a label the argmax never equals: every image counted as fooled, and returned unattacked
    (lambda m, x, y: A.bandits_td(m, x, y + 10, EPS, max_queries=4), r"class indices in \[0, 9\] \(the model has 10"),
    (lambda m, x, y: A.autoattack(m, x, y + 10, EPS, steps=1, square_queries=2), r"class indices in \[0, 9\]"),
    (lambda m, x, y: A.apgd_eot(m, x, y + 10, EPS, steps=1, eot_iter=1), r"class indices in \[0, 9\]"),
    # a negative factor descended the loss, 0 or NaN left every pixel where it was
    (lambda m, x, y: A.pgd(m, x, y, EPS, 0.02, 2, loss_scale=-1.0), r"loss_scale must be a finite number > 0"),
    (lambda m, x, y: A.fgsm_rs(m, x, y, EPS, loss_scale=float("nan")), r"loss_scale must be a finite number > 0"),
])
def test_bad_attack_settings_are_named(trained, call, msg):
    m, x, y = trained
    with pytest.raises(ValueError, match=msg):
        call(m, x[:4], y[:4])


@pytest.mark.parametrize("call", [lambda m, x, y: A.pgd(m, x, y, EPS, 0.02, 1), lambda m, x, y: A.fgsm(m, x, y, EPS),
                                  lambda m, x, y: A.cw_linf(m, x, y, steps=1), lambda m, x, y: A.cw_l2(m, x, y, steps=1),
                                  lambda m, x, y: A.apgd_eot(m, x, y, EPS, steps=1, eot_iter=1)])
def test_gradient_attacks_name_inference_mode(trained, call):
    # torch said 'element 0 of tensors does not require grad and does not have a grad_fn'
    m, x, y = trained
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"outside torch.inference_mode\(\)"):
        call(m, x[:4], y[:4])


def test_cw_linf_and_bandits_return_an_empty_batch(trained):
    """As pgd, fgsm and eot_pgd do; cw_linf failed in max() and bandits_td indexing its queries."""
    m, x, y = trained
    assert A.cw_linf(m, x[:0], y[:0], steps=1).shape == (0, 1, 28, 28)
    xa, q = A.bandits_td(m, x[:0], y[:0], EPS, max_queries=4)
    assert xa.shape == (0, 1, 28, 28) and q.shape == (0,)


def test_fgsm_rs_default_step_is_not_checked_as_a_given_one(trained):
    m, x, y = trained
    xa = A.fgsm_rs(m, x[:4], y[:4], 0.9)  # its default step 1.25·eps = 1.125 lies beyond [0, 1]
    assert (xa - x[:4]).abs().max() <= 0.9 + 1e-6


def test_eot_loss_is_the_exact_mean_over_precisions():
    from dwq.models import small_cnn

    torch.manual_seed(0)
    model = small_cnn(precisions=[2, 4, 8], width=8).eval()
    x = torch.rand(16, 1, 28, 28)
    y = torch.randint(10, (16,))
    fns = [run_at(model, p) for p in (2, 4, 8)]
    with torch.no_grad():
        per = [F.cross_entropy(f(x), y, reduction="none") for f in fns]
        expect = torch.stack(per).mean(0)
        got = A.eot_loss(fns, x, y)
    torch.testing.assert_close(got, expect)
    assert not torch.allclose(per[0], per[2])  # the precisions really differ
    # the list form and an explicit loss_fn give the same attack
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a = A.eot_pgd(fns, x, y, EPS, 0.02, 4, generator=g())
    b = A.eot_pgd(lambda z: torch.stack([A.ce_loss(f(z), y) for f in fns]).mean(0), x, y, EPS, 0.02, 4,
                  generator=g())
    torch.testing.assert_close(a, b)
    assert dwq.get_precision(model) == 8  # attacks never leave the precision changed


def _confident_fp16():
    """A model sure of class 0 (margin ~18) run under CPU float16 autocast: its loss gradients,
    ~exp(-18) = 1.5e-8, lie below float16's smallest subnormal (6e-8)."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    with torch.no_grad():
        m[3].bias.copy_(torch.tensor([18.0, 0, 0, 0]))

    def fp16(x):
        with torch.autocast("cpu", dtype=torch.float16):
            return m(x)
    x = torch.rand(16, 1, 8, 8)
    return m, fp16, x, torch.zeros(16, dtype=torch.long)


@pytest.mark.parametrize("attack", [lambda f, x, y, s: A.fgsm(f, x, y, 0.03, loss_scale=s),
                                    lambda f, x, y, s: A.pgd(f, x, y, 0.03, 0.01, 2, random_start=False, loss_scale=s)])
def test_loss_scale_keeps_fp16_gradients_from_flushing_to_zero(attack):
    """Under float16 autocast the unscaled input gradients of confident samples were exactly 0, so
    FGSM/PGD under AMP training left those pixels where they were. Scaled as the trainer scales
    (GradScaler's scale over the batch size), they move, the way the float32 gradient points."""
    m, fp16, x, y = _confident_fp16()
    scale = torch.amp.GradScaler("cpu").scale(torch.full((), 1.0 / len(y)))
    assert (attack(fp16, x, y, None) == x).float().mean() > 0.99  # the flush to zero this fixes
    xa = attack(fp16, x, y, scale)
    assert (xa == x).float().mean() < 0.02
    ref = attack(m, x, y, None)  # float32: no underflow
    assert ((xa - x).sign() == (ref - x).sign()).float().mean() > 0.95


def test_loss_scale_overflow_leaves_no_nan_and_float32_is_unchanged(trained):
    m, fp16, x, y = _confident_fp16()
    # 2^50 overflows float16 at the logits: inf - inf in the last layer's backward sum makes every
    # input gradient NaN, which torch.sign maps to 0 (dwq.attacks relies on it): no NaN image
    xa = A.fgsm(fp16, x, y, 0.03, loss_scale=2.0 ** 50)
    assert torch.isfinite(xa).all() and torch.equal(xa, x)
    # float32: a power-of-two scale is exact, so the signed steps are the unscaled ones, bit for bit
    m, x, y = trained
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(A.pgd(m, x[:32], y[:32], EPS, 0.02, 3, generator=g()),
                       A.pgd(m, x[:32], y[:32], EPS, 0.02, 3, generator=g(), loss_scale=1024.0))


def _rpt_cnn(dtype=torch.float32, seed=0):
    """A small CNN whose quantizers and BN saw a batch at each precision, in eval mode, and images it
    labels correctly (its own predictions: an attack that skips misclassified images attacks them all)."""
    from dwq.models import small_cnn

    torch.manual_seed(seed)
    m = small_cnn(precisions=[4, 8], width=8)
    with torch.no_grad():
        for p in (4, 8):
            run_at(m, p)(torch.rand(16, 1, 28, 28))
        m.eval().to(dtype)
        x = torch.rand(8, 1, 28, 28, dtype=dtype)
        return m, x, run_at(m, 8)(x).argmax(1)


@pytest.mark.parametrize("attack", [
    lambda f, x, y: A.cw_linf(f, x, y, steps=2, binary_steps=1),
    lambda f, x, y: A.cw_l2(f, x, y, steps=2),
    # ε so small that APGD breaks nothing and FAB (a backward per class) runs on every image
    lambda f, x, y: A.autoattack(f, x, y, 1e-4, steps=2, square_queries=2)])
def test_attacks_leave_no_gradient_in_the_models_parameters(attack):
    # cw_linf's loss.backward() and torchattacks' CW/FAB backward() filled the parameters' .grad
    m, x, y = _rpt_cnn()
    for f in (m, run_at(m, 4)):
        m.zero_grad(set_to_none=True)
        attack(f, x, y)
        assert [n for n, p in m.named_parameters() if p.grad is not None] == []


def test_torchattacks_based_attacks_keep_each_modules_mode():
    # a RandomPrecision wrapper is a new module, training, around an eval-mode model: torchattacks called
    # train() on it afterwards, which put the model's BN and quantizers in train mode
    m, x, y = _rpt_cnn()
    rpi = dwq.RandomPrecision(m, seed=0)
    for attack in (lambda: A.cw_l2(rpi, x, y, steps=1),
                   lambda: A.autoattack(rpi, x, y, EPS, version="rand", steps=1, eot_iter=1)):
        attack()
        assert rpi.training and not any(mod.training for mod in m.modules())


def test_torchattacks_based_attacks_run_a_training_model_in_eval_mode_and_hand_it_back_training():
    # torchattacks puts the module it is handed in eval mode for the attack: the wrapper registers the
    # model so that eval() reaches it; unregistered, a training model's BN statistics moved under attack
    m, x, y = _rpt_cnn()
    m.train()
    buffers = {n: b.clone() for n, b in m.named_buffers()}
    for attack in (lambda: A.cw_l2(m, x, y, steps=2),
                   lambda: A.autoattack(m, x, y, EPS, version="rand", steps=1, eot_iter=1)):
        attack()
        assert all(mod.training for mod in m.modules())
        moved = [n for n, b in m.named_buffers() if not torch.equal(b, buffers[n])]
        assert moved == [], moved


def test_float64_images_and_model():
    # cw_linf's float32 distances and torchattacks' FAB (in AutoAttack standard) failed on float64:
    # 'Index put requires the source and destination dtypes match'
    m, x, y = _rpt_cnn(torch.float64, seed=3)
    for xa in (A.cw_linf(m, x, y, steps=2, binary_steps=1), A.cw_l2(m, x, y, steps=2),
               A.autoattack(m, x, y, 8 / 255, steps=2, square_queries=5),
               A.apgd_eot(m, x, y, 8 / 255, steps=2, eot_iter=1)["returned"]):
        assert xa.dtype == torch.float64 and xa.shape == x.shape


@pytest.mark.parametrize("bad", [lambda y: y.int(), lambda y: y.float(), lambda y: y[:, None], lambda y: y[:2]])
@pytest.mark.parametrize("attack", [
    lambda m, x, y: A.pgd(m, x, y, EPS, 0.02, 1), lambda m, x, y: A.fgsm(m, x, y, EPS),
    lambda m, x, y: A.eot_pgd([m, m], x, y, EPS, 0.02, 1), lambda m, x, y: A.cw_linf(m, x, y, steps=1),
    lambda m, x, y: A.cw_l2(m, x, y, steps=1), lambda m, x, y: A.bandits_td(m, x, y, EPS, max_queries=2),
    lambda m, x, y: A.autoattack(m, x, y, EPS, steps=1, square_queries=1),
    lambda m, x, y: A.apgd_eot(m, x, y, EPS, steps=1, eot_iter=1)])
def test_bad_labels_are_named(trained, attack, bad):
    # torch said 'expected target dtype to be Long or Byte, but got Int', '0D or 1D target tensor expected,
    # multi-target not supported', 'one_hot is only applicable to index tensor of type LongTensor', and cw_l2
    # took int32 labels that the other attacks refused
    m, x, y = trained
    with pytest.raises(ValueError, match=r"y must be int64 class labels \[N\] on the images' device, N = 4 "
                                         r"\(x: \[4, 1, 28, 28\] on cpu\), got torch\.\w+ \[\d(, 1)?\] on cpu"):
        attack(m, x[:4], bad(y[:4]))


def test_apgd_counts_are_named(trained):
    m, x, y = trained
    with pytest.raises(ValueError, match=r"steps must be an int >= 1, got 2.5"):  # range()'s TypeError
        A.apgd_eot(m, x[:4], y[:4], EPS, steps=2.5)


def _classifier(classes):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, classes)).eval()


def test_autoattack_reads_the_class_count_and_targets_nine_classes(monkeypatch):
    """torchattacks takes n_classes - 1 targets: the default 10 failed on a 5-class model ('index -6 is out
    of bounds'), and dwq eval's class count ran 99 targets on a 100-class model, not the original's 9."""
    import torchattacks

    x = torch.rand(4, 1, 28, 28)
    targets = {}

    def record(self, images, labels):
        targets.update({type(a).__name__: a.n_target_classes for a in self.attacks if hasattr(a, "n_target_classes")})
        return images
    monkeypatch.setattr(torchattacks.MultiAttack, "forward", record)
    from dwq.eval import make_attack

    for classes, want in ((5, 4), (12, 9), (100, 9)):
        m = _classifier(classes)
        y = m(x).argmax(1)
        make_attack("autoattack", epsilon=EPS, num_classes=classes)(m, x, y)
        assert targets == {"APGDT": want, "FAB": want}
        targets.clear()
        A.autoattack(m, x, y, EPS, steps=1, square_queries=1)  # the default: read from the model
        assert targets == {"APGDT": want, "FAB": want}


@pytest.mark.parametrize("call,msg", [
    (lambda x: A.autoattack(_classifier(5), x, torch.zeros(4, dtype=torch.long), EPS, n_classes=10),
     r"n_classes is 10, but the model has 5 outputs"),
    (lambda x: A.autoattack(_classifier(3), x, torch.zeros(4, dtype=torch.long), EPS),
     r"AutoAttack 'standard' needs a model with at least 4 classes \(its targeted DLR loss\), got 3 outputs"),
    (lambda x: A.autoattack(_classifier(2), x, torch.zeros(4, dtype=torch.long), EPS, version="rand"),
     r"AutoAttack 'rand' needs a model with at least 3 classes \(its DLR loss\), got 2 outputs"),
    (lambda x: A.apgd_eot(_classifier(2), x, torch.zeros(4, dtype=torch.long), EPS, loss="dlr"),
     r"APGD's DLR loss needs a model with at least 3 classes, got 2 outputs")])
def test_autoattack_class_count_is_checked(call, msg):
    # each was an IndexError inside torchattacks
    with pytest.raises(ValueError, match=msg):
        call(torch.rand(4, 1, 28, 28))


@pytest.mark.parametrize("attack", [lambda m, x, y: A.autoattack(m, x, y, EPS, steps=1, square_queries=1),
                                    lambda m, x, y: make_attack("cw-linf", epsilon=EPS)(m, x, y),
                                    lambda m, x, y: A.pgd(m, x, y, EPS, 0.05, 1)])
def test_adversarial_images_are_detached_from_an_input_that_requires_grad(trained, attack):
    # autoattack's and make_attack('cw-linf')'s final projection onto the ball around x linked the
    # result to x's graph, so a later backward through the adversarial images reached x
    m, x, y = trained
    xg = x[:4].clone().requires_grad_(True)
    assert not attack(m, xg, y[:4]).requires_grad


def test_apgd_eot_on_cpu_images_does_not_reseed_the_gpus(monkeypatch):
    """torch.manual_seed(seed) inside a CPU-only fork reseeded every CUDA generator of a machine with a
    GPU, and nothing gave their states back; the CPU images draw from the CPU generator alone."""
    from dwq.attacks import apgd_eot

    torch.manual_seed(0)
    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda s: reseeded.append(s))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda s: reseeded.append(s))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))
    x, y = torch.rand(3, 3, 2, 2), torch.tensor([0, 1, 2])
    before = torch.get_rng_state()
    a = apgd_eot(model, x, y, 0.1, steps=2, eot_iter=1, seed=5)
    b = apgd_eot(model, x, y, 0.1, steps=2, eot_iter=1, seed=5)
    assert reseeded == [] and torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a["x_best"], b["x_best"])  # still seeded: the same start each time


@pytest.mark.parametrize("attack", [
    lambda m, x, y, **k: A.pgd(m, x, y, 8 / 255, 2 / 255, 2, **k),
    lambda m, x, y, **k: A.eot_pgd([m, m], x, y, 8 / 255, 2 / 255, 2, **k),
    lambda m, x, y, **k: A.eot_pgd(lambda xa: m(xa).logsumexp(1), x, y, 8 / 255, 2 / 255, 2, **k),
    lambda m, x, y, **k: A.fgsm(m, x, y, 8 / 255, **k),
    lambda m, x, y, **k: A.fgsm_rs(m, x, y, 8 / 255, **k),
    lambda m, x, y, **k: A.cw_linf(m, x, y, steps=2, binary_steps=1, **k),
    lambda m, x, y, **k: A.bandits_td(m, x, y, 8 / 255, max_queries=4, **k)[0],
    lambda m, x, y, **k: A.apgd_eot(m, x, y, 8 / 255, steps=2, eot_iter=1)["returned"] if not k else None,
    lambda m, x, y, **k: A.cw_l2(m, x, y, steps=2) if not k else None,
    lambda m, x, y, **k: A.autoattack(m, x, y, 8 / 255, steps=1, square_queries=1) if not k else None,
], ids=["pgd", "eot_pgd", "eot_pgd_loss", "fgsm", "fgsm_rs", "cw_linf", "bandits", "apgd_eot", "cw_l2", "autoattack"])
def test_images_outside_the_range_are_refused(attack, request):
    """The attacks clamp to [lo, hi]: normalized images came back up to 1 away from x at eps = 8/255,
    with no error; now refused (NaN too), and an attack given that range runs within eps."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 4))
    x, y = torch.rand(3, 3, 4, 4), torch.tensor([0, 1, 2])
    for bad in (x * 3 - 1, torch.where(x > 0.5, float("nan"), x)):
        with pytest.raises(ValueError, match=r"x must hold images in \[0, 1\] .*epsilon bound"):
            attack(m, bad, y)
    out = attack(m, x * 3 - 1, y, lo=-1.0, hi=2.0)
    if out is not None:  # (the torchattacks ones take images in [0, 1] only)
        assert out.min() >= -1 and out.max() <= 2
        if "cw_linf" not in request.node.name:  # (bounded by its tau penalty, not by eps)
            assert (out - (x * 3 - 1)).abs().max() <= 8 / 255 + 1e-6


def test_torchattacks_based_attacks_give_every_gpu_its_rng_state_back(trained, monkeypatch):
    """autoattack and cw_l2 on CPU images forked the CPU generator alone, while torchattacks' own
    torch.manual_seed reseeded every GPU's generator as well: the caller's CUDA RNG came back reseeded.
    A machine with two GPUs, their generators held here, shows it without one."""
    from dwq.attacks import extra

    m, x, y = trained
    states = {0: torch.tensor([11]), 1: torch.tensor([22])}

    def seed_all(s):
        states.update({d: torch.tensor([s]) for d in states})

    def seed_current(s):
        states[0] = torch.tensor([s])

    monkeypatch.setattr(extra, "_gpus", lambda: [0, 1])
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": states[device].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device="cuda": states.__setitem__(device, s.clone()))
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seed_all)
    monkeypatch.setattr(torch.cuda, "manual_seed", seed_current)
    monkeypatch.setattr(torch.cuda.random, "manual_seed", seed_current)
    for attack in (lambda: A.cw_l2(m, x[:4], y[:4], steps=1),
                   lambda: A.autoattack(m, x[:4], y[:4], EPS, version="rand", seed=3, steps=1, eot_iter=1)):
        attack()
        assert {d: s.item() for d, s in states.items()} == {0: 11, 1: 22}
    seed_all(5)  # (the held generators do see a seed: this test's fakes are live)
    assert {d: s.item() for d, s in states.items()} == {0: 5, 1: 5}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (its generators, not the test's fakes)")
def test_autoattack_on_cpu_images_keeps_the_cuda_rng(trained):
    m, x, y = trained
    torch.cuda.manual_seed_all(7)
    before = torch.cuda.get_rng_state_all()
    A.autoattack(m, x[:4], y[:4], EPS, version="rand", seed=3, steps=1, eot_iter=1)
    assert all(torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(), before))


def test_eot_restarts_keep_the_start_more_precisions_misclassify():
    """With a list of models the restart was chosen by the averaged softmax: a start where two of three
    models are wrong (the average right) lost to one where one is (the average wrong)."""
    def model(low, high):  # logits by whether the (one-pixel) image is below 0.5
        def m(x):
            below = (x.flatten(1)[:, :1] < 0.5).float()
            return below * torch.tensor([low]) + (1 - below) * torch.tensor([high])
        return m
    models = [model([20.0, 0.0], [0.0, 20.0]), model([0.0, 0.1], [0.1, 0.0]), model([0.0, 0.1], [0.1, 0.0])]
    x, y = torch.full((64, 1, 1, 1), 0.5), torch.zeros(64, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    adv = A.eot_pgd(models, x, y, 0.5, 0.1, 0, restarts=10, generator=g)
    assert (adv.flatten() < 0.5).all()  # two of three wrong there
    below = torch.zeros(1, 1, 1, 1)
    assert A.eot_loss(models, below, y[:1]).item() < A.eot_loss(models, torch.ones(1, 1, 1, 1), y[:1]).item()
    probs = sum(F.softmax(m(below), 1) for m in models) / 3
    assert probs.argmax(1).item() == 0  # where the averaged prediction is right


def test_restart_ties_keep_the_later_restart_in_both_forms():
    """pgd's restart_select="loss" keeps the later restart on ties; eot_pgd's loss-callable form kept the
    first, so the same flat loss gave another image there, and a loss of -inf gave back the clean x."""
    x, y = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0)), torch.zeros(8, dtype=torch.long)
    flat = lambda z: torch.zeros(z.shape[0], 2)  # noqa: E731  (every restart ties)
    g = torch.Generator().manual_seed(1)
    starts = [A.project_linf(x + A.core._uniform(x, EPS, g), x, EPS) for _ in range(3)]
    by_pgd = A.pgd(flat, x, y, EPS, 0.02, 0, restarts=3, restart_select="loss",
                   generator=torch.Generator().manual_seed(1))
    for loss in (0.0, -float("inf")):
        by_eot = A.eot_pgd(lambda z: torch.full((z.shape[0],), loss), x, y, EPS, 0.02, 0, restarts=3,
                           generator=torch.Generator().manual_seed(1))
        assert torch.equal(by_eot, starts[-1])
    assert torch.equal(by_pgd, starts[-1])


def test_cw_margin_loss_moves_confidently_classified_images():
    """The margin was floored at -kappa, so an image whose true class led by more than kappa had no
    gradient and PGD on it never moved; capped at +kappa, it moves every image until it is fooled by
    kappa, and the loss no longer depends on how far the true class leads."""
    base = _classifier(10)
    m = lambda z: 5000 * base(z)  # (a confident model: margins in the hundreds)
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = m(x).argmax(1)
        top2 = m(x).topk(2, 1).values
    assert (top2[:, 0] - top2[:, 1] > 50).all()
    xa = A.pgd(m, x, y, 8 / 255, 2 / 255, 5, random_start=False, loss=A.cw_margin_loss)
    assert ((xa - x).abs().flatten(1).amax(1) > 0).all()
    z = torch.tensor([[0.0, 100.0, 1.0], [0.0, 1.0, 80.0]])
    torch.testing.assert_close(A.cw_margin_loss(z, torch.tensor([0, 0])), torch.tensor([50.0, 50.0]))
    torch.testing.assert_close(A.cw_margin_loss(-z, torch.tensor([0, 0])), torch.tensor([-1.0, -1.0]))


def test_cw_l2_is_shift_invariant_and_moves_saturated_pixels():
    """torchattacks' CW margin read a masked logit as 0, so with every logit below 0 (a shift of the
    same classifier by -100) it had no gradient and fooled nothing; and its atanh of pixels at exactly
    0 or 1 was infinite, so those pixels never moved."""
    base = _classifier(10)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(16, 1, 28, 28, generator=g) * 3 - 1).clamp(0, 1)  # about 2/3 of the pixels at 0 or 1
    with torch.no_grad():
        y = base(x).argmax(1)
    fooled = []
    for shift in (0.0, -100.0):
        m = lambda z, s=shift: base(z) + s
        xa = A.cw_l2(m, x, y, c=10.0, steps=30, lr=0.05)
        with torch.no_grad():
            fooled.append(m(xa).argmax(1) != y)
    assert torch.equal(fooled[0], fooled[1]) and fooled[0].sum() >= 4, fooled
    sat = (x == 0) | (x == 1)
    assert ((xa - x).abs() > 0)[sat].float().mean() > 0.05


def test_cw_l2_moves_saturated_pixels_by_what_its_docstring_says():
    """The docstring said the scaled change of variables made pixels at 0 or 1 move; at the defaults
    (100 steps of lr 0.01) they moved by 2e-6 while the others moved by 0.03: what it says now."""
    g = torch.Generator().manual_seed(0)
    m = _classifier(10)
    x = (torch.rand(16, 1, 28, 28, generator=g) * 3 - 1).clamp(0, 1)
    with torch.no_grad():
        y = m(x).argmax(1)
    sat = (x == 0) | (x == 1)
    moved = (A.cw_l2(m, x, y) - x).abs()[sat].max()
    assert 0 < moved < 1e-4  # "1e-6 to 1e-5" at the defaults
    assert (A.cw_l2(m, x, y, steps=1000) - x).abs()[sat].max() > 0.02  # (0.035 here) "0.03-0.25" at 1,000


def test_cw_attacks_run_under_no_grad_and_name_labels_out_of_range():
    """cw_l2 failed under torch.no_grad() ('element 0 of tensors does not require grad'), which the
    other attacks allow; both CW attacks let one_hot refuse a label >= the model's outputs unnamed."""
    m = _classifier(10)
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = m(x).argmax(1)
        xa = A.cw_l2(m, x, y, c=10.0, steps=30, lr=0.05)
    assert torch.equal(xa, A.cw_l2(m, x, y, c=10.0, steps=30, lr=0.05)) and not torch.equal(xa, x)
    for attack in (lambda y: A.cw_l2(m, x, y, steps=1), lambda y: A.cw_linf(m, x, y, steps=1, binary_steps=1)):
        with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 9\] \(the model has 10 outputs\)"):
            attack(torch.tensor([0, 1, 10, 2] * 4))


def test_cw_linf_refuses_a_step_size_that_never_moves(trained):
    m, x, y = trained
    for lr in (0.0, -0.01, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lr must be a finite number > 0"):
            A.cw_linf(m, x[:4], y[:4], lr=lr, steps=1)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_images_stay_inside_the_ball(dtype):
    """x ± eps rounded to nearest in the images' dtype lay up to half a unit outside the ball:
    PGD and FGSM gave |x_adv - x| = 1.06 eps on bfloat16 images."""
    m = _classifier(10).to(dtype)
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(dtype)
    y = torch.randint(10, (64,), generator=torch.Generator().manual_seed(1))
    eps = 8 / 255
    for xa in (A.pgd(m, x, y, eps, 2 / 255, 5), A.fgsm(m, x, y, eps)):
        assert xa.dtype == dtype
        assert (xa.double() - x.double()).abs().max().item() <= eps


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cw_linf_and_bandits_take_half_precision_images(dtype):
    """cw_linf ran Adam on a float16 delta (its eps 1e-8 is 0 there: NaN and -inf steps), so its
    'successes' lay about 0.99 from x; bandits_td gave a float16 model float32 queries and failed."""
    m32 = _classifier(10)
    m = _classifier(10).to(dtype)
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = m32(x).argmax(1)
    dist = []
    for model, xs in ((m32, x), (m, x.to(dtype))):
        xa = A.cw_linf(model, xs, y, tau=0.05, c_init=0.1, steps=30, binary_steps=1)
        assert xa.dtype == xs.dtype and torch.isfinite(xa).all()
        dist.append((xa.double() - xs.double()).abs().flatten(1).amax(1).max().item())
    assert 0 < dist[1] < 2 * dist[0] + 0.02, dist  # (moved: an attack returning x passed the bound alone)
    xa, queries = A.bandits_td(m, x.to(dtype), y, 8 / 255, max_queries=20)
    assert xa.dtype == dtype and (xa.double() - x.to(dtype).double()).abs().max() <= 8 / 255 and queries.max() > 0


def test_a_start_is_projected_and_apgd_takes_an_empty_batch(trained):
    """pgd(start=..., steps=0) returned a start outside the ball as it was (0.75 from x at eps 8/255);
    apgd_eot failed to reshape an empty batch inside torchattacks, where every other attack returns it."""
    m, x, y = trained
    x, y = x[:4], y[:4]
    a = A.pgd(m, x, y, EPS, 0.02, 0, start=torch.zeros_like(x))
    assert (a - x).abs().max() <= EPS + 1e-7
    drawn = A.draw_random_start(x, EPS, torch.Generator().manual_seed(0))
    assert torch.equal(A.pgd(m, x, y, EPS, 0.02, 0, start=drawn), drawn)  # inside: unchanged
    r = A.apgd_eot(m, x[:0], y[:0], EPS, steps=1, eot_iter=1)
    assert all(v.shape[0] == 0 for v in r.values()) and r["returned"].shape == x[:0].shape


def test_cw_l2_counts_a_success_only_beyond_kappa():
    """torchattacks' success test was argmax != y whatever κ: with κ = 2 the returned images were just
    misclassified (margins -0.001 .. -0.056). Now each is misclassified by more than κ, or the clean image."""
    from dwq.attacks.core import logit_margin

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)).eval()
    x = torch.rand(4, 1, 28, 28)
    y = m(x).argmax(1)
    for kappa in (0.0, 2.0):
        xa = A.cw_l2(m, x, y, kappa=kappa, c=10.0, steps=200, lr=0.01)
        with torch.no_grad():
            margin = logit_margin(m(xa), y)
        moved = (xa - x).flatten(1).abs().amax(1) > 0
        assert moved.any()
        assert bool((margin[moved] < -kappa).all()), (kappa, margin)


def test_attack_settings_that_silently_do_nothing_are_refused():
    """A step of 0 (PGD, FGSM, FGSM-RS) returned x: robust accuracy read as clean; cw_l2 with c, lr or steps
    <= 0 or a negative κ, and cw_linf with a negative κ, returned the clean images."""
    m, x, y = _rpt_cnn()
    for call in (lambda: A.pgd(m, x, y, EPS, 0.0, 3), lambda: A.fgsm(m, x, y, EPS, 0.0),
                 lambda: A.fgsm_rs(m, x, y, EPS, 0.0)):
        with pytest.raises(ValueError, match="step size must be > 0 when epsilon is"):
            call()
    assert torch.equal(A.pgd(m, x, y, 0.0, 0.0, 2), x)  # (ε = 0: nothing to move, nothing refused)
    for kw, name in (({"c": 0.0}, "c must be a finite number > 0"), ({"lr": 0.0}, "lr must be a finite number > 0"),
                     ({"steps": 0}, "steps must be an int >= 1"), ({"steps": 2.0}, "steps must be an int >= 1"),
                     ({"kappa": -5.0}, "kappa must be a finite number >= 0")):
        with pytest.raises(ValueError, match=name):
            A.cw_l2(m, x, y, **kw)
    with pytest.raises(ValueError, match="kappa must be a finite number >= 0"):
        A.cw_linf(m, x, y, kappa=-5.0)
    with pytest.raises(ValueError, match=r"epsilon must be a Python or NumPy number in \[0, 1\], got a tensor"):
        A.pgd(m, x, y, torch.tensor(EPS), EPS / 4, 1)


def test_apgd_paths_check_their_images_first():
    """torchattacks' APGD made [N, D] input one batch ("Expected input batch_size (1) to match target
    batch_size (4)"); autoattack ran the model on x[:1] before checking it, so a NaN pixel failed in a
    quantizer."""
    lin = torch.nn.Linear(20, 10)
    x2, y2 = torch.rand(4, 20), torch.zeros(4, dtype=torch.long)
    for fn, call in (("apgd_eot", lambda: A.apgd_eot(lin, x2, y2, EPS, steps=1, eot_iter=1)),
                     ("autoattack", lambda: A.autoattack(lin, x2, y2, EPS, steps=1))):
        with pytest.raises(ValueError, match=rf"{fn}: x must be images \[N, C, H, W\], got shape \(4, 20\)"):
            call()
    m, x, y = _rpt_cnn()
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x must hold images in"):
        A.autoattack(m, bad, y, EPS, steps=1)
