"""The training attack replayed from CUDA graphs (``TrainConfig.cuda_graphs``, ``dwq train
--cuda-graphs``; issue 10): one graph of the whole PGD attack per precision, so that its launches cost
the host one replay instead of a few thousand kernel launches (on the H200 an eager PGD-7 step of
PreActResNet18 at batch 128 was bound by the host: 72 ms eager, 44 ms with the whole step in a graph).

The update stays eager: its optimizer step reads the learning rate as a Python number, which a graph
would keep at its captured value, and with AMP its scaler reads its overflow check on the host; it
is one forward and backward of the eight. Each step the batch and the random start go into static
tensors (the start drawn eagerly from the run's CPU generator, in the order the eager attack draws
it), and with AMP the attack's loss scale, the scaler's of the step, so a graphed run trains on the
same numbers as an eager one.
Before a precision's graph is captured its attack runs a few times on a side stream (cuDNN's plans,
lazy state); the model's buffers, which those train-mode forwards move (batch-norm statistics,
activation ranges), are put back first. A batch of another shape (an epoch's short last one) runs
eagerly. The graphs share one memory pool: they run one after another, and nothing outside reads a
graph's tensors but the static output, read before the next replay.
"""
from typing import Callable, Dict, Hashable, Optional

import torch
from torch import nn

from dwq.attacks import draw_random_start, pgd
from dwq.quant import reuse_quantized_weights


def on_side_stream(fn: Callable[[], None]) -> None:
    """Runs ``fn`` on a side stream that waits for the current one, which then waits for it: the
    warm-up before a CUDA graph capture (cuDNN's plans, lazy state), kept off the captured stream."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)


class AttackGraphs:
    """PGD (``eps``, ``alpha``, ``steps``; random start from the CPU ``generator``) against ``model``,
    replayed per precision key from a CUDA graph; :meth:`craft` returns what ``pgd`` would."""

    warmup = 3  # eager runs before a capture

    def __init__(self, model: nn.Module, eps: float, alpha: float, steps: int,
                 generator: Optional[torch.Generator] = None, autocast: Optional[str] = None):
        self.model, self.eps, self.alpha, self.steps, self.gen = model, eps, alpha, steps, generator
        self.autocast = autocast  # a device type: the forwards under float16 autocast there (AMP)
        self._replays: Dict[Hashable, Callable[[], None]] = {}
        self._like = None  # (shape, dtype, device) of the batches the graphs take, and whether scaled
        self._x = self._y = self._start = self._scale = self._out = None
        self._pool = None

    def craft(self, x: torch.Tensor, y: torch.Tensor, key: Hashable,
              loss_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Adversarial images for the batch ``(x, y)`` at the model's current precision, ``key`` (a
        graph per key: the precision the model is set to); ``loss_scale`` as :func:`dwq.attacks.pgd`'s
        (AMP). The result is a static tensor, overwritten by the next call."""
        start = draw_random_start(x, self.eps, self.gen)
        like = (x.shape, x.dtype, x.device, y.shape, loss_scale is None)
        if self._like is not None and like != self._like:
            return self._attack(x, y, start, loss_scale)
        if self._like is None:
            self._like = like
            self._x, self._y, self._start = torch.empty_like(x), torch.empty_like(y), torch.empty_like(x)
            self._scale = None if loss_scale is None else torch.empty_like(loss_scale)
            self._out = torch.empty_like(x)
        self._x.copy_(x)
        self._y.copy_(y)
        self._start.copy_(start)
        if loss_scale is not None:
            self._scale.copy_(loss_scale)
        replay = self._replays.get(key)
        if replay is None:
            replay = self._replays[key] = self._capture()
        replay()
        return self._out

    def _forward(self, x):
        # (No autocast cache: a capture must not keep casts between its forwards; the values are the same.)
        with torch.autocast(self.autocast or "cpu", dtype=torch.float16, enabled=self.autocast is not None,
                            cache_enabled=False):
            return self.model(x)

    def _attack(self, x, y, start, loss_scale):
        # Its own reuse of the quantized weights: captured, the kept copies are the graph's own tensors,
        # dropped at the end of the capture (a copy kept from outside would be read at every replay).
        with reuse_quantized_weights(self.model):
            return pgd(self._forward, x, y, self.eps, self.alpha, self.steps, start=start, loss_scale=loss_scale)

    def _body(self) -> None:
        self._out.copy_(self._attack(self._x, self._y, self._start, self._scale))

    def _capture(self) -> Callable[[], None]:
        saved = [(b, b.clone()) for b in self.model.buffers()]
        self._warm(self._body)
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)
        return self._record(self._body)

    def _warm(self, body: Callable[[], None]) -> None:
        def runs():
            for _ in range(self.warmup):
                body()

        on_side_stream(runs)

    def _record(self, body: Callable[[], None]) -> Callable[[], None]:
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        g = torch.cuda.CUDAGraph()
        # thread_local: other threads' CUDA calls meanwhile (NCCL's watchdog under torchrun, a loader's
        # pinning) must not end the capture; this thread's own unsafe calls still do
        with torch.cuda.graph(g, pool=self._pool, capture_error_mode="thread_local"):
            body()
        return g.replay
