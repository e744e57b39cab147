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

#endif
