// optim.cl: training updates. One launch per parameter tensor for the optimizer step (SGD, Adam, AdamW) and
// for the EMA update, and a two-stage tree reduction for the sum of squares behind global-norm clipping.
//
// The optimizer steps follow PyTorch's single-tensor algorithms and its CPU kernels' order of float
// operations: `fma` exactly where PyTorch fuses (add with alpha, lerp, addcmul), separate roundings
// elsewhere, so contraction is switched off. The scalars are computed on the host in Double
// (Sources/GPUGenCore/OptimizerUpdate.swift, which documents the formulas) and rounded once to float.

#pragma OPENCL FP_CONTRACT OFF

// Flag bits (OptimizerUpdate.flag*).
#define OPT_L2 1
#define OPT_DECOUPLED 2
#define OPT_MOMENTUM 4
#define OPT_NESTEROV 8
#define OPT_FIRST 16
#define OPT_LERP_SMALL 32

// coef: (gradScale, wd, -, -lr, momentum, 1 - dampening, -, -). One work-item per element; the global size
// is rounded up, so items past `count` return.
__kernel void optim_sgd(__global float* param, __global const float* grad, __global float* buf, int count,
                        float8 coef, int flags) {
  const size_t i = get_global_id(0);
  if (i >= (size_t)count) return;
  const float p = param[i];
  float g = grad[i] * coef.s0;
  if (flags & OPT_L2) g = fma(p, coef.s1, g);
  if (flags & OPT_MOMENTUM) {
    const float b = (flags & OPT_FIRST) ? g : fma(g, coef.s5, buf[i] * coef.s4);
    buf[i] = b;
    g = (flags & OPT_NESTEROV) ? fma(b, coef.s4, g) : b;
  }
  param[i] = fma(g, coef.s3, p);
}

// coef: (gradScale, L2 wd, 1 - lr*wd, -lr/bc1, 1 - beta1, beta2, 1 - beta2, sqrt(bc2)), bc = 1 - beta^t;
// coef2: (eps, (1 - beta1) - 1, -, -). m: exp_avg, v: exp_avg_sq.
__kernel void optim_adam(__global float* param, __global const float* grad, __global float* m,
                         __global float* v, int count, float8 coef, float4 coef2, int flags) {
  const size_t i = get_global_id(0);
  if (i >= (size_t)count) return;
  float p = param[i];
  float g = grad[i] * coef.s0;
  if (flags & OPT_DECOUPLED) p = p * coef.s2;
  if (flags & OPT_L2) g = fma(p, coef.s1, g);
  // torch.lerp(m, g, w): m + w·(g − m) for |w| < 0.5, else g + (w − 1)·(g − m), each one fma.
  const float mOld = m[i];
  const float d = g - mOld;
  const float mNew = (flags & OPT_LERP_SMALL) ? fma(coef.s4, d, mOld) : fma(coef2.s1, d, g);
  const float vNew = fma(coef.s6 * g, g, v[i] * coef.s5);
  m[i] = mNew;
  v[i] = vNew;
  const float denom = sqrt(vNew) / coef.s7 + coef2.s0;
  param[i] = p + (coef.s3 * mNew) / denom;
}

// ema ← ema − w·(ema − param), w = 1 − decay (diffusers EMAModel.step: s.sub_(w * (s - p))).
__kernel void optim_ema(__global float* ema, __global const float* param, int count, float w) {
  const size_t i = get_global_id(0);
  if (i >= (size_t)count) return;
  const float e = ema[i];
  ema[i] = e - w * (e - param[i]);
}

// Work-group size of the sum of squares: a power of two.
#ifndef OLS
#define OLS 64
#endif

// Tree-reduces the work-group's values; work-item 0 gets the sum.
inline float gg_optim_group_sum(float v, __local float* scratch) {
  const int l = get_local_id(0);
  scratch[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = OLS / 2; s > 0; s >>= 1) {
    if (l < s) scratch[l] += scratch[l + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  return scratch[0];
}

// Stage 1: each work-item sums the squares of a grid stride of x, the group sums its items as a tree, and
// group g writes out[offset + g]. With one group this is the whole reduction.
__kernel __attribute__((reqd_work_group_size(OLS, 1, 1)))
void optim_sumsq_partial(__global const float* x, int count, __global float* out, int offset) {
  __local float scratch[OLS];
  const size_t stride = get_global_size(0);
  float acc = 0.0f;
  for (size_t i = get_global_id(0); i < (size_t)count; i += stride) acc = fma(x[i], x[i], acc);
  const float total = gg_optim_group_sum(acc, scratch);
  if (get_local_id(0) == 0) out[offset + get_group_id(0)] = total;
}

// Stage 2: one work-group sums the n partial sums into y[slot].
__kernel __attribute__((reqd_work_group_size(OLS, 1, 1)))
void optim_sumsq_final(__global const float* partial, int n, __global float* y, int slot) {
  __local float scratch[OLS];
  float acc = 0.0f;
  for (int i = get_local_id(0); i < n; i += OLS) acc += partial[i];
  const float total = gg_optim_group_sum(acc, scratch);
  if (get_local_id(0) == 0) y[slot] = total;
}
