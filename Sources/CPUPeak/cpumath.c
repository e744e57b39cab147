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

typedef float gg_v16 __attribute__((ext_vector_type(16)));
typedef float gg_v8 __attribute__((ext_vector_type(8)));
// Unaligned 16-float load/store (macros: a function taking a 16-lane vector would change the ABI).
#define gg_load16(p) ({ gg_v16 v_; __builtin_memcpy(&v_, (p), sizeof v_); v_; })
#define gg_store16(p, v) do { gg_v16 w_ = (v); __builtin_memcpy((p), &w_, sizeof w_); } while (0)
#define gg_load8(p) ({ gg_v8 v_; __builtin_memcpy(&v_, (p), sizeof v_); v_; })
// The 8 × 32 register block of the direct convolution: 8 output channels × two 16-lane vectors.
#define GG_ACC_8X2                                                                            \
  gg_v16 c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0, c40 = 0, c41 = 0, \
         c50 = 0, c51 = 0, c60 = 0, c61 = 0, c70 = 0, c71 = 0
#define GG_FMA_8X2(a, b0, b1)                                                      \
  do {                                                                             \
    c00 += a[0] * b0; c01 += a[0] * b1; c10 += a[1] * b0; c11 += a[1] * b1;       \
    c20 += a[2] * b0; c21 += a[2] * b1; c30 += a[3] * b0; c31 += a[3] * b1;       \
    c40 += a[4] * b0; c41 += a[4] * b1; c50 += a[5] * b0; c51 += a[5] * b1;       \
    c60 += a[6] * b0; c61 += a[6] * b1; c70 += a[7] * b0; c71 += a[7] * b1;       \
  } while (0)
#define GG_ROWS_8X2(name) \
  gg_v16 name[16] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71}
// Two 8-float runs (for example two 8-wide image rows) as one 16-lane vector.
#define gg_join8(a, b) __builtin_shufflevector((a), (b), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

// Direct stride-1 convolution of one image, y (Cout, HO, WO) = w (Cout, C, KH, KW) ⊛ x (C, H, W). The
// image is copied once into a zero-padded buffer (C, HO+KH−1, WO+KW−1) plus 16 spare floats; for
// every (c, ky, kx) the 16 or 32 outputs of a row segment read a contiguous run of that buffer, so no
// im2col matrix is written. Output channels go 8 at a time with their weights packed k-major; each
// 8 × 32 block of outputs lives in 16 vector registers.
// Packs output-channel blocks [b0, b1) of w (Cout, K) as [block][k][8] (rows past Cout are zero).
GG_CLONES void gpugen_pack_conv_weights(const float* w, float* wpack, int Cout, int K, int b0, int b1) {
  for (int b = b0; b < b1; b++) {
    const int i0 = b * 8, mr = Cout - i0 < 8 ? Cout - i0 : 8;
    float* dst = wpack + (long)b * 8 * K;
    for (int k = 0; k < K; k++)
      for (int r = 0; r < 8; r++) dst[k * 8 + r] = r < mr ? w[(long)(i0 + r) * K + k] : 0.0f;
  }
}

GG_CLONES void gpugen_conv_s1(const float* x, const float* w, float* y, int C, int H, int W, int Cout, int KH,
                              int KW, int pt, int pl, int HO, int WO, float* xpad, float* wpack, int prepacked) {
  const int Hp = HO + KH - 1, Wp = WO + KW - 1, K = C * KH * KW;
  // Columns [pl, pl + n) of a padded row hold input columns [0, n); the rest is zero.
  const int n = W < Wp - pl ? W : Wp - pl;
  for (int c = 0; c < C; c++)
    for (int yy = 0; yy < Hp; yy++) {
      float* row = xpad + ((long)c * Hp + yy) * Wp;
      const int iy = yy - pt;
      if (iy < 0 || iy >= H || n <= 0) {
        __builtin_memset(row, 0, sizeof(float) * Wp);
        continue;
      }
      for (int xx = 0; xx < pl; xx++) row[xx] = 0.0f;
      __builtin_memcpy(row + pl, x + ((long)c * H + iy) * W, sizeof(float) * n);
      for (int xx = pl + n; xx < Wp; xx++) row[xx] = 0.0f;
    }
  const long plane = (long)HO * WO;
  for (int i0 = 0; i0 < Cout; i0 += 8) {
    const int mr = Cout - i0 < 8 ? Cout - i0 : 8;
    if (!prepacked) gpugen_pack_conv_weights(w, wpack, Cout, K, i0 / 8, i0 / 8 + 1);
    const float* wblock = prepacked ? wpack + (long)(i0 / 8) * 8 * K : wpack;
    int oyStart = 0;
    if (WO == 8) {
      // 8-wide images: four output rows at a time fill two 16-lane vectors (no idle lanes).
      for (; oyStart + 4 <= HO; oyStart += 4) {
        const int oy = oyStart;
        GG_ACC_8X2;
        const float* a = wblock;
        for (int c = 0; c < C; c++)
          for (int ky = 0; ky < KH; ky++) {
            const float* r0 = xpad + ((long)c * Hp + oy + ky) * Wp;
            for (int kx = 0; kx < KW; kx++, a += 8) {
              const gg_v16 b0 = gg_join8(gg_load8(r0 + kx), gg_load8(r0 + Wp + kx));
              const gg_v16 b1 = gg_join8(gg_load8(r0 + 2 * Wp + kx), gg_load8(r0 + 3 * Wp + kx));
              GG_FMA_8X2(a, b0, b1);
            }
          }
        GG_ROWS_8X2(rows);
        for (int r = 0; r < mr; r++) {
          float* out = y + (long)(i0 + r) * plane + (long)oy * 8;  // rows oy…oy+3 are contiguous
          gg_store16(out, rows[2 * r]);
          gg_store16(out + 16, rows[2 * r + 1]);
        }
      }
    }
    for (int oy = oyStart; oy < HO; oy++) {
      int ox0 = 0;
      for (; ox0 + 32 <= WO; ox0 += 32) {
        GG_ACC_8X2;
        const float* a = wblock;
        for (int c = 0; c < C; c++)
          for (int ky = 0; ky < KH; ky++) {
            const float* brow = xpad + ((long)c * Hp + oy + ky) * Wp + ox0;
            for (int kx = 0; kx < KW; kx++, a += 8) {
              const gg_v16 b0 = gg_load16(brow + kx), b1 = gg_load16(brow + kx + 16);
              GG_FMA_8X2(a, b0, b1);
            }
          }
        GG_ROWS_8X2(rows);
        for (int r = 0; r < mr; r++) {
          float* out = y + (long)(i0 + r) * plane + (long)oy * WO + ox0;
          gg_store16(out, rows[2 * r]);
          gg_store16(out + 16, rows[2 * r + 1]);
        }
      }
      // 16 columns at a time; the last block may be partial: it reads past the row (the buffer has 16
      // spare floats at its end) and stores only the valid outputs.
      for (; ox0 < WO; ox0 += 16) {
        const int nr = WO - ox0 < 16 ? WO - ox0 : 16;
        gg_v16 c0 = 0, c1 = 0, c2 = 0, c3 = 0, c4 = 0, c5 = 0, c6 = 0, c7 = 0;
        const float* a = wblock;
        for (int c = 0; c < C; c++)
          for (int ky = 0; ky < KH; ky++) {
            const float* brow = xpad + ((long)c * Hp + oy + ky) * Wp + ox0;
            for (int kx = 0; kx < KW; kx++, a += 8) {
              const gg_v16 b = gg_load16(brow + kx);
              c0 += a[0] * b; c1 += a[1] * b; c2 += a[2] * b; c3 += a[3] * b;
              c4 += a[4] * b; c5 += a[5] * b; c6 += a[6] * b; c7 += a[7] * b;
            }
          }
        gg_v16 rows[8] = {c0, c1, c2, c3, c4, c5, c6, c7};
        for (int r = 0; r < mr; r++) {
          float* out = y + (long)(i0 + r) * plane + (long)oy * WO + ox0;
          if (nr == 16) {
            gg_store16(out, rows[r]);
          } else {
            float tmp[16];
            gg_store16(tmp, rows[r]);
            for (int j = 0; j < nr; j++) out[j] = tmp[j];
          }
        }
      }
    }
  }
}

// Group-norm (+ optional SiLU) backward for one (n, group): x, dy and dx point at the group's cpg·hw
// values; gamma/beta at its cpg channels. Writes dx and, per channel, dgamma = Σ dA·x̂ and dbeta = Σ dA
// where dA is the gradient at the affine output (after the SiLU derivative when `silu`).
GG_CLONES void gpugen_groupnorm_backward(const float* x, const float* dy, const float* gamma, const float* beta,
                                         float* dx, float* dgamma, float* dbeta, long cpg, long hw, float eps,
                                         int silu) {
  const long count = cpg * hw;
  const float mean = (float)(gpugen_sum(x, count) / (double)count);
  const float var = (float)(gpugen_squared_deviation(x, count, mean) / (double)count);
  const float rstd = 1.0f / __builtin_sqrtf(var + eps);
  double s1 = 0, s2 = 0;  // Σ dA·γ and Σ dA·γ·x̂ over the group
  for (long ch = 0; ch < cpg; ch++) {
    const float g = gamma[ch], b = beta[ch];
    const float* xs = x + ch * hw;
    const float* ds = dy + ch * hw;
    float* da = dx + ch * hw;  // dA is staged in dx
    float accG[16] = {0}, accB[16] = {0};
    long i = 0;
    for (; i + 16 <= hw; i += 16) {
      for (int j = 0; j < 16; j++) {
        const float xh = (xs[i + j] - mean) * rstd;
        float d = ds[i + j];
        if (silu) {
          const float a = xh * g + b;
          const float s = 1.0f / (1.0f + gg_expf(-a));
          d *= s * (1.0f + a * (1.0f - s));
        }
        da[i + j] = d;
        accG[j] += d * xh;
        accB[j] += d;
      }
    }
    double sg = 0, sb = 0;
    for (int j = 0; j < 16; j++) {
      sg += accG[j];
      sb += accB[j];
    }
    for (; i < hw; i++) {
      const float xh = (xs[i] - mean) * rstd;
      float d = ds[i];
      if (silu) {
        const float a = xh * g + b;
        const float s = 1.0f / (1.0f + gg_expf(-a));
        d *= s * (1.0f + a * (1.0f - s));
      }
      da[i] = d;
      sg += d * xh;
      sb += d;
    }
    dgamma[ch] = (float)sg;
    dbeta[ch] = (float)sb;
    s1 += sb * g;
    s2 += sg * g;
  }
  const float m1 = (float)(s1 / (double)count), m2 = (float)(s2 / (double)count);
  for (long ch = 0; ch < cpg; ch++) {
    const float g = gamma[ch];
    const float* xs = x + ch * hw;
    float* d = dx + ch * hw;
    for (long i = 0; i < hw; i++) {
      const float xh = (xs[i] - mean) * rstd;
      d[i] = rstd * (d[i] * g - m1 - xh * m2);
    }
  }
}

// dx = dy · SiLU'(x) = dy · σ(x)·(1 + x·(1 − σ(x))).
GG_CLONES void gpugen_silu_grad(const float* x, const float* dy, float* dx, long n) {
  for (long i = 0; i < n; i++) {
    const float s = 1.0f / (1.0f + gg_expf(-x[i]));
    dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

// C[i][j] = Σ_k A[i][k]·B[j][k] for k in [k0, k1) (both operands K-contiguous: the weight-gradient GEMM
// dY·colᵀ, whose M and N are small and K = images × pixels is huge). 4×4 blocks of dot products with
// 16-lane accumulators; C (ldc) is overwritten.
#define GG_HSUM16(v) ({ float s_ = 0; for (int t_ = 0; t_ < 16; t_++) s_ += (v)[t_]; s_; })

GG_CLONES void gpugen_gemm_nt_dots(const float* a, long lda, const float* b, long ldb, float* c, long ldc, long m,
                                   long n, long k0, long k1) {
  const long kv = k0 + (k1 - k0) / 16 * 16;
  // j (B rows) outside, i inside: four B rows stay in L1 while every A row of the chunk (L2) passes by.
  const long m4 = m / 4 * 4, n4 = n / 4 * 4;
  for (long j = 0; j < n4; j += 4) {
    for (long i = 0; i < m4; i += 4) {
      gg_v16 acc[4][4];
      for (int p = 0; p < 4; p++)
        for (int q = 0; q < 4; q++) acc[p][q] = (gg_v16){0};
      for (long k = k0; k < kv; k += 16) {
        gg_v16 av[4], bv[4];
        for (int p = 0; p < 4; p++) av[p] = gg_load16(a + (i + p) * lda + k);
        for (int q = 0; q < 4; q++) bv[q] = gg_load16(b + (j + q) * ldb + k);
        for (int p = 0; p < 4; p++)
          for (int q = 0; q < 4; q++) acc[p][q] += av[p] * bv[q];
      }
      for (int p = 0; p < 4; p++)
        for (int q = 0; q < 4; q++) {
          float s = GG_HSUM16(acc[p][q]);
          for (long k = kv; k < k1; k++) s += a[(i + p) * lda + k] * b[(j + q) * ldb + k];
          c[(i + p) * ldc + j + q] = s;
        }
    }
  }
  // Edges: the rows of C past m4, and the columns past n4.
  for (long i = 0; i < m; i++)
    for (long j = (i < m4 ? n4 : 0); j < n; j++) {
      gg_v16 acc = (gg_v16){0};
      for (long k = k0; k < kv; k += 16) acc += gg_load16(a + i * lda + k) * gg_load16(b + j * ldb + k);
      float s = GG_HSUM16(acc);
      for (long k = kv; k < k1; k++) s += a[i * lda + k] * b[j * ldb + k];
      c[i * ldc + j] = s;
    }
}
