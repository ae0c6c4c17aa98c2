"""Errors raised by dwq's C++ bindings (TORCH_CHECK) arrive in Python as RuntimeError with their
message (issue 9: on the GPU machine's stack every such error crashed the interpreter instead).

Each case runs in a fresh interpreter, so that a crash fails this test with its signal and a
diagnosis instead of killing the whole test run; the cases go through the autograd kernel (x
requiring grad), plain calls, no_grad and inference_mode, and through each family of ops, and packed weights whose header was edited (they crashed the
process before the header's offsets and sizes were checked against the blob).
"""
import os
import pathlib
import signal
import subprocess
import sys

import pytest

from dwq.ops import HAS_EXT

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = r"""
import struct

import torch
import dwq.ops as q

ops = torch.ops.dwq
x = torch.randn(4)
s0, z3 = torch.tensor([0.0]), torch.tensor([3], dtype=torch.int32)
w = torch.full((2, 8), 300, dtype=torch.int32)
cases = {
    "fake_quantize scale 0 (autograd)": (lambda: ops.fake_quantize(x.clone().requires_grad_(), s0, z3, 4, None, False),
                                         "scale[0] must be finite and > 0"),
    "fake_quantize zero point (plain)": (lambda: ops.fake_quantize(x, torch.tensor([0.1]),
                                         torch.tensor([16], dtype=torch.int32), 4, None, False),
                                         # (the numbers too: a second libstdc++ in dwq._C formats none)
                                         "zero_point[0] = 16 is not a code of 4 bits (0..15)"),
    "fake_quantize NaN (no_grad)": (lambda: ops.fake_quantize(torch.tensor([1.0, float("nan")]), torch.tensor([0.1]),
                                    z3, 4, None, False), "NaN"),
    "quantize_act NaN (inference_mode)": (lambda: ops.quantize_act(torch.tensor([float("nan")]), torch.tensor([0.1]),
                                          z3, 8), "NaN"),
    "pack_weight bad code": (lambda: ops.pack_weight(w, torch.zeros(2, dtype=torch.int32), 8), "outside 0..255"),
    "qgemm_acc bad blob": (lambda: ops.qgemm_acc(torch.zeros(2, 8, dtype=torch.uint8), z3, 8,
                                                 torch.zeros(2, 200, dtype=torch.int8)), "bad header"),
}


def edited_blob(field, value):
    # A packed weight whose header field (Header in csrc/cpu/qgemm_common.cpp) was overwritten, as a
    # corrupted artifact would hold it: the engine reads through these fields, so each must be an error.
    offset = {"K": 24, "Kp": 32, "data_off": 48, "colsum_off": 56, "zp_off": 64}[field]
    blob = ops.pack_weight(torch.zeros(7, 10, dtype=torch.uint8), torch.zeros(7, dtype=torch.int32), 8)
    raw = bytearray(blob.numpy().tobytes())
    struct.pack_into("<q", raw, offset, value)
    return torch.frombuffer(raw, dtype=torch.int8).clone().view(blob.shape)


x10 = torch.zeros(5, 10, dtype=torch.uint8)
for field, value in [("data_off", 1 << 40), ("colsum_off", -(1 << 40)), ("zp_off", 1 << 50)]:
    cases[f"qgemm_acc header {field} edited"] = (lambda b=edited_blob(field, value): ops.qgemm_acc(x10, z3, 8, b),
                                                 "bad header")
# K = kh * kw * C = 2^61 with the wrapping layout size of a 2^61-column header (a 1x1 output of
# padding alone): the engine would read far past the 980-byte blob.
wide = edited_blob("Kp", 1 << 61)
raw = bytearray(wide.numpy().tobytes())
struct.pack_into("<q", raw, 24, 1 << 61)
wide = torch.frombuffer(raw, dtype=torch.int8).clone().view(wide.shape)
cases["qconv2d_acc header K = 2^61"] = (lambda: ops.qconv2d_acc(torch.zeros(1, 1, 0, 0, dtype=torch.uint8), z3, 8, wide,
                                                                [1 << 30, 1 << 31], [1, 1], [1 << 29, 1 << 30]),
                                        "bad header")
for name, (fn, message) in cases.items():
    ctx = torch.inference_mode() if "inference_mode" in name else (torch.no_grad() if "no_grad" in name else None)
    try:
        if ctx is None:
            fn()
        else:
            with ctx:
                fn()
    except RuntimeError as e:
        assert message in str(e), (name, str(e))
        print("ok:", name, flush=True)
    else:
        raise SystemExit(f"{name}: no error raised")
print("all raised")
"""


@pytest.mark.skipif(not HAS_EXT and os.environ.get("DWQ_REQUIRE_EXT") != "1", reason="dwq._C is not built")
def test_cpp_errors_arrive_as_runtime_errors():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if r.returncode < 0:
        sig = signal.Signals(-r.returncode).name
        pytest.fail(
            f"the interpreter died with {sig} while a dwq C++ error was propagating (after: {r.stdout.strip()!r}).\n"
            "Issue 9's cause was a dwq._C carrying its own copy of libstdc++ (a compiler that links it "
            "statically; setup.py now links the loaded libstdc++.so.6 instead): see "
            "tests/test_build_link.py, and `readelf -d` of dwq._C for a NEEDED libstdc++.so.6.\n" + r.stderr[-3000:]
        )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all raised" in r.stdout
