// Bodies of the float kernels (fake quantization, ranges, per-channel weight fake quantization,
// the residual add with or without its ReLU),
// textually included into one namespace per instruction set: float_kernels_scalar.cpp (generic
// x86-64), float_kernels_avx2.cpp and float_kernels_avx512.cpp (inside their isa_region.h regions,
// so that the same branch-free loops vectorize 8 or 16 wide; float16 moves in blocks of F16C's
// 8-wide conversions there, see load_block).
// Every ISA computes the same values: IEEE operations of arith.h, no contraction (isa_region.h).
// Include after <cstring>, <limits>, <type_traits>, common/arith.h and cpu/float_io.h (and, with
// DWQ_F16C defined, <immintrin.h>), inside a namespace, with DWQ_VEC_BYTES defined (the ISA's vector
// register width in bytes).

// float16 in blocks of kBlock: GCC vectorizes no _Float16 conversion without AVX512-FP16, and one
// conversion per element made a float16 pass 7-10x the time of a float32 one. Where DWQ_F16C is
// defined (the AVX2 and AVX-512 builds), a block is one F16C instruction (round to nearest even,
// NaN kept quiet: the values of Io<Float16>). Other types, and the generic build, go through Io.
constexpr int kBlock = 8;
#if defined(DWQ_F16C)
constexpr bool kF16cBlocks = true;
#else
constexpr bool kF16cBlocks = false;
#endif

template <typename T>
constexpr bool in_blocks() {
  return kF16cBlocks && std::is_same_v<T, Float16>;
}

template <typename T>
inline void load_block(const T* p, float* f) {
#if defined(DWQ_F16C)
  if constexpr (std::is_same_v<T, Float16>) {
    _mm256_storeu_ps(f, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    return;
  }
#endif
  for (int j = 0; j < kBlock; ++j) f[j] = static_cast<float>(Io<T>::load(p[j]));
}

template <typename T>
inline void store_block(const float* f, T* p) {
#if defined(DWQ_F16C)
  if constexpr (std::is_same_v<T, Float16>) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm256_cvtps_ph(_mm256_loadu_ps(f), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return;
  }
#endif
  for (int j = 0; j < kBlock; ++j) p[j] = Io<T>::store(f[j]);
}

// One element's fake quantization and its code (NaN: out NaN, code -1, counted in nn).
template <typename F>
inline F fake_quant_one(F v, F s, F z, F qmax, int32_t& code, int64_t& nn) {
  const bool is_nan = v != v;
  nn += is_nan;
  const F q = arith::quantize(is_nan ? F(0) : v, s, z, qmax);
  code = is_nan ? -1 : static_cast<int32_t>(q);
  return is_nan ? std::numeric_limits<F>::quiet_NaN() : arith::dequantize(q, s, z);
}

// One row of n elements; CODES: also the codes (-1 for NaN). Returns the NaN count.
template <bool CODES, typename T, typename F>
inline int64_t fake_quant_row(const T* x, T* out, int32_t* codes, F s, F z, F qmax, int64_t n) {
  int64_t nn = 0, i = 0;
  if constexpr (in_blocks<T>()) {
    for (; i + kBlock <= n; i += kBlock) {
      float v[kBlock], o[kBlock];
      load_block(x + i, v);
      for (int j = 0; j < kBlock; ++j) {
        int32_t code;
        o[j] = fake_quant_one(v[j], s, z, qmax, code, nn);
        if constexpr (CODES) codes[i + j] = code;
      }
      store_block(o, out + i);
    }
  }
  for (; i < n; ++i) {
    int32_t code;
    out[i] = Io<T>::store(fake_quant_one(Io<T>::load(x[i]), s, z, qmax, code, nn));
    if constexpr (CODES) codes[i] = code;
  }
  return nn;
}

template <typename T>
int64_t fake_quant_rows(const T* x, T* out, int32_t* codes, const float* scale, const int32_t* zero_point,
                        int64_t C, int64_t inner, int64_t row_begin, int64_t row_end, int bits) {
  using F = typename Io<T>::F;
  const F qmax = static_cast<F>(arith::max_code(bits));
  int64_t nans = 0;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const F s = static_cast<F>(scale[r % C]);
    const F z = static_cast<F>(zero_point[r % C]);
    nans += codes != nullptr
                ? fake_quant_row<true>(x + r * inner, out + r * inner, codes + r * inner, s, z, qmax, inner)
                : fake_quant_row<false>(x + r * inner, out + r * inner, codes, s, z, qmax, inner);
  }
  return nans;
}

// Independent running minima / maxima in kAcc native vectors (GCC/Clang vector extensions; the
// including file sets DWQ_VEC_BYTES to its ISA's register width): each lane's `v < lo ? v : lo` is
// exactly a SIMD min, so no reduction is reordered, and kAcc chains hide the min/max latency. (A
// single running min is a loop-carried dependency that compilers keep scalar: 9x slower than a
// fake_quantize pass.)
constexpr int kVecLanes = DWQ_VEC_BYTES / static_cast<int>(sizeof(float)), kAcc = 4, kStep = kVecLanes * kAcc;
typedef float LaneF __attribute__((vector_size(DWQ_VEC_BYTES)));
typedef int32_t LaneI __attribute__((vector_size(DWQ_VEC_BYTES)));

template <typename T>
bool range_of(const T* x, int64_t n, float* mn, float* mx) {
  const float inf = std::numeric_limits<float>::infinity();
  LaneF lo[kAcc], hi[kAcc];
  LaneI nan[kAcc];
  for (int a = 0; a < kAcc; ++a) {
    for (int j = 0; j < kVecLanes; ++j) {
      lo[a][j] = inf;
      hi[a][j] = -inf;
      nan[a][j] = 0;
    }
  }
  int64_t i = 0;
  for (; i + kStep <= n; i += kStep) {
    for (int a = 0; a < kAcc; ++a) {
      LaneF v;
      if constexpr (std::is_same_v<T, float>) {
        std::memcpy(&v, x + i + a * kVecLanes, sizeof(v));
      } else if constexpr (in_blocks<T>()) {
        float f[kVecLanes];
        for (int j = 0; j < kVecLanes; j += kBlock) load_block(x + i + a * kVecLanes + j, f + j);
        std::memcpy(&v, f, sizeof(v));
      } else {
        for (int j = 0; j < kVecLanes; ++j) v[j] = static_cast<float>(Io<T>::load(x[i + a * kVecLanes + j]));
      }
      nan[a] |= v != v;
      lo[a] = v < lo[a] ? v : lo[a];
      hi[a] = v > hi[a] ? v : hi[a];
    }
  }
  float l = inf, h = -inf;
  bool any_nan = false;
  for (int a = 0; a < kAcc; ++a) {
    for (int j = 0; j < kVecLanes; ++j) {
      any_nan |= nan[a][j] != 0;
      l = lo[a][j] < l ? lo[a][j] : l;
      h = hi[a][j] > h ? hi[a][j] : h;
    }
  }
  for (; i < n; ++i) {
    const float v = static_cast<float>(Io<T>::load(x[i]));
    any_nan |= v != v;
    l = v < l ? v : l;
    h = v > h ? v : h;
  }
  *mn = l;
  *mx = h;
  return any_nan;
}

// O: the output's storage type, T's or (for a float32 w) float16/bfloat16: the float32 result rounded
// once on store, as a cast of the float32 output would round it.
template <typename T, typename O>
int64_t weight_fake_quant_rows(const T* w, O* out, int64_t inner, int64_t row_begin, int64_t row_end, int bits,
                               int64_t* inf_rows) {
  using F = typename Io<T>::F;
  const float qmax = static_cast<float>(arith::max_code(bits));
  int64_t bad = 0;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const T* wr = w + r * inner;
    O* orow = out + r * inner;
    float mn, mx;
    const bool nan = range_of(wr, inner, &mn, &mx);
    if (nan || mn - mn != 0.f || mx - mx != 0.f) {  // x - x is NaN exactly for NaN and +-inf
      if (nan) ++bad; else ++*inf_rows;
      for (int64_t i = 0; i < inner; ++i) orow[i] = Io<O>::store(std::numeric_limits<F>::quiet_NaN());
      continue;
    }
    float s;
    int32_t z;
    arith::qparams_of_range(mn, mx, qmax, &s, &z);
    if (!(s <= std::numeric_limits<float>::max())) {  // finite, but max - min overflows: no finite scale
      ++*inf_rows;
      for (int64_t i = 0; i < inner; ++i) orow[i] = Io<O>::store(std::numeric_limits<F>::quiet_NaN());
      continue;
    }
    const F sf = static_cast<F>(s), zf = static_cast<F>(z), qf = static_cast<F>(qmax);
    const auto fq = [&](F v) { return arith::dequantize(arith::quantize(v, sf, zf, qf), sf, zf); };
    int64_t i = 0;
    if constexpr (in_blocks<T>() || in_blocks<O>()) {
      for (; i + kBlock <= inner; i += kBlock) {
        float v[kBlock], o[kBlock];
        load_block(wr + i, v);
        for (int j = 0; j < kBlock; ++j) o[j] = fq(v[j]);
        store_block(o, orow + i);
      }
    }
    for (; i < inner; ++i) orow[i] = Io<O>::store(fq(Io<T>::load(wr[i])));
  }
  return bad;
}


// a = relu(a + b) over n floats. `y < 0 ? 0 : y` is torch.relu's value for every input: NaN and -0
// pass through (x86's max instruction, a compiler's choice for std::max, would turn NaN into 0).
// a and b are the same array or disjoint (the binding refuses a partial overlap).
void add_relu(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float y = a[i] + b[i];
    a[i] = y < 0.f ? 0.f : y;
  }
}

// a += b over n floats (torch's a.add_(b)); a and b the same array or disjoint.
void add_to(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = a[i] + b[i];
}
