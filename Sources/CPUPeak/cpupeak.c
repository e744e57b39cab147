#include "cpupeak.h"
#define CHAINS 12
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>


__attribute__((target("avx512f"))) static double loop512(int64_t iters, float* sink) {
  __m512 a[CHAINS];
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  for (int j = 0; j < CHAINS; j++) a[j] = _mm512_set1_ps((float)j);
  for (int64_t i = 0; i < iters; i++)
    for (int j = 0; j < CHAINS; j++) a[j] = _mm512_fmadd_ps(a[j], m, c);
  __m512 s = a[0];
  for (int j = 1; j < CHAINS; j++) s = _mm512_add_ps(s, a[j]);
  *sink = _mm512_reduce_add_ps(s);
  return (double)iters * CHAINS * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double loop256(int64_t iters, float* sink) {
  __m256 a[CHAINS];
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  for (int j = 0; j < CHAINS; j++) a[j] = _mm256_set1_ps((float)j);
  for (int64_t i = 0; i < iters; i++)
    for (int j = 0; j < CHAINS; j++) a[j] = _mm256_fmadd_ps(a[j], m, c);
  float out[8];
  __m256 s = a[0];
  for (int j = 1; j < CHAINS; j++) s = _mm256_add_ps(s, a[j]);
  _mm256_storeu_ps(out, s);
  *sink = out[0] + out[7];
  return (double)iters * CHAINS * 8 * 2;
}

static double loop128(int64_t iters, float* sink) {
  __m128 a[CHAINS];
  const __m128 m = _mm_set1_ps(0.999999f), c = _mm_set1_ps(1e-6f);
  for (int j = 0; j < CHAINS; j++) a[j] = _mm_set1_ps((float)j);
  for (int64_t i = 0; i < iters; i++)
    for (int j = 0; j < CHAINS; j++) a[j] = _mm_add_ps(_mm_mul_ps(a[j], m), c);
  float out[4];
  _mm_storeu_ps(out, a[0]);
  *sink = out[0];
  return (double)iters * CHAINS * 4 * 2;
}

#else
// Portable fallback (the compiler vectorises this on NEON and other ISAs).
static double loopGeneric(int64_t iters, float* sink) {
  float a[CHAINS * 4];
  for (int j = 0; j < CHAINS * 4; j++) a[j] = (float)j;
  for (int64_t i = 0; i < iters; i++)
    for (int j = 0; j < CHAINS * 4; j++) a[j] = __builtin_fmaf(a[j], 0.999999f, 1e-6f);
  *sink = a[0] + a[CHAINS * 4 - 1];
  return (double)iters * CHAINS * 4 * 2;
}
double gpugen_fma_loop(int64_t iters, float* sink) { return loopGeneric(iters, sink); }
const char* gpugen_fma_isa(void) { return "generic"; }
#endif

#if defined(__x86_64__) || defined(__i386__)
double gpugen_fma_loop(int64_t iters, float* sink) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return loop512(iters, sink);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return loop256(iters, sink);
  return loop128(iters, sink);
}

const char* gpugen_fma_isa(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2+fma";
  return "sse";
}
#endif

#if defined(__GLIBC__)
#include <malloc.h>
#endif

void gpugen_fix_mmap_threshold(long bytes) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, (int)bytes);
#else
  (void)bytes;
#endif
}
