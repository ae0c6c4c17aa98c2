"""Small models for the deploy tests: calibrated at every precision of their set (one train-mode pass
per precision sets the activation ranges and BN statistics), or briefly trained on MNIST-5k."""
import functools
import json

import torch

import dwq


def calibrated(model, shape, batches=1, seed=0):
    """``model`` after ``batches`` train-mode forwards of random images ``shape`` at each precision, in eval mode."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for p in dwq.precision_set(model):
            dwq.set_precision(model, p)
            for _ in range(batches):
                model(torch.rand(*shape, generator=g))
    return model.eval()


@functools.lru_cache(maxsize=None)
def _trained(precisions, width, steps, seed):
    return _train(list(precisions), width, steps, seed)


def trained_mnist_cnn(precisions, width=8, steps=60, seed=0):
    """A small CNN after ``steps`` natural RPT steps on MNIST-5k (enough for non-trivial accuracy), then a
    few batches per precision to settle the BN statistics and activation ranges; eval mode. Trained once
    per test session for each argument set: callers change its precision only through context managers."""
    return _trained(tuple(precisions), width, steps, seed)


def _train(precisions, width, steps, seed):
    from dwq.data import load_mnist5k
    from dwq.models import small_cnn

    torch.manual_seed(seed)
    m = small_cnn(precisions=precisions, width=width)
    x, y = load_mnist5k("train").tensors
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    for i in range(steps):
        dwq.set_precision(m, precisions[i % len(precisions)])
        idx = torch.randint(len(y), (64,))
        loss = torch.nn.functional.cross_entropy(m(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for p in precisions:
            dwq.set_precision(m, p)
            for _ in range(5):
                m(x[torch.randint(len(y), (256,))])
    return m.eval()


def rewrite_artifact(src, dst, edit_model):
    """A copy of the artifact ``src`` at ``dst`` (may be ``src``) with its description edited by
    ``edit_model`` and both digests recomputed, so that only the edit is what a load may refuse."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from dwq._digest import tensor_digest
    from dwq.deploy.artifact import _model_digest

    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()["dwq"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit_model(meta["model"])
    meta["sha256"], meta["model_sha256"] = tensor_digest(tensors), _model_digest(meta["model"])
    save_file(tensors, str(dst), metadata={"dwq": json.dumps(meta)})
    return str(dst)


def rewrite_metadata(path, edit):
    """Rewrites an artifact's dwq metadata in place through ``edit(meta)``, its tensors unchanged (the
    digests are the editor's business: a tool of one's own, or a damaged file)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(path, framework="pt") as f:
        meta = json.loads(f.metadata()["dwq"])
    edit(meta)
    save_file(load_file(path), path, metadata={"dwq": json.dumps(meta)})
