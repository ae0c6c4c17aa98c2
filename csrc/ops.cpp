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
}
