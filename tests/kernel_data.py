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


def bad_op_cases(dev):
    """The argument and value errors every device's integer ops raise alike (the checks are
    csrc/ops/qgemm_checks.h's): (name, call, message pattern) on tensors of ``dev``, and the tensors,
    for a device's own cases."""
    from types import SimpleNamespace

    from dwq.ops import qgemm as q

    g = torch.Generator().manual_seed(5)
    x = rand_codes(g, (7, 33), 8, torch.uint8).to(dev)
    w = rand_codes(g, (9, 33), 8, torch.int32).to(dev)
    zw = rand_zp(g, 8, (9,)).to(dev)
    zx = torch.tensor([1], dtype=torch.int32, device=dev)
    sx, sw = torch.tensor([0.05], device=dev), torch.full((9,), 0.01, device=dev)
    wp = q.pack_weight(w, zw, 8)
    xc = x.reshape(7, 33, 1, 1)
    wc = q.pack_conv_weight(w.reshape(9, 33, 1, 1), zw, 8)
    i32 = torch.int32
    ops = torch.ops.dwq
    nan = float("nan")
    # uint8 codes the kernels read in place (16-byte aligned rows; channels-last with C % 16 == 0)
    x64 = torch.full((7, 64), 200, dtype=torch.uint8, device=dev)
    wp64 = q.pack_weight(torch.zeros(9, 64, dtype=torch.uint8, device=dev), zw, 8)
    xcl = torch.full((2, 16, 5, 5), 200, dtype=torch.uint8, device=dev).contiguous(memory_format=torch.channels_last)
    wcl = q.pack_conv_weight(torch.zeros(9, 16, 3, 3, dtype=torch.uint8, device=dev), zw, 8)

    def lin(*a, **k):
        args = dict(x=x, sx=sx, zx=zx, b=8, wp=wp, sw=sw, a=None, bias=None, relu=False, so=None, zo=None, ob=8)
        args.update(k)
        return lambda: ops.qlinear(*args.values())

    cases = [
        ("x dtype", lambda: ops.qgemm_acc(x.float(), zx, 8, wp), "x_codes must hold codes as uint8 or int32"),
        ("x dim", lambda: ops.qgemm_acc(x[0], zx, 8, wp), "x_codes must be 2-D"),
        ("bits low", lambda: ops.qgemm_acc(x, zx, 1, wp), "x_bits must be in 2..16, got 1"),
        ("bits high", lambda: ops.qgemm_acc(x, zx, 17, wp), "x_bits must be in 2..16, got 17"),
        ("pack bits", lambda: ops.pack_weight(w, zw, 0), "bits must be in 2..16, got 0"),
        ("K mismatch", lambda: ops.qgemm_acc(x[:, :32], zx, 8, wp),
         "K = 32 columns but w_packed was packed with K = 33"),
        ("conv K mismatch", lambda: ops.qconv2d_acc(xc[:, :32], zx, 8, wc, [1, 1], [1, 1], [0, 0]),
         "packed with K = 33 but kernel_size \\[1, 1\\] x C = 32 input channels needs K = 32"),
        ("zx length", lambda: ops.qgemm_acc(x, torch.tensor([1, 2], dtype=i32, device=dev), 8, wp),
         "x_zero_point must have 1 element"),
        ("zx dtype", lambda: ops.qgemm_acc(x, zx.float(), 8, wp), "x_zero_point must be int32"),
        ("zx range", lambda: ops.qgemm_acc(x, torch.tensor([300], dtype=i32, device=dev), 8, wp),
         "x_zero_point = 300 is not a code"),
        ("x codes range", lambda: ops.qgemm_acc(x, zx, 4, wp), "x_codes holds value\\(s\\) outside 0..15"),
        ("x codes negative", lambda: ops.qgemm_acc(x.int() - 1, zx, 8, wp), "outside 0..255"),
        ("conv codes range", lambda: ops.qconv2d_acc(xc, zx, 4, wc, [1, 1], [1, 1], [0, 0]), "outside 0..15"),
        # geometry whose sizes wrap int64: named, not misread as a small input or a failed allocation
        ("conv padding overflow", lambda: ops.qconv2d_acc(xc, zx, 8, wc, [1, 1], [1, 1], [2**62, 0]),
         "padding \\[4611686018427387904, 0\\] of a 1x1 input overflows 64-bit sizes"),
        ("conv output overflow",
         lambda: ops.qconv2d_acc(xc[:1].expand(2**40, 33, 1, 1), zx, 8, wc, [1, 1], [1, 1], [2**30, 1]),
         "the output 1099511627776x2147483649x3 \\(batch x height x width\\) overflows 64-bit sizes"),
        ("codes range, rows read in place", lambda: ops.qgemm_acc(x64, zx, 4, wp64), "outside 0..15"),
        ("codes range, implicit conv", lambda: ops.qconv2d_acc(xcl, zx, 7, wcl, [3, 3], [1, 1], [1, 1]),
         "outside 0..127"),
        # a blob read with another kernel of the same K (3x3 x 16 = 1x9 x 16), or a GEMM-ordered one
        ("conv kernel shape", lambda: ops.qconv2d_acc(xcl, zx, 8, wcl, [1, 9], [1, 1], [0, 4]),
         "w_packed was packed for a 3x3 kernel but kernel_size is \\[1, 9\\]"),
        ("conv GEMM-packed", lambda: ops.qconv2d_acc(xcl, zx, 8, q.pack_weight(torch.zeros(9, 144, dtype=torch.uint8,
                                                                                         device=dev), zw, 8),
                                                     [3, 3], [1, 1], [1, 1]),
         "packed for a GEMM \\(dwq.ops.pack_weight\\) but kernel_size \\[3, 3\\] needs .*pack_conv_weight"),
        # the reverse: a conv blob's (ky, kx, c) columns read as a GEMM's (an im2col user's (c, ky, kx))
        ("GEMM conv-packed", lambda: ops.qgemm_acc(torch.zeros(7, 144, dtype=torch.uint8, device=dev), zx, 8, wcl),
         "qgemm_acc: w_packed was packed by dwq.ops.pack_conv_weight for a 3x3 kernel .*use dwq.ops.qconv2d"),
        ("linear conv-packed", lin(x=torch.zeros(7, 144, dtype=torch.uint8, device=dev), wp=wcl),
         "qlinear: w_packed was packed by dwq.ops.pack_conv_weight for a 3x3 kernel .*use dwq.ops.qconv2d"),
        ("pack kernel_size K", lambda: ops.pack_weight(w, zw, 8, [2, 2]),
         "kernel_size \\[2, 2\\] must be >= 1 and divide K = 33"),
        ("pack kernel_size entries", lambda: ops.pack_weight(w, zw, 8, [1, 3, 11]),
         "kernel_size must be empty \\(a GEMM weight\\) or \\[kh, kw\\], got \\[1, 3, 11\\]"),
        ("w codes range", lambda: ops.pack_weight(w, torch.zeros_like(zw), 3), "w_codes has .* outside 0..7"),
        ("zw length", lambda: ops.pack_weight(w, zw[:5], 8), "zero_point must have shape \\[9\\]"),
        ("zw range", lambda: ops.pack_weight(w, zw + 1000, 8), "zero_point\\[0\\] = .* is not a code"),
        ("packed dtype", lambda: ops.qgemm_acc(x, zx, 8, wp.float()), "w_packed must be the int8"),
        ("packed garbage", lambda: ops.qgemm_acc(x, zx, 8, torch.zeros(9, 90, dtype=torch.int8, device=dev)),
         "bad header"),
        ("packed garbage, right size", lambda: ops.qgemm_acc(x, zx, 8, torch.zeros_like(wp)), "bad header"),
        ("w_scale length", lin(sw=sw[:3]), "w_scale must have shape \\[9\\]"),
        ("w_scale nan", lin(sw=sw * nan), "w_scale\\[0\\] must be finite and > 0, got nan"),
        ("x_scale inf", lin(sx=sx * float("inf")), "x_scale must be finite and > 0, got inf"),
        ("x_scale zero", lin(sx=sx * 0), "x_scale must be finite and > 0, got 0"),
        ("x_scale length", lin(sx=sx.repeat(2)), "x_scale must have 1 element"),
        # no rows to compute: the arguments are still checked
        ("empty x, x_scale zero", lin(x=x[:0], sx=sx * 0), "x_scale must be finite and > 0, got 0"),
        ("empty x, zx range", lambda: ops.qgemm_acc(x[:0], torch.tensor([300], dtype=i32, device=dev), 8, wp),
         "x_zero_point = 300 is not a code"),
        ("empty x, packed garbage", lambda: ops.qgemm_acc(x[:0], zx, 8, torch.zeros_like(wp)), "bad header"),
        ("empty conv batch, packed garbage",
         lambda: ops.qconv2d_acc(xc[:0], zx, 8, torch.zeros_like(wc), [1, 1], [1, 1], [0, 0]), "bad header"),
        ("affine length", lin(a=torch.ones(4, device=dev)), "affine_scale must have shape \\[9\\]"),
        ("bias nan", lin(bias=torch.full((9,), nan, device=dev)), "affine_bias\\[0\\] must be finite"),
        # each factor of the output multiplier finite and > 0, the product not: inf/NaN or bias-only outputs
        ("mult overflow", lin(sx=torch.tensor([1e30], device=dev), sw=torch.full((9,), 1e10, device=dev)),
         "x_scale \\* w_scale\\[0\\] = 1e\\+30 \\* 1e\\+10 overflows float32"),
        ("mult underflow", lin(sx=torch.tensor([1e-30], device=dev), sw=torch.full((9,), 1e-20, device=dev)),
         "x_scale \\* w_scale\\[0\\] = 1e-30 \\* 1e-20 underflows to 0 in float32"),
        ("mult affine overflow", lin(a=torch.full((9,), 1e37, device=dev), sx=torch.tensor([1e5], device=dev)),
         "x_scale \\* w_scale\\[0\\] \\* affine_scale\\[0\\] = 1000 \\* 1e\\+37 overflows float32"),
        ("conv mult overflow", lambda: ops.qconv2d(xc, torch.tensor([1e30], device=dev), zx, 8, wc,
                                                   torch.full((9,), 1e10, device=dev), [1, 1], [1, 1], [0, 0],
                                                   None, None, False, None, None, 8),
         "x_scale \\* w_scale\\[0\\] = .* overflows"),
        ("out half", lin(so=sx), "both out_scale and out_zero_point"),
        ("out bits", lin(so=sx, zo=zx, ob=1), "out_bits must be in"),
        ("out zero point", lin(so=sx, zo=zx + 20, ob=4), "out_zero_point = 21 is not a code of 4 bits"),
        ("quantize nan", lambda: ops.quantize_act(torch.tensor([1.0, nan], device=dev), sx, zx, 8), "NaN"),
        ("quantize dtype", lambda: ops.quantize_act(torch.ones(3, dtype=torch.float64, device=dev), sx, zx, 8),
         "x must be float32"),
        ("quantize scale", lambda: ops.quantize_act(torch.ones(3, device=dev), -sx, zx, 8),
         "scale must be finite and > 0"),
    ]
    return cases, SimpleNamespace(x=x, w=w, zw=zw, zx=zx, sx=sx, wp=wp, lin=lin, xcl=xcl, wcl=wcl)
