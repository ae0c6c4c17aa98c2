// CUDA bindings of the true-integer ops (schemas in csrc/ops.cpp; CPU twins in csrc/ops/qgemm.cpp):
// quantize_act, affine_quantize_act, add_relu_, add_relu_quantize_, add_affine_quantize_, pack_weight,
// qgemm_acc, qlinear, qconv2d_acc, qconv2d. Same schemas, results
// (bit for bit: arith.h everywhere, exact integer accumulators) and output layouts as the CPU ops.
//
// The packed weight is the CPU's blob, byte for byte (pack_weight here writes what the CPU pack
// writes; a blob packed on the CPU and moved with .to("cuda") works as it is): the mma.sync kernel
// reads its limb planes directly (qgemm_mma.cuh), the Hopper wgmma kernels a K-major copy
// (qgemm_wgmma.cuh) kept per blob until the blob changes (kmajor_weight below), so one layout, owned
// by csrc/cpu/qgemm.h, serves both devices and dwq.ops.packed_weight_shape holds for both.
//
// Host syncs: the launchers read no tensor values (scales and zero points are read by the kernels
// from device memory), so an op is a handful of asynchronous launches. Value checks (codes in
// range, scales finite and > 0, zero points codes, NaN in quantize_act's input, the blob's header)
// run on the device into a status buffer; with DWQ_CUDA_CHECKS unset or 1 (the default) the op
// then reads it back (one sync) and raises the CPU op's error; DWQ_CUDA_CHECKS=0 skips the read
// (no sync: for timing and CUDA graphs; bad input then gives meaningless numbers, never an
// out-of-bounds access, since every address derives from tensor shapes, not from values).
// pack_weight (once, at conversion) always checks.
//
// First run on an H200 on 2026-12-04: bit-exact in tests/test_qgemm_cuda.py, memcheck-clean
// (docs/gpu_h200.md); not yet as fast as fp16 there.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "common/derived_cache.h"
#include "cuda/binding_util.h"
#include "cpu/qgemm.h"
#include "cuda/qgemm_launch.h"
#include "cuda/qgemm_prep.cuh"
#include "ops/qgemm_checks.h"
#include "ops/residual_checks.h"

namespace dwq {
namespace {

using cuda::aligned16;

using cuda::ActParams;
using cuda::EpiParams;
using cuda::MmaParams;

bool value_checks() {
  const char* e = std::getenv("DWQ_CUDA_CHECKS");
  return e == nullptr || std::strcmp(e, "0") != 0;
}

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

unsigned blocks_for(int64_t work, int threads, int64_t cap = 65535 * 16) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((work + threads - 1) / threads, cap)));
}

void check_cuda_input(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.is_cuda(), "dwq.", op, ": ", name, " must be a CUDA tensor for the CUDA kernel, got device ",
              t.device(), " (all tensor arguments of one call must be on one device)");
}

void check_launch(const char* op, cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, "dwq.", op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

// The value-check status words. The kernels only add or OR into them; zeroed when the op reads them
// back, uninitialized (no fill launch) when DWQ_CUDA_CHECKS=0 leaves them unread.
at::Tensor status_words(bool checks, const at::TensorOptions& opt) {
  const int64_t n = cuda::kStatusWords;
  return checks ? at::zeros({n}, opt.dtype(at::kInt)) : at::empty({n}, opt.dtype(at::kInt));
}

// status int32 [kStatusWords] -> host copy (one sync).
std::vector<int32_t> read_status(const at::Tensor& status) {
  const at::Tensor h = status.to(at::kCPU);
  return std::vector<int32_t>(h.data_ptr<int32_t>(), h.data_ptr<int32_t>() + h.numel());
}

// ---------------------------------------------------------------- quantize_act / pack_weight

// The launches of an op that makes codes elementwise: the device check of its parameters (pc, on
// `check_blocks` x `check_threads`), kernel(stream, status), then, with value checks on, the
// read-back (one sync): reread(flags) re-reads a parameter the device flagged, on the host, to raise
// the CPU op's error; NaN results raise "dwq.<op>: <nan_what> N NaN value(s)<nan_note>; ...". The
// caller holds x's device guard (it allocates the outputs and pc's copies under it).
template <class Kernel, class Reread>
void run_codes_op(const char* op, const at::Tensor& x, const cuda::ParamCheck& pc, unsigned check_blocks,
                  unsigned check_threads, const char* params, const char* nan_what, const char* nan_note,
                  Kernel&& kernel, Reread&& reread) {
  auto stream = c10::cuda::getCurrentCUDAStream();
  const bool checks = value_checks();
  at::Tensor status = status_words(checks, x.options());
  if (checks) {
    cuda::check_params_kernel<<<check_blocks, check_threads, 0, stream>>>(pc, status.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  kernel(stream, status.data_ptr<int32_t>(), checks);
  if (!checks) return;
  const std::vector<int32_t> st = read_status(status);
  reread(st[cuda::kStParamFlags]);
  TORCH_CHECK(st[cuda::kStParamFlags] == 0, "dwq.", op, ": ", params, " failed its check on the device but passed on "
              "re-reading: was it modified while the op ran?");
  TORCH_CHECK(st[cuda::kStNaN] == 0, "dwq.", op, ": ", nan_what, " ", st[cuda::kStNaN], " NaN value(s)", nan_note,
              "; NaN has no code");
}

// quantize_act's per-tensor scale and zero point: device copies for the kernels, their device check.
struct ActQ {
  at::Tensor sc, zc;
  cuda::ParamCheck pc;
  ActQ(const at::Tensor& scale, const at::Tensor& zero_point, int64_t bits)
      : sc(scale.reshape({1}).contiguous()), zc(zero_point.reshape({1}).contiguous()) {
    pc.x_scale = sc.data_ptr<float>();
    pc.x_zp = zc.data_ptr<int32_t>();
    pc.x_bits = static_cast<int>(bits);
  }
  void reread(const char* op, int flags, const at::Tensor& scale, const at::Tensor& zero_point, int64_t bits) const {
    if (flags & cuda::kBadXScale) qg_scale1_value(op, "scale", scale);
    if (flags & cuda::kBadXZp) qg_zp1_value(op, "zero_point", zero_point, bits);
  }
};

at::Tensor quantize_act_cuda(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point, int64_t bits) {
  const char* op = "quantize_act";
  qg_check_bits(op, "bits", bits);
  check_cuda_input(op, "x", x);
  TORCH_CHECK(x.scalar_type() == at::kFloat, "dwq.quantize_act: x must be float32, got ", x.scalar_type());
  qg_check_scale1_meta(op, "scale", scale, x.device());
  qg_check_zp1_meta(op, "zero_point", zero_point, x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const bool u8 = bits <= 8;
  // Same layout rule as the CPU op: codes in x's memory format.
  at::Tensor out = at::empty_like(x, x.options().dtype(u8 ? at::kByte : at::kInt));
  const at::Tensor xc = x.is_non_overlapping_and_dense() ? x : x.contiguous();
  at::Tensor dst = out.strides() == xc.strides() ? out : at::empty_like(xc, out.options());
  const ActQ q(scale, zero_point, bits);
  const int64_t n = xc.numel();
  run_codes_op(op, x, q.pc, 1, 32, "scale or zero_point", "x contains", "",
               [&](cudaStream_t stream, int32_t* status, bool) {  // (x is not written: nothing to hold back)
                 if (n == 0) return;
                 cuda::quantize_act_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(
                     xc.data_ptr<float>(), nullptr, nullptr, n, q.sc.data_ptr<float>(), q.zc.data_ptr<int32_t>(), static_cast<int>(bits),
                     dst.data_ptr(), u8, status, false);
                 C10_CUDA_KERNEL_LAUNCH_CHECK();
               },
               [&](int flags) { q.reread(op, flags, scale, zero_point, bits); });
  if (!dst.is_same(out)) out.copy_(dst);
  return out;
}

// affine_quantize_act's per-channel affine and output quantization: device copies, their device check.
struct AffineQ {
  at::Tensor mul, add, sc, zc;
  cuda::ParamCheck pc;
  AffineQ(const at::Tensor& scale, const at::Tensor& bias, const at::Tensor& out_scale,
          const at::Tensor& out_zero_point, int64_t bits, int64_t C)
      : mul(scale.contiguous()), add(bias.contiguous()), sc(out_scale.reshape({1}).contiguous()),
        zc(out_zero_point.reshape({1}).contiguous()) {
    pc.out_scale = sc.data_ptr<float>();
    pc.out_zp = zc.data_ptr<int32_t>();
    pc.out_bits = static_cast<int>(bits);
    pc.aff_scale = mul.data_ptr<float>();
    pc.aff_bias = add.data_ptr<float>();
    pc.N = C;
  }
  void reread(const char* op, int flags, const at::Tensor& scale, const at::Tensor& bias, const at::Tensor& out_scale,
              const at::Tensor& out_zero_point, int64_t bits) const {
    if (flags & cuda::kBadAffScale) qg_vec_values(op, "scale", scale, false);
    if (flags & cuda::kBadAffBias) qg_vec_values(op, "bias", bias, false);
    if (flags & cuda::kBadOutScale) qg_scale1_value(op, "out_scale", out_scale);
    if (flags & cuda::kBadOutZp) qg_zp1_value(op, "out_zero_point", out_zero_point, bits);
  }
};

constexpr const char* kAffineParams = "scale, bias, out_scale or out_zero_point";

// The CPU op's contract (csrc/ops/qgemm.cpp): codes of relu?(x * scale[c] + bias[c]), c = dim 1, in
// x's memory format; one launch over NCHW or channels-last x (other layouts are copied to NCHW).
at::Tensor affine_quantize_act_cuda(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& bias, bool relu,
                                    const at::Tensor& out_scale, const at::Tensor& out_zero_point, int64_t bits) {
  const char* op = "affine_quantize_act";
  check_cuda_input(op, "x", x);
  const int64_t C = qg_check_affine_meta(op, x, scale, bias, out_scale, out_zero_point, bits);
  const c10::cuda::CUDAGuard guard(x.device());
  const bool u8 = bits <= 8;
  at::Tensor out = at::empty_like(x, x.options().dtype(u8 ? at::kByte : at::kInt));
  const AffineLayout l = qg_affine_layout(x);
  at::Tensor dst = out.strides() == l.x.strides() ? out : at::empty_like(l.x, out.options());
  const AffineQ q(scale, bias, out_scale, out_zero_point, bits, C);
  const int64_t n = l.x.numel();
  run_codes_op(op, x, q.pc, blocks_for(C, 256, 1024), 256, kAffineParams, "x * scale + bias has",
               " (NaN in x, or inf * 0)",
               [&](cudaStream_t stream, int32_t* status, bool) {  // (x is not written)
                 if (n == 0) return;
                 cuda::affine_quantize_act_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(
                     l.x.data_ptr<float>(), nullptr, nullptr, n, l.nhwc ? 1 : l.inner, C, q.mul.data_ptr<float>(),
                     q.add.data_ptr<float>(), relu, q.sc.data_ptr<float>(), q.zc.data_ptr<int32_t>(),
                     static_cast<int>(bits), dst.data_ptr(), u8, status, false);
                 C10_CUDA_KERNEL_LAUNCH_CHECK();
               },
               [&](int flags) { q.reread(op, flags, scale, bias, out_scale, out_zero_point, bits); });
  if (!dst.is_same(out)) out.copy_(dst);
  return out;
}

// The CPU op's contract (csrc/ops/residual.cpp): x = relu(x + other) in place, one launch.
void add_relu_cuda(at::Tensor& x, const at::Tensor& other) {
  check_cuda_input("add_relu_", "x", x);
  check_add_relu_args(x, other);
  const int64_t n = x.numel();
  if (n == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  cuda::add_relu_kernel<<<blocks_for(n, 256), 256, 0, c10::cuda::getCurrentCUDAStream()>>>(
      x.data_ptr<float>(), other.const_data_ptr<float>(), n);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The CPU op's contract (csrc/ops/residual.cpp): x = relu(x + other) in place, and its codes, in one
// launch (x dense: the codes take its strides).
at::Tensor add_relu_quantize_cuda(at::Tensor& x, const at::Tensor& other, const at::Tensor& scale,
                                  const at::Tensor& zero_point, int64_t bits) {
  const char* op = "add_relu_quantize_";
  check_cuda_input(op, "x", x);
  check_add_relu_args(x, other, op);
  qg_check_bits(op, "bits", bits);
  qg_check_scale1_meta(op, "scale", scale, x.device());
  qg_check_zp1_meta(op, "zero_point", zero_point, x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const bool u8 = bits <= 8;
  at::Tensor codes = at::empty_like(x, x.options().dtype(u8 ? at::kByte : at::kInt));
  const ActQ q(scale, zero_point, bits);
  const int64_t n = x.numel();
  run_codes_op(op, x, q.pc, 1, 32, "scale or zero_point", "relu(x + other) has", "",
               [&](cudaStream_t stream, int32_t* status, bool checks) {
                 if (n == 0) return;
                 cuda::quantize_act_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(
                     x.data_ptr<float>(), other.const_data_ptr<float>(), x.data_ptr<float>(), n, q.sc.data_ptr<float>(),
                     q.zc.data_ptr<int32_t>(), static_cast<int>(bits), codes.data_ptr(), u8, status, checks);
                 C10_CUDA_KERNEL_LAUNCH_CHECK();
               },
               [&](int flags) { q.reread(op, flags, scale, zero_point, bits); });
  return codes;
}

// The CPU op's contract (csrc/ops/residual.cpp): x += other in place, and the codes of
// relu?(x * scale[c] + bias[c]), in one launch; x NCHW or channels-last (updated in place, so never
// copied into either).
at::Tensor add_affine_quantize_cuda(at::Tensor& x, const at::Tensor& other, const at::Tensor& scale,
                                    const at::Tensor& bias, bool relu, const at::Tensor& out_scale,
                                    const at::Tensor& out_zero_point, int64_t bits) {
  const char* op = "add_affine_quantize_";
  check_cuda_input(op, "x", x);
  check_add_relu_args(x, other, op);
  const int64_t C = qg_check_affine_meta(op, x, scale, bias, out_scale, out_zero_point, bits);
  const AffineLayout l = qg_affine_layout(x);
  TORCH_CHECK(l.x.is_same(x), "dwq.", op, ": x must be contiguous or channels-last (it is updated in place), got "
              "strides ", x.strides());
  const c10::cuda::CUDAGuard guard(x.device());
  const bool u8 = bits <= 8;
  at::Tensor codes = at::empty_like(x, x.options().dtype(u8 ? at::kByte : at::kInt));
  const AffineQ q(scale, bias, out_scale, out_zero_point, bits, C);
  const int64_t n = x.numel();
  run_codes_op(op, x, q.pc, blocks_for(C, 256, 1024), 256, kAffineParams, "(x + other) * scale + bias has", "",
               [&](cudaStream_t stream, int32_t* status, bool checks) {
                 if (n == 0) return;
                 cuda::affine_quantize_act_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(
                     x.data_ptr<float>(), other.const_data_ptr<float>(), x.data_ptr<float>(), n,
                     l.nhwc ? 1 : l.inner, C,
                     q.mul.data_ptr<float>(), q.add.data_ptr<float>(), relu, q.sc.data_ptr<float>(),
                     q.zc.data_ptr<int32_t>(), static_cast<int>(bits), codes.data_ptr(), u8, status, checks);
                 C10_CUDA_KERNEL_LAUNCH_CHECK();
               },
               [&](int flags) { q.reread(op, flags, scale, bias, out_scale, out_zero_point, bits); });
  return codes;
}

at::Tensor pack_weight_cuda(const at::Tensor& w, const at::Tensor& zero_point, int64_t bits,
                            at::IntArrayRef kernel_size) {
  const char* op = "pack_weight";
  qg_check_bits(op, "bits", bits);
  check_cuda_input(op, "w_codes", w);
  qg_check_codes(op, "w_codes", w, 2, w.device());
  const int64_t N = w.size(0), K = w.size(1);
  TORCH_CHECK(N > 0 && K > 0, "dwq.pack_weight: w_codes must be non-empty [N, K], got ", w.sizes());
  qg_pack_size(N, K, bits);
  const auto [kh, kw] = qg_pack_kernel(kernel_size, K);
  qg_check_device(op, "zero_point", zero_point, w.device());
  TORCH_CHECK(zero_point.scalar_type() == at::kInt, "dwq.pack_weight: zero_point must be int32, got ",
              zero_point.scalar_type());
  TORCH_CHECK(zero_point.dim() == 1 && zero_point.numel() == N, "dwq.pack_weight: zero_point must have shape [", N,
              "] (one per output channel), got ", zero_point.sizes());
  qg_zp_vec_values(op, "zero_point", zero_point, bits);  // conversion time: a sync is fine
  const c10::cuda::CUDAGuard guard(w.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  cpu::PackedLayout L = cpu::packed_layout(N, K, static_cast<int>(bits), kh, kw);
  L.zp_shifted = cpu::pack_zp_shifted(static_cast<int>(bits));  // (zero points checked above)
  at::Tensor out = at::zeros({N, cpu::packed_weight_cols(N, K, static_cast<int>(bits))}, w.options().dtype(at::kChar));
  TORCH_INTERNAL_ASSERT(aligned16(out.data_ptr()) && out.numel() >= L.bytes);
  at::Tensor header = at::empty({cpu::kHeaderBytes}, at::TensorOptions().dtype(at::kChar));
  cpu::write_packed_header(L, header.data_ptr<int8_t>());
  out.view({-1}).narrow(0, 0, cpu::kHeaderBytes).copy_(header);
  const at::Tensor zc = zero_point.contiguous();
  at::Tensor status = at::zeros({int64_t{cuda::kStatusWords}}, w.options().dtype(at::kInt));
  int8_t* blob = out.data_ptr<int8_t>();
  const int64_t words = L.limbs * L.Npad * L.Kp / 4;
  const uint32_t qmax = static_cast<uint32_t>((int64_t{1} << bits) - 1);
  auto run = [&](auto* wp) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(wp)>>;
    cuda::pack_words_kernel<T><<<blocks_for(words, 256), 256, 0, stream>>>(
        wp, N, K, w.stride(0), w.stride(1), L.Kp, L.Npad, L.limbs, L.zp_shifted ? zc.data_ptr<int32_t>() : nullptr,
        reinterpret_cast<uint32_t*>(blob + L.data_off));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    cuda::pack_colsum_kernel<T><<<blocks_for(N * 32, 256, int64_t{1} << 30), 256, 0, stream>>>(
        wp, N, K, w.stride(0), w.stride(1), zc.data_ptr<int32_t>(), qmax,
        reinterpret_cast<int64_t*>(blob + L.colsum_off), reinterpret_cast<int32_t*>(blob + L.zp_off),
        status.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if (w.scalar_type() == at::kByte)
    run(w.data_ptr<uint8_t>());
  else
    run(w.data_ptr<int32_t>());
  const std::vector<int32_t> st = read_status(status);
  TORCH_CHECK(st[cuda::kStBadCodes] == 0, "dwq.pack_weight: w_codes has ", st[cuda::kStBadCodes],
              " value(s) outside 0..", qmax, " (not codes of bits = ", bits, ")");
  return out;
}

// ---------------------------------------------------------------- GEMM / conv engine

// The packed weight as the kernels see it. Its K and limb count are inferred from the shapes
// (reading the header would need a sync): the blob of [N, K] codes has packed_weight_cols(N, K, b)
// columns, one value for b <= 8 and a larger one for 9..16. The header is checked after the run
// when value checks are on.
struct CudaWeight {
  at::Tensor blob;
  cpu::PackedLayout L;  // bits = 8 or 16: the limb class
  KNeed need;           // what the input needs of its K (for the errors)
  bool is_argument;     // blob is the op's argument itself, not a copy made for this call
};

// The CPU binding's errors for a blob whose header (hdr: its first kHeaderBytes bytes, on the host)
// does not describe [N, K] codes; limbs = 0 accepts either width class. Returns if it does.
void check_header(const char* op, const int8_t* hdr, int64_t nbytes, int64_t N, const KNeed& need, int limbs) {
  cpu::PackedWeightView view;
  TORCH_CHECK(cpu::parse_packed_weight(hdr, nbytes, &view) && (limbs == 0 || view.limbs == limbs), "dwq.", op,
              ": w_packed is not a dwq packed weight (bad header); make it with dwq.ops.pack_weight");
  TORCH_CHECK(view.N == N, "dwq.", op, ": w_packed header says N = ", view.N, " but w_packed.size(0) = ", N);
  qg_check_k(op, view, need);
}

void check_index_range(const char* op, int64_t M, int64_t N, int64_t K) {
  constexpr int64_t lim = (int64_t{1} << 31) - 1;
  TORCH_CHECK(M <= lim && N <= lim && K <= lim, "dwq.", op, ": M = ", M, ", N = ", N, ", K = ", K,
              " must each be below 2^31 for the CUDA kernels");
}

// The packed weight of an op with M rows (checked with N and K against the kernels' 32-bit indices).
CudaWeight cuda_weight(const char* op, const at::Tensor& w, const KNeed& need, int64_t M, const at::Device& device) {
  const int64_t K = need.K;
  qg_check_device(op, "w_packed", w, device);
  TORCH_CHECK(w.scalar_type() == at::kChar && w.dim() == 2, "dwq.", op,
              ": w_packed must be the int8 [N, P] tensor made by dwq.ops.pack_weight, got ", w.scalar_type(), " ",
              w.sizes());
  const int64_t N = w.size(0), P = w.size(1);
  TORCH_CHECK(N > 0 && P > 0 && N * P >= cpu::kHeaderBytes, "dwq.", op,
              ": w_packed is not a dwq packed weight (bad header); make it with dwq.ops.pack_weight");
  check_index_range(op, M, N, K);  // before the blob's size is computed from N and K: an absurd K overflows it
  const int64_t p1 = cpu::packed_weight_cols(N, K, 8), p2 = cpu::packed_weight_cols(N, K, 16);
  if (P != p1 && P != p2) {
    // Not the shape of a blob for this K: read the header (an error path, a sync is fine) to say why.
    const at::Tensor hdr = w.contiguous().view({-1}).narrow(0, 0, cpu::kHeaderBytes).to(at::kCPU);
    check_header(op, hdr.data_ptr<int8_t>(), w.numel(), N, need, 0);
    TORCH_CHECK(false, "dwq.", op, ": w_packed [", N, ", ", P, "] has the header of a weight packed with K = ", K,
                " but not its size (", p1, " or ", p2, " columns)");
  }
  CudaWeight out;
  out.blob = w.contiguous();
  if (!aligned16(out.blob.data_ptr())) out.blob = out.blob.clone();  // cp.async reads 16-byte chunks
  out.L = cpu::packed_layout(N, K, P == p1 ? 8 : 16);
  out.need = need;
  out.is_argument = out.blob.is_same(w);
  return out;
}

// ---- the wgmma engines' K-major weight copies
//
// Made per call, the copy cost a 4096^3 op 27 of its 166 us on an H200 (docs/gpu_h200.md, call 6),
// for a weight that an integer model never changes. So one is kept per (blob, stream, layout) while
// the blob lives and its tensor version (what in-place ops and load_state_dict's copy_ advance)
// stays the one it was made at. Per stream, so that a copy is only read in the order of the stream
// that wrote it, and freed in that order too. Not kept: where the blob has no version (an inference
// tensor), was copied for this call (not contiguous or not 16-byte aligned), or during a CUDA graph
// capture (its copy kernel would run only at replay); those calls copy as before. A write that
// skips the version (through .data, DLPack or another tensor object set_ to the same storage) is
// not seen: DWQ_CUDA_WEIGHT_CACHE=0 turns the cache off.
struct KmajorKey {
  const void* storage;
  int64_t offset, N, Npad, Kp, ldb;
  int lw;
  cudaStream_t stream;
  bool operator==(const KmajorKey& o) const {
    return storage == o.storage && offset == o.offset && N == o.N && Npad == o.Npad && Kp == o.Kp && ldb == o.ldb &&
           lw == o.lw && stream == o.stream;
  }
};

struct KmajorKeyHash {
  std::size_t operator()(const KmajorKey& k) const {
    std::size_t h = std::hash<const void*>()(k.storage);
    for (const int64_t v : {k.offset, k.N, k.Npad, k.Kp, k.ldb, int64_t{k.lw}}) h = h * 1000003u ^ std::hash<int64_t>()(v);
    return h * 1000003u ^ std::hash<const void*>()(k.stream);
  }
};

using KmajorCache = DerivedCache<KmajorKey, KmajorKeyHash, c10::weak_intrusive_ptr<c10::StorageImpl>, at::Tensor>;

// Never destroyed: its tensors would be freed after the CUDA context at exit.
KmajorCache& kmajor_cache() {
  static KmajorCache* cache = new KmajorCache();
  return *cache;
}

bool weight_cache_on() {
  const char* e = std::getenv("DWQ_CUDA_WEIGHT_CACHE");
  return e == nullptr || std::strcmp(e, "0") != 0;
}

// The K-major copy [lw][N][ldb] of w's weight planes, made on `stream` or found in the cache.
at::Tensor kmajor_weight(const char* op, const CudaWeight& w, int64_t ldb, cudaStream_t stream) {
  const int lw = w.L.limbs;
  const int64_t N = w.L.N;
  auto make = [&] {
    at::Tensor bk = at::empty({lw, N, ldb}, w.blob.options());
    check_launch(op, cuda::launch_repack_kmajor(w.blob.data_ptr<int8_t>() + w.L.data_off, N, w.L.Npad, w.L.Kp, lw,
                                                bk.data_ptr<int8_t>(), ldb, stream));
    return bk;
  };
  if (!weight_cache_on() || !w.is_argument || w.blob.is_inference() ||
      c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None)
    return make();
  const KmajorKey key{w.blob.storage().unsafeGetStorageImpl(), w.blob.storage_offset(), N, w.L.Npad, w.L.Kp, ldb, lw,
                      stream};
  const auto version = static_cast<uint64_t>(w.blob._version());
  if (std::optional<at::Tensor> hit = kmajor_cache().find(key, version)) return *hit;
  at::Tensor bk = make();
  kmajor_cache().put(key, w.blob.storage().getWeakStorageImpl(), version, bk);
  return bk;
}

struct Epi {
  int kind = cuda::kOutF32;
  const at::Tensor* x_scale = nullptr;
  const at::Tensor* w_scale = nullptr;
  std::optional<at::Tensor> aff_scale, aff_bias, out_scale, out_zp;
  bool relu = false;
  int64_t out_bits = 8;
  at::ScalarType dtype = at::kFloat;
};

Epi make_epi(const char* op, const at::Tensor& x_scale, const at::Tensor& w_scale, int64_t N,
             const std::optional<at::Tensor>& affine_scale, const std::optional<at::Tensor>& affine_bias, bool relu,
             const std::optional<at::Tensor>& out_scale, const std::optional<at::Tensor>& out_zero_point,
             int64_t out_bits, const at::Device& device) {
  Epi e;
  qg_check_scale1_meta(op, "x_scale", x_scale, device);
  qg_check_vec_meta(op, "w_scale", w_scale, N, device);
  if (affine_scale.has_value()) qg_check_vec_meta(op, "affine_scale", *affine_scale, N, device);
  if (affine_bias.has_value()) qg_check_vec_meta(op, "affine_bias", *affine_bias, N, device);
  TORCH_CHECK(out_scale.has_value() == out_zero_point.has_value(), "dwq.", op,
              ": give both out_scale and out_zero_point (requantized output) or neither (float32 output)");
  e.x_scale = &x_scale;
  e.w_scale = &w_scale;
  e.relu = relu;
  if (affine_scale.has_value()) e.aff_scale = affine_scale->contiguous();
  if (affine_bias.has_value()) e.aff_bias = affine_bias->contiguous();
  if (out_scale.has_value()) {
    qg_check_bits(op, "out_bits", out_bits);
    qg_check_scale1_meta(op, "out_scale", *out_scale, device);
    qg_check_zp1_meta(op, "out_zero_point", *out_zero_point, device);
    e.out_scale = out_scale->reshape({1}).contiguous();
    e.out_zp = out_zero_point->reshape({1}).contiguous();
    e.out_bits = out_bits;
    e.kind = out_bits <= 8 ? cuda::kOutU8 : cuda::kOutI32;
    e.dtype = out_bits <= 8 ? at::kByte : at::kInt;
  }
  return e;
}

Epi acc_epi() {
  Epi e;
  e.kind = cuda::kOutAccI64;
  e.dtype = at::kLong;
  return e;
}

// The activation operand: GEMM rows of x [M, K] or im2col rows of a conv input.
struct Act {
  ActParams ap;  // geometry, strides, bits (qmax); outputs filled by run_engine
  bool is_u8 = true;
  int bits = 8;
};

// K per grid z-slice: the int32-exact limit, and smaller when the output tiles alone would leave
// most SMs idle (skinny GEMMs such as 32 x 4096 x 4096): then split K (int64 sums in a workspace).
int64_t split_k_chunk(int64_t M, int64_t N, int64_t K, bool limb, int device, cuda::Engine engine) {
  const int n_sm = cuda::sm_count(device);
  const int64_t limit = cuda::mma_k_chunk(limb);
  const int64_t bm = cuda::gemm_block_m(engine, limb, N), bn = cuda::gemm_block_n(engine, limb, N);
  const int64_t align = cuda::gemm_k_align(engine);
  const int64_t tiles = ((M + bm - 1) / bm) * ((N + bn - 1) / bn);
  int64_t want = 1;
  if (tiles < n_sm && K >= 2048) want = std::min<int64_t>((2 * n_sm + tiles - 1) / tiles, K / 512);
  const int64_t chunk = round_up((K + want - 1) / want, align);
  return std::min(limit, std::max<int64_t>(chunk, align));
}

// The tensor-core engine of an M x N x K product (limb: 9..16 bits; conv: implicit conv mode):
// DWQ_CUDA_GEMM = "mma" (mma.sync, every GPU from sm_80), "wgmma" (Hopper's warpgroup MMA, operands
// by cp.async), "wgmma_tma" (the same, warp-specialized: a producer warpgroup feeds it by TMA),
// "wgmma_pp" (the TMA kernel with ping-pong consumers, see qgemm_wgmma_tma.cuh) -- each an error
// where the build or the GPU lacks sm_90a -- or "auto", the default: on a Hopper GPU the engine that
// ran fastest on an H200 for the kind of product (docs/gpu_h200.md, call 6): wgmma_tma for a matrix
// (run_engine takes wgmma where its tensor maps do not fit), wgmma for an implicit conv (in place or
// on limb planes: conv_fits in run_engine), and mma where their tiles would split K (few output
// tiles: skinny products, deep layers at a small batch); mma on other GPUs. (wgmma_pp has not run
// on a GPU yet; auto never picks it.)
cuda::Engine gemm_engine(const char* op, int device, int64_t M, int64_t N, int64_t K, bool limb, bool conv) {
  const char* v = std::getenv("DWQ_CUDA_GEMM");
  if (v != nullptr && std::strcmp(v, "mma") == 0) return cuda::Engine::kMma;
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) {
    if (!cuda::wgmma_supported(device)) return cuda::Engine::kMma;
    const cuda::Engine hopper = conv ? cuda::Engine::kWgmma : cuda::Engine::kWgmmaTma;
    return split_k_chunk(M, N, K, limb, device, hopper) < K ? cuda::Engine::kMma : hopper;
  }
  const bool tma = std::strcmp(v, "wgmma_tma") == 0, pp = std::strcmp(v, "wgmma_pp") == 0;
  TORCH_CHECK(tma || pp || std::strcmp(v, "wgmma") == 0, "dwq.", op, ": DWQ_CUDA_GEMM = '", v,
              "' is not an engine (expected 'mma', 'wgmma', 'wgmma_tma', 'wgmma_pp' or 'auto')");
  TORCH_CHECK(cuda::wgmma_supported(device), "dwq.", op, ": DWQ_CUDA_GEMM = '", v,
              "' needs a GPU of compute capability 9.0 (H100, H200) and dwq._C built with "
              "9.0a in TORCH_CUDA_ARCH_LIST (the default); device ", device, " or this build has not");
  return pp ? cuda::Engine::kWgmmaPp : tma ? cuda::Engine::kWgmmaTma : cuda::Engine::kWgmma;
}

// Runs the engine into out (row-major [M][N] of e.dtype), with the value checks and their errors.
void run_engine(const char* op, const at::Tensor& x, const at::Tensor& x_zero_point, Act a, const CudaWeight& w,
                const Epi& e, at::Tensor& out) {
  const int64_t M = a.ap.M, K = a.ap.K, N = w.L.N;
  auto stream = c10::cuda::getCurrentCUDAStream();
  const at::TensorOptions opt = x.options();
  const bool checks = value_checks();
  const at::Tensor zx = x_zero_point.reshape({1}).contiguous();
  at::Tensor status = status_words(checks, opt);
  int32_t* st = status.data_ptr<int32_t>();
  const at::Tensor sx = e.x_scale != nullptr ? e.x_scale->reshape({1}).contiguous() : at::Tensor();
  const at::Tensor sw = e.w_scale != nullptr ? e.w_scale->contiguous() : at::Tensor();
  const int8_t* blob = w.blob.data_ptr<int8_t>();
  if (checks) {
    cuda::ParamCheck pc;
    pc.x_zp = zx.data_ptr<int32_t>();
    pc.x_bits = a.bits;
    if (sx.defined()) pc.x_scale = sx.data_ptr<float>();
    if (sw.defined()) pc.w_scale = sw.data_ptr<float>();
    if (e.aff_scale) pc.aff_scale = e.aff_scale->data_ptr<float>();
    if (e.aff_bias) pc.aff_bias = e.aff_bias->data_ptr<float>();
    if (e.out_scale) pc.out_scale = e.out_scale->data_ptr<float>();
    if (e.out_zp) pc.out_zp = e.out_zp->data_ptr<int32_t>();
    pc.out_bits = static_cast<int>(e.out_bits);
    pc.w_bits = reinterpret_cast<const int32_t*>(blob + cpu::kHeaderBitsOff);
    pc.w_zp = reinterpret_cast<const int32_t*>(blob + w.L.zp_off);
    pc.w_colsum = reinterpret_cast<const int64_t*>(blob + w.L.colsum_off);
    pc.w_K = w.L.K;
    pc.N = N;
    cuda::check_params_kernel<<<blocks_for(N, 256, 1024), 256, 0, stream>>>(pc, st);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  const int lx = cpu::limbs_for_bits(a.bits), lw = w.L.limbs;
  // The value checks: one read-back of the status and the blob's header; the CPU op's errors.
  auto finish_checks = [&] {
    C10_CUDA_CHECK(cudaMemcpyAsync(st + cuda::kStHeader, blob, cpu::kHeaderBytes, cudaMemcpyDeviceToDevice, stream));
    const std::vector<int32_t> s = read_status(status);
    check_header(op, reinterpret_cast<const int8_t*>(s.data() + cuda::kStHeader), w.blob.numel(), N, w.need, lw);
    const int flags = s[cuda::kStParamFlags];
    if (flags & cuda::kBadPacked) {  // an error path: the channels' values come to the host to be named
      int32_t bits = 0;
      std::memcpy(&bits, s.data() + cuda::kStHeader + cpu::kHeaderBitsOff / 4, sizeof(bits));
      const at::Tensor flat = w.blob.view({-1});
      const at::Tensor zp = flat.narrow(0, w.L.zp_off, 4 * N).to(at::kCPU);
      const at::Tensor cs = flat.narrow(0, w.L.colsum_off, 8 * N).to(at::kCPU);
      qg_packed_channels(op, bits, w.L.K, N, reinterpret_cast<const int32_t*>(zp.const_data_ptr<int8_t>()),
                         reinterpret_cast<const int64_t*>(cs.const_data_ptr<int8_t>()));
    }
    if (flags & cuda::kBadXZp) qg_zp1_value(op, "x_zero_point", x_zero_point, a.bits);
    if (flags & cuda::kBadXScale) qg_scale1_value(op, "x_scale", *e.x_scale);
    if (flags & cuda::kBadWScale) qg_vec_values(op, "w_scale", *e.w_scale, true);
    if (flags & cuda::kBadAffScale) qg_vec_values(op, "affine_scale", *e.aff_scale, false);
    if (flags & cuda::kBadAffBias) qg_vec_values(op, "affine_bias", *e.aff_bias, false);
    if (flags & cuda::kBadMult) qg_mult_values(op, qg_scale1_value(op, "x_scale", *e.x_scale), *e.w_scale,
                                                  e.aff_scale ? &*e.aff_scale : nullptr);
    if (flags & cuda::kBadOutScale) qg_scale1_value(op, "out_scale", *e.out_scale);
    if (flags & cuda::kBadOutZp) qg_zp1_value(op, "out_zero_point", *e.out_zp, e.out_bits);
    // The host re-reads above name the argument; if one passed (rewritten since by another
    // stream), the device's verdict still stands.
    TORCH_CHECK(flags == 0, "dwq.", op, ": a scale, zero point or affine term failed its check on the device (flags ",
                flags, ") but passed on re-reading: was it modified while the op ran?");
    TORCH_CHECK(s[cuda::kStBadCodes] == 0, "dwq.", op, ": x_codes holds value(s) outside 0..",
                (int64_t{1} << a.bits) - 1, " (not codes of x_bits = ", a.bits, ")");
  };
  if (M == 0) {  // nothing to compute, but the same errors as the CPU op for the arguments
    if (checks) finish_checks();
    return;
  }

  // ---- activation operand: row sums, range check, and the A planes the MMA kernel reads
  const bool limb = lx == 2 || lw == 2;
  ActParams& ap = a.ap;
  ap.x_zp = zx.data_ptr<int32_t>();
  ap.qmax = static_cast<uint32_t>((int64_t{1} << a.bits) - 1);
  ap.status = st;
  at::Tensor rowsum = at::empty({M}, opt.dtype(at::kLong));
  ap.rowsum = rowsum.data_ptr<int64_t>();
  MmaParams mp;
  mp.M = M;
  mp.N = N;
  mp.K = K;
  mp.lx = lx;
  bool conv = false;
  at::Tensor planes, psum;
  const bool x_aligned = aligned16(x.data_ptr());
  const bool direct_matrix =
      !ap.is_conv && a.is_u8 && lx == 1 && ap.sk == 1 && (M == 1 || ap.sm % 16 == 0) && x_aligned;
  // A few rows run on CUDA cores (qgemm_dp4a.cuh) from 4-byte aligned rows: in place or planes.
  const bool few_rows = M <= cuda::dp4a_max_rows();
  // Implicit conv: the tensor-core kernels read the channels-last input tap by tap, 16 channels a
  // copy: in place where it is uint8 codes with 16-byte aligned pixels, else (codes of 9..16 bits,
  // int32 codes, other strides) from its limb planes (conv_planes_kernel), on the wgmma kernel only.
  // (An input without pixels, H or W 0, is all padding: the im2col path fills its zero points.) A
  // 1x1 stride-1 unpadded conv's limb planes are its im2col planes: no bytes saved, so it stays a
  // matrix product there (auto: the TMA kernel, which ran those fastest in call 7).
  const bool x_in_place = a.is_u8 && lx == 1 && ap.sc == 1 && ap.sw % 16 == 0 && ap.sh % 16 == 0 &&
                          ap.sn % 16 == 0 && x_aligned;
  const bool pointwise = ap.kh == 1 && ap.kw == 1 && ap.sth == 1 && ap.stw == 1 && ap.pdh == 0 && ap.pdw == 0;
  const bool conv_fits =
      !few_rows && ap.is_conv && ap.C % 16 == 0 && ap.H > 0 && ap.W > 0 && (x_in_place || !pointwise);
  // (checks DWQ_CUDA_GEMM whatever M is)
  const cuda::Engine tensor_cores = gemm_engine(op, x.get_device(), M, N, K, limb, conv_fits);
  const cuda::Engine engine = few_rows ? cuda::Engine::kDp4a : tensor_cores;
  const bool implicit_conv = conv_fits && x_in_place && (!limb || engine == cuda::Engine::kWgmma);
  const bool conv_planes = conv_fits && !x_in_place && engine == cuda::Engine::kWgmma;
  mp.k_chunk = split_k_chunk(M, N, K, limb, x.get_device(), engine);
  const bool split = K > mp.k_chunk;
  // The Hopper kernels of one limb each sum their rows by MMA (WgRows in qgemm_wgmma.cuh): unsplit,
  // the row sums of the input read in place (a uint8 matrix, an implicit conv's pixels) run only to
  // find codes above qmax (value checks on, and codes that can be: fewer than 8 bits, or int32 ones).
  const bool tma = engine == cuda::Engine::kWgmmaTma || engine == cuda::Engine::kWgmmaPp;
  const bool hopper = engine == cuda::Engine::kWgmma || tma;
  const bool kernel_rows = hopper && !limb && !split;
  const bool prep_sums = !kernel_rows || (checks && (ap.qmax < 255 || !a.is_u8));
  if (direct_matrix) {
    ap.planes = nullptr;
    if (prep_sums) {
      cuda::act_rows_kernel<uint8_t><<<blocks_for(M * 32, 256, int64_t{1} << 30), 256, 0, stream>>>(ap);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    mp.a = static_cast<const uint8_t*>(x.data_ptr());
    mp.lda = M == 1 ? round_up(K, 16) : ap.sm;
  } else if (implicit_conv || conv_planes) {
    const int64_t npix = (M / (int64_t(ap.OH) * ap.OW)) * ap.H * ap.W;
    if (conv_planes || prep_sums) psum = at::empty({npix}, opt.dtype(at::kLong));
    if (conv_planes) {
      ap.lx = lx;
      planes = at::empty({lx, npix * ap.C}, opt.dtype(at::kByte));
      if (a.is_u8)
        cuda::conv_planes_kernel<uint8_t><<<blocks_for(npix * 32, 256, int64_t{1} << 30), 256, 0, stream>>>(
            ap, planes.data_ptr<uint8_t>(), psum.data_ptr<int64_t>());
      else
        cuda::conv_planes_kernel<int32_t><<<blocks_for(npix * 32, 256, int64_t{1} << 30), 256, 0, stream>>>(
            ap, planes.data_ptr<uint8_t>(), psum.data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      mp.a = planes.data_ptr<uint8_t>();
      mp.a_plane = npix * ap.C;
      mp.sw = ap.C;
      mp.sh = int64_t(ap.W) * ap.C;
      mp.sn = int64_t(ap.H) * ap.W * ap.C;
    } else {
      if (prep_sums) {
        cuda::pixel_sums_kernel<<<blocks_for(npix, 256, int64_t{1} << 30), 256, 0, stream>>>(
            ap, psum.data_ptr<int64_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      mp.a = static_cast<const uint8_t*>(x.data_ptr());
      mp.sn = ap.sn;
      mp.sh = ap.sh;
      mp.sw = ap.sw;
    }
    if (prep_sums) {  // (the row sums, and the count of taps that read codes above qmax)
      cuda::conv_rowsum_kernel<<<blocks_for(M, 256, int64_t{1} << 30), 256, 0, stream>>>(ap,
                                                                                          psum.data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    conv = true;
    mp.C = ap.C;
    mp.H = ap.H;
    mp.W = ap.W;
    mp.OH = ap.OH;
    mp.OW = ap.OW;
    mp.kh = ap.kh;
    mp.kw = ap.kw;
    mp.sth = ap.sth;
    mp.stw = ap.stw;
    mp.pdh = ap.pdh;
    mp.pdw = ap.pdw;
  } else {
    // im2col / limb split into u8 planes [lx][M][lda], rows padded to 16 bytes with zeros
    ap.lda = round_up(K, 16);
    ap.lx = lx;
    planes = at::empty({lx, M, ap.lda}, opt.dtype(at::kByte));
    ap.planes = planes.data_ptr<uint8_t>();
    if (a.is_u8)
      cuda::act_rows_kernel<uint8_t><<<blocks_for(M * 32, 256, int64_t{1} << 30), 256, 0, stream>>>(ap);
    else
      cuda::act_rows_kernel<int32_t><<<blocks_for(M * 32, 256, int64_t{1} << 30), 256, 0, stream>>>(ap);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    mp.a = ap.planes;
    mp.lda = ap.lda;
    mp.a_plane = M * ap.lda;
  }

  // ---- weights and epilogue
  mp.b = blob + w.L.data_off;
  mp.Kp = w.L.Kp;
  mp.Npad = w.L.Npad;
  mp.lw = lw;
  at::Tensor bk;  // wgmma engines: the weight planes K-major (see qgemm_wgmma.cuh)
  if (hopper) {
    mp.ldb = round_up(K, 16);
    mp.b_plane = N * mp.ldb;
    bk = kmajor_weight(op, w, mp.ldb, stream);
    mp.b = bk.data_ptr<int8_t>();
  }
  TORCH_CHECK((K + mp.k_chunk - 1) / mp.k_chunk <= 65535, "dwq.", op, ": K = ", K, " needs more than 65,535 slices of ",
              mp.k_chunk, " (the int32-exact depth of ", limb ? "9..16" : "2..8",
              "-bit operands), the CUDA launch limit");
  EpiParams& ep = mp.ep;
  ep.kind = e.kind;
  ep.out = out.data_ptr();
  ep.ldo = N;
  ep.rowsum = ap.rowsum;
  ep.colsum = reinterpret_cast<const int64_t*>(blob + w.L.colsum_off);
  ep.wzp = reinterpret_cast<const int32_t*>(blob + w.L.zp_off);
  ep.x_zp = ap.x_zp;
  ep.K = K;
  ep.shift = 128 * (lw == 2 ? 257 : 1);
  ep.w_zp_shifted = reinterpret_cast<const int32_t*>(blob + cpu::kHeaderZpShiftedOff);
  if (sx.defined()) ep.x_scale = sx.data_ptr<float>();
  if (sw.defined()) ep.w_scale = sw.data_ptr<float>();
  if (e.aff_scale) ep.aff_scale = e.aff_scale->data_ptr<float>();
  if (e.aff_bias) ep.aff_bias = e.aff_bias->data_ptr<float>();
  ep.relu = e.relu;
  if (e.out_scale) ep.out_scale = e.out_scale->data_ptr<float>();
  if (e.out_zp) ep.out_zp = e.out_zp->data_ptr<int32_t>();
  ep.out_bits = static_cast<int>(e.out_bits);
  at::Tensor ws;
  if (split) {  // several z-slices: int64 T sums in a workspace, then the epilogue
    ws = at::zeros({M, N}, opt.dtype(at::kLong));
    ep.ws = ws.data_ptr<int64_t>();
    ep.kind = cuda::kOutPartialT;
  }
  ep.acc32 = cuda::epilogue_acc32(K, a.bits, lx, lw, split);
  if (engine == cuda::Engine::kDp4a) {
    check_launch(op, cuda::launch_qgemm_dp4a(mp, limb, stream));
  } else if (engine == cuda::Engine::kMma) {
    check_launch(op, cuda::launch_qgemm_mma(mp, limb, conv, stream));
  } else if (tma && cuda::wgmma_tma_fits(mp, conv)) {
    const bool pp = engine == cuda::Engine::kWgmmaPp;
    const cudaError_t err = cuda::launch_qgemm_wgmma_tma(mp, limb, conv, pp, stream);
    TORCH_CHECK(err == cudaSuccess, "dwq.", op, ": DWQ_CUDA_GEMM = '", pp ? "wgmma_pp" : "wgmma_tma",
                "' failed to launch (M = ", M,
                ", N = ", N, ", K = ", K, "): ", cudaGetErrorString(err),
                err == cudaErrorInvalidValue ? " (no cuTensorMapEncodeTiled, or the driver rejected a tensor map)" : "",
                "; 'wgmma' runs the same tiles without TMA");
  } else {
    check_launch(op, cuda::launch_qgemm_wgmma(mp, limb, conv, stream));
  }
  if (split) {
    EpiParams fin = ep;
    fin.kind = e.kind;
    check_launch(op, cuda::launch_splitk_epilogue(fin, M, N, stream));
  }

  if (checks) finish_checks();
}

Act gemm_act(const char* op, const at::Tensor& x, const at::Tensor& x_zero_point, int64_t x_bits) {
  qg_check_bits(op, "x_bits", x_bits);
  check_cuda_input(op, "x_codes", x);
  qg_check_codes(op, "x_codes", x, 2, x.device());
  qg_check_zp1_meta(op, "x_zero_point", x_zero_point, x.device());
  TORCH_CHECK(x.size(1) > 0, "dwq.", op, ": x_codes must have K > 0 columns, got shape ", x.sizes());
  Act a;
  a.is_u8 = x.scalar_type() == at::kByte;
  a.bits = static_cast<int>(x_bits);
  a.ap.x = x.data_ptr();
  a.ap.M = x.size(0);
  a.ap.K = x.size(1);
  a.ap.sm = x.stride(0);
  a.ap.sk = x.stride(1);
  return a;
}

at::Tensor qgemm_acc_cuda(const at::Tensor& x, const at::Tensor& x_zero_point, int64_t x_bits,
                          const at::Tensor& w_packed) {
  const char* op = "qgemm_acc";
  Act a = gemm_act(op, x, x_zero_point, x_bits);
  const CudaWeight w = cuda_weight(op, w_packed, KNeed{a.ap.K}, a.ap.M, x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const Epi e = acc_epi();
  at::Tensor out = at::empty({a.ap.M, w.L.N}, x.options().dtype(e.dtype));
  run_engine(op, x, x_zero_point, a, w, e, out);
  return out;
}

at::Tensor qlinear_cuda(const at::Tensor& x, const at::Tensor& x_scale, const at::Tensor& x_zero_point, int64_t x_bits,
                        const at::Tensor& w_packed, const at::Tensor& w_scale,
                        const std::optional<at::Tensor>& affine_scale, const std::optional<at::Tensor>& affine_bias,
                        bool relu, const std::optional<at::Tensor>& out_scale,
                        const std::optional<at::Tensor>& out_zero_point, int64_t out_bits) {
  const char* op = "qlinear";
  Act a = gemm_act(op, x, x_zero_point, x_bits);
  const CudaWeight w = cuda_weight(op, w_packed, KNeed{a.ap.K}, a.ap.M, x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const Epi e = make_epi(op, x_scale, w_scale, w.L.N, affine_scale, affine_bias, relu, out_scale, out_zero_point,
                         out_bits, x.device());
  at::Tensor out = at::empty({a.ap.M, w.L.N}, x.options().dtype(e.dtype));
  run_engine(op, x, x_zero_point, a, w, e, out);
  return out;
}

// ---------------------------------------------------------------- conv2d

struct ConvAct {
  Act a;
  int64_t B = 0, OH = 0, OW = 0;
};

ConvAct conv_act(const char* op, const at::Tensor& x, const at::Tensor& x_zero_point, int64_t x_bits,
                 at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding) {
  qg_check_bits(op, "x_bits", x_bits);
  check_cuda_input(op, "x_codes", x);
  qg_check_codes(op, "x_codes", x, 4, x.device());
  qg_check_zp1_meta(op, "x_zero_point", x_zero_point, x.device());
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  ConvAct g;
  const ConvSize cs = qg_conv_size(op, kernel_size, stride, padding, B, C, H, W);
  g.OH = cs.OH;
  g.OW = cs.OW;
  const int64_t kh = kernel_size[0], kw = kernel_size[1];
  TORCH_CHECK(C > 0, "dwq.", op, ": x_codes must have C > 0 channels, got shape ", x.sizes());
  constexpr int64_t lim = (int64_t{1} << 31) - 1;
  // (the padded sizes bound the kernels' int window corners oh * stride - padding and their taps)
  TORCH_CHECK(C <= lim && H <= lim && W <= lim && kh <= lim && kw <= lim && kh * kw <= lim && stride[0] <= lim &&
                  stride[1] <= lim && padding[0] <= lim && padding[1] <= lim && g.OH <= lim && g.OW <= lim &&
                  H + 2 * padding[0] <= lim && W + 2 * padding[1] <= lim,
              "dwq.", op, ": conv geometry must fit 32-bit integers for the CUDA kernels, got input ", H, "x", W,
              ", stride ", stride, ", padding ", padding);
  g.B = B;
  Act& a = g.a;
  a.is_u8 = x.scalar_type() == at::kByte;
  a.bits = static_cast<int>(x_bits);
  ActParams& p = a.ap;
  p.x = x.data_ptr();
  p.is_conv = true;
  p.M = cs.M;
  p.K = cs.K;
  p.C = static_cast<int>(C);
  p.H = static_cast<int>(H);
  p.W = static_cast<int>(W);
  p.OH = static_cast<int>(g.OH);
  p.OW = static_cast<int>(g.OW);
  p.kh = static_cast<int>(kh);
  p.kw = static_cast<int>(kw);
  p.sth = static_cast<int>(stride[0]);
  p.stw = static_cast<int>(stride[1]);
  p.pdh = static_cast<int>(padding[0]);
  p.pdw = static_cast<int>(padding[1]);
  p.sn = x.stride(0);
  p.sc = x.stride(1);
  p.sh = x.stride(2);
  p.sw = x.stride(3);
  return g;
}

at::Tensor qconv2d_acc_cuda(const at::Tensor& x, const at::Tensor& x_zero_point, int64_t x_bits,
                            const at::Tensor& w_packed, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                            at::IntArrayRef padding) {
  const char* op = "qconv2d_acc";
  ConvAct g = conv_act(op, x, x_zero_point, x_bits, kernel_size, stride, padding);
  const CudaWeight w = cuda_weight(op, w_packed, KNeed{g.a.ap.K, kernel_size, g.a.ap.C}, g.a.ap.M, x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const Epi e = acc_epi();
  at::Tensor out = at::empty({g.B, g.OH, g.OW, w.L.N}, x.options().dtype(e.dtype));
  run_engine(op, x, x_zero_point, g.a, w, e, out);
  return out.permute({0, 3, 1, 2});
}

at::Tensor qconv2d_cuda(const at::Tensor& x, const at::Tensor& x_scale, const at::Tensor& x_zero_point, int64_t x_bits,
                        const at::Tensor& w_packed, const at::Tensor& w_scale, at::IntArrayRef kernel_size,
                        at::IntArrayRef stride, at::IntArrayRef padding, const std::optional<at::Tensor>& affine_scale,
                        const std::optional<at::Tensor>& affine_bias, bool relu,
                        const std::optional<at::Tensor>& out_scale, const std::optional<at::Tensor>& out_zero_point,
                        int64_t out_bits) {
  const char* op = "qconv2d";
  ConvAct g = conv_act(op, x, x_zero_point, x_bits, kernel_size, stride, padding);
  const CudaWeight w = cuda_weight(op, w_packed, KNeed{g.a.ap.K, kernel_size, g.a.ap.C}, g.a.ap.M, x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const Epi e = make_epi(op, x_scale, w_scale, w.L.N, affine_scale, affine_bias, relu, out_scale, out_zero_point,
                         out_bits, x.device());
  at::Tensor out = at::empty({g.B, g.OH, g.OW, w.L.N}, x.options().dtype(e.dtype));
  run_engine(op, x, x_zero_point, g.a, w, e, out);
  return out.permute({0, 3, 1, 2});
}

}  // namespace

TORCH_LIBRARY_IMPL(dwq, CUDA, m) {
  m.impl("quantize_act", &quantize_act_cuda);
  m.impl("affine_quantize_act", &affine_quantize_act_cuda);
  m.impl("add_relu_", &add_relu_cuda);
  m.impl("add_relu_quantize_", &add_relu_quantize_cuda);
  m.impl("add_affine_quantize_", &add_affine_quantize_cuda);
  m.impl("pack_weight", &pack_weight_cuda);
  m.impl("qgemm_acc", &qgemm_acc_cuda);
  m.impl("qlinear", &qlinear_cuda);
  m.impl("qconv2d_acc", &qconv2d_acc_cuda);
  m.impl("qconv2d", &qconv2d_cuda);
}

}  // namespace dwq
