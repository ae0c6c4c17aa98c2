"""The Hopper engines' K-major weight copies (csrc/cuda/qgemm.cu, kmajor_weight): kept per blob and
stream while the blob lives and keeps its tensor version, so a changed weight is never read stale: an
in-place write, a load_state_dict copy, a CUDA graph replayed after the weight changed, another stream,
an inference-mode blob. The copy's memory goes with its blob, and DWQ_CUDA_WEIGHT_CACHE=0 keeps none.
"""
import pytest
import torch

from dwq.ops._lib import HAS_EXT, has_kernel

pytestmark = [
    pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(HAS_EXT and torch.cuda.is_available() and not has_kernel("qlinear", "cuda"),
                       reason="dwq._C was built without its CUDA kernels (DWQ_NO_CUDA=1 or no nvcc)"),
    pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.get_device_capability() != (9, 0),
                       reason="the wgmma engines, whose weight copy this is, need compute capability 9.0"),
]

from dwq.ops import qgemm as q  # noqa: E402
from kernel_data import rand_codes, rand_zp  # noqa: E402

M, N, K = 256, 128, 512  # tensor-core tiles, no split of K: the wgmma engines run it


@pytest.fixture(params=["wgmma", "wgmma_tma"])
def engine(request, monkeypatch):
    monkeypatch.setenv("DWQ_CUDA_GEMM", request.param)
    monkeypatch.delenv("DWQ_CUDA_WEIGHT_CACHE", raising=False)
    return request.param


def weights(seed, bits=8):
    g = torch.Generator().manual_seed(seed)
    w, zw = rand_codes(g, (N, K), bits), rand_zp(g, bits, (N,))
    return q.pack_weight(w, zw, bits), q.pack_weight(w.cuda(), zw.cuda(), bits)


def x_codes(seed, bits=8):
    g = torch.Generator().manual_seed(seed)
    return rand_codes(g, (M, K), bits, torch.uint8 if bits <= 8 else None), rand_zp(g, bits)


def acc(x, zx, bits, wp):
    return q.qgemm_acc(x.cuda(), zx.cuda(), bits, wp).cpu()


def test_in_place_writes_are_seen(engine):
    x, zx = x_codes(1)
    cpu1, wp = weights(2)
    cpu2, wp2 = weights(3)
    cpu3, wp3 = weights(4)
    want = [q.qgemm_acc(x, zx, 8, c) for c in (cpu1, cpu2, cpu3)]
    assert not torch.equal(want[0], want[1])
    assert torch.equal(acc(x, zx, 8, wp), want[0])
    assert torch.equal(acc(x, zx, 8, wp), want[0])  # the kept copy
    wp.copy_(wp2)
    assert torch.equal(acc(x, zx, 8, wp), want[1])
    with torch.no_grad():  # load_state_dict's copy into a registered buffer
        holder = torch.nn.Module()
        holder.register_buffer("w", wp)
        holder.load_state_dict({"w": wp3})
    assert torch.equal(acc(x, zx, 8, holder.w), want[2])
    wp[:, :].copy_(wp2)  # through a view: views share the blob's version
    assert torch.equal(acc(x, zx, 8, wp), want[1])


def test_conv_weight_and_16_bit_limbs(engine):
    """The implicit conv (channels-last uint8) and the two-limb weight read their own copies."""
    g = torch.Generator().manual_seed(5)
    x = rand_codes(g, (2, 32, 10, 10), 8, torch.uint8).contiguous(memory_format=torch.channels_last)
    zx = rand_zp(g, 8)
    ws = [(rand_codes(g, (64, 32, 3, 3), 8), rand_zp(g, 8, (64,))) for _ in range(2)]
    packed = [q.pack_conv_weight(w.cuda(), z.cuda(), 8) for w, z in ws]
    want = [q.qconv2d_acc(x, zx, 8, q.pack_conv_weight(w, z, 8), 3, 1, 1) for w, z in ws]
    wp = packed[0].clone()
    for i in (0, 0, 1):
        if i == 1:
            wp.copy_(packed[1])
        assert torch.equal(q.qconv2d_acc(x.cuda(), zx.cuda(), 8, wp, 3, 1, 1).cpu(), want[i])
    x16, zx16 = x_codes(6, 16)
    cpu_a, wa = weights(7, 16)
    cpu_b, wb = weights(8, 16)
    assert torch.equal(acc(x16, zx16, 16, wa), q.qgemm_acc(x16, zx16, 16, cpu_a))
    wa.copy_(wb)
    assert torch.equal(acc(x16, zx16, 16, wa), q.qgemm_acc(x16, zx16, 16, cpu_b))


def test_streams_and_cuda_graph_replay(engine, monkeypatch):
    """A copy still being written on one stream is not read from another; a graph captured with the
    weight reads the weight as it is at replay."""
    x, zx = x_codes(9)
    cpu1, wp = weights(10)
    cpu2, wp2 = weights(11)
    want1, want2 = q.qgemm_acc(x, zx, 8, cpu1), q.qgemm_acc(x, zx, 8, cpu2)
    xd, zxd = x.cuda(), zx.cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(20_000_000)  # the side stream's copy of wp stays unwritten for a while
        y_side = q.qgemm_acc(xd, zxd, 8, wp)
    y_main = q.qgemm_acc(xd, zxd, 8, wp)  # the default stream, not waiting for the side one
    assert torch.equal(y_main.cpu(), want1)
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(y_side.cpu(), want1)

    monkeypatch.setenv("DWQ_CUDA_CHECKS", "0")
    with torch.cuda.stream(side):
        q.qgemm_acc(xd, zxd, 8, wp)  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = q.qgemm_acc(xd, zxd, 8, wp)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out.cpu(), want1)
    wp.copy_(wp2)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out.cpu(), want2)
    assert torch.equal(q.qgemm_acc(xd, zxd, 8, wp).cpu(), want2)


def test_inference_mode_blob(engine):
    """A blob made in inference mode has no version: it is copied per call, so writes are seen."""
    x, zx = x_codes(12)
    cpu1, _ = weights(13)
    cpu2, wp2 = weights(14)
    with torch.inference_mode():
        wp = weights(13)[1]
        assert wp.is_inference()
        assert torch.equal(acc(x, zx, 8, wp), q.qgemm_acc(x, zx, 8, cpu1))
        wp.copy_(wp2)
        assert torch.equal(acc(x, zx, 8, wp), q.qgemm_acc(x, zx, 8, cpu2))


def test_copy_memory_kept_then_freed(engine, monkeypatch):
    x, zx = x_codes(15)
    xd, zxd = x.cuda(), zx.cuda()
    _, other = weights(17)
    q.qgemm_acc(xd, zxd, 8, other)  # other's copy kept; those of blobs that earlier tests freed dropped
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    wp = weights(16)[1]
    blob = torch.cuda.memory_allocated() - base
    q.qgemm_acc(xd, zxd, 8, wp)
    kept = torch.cuda.memory_allocated() - base - blob
    assert kept >= N * K, (kept, blob)  # the copy, [1 limb][N][K] bytes
    q.qgemm_acc(xd, zxd, 8, wp)
    assert torch.cuda.memory_allocated() - base - blob == kept  # found, not made again
    del wp
    q.qgemm_acc(xd, zxd, 8, other)  # a lookup drops the dead blob's copy
    assert torch.cuda.memory_allocated() == base

    monkeypatch.setenv("DWQ_CUDA_WEIGHT_CACHE", "0")
    wp = weights(18)[1]
    before = torch.cuda.memory_allocated()
    q.qgemm_acc(xd, zxd, 8, wp)
    assert torch.cuda.memory_allocated() == before  # nothing kept
