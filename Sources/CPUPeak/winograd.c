// Winograd F(4×4, 3×3) and F(4×4, 2×2) convolutions (stride 1, any padding) for the native CPU backend: each
// 4×4 tile of outputs comes from an α×α tile of inputs (α = 6 for 3×3 taps, 5 for 2×2) with α² multiplies per
// (input, output) channel pair instead of 16·r², i.e. 4× (3×3) and 2.56× (2×2) fewer multiply-adds than the
// direct kernel (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016; the interpolation
// points 0, ±1, ±2, ∞ for 3×3 and 0, ±1, 2, ∞ for 2×2).
//
//   U = G g Gᵀ (per output/input channel pair, α×α), V = Bᵀ d B (per tile and input channel, α×α),
//   M[ξ] = Σ_c U[ξ]·V[ξ] (α² independent GEMMs), y = Aᵀ M A (per tile and output channel, 4×4).
//
// The 2×2 form serves the 4×4 stride-2 convolutions of DCGAN/VAE down- and up-sampling without zero taps: a
// 4×4 stride-2 padding-1 convolution is a 2×2 one over the space-to-depth of the input padded by one pixel, and
// the transposed one a 2×2 "full" convolution written depth-to-space and cropped by one pixel (layout bit 2).
//
// The transforms run on 16 channels at a time (one per vector lane): a group of images' padded input is
// transposed 16 channels at a time into (row, column, 16 channels); each tile's α² input vectors give α² V
// vectors; the GEMMs keep 8 tiles × 32 output channels in 16 accumulators (broadcast V, two vector loads of
// U per input channel); the output transform makes 16 vectors (tile position × 16 channels) that a 16×16
// in-register transpose turns into four 4-float rows per channel, written straight into NCHW with the bias
// and residual added. A block (V, M) stays in the core's L2; U for 32 output channels in L1.
#include "cpupeak.h"
#include "simd.h"

// 1-D input transform t = Bᵀ d over α vectors d[0·s], …, d[(α − 1)·s] (α = r + 3).
GG_INLINE void gg_wino_in(const gg_v16* d, int s, gg_v16* t, int ts, const int r) {
  if (r == 2) {
    const gg_v16 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s];
    t[0] = 2.0f * (d0 - d2) + (d3 - d1);
    t[ts] = (d3 - d2) - 2.0f * d1;
    t[2 * ts] = (d3 - d2) + 2.0f * (d1 - d2);
    t[3 * ts] = d3 - d1;
    t[4 * ts] = 2.0f * (d1 - d3) + (d4 - d2);
    return;
  }
  const gg_v16 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  t[0] = 4.0f * d0 - 5.0f * d2 + d4;
  t[ts] = (d3 + d4) - 4.0f * (d1 + d2);
  t[2 * ts] = (d4 - d3) + 4.0f * (d1 - d2);
  t[3 * ts] = (d4 - d2) + 2.0f * (d3 - d1);
  t[4 * ts] = (d4 - d2) - 2.0f * (d3 - d1);
  t[5 * ts] = 4.0f * d1 - 5.0f * d3 + d5;
}

// 1-D output transform o = Aᵀ m over α vectors (four results).
GG_INLINE void gg_wino_out(const gg_v16* m, int s, gg_v16* o, int os, const int r) {
  if (r == 2) {
    const gg_v16 p12 = m[s] + m[2 * s], d12 = m[s] - m[2 * s], m3 = m[3 * s];
    o[0] = m[0] + p12 + m3;
    o[os] = d12 + 2.0f * m3;
    o[2 * os] = p12 + 4.0f * m3;
    o[3 * os] = d12 + 8.0f * m3 + m[4 * s];
    return;
  }
  const gg_v16 p12 = m[s] + m[2 * s], d12 = m[s] - m[2 * s];
  const gg_v16 p34 = m[3 * s] + m[4 * s], d34 = m[3 * s] - m[4 * s];
  o[0] = m[0] + p12 + p34;
  o[os] = d12 + 2.0f * d34;
  o[2 * os] = p12 + 4.0f * p34;
  o[3 * os] = d12 + 8.0f * d34 + m[5 * s];
}

// 1-D weight transform u = G g over r vectors (α results).
GG_INLINE void gg_wino_w(const gg_v16* g, int s, gg_v16* u, int us, const int r) {
  if (r == 2) {
    const gg_v16 g0 = g[0], g1 = g[s];
    u[0] = g0 * 0.5f;
    u[us] = (g0 + g1) * -0.5f;
    u[2 * us] = (g1 - g0) * (1.0f / 6);
    u[3 * us] = g0 * (1.0f / 6) + g1 * (1.0f / 3);
    u[4 * us] = g1;
    return;
  }
  const gg_v16 g0 = g[0], g1 = g[s], g2 = g[2 * s];
  u[0] = g0 * (1.0f / 4);
  u[us] = (g0 + g1 + g2) * (-1.0f / 6);
  u[2 * us] = (g0 - g1 + g2) * (-1.0f / 6);
  u[3 * us] = g0 * (1.0f / 24) + g1 * (1.0f / 12) + g2 * (1.0f / 6);
  u[4 * us] = g0 * (1.0f / 24) - g1 * (1.0f / 12) + g2 * (1.0f / 6);
  u[5 * us] = g2;
}

static inline int gg_cp(int C) { return (C + 15) / 16 * 16; }
static inline int gg_kb(int K) { return (K + 31) / 32; }
static inline long gg_round16(long n) { return (n + 15) / 16 * 16; }

long gpugen_wino_weights_size(int C, int K, int r) { return (long)(r + 3) * (r + 3) * gg_kb(K) * 32 * gg_cp(C); }

// U[ξ][kb][c][32] for output-channel blocks [kb0, kb1) of 32; channels past C or K are zero. Each block's
// weights are first copied to wt (c, tap, 32 output channels; gpugen_wino_weights_scratch(C, r) floats), so
// that the transform runs on whole vectors.
long gpugen_wino_weights_scratch(int C, int r) { return (long)r * r * 32 * gg_cp(C); }

GG_INLINE void gg_wino_weights(const float* w, float* U, int C, int K, int kb0, int kb1, float* wt, const int r) {
  const int Cp = gg_cp(C), KB = gg_kb(K), taps = r * r, a = r + 3;
  for (int kb = kb0; kb < kb1; kb++) {
    __builtin_memset(wt, 0, sizeof(float) * taps * 32L * Cp);
    // wt[i][kk] = w[kb·32 + kk][i] (i = c·taps + tap < C·taps): 16 × 16 tiles transposed in registers.
    const int n = C * taps;
    for (int h = 0; h < 2; h++)
      for (int i0 = 0; i0 < n; i0 += 16) {
        gg_v16 v[16];
        const int ni = n - i0 < 16 ? n - i0 : 16;
        for (int kk = 0; kk < 16; kk++) {
          const int k = kb * 32 + h * 16 + kk;
          if (k < K)
            gg_load_upto(v + kk, w + (long)k * n + i0, ni);
          else
            v[kk] = (gg_v16){0};
        }
        gg_transpose16(v);  // v[i]: output channels kb·32 + h·16 … of weight i0 + i
        for (int i = 0; i < ni; i++) gg_store16(wt + (long)(i0 + i) * 32 + h * 16, v[i]);
      }
    for (int c = 0; c < Cp; c++)
      for (int h = 0; h < 2; h++) {
        gg_v16 g[9], t[18], u[36];
        for (int tap = 0; tap < taps; tap++) g[tap] = gg_load16(wt + ((long)c * taps + tap) * 32 + h * 16);
        for (int kx = 0; kx < r; kx++) gg_wino_w(g + kx, r, t + kx, r, r);    // columns: t[i·r + kx]
        for (int i = 0; i < a; i++) gg_wino_w(t + i * r, 1, u + i * a, 1, r);  // rows: u[i·α + j]
        for (int xi = 0; xi < a * a; xi++)
          gg_store16(U + (((long)xi * KB + kb) * Cp + c) * 32 + h * 16, u[xi]);
      }
  }
}

GG_CLONES static void gg_wino_weights2(const float* w, float* U, int C, int K, int kb0, int kb1, float* wt) {
  gg_wino_weights(w, U, C, K, kb0, kb1, wt, 2);
}
GG_CLONES static void gg_wino_weights3(const float* w, float* U, int C, int K, int kb0, int kb1, float* wt) {
  gg_wino_weights(w, U, C, K, kb0, kb1, wt, 3);
}

void gpugen_wino_weights(const float* w, float* U, int C, int K, int kb0, int kb1, float* wt, int r) {
  if (r == 2)
    gg_wino_weights2(w, U, C, K, kb0, kb1, wt);
  else
    gg_wino_weights3(w, U, C, K, kb0, kb1, wt);
}

// Block geometry shared by the workspace size and the kernel. The transposed input xt keeps 16 zero columns
// on the left, so that its 16-column blocks are aligned with x's columns: xt column j holds x column j − 16.
// Strides in floats: xs between xt rows, vs between V's α² matrices, ms between M's. Each is 16 floats more
// than the data, so that the α² matrices (and the α rows of a tile) do not all map to the same L1 set.
typedef struct {
  int TW, rows, P, T, Tp, Cp, KB, Hx, Wr, A;
  long xs, vs, ms;
} gg_wino_geom;

static gg_wino_geom gg_wino_geometry(int G, int C, int W, int WO, int K, int rows, int pl, int r) {
  gg_wino_geom g;
  g.A = r + 3;
  g.TW = (WO + 3) / 4, g.rows = rows, g.P = rows * g.TW, g.T = G * g.P, g.Tp = (g.T + 7) / 8 * 8;
  g.Cp = gg_cp(C), g.KB = gg_kb(K), g.Hx = 4 * rows + r - 1;
  // Columns up to the last tile's (16 − pl + 4·TW + r − 1), and at least up to the last x column.
  const long need = 16 - pl + 4L * g.TW + r - 1, cols = 16L + W;
  g.Wr = (int)gg_round16(need > cols ? need : cols);
  g.xs = g.Wr * 16L + 16, g.vs = (long)g.Tp * g.Cp + 16, g.ms = g.Tp * 32L + 16;
  return g;
}

// Images per block: as many as keep V and M (α²·(Cp + 32) floats per tile) within about 1 MB of L2.
// Images larger than that go in blocks of tile rows (at least one).
static long gg_wino_tiles(int C, int r) { return (1L << 20) / ((long)(r + 3) * (r + 3) * (gg_cp(C) + 32) * 4); }

int gpugen_wino_group(int C, int HO, int WO, int r) {
  const long P = (long)((HO + 3) / 4) * ((WO + 3) / 4), g = gg_wino_tiles(C, r) / P;
  return g < 1 ? 1 : g > 64 ? 64 : (int)g;
}

int gpugen_wino_rows(int C, int HO, int WO, int r) {
  const long TH = (HO + 3) / 4, n = gg_wino_tiles(C, r) / ((WO + 3) / 4);
  return n < 1 ? 1 : n > TH ? (int)TH : (int)n;
}

long gpugen_wino_workspace(int G, int C, int W, int WO, int K, int pl, int rows, int r) {
  const gg_wino_geom g = gg_wino_geometry(G, C, W, WO, K, rows, pl, r);
  return 16 + g.Hx * g.xs + (long)g.A * g.A * (g.vs + g.ms);
}

// m[t][0..32] = Σ_c v[t][c] · u[c][0..32] for tiles t < Tp (a multiple of 8), 8 tiles × 32 channels at a time
// in 16 accumulators. (Not inlined into the kernel: there the row pointers spill.)
GG_CLONES static void gg_wino_gemm(const float* v, const float* u, float* m, int Tp, int Cp) {
  for (int t = 0; t < Tp; t += 8, v += 8L * Cp, m += 8 * 32) {
    const float *v0 = v, *v1 = v + Cp, *v2 = v + 2L * Cp, *v3 = v + 3L * Cp, *v4 = v + 4L * Cp,
                *v5 = v + 5L * Cp, *v6 = v + 6L * Cp, *v7 = v + 7L * Cp;
    // Eight independent base registers (otherwise the compiler rebuilds each address from v and Cp).
    __asm__("" : "+r"(v0), "+r"(v1), "+r"(v2), "+r"(v3), "+r"(v4), "+r"(v5), "+r"(v6), "+r"(v7));
    gg_v16 a0[8], a1[8];
    for (int r = 0; r < 8; r++) a0[r] = a1[r] = (gg_v16){0};
#pragma clang loop unroll(disable)
    for (int c = 0; c < Cp; c++) {
      const gg_v16 u0 = gg_load16(u + c * 32), u1 = gg_load16(u + c * 32 + 16);
      const float s[8] = {v0[c], v1[c], v2[c], v3[c], v4[c], v5[c], v6[c], v7[c]};
      for (int r = 0; r < 8; r++) {
        a0[r] += s[r] * u0;
        a1[r] += s[r] * u1;
      }
    }
    for (int r = 0; r < 8; r++) {
      gg_store16(m + r * 32, a0[r]);
      gg_store16(m + r * 32 + 16, a1[r]);
    }
  }
}

// Stores lanes [lo, hi) of *v (+ the residual r, or NULL; both indexed from p) at p + lane.
GG_INLINE void gg_store_lanes(float* p, const gg_v16* v, const float* r, int lo, int hi) {
  if (lo == 0 && hi == 16) {
    gg_store16(p, r ? *v + gg_load16(r) : *v);
    return;
  }
  for (int i = lo; i < hi; i++) p[i] = (*v)[i] + (r ? r[i] : 0.0f);
}

// Input transform of one image's channels [cb, cb + 16), tile rows [ty0, ty0 + rows): xt ← the padded rows,
// transposed to (row, column, 16 channels); V[ξ][t0 + tile][cb…] ← Bᵀ d B per tile. s2d: x is read as its
// space-to-depth view (see gpugen_wino_conv; 2: of x padded by one pixel).
GG_INLINE void gg_wino_input(const float* x, int C, int H, int W, int pt, int pl, int ty0, int cb,
                             const gg_wino_geom* q, float* xt, float* V, long t0, int s2d, const int r) {
  const int Wr = q->Wr, a = r + 3;
  // The view's pixel (c·4 + 2α + β, i, j) is x[c, 2i + α − o, 2j + β − o] in an image (C/4, XH, XW).
  const int o = s2d == 2 ? 1 : 0, XH = 2 * H - 2 * o, XW = 2 * W - 2 * o;
  for (int yy = 0; yy < q->Hx; yy++) {
    float* xr = xt + yy * q->xs;
    const int iy = 4 * ty0 + yy - pt;
    if (iy < 0 || iy >= H || cb >= C) {
      __builtin_memset(xr, 0, sizeof(float) * Wr * 16);
      continue;
    }
    __builtin_memset(xr, 0, sizeof(float) * 16 * 16);  // columns 0..15: left of x
    for (int j0 = 16; j0 < Wr; j0 += 16) {
      const int valid = W - (j0 - 16);  // x columns j0 − 16 … of this block that exist
      gg_v16 v[16];
      if (s2d) {
        // Channels 2i and 2i + 1 (β = 0, 1; C is a multiple of 4) are the even and odd columns of one row of
        // x, loaded once (2n floats, zero beyond) and split.
        for (int l = 0; l < 16; l += 2) {
          v[l] = v[l + 1] = (gg_v16){0};
          if (cb + l >= C || valid <= 0) continue;
          const int ch = cb + l, n2 = 2 * (valid < 16 ? valid : 16), row = 2 * iy + ((ch >> 1) & 1) - o;
          if (row < 0 || row >= XH) continue;
          const int col = 2 * (j0 - 16) - o;  // x column of the first float
          const float* p = x + ((long)(ch >> 2) * XH + row) * XW + col;
          gg_v16 lo = (gg_v16){0}, hi = (gg_v16){0};
          if (col >= 0 && col + n2 <= XW) {
            gg_load_upto(&lo, p, n2);
            if (n2 > 16) gg_load_upto(&hi, p + 16, n2 - 16);
          } else {
            float tmp[32] = {0};
            for (int e = 0; e < n2; e++)
              if (col + e >= 0 && col + e < XW) tmp[e] = p[e];
            lo = gg_load16(tmp), hi = gg_load16(tmp + 16);
          }
          v[l] = __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
          v[l + 1] = __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        }
      } else {
        for (int l = 0; l < 16; l++) {
          v[l] = (gg_v16){0};
          if (cb + l >= C || valid <= 0) continue;
          gg_load_upto(v + l, x + ((long)(cb + l) * H + iy) * W + j0 - 16, valid);
        }
      }
      gg_transpose16(v);
      for (int m = 0; m < 16; m++) gg_store16(xr + (long)(j0 + m) * 16, v[m]);
    }
  }
  const int c0 = 16 - pl;  // xt column of tile 0's first input column
  for (int ty = 0; ty < q->rows; ty++)
    for (int tx = 0; tx < q->TW; tx++) {
      const long t = t0 + ty * q->TW + tx;
      gg_v16 d[36], s[36], v[36];
      for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++) d[i * a + j] = gg_load16(xt + (4 * ty + i) * q->xs + (c0 + 4 * tx + j) * 16L);
      for (int j = 0; j < a; j++) gg_wino_in(d + j, a, s + j, a, r);          // columns: s[i·α + j]
      for (int i = 0; i < a; i++) gg_wino_in(s + i * a, 1, v + i * a, 1, r);  // rows: v[i·α + j]
      for (int xi = 0; xi < a * a; xi++) gg_store16(V + xi * q->vs + t * q->Cp + cb, v[xi]);
    }
}

// Output transform of one image's tiles for channels [k0, k0 + nk) (nk ≤ 16; lanes h·16… of M), groups of
// up to 4 tiles along a tile row: Aᵀ M A + bias per tile gives 16 vectors (position × channel); for each
// of the 4 output rows a 16×16 transpose turns the group's vectors into one 16-wide row segment per channel.
GG_INLINE void gg_wino_output(const float* M, float* y, const float* res, int HO, int WO, int ty0, int k0, int nk,
                              int h, const float* bias, const gg_wino_geom* q, long t0, int d2s, const int r) {
  const long plane = (long)HO * WO;
  const int a = r + 3;
  // d2s: channel 4o + 2α + β of output pixel (i, j) goes to y[o, 2i + α − e, 2j + β − e], y (K/4, YH, YW).
  const int e = d2s == 2 ? 1 : 0, YH = 2 * HO - 2 * e, YW = 2 * WO - 2 * e;
  gg_v16 b = (gg_v16){0};
  if (bias)
    for (int l = 0; l < nk; l++) b[l] = bias[k0 + l];
  for (int ty = 0; ty < q->rows; ty++)
    for (int tx0 = 0; tx0 < q->TW; tx0 += 4) {
      const int n = q->TW - tx0 < 4 ? q->TW - tx0 : 4;
      gg_v16 o[4][16];
      for (int j = 0; j < n; j++) {
        const long t = t0 + ty * q->TW + tx0 + j;
        gg_v16 m[36], s[24];
        for (int xi = 0; xi < a * a; xi++) m[xi] = gg_load16(M + xi * q->ms + t * 32 + h * 16);
        for (int c = 0; c < a; c++) gg_wino_out(m + c, a, s + c, a, r);             // columns: s[i·α + c]
        for (int i = 0; i < 4; i++) gg_wino_out(s + i * a, 1, o[j] + i * 4, 1, r);  // rows: o[i·4 + c]
      }
      const int oy0 = 4 * (ty0 + ty), ox = 4 * tx0, width = WO - ox < 4 * n ? WO - ox : 4 * n;
      for (int i = 0; i < 4 && oy0 + i < HO; i++) {
        gg_v16 v[16];
        for (int j = 0; j < 4; j++)
          for (int bb = 0; bb < 4; bb++) v[j * 4 + bb] = j < n ? o[j][i * 4 + bb] + b : (gg_v16){0};
        gg_transpose16(v);  // v[l]: channel k0 + l, output columns ox … ox + 15
        if (d2s) {
          // Channels 2i and 2i + 1 (β = 0, 1; k0 and nk are multiples of 4) interleave into one row of y:
          // y columns 2·ox − e … of the two 16-lane halves.
          for (int l = 0; l < nk; l += 2) {
            const int ch = k0 + l, row = 2 * (oy0 + i) + ((ch >> 1) & 1) - e;
            if (row < 0 || row >= YH) continue;
            const long off = ((long)(ch >> 2) * YH + row) * YW + 2 * ox - e;
            const gg_v16 lo = __builtin_shufflevector(v[l], v[l + 1], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21,
                                                      6, 22, 7, 23);
            const gg_v16 hi = __builtin_shufflevector(v[l], v[l + 1], 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13,
                                                      29, 14, 30, 15, 31);
            // Lanes [first, last) of the 2·width interleaved floats land inside y's row.
            const int first = 2 * ox - e < 0 ? e - 2 * ox : 0, end = YW - (2 * ox - e);
            const int last = 2 * width < end ? 2 * width : end;
            const float* rr = res ? res + off : 0;
            if (first < 16 && last > first) gg_store_lanes(y + off, &lo, rr, first, last < 16 ? last : 16);
            if (last > 16) gg_store_lanes(y + off + 16, &hi, rr ? rr + 16 : 0, first > 16 ? first - 16 : 0, last - 16);
          }
          continue;
        }
        for (int l = 0; l < nk; l++) {
          const long off = (long)(k0 + l) * plane + (long)(oy0 + i) * WO + ox;
          gg_store_lanes(y + off, v + l, res ? res + off : 0, 0, width);
        }
      }
    }
}

// One clone of the input and output transforms per kernel size, so that α is a constant in each.
GG_CLONES static void gg_wino_input2(const float* x, int C, int H, int W, int pt, int pl, int ty0, int cb,
                                     const gg_wino_geom* q, float* xt, float* V, long t0, int s2d) {
  gg_wino_input(x, C, H, W, pt, pl, ty0, cb, q, xt, V, t0, s2d, 2);
}
GG_CLONES static void gg_wino_input3(const float* x, int C, int H, int W, int pt, int pl, int ty0, int cb,
                                     const gg_wino_geom* q, float* xt, float* V, long t0, int s2d) {
  gg_wino_input(x, C, H, W, pt, pl, ty0, cb, q, xt, V, t0, s2d, 3);
}
GG_CLONES static void gg_wino_output2(const float* M, float* y, const float* res, int HO, int WO, int ty0, int k0,
                                      int nk, int h, const float* bias, const gg_wino_geom* q, long t0, int d2s) {
  gg_wino_output(M, y, res, HO, WO, ty0, k0, nk, h, bias, q, t0, d2s, 2);
}
GG_CLONES static void gg_wino_output3(const float* M, float* y, const float* res, int HO, int WO, int ty0, int k0,
                                      int nk, int h, const float* bias, const gg_wino_geom* q, long t0, int d2s) {
  gg_wino_output(M, y, res, HO, WO, ty0, k0, nk, h, bias, q, t0, d2s, 3);
}

// G images x (G, C, H, W) → y (G, K, HO, WO) (+ bias + res), r×r taps (r = 2 or 3), stride 1, top/left
// padding pt/pl (rows and columns outside x are zero), output tile rows [ty0, ty1) (4 output rows each) of
// every image. bias: K floats per image at bias + g·biasStride (or NULL); res shaped like y (or NULL). U from
// gpugen_wino_weights; work holds gpugen_wino_workspace(G, …, ty1 − ty0, r) floats.
// layout bit 0: x is read as its space-to-depth view (each image (C/4, 2H, 2W) seen as (C, H, W), channel
// 4c + 2a + b holding x[c, 2i + a, 2j + b]); bit 1: y is written depth-to-space (each image (K/4, 2HO, 2WO),
// channel 4o + 2a + b going to y[o, 2i + a, 2j + b]; K a multiple of 4), res in that layout too. Bit 2 with
// bit 0 or 1: the same with a one-pixel offset — x (C/4, 2H − 2, 2W − 2) read as x[c, 2i + a − 1, 2j + b − 1]
// (the space-to-depth of x padded by one pixel), y (K/4, 2HO − 2, 2WO − 2) written at y[o, 2i + a − 1,
// 2j + b − 1] (the pixels that fall outside y dropped).
void gpugen_wino_conv(const float* x, float* y, int G, int C, int H, int W, int K, int pt, int pl, int HO, int WO,
                      int ty0, int ty1, const float* U, const float* bias, long biasStride, const float* res,
                      float* work, int layout, int r) {
  const gg_wino_geom q = gg_wino_geometry(G, C, W, WO, K, ty1 - ty0, pl, r);
  const int a2 = q.A * q.A;
  const int s2d = layout & 1 ? (layout & 4 ? 2 : 1) : 0, d2s = layout & 2 ? (layout & 4 ? 2 : 1) : 0;
  float* xt = (float*)(((unsigned long)work + 63) & ~63UL);  // (Hx, Wr, 16) one image's 16 channels
  float* V = xt + q.Hx * q.xs;                                // (α², Tp, Cp)
  float* M = V + a2 * q.vs;                                   // (α², Tp, 32)
  // Padding tiles (T ≤ t < Tp) contribute zeros to the GEMMs; their outputs are dropped.
  for (int xi = 0; xi < a2; xi++)
    __builtin_memset(V + xi * q.vs + (long)q.T * q.Cp, 0, sizeof(float) * (q.Tp - q.T) * q.Cp);
  // An image of x holds C·H·W floats in every layout but the padded space-to-depth one (C/4 · 2(H−1) · 2(W−1)).
  const long in = s2d == 2 ? (long)C * (H - 1) * (W - 1) : (long)C * H * W;
  for (int g = 0; g < G; g++)
    for (int cb = 0; cb < q.Cp; cb += 16)
      (r == 2 ? gg_wino_input2 : gg_wino_input3)(x + g * in, C, H, W, pt, pl, ty0, cb, &q, xt, V, (long)g * q.P, s2d);
  const long out = d2s == 2 ? (long)K * (HO - 1) * (WO - 1) : (long)K * HO * WO;
  for (int kb = 0; kb < q.KB; kb++) {
    // The α² GEMMs for 32 output channels; U[ξ][kb] (Cp × 32) stays in L1 across the tiles.
    for (int xi = 0; xi < a2; xi++)
      gg_wino_gemm(V + xi * q.vs, U + ((long)xi * q.KB + kb) * q.Cp * 32, M + xi * q.ms, q.Tp, q.Cp);
    for (int g = 0; g < G; g++) {
      const float* bg = bias ? bias + g * biasStride : 0;
      for (int h = 0; h < 2 && kb * 32 + h * 16 < K; h++) {
        const int k0 = kb * 32 + h * 16, nk = K - k0 < 16 ? K - k0 : 16;
        (r == 2 ? gg_wino_output2 : gg_wino_output3)(M, y + g * out, res ? res + g * out : 0, HO, WO, ty0, k0, nk,
                                                     h, bg, &q, (long)g * q.P, d2s);
      }
    }
  }
}
