// conv.cl: convolution as im2col + the tuned GEMM (gemm.cl), NCHW.
//
// col has shape (C·KH·KW, N·HO·WO): row r = (c, ky, kx), column q = (n, oy, ox), so that
// out(Cout, N·HO·WO) = W(Cout, C·KH·KW) · col is one large GEMM for the whole batch.

// batchMajor = 0: col is (C·KH·KW, N·HO·WO) (one GEMM for the batch); 1: col is (N, C·KH·KW, HO·WO)
// (a strided-batched GEMM whose output is NCHW directly).
// One work-item per (output row oy, image n, col row r = (c, ky, kx)): it writes the WO contiguous
// values of that row of col, so index arithmetic is per row, not per element.
// Global size (HO, N, C·KH·KW). Zero padding: padT/padL before the image, implicit after it.
__kernel void conv_im2col(__global const float* x, __global float* col, int N, int C, int H, int W,
                          int KH, int KW, int strideH, int strideW, int padT, int padL, int HO, int WO,
                          int batchMajor) {
  const int oy = get_global_id(0), n = get_global_id(1), r = get_global_id(2);
  const int kx = r % KW, ky = (r / KW) % KH, c = r / (KW * KH);
  const long plane = batchMajor ? (long)n * C * KH * KW + r : (long)r * N + n;
  __global float* out = col + plane * HO * WO + (long)oy * WO;
  const int iy = oy * strideH - padT + ky;
  if (iy < 0 || iy >= H) {
    for (int ox = 0; ox < WO; ox++) out[ox] = 0.0f;
    return;
  }
  __global const float* src = x + (((long)n * C + c) * H + iy) * W;
  int ix = kx - padL;
  for (int ox = 0; ox < WO; ox++, ix += strideW) out[ox] = (ix >= 0 && ix < W) ? src[ix] : 0.0f;
}

// The adjoint of conv_im2col: one work-item per element (n, c, iy, ix) of x, which gathers, in a
// fixed order, every col entry that im2col copied from it. Global size (W, H, N·C).
__kernel void conv_col2im(__global const float* col, __global float* x, int N, int C, int H, int W,
                          int KH, int KW, int strideH, int strideW, int padT, int padL, int HO, int WO,
                          int batchMajor) {
  const int ix = get_global_id(0), iy = get_global_id(1), nc = get_global_id(2);
  const int n = nc / C, c = nc % C;
  float acc = 0.0f;
  // Only the taps with ky ≡ iy + padT (mod strideH) and ky ≤ iy + padT reach x (likewise kx): they are visited
  // directly, in the same ascending order as a scan of every tap would add them.
  const int ry = iy + padT, rx = ix + padL;
  for (int ky = ry % strideH; ky < KH && ky <= ry; ky += strideH) {
    const int oy = (ry - ky) / strideH;
    if (oy >= HO) continue;
    for (int kx = rx % strideW; kx < KW && kx <= rx; kx += strideW) {
      const int ox = (rx - kx) / strideW;
      if (ox >= WO) continue;
      const int r = (c * KH + ky) * KW + kx;
      const long plane = batchMajor ? (long)n * C * KH * KW + r : (long)r * N + n;
      acc += col[plane * HO * WO + (long)oy * WO + ox];
    }
  }
  x[((long)nc * H + iy) * W + ix] = acc;
}

// ---------------------------------------------------------------------------------------------------------
// Winograd F(4×4, 3×3) for 3×3 stride-1 convolutions (the native CPU backend's winograd.c, as three kernels
// around the tuned GEMM): U[ξ] (K, C) = G g Gᵀ per weight, V[ξ] (C, T) = Bᵀ d B per 6×6 input tile
// t = (n, ty, tx), M[ξ] = U[ξ]·V[ξ] (one strided-batched GEMM of 36), y = Aᵀ M A + bias (+ per-image bias,
// + residual, then the activation). 4× fewer multiply-adds than im2col + GEMM, and V is 2.25× the input
// where im2col's matrix is 9×.
// ---------------------------------------------------------------------------------------------------------

// 1-D transforms (Lavin & Gray 2016; points 0, ±1, ±2, ∞) on named scalars: t = Bᵀ d, u = G g, o = Aᵀ m.
// (No private arrays: PoCL keeps those in memory per work-item and does not vectorise across work-items.)
#define WINO_IN(d0, d1, d2, d3, d4, d5, t0, t1, t2, t3, t4, t5) \
  const float t0 = 4.0f * (d0) - 5.0f * (d2) + (d4);            \
  const float t1 = ((d3) + (d4)) - 4.0f * ((d1) + (d2));        \
  const float t2 = ((d4) - (d3)) + 4.0f * ((d1) - (d2));        \
  const float t3 = ((d4) - (d2)) + 2.0f * ((d3) - (d1));        \
  const float t4 = ((d4) - (d2)) - 2.0f * ((d3) - (d1));        \
  const float t5 = 4.0f * (d1) - 5.0f * (d3) + (d5);
#define WINO_W(g0, g1, g2, u0, u1, u2, u3, u4, u5)                                  \
  const float u0 = (g0) * 0.25f;                                                    \
  const float u1 = ((g0) + (g1) + (g2)) * (-1.0f / 6);                              \
  const float u2 = ((g0) - (g1) + (g2)) * (-1.0f / 6);                              \
  const float u3 = (g0) * (1.0f / 24) + (g1) * (1.0f / 12) + (g2) * (1.0f / 6);     \
  const float u4 = (g0) * (1.0f / 24) - (g1) * (1.0f / 12) + (g2) * (1.0f / 6);     \
  const float u5 = (g2);
#define WINO_OUT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)                          \
  const float o0 = (m0) + ((m1) + (m2)) + ((m3) + (m4));                          \
  const float o1 = ((m1) - (m2)) + 2.0f * ((m3) - (m4));                          \
  const float o2 = ((m1) + (m2)) + 4.0f * ((m3) + (m4));                          \
  const float o3 = ((m1) - (m2)) + 8.0f * ((m3) - (m4)) + (m5);

// U (36, K, C) from w (K, C, 3, 3). Global (C, K).
#define WW_COL(k) WINO_W(g0##k, g1##k, g2##k, t0##k, t1##k, t2##k, t3##k, t4##k, t5##k)
#define WW_ROW(i) WINO_W(t##i##0, t##i##1, t##i##2, u##i##0, u##i##1, u##i##2, u##i##3, u##i##4, u##i##5)
#define WW_ST(i, j) U[((long)(i * 6 + j) * K + k) * C + c] = u##i##j;
#define WW_STROW(i) WW_ST(i, 0) WW_ST(i, 1) WW_ST(i, 2) WW_ST(i, 3) WW_ST(i, 4) WW_ST(i, 5)
__kernel void conv_wino_weights(__global const float* w, __global float* U, int C, int K) {
  const int c = get_global_id(0), k = get_global_id(1);
  __global const float* g = w + ((long)k * C + c) * 9;
  const float g00 = g[0], g01 = g[1], g02 = g[2], g10 = g[3], g11 = g[4], g12 = g[5], g20 = g[6], g21 = g[7],
              g22 = g[8];
  WW_COL(0) WW_COL(1) WW_COL(2)
  WW_ROW(0) WW_ROW(1) WW_ROW(2) WW_ROW(3) WW_ROW(4) WW_ROW(5)
  WW_STROW(0) WW_STROW(1) WW_STROW(2) WW_STROW(3) WW_STROW(4) WW_STROW(5)
}

// V (36, C, T) from x (N, C, H, W): tile t = (n, ty, tx) of TH × TW per image reads rows 4·ty − padT … + 5
// and columns 4·tx − padL … + 5 (zero outside x). Global (T, C).
#define WI_LD(i, j)                                                                                     \
  const float d##i##j = (y0 + i >= 0 && y0 + i < H && x0 + j >= 0 && x0 + j < W)                       \
                            ? src[(long)clamp(y0 + i, 0, H - 1) * W + clamp(x0 + j, 0, W - 1)] : 0.0f;
#define WI_LDROW(i) WI_LD(i, 0) WI_LD(i, 1) WI_LD(i, 2) WI_LD(i, 3) WI_LD(i, 4) WI_LD(i, 5)
#define WI_COL(j) WINO_IN(d0##j, d1##j, d2##j, d3##j, d4##j, d5##j, s0##j, s1##j, s2##j, s3##j, s4##j, s5##j)
#define WI_ROW(i) \
  WINO_IN(s##i##0, s##i##1, s##i##2, s##i##3, s##i##4, s##i##5, v##i##0, v##i##1, v##i##2, v##i##3, v##i##4, v##i##5)
#define WI_ST(i, j) V[((long)(i * 6 + j) * C + c) * T + t] = v##i##j;
#define WI_STROW(i) WI_ST(i, 0) WI_ST(i, 1) WI_ST(i, 2) WI_ST(i, 3) WI_ST(i, 4) WI_ST(i, 5)
__kernel void conv_wino_input(__global const float* x, __global float* V, int C, int H, int W, int padT,
                              int padL, int TH, int TW, int T) {
  const int t = get_global_id(0), c = get_global_id(1);
  const int n = t / (TH * TW), r = t % (TH * TW), y0 = 4 * (r / TW) - padT, x0 = 4 * (r % TW) - padL;
  __global const float* src = x + ((long)n * C + c) * H * W;
  WI_LDROW(0) WI_LDROW(1) WI_LDROW(2) WI_LDROW(3) WI_LDROW(4) WI_LDROW(5)
  WI_COL(0) WI_COL(1) WI_COL(2) WI_COL(3) WI_COL(4) WI_COL(5)
  WI_ROW(0) WI_ROW(1) WI_ROW(2) WI_ROW(3) WI_ROW(4) WI_ROW(5)
  WI_STROW(0) WI_STROW(1) WI_STROW(2) WI_STROW(3) WI_STROW(4) WI_STROW(5)
}

// y (N, K, HO, WO) from M (36, K, T), plus bias[k] (hasBias), imageBias[n, k] (hasImageBias) and res
// (shaped like y; hasRes), then the activation WINO_ACT (a build option: a run-time switch stops PoCL from
// vectorising the kernel, 4× slower). Global (T, K).
#ifndef WINO_ACT
#define WINO_ACT ACT_NONE
#endif
#define WO_LD(i, j) const float m##i##j = M[((long)(i * 6 + j) * K + k) * T + t];
#define WO_LDROW(i) WO_LD(i, 0) WO_LD(i, 1) WO_LD(i, 2) WO_LD(i, 3) WO_LD(i, 4) WO_LD(i, 5)
#define WO_COL(j) WINO_OUT(m0##j, m1##j, m2##j, m3##j, m4##j, m5##j, s0##j, s1##j, s2##j, s3##j)
#define WO_ROW(a) WINO_OUT(s##a##0, s##a##1, s##a##2, s##a##3, s##a##4, s##a##5, o##a##0, o##a##1, o##a##2, o##a##3)
#define WO_ST(a, b)                                                                        \
  if (oy0 + a < HO && ox0 + b < WO) {                                                      \
    const long at = base + (long)(oy0 + a) * WO + ox0 + b;                                 \
    y[at] = gg_activate(o##a##b + bv + (hasRes ? res[at] : 0.0f), WINO_ACT, alpha);             \
  }
#define WO_STROW(a) WO_ST(a, 0) WO_ST(a, 1) WO_ST(a, 2) WO_ST(a, 3)
__kernel void conv_wino_output(__global const float* M, __global float* y, __global const float* bias,
                               int hasBias, __global const float* imageBias, int hasImageBias,
                               __global const float* res, int hasRes, int K, int HO, int WO, int TH, int TW,
                               int T, float alpha) {
  const int t = get_global_id(0), k = get_global_id(1);
  const int n = t / (TH * TW), r = t % (TH * TW), oy0 = 4 * (r / TW), ox0 = 4 * (r % TW);
  WO_LDROW(0) WO_LDROW(1) WO_LDROW(2) WO_LDROW(3) WO_LDROW(4) WO_LDROW(5)
  WO_COL(0) WO_COL(1) WO_COL(2) WO_COL(3) WO_COL(4) WO_COL(5)
  WO_ROW(0) WO_ROW(1) WO_ROW(2) WO_ROW(3)
  const float bv = (hasBias ? bias[k] : 0.0f) + (hasImageBias ? imageBias[(long)n * K + k] : 0.0f);
  const long base = ((long)n * K + k) * HO * WO;
  WO_STROW(0) WO_STROW(1) WO_STROW(2) WO_STROW(3)
}
