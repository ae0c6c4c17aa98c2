"""Codes at exactly ``bits`` bits each in a byte stream: how the integer model stores its weights
(and what the artifact holds), so that a 4-bit model takes 4/32 of its float32 bytes.

The kernels' packed layout (``dwq.ops.pack_weight``) is 8-bit limbs, built from these codes when
a model is made or loaded: x86 has no sub-byte multiply, so the compute layout cannot be smaller.

Layout: code ``i`` occupies stream bits ``[i * bits, (i + 1) * bits)``, least significant bit first
(byte ``k`` holds stream bits ``8k .. 8k + 7``); ``ceil(n * bits / 8)`` bytes. Eight codes make
``bits`` whole bytes, so the work runs on groups of eight codes held in two 64-bit words.
"""
import numpy as np
import torch

from dwq.quant.precision import check_bits

__all__ = ["pack_bits", "unpack_bits", "packed_nbytes"]

_CHUNK = 1 << 22  # codes per step, a multiple of 8: bounds the temporaries to ~64 MiB


def packed_nbytes(numel: int, bits: int) -> int:
    """Bytes of ``numel`` codes at ``bits`` bits."""
    return (numel * bits + 7) // 8


def _pack_groups(a: np.ndarray, bits: int) -> np.ndarray:
    """a: codes [8 * G] -> uint8 [G * bits]."""
    g = np.ascontiguousarray(a.astype(np.uint64).reshape(-1, 8).T)
    words = np.zeros((g.shape[1], 2), np.uint64)
    lo, hi = words[:, 0], words[:, 1]
    for j in range(8):
        p = j * bits
        if p < 64:
            lo |= g[j] << np.uint64(p)
            if p + bits > 64:  # the code straddles the two words
                hi |= g[j] >> np.uint64(64 - p)
        else:
            hi |= g[j] << np.uint64(p - 64)
    return words.view(np.uint8).reshape(-1, 16)[:, :bits].reshape(-1)


def _unpack_groups(raw: np.ndarray, bits: int) -> np.ndarray:
    """raw: uint8 [G * bits] -> int32 codes [8 * G]."""
    buf = np.zeros((raw.size // bits, 16), np.uint8)
    buf[:, :bits] = raw.reshape(-1, bits)
    words = buf.view(np.uint64)
    lo, hi = words[:, 0], words[:, 1]
    mask = np.uint64((1 << bits) - 1)
    out = np.empty((8, words.shape[0]), np.int32)
    for j in range(8):
        p = j * bits
        if p + bits <= 64:
            out[j] = (lo >> np.uint64(p)) & mask
        elif p < 64:
            out[j] = ((lo >> np.uint64(p)) | (hi << np.uint64(64 - p))) & mask
        else:
            out[j] = (hi >> np.uint64(p - 64)) & mask
    return out.T.reshape(-1)


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """codes: integer tensor, any shape and device, values in 0..2^bits-1 -> uint8 [ceil(numel * bits / 8)] (CPU)."""
    bits = check_bits(bits)
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:  # (2.7 was packed as 2)
        raise ValueError(f"pack_bits: codes must be an integer tensor, got {codes.dtype}")
    flat = codes.detach().reshape(-1).to("cpu", torch.int64)
    n = flat.numel()
    # (checked before narrowing: int64 2^32 + 3 was packed as 3)
    if n and (int(flat.min()) < 0 or int(flat.max()) >= 1 << bits):
        raise ValueError(f"pack_bits: codes must lie in 0..{(1 << bits) - 1} for {bits} bits")
    flat = flat.to(torch.int32)
    a = np.zeros((n + 7) // 8 * 8, np.int32)
    a[:n] = flat.numpy()
    out = [_pack_groups(a[i:i + _CHUNK], bits) for i in range(0, a.size, _CHUNK)]
    data = np.concatenate(out) if out else np.zeros(0, np.uint8)
    return torch.from_numpy(data[:packed_nbytes(n, bits)].copy())


def unpack_bits(data: torch.Tensor, bits: int, numel: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: uint8 [ceil(numel * bits / 8)] -> int32 [numel] (CPU)."""
    bits = check_bits(bits)
    if data.dtype != torch.uint8 or data.dim() != 1 or data.numel() != packed_nbytes(numel, bits):
        raise ValueError(f"unpack_bits: expected uint8 [{packed_nbytes(numel, bits)}] for {numel} codes at {bits} "
                         f"bits, got {data.dtype} {list(data.shape)}")
    groups = (numel + 7) // 8
    raw = np.zeros(groups * bits, np.uint8)
    raw[:data.numel()] = data.detach().to("cpu").numpy()
    step = _CHUNK // 8 * bits
    out = [_unpack_groups(raw[i:i + step], bits) for i in range(0, raw.size, step)]
    codes = np.concatenate(out) if out else np.zeros(0, np.int32)
    return torch.from_numpy(codes[:numel].copy())
