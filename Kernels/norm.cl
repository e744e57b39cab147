// norm.cl: group normalisation over (N, C, HW) with per-channel affine and an optional fused SiLU.

// Work-group size: a power of two.
#ifndef NLS
#define NLS 64
#endif

inline float gn_group_sum(float v, __local float* scratch) {
  int l = get_local_id(0);
  scratch[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = NLS / 2; s > 0; s >>= 1) {
    if (l < s) scratch[l] += scratch[l + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float r = scratch[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

// Mean and 1/√(variance + eps) of one group's `count` values, by the whole work-group (two passes: mean,
// then centred variance, for accuracy).
inline void gn_group_stats(__global const float* p, int count, float eps, __local float* scratch,
                           float* mean, float* rstd) {
  const int l = get_local_id(0);
  float s = 0.0f;
  for (int i = l; i < count; i += NLS) s += p[i];
  const float m = gn_group_sum(s, scratch) / count;
  float q = 0.0f;
  for (int i = l; i < count; i += NLS) { float d = p[i] - m; q += d * d; }
  *mean = m;
  *rstd = rsqrt(gn_group_sum(q, scratch) / count + eps);
}

// One work-group per (n, group). Two passes (mean, then centred variance) for accuracy.
__kernel __attribute__((reqd_work_group_size(NLS, 1, 1)))
void norm_group(__global const float* x, __global float* y, __global const float* gamma,
                __global const float* beta, int C, int HW, int G, float eps, int silu) {
  __local float scratch[NLS];
  const int ng = get_group_id(0), l = get_local_id(0);
  const int n = ng / G, g = ng % G, cpg = C / G;
  const long base = ((long)n * C + (long)g * cpg) * HW;
  const int count = cpg * HW;
  float mean, rstd;
  gn_group_stats(x + base, count, eps, scratch, &mean, &rstd);
  for (int i = l; i < count; i += NLS) {
    const int c = g * cpg + i / HW;
    float v = (x[base + i] - mean) * rstd * gamma[c] + beta[c];
    if (silu) v = v / (1.0f + exp(-v));
    y[base + i] = v;
  }
}

// CPU devices: one work-item per (n, group), 16 lanes at a time (PoCL maps float16 math, exp included,
// onto vector instructions; a scalar loop per work-item would not vectorise). Global size N·G.
__kernel void norm_group_vec(__global const float* x, __global float* y, __global const float* gamma,
                             __global const float* beta, int C, int HW, int G, float eps, int silu) {
  const int ng = get_global_id(0);
  const int n = ng / G, g = ng % G, cpg = C / G;
  const long base = ((long)n * C + (long)g * cpg) * HW;
  const int count = cpg * HW, vec = count / 16 * 16;
  __global const float* p = x + base;
  float16 s16 = (float16)(0.0f);
  for (int i = 0; i < vec; i += 16) s16 += vload16(0, p + i);
  float s = 0.0f;
  for (int i = vec; i < count; i++) s += p[i];
  const float8 s8 = s16.lo + s16.hi;
  const float4 s4 = s8.lo + s8.hi;
  s += (s4.x + s4.y) + (s4.z + s4.w);
  const float mean = s / count;
  float16 q16 = (float16)(0.0f);
  for (int i = 0; i < vec; i += 16) {
    const float16 d = vload16(0, p + i) - mean;
    q16 += d * d;
  }
  float q = 0.0f;
  for (int i = vec; i < count; i++) { const float d = p[i] - mean; q += d * d; }
  const float8 q8 = q16.lo + q16.hi;
  const float4 q4 = q8.lo + q8.hi;
  q += (q4.x + q4.y) + (q4.z + q4.w);
  const float rstd = rsqrt(q / count + eps);
  for (int ch = 0; ch < cpg; ch++) {
    const int c = g * cpg + ch;
    const float scale = gamma[c] * rstd, shift = beta[c] - mean * scale;
    __global const float* src = p + (long)ch * HW;
    __global float* dst = y + base + (long)ch * HW;
    const int hv = HW / 16 * 16;
    for (int i = 0; i < hv; i += 16) {
      float16 v = vload16(0, src + i) * scale + shift;
      if (silu) v = v / (1.0f + exp(-v));
      vstore16(v, 0, dst + i);
    }
    for (int i = hv; i < HW; i++) {
      float v = src[i] * scale + shift;
      if (silu) v = v / (1.0f + exp(-v));
      dst[i] = v;
    }
  }
}

// Group norm (+ SiLU) backward. One work-group per (n, group). dA (the gradient at the affine output,
// through SiLU' when `silu`) is staged in dx; per channel, dgamma[n, c] = Σ dA·x̂ and
// dbeta[n, c] = Σ dA; then dx = rstd·(dA·γ − mean(dA·γ) − x̂·mean(dA·γ·x̂)).
__kernel __attribute__((reqd_work_group_size(NLS, 1, 1)))
void norm_group_backward(__global const float* x, __global const float* dy,
                         __global const float* gamma, __global const float* beta,
                         __global float* dx, __global float* dgamma, __global float* dbeta,
                         int C, int HW, int G, float eps, int silu) {
  __local float scratch[NLS];
  const int ng = get_group_id(0), l = get_local_id(0);
  const int n = ng / G, g = ng % G, cpg = C / G;
  const long base = ((long)n * C + (long)g * cpg) * HW;
  const int count = cpg * HW;
  float mean, rstd;
  gn_group_stats(x + base, count, eps, scratch, &mean, &rstd);
  float s1 = 0.0f, s2 = 0.0f;
  for (int ch = 0; ch < cpg; ch++) {
    const int c = g * cpg + ch;
    const float ga = gamma[c], be = beta[c];
    const long cb = base + (long)ch * HW;
    float sg = 0.0f, sb = 0.0f;
    for (int i = l; i < HW; i += NLS) {
      const float xh = (x[cb + i] - mean) * rstd;
      float d = dy[cb + i];
      if (silu) {
        const float a = xh * ga + be;
        const float sig = gg_sigmoid(a);
        d *= sig * (1.0f + a * (1.0f - sig));
      }
      dx[cb + i] = d;
      sg += d * xh;
      sb += d;
    }
    sg = gn_group_sum(sg, scratch);
    sb = gn_group_sum(sb, scratch);
    if (l == 0) {
      dgamma[(long)n * C + c] = sg;
      dbeta[(long)n * C + c] = sb;
    }
    s1 += sb * ga;
    s2 += sg * ga;
  }
  const float m1 = s1 / count, m2 = s2 / count;
  for (int ch = 0; ch < cpg; ch++) {
    const float ga = gamma[g * cpg + ch];
    const long cb = base + (long)ch * HW;
    for (int i = l; i < HW; i += NLS) {
      const float xh = (x[cb + i] - mean) * rstd;
      dx[cb + i] = rstd * (dx[cb + i] * ga - m1 - xh * m2);
    }
  }
}
