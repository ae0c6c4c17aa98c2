// The dwq operator library: every schema is declared here once; CPU implementations live in
// csrc/ops/*.cpp and CUDA ones in csrc/cuda/*.cu, each in its own TORCH_LIBRARY_IMPL block.
// Importing dwq._C registers the ops. Its two Python functions are plain C API of the stable ABI
// (py_limited_api): packed_weight_shape, so that Python asks C++ for the packed-weight layout instead
// of re-deriving it (also inside fake impls, where no op may run), and cpu_isas.
#include <ATen/core/enum_tag.h>
#include <Python.h>
#include <torch/library.h>

#include "cpu/qgemm.h"

namespace {

// packed_weight_shape(n, k, bits) -> (n, p): the int8 [N, P] tensor that pack_weight returns.
PyObject* packed_weight_shape(PyObject*, PyObject* args) {
  long long n = 0, k = 0;
  int bits = 0;
  if (!PyArg_ParseTuple(args, "LLi", &n, &k, &bits)) return nullptr;
  if (n <= 0 || k <= 0 || bits < 2 || bits > 16) {
    PyErr_Format(PyExc_ValueError, "packed_weight_shape: need n > 0, k > 0 and bits in 2..16, got n=%lld, k=%lld, bits=%d",
                 n, k, bits);
    return nullptr;
  }
  if (!dwq::cpu::packed_layout_fits(n, k, bits)) {
    PyErr_Format(PyExc_ValueError, "packed_weight_shape: n=%lld, k=%lld at %d bits: n and k must be at most 2^40 "
                 "and the packed weight below 2^62 bytes", n, k, bits);
    return nullptr;
  }
  return Py_BuildValue("(LL)", n, static_cast<long long>(dwq::cpu::packed_weight_cols(n, k, bits)));
}

// cpu_isas() -> tuple of the CPU kernel paths this machine runs, named as DWQ_CPU_ISA names them.
// Asked of C++ because the only other way, forcing each one through DWQ_CPU_ISA and running an op,
// writes the process-wide environment: ops of other threads would switch ISA (or fail) meanwhile.
PyObject* cpu_isas(PyObject*, PyObject*) {
  PyObject* names = PyList_New(0);
  if (names == nullptr) return nullptr;
  for (dwq::cpu::Isa isa : dwq::cpu::kAllIsas) {
    if (!dwq::cpu::isa_supported(isa)) continue;
    PyObject* name = PyUnicode_FromString(dwq::cpu::isa_name(isa));
    const int err = name == nullptr ? -1 : PyList_Append(names, name);
    Py_XDECREF(name);
    if (err != 0) {
      Py_DECREF(names);
      return nullptr;
    }
  }
  PyObject* out = PyList_AsTuple(names);
  Py_DECREF(names);
  return out;
}

PyMethodDef methods[] = {
    {"packed_weight_shape", packed_weight_shape, METH_VARARGS,
     "packed_weight_shape(n, k, bits) -> (n, p): shape of dwq.ops.pack_weight's int8 result for [n, k] codes"},
    {"cpu_isas", cpu_isas, METH_NOARGS,
     "cpu_isas() -> tuple of str: the CPU kernel paths this machine runs (scalar, avx2, avx512_vnni, amx)"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(dwq, m) {
  // x: float32/float64, any shape. scale: float32 [C]; zero_point: int32 [C] with C = x.size(axis),
  // or C = 1 with axis = None (per tensor). Returns (x_hat like x, codes int32 like x or empty).
  // Outputs follow x's memory format (at::empty_like), so torch.compile must hand x over with the
  // strides it traced (needs_exact_strides); else inductor may re-layout x and the outputs' strides
  // would no longer be the fake impl's (issue 10: channels-last models failed to compile).
  m.def("fake_quantize(Tensor x, Tensor scale, Tensor zero_point, int bits, int? axis, bool return_codes) "
        "-> (Tensor, Tensor)",
        {at::Tag::needs_exact_strides});
  // --- Fused quantizers for GPU training (issue 10; CUDA only: csrc/cuda/quantizer_fused.cu) ---
  // Activation range + EMA update of slots `slot` and `observed` + scale/zero point in one launch
  // (arith::act_running_range): x float32/16 any shape; running_min/max float32 [S], initialized
  // bool [S] (mutated when training). Returns (scale float32 [1], zero_point int32 [1]) on x's
  // device, for dwq::fake_quantize.
  m.def("act_qparams(Tensor x, Tensor(a!) running_min, Tensor(b!) running_max, Tensor(c!) initialized, int slot, "
        "int observed, int bits, float ema, bool training) -> (Tensor, Tensor)");
  // Per-output-channel (dim 0) min/max, scale/zero point and fake quantization of a weight, one
  // launch: the WeightQuantizer forward. w float32/16, returns like w (contiguous), in w's dtype or
  // `dtype`: float16/bfloat16 for a float32 w (autocast's, so that the conv casts nothing).
  m.def("weight_fake_quantize(Tensor w, int bits, ScalarType? dtype=None) -> Tensor");
  // --- True-integer GEMM / conv2d (issue 3; CPU: csrc/ops/qgemm.cpp, kernels csrc/cpu/qgemm*.cpp) ---
  // Codes: uint8 (bits <= 8) or int32, values 0..2^bits-1; scale float32 [1] > 0; zero_point int32 [1].
  // x float32 any shape -> codes uint8 (bits <= 8) / int32 (bits > 8), same shape and strides.
  m.def("quantize_act(Tensor x, Tensor scale, Tensor zero_point, int bits) -> Tensor", {at::Tag::needs_exact_strides});
  // quantize_act of relu?(x * scale[c] + bias[c]) with c = dim 1 of x [B, C, ...] (scale, bias float32 [C];
  // the multiply and the add round separately): a folded batch norm, its ReLU and the next layer's
  // quantization in one pass.
  m.def("affine_quantize_act(Tensor x, Tensor scale, Tensor bias, bool relu, Tensor out_scale, "
        "Tensor out_zero_point, int bits) -> Tensor",
        {at::Tag::needs_exact_strides});
  // x = relu(x + other) in place, in one pass: a ResNet block's residual add and ReLU in an integer
  // model. x, other float32 of one shape and strides, x dense (no broadcast); NaN stays NaN as in
  // torch.relu. CPU: csrc/ops/residual.cpp; CUDA: csrc/cuda/qgemm.cu.
  m.def("add_relu_(Tensor(a!) x, Tensor other) -> ()");
  // add_relu_, then quantize_act of the new x (scale float32 [1], zero_point int32 [1], bits 2..16) in the
  // same pass: a residual block's output and the next quantized layer's input codes (x's strides).
  // CPU: csrc/ops/residual.cpp; CUDA: csrc/cuda/qgemm.cu.
  m.def("add_relu_quantize_(Tensor(a!) x, Tensor other, Tensor scale, Tensor zero_point, int bits) -> Tensor");
  // x += other in place, then affine_quantize_act of the new x (the next pre-activation block's batch
  // norm, its ReLU and its quantization) in the same pass; x NCHW or channels-last. CPU:
  // csrc/ops/residual.cpp; CUDA: csrc/cuda/qgemm.cu.
  m.def("add_affine_quantize_(Tensor(a!) x, Tensor other, Tensor scale, Tensor bias, bool relu, Tensor out_scale, "
        "Tensor out_zero_point, int bits) -> Tensor");
  // w_codes [N, K] uint8/int32, zero_point int32 [N] -> opaque packed weight int8 [N, P]. kernel_size
  // [kh, kw]: K holds a conv kernel's weights in (ky, kx, c) order (what qconv2d needs; recorded).
  m.def("pack_weight(Tensor w_codes, Tensor zero_point, int bits, int[] kernel_size=[]) -> Tensor");
  // Exact accumulators sum_k (qx - zx)(qw - zw): x_codes [M, K] -> int64 [M, N].
  m.def("qgemm_acc(Tensor x_codes, Tensor x_zero_point, int x_bits, Tensor w_packed) -> Tensor");
  // Fused linear: float32 [M, N], or codes of out_bits when out_scale/out_zero_point are given.
  m.def("qlinear(Tensor x_codes, Tensor x_scale, Tensor x_zero_point, int x_bits, Tensor w_packed, "
        "Tensor w_scale, Tensor? affine_scale, Tensor? affine_bias, bool relu, Tensor? out_scale, "
        "Tensor? out_zero_point, int out_bits) -> Tensor");
  // Conv2d (groups=1) on x_codes [B, C, H, W] (any strides; channels_last is fastest), weight packed
  // from [O, kh, kw, C]; padding uses the code zx. Outputs [B, O, OH, OW] in channels_last memory.
  m.def("qconv2d_acc(Tensor x_codes, Tensor x_zero_point, int x_bits, Tensor w_packed, int[2] kernel_size, "
        "int[2] stride, int[2] padding) -> Tensor");
  m.def("qconv2d(Tensor x_codes, Tensor x_scale, Tensor x_zero_point, int x_bits, Tensor w_packed, "
        "Tensor w_scale, int[2] kernel_size, int[2] stride, int[2] padding, Tensor? affine_scale, "
        "Tensor? affine_bias, bool relu, Tensor? out_scale, Tensor? out_zero_point, int out_bits) -> Tensor");
  // A residual block's end: (y, codes) with y = relu?(qconv2d's float output + residual) (residual
  // float32 of the output's shape, channels-last; the ReLU after the add) and codes = quantize_act(y,
  // out_scale, out_zero_point, out_bits), made in the conv's epilogue. CPU: csrc/ops/qgemm.cpp; on
  // CUDA dwq.ops.qconv2d_residual composes qconv2d, add_relu_quantize_ (or their float parts).
  m.def("qconv2d_residual(Tensor x_codes, Tensor x_scale, Tensor x_zero_point, int x_bits, Tensor w_packed, "
        "Tensor w_scale, int[2] kernel_size, int[2] stride, int[2] padding, Tensor? affine_scale, "
        "Tensor? affine_bias, Tensor residual, bool relu, Tensor out_scale, Tensor out_zero_point, "
        "int out_bits) -> (Tensor, Tensor)");
}
