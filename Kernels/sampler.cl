// sampler.cl: one fused kernel per sampler update (DDPM, DDIM, DPM-Solver++ 2M, Euler, Euler
// ancestral, Heun). Every update is a per-step choice of the scalar coefficients below, computed on the
// host in Double from the schedule:
//
//   x0  = clip(ax·x + am·m)                 predicted clean sample (m is the model output); with dynamic
//                                           thresholding clamp(ax·x + am·m, −s, s)/s, s = scales[sample]
//   eps = ex·x + em·m                       predicted noise (from the unclipped x0, as diffusers does)
//   out = cx·x + c0·x0 + ce·eps + cp·prev + cq·prev2 + cr·prev3 + cz·z
//   aux = dx·x + d0·x0 + de·eps             a second output (multistep history, Heun's half-step)
//
// prev, prev2 and prev3 are the last three aux outputs, newest first (DPM++ 3M and UniPC read all three).
//
// z is fresh noise from Philox4x32-10 with the counter layout of noise.cl, so the noise of sample i at
// step s depends only on (seed, i, s) and matches `noise_normal` with the same arguments.

// coef: (ax, am, ex, em, cx, c0, ce, cp); coef2: (cz, dx, d0, clipRange, cq, cr, de, unused). flags: bit 0
// clip, bit 1 prev, bit 2 noise, bit 3 aux, bit 4 prev2, bit 5 prev3, bit 6 threshold (scales: one s per
// sample, computed on the host; replaces the clip). One work-item per Philox block: 4 consecutive elements of one sample.
__kernel void sampler_step(__global const float* x, __global const float* m, __global const float* prev,
                           __global const float* prev2, __global const float* prev3, __global float* out, __global float* aux,
                           __global const float* scales, int perSample, int blocksPerSample,
                           uint firstSample, uint seedLo, uint seedHi, uint step, uint stream, float8 coef,
                           float8 coef2, int flags) {
  const size_t gid = get_global_id(0);
  const uint i = (uint)(gid / (size_t)blocksPerSample), j = (uint)(gid % (size_t)blocksPerSample);
  float4 z = (float4)(0.0f);
  if (flags & 4) {
    z = gg_normal4(gg_philox4x32_10((uint4)(j, firstSample + i, step, stream), (uint2)(seedLo, seedHi)));
  }
  const float zs[4] = {z.x, z.y, z.z, z.w};
  const size_t base = (size_t)i * (size_t)perSample + 4 * (size_t)j;
  const int n = min(4, perSample - 4 * (int)j);
  for (int e = 0; e < n; e++) {
    const size_t k = base + e;
    const float xv = x[k], mv = m[k];
    float x0 = coef.s0 * xv + coef.s1 * mv;
    if (flags & 64) {
      const float s = scales[i];
      x0 = clamp(x0, -s, s) / s;
    } else if (flags & 1) {
      x0 = clamp(x0, -coef2.w, coef2.w);
    }
    const float eps = coef.s2 * xv + coef.s3 * mv;
    float o = coef.s4 * xv + coef.s5 * x0 + coef.s6 * eps + coef2.s0 * zs[e];
    if (flags & 2) o += coef.s7 * prev[k];
    if (flags & 16) o += coef2.s4 * prev2[k];
    if (flags & 32) o += coef2.s5 * prev3[k];
    out[k] = o;
    if (flags & 8) aux[k] = coef2.s1 * xv + coef2.s2 * x0 + coef2.s6 * eps;
  }
}
