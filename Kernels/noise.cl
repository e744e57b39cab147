// noise.cl: counter-based Gaussian noise (Philox4x32-10 + Box–Muller, from common.cl).
//
// Counter layout: key = (seed low word, seed high word), counter = (block j, sample i, step s, stream).
// Block j of sample i gives the normals of elements 4j..4j+3 of that sample, so the noise of a sample
// depends only on (seed, i, s, stream), never on the batch size, the device or the launch geometry.

// y: (samples, perSample) row-major. One work-item per Philox block (4 elements of one sample).
__kernel void noise_normal(__global float* y, int perSample, int blocksPerSample, uint firstSample,
                           uint seedLo, uint seedHi, uint step, uint stream) {
  size_t gid = get_global_id(0);
  uint i = (uint)(gid / (size_t)blocksPerSample);
  uint j = (uint)(gid % (size_t)blocksPerSample);
  float4 z = gg_normal4(gg_philox4x32_10((uint4)(j, firstSample + i, step, stream), (uint2)(seedLo, seedHi)));
  __global float* p = y + (size_t)i * (size_t)perSample + 4 * (size_t)j;
  int n = perSample - 4 * (int)j;
  if (n >= 4) {
    vstore4(z, 0, p);
  } else {
    p[0] = z.x;
    if (n > 1) p[1] = z.y;
    if (n > 2) p[2] = z.z;
  }
}

// Test kernel: the raw Philox4x32-10 output. in: (count, 6) words (counter x, y, z, w, key x, y);
// out: (count, 4) words.
__kernel void noise_philox_raw(__global const uint* in, __global uint* out) {
  size_t g = get_global_id(0);
  __global const uint* q = in + 6 * g;
  vstore4(gg_philox4x32_10((uint4)(q[0], q[1], q[2], q[3]), (uint2)(q[4], q[5])), g, out);
}

// Test kernel: Box–Muller applied to given words. in: (count, 4) words; out: (count, 4) normals.
__kernel void noise_box_muller_raw(__global const uint* in, __global float* out) {
  size_t g = get_global_id(0);
  vstore4(gg_normal4(vload4(g, in)), g, out);
}

// y: (samples, perSample) row-major uniforms in (0, 1]: gg_uniform of the four words of block j of sample i
// (the same counters as noise_normal). One work-item per Philox block.
__kernel void noise_uniform(__global float* y, int perSample, int blocksPerSample, uint firstSample,
                            uint seedLo, uint seedHi, uint step, uint stream) {
  size_t gid = get_global_id(0);
  uint i = (uint)(gid / (size_t)blocksPerSample);
  uint j = (uint)(gid % (size_t)blocksPerSample);
  uint4 w = gg_philox4x32_10((uint4)(j, firstSample + i, step, stream), (uint2)(seedLo, seedHi));
  float4 u = (float4)(gg_uniform(w.x), gg_uniform(w.y), gg_uniform(w.z), gg_uniform(w.w));
  __global float* p = y + (size_t)i * (size_t)perSample + 4 * (size_t)j;
  int n = perSample - 4 * (int)j;
  if (n >= 4) {
    vstore4(u, 0, p);
  } else {
    p[0] = u.x;
    if (n > 1) p[1] = u.y;
    if (n > 2) p[2] = u.z;
  }
}
