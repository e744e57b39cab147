// elementwise.cl: unary, binary (contiguous, scalar, broadcast), clamp, where, fill, strided copy.
// Kernel names: elementwise_<op>, binary_<op>_{contig,scalar,bcast}. The one-dimensional kernels take their
// element count `n` last: the host pads the global size to a multiple of the work-group size it picks.

#define UNARY(NAME, EXPR)                                                            \
  __kernel void elementwise_##NAME(__global const float* x, __global float* y,       \
                                   float alpha, int n) {                             \
    size_t i = get_global_id(0);                                                     \
    if (i >= (size_t)n) return;                                                      \
    float v = x[i];                                                                  \
    y[i] = (EXPR);                                                                   \
  }

UNARY(neg, -v)
UNARY(abs, fabs(v))
UNARY(exp, exp(v))
UNARY(log, log(v))
UNARY(sqrt, sqrt(v))
UNARY(rsqrt, rsqrt(v))
UNARY(sin, sin(v))
UNARY(cos, cos(v))
UNARY(tanh, tanh(v))
UNARY(sigmoid, gg_sigmoid(v))
UNARY(relu, fmax(v, 0.0f))
UNARY(leaky_relu, v >= 0.0f ? v : alpha * v)
UNARY(silu, v * gg_sigmoid(v))
UNARY(gelu, gg_gelu(v))

#define BINARY(NAME, EXPR)                                                           \
  __kernel void binary_##NAME##_contig(__global const float* a,                      \
                                      __global const float* b, __global float* y,    \
                                      int n) {                                       \
    size_t i = get_global_id(0);                                                     \
    if (i >= (size_t)n) return;                                                      \
    float p = a[i], q = b[i];                                                        \
    y[i] = (EXPR);                                                                   \
  }                                                                                  \
  __kernel void binary_##NAME##_scalar(__global const float* a, float s,             \
                                      int scalarFirst, __global float* y, int n) {   \
    size_t i = get_global_id(0);                                                     \
    if (i >= (size_t)n) return;                                                      \
    float p = scalarFirst ? s : a[i], q = scalarFirst ? a[i] : s;                    \
    y[i] = (EXPR);                                                                   \
  }                                                                                  \
  /* Global size (n0, n1, outer): the two innermost axes come from the NDRange, only the outer    \
     index is decomposed (outerRank axes in shape/sa/sb); y is contiguous. */                    \
  __kernel void binary_##NAME##_bcast(__global const float* a,                       \
                                     __global const float* b, __global float* y,     \
                                     int outerRank, int16 shape, int16 sa, int16 sb, \
                                     int sa1, int sb1, int sa0, int sb0) {           \
    const int i0 = get_global_id(0), i1 = get_global_id(1);                          \
    const long o = get_global_id(2);                                                 \
    const long n0 = get_global_size(0), n1 = get_global_size(1);                    \
    const long ao = gg_offset(o, outerRank, shape, sa) + (long)i1 * sa1 + (long)i0 * sa0; \
    const long bo = gg_offset(o, outerRank, shape, sb) + (long)i1 * sb1 + (long)i0 * sb0; \
    float p = a[ao], q = b[bo];                                                      \
    y[(o * n1 + i1) * n0 + i0] = (EXPR);                                             \
  }

BINARY(add, p + q)
BINARY(sub, p - q)
BINARY(mul, p * q)
BINARY(div, p / q)
BINARY(pow, pow(p, q))
BINARY(maximum, fmax(p, q))
BINARY(minimum, fmin(p, q))

__kernel void elementwise_clamp(__global const float* x, __global float* y, float lo, float hi, int n) {
  size_t i = get_global_id(0);
  if (i >= (size_t)n) return;
  y[i] = fmin(fmax(x[i], lo), hi);
}

// y = cond != 0 ? a : b, all three broadcast to y's shape.
__kernel void elementwise_where(__global const float* c, __global const float* a,
                                __global const float* b, __global float* y, int rank,
                                int16 shape, int16 sc, int16 sa, int16 sb, int n) {
  size_t i = get_global_id(0);
  if (i >= (size_t)n) return;
  y[i] = c[gg_offset(i, rank, shape, sc)] != 0.0f ? a[gg_offset(i, rank, shape, sa)]
                                                  : b[gg_offset(i, rank, shape, sb)];
}

__kernel void elementwise_fill(__global float* y, float value, int n) {
  size_t i = get_global_id(0);
  if (i < (size_t)n) y[i] = value;
}

// y[yoff + Σ idx·ys] = x[xoff + Σ idx·xs] over every index of `shape`: permute, slice, concat.
// Global size (shape[rank-1], shape[rank-2], product of the outer axes): only the outer index is
// decomposed, the two innermost axes come straight from the NDRange. `shape`, `xs`, `ys` hold the
// outer axes (rank - 2 of them); (n1, xs1, ys1) and (n0, xs0, ys0) the two innermost.
__kernel void elementwise_copy_strided(__global const float* x, __global float* y, int outerRank,
                                       int16 shape, int16 xs, int xoff, int16 ys, int yoff,
                                       int xs1, int ys1, int xs0, int ys0) {
  const int i0 = get_global_id(0), i1 = get_global_id(1);
  const long o = get_global_id(2);
  const long xo = xoff + gg_offset(o, outerRank, shape, xs) + (long)i1 * xs1 + (long)i0 * xs0;
  const long yo = yoff + gg_offset(o, outerRank, shape, ys) + (long)i1 * ys1 + (long)i0 * ys0;
  y[yo] = x[xo];
}

// The same copy for CPU devices when the innermost axis is short (nearest upsampling's [.., H, 2, W, 2],
// attention's head permutes): one work-item per index of the outer axes copies the last three axes
// (n2 × n1 × n0) with nested loops, so that neither tiny work-groups nor per-element index divisions
// dominate. Global size: the outer axes' element count (< 2³¹).
__kernel void elementwise_copy_runs(__global const float* x, __global float* y, int outerRank, int16 shape,
                                    int16 xs, int xoff, int16 ys, int yoff, int n2, int xs2, int ys2, int n1,
                                    int xs1, int ys1, int n0, int xs0, int ys0) {
  int idx = (int)get_global_id(0);
  long xo = xoff, yo = yoff;
  for (int d = outerRank - 1; d >= 0; d--) {
    const int n = gg_at(shape, d), q = idx / n, r = idx - q * n;
    xo += (long)r * gg_at(xs, d);
    yo += (long)r * gg_at(ys, d);
    idx = q;
  }
  for (int i2 = 0; i2 < n2; i2++)
    for (int i1 = 0; i1 < n1; i1++)
      for (int i0 = 0; i0 < n0; i0++)
        y[yo + (long)i2 * ys2 + (long)i1 * ys1 + (long)i0 * ys0] = x[xo + (long)i2 * xs2 + (long)i1 * xs1 + (long)i0 * xs0];
}

// Gradients of the unary ops: dx = dy · f'(x). Kernel names: grad_<op>.
#define UNARY_GRAD(NAME, EXPR)                                                       \
  __kernel void grad_##NAME(__global const float* x, __global const float* dy,       \
                            __global float* dx, float alpha, int n) {                \
    size_t i = get_global_id(0);                                                     \
    if (i >= (size_t)n) return;                                                      \
    float v = x[i], g = dy[i];                                                       \
    dx[i] = (EXPR);                                                                  \
  }

UNARY_GRAD(neg, -g)
UNARY_GRAD(abs, v > 0.0f ? g : (v < 0.0f ? -g : 0.0f))
UNARY_GRAD(exp, g * exp(v))
UNARY_GRAD(log, g / v)
UNARY_GRAD(sqrt, g * 0.5f / sqrt(v))
UNARY_GRAD(rsqrt, -0.5f * g / (v * sqrt(v)))
UNARY_GRAD(sin, g * cos(v))
UNARY_GRAD(cos, -g * sin(v))
UNARY_GRAD(tanh, g * (1.0f - tanh(v) * tanh(v)))
UNARY_GRAD(sigmoid, g * gg_sigmoid(v) * (1.0f - gg_sigmoid(v)))
UNARY_GRAD(relu, v > 0.0f ? g : 0.0f)
UNARY_GRAD(leaky_relu, v > 0.0f ? g : alpha * g)
UNARY_GRAD(silu, g * gg_sigmoid(v) * (1.0f + v * (1.0f - gg_sigmoid(v))))
UNARY_GRAD(gelu, g * (0.5f * (1.0f + erf(v * 0.70710678118654752f)) +
                      v * exp(-0.5f * v * v) * 0.39894228040143268f))

__kernel void grad_clamp(__global const float* x, __global const float* dy, __global float* dx,
                         float lo, float hi, int n) {
  size_t i = get_global_id(0);
  if (i >= (size_t)n) return;
  dx[i] = (x[i] >= lo && x[i] <= hi) ? dy[i] : 0.0f;
}
