// Row-count dispatch of the per-ISA microkernels, which are templates over their tile's row count:
// with_mr<KMR>(mr, f) calls f(std::integral_constant<int, R>{}) with R = mr for mr in 1..KMR-1 and
// R = KMR otherwise (KMR <= 8). Textually included inside an ISA file's target region (so that f
// inlines into it), before its kernels; no system #include here: <type_traits> comes first from
// that file.

#define DWQ_MR_CASE(R)                                \
  case R:                                             \
    if constexpr (R < KMR) {                          \
      f(std::integral_constant<int, R>{});            \
      return;                                         \
    }                                                 \
    break;

template <int KMR, class F>
inline __attribute__((always_inline)) void with_mr(int mr, const F& f) {
  static_assert(KMR >= 1 && KMR <= 8, "with_mr: a tile of 1..8 rows");
  switch (mr) { DWQ_MR_CASE(1) DWQ_MR_CASE(2) DWQ_MR_CASE(3) DWQ_MR_CASE(4) DWQ_MR_CASE(5) DWQ_MR_CASE(6) DWQ_MR_CASE(7) }
  f(std::integral_constant<int, KMR>{});
}

#undef DWQ_MR_CASE
