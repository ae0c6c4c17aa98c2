// The dwq operator library: every schema is declared here once; CPU implementations live in
// csrc/ops/*.cpp and CUDA ones in csrc/cuda/*.cu, each in its own TORCH_LIBRARY_IMPL block.
// The module has no Python functions: importing dwq._C only registers the ops, which keeps the
// extension on the stable ABI (py_limited_api).
#include <Python.h>
#include <torch/library.h>

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(dwq, m) {
  // x: float32/float64, any shape. scale: float32 [C]; zero_point: int32 [C] with C = x.size(axis),
  // or C = 1 with axis = None (per tensor). Returns (x_hat like x, codes int32 like x or empty).
  m.def("fake_quantize(Tensor x, Tensor scale, Tensor zero_point, int bits, int? axis, bool return_codes) "
        "-> (Tensor, Tensor)");
  // --- True-integer GEMM / conv2d (issue 3; CPU: csrc/ops/qgemm.cpp, kernels csrc/cpu/qgemm*.cpp) ---
  // Codes: uint8 (bits <= 8) or int32, values 0..2^bits-1; scale float32 [1] > 0; zero_point int32 [1].
  // x float32 any shape -> codes uint8 (bits <= 8) / int32 (bits > 8), same shape and strides.
  m.def("quantize_act(Tensor x, Tensor scale, Tensor zero_point, int bits) -> Tensor");
  // w_codes [N, K] uint8/int32, zero_point int32 [N] -> opaque packed weight int8 [N, P].
  m.def("pack_weight(Tensor w_codes, Tensor zero_point, int bits) -> Tensor");
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
}
