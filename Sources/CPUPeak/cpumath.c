// Vectorisable float loops for the native CPU backend: exp-based activations and group-norm sums.
// Compiled for several ISAs with target_clones (runtime dispatch); the loops auto-vectorise.
#include "cpupeak.h"
#include "simd.h"

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

GG_CLONES void gpugen_bias_act(float* y, long n, float b, int relu, float alpha) {
  if (relu)
    for (long i = 0; i < n; i++) {
      const float v = y[i] + b;
      y[i] = 0.0f > v ? 0.0f : v;
    }
  else
    for (long i = 0; i < n; i++) {
      const float v = y[i] + b;
      y[i] = v >= 0.0f ? v : alpha * v;
    }
}

void gpugen_copy_strided(const float* x, float* y, int rank, const long* shape, const long* xs, const long* ys,
                         long r0, long r1) {
  const int lead = rank - 2;
  const long n1 = shape[rank - 2], n0 = shape[rank - 1];
  const long x1 = xs[rank - 2], y1 = ys[rank - 2], x0 = xs[rank - 1], y0 = ys[rank - 1];
  long idx[16], ox = 0, oy = 0, r = r0;
  for (int d = lead - 1; d >= 0; d--) {
    idx[d] = r % shape[d];
    r /= shape[d];
    ox += idx[d] * xs[d];
    oy += idx[d] * ys[d];
  }
  for (long row = r0; row < r1; row++) {
    const float* px = x + ox;
    float* py = y + oy;
    for (long i = 0; i < n1; i++, px += x1, py += y1)
      for (long j = 0; j < n0; j++) py[j * y0] = px[j * x0];
    for (int d = lead - 1; d >= 0; d--) {  // odometer over the leading axes
      ox += xs[d];
      oy += ys[d];
      if (++idx[d] < shape[d]) break;
      ox -= xs[d] * shape[d];
      oy -= ys[d] * shape[d];
      idx[d] = 0;
    }
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

// y[i·k + t] = x[i] for i < n, t < k (nearest-neighbour upsampling along a row).
GG_CLONES void gpugen_repeat(const float* x, float* y, long n, int k) {
  if (k == 2) {
    for (long i = 0; i < n; i++) y[2 * i] = y[2 * i + 1] = x[i];
    return;
  }
  for (long i = 0; i < n; i++)
    for (int t = 0; t < k; t++) y[i * k + t] = x[i];
}

// Horizontal sum of a 16-lane vector.
#define GG_HSUM16(v) ({ float s_ = 0; for (int t_ = 0; t_ < 16; t_++) s_ += (v)[t_]; s_; })

// Direct stride-1 convolution of one image, y (Cout, HO, WO) = w (Cout, C, KH, KW) ⊛ x (C, H, W). The
// image is copied once into a zero-padded buffer (C, Hp = HO+KH−1, Wp = WO+KW−1) plus spare floats; for
// every tap (c, ky, kx) a block of 32 outputs reads a contiguous run of that buffer (or two or four
// rows of it), so no im2col matrix is written. Output channels go 8 at a time with their weights packed
// k-major; each 8 × 32 block of outputs lives in 16 vector registers (16 FMAs per 2 loads + 8
// broadcasts). The block shapes:
//   GG_ROW32  32 outputs of one row (WO a multiple of 32);
//   GG_ROWS16 two 16-wide rows;  GG_ROWS8 four 8-wide rows;
//   GG_FLAT   32 consecutive positions of the padded-width output plane (HO × Wp): the tap (ky, kx) of
//             position q reads xpad[q + ky·Wp + kx], so any width works; the Wp − WO padding columns are
//             computed and dropped.
enum { GG_ROW32, GG_ROWS16, GG_ROWS8, GG_FLAT };

// Packs blocks [b0, b1) of w (Cout, K) as [block][k][8] (rows past Cout are zero).
GG_CLONES void gpugen_pack_conv_weights(const float* w, float* wpack, int Cout, int K, int b0, int b1) {
  for (int b = b0; b < b1; b++) {
    const int i0 = b * 8, mr = Cout - i0 < 8 ? Cout - i0 : 8;
    float* dst = wpack + (long)b * 8 * K;
    for (int k = 0; k < K; k++)
      for (int r = 0; r < 8; r++) dst[k * 8 + r] = r < mr ? w[(long)(i0 + r) * K + k] : 0.0f;
  }
}

long gpugen_conv_s1_workspace(int C, int HO, int WO, int KH, int KW) {
  // GG_FLAT's last block reads up to 32 + KW floats past the last padded channel.
  return (long)C * (HO + KH - 1) * (WO + KW - 1) + 32 + KW + 16;
}

// One 8 × 32 block at output position `at` (GG_FLAT: q in the padded-width plane; otherwise oy·Wp + ox)
// of the mr ≤ 8 output channels whose packed weights start at `a`. KH, KW and mode are constants
// after inlining, so the taps unroll.
static inline __attribute__((always_inline)) void gg_conv_block(const float* xpad, const float* a, float* y,
                                                                long plane, int C, int Hp, int Wp, int KH, int KW,
                                                                int mode, long at, int mr, int HO, int WO,
                                                                const float* bias, const float* res) {
  gg_v16 acc0[8], acc1[8];
  for (int r = 0; r < 8; r++) acc0[r] = acc1[r] = (gg_v16){0} + (bias && r < mr ? bias[r] : 0.0f);
  if (mode != GG_FLAT) {
    // The output rows are usually not in cache: start fetching them for writing now, so that the stores
    // after the taps do not stall on read-for-ownership misses.
    const long oy = at / Wp, ox = at % Wp;
    for (int r = 0; r < mr; r++) {
      const float* out = y + r * plane + oy * WO + ox;
      __builtin_prefetch(out, 1);
      __builtin_prefetch(out + 16, 1);
      __builtin_prefetch(out + 31, 1);
    }
  }
  const float* base = xpad + at;
  // One row of taps per iteration (unrolled when KW is a constant): unrolling further only adds spills.
#pragma clang loop unroll(disable)
  for (int c = 0; c < C; c++, base += (long)Hp * Wp)
#pragma clang loop unroll(disable)
    for (int ky = 0; ky < KH; ky++)
#pragma clang loop unroll(disable)
      for (int kx = 0; kx < KW; kx++, a += 8) {
        const float* r0 = base + ky * Wp + kx;
        gg_v16 b0, b1;
        if (mode == GG_ROWS8) {
          b0 = gg_join8(gg_load8(r0), gg_load8(r0 + Wp));
          b1 = gg_join8(gg_load8(r0 + 2 * Wp), gg_load8(r0 + 3 * Wp));
        } else {
          b0 = gg_load16(r0);
          b1 = gg_load16(mode == GG_ROWS16 ? r0 + Wp : r0 + 16);
        }
        for (int r = 0; r < 8; r++) {
          acc0[r] += a[r] * b0;
          acc1[r] += a[r] * b1;
        }
      }
  // Copied out with constant indices so that acc0/acc1 stay in registers (the stores below index them
  // with a run-time row count).
  gg_v16 out0[8], out1[8];
  for (int r = 0; r < 8; r++) out0[r] = acc0[r], out1[r] = acc1[r];
  if (mode == GG_FLAT) {
    long dst[32];  // offset in a y plane of position at + j, or −1 for a padding column / past the end
    long oy = at / Wp, ox = at % Wp;
#pragma clang loop vectorize(disable)
    for (int j = 0; j < 32; j++) {
      dst[j] = oy < HO && ox < WO ? oy * WO + ox : -1;
      if (++ox == Wp) ox = 0, oy++;
    }
    for (int r = 0; r < mr; r++) {
      float v[32];
      gg_store16(v, out0[r]);
      gg_store16(v + 16, out1[r]);
      // (Not vectorised: a masked scatter is slower than 32 scalar stores.)
#pragma clang loop vectorize(disable)
      for (int j = 0; j < 32; j++)
        if (dst[j] >= 0) y[r * plane + dst[j]] = v[j] + (res ? res[r * plane + dst[j]] : 0.0f);
    }
    return;
  }
  // The other modes cover 32 outputs that are contiguous in y.
  const long oy = at / Wp, ox = at % Wp;
  for (int r = 0; r < mr; r++) {
    const long o = r * plane + oy * WO + ox;
    if (res) {
      out0[r] += gg_load16(res + o);
      out1[r] += gg_load16(res + o + 16);
    }
    gg_store16(y + o, out0[r]);
    gg_store16(y + o + 16, out1[r]);
  }
}

// The blocks of one 8-channel group (output rows [0, HO)); 8-, 16- and 32k-wide images use whole-row
// blocks, other widths and leftover rows the padded-width plane.
static inline __attribute__((always_inline)) void gg_conv_group(const float* xpad, const float* a, float* y,
                                                                long plane, int C, int Hp, int Wp, int KH, int KW,
                                                                int mr, int HO, int WO, const float* bias,
                                                                const float* res) {
  int oy = 0;
  if (WO == 8) {
    for (; oy + 4 <= HO; oy += 4) gg_conv_block(xpad, a, y, plane, C, Hp, Wp, KH, KW, GG_ROWS8, (long)oy * Wp, mr, HO, WO, bias, res);
  } else if (WO == 16) {
    for (; oy + 2 <= HO; oy += 2) gg_conv_block(xpad, a, y, plane, C, Hp, Wp, KH, KW, GG_ROWS16, (long)oy * Wp, mr, HO, WO, bias, res);
  } else if (WO % 32 == 0) {
    for (; oy < HO; oy++)
      for (int ox = 0; ox < WO; ox += 32)
        gg_conv_block(xpad, a, y, plane, C, Hp, Wp, KH, KW, GG_ROW32, (long)oy * Wp + ox, mr, HO, WO, bias, res);
  }
  for (long q = (long)oy * Wp; q < (long)HO * Wp; q += 32)
    gg_conv_block(xpad, a, y, plane, C, Hp, Wp, KH, KW, GG_FLAT, q, mr, HO, WO, bias, res);
}

void gpugen_conv_s1_pad(const float* x, int C, int H, int W, int KH, int KW, int pt, int pl, int HO, int WO,
                        float* xpad) {
  const int Hp = HO + KH - 1, Wp = WO + KW - 1;
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
  const long padded = (long)C * Hp * Wp;
  __builtin_memset(xpad + padded, 0, sizeof(float) * (gpugen_conv_s1_workspace(C, HO, WO, KH, KW) - padded));
}

GG_CLONES void gpugen_conv_s1_blocks(const float* xpad, float* y, int C, int Cout, int KH, int KW, int HO, int WO,
                                     const float* wpack, const float* bias, const float* res, int b0, int b1) {
  const int Hp = HO + KH - 1, Wp = WO + KW - 1, K = C * KH * KW;
  const long plane = (long)HO * WO;
  for (int i0 = b0 * 8; i0 < Cout && i0 < b1 * 8; i0 += 8) {
    const int mr = Cout - i0 < 8 ? Cout - i0 : 8;
    const float* a = wpack + (long)(i0 / 8) * 8 * K;
    float* yb = y + (long)i0 * plane;
    const float* bb = bias ? bias + i0 : 0;
    const float* rb = res ? res + (long)i0 * plane : 0;
    if (KH == 3 && KW == 3)
      gg_conv_group(xpad, a, yb, plane, C, Hp, Wp, 3, 3, mr, HO, WO, bb, rb);
    else
      gg_conv_group(xpad, a, yb, plane, C, Hp, Wp, KH, KW, mr, HO, WO, bb, rb);
  }
}

void gpugen_conv_s1(const float* x, float* y, int C, int H, int W, int Cout, int KH, int KW, int pt, int pl, int HO,
                    int WO, float* xpad, const float* wpack, const float* bias, const float* res) {
  gpugen_conv_s1_pad(x, C, H, W, KH, KW, pt, pl, HO, WO, xpad);
  gpugen_conv_s1_blocks(xpad, y, C, Cout, KH, KW, HO, WO, wpack, bias, res, 0, (Cout + 7) / 8);
}

// Weight gradient of a stride-1 convolution, dW (Cout, C, KH, KW) += Σ_b Σ_(oy,ox) dY[b, o, oy, ox] ·
// xpad[b, c, oy + ky, ox + kx], with no im2col matrix and output channels across the vector lanes: dY is
// transposed to (B, HO·WO, Co16) (Co16 = Cout rounded up to 16, zero-filled), x is zero-padded as in
// gpugen_conv_s1, and a block of 16·NV output channels × one input channel × all taps (≤ 9) keeps NV·9
// accumulators in registers over every output position of every image: each step is NV aligned loads
// of dY, one broadcast of x per tap and NV·taps FMAs. No horizontal sums; each accumulator lane is one
// weight. dW is (Cout, C·KH·KW), written with +=.
long gpugen_conv_wgrad_workspace(int B, int C, int Cout, int HO, int WO, int KH, int KW) {
  const long xfloats = (long)B * C * (HO + KH - 1) * (WO + KW - 1), Co16 = (Cout + 15) / 16 * 16;
  return (xfloats + 15) / 16 * 16 + (long)B * HO * WO * Co16 + (long)C * KH * KW * Co16;
}

// NC (1 or 2) input channels at xs, xs + xplane (dW columns from dw on, T per channel), 16·NV output channels
// from o0, T ≤ 9 taps at the offsets off; NC, NV and T are constants after inlining, so acc stays in
// registers (NC·NV·T ≤ 27). With two channels each dY load feeds twice the FMAs.
static inline __attribute__((always_inline)) void gg_wgrad_block(const float* xs, long xplane, long xstride,
                                                                 const float* dyT, long dstride, int Co16, int B,
                                                                 int HO, int WO, int Wp, const long* off, int NC,
                                                                 int NV, int T, float* acc) {
  gg_v16 a[2][3][9];
  for (int h = 0; h < 2; h++)
    for (int v = 0; v < 3; v++)
      for (int t = 0; t < 9; t++) a[h][v][t] = (gg_v16){0};
#pragma clang loop unroll(disable)
  for (int b = 0; b < B; b++, xs += xstride, dyT += dstride) {
    const float* d = dyT;
#pragma clang loop unroll(disable)
    for (int oy = 0; oy < HO; oy++) {
      const float* xr = xs + (long)oy * Wp;
#pragma clang loop unroll(disable)
      for (int ox = 0; ox < WO; ox++, d += Co16) {
        gg_v16 dv[3];
        for (int v = 0; v < NV; v++) __builtin_memcpy(&dv[v], d + 16 * v, sizeof(gg_v16));
        for (int h = 0; h < NC; h++)
          for (int t = 0; t < T; t++) {
            const float xv = xr[h * xplane + ox + off[t]];
            for (int v = 0; v < NV; v++) a[h][v][t] += dv[v] * xv;
          }
      }
    }
  }
  // One aligned vector store per accumulator into acc (rows h·T + t, Co16 floats apart; the caller transposes
  // the whole (C·T, Co16) block into dW once, instead of 16 scattered adds per vector here).
  for (int h = 0; h < NC; h++)
    for (int v = 0; v < NV; v++)
      for (int t = 0; t < T; t++) gg_store16(acc + (long)(h * T + t) * Co16 + 16 * v, a[h][v][t]);
}

GG_CLONES void gpugen_conv_s1_wgrad(const float* x, const float* dy, float* dw, int B, int C, int H, int W, int Cout,
                                    int KH, int KW, int pt, int pl, int HO, int WO, float* work, int s2d) {
  const int Hp = HO + KH - 1, Wp = WO + KW - 1, T = KH * KW, Co16 = (Cout + 15) / 16 * 16;
  const long xplane = (long)Hp * Wp, xstride = (long)C * xplane, P = (long)HO * WO, dstride = P * Co16;
  float* xpad = work;
  float* dyT = work + ((long)B * xstride + 15) / 16 * 16;  // 64-byte aligned rows when work is
  const int n = W < Wp - pl ? W : Wp - pl;
  __builtin_memset(xpad, 0, sizeof(float) * B * xstride);
  for (int b = 0; b < B; b++) {
    if (s2d) {
      // The padded space-to-depth of x (each image (C/4, H, W)) gathered straight into the workspace:
      // channel 4c + 2a + e, row i, column j holds x[c, 2i + a − 1, 2j + e − 1] (zero outside x).
      // Row by row of x: row iy feeds row i = (iy + 1) / 2 of channels 4c + 2a + e (a = (iy + 1) mod 2), its
      // even columns (e = 1) at j = ix / 2 and its odd ones (e = 0) at j = (ix + 1) / 2.
      for (int c4 = 0; c4 < C / 4; c4++) {
        const float* plane = x + ((long)b * (C / 4) + c4) * H * W;
        for (int iy = 0; iy < H; iy++) {
          const int a = (iy + 1) & 1, i = (iy + 1) >> 1;
          if (i >= Hp) continue;
          float* d0 = xpad + b * xstride + (4L * c4 + 2 * a) * xplane + (long)i * Wp;  // e = 0
          float* d1 = d0 + xplane;                                                        // e = 1
          const float* row = plane + (long)iy * W;
          const int n1 = (W + 1) / 2 < Wp ? (W + 1) / 2 : Wp, n0 = W / 2 + 1 < Wp ? W / 2 + 1 : Wp;
          // (Scalar: rows are short, and vectorised stride-2 loads become gathers.)
#pragma clang loop vectorize(disable)
          for (int j = 0; j < n1; j++) d1[j] = row[2 * j];
#pragma clang loop vectorize(disable)
          for (int j = 1; j < n0; j++) d0[j] = row[2 * j - 1];
        }
      }
    } else
    for (int c = 0; c < C; c++)
      for (int iy = 0; iy < H && n > 0; iy++) {
        const int yy = iy + pt;
        if (yy >= Hp) break;
        __builtin_memcpy(xpad + b * xstride + c * xplane + (long)yy * Wp + pl, x + (((long)b * C + c) * H + iy) * W,
                         sizeof(float) * n);
      }
    // dY (Cout, P) → (P, Co16), in 16 × 16 tiles transposed in registers.
    float* dt = dyT + b * dstride;
    const float* src = dy + (long)b * Cout * P;
    for (long p0 = 0; p0 < P; p0 += 16)
      for (int o0 = 0; o0 < Co16; o0 += 16) {
        gg_v16 r[16];
        const int np = P - p0 < 16 ? (int)(P - p0) : 16;
        for (int o = 0; o < 16; o++) {
          if (o0 + o < Cout)
            gg_load_upto(r + o, src + (long)(o0 + o) * P + p0, np);
          else
            r[o] = (gg_v16){0};
        }
        gg_transpose16(r);  // r[p]: channels o0 … o0 + 15 at position p0 + p
        for (int p = 0; p < np; p++) gg_store16(dt + (p0 + p) * Co16 + o0, r[p]);
      }
  }
  long off[9];
  const long dwRow = (long)C * T;
  float* acc = dyT + (long)B * dstride;  // (C·T, Co16): acc[(c·T + t)·Co16 + o] = dW[o, c, t]
  for (int o0 = 0; o0 < Co16; o0 += 48) {
    const int nv = (Co16 - o0) / 16 < 3 ? (Co16 - o0) / 16 : 3;
    for (int c = 0; c < C; c++) {
      const float* xs = xpad + c * xplane;
      float* out = acc + (long)c * T * Co16 + o0;
      if (KH == 3 && KW == 3) {
        for (int t = 0; t < 9; t++) off[t] = (t / 3) * Wp + t % 3;
        if (nv == 3)
          gg_wgrad_block(xs, xplane, xstride, dyT + o0, dstride, Co16, B, HO, WO, Wp, off, 1, 3, 9, out);
        else if (nv == 2)
          gg_wgrad_block(xs, xplane, xstride, dyT + o0, dstride, Co16, B, HO, WO, Wp, off, 1, 2, 9, out);
        else
          gg_wgrad_block(xs, xplane, xstride, dyT + o0, dstride, Co16, B, HO, WO, Wp, off, 1, 1, 9, out);
      } else if (T == 4) {
        // 2×2 kernels (the space-to-depth form of 4×4 stride-2 convolutions): all taps in registers, two
        // input channels per pass where there is a pair.
        for (int t = 0; t < 4; t++) off[t] = (t / KW) * Wp + t % KW;
        if (c + 1 < C) {
          if (nv == 3)
            gg_wgrad_block(xs, xplane, xstride, dyT + o0, dstride, Co16, B, HO, WO, Wp, off, 2, 3, 4, out);
          else if (nv == 2)
            gg_wgrad_block(xs, xplane, xstride, dyT + o0, dstride, Co16, B, HO, WO, Wp, off, 2, 2, 4, out);
          else
            gg_wgrad_block(xs, xplane, xstride, dyT + o0, dstride, Co16, B, HO, WO, Wp, off, 2, 1, 4, out);
          c++;  // the pair's second channel is done
        } else if (nv == 3)
          gg_wgrad_block(xs, xplane, xstride, dyT + o0, dstride, Co16, B, HO, WO, Wp, off, 1, 3, 4, out);
        else if (nv == 2)
          gg_wgrad_block(xs, xplane, xstride, dyT + o0, dstride, Co16, B, HO, WO, Wp, off, 1, 2, 4, out);
        else
          gg_wgrad_block(xs, xplane, xstride, dyT + o0, dstride, Co16, B, HO, WO, Wp, off, 1, 1, 4, out);
      } else {
        for (int t = 0; t < T; t++) {
          off[0] = (t / KW) * Wp + t % KW;
          for (int v = 0; v < nv; v++)
            gg_wgrad_block(xs, xplane, xstride, dyT + o0 + 16 * v, dstride, Co16, B, HO, WO, Wp, off, 1, 1, 1,
                           out + (long)t * Co16 + 16 * v);
        }
      }
    }
  }
  // dW[o, r] += acc[r][o] (r = c·T + t), in 16 × 16 tiles transposed in registers. With s2d, the 16 columns
  // of x's channel c (s2d channels 4c + 2a + b × taps 2ty + tx) go straight to the 4×4 stride-2 kernel
  // dW[o, c, 2ty + a, 2tx + b] (dwRow is 16 per channel, so every tile is one channel).
  for (long r0 = 0; r0 < dwRow; r0 += 16) {
    const int nr = dwRow - r0 < 16 ? (int)(dwRow - r0) : 16;
    for (int o0 = 0; o0 < Cout; o0 += 16) {
      gg_v16 m[16];
      for (int i = 0; i < 16; i++) m[i] = i < nr ? gg_load16(acc + (r0 + i) * Co16 + o0) : (gg_v16){0};
      gg_transpose16(m);  // m[o]: dW[o0 + o, r0 …]
      const int no = Cout - o0 < 16 ? Cout - o0 : 16;
      for (int o = 0; o < no; o++) {
        float* d = dw + (long)(o0 + o) * dwRow + r0;
        if (s2d) m[o] = __builtin_shufflevector(m[o], m[o], 0, 4, 1, 5, 8, 12, 9, 13, 2, 6, 3, 7, 10, 14, 11, 15);
        if (nr == 16)
          gg_store16(d, gg_load16(d) + m[o]);
        else
          for (int i = 0; i < nr; i++) d[i] += m[o][i];
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

// Batch normalisation of one channel: `n` runs (one per image) of `hw` contiguous floats, `stride` floats apart.
// Each run's sums go in 16 float lanes, which are added lane by lane into 16 double lanes (a vector add, not a
// chain of 16 dependent scalar adds per run: runs are short, 49 floats in the DCGAN), reduced once at the end.
#define GG_LANES_TO_DOUBLE(accD, acc) \
  for (int j_ = 0; j_ < 16; j_++) (accD)[j_] += (double)(acc)[j_]
static inline double gg_hsum_d16(const double* a) {
  double s = 0;
  for (int j = 0; j < 16; j++) s += a[j];
  return s;
}

GG_CLONES void gpugen_bn_stats(const float* x, long n, long hw, long stride, double* mean, double* var) {
  const long count = n * hw;
  double accD[16] = {0}, tail = 0;
  for (long r = 0; r < n; r++) {
    const float* p = x + r * stride;
    float acc[16] = {0};
    long i = 0;
    for (; i + 16 <= hw; i += 16)
      for (int j = 0; j < 16; j++) acc[j] += p[i + j];
    GG_LANES_TO_DOUBLE(accD, acc);
    for (; i < hw; i++) tail += p[i];
  }
  const double m = count > 0 ? (gg_hsum_d16(accD) + tail) / (double)count : 0;
  const float mf = (float)m;
  double qD[16] = {0}, qtail = 0;
  for (long r = 0; r < n; r++) {
    const float* p = x + r * stride;
    float acc[16] = {0};
    long i = 0;
    for (; i + 16 <= hw; i += 16)
      for (int j = 0; j < 16; j++) {
        const float d = p[i + j] - mf;
        acc[j] += d * d;
      }
    GG_LANES_TO_DOUBLE(qD, acc);
    for (; i < hw; i++) {
      const float d = p[i] - mf;
      qtail += d * d;
    }
  }
  // Σ(x − mf)²/M = var + (m − mf)²: the deviations were taken from the rounded mean.
  const double v = count > 0 ? (gg_hsum_d16(qD) + qtail) / (double)count - (m - mf) * (m - mf) : 0;
  *mean = m;
  *var = v > 0 ? v : 0;
}

GG_CLONES void gpugen_bn_apply(const float* x, float* y, long n, long hw, long stride, float mean, float scale,
                               float shift, int act, float alpha) {
  for (long r = 0; r < n; r++) {
    const float* p = x + r * stride;
    float* o = y + r * stride;
    if (act == 1) {
      for (long i = 0; i < hw; i++) {
        const float v = (p[i] - mean) * scale + shift;
        o[i] = v > 0.0f ? v : 0.0f;
      }
    } else if (act == 2) {
      for (long i = 0; i < hw; i++) {
        const float v = (p[i] - mean) * scale + shift;
        o[i] = v >= 0.0f ? v : alpha * v;
      }
    } else {
      for (long i = 0; i < hw; i++) o[i] = (p[i] - mean) * scale + shift;
    }
  }
}

// dA = dy·act′ read from the output: 1 where y > 0, else 0 (ReLU) or the slope (leaky ReLU).
#define GG_BN_DA(d, yv, act, slope) ((act) == 0 || (yv) > 0.0f ? (d) : (d) * (slope))

GG_CLONES void gpugen_bn_backward(const float* x, const float* y, const float* dy, float* dx, long n, long hw,
                                  long stride, float mean, float invstd, float gamma, int training, int act,
                                  float alpha, float* dgamma, float* dbeta) {
  const float slope = act == 2 ? alpha : 0.0f;
  double bD[16] = {0}, gD[16] = {0}, sb = 0, sg = 0;  // Σ dA and Σ dA·(x − mean): lanes and tails
  for (long r = 0; r < n; r++) {
    const float* xs = x + r * stride;
    const float* ds = dy + r * stride;
    const float* ys = act ? y + r * stride : ds;
    float accB[16] = {0}, accG[16] = {0};
    long i = 0;
    for (; i + 16 <= hw; i += 16)
      for (int j = 0; j < 16; j++) {
        const float d = GG_BN_DA(ds[i + j], ys[i + j], act, slope);
        accB[j] += d;
        accG[j] += d * (xs[i + j] - mean);
      }
    GG_LANES_TO_DOUBLE(bD, accB);
    GG_LANES_TO_DOUBLE(gD, accG);
    for (; i < hw; i++) {
      const float d = GG_BN_DA(ds[i], ys[i], act, slope);
      sb += d;
      sg += d * (xs[i] - mean);
    }
  }
  sb += gg_hsum_d16(bD);
  sg += gg_hsum_d16(gD);
  sg *= invstd;  // Σ dA·x̂
  *dgamma = (float)sg;
  *dbeta = (float)sb;
  // dx = k·(dA − Σ dA/M) + q·(x − mean) with k = γ·invstd and q = −k·invstd·Σ dA·x̂/M (training), else k·dA.
  const long count = n * hw;
  const double k = (double)gamma * invstd;
  const float kf = (float)k;
  const float q = training && count > 0 ? (float)(-k * invstd * sg / (double)count) : 0.0f;
  const float mb = training && count > 0 ? (float)(sb / (double)count) : 0.0f;
  for (long r = 0; r < n; r++) {
    const float* xs = x + r * stride;
    const float* ds = dy + r * stride;
    const float* ys = act ? y + r * stride : ds;
    float* o = dx + r * stride;
    for (long i = 0; i < hw; i++) o[i] = kf * (GG_BN_DA(ds[i], ys[i], act, slope) - mb) + q * (xs[i] - mean);
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

// Adam / AdamW over n floats, the float operations of CPUBackend.optimizerStep and Kernels/optim.cl in the same
// order (fmaf where those use a fused multiply-add), so the result is bit-identical; compiled per ISA so that
// the loop runs on whole vectors. flags: 1 decoupled weight decay (p·decay first), 2 L2 (g += p·wd), 4 the
// small-w lerp form of the first moment (m + w·(g − m)), else g + (w − 1)·(g − m).
GG_CLONES void gpugen_adam(float* restrict p, const float* restrict g, float* restrict m, float* restrict v, long n,
                           float scale, float decay, float wd, float w, float wMinus1, float beta2, float c2,
                           float bc2Sqrt, float eps, float negLR, int flags) {
  const int decoupled = flags & 1, l2 = flags & 2, small = flags & 4;
  for (long i = 0; i < n; i++) {
    float pi = p[i];
    float gi = g[i] * scale;
    if (decoupled) pi = pi * decay;
    if (l2) gi = __builtin_fmaf(pi, wd, gi);
    const float mOld = m[i];
    const float d = gi - mOld;
    const float mi = small ? __builtin_fmaf(w, d, mOld) : __builtin_fmaf(wMinus1, d, gi);
    const float vi = __builtin_fmaf(c2 * gi, gi, v[i] * beta2);
    m[i] = mi;
    v[i] = vi;
    const float denom = __builtin_elementwise_sqrt(vi) / bc2Sqrt + eps;
    p[i] = pi + (negLR * mi) / denom;
  }
}

// e ← e − w·(e − p) over n floats (the EMA update of CPUBackend.emaUpdate, same operations).
GG_CLONES void gpugen_ema(float* restrict e, const float* restrict p, long n, float w) {
  for (long i = 0; i < n; i++) {
    const float ei = e[i];
    e[i] = ei - w * (ei - p[i]);
  }
}

// dx = dy where x > 0, else 0 (relu ≠ 0) or alpha·dy (leaky ReLU), over n floats.
GG_CLONES void gpugen_relu_grad(const float* restrict x, const float* restrict dy, float* restrict dx, long n,
                                int relu, float alpha) {
  if (relu)
    for (long i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0.0f;
  else
    for (long i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : alpha * dy[i];
}
