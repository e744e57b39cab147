// conv.cl: convolution as im2col + the tuned GEMM (gemm.cl), NCHW.
//
// col has shape (C·KH·KW, N·HO·WO): row r = (c, ky, kx), column q = (n, oy, ox), so that
// out(Cout, N·HO·WO) = W(Cout, C·KH·KW) · col is one large GEMM for the whole batch.

// One work-item per element of col. Zero padding: padT/padL before the image, implicit after it.
__kernel void conv_im2col(__global const float* x, __global float* col, int N, int C, int H, int W,
                          int KH, int KW, int strideH, int strideW, int padT, int padL, int HO, int WO) {
  const long gid = get_global_id(0);
  const long P = (long)HO * WO, Q = (long)N * P;
  const long r = gid / Q, q = gid % Q;
  const int kx = r % KW, ky = (r / KW) % KH, c = r / (KW * KH);
  const int n = q / P, p = q % P;
  const int oy = p / WO, ox = p % WO;
  const int iy = oy * strideH - padT + ky, ix = ox * strideW - padL + kx;
  float v = 0.0f;
  if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = x[(((long)n * C + c) * H + iy) * W + ix];
  col[gid] = v;
}
