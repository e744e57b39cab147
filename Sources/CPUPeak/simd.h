// Shared by the CPUPeak C files: ISA clones and 16-lane float vectors (clang vector extensions).
#ifndef GPUGEN_SIMD_H
#define GPUGEN_SIMD_H

// Functions marked GG_CLONES are compiled for AVX-512, AVX2 and baseline x86-64 and dispatched at run time.
#if defined(__x86_64__) && defined(__clang__)
#define GG_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GG_CLONES
#endif

typedef float gg_v16 __attribute__((ext_vector_type(16)));
typedef float gg_v8 __attribute__((ext_vector_type(8)));
typedef float gg_v4 __attribute__((ext_vector_type(4)));
// Unaligned loads/stores (macros: a function taking a 16-lane vector would change the ABI).
#define gg_load16(p) ({ gg_v16 v_; __builtin_memcpy(&v_, (p), sizeof v_); v_; })
#define gg_store16(p, v) do { gg_v16 w_ = (v); __builtin_memcpy((p), &w_, sizeof w_); } while (0)
#define gg_load8(p) ({ gg_v8 v_; __builtin_memcpy(&v_, (p), sizeof v_); v_; })
#define gg_load4(p) ({ gg_v4 v_; __builtin_memcpy(&v_, (p), sizeof v_); v_; })
#define gg_store4(p, v) do { gg_v4 w_ = (v); __builtin_memcpy((p), &w_, sizeof w_); } while (0)
// Two 8-lane vectors as one 16-lane vector.
#define gg_join8(a, b) __builtin_shufflevector((a), (b), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

#define GG_INLINE static inline __attribute__((always_inline))

// In-register 16×16 transpose: four stages; at stage b, rows i and i + b (bit b of i clear) swap their
// elements whose column has bit b set in row i / clear in row i + b, so element (i, j) ends at (j, i).
#define GG_LIST(...) __VA_ARGS__
#define GG_TSTAGE(b, LO, HI)                                \
  for (int i = 0; i < 16; i++)                              \
    if (!(i & (b))) {                                       \
      const gg_v16 x_ = r[i], y_ = r[i + (b)];              \
      r[i] = __builtin_shufflevector(x_, y_, GG_LIST LO);   \
      r[i + (b)] = __builtin_shufflevector(x_, y_, GG_LIST HI); \
    }
GG_INLINE void gg_transpose16(gg_v16* r) {
  GG_TSTAGE(8, (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
            (8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
  GG_TSTAGE(4, (0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
            (4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
  GG_TSTAGE(2, (0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
            (2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
  GG_TSTAGE(1, (0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
            (1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
}

// *v = up to 16 floats of p (n valid), zero beyond. (Vectors by pointer: see gg_load16.)
GG_INLINE void gg_load_upto(gg_v16* v, const float* p, int n) {
  if (n >= 16) {
    *v = gg_load16(p);
    return;
  }
  *v = (gg_v16){0};
  int i = 0;
  if (n >= 8) {
    *v = gg_join8(gg_load8(p), (gg_v8){0});
    i = 8;
  }
  for (; i < n; i++) (*v)[i] = p[i];
}

#endif
