// Vectorisable float loops for the native CPU backend: exp-based activations and group-norm sums.
// Compiled for several ISAs with target_clones (runtime dispatch); the loops auto-vectorise.
#include "cpupeak.h"

#if defined(__x86_64__) && defined(__clang__)
#define GG_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GG_CLONES
#endif

// Cephes expf: range reduction by ln 2, degree-6 polynomial, scale by 2^n (≤ 2 ulp).
static inline float gg_expf(float x) {
  x = x < -87.33654f ? -87.33654f : (x > 88.37626f ? 88.37626f : x);
  float fx = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
  float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  union { int i; float f; } u;
  u.i = ((int)fx + 127) << 23;
  return y * u.f;
}

GG_CLONES void gpugen_affine(const float* x, float* y, long n, float scale, float shift, int silu) {
  if (silu) {
    for (long i = 0; i < n; i++) {
      float t = x[i] * scale + shift;
      y[i] = t / (1.0f + gg_expf(-t));
    }
  } else {
    for (long i = 0; i < n; i++) y[i] = x[i] * scale + shift;
  }
}

GG_CLONES void gpugen_exp(const float* x, float* y, long n) {
  for (long i = 0; i < n; i++) y[i] = gg_expf(x[i]);
}

GG_CLONES void gpugen_sigmoid(const float* x, float* y, long n) {
  for (long i = 0; i < n; i++) y[i] = 1.0f / (1.0f + gg_expf(-x[i]));
}

GG_CLONES double gpugen_sum(const float* x, long n) {
  float acc[16] = {0};
  long i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] += x[i + j];
  double s = 0;
  for (int j = 0; j < 16; j++) s += acc[j];
  for (; i < n; i++) s += x[i];
  return s;
}

GG_CLONES double gpugen_squared_deviation(const float* x, long n, float mean) {
  float acc[16] = {0};
  long i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) {
      float d = x[i + j] - mean;
      acc[j] += d * d;
    }
  double s = 0;
  for (int j = 0; j < 16; j++) s += acc[j];
  for (; i < n; i++) {
    float d = x[i] - mean;
    s += d * d;
  }
  return s;
}

GG_CLONES void gpugen_softmax_row(const float* x, float* y, long n, int logMode) {
  float m = -__builtin_inff();
  for (long i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  float acc[16] = {0};
  long i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) {
      float e = gg_expf(x[i + j] - m);
      y[i + j] = e;
      acc[j] += e;
    }
  double s = 0;
  for (int j = 0; j < 16; j++) s += acc[j];
  for (; i < n; i++) {
    float e = gg_expf(x[i] - m);
    y[i] = e;
    s += e;
  }
  if (logMode) {
    float ls = (float)__builtin_log(s);
    for (long j = 0; j < n; j++) y[j] = x[j] - m - ls;
  } else {
    float inv = (float)(1.0 / s);
    for (long j = 0; j < n; j++) y[j] *= inv;
  }
}
