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
  for (int ky = 0; ky < KH; ky++) {
    const int ty = iy + padT - ky;
    if (ty < 0 || ty % strideH != 0) continue;
    const int oy = ty / strideH;
    if (oy >= HO) continue;
    for (int kx = 0; kx < KW; kx++) {
      const int tx = ix + padL - kx;
      if (tx < 0 || tx % strideW != 0) continue;
      const int ox = tx / strideW;
      if (ox >= WO) continue;
      const int r = (c * KH + ky) * KW + kx;
      const long plane = batchMajor ? (long)n * C * KH * KW + r : (long)r * N + n;
      acc += col[plane * HO * WO + (long)oy * WO + ox];
    }
  }
  x[((long)nc * H + iy) * W + ix] = acc;
}
