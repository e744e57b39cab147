// common.cl: helpers shared by every kernel family. Prepended to each family's source.
// OpenCL C 1.2; no extensions required.

// Activation codes shared by the GEMM epilogue and the unary kernels (see Swift `Activation`).
#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_LEAKY_RELU 2
#define ACT_SILU 3
#define ACT_GELU 4
#define ACT_SIGMOID 5
#define ACT_TANH 6

// Maximum tensor rank handled by the strided kernels (shape and strides travel as int16 vectors).
#define MAX_RANK 16

inline float gg_sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }
inline float gg_gelu(float x) { return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f)); }

inline float gg_activate(float v, int act, float alpha) {
  switch (act) {
    case ACT_RELU: return fmax(v, 0.0f);
    case ACT_LEAKY_RELU: return v >= 0.0f ? v : alpha * v;
    case ACT_SILU: return v * gg_sigmoid(v);
    case ACT_GELU: return gg_gelu(v);
    case ACT_SIGMOID: return gg_sigmoid(v);
    case ACT_TANH: return tanh(v);
    default: return v;
  }
}

inline int gg_at(int16 v, int i) {
  switch (i) {
    case 0: return v.s0; case 1: return v.s1; case 2: return v.s2; case 3: return v.s3;
    case 4: return v.s4; case 5: return v.s5; case 6: return v.s6; case 7: return v.s7;
    case 8: return v.s8; case 9: return v.s9; case 10: return v.sa; case 11: return v.sb;
    case 12: return v.sc; case 13: return v.sd; case 14: return v.se; default: return v.sf;
  }
}

// Offset of linear (row-major) index `idx` over `shape` in a tensor with `strides`.
inline long gg_offset(long idx, int rank, int16 shape, int16 strides) {
  long off = 0;
  for (int d = rank - 1; d >= 0; d--) {
    int n = gg_at(shape, d);
    off += (idx % n) * (long)gg_at(strides, d);
    idx /= n;
  }
  return off;
}
