// bench.cl: FMA-throughput kernel that measures a device's FP32 peak (`gpugen bench peak`).

// Vector width of each FMA chain (16 suits AVX-512 CPUs, 1 or 4 suits GPUs).
#ifndef PEAK_VW
#define PEAK_VW 16
#endif
#define PV_CAT(a, b) a##b
#define PV_T(a, b) PV_CAT(a, b)
#if PEAK_VW == 1
#define peakT float
#else
#define peakT PV_T(float, PEAK_VW)
#endif

// Each work-item runs 8 independent FMA chains of `iters` steps: 16·PEAK_VW·iters flops.
__kernel void bench_fma(__global float* out, int iters, float seed) {
  peakT a0 = (peakT)(seed), a1 = a0 + 1.0f, a2 = a0 + 2.0f, a3 = a0 + 3.0f;
  peakT a4 = a0 + 4.0f, a5 = a0 + 5.0f, a6 = a0 + 6.0f, a7 = a0 + 7.0f;
  const peakT m = (peakT)(0.999999f), c = (peakT)(1e-6f);
  for (int i = 0; i < iters; i++) {
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
  }
  peakT s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
#if PEAK_VW == 1
  out[get_global_id(0)] = s;
#else
  float r = 0.0f;
  for (int j = 0; j < PEAK_VW; j++) r += ((float*)&s)[j];
  out[get_global_id(0)] = r;
#endif
}
