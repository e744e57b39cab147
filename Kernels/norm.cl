// norm.cl: group normalisation over (N, C, HW) with per-channel affine and an optional fused SiLU; batch
// normalisation per channel (training statistics, evaluation, backward) with a fused ReLU or leaky ReLU.

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

// ---- Batch normalisation over (N, C, HW), per channel (the channel's N runs of HW floats, C·HW apart). ----
// `act` is ACT_NONE, ACT_RELU or ACT_LEAKY_RELU (slope `alpha`); its derivative is read from the output.
// Flags: BN_GAMMA / BN_BETA (affine given), BN_RUNNING (update the running statistics), BN_TRAINING (backward
// of a batch-statistics forward).
#define BN_GAMMA 1
#define BN_BETA 2
#define BN_RUNNING 4
#define BN_TRAINING 8

inline float bn_act(float v, int act, float alpha) {
  return act == ACT_RELU ? (v > 0.0f ? v : 0.0f) : (act == ACT_LEAKY_RELU ? (v >= 0.0f ? v : alpha * v) : v);
}

// dA = dy·act′: 1 where the output is positive, else 0 (ReLU) or the slope (leaky ReLU).
inline float bn_act_grad(float d, float y, int act, float slope) {
  return act == ACT_NONE || y > 0.0f ? d : d * slope;
}

// The running statistics' update (PyTorch's: momentum, the unbiased variance), by one work-item.
inline void bn_update_running(__global float* rmean, __global float* rvar, int c, float mean, float var, int M,
                              float momentum) {
  const float unbias = (float)M / (float)max(M - 1, 1), keep = 1.0f - momentum;
  rmean[c] = rmean[c] * keep + mean * momentum;
  rvar[c] = rvar[c] * keep + var * unbias * momentum;
}

// Training forward: one work-group per channel. Two passes for the statistics (mean, then centred variance),
// a third writes y; work-item 0 stores the mean and 1/√(var + eps) and updates the running statistics.
__kernel __attribute__((reqd_work_group_size(NLS, 1, 1)))
void bn_train(__global const float* x, __global float* y, __global const float* gamma, __global const float* beta,
              __global float* mean_out, __global float* invstd_out, __global float* rmean, __global float* rvar,
              int flags, float momentum, int N, int C, int HW, float eps, int act, float alpha) {
  __local float scratch[NLS];
  const int c = get_group_id(0), l = get_local_id(0);
  const int M = N * HW;
  float s = 0.0f;
  for (int j = l; j < M; j += NLS) {
    const int n = j / HW;
    s += x[((long)n * C + c) * HW + (j - n * HW)];
  }
  const float m = gn_group_sum(s, scratch) / M;
  float q = 0.0f;
  for (int j = l; j < M; j += NLS) {
    const int n = j / HW;
    const float d = x[((long)n * C + c) * HW + (j - n * HW)] - m;
    q += d * d;
  }
  const float var = gn_group_sum(q, scratch) / M;
  const float rstd = rsqrt(var + eps);
  const float scale = rstd * ((flags & BN_GAMMA) ? gamma[c] : 1.0f), shift = (flags & BN_BETA) ? beta[c] : 0.0f;
  for (int j = l; j < M; j += NLS) {
    const int n = j / HW;
    const long i = ((long)n * C + c) * HW + (j - n * HW);
    y[i] = bn_act((x[i] - m) * scale + shift, act, alpha);
  }
  if (l == 0) {
    mean_out[c] = m;
    invstd_out[c] = rstd;
    if (flags & BN_RUNNING) bn_update_running(rmean, rvar, c, m, var, M, momentum);
  }
}

// Evaluation forward: y = act((x − running mean)/√(running var + eps)·γ + β). Global size (HW, N·C).
__kernel void bn_infer(__global const float* x, __global float* y, __global const float* gamma,
                       __global const float* beta, __global const float* rmean, __global const float* rvar,
                       int flags, int C, int HW, float eps, int act, float alpha) {
  const int nc = get_global_id(1), c = nc % C;
  const long i = (long)nc * HW + get_global_id(0);
  const float scale = rsqrt(rvar[c] + eps) * ((flags & BN_GAMMA) ? gamma[c] : 1.0f);
  const float shift = (flags & BN_BETA) ? beta[c] : 0.0f;
  y[i] = bn_act((x[i] - rmean[c]) * scale + shift, act, alpha);
}

// Backward: one work-group per channel. Σ dA and Σ dA·(x − mean), then dx = k·(dA − Σ dA/M) + q·(x − mean)
// with k = γ·invstd and q = −k·invstd·Σ dA·x̂/M for a training forward (else dx = k·dA).
__kernel __attribute__((reqd_work_group_size(NLS, 1, 1)))
void bn_backward(__global const float* x, __global const float* y, __global const float* dy,
                 __global const float* gamma, __global const float* mean, __global const float* invstd,
                 __global float* dx, __global float* dgamma, __global float* dbeta, int flags, int N, int C, int HW,
                 int act, float alpha) {
  __local float scratch[NLS];
  const int c = get_group_id(0), l = get_local_id(0);
  const int M = N * HW;
  const float m = mean[c], rstd = invstd[c], slope = act == ACT_LEAKY_RELU ? alpha : 0.0f;
  float sb = 0.0f, sg = 0.0f;
  for (int j = l; j < M; j += NLS) {
    const int n = j / HW;
    const long i = ((long)n * C + c) * HW + (j - n * HW);
    const float d = bn_act_grad(dy[i], act == ACT_NONE ? 0.0f : y[i], act, slope);
    sb += d;
    sg += d * (x[i] - m);
  }
  sb = gn_group_sum(sb, scratch);
  sg = gn_group_sum(sg, scratch) * rstd;
  if (l == 0) {
    dgamma[c] = sg;
    dbeta[c] = sb;
  }
  const float k = ((flags & BN_GAMMA) ? gamma[c] : 1.0f) * rstd;
  const float q = (flags & BN_TRAINING) ? -k * rstd * sg / M : 0.0f;
  const float mb = (flags & BN_TRAINING) ? sb / M : 0.0f;
  for (int j = l; j < M; j += NLS) {
    const int n = j / HW;
    const long i = ((long)n * C + c) * HW + (j - n * HW);
    dx[i] = k * (bn_act_grad(dy[i], act == ACT_NONE ? 0.0f : y[i], act, slope) - mb) + q * (x[i] - m);
  }
}

// CPU devices (PoCL): one work-item per channel, 16 lanes at a time along each run (as norm_group_vec).
inline float bn_hsum16(float16 v) {
  const float8 a = v.lo + v.hi;
  const float4 b = a.lo + a.hi;
  return (b.x + b.y) + (b.z + b.w);
}

__kernel void bn_train_vec(__global const float* x, __global float* y, __global const float* gamma,
                           __global const float* beta, __global float* mean_out, __global float* invstd_out,
                           __global float* rmean, __global float* rvar, int flags, float momentum, int N, int C,
                           int HW, float eps, int act, float alpha) {
  const int c = get_global_id(0);
  const int M = N * HW, hv = HW / 16 * 16;
  float s = 0.0f;
  for (int n = 0; n < N; n++) {
    __global const float* p = x + ((long)n * C + c) * HW;
    float16 s16 = (float16)(0.0f);
    for (int i = 0; i < hv; i += 16) s16 += vload16(0, p + i);
    float t = bn_hsum16(s16);
    for (int i = hv; i < HW; i++) t += p[i];
    s += t;
  }
  const float m = s / M;
  float q = 0.0f;
  for (int n = 0; n < N; n++) {
    __global const float* p = x + ((long)n * C + c) * HW;
    float16 q16 = (float16)(0.0f);
    for (int i = 0; i < hv; i += 16) {
      const float16 d = vload16(0, p + i) - m;
      q16 += d * d;
    }
    float t = bn_hsum16(q16);
    for (int i = hv; i < HW; i++) {
      const float d = p[i] - m;
      t += d * d;
    }
    q += t;
  }
  const float var = q / M;
  const float rstd = rsqrt(var + eps);
  const float scale = rstd * ((flags & BN_GAMMA) ? gamma[c] : 1.0f), shift = (flags & BN_BETA) ? beta[c] : 0.0f;
  const float slope = act == ACT_LEAKY_RELU ? alpha : 0.0f;
  for (int n = 0; n < N; n++) {
    const long base = ((long)n * C + c) * HW;
    __global const float* p = x + base;
    __global float* o = y + base;
    for (int i = 0; i < hv; i += 16) {
      float16 v = (vload16(0, p + i) - m) * scale + shift;
      if (act != ACT_NONE) v = select(v * slope, v, isgreaterequal(v, (float16)(0.0f)));
      vstore16(v, 0, o + i);
    }
    for (int i = hv; i < HW; i++) y[base + i] = bn_act((p[i] - m) * scale + shift, act, alpha);
  }
  mean_out[c] = m;
  invstd_out[c] = rstd;
  if (flags & BN_RUNNING) bn_update_running(rmean, rvar, c, m, var, M, momentum);
}

// Evaluation forward on CPU devices: one work-item per (n, c) run, 16 lanes at a time. Global size N·C.
__kernel void bn_infer_vec(__global const float* x, __global float* y, __global const float* gamma,
                           __global const float* beta, __global const float* rmean, __global const float* rvar,
                           int flags, int C, int HW, float eps, int act, float alpha) {
  const int nc = get_global_id(0), c = nc % C, hv = HW / 16 * 16;
  const long base = (long)nc * HW;
  const float m = rmean[c], scale = rsqrt(rvar[c] + eps) * ((flags & BN_GAMMA) ? gamma[c] : 1.0f);
  const float shift = (flags & BN_BETA) ? beta[c] : 0.0f, slope = act == ACT_LEAKY_RELU ? alpha : 0.0f;
  for (int i = 0; i < hv; i += 16) {
    float16 v = (vload16(0, x + base + i) - m) * scale + shift;
    if (act != ACT_NONE) v = select(v * slope, v, isgreaterequal(v, (float16)(0.0f)));
    vstore16(v, 0, y + base + i);
  }
  for (int i = hv; i < HW; i++) y[base + i] = bn_act((x[base + i] - m) * scale + shift, act, alpha);
}

__kernel void bn_backward_vec(__global const float* x, __global const float* y, __global const float* dy,
                              __global const float* gamma, __global const float* mean,
                              __global const float* invstd, __global float* dx, __global float* dgamma,
                              __global float* dbeta, int flags, int N, int C, int HW, int act, float alpha) {
  const int c = get_global_id(0);
  const int M = N * HW, hv = HW / 16 * 16;
  const float m = mean[c], rstd = invstd[c], slope = act == ACT_LEAKY_RELU ? alpha : 0.0f;
  float sb = 0.0f, sg = 0.0f;
  for (int n = 0; n < N; n++) {
    const long base = ((long)n * C + c) * HW;
    float16 b16 = (float16)(0.0f), g16 = (float16)(0.0f);
    for (int i = 0; i < hv; i += 16) {
      float16 d = vload16(0, dy + base + i);
      if (act != ACT_NONE) d = select(d * slope, d, isgreater(vload16(0, y + base + i), (float16)(0.0f)));
      b16 += d;
      g16 += d * (vload16(0, x + base + i) - m);
    }
    float tb = bn_hsum16(b16), tg = bn_hsum16(g16);
    for (int i = hv; i < HW; i++) {
      const float d = bn_act_grad(dy[base + i], act == ACT_NONE ? 0.0f : y[base + i], act, slope);
      tb += d;
      tg += d * (x[base + i] - m);
    }
    sb += tb;
    sg += tg;
  }
  sg *= rstd;
  dgamma[c] = sg;
  dbeta[c] = sb;
  const float k = ((flags & BN_GAMMA) ? gamma[c] : 1.0f) * rstd;
  const float q = (flags & BN_TRAINING) ? -k * rstd * sg / M : 0.0f;
  const float mb = (flags & BN_TRAINING) ? sb / M : 0.0f;
  for (int n = 0; n < N; n++) {
    const long base = ((long)n * C + c) * HW;
    for (int i = 0; i < hv; i += 16) {
      float16 d = vload16(0, dy + base + i);
      if (act != ACT_NONE) d = select(d * slope, d, isgreater(vload16(0, y + base + i), (float16)(0.0f)));
      vstore16(k * (d - mb) + q * (vload16(0, x + base + i) - m), 0, dx + base + i);
    }
    for (int i = hv; i < HW; i++) {
      const float d = bn_act_grad(dy[base + i], act == ACT_NONE ? 0.0f : y[base + i], act, slope);
      dx[base + i] = k * (d - mb) + q * (x[base + i] - m);
    }
  }
}
