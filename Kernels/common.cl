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

// ---------------------------------------------------------------------------------------------------------
// Philox4x32-10 (Random123) and Box–Muller
// The same code is in Sources/GPUGenCore/Noise/Philox.swift; both must stay bit-identical.
// ---------------------------------------------------------------------------------------------------------

// Philox4x32 multipliers and Weyl key increments (Salmon et al., SC'11; Random123 philox.h).
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// One Philox round: two 32×32→64 multiplies, then the S-box-free mix with the round key.
inline uint4 gg_philox_round(uint4 c, uint2 k) {
  uint hi0 = mul_hi(PHILOX_M0, c.x), lo0 = PHILOX_M0 * c.x;
  uint hi1 = mul_hi(PHILOX_M1, c.z), lo1 = PHILOX_M1 * c.z;
  return (uint4)(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
}

// Philox4x32-10: 10 rounds, the key bumped by (W0, W1) between rounds.
inline uint4 gg_philox4x32_10(uint4 c, uint2 k) {
  for (int r = 0; r < 9; r++) {
    c = gg_philox_round(c, k);
    k += (uint2)(PHILOX_W0, PHILOX_W1);
  }
  return gg_philox_round(c, k);
}

// A 32-bit word to a uniform in (0, 1]: (float)u · 2⁻³² + 2⁻³³. The conversion rounds to nearest
// even and the scaling is exact, so every device gets the same bits. The smallest value is 2⁻³³
// (u = 0; never 0, so log stays finite); words within 128 of 2³² round to exactly 1 (log 1 = 0).
inline float gg_uniform(uint u) { return (float)u * 0x1p-32f + 0x1p-33f; }

// Box–Muller: two words to two independent standard normals (r cos θ, r sin θ).
inline float2 gg_box_muller(uint a, uint b) {
  float r = sqrt(-2.0f * log(gg_uniform(a)));
  float theta = 6.28318530717958648f * gg_uniform(b);
  return (float2)(r * cos(theta), r * sin(theta));
}

// Four words (one Philox block) to four standard normals.
inline float4 gg_normal4(uint4 w) {
  return (float4)(gg_box_muller(w.x, w.y), gg_box_muller(w.z, w.w));
}
