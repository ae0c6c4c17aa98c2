"""True-integer ops on CPU and CUDA: activation quantization, weight prepacking, integer GEMM /
linear / conv2d with a fused per-channel epilogue. Typed wrappers over ``torch.ops.dwq.*`` with fake
(meta) impls; each op runs on the device of its tensors (CUDA kernels: csrc/cuda/qgemm*.cu, the
same results bit for bit, the same packed-weight bytes).

Arithmetic contract (DESIGN.md): unsigned codes ``q`` in ``0..2^b-1`` (uint8 for b <= 8, int32 for
9..16), float32 scales, integer zero points; ``acc = sum_k (qx - zx)(qw - zw)`` exact in int64
(8-bit limbs for 9..16 bits); epilogue ``y = float32(acc) * (s_x * s_w[n] * affine_scale[n]) +
affine_bias[n]``, optional ReLU, then float32 or requantized codes
``clamp(round_half_even(y / s') + z', 0, 2^b' - 1)``. Inference only (no autograd).

The ISA is chosen at run time from CPUID (AMX-INT8 tiles with AVX-512 VNNI, else AVX-512 VNNI, else
AVX2, else scalar); ``DWQ_CPU_ISA=scalar|avx2|avx512_vnni|amx`` forces one (an error if the CPU lacks
it). On CUDA the ops
check values (codes in range, scales, zero points) on the device and read the verdict back, one
sync per op; ``DWQ_CUDA_CHECKS=0`` skips that read (no sync; bad input then gives meaningless
numbers, never an out-of-bounds access). ``DWQ_CUDA_GEMM=mma|wgmma|wgmma_tma|wgmma_pp|auto`` picks
the tensor-core kernel: ``mma`` (mma.sync, every GPU from sm_80), ``wgmma`` (Hopper, compute
capability 9.0; an error elsewhere), ``wgmma_tma`` (its warp-specialized variant, fed by TMA),
``wgmma_pp`` (that kernel with ping-pong consumer warpgroups for 8-bit codes, one's epilogue beside
the other's MMAs; not yet measured, never picked by auto), ``auto`` (the default: on a Hopper GPU
the engine that ran fastest on an H200 for the kind of product, wgmma_tma for a matrix, wgmma for
an implicit conv, mma where their tiles would split K; mma elsewhere). Products of at most 8 rows
run on CUDA cores (dp4a) whatever the engine. The Hopper engines read a K-major copy of the weight,
kept per blob and stream until the blob is freed or written (its tensor version moves);
``DWQ_CUDA_WEIGHT_CACHE=0`` makes it per call (for a blob written without a version bump, e.g.
through ``.data``).

Example::

    >>> import torch, dwq.ops as ops
    >>> x = torch.randn(4, 64)
    >>> sx, zx = torch.tensor([0.05]), torch.tensor([128], dtype=torch.int32)
    >>> qx = ops.quantize_act(x, sx, zx, 8)                       # uint8 [4, 64]
    >>> qw = torch.randint(0, 256, (32, 64), dtype=torch.uint8)
    >>> zw = torch.full((32,), 128, dtype=torch.int32)
    >>> wp = ops.pack_weight(qw, zw, 8)                            # once, at conversion time
    >>> y = ops.qlinear(qx, sx, zx, 8, wp, torch.full((32,), 0.01))  # float32 [4, 32]
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch

from dwq._index import index_or_none
from dwq.ops._lib import HAS_EXT, has_kernel
from dwq.ops._lib import fake_same_device as _fake_same_device
from dwq.ops.fake_quant import check_no_nan, check_qparam_values, check_relu, check_tensors
from dwq.ops.fake_quant import check_op_bits as _check_bits
from dwq.ops.qgemm_reference import channel_affine, codes_dtype, quantize_act_ref

__all__ = [
    "quantize_act",
    "affine_quantize_act",
    "pack_weight",
    "pack_conv_weight",
    "packed_weight_shape",
    "qgemm_acc",
    "qlinear",
    "qconv2d_acc",
    "qconv2d",
    "supported_cpu_isas",
]

IntPair = Union[int, Sequence[int]]


def _index(v) -> int:
    """An int of any kind (numpy, a 0-d tensor), never a float, nor a bool (dwq._index); TypeError else."""
    i = index_or_none(v)
    if i is None:
        raise TypeError(f"not an int: {v!r}")
    return i


def _pair(v: IntPair, name: str) -> List[int]:
    if type(v) in (tuple, list) and len(v) == 2 and type(v[0]) is int and type(v[1]) is int:
        return list(v)  # (the common case, per call of a layer: no per-entry checks)
    try:
        return [_index(v)] * 2
    except TypeError:
        pass
    try:
        v = [_index(t) for t in v]
    except TypeError:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v!r}")
    return v


def conv_output_hw(h, w, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int]):
    """(OH, OW) of a conv over an h x w input (floor division, as torch's conv2d); symbolic sizes pass."""
    return ((h + 2 * padding[0] - kernel_size[0]) // stride[0] + 1,
            (w + 2 * padding[1] - kernel_size[1]) // stride[1] + 1)


def _need_ext(name: str):
    if not HAS_EXT:
        from dwq.ops._lib import EXT_ERROR

        raise RuntimeError(f"dwq.ops.{name} needs the compiled extension dwq._C, which failed to import: {EXT_ERROR}")


def packed_weight_shape(n: int, k: int, bits: int) -> Tuple[int, int]:
    """Shape ``(N, P)`` of the int8 tensor that ``pack_weight`` returns for ``[N, K]`` codes at ``bits``.

    The layout is C++'s (csrc/cpu/qgemm.h: a header, the shifted 8-bit limbs, column sums and zero
    points); this asks the extension for it rather than re-deriving it here.
    """
    bits = _check_bits(bits)
    sizes = {}
    for name, v in (("n", n), ("k", k)):  # (int() made 2.7 a 2 and True a 1)
        try:
            sizes[name] = _index(v)
        except TypeError:
            raise ValueError(f"packed_weight_shape: {name} must be an int, got {v!r}") from None
    _need_ext("packed_weight_shape")
    from dwq import _C

    return tuple(_C.packed_weight_shape(sizes["n"], sizes["k"], bits))


def quantize_act(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-tensor activation quantization in one vectorized pass.

    x: float32, any shape and strides. scale: float32 [1], finite > 0. zero_point: int32 [1] in
    0..2^bits-1. Returns codes ``clamp(round_half_even(x / scale) + zero_point, 0, 2^bits - 1)``
    with x's shape (and memory format): uint8 for bits <= 8, int32 for 9..16. NaN is an error.
    """
    bits = _check_bits(bits)
    check_tensors("quantize_act", x=x, scale=scale, zero_point=zero_point)
    if has_kernel("quantize_act", x.device.type):
        return torch.ops.dwq.quantize_act.default(x, scale, zero_point, bits)
    # The reference alone would turn NaN into code 0 and a zero scale into codes of inf, silently.
    check_qparam_values(scale.reshape(-1), zero_point.reshape(-1), bits, "quantize_act")
    check_no_nan(x, "quantize_act: x contains NaN; NaN has no code")
    return quantize_act_ref(x, scale, zero_point, bits)


def affine_quantize_act(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, relu: bool,
                        out_scale: torch.Tensor, out_zero_point: torch.Tensor, bits: int) -> torch.Tensor:
    """``quantize_act`` of ``relu?(x * scale[c] + bias[c])``, c the channel (dim 1): a folded batch
    norm, its ReLU and the next layer's activation quantization, in one pass over x.

    x: float32 [B, C, ...], any strides (NCHW and channels-last are read in place). scale, bias:
    float32 [C], finite. out_scale / out_zero_point / bits: as quantize_act. The multiply and the add
    round separately (torch's ``x * scale + bias``), so the codes are those of that expression.
    Where there is no kernel (a build without the extension, other devices) it is that expression
    followed by ``quantize_act``.
    """
    bits = _check_bits(bits)
    check_relu("affine_quantize_act", relu)
    check_tensors("affine_quantize_act", x=x, scale=scale, bias=bias, out_scale=out_scale,
                  out_zero_point=out_zero_point)
    if has_kernel("affine_quantize_act", x.device.type):
        return torch.ops.dwq.affine_quantize_act.default(x, scale, bias, relu, out_scale, out_zero_point, bits)
    if x.dtype != torch.float32 or x.dim() < 2:
        raise ValueError(f"affine_quantize_act: x must be float32 [B, C, ...], got {x.dtype} {tuple(x.shape)}")
    for name, t in (("scale", scale), ("bias", bias)):
        if t.dtype != torch.float32 or tuple(t.shape) != (x.shape[1],) or t.device != x.device:
            raise ValueError(f"affine_quantize_act: {name} must be float32 [{x.shape[1]}] on {x.device} "
                             f"(one per channel of x), got {t.dtype} {tuple(t.shape)} on {t.device}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"affine_quantize_act: {name} must be finite")
    if out_scale.numel() != 1 or out_zero_point.numel() != 1:
        raise ValueError("affine_quantize_act: out_scale and out_zero_point must have 1 element (per tensor), got "
                         f"{out_scale.numel()} and {out_zero_point.numel()}")
    # (here, not in quantize_act below, so that the message names this op's arguments)
    check_qparam_values(out_scale.reshape(-1), out_zero_point.reshape(-1), bits, "affine_quantize_act",
                        ("out_scale", "out_zero_point"))
    return quantize_act(channel_affine(x, scale, bias, relu), out_scale, out_zero_point, bits)


def pack_weight(w_codes: torch.Tensor, zero_point: torch.Tensor, bits: int,
                kernel_size: Sequence[int] = ()) -> torch.Tensor:
    """Prepack weight codes once, at conversion time, into the microkernel layout.

    w_codes: uint8 or int32 [N, K] (any strides), codes in 0..2^bits-1. zero_point: int32 [N].
    kernel_size: empty for a GEMM weight, or the conv kernel [kh, kw] whose (ky, kx, c)-ordered
    weights the K columns hold (``pack_conv_weight`` passes it; the blob records it).
    Returns an opaque int8 tensor of shape ``packed_weight_shape(N, K, bits)`` holding the
    shifted 8-bit limbs ([N/64][K/4][64][4] per limb), column sums and zero points. Codes of at most
    7 bits are stored less their channel's zero point (not 128), so the engines need no activation
    row sums for them (header version 2: an older dwq refuses such a blob); blobs packed before that
    still read correctly.
    """
    bits = _check_bits(bits)
    check_tensors("pack_weight", w_codes=w_codes, zero_point=zero_point)
    _need_ext("pack_weight")
    try:  # (kernel_size=3 failed with "'int' object is not iterable")
        if isinstance(kernel_size, (str, bytes)):
            raise TypeError
        ks = [_index(k) for k in kernel_size]
    except TypeError:
        raise ValueError(f"pack_weight: kernel_size must be a sequence of ints ([] for a GEMM weight, [kh, kw] "
                         f"for a conv), got {kernel_size!r}") from None
    return torch.ops.dwq.pack_weight.default(w_codes, zero_point, bits, ks)


def pack_conv_weight(w_codes: torch.Tensor, zero_point: torch.Tensor, bits: int) -> torch.Tensor:
    """Prepack conv weight codes ``[O, C, kh, kw]`` (uint8/int32) for ``qconv2d``: the reduction
    index is ordered (ky, kx, c) to match channels-last activations, K = kh * kw * C. The blob
    records (kh, kw): ``qconv2d`` refuses another kernel_size, and a ``pack_weight`` blob for any
    kernel but 1 x 1; ``qlinear`` and ``qgemm_acc`` refuse it for any kernel but 1 x 1."""
    check_tensors("pack_conv_weight", w_codes=w_codes, zero_point=zero_point)
    if w_codes.dim() != 4:
        raise ValueError(f"pack_conv_weight: w_codes must be [O, C, kh, kw], got shape {tuple(w_codes.shape)}")
    if w_codes.numel() == 0:  # (else reshape(0, -1) failed, naming neither the op nor w_codes)
        raise ValueError(f"pack_conv_weight: w_codes must be non-empty [O, C, kh, kw], got shape {tuple(w_codes.shape)}")
    return pack_weight(w_codes.permute(0, 2, 3, 1).reshape(w_codes.shape[0], -1), zero_point, bits,
                       w_codes.shape[2:])


def qgemm_acc(x_codes: torch.Tensor, x_zero_point: torch.Tensor, x_bits: int, w_packed: torch.Tensor) -> torch.Tensor:
    """Exact integer accumulators ``acc[m, n] = sum_k (x[m, k] - zx) * (w[n, k] - zw[n])``.

    x_codes: uint8/int32 [M, K] (any strides) at x_bits; x_zero_point: int32 [1];
    w_packed: from ``pack_weight`` with the same K (or ``pack_conv_weight`` of a 1 x 1 kernel). Returns int64 [M, N].
    """
    x_bits = _check_bits(x_bits, "x_bits")
    check_tensors("qgemm_acc", x_codes=x_codes, x_zero_point=x_zero_point, w_packed=w_packed)
    _need_ext("qgemm_acc")
    return torch.ops.dwq.qgemm_acc.default(x_codes, x_zero_point, x_bits, w_packed)


def qlinear(x_codes: torch.Tensor, x_scale: torch.Tensor, x_zero_point: torch.Tensor, x_bits: int,
            w_packed: torch.Tensor, w_scale: torch.Tensor, affine_scale: Optional[torch.Tensor] = None,
            affine_bias: Optional[torch.Tensor] = None, relu: bool = False, out_scale: Optional[torch.Tensor] = None,
            out_zero_point: Optional[torch.Tensor] = None, out_bits: int = 8) -> torch.Tensor:
    """Integer linear layer with the fused epilogue.

    x_codes: uint8/int32 [..., K] at x_bits; x_scale float32 [1]; x_zero_point int32 [1];
    w_packed from ``pack_weight`` (or ``pack_conv_weight`` of a 1 x 1 kernel); w_scale float32 [N] (> 0);
    affine_scale / affine_bias float32 [N] (bias, or the active precision's folded BN) or None; relu.
    Returns float32 [..., N], or codes (uint8 if out_bits <= 8 else int32) when out_scale float32 [1] and
    out_zero_point int32 [1] are given.
    """
    x_bits = _check_bits(x_bits, "x_bits")
    check_relu("qlinear", relu)
    check_tensors("qlinear", x_codes=x_codes, x_scale=x_scale, x_zero_point=x_zero_point, w_packed=w_packed,
                  w_scale=w_scale)
    _need_ext("qlinear")
    if x_codes.dim() == 0:
        raise ValueError("qlinear: x_codes must be [..., K], got a 0-d tensor")
    lead = x_codes.shape[:-1]
    # (lead.numel(), not -1: with K = 0 a -1 is ambiguous, and the op's own message names the K)
    x2 = x_codes.reshape(lead.numel(), x_codes.shape[-1]) if x_codes.dim() != 2 else x_codes
    y = torch.ops.dwq.qlinear.default(x2, x_scale, x_zero_point, x_bits, w_packed, w_scale, affine_scale, affine_bias,
                                      relu, out_scale, out_zero_point, out_bits)
    return y if x_codes.dim() == 2 else y.reshape(*lead, y.shape[-1])


def qconv2d_acc(x_codes: torch.Tensor, x_zero_point: torch.Tensor, x_bits: int, w_packed: torch.Tensor,
                kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0) -> torch.Tensor:
    """Exact integer conv2d accumulators (groups = 1, dilation = 1).

    x_codes: uint8/int32 [B, C, H, W] (any strides; channels_last avoids strided gathers);
    w_packed from ``pack_conv_weight`` of [O, C, kh, kw]; padding holds the code zx (exactly zero).
    Returns int64 [B, O, OH, OW] in channels_last memory format.
    """
    x_bits = _check_bits(x_bits, "x_bits")
    check_tensors("qconv2d_acc", x_codes=x_codes, x_zero_point=x_zero_point, w_packed=w_packed)
    _need_ext("qconv2d_acc")
    return torch.ops.dwq.qconv2d_acc.default(x_codes, x_zero_point, x_bits, w_packed, _pair(kernel_size, "kernel_size"),
                                             _pair(stride, "stride"), _pair(padding, "padding"))


def qconv2d(x_codes: torch.Tensor, x_scale: torch.Tensor, x_zero_point: torch.Tensor, x_bits: int,
            w_packed: torch.Tensor, w_scale: torch.Tensor, kernel_size: IntPair, stride: IntPair = 1,
            padding: IntPair = 0, affine_scale: Optional[torch.Tensor] = None,
            affine_bias: Optional[torch.Tensor] = None, relu: bool = False, out_scale: Optional[torch.Tensor] = None,
            out_zero_point: Optional[torch.Tensor] = None, out_bits: int = 8) -> torch.Tensor:
    """Integer conv2d with the fused epilogue (see ``qlinear``). x_codes [B, C, H, W];
    returns float32 or codes [B, O, OH, OW] in channels_last memory format, ready for the next layer."""
    x_bits = _check_bits(x_bits, "x_bits")
    check_relu("qconv2d", relu)
    check_tensors("qconv2d", x_codes=x_codes, x_scale=x_scale, x_zero_point=x_zero_point, w_packed=w_packed,
                  w_scale=w_scale)
    _need_ext("qconv2d")
    return torch.ops.dwq.qconv2d.default(x_codes, x_scale, x_zero_point, x_bits, w_packed, w_scale,
                                         _pair(kernel_size, "kernel_size"), _pair(stride, "stride"),
                                         _pair(padding, "padding"), affine_scale, affine_bias, relu, out_scale,
                                         out_zero_point, out_bits)


def supported_cpu_isas() -> List[str]:
    """The CPU kernel paths this machine can run, e.g. ``['scalar', 'avx2', 'avx512_vnni', 'amx']``
    (each is forced with ``DWQ_CPU_ISA``); ``[]`` without the extension. Asked of C++ (CPUID):
    the environment is left alone, so ops of other threads keep their kernels meanwhile."""
    if not HAS_EXT:
        return []
    from dwq import _C

    return list(_C.cpu_isas())


# ----------------------------------------------------------------------------- fake (meta) impls

if HAS_EXT:

    def _fake_codes(name, x, dim):
        torch._check(x.dtype in (torch.uint8, torch.int32),
                     lambda: f"{name}: x_codes must be uint8 or int32 codes, got {x.dtype}")
        torch._check(x.dim() == dim, lambda: f"{name}: x_codes must be {dim}-D, got shape {tuple(x.shape)}")

    def _fake_packed(name, w):
        torch._check(w.dtype == torch.int8 and w.dim() == 2,
                     lambda: f"{name}: w_packed must be the int8 [N, P] tensor made by dwq.ops.pack_weight")

    def _fake_out_dtype(name, out_scale, out_zero_point, out_bits):
        torch._check((out_scale is None) == (out_zero_point is None),
                     lambda: f"{name}: give both out_scale and out_zero_point or neither")
        if out_scale is None:
            return torch.float32
        torch._check(2 <= out_bits <= 16, lambda: f"{name}: out_bits must be in 2..16, got {out_bits}")
        return codes_dtype(out_bits)

    def _fake_conv_shape(name, x, w_packed, kernel_size, stride, padding):
        # The C++ geometry checks (qg_conv_size), which torch.compile meets here first: the schema's
        # int[2] takes lists of any length, and stride 0 divided by zero below.
        torch._check(len(kernel_size) == 2 and len(stride) == 2 and len(padding) == 2,
                     lambda: f"dwq.{name}: kernel_size, stride and padding must have 2 entries each")
        torch._check(min(kernel_size) >= 1, lambda: f"dwq.{name}: kernel_size must be >= 1, got {list(kernel_size)}")
        torch._check(min(stride) >= 1, lambda: f"dwq.{name}: stride must be >= 1, got {list(stride)}")
        torch._check(min(padding) >= 0, lambda: f"dwq.{name}: padding must be >= 0, got {list(padding)}")
        B, C, H, W = x.shape
        kh, kw = kernel_size
        torch._check(H + 2 * padding[0] >= kh and W + 2 * padding[1] >= kw,
                     lambda: f"{name}: input smaller than the kernel")
        return (B, *conv_output_hw(H, W, kernel_size, stride, padding), w_packed.shape[0])

    @torch.library.register_fake("dwq::quantize_act")
    def _(x, scale, zero_point, bits):
        _fake_same_device("quantize_act", x, "x", scale=scale, zero_point=zero_point)
        torch._check(2 <= bits <= 16, lambda: f"quantize_act: bits must be in 2..16, got {bits}")
        torch._check(x.dtype == torch.float32, lambda: f"quantize_act: x must be float32, got {x.dtype}")
        torch._check(scale.numel() == 1 and zero_point.numel() == 1,
                     lambda: "quantize_act: scale and zero_point must have 1 element (per tensor)")
        return torch.empty_like(x, dtype=codes_dtype(bits))

    @torch.library.register_fake("dwq::affine_quantize_act")
    def _(x, scale, bias, relu, out_scale, out_zero_point, bits):
        _fake_same_device("affine_quantize_act", x, "x", scale=scale, bias=bias, out_scale=out_scale,
                          out_zero_point=out_zero_point)
        torch._check(2 <= bits <= 16, lambda: f"affine_quantize_act: bits must be in 2..16, got {bits}")
        torch._check(x.dtype == torch.float32 and x.dim() >= 2,
                     lambda: f"affine_quantize_act: x must be float32 [B, C, ...], got {x.dtype} {tuple(x.shape)}")
        torch._check(scale.shape == (x.shape[1],) and bias.shape == (x.shape[1],),
                     lambda: "affine_quantize_act: scale and bias must have one entry per channel of x")
        torch._check(out_scale.numel() == 1 and out_zero_point.numel() == 1,
                     lambda: "affine_quantize_act: out_scale and out_zero_point must have 1 element (per tensor)")
        return torch.empty_like(x, dtype=codes_dtype(bits))

    @torch.library.register_fake("dwq::pack_weight")
    def _(w_codes, zero_point, bits, kernel_size=()):
        _fake_same_device("pack_weight", w_codes, "w_codes", zero_point=zero_point)
        torch._check(len(kernel_size) in (0, 2),
                     lambda: f"pack_weight: kernel_size must be empty or [kh, kw], got {list(kernel_size)}")
        torch._check(2 <= bits <= 16, lambda: f"pack_weight: bits must be in 2..16, got {bits}")
        torch._check(w_codes.dim() == 2, lambda: f"pack_weight: w_codes must be 2-D, got {tuple(w_codes.shape)}")
        torch._check(w_codes.dtype in (torch.uint8, torch.int32),
                     lambda: f"pack_weight: w_codes must be uint8 or int32, got {w_codes.dtype}")
        n, k = w_codes.shape
        torch._check(zero_point.shape == (n,), lambda: f"pack_weight: zero_point must have shape [{n}]")
        return w_codes.new_empty(packed_weight_shape(n, k, bits), dtype=torch.int8)

    @torch.library.register_fake("dwq::qgemm_acc")
    def _(x_codes, x_zero_point, x_bits, w_packed):
        _fake_same_device("qgemm_acc", x_codes, "x_codes", x_zero_point=x_zero_point, w_packed=w_packed)
        torch._check(2 <= x_bits <= 16, lambda: f"qgemm_acc: x_bits must be in 2..16, got {x_bits}")
        _fake_codes("qgemm_acc", x_codes, 2)
        _fake_packed("qgemm_acc", w_packed)
        return x_codes.new_empty((x_codes.shape[0], w_packed.shape[0]), dtype=torch.int64)

    @torch.library.register_fake("dwq::qlinear")
    def _(x_codes, x_scale, x_zero_point, x_bits, w_packed, w_scale, affine_scale, affine_bias, relu, out_scale,
          out_zero_point, out_bits):
        _fake_same_device("qlinear", x_codes, "x_codes", x_scale=x_scale, x_zero_point=x_zero_point,
                          w_packed=w_packed, w_scale=w_scale, affine_scale=affine_scale, affine_bias=affine_bias,
                          out_scale=out_scale, out_zero_point=out_zero_point)
        torch._check(2 <= x_bits <= 16, lambda: f"qlinear: x_bits must be in 2..16, got {x_bits}")
        _fake_codes("qlinear", x_codes, 2)
        _fake_packed("qlinear", w_packed)
        n = w_packed.shape[0]
        torch._check(w_scale.shape == (n,), lambda: f"qlinear: w_scale must have shape [{n}]")
        dtype = _fake_out_dtype("qlinear", out_scale, out_zero_point, out_bits)
        return x_codes.new_empty((x_codes.shape[0], n), dtype=dtype)

    @torch.library.register_fake("dwq::qconv2d_acc")
    def _(x_codes, x_zero_point, x_bits, w_packed, kernel_size, stride, padding):
        _fake_same_device("qconv2d_acc", x_codes, "x_codes", x_zero_point=x_zero_point, w_packed=w_packed)
        torch._check(2 <= x_bits <= 16, lambda: f"qconv2d_acc: x_bits must be in 2..16, got {x_bits}")
        _fake_codes("qconv2d_acc", x_codes, 4)
        _fake_packed("qconv2d_acc", w_packed)
        shape = _fake_conv_shape("qconv2d_acc", x_codes, w_packed, kernel_size, stride, padding)
        return x_codes.new_empty(shape, dtype=torch.int64).permute(0, 3, 1, 2)

    @torch.library.register_fake("dwq::qconv2d")
    def _(x_codes, x_scale, x_zero_point, x_bits, w_packed, w_scale, kernel_size, stride, padding, affine_scale,
          affine_bias, relu, out_scale, out_zero_point, out_bits):
        _fake_same_device("qconv2d", x_codes, "x_codes", x_scale=x_scale, x_zero_point=x_zero_point,
                          w_packed=w_packed, w_scale=w_scale, affine_scale=affine_scale, affine_bias=affine_bias,
                          out_scale=out_scale, out_zero_point=out_zero_point)
        torch._check(2 <= x_bits <= 16, lambda: f"qconv2d: x_bits must be in 2..16, got {x_bits}")
        _fake_codes("qconv2d", x_codes, 4)
        _fake_packed("qconv2d", w_packed)
        n = w_packed.shape[0]
        torch._check(w_scale.shape == (n,), lambda: f"qconv2d: w_scale must have shape [{n}]")
        dtype = _fake_out_dtype("qconv2d", out_scale, out_zero_point, out_bits)
        shape = _fake_conv_shape("qconv2d", x_codes, w_packed, kernel_size, stride, padding)
        return x_codes.new_empty(shape, dtype=dtype).permute(0, 3, 1, 2)
