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

// One work-group per (n, group). Two passes (mean, then centred variance) for accuracy.
__kernel __attribute__((reqd_work_group_size(NLS, 1, 1)))
void norm_group(__global const float* x, __global float* y, __global const float* gamma,
                __global const float* beta, int C, int HW, int G, float eps, int silu) {
  __local float scratch[NLS];
  const int ng = get_group_id(0), l = get_local_id(0);
  const int n = ng / G, g = ng % G, cpg = C / G;
  const long base = ((long)n * C + (long)g * cpg) * HW;
  const int count = cpg * HW;
  float s = 0.0f;
  for (int i = l; i < count; i += NLS) s += x[base + i];
  const float mean = gn_group_sum(s, scratch) / count;
  float q = 0.0f;
  for (int i = l; i < count; i += NLS) { float d = x[base + i] - mean; q += d * d; }
  const float rstd = rsqrt(gn_group_sum(q, scratch) / count + eps);
  for (int i = l; i < count; i += NLS) {
    const int c = g * cpg + i / HW;
    float v = (x[base + i] - mean) * rstd * gamma[c] + beta[c];
    if (silu) v = v / (1.0f + exp(-v));
    y[base + i] = v;
  }
}
