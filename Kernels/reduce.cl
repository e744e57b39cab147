// reduce.cl: reductions and softmax over a (outer, R, inner) view of a contiguous tensor.
// Ops: 0 sum, 1 mean, 2 max, 3 variance (with `correction`, 1 = unbiased).

// Work-group size of the row kernels: a power of two.
#ifndef RLS
#define RLS 64
#endif

inline float gg_reduce_combine(float a, float b, int op) { return op == 2 ? fmax(a, b) : a + b; }

// Tree-reduces `v` over the work-group; every work-item gets the result.
inline float gg_group_reduce(float v, int op, __local float* scratch) {
  int l = get_local_id(0);
  scratch[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = RLS / 2; s > 0; s >>= 1) {
    if (l < s) scratch[l] = gg_reduce_combine(scratch[l], scratch[l + s], op);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float r = scratch[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

// One work-group per row of length R (inner == 1). Global size (rows * RLS).
__kernel __attribute__((reqd_work_group_size(RLS, 1, 1)))
void reduce_rows(__global const float* x, __global float* y, int R, int op, int correction) {
  __local float scratch[RLS];
  int row = get_group_id(0), l = get_local_id(0);
  __global const float* p = x + (long)row * R;
  float acc = op == 2 ? -INFINITY : 0.0f;
  for (int j = l; j < R; j += RLS) acc = gg_reduce_combine(acc, p[j], op);
  float total = gg_group_reduce(acc, op, scratch);
  if (op == 3) {
    float mean = total / R;
    float sq = 0.0f;
    for (int j = l; j < R; j += RLS) { float d = p[j] - mean; sq += d * d; }
    float ss = gg_group_reduce(sq, 0, scratch);
    if (l == 0) y[row] = ss / (float)(R - correction);
  } else if (l == 0) {
    y[row] = op == 1 ? total / R : total;
  }
}

// One work-item per (outer, inner) pair, striding over R: coalesced when inner > 1.
__kernel void reduce_axis(__global const float* x, __global float* y, int R, int inner, int op,
                          int correction) {
  int gid = get_global_id(0);
  int o = gid / inner, in = gid % inner;
  __global const float* p = x + (long)o * R * inner + in;
  float acc = op == 2 ? -INFINITY : 0.0f;
  for (int j = 0; j < R; j++) acc = gg_reduce_combine(acc, p[(long)j * inner], op);
  if (op == 3) {
    float mean = acc / R, sq = 0.0f;
    for (int j = 0; j < R; j++) { float d = p[(long)j * inner] - mean; sq += d * d; }
    y[gid] = sq / (float)(R - correction);
  } else {
    y[gid] = op == 1 ? acc / R : acc;
  }
}

// Softmax (or log-softmax) of each row of length R; one work-group per row.
__kernel __attribute__((reqd_work_group_size(RLS, 1, 1)))
void reduce_softmax_rows(__global const float* x, __global float* y, int R, int logMode) {
  __local float scratch[RLS];
  int row = get_group_id(0), l = get_local_id(0);
  __global const float* p = x + (long)row * R;
  __global float* q = y + (long)row * R;
  float m = -INFINITY;
  for (int j = l; j < R; j += RLS) m = fmax(m, p[j]);
  m = gg_group_reduce(m, 2, scratch);
  float s = 0.0f;
  for (int j = l; j < R; j += RLS) s += exp(p[j] - m);
  s = gg_group_reduce(s, 0, scratch);
  float ls = log(s), inv = 1.0f / s;
  for (int j = l; j < R; j += RLS) q[j] = logMode ? p[j] - m - ls : exp(p[j] - m) * inv;
}

// Softmax along an axis with inner > 1; one work-item per (outer, inner).
__kernel void reduce_softmax_axis(__global const float* x, __global float* y, int R, int inner,
                                  int logMode) {
  int gid = get_global_id(0);
  int o = gid / inner, in = gid % inner;
  long base = (long)o * R * inner + in;
  float m = -INFINITY;
  for (int j = 0; j < R; j++) m = fmax(m, x[base + (long)j * inner]);
  float s = 0.0f;
  for (int j = 0; j < R; j++) s += exp(x[base + (long)j * inner] - m);
  float ls = log(s), inv = 1.0f / s;
  for (int j = 0; j < R; j++) {
    float v = x[base + (long)j * inner] - m;
    y[base + (long)j * inner] = logMode ? v - ls : exp(v) * inv;
  }
}
