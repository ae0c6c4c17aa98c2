"""Random integer operands for the kernel tests, with the extreme codes and zero points over-represented."""
import torch


def rand_codes(g, shape, bits, dtype=None, extreme=0.2):
    """Random codes with a share of 0 and 2^bits-1; uint8 where it fits (or int32 half the time)."""
    qmax = (1 << bits) - 1
    c = torch.randint(0, qmax + 1, shape, generator=g, dtype=torch.int64)
    m = torch.rand(shape, generator=g)
    c = torch.where(m < extreme / 2, 0, torch.where(m < extreme, qmax, c))
    if dtype is None:
        dtype = torch.uint8 if bits <= 8 and torch.rand(1, generator=g).item() < 0.5 else torch.int32
    return c.to(dtype)


def rand_zp(g, bits, shape=(1,)):
    qmax = (1 << bits) - 1
    r = torch.randint(0, 4, shape, generator=g)
    z = torch.randint(0, qmax + 1, shape, generator=g)
    return torch.where(r == 0, 0, torch.where(r == 1, qmax, z)).to(torch.int32)
