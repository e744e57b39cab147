// FMA-throughput loop for the native CPU backend's FP32 peak (`gpugen bench peak`).
#ifndef GPUGEN_CPUPEAK_H
#define GPUGEN_CPUPEAK_H
#include <stdint.h>

/// Runs `iters` steps of 12 independent FMA chains with the widest vector unit this CPU has
/// (AVX-512, AVX2+FMA, else SSE multiply-add). Returns flops done; `sink` defeats dead-code removal.
double gpugen_fma_loop(int64_t iters, float* sink);

/// The vector ISA gpugen_fma_loop uses on this CPU.
const char* gpugen_fma_isa(void);
/// y[Σ i_d·ys_d] = x[Σ i_d·xs_d] over the index box `shape` (2 ≤ rank ≤ 16), for rows [r0, r1) of its leading
/// rank − 2 axes: the last two axes as plain loops, the leading ones by an odometer.
void gpugen_copy_strided(const float* x, float* y, int rank, const long* shape, const long* xs, const long* ys,
                         long r0, long r1);
/// y ← act(y + b) in place: ReLU (max(v, 0), as `cpuActivate`) when `relu`, else leaky ReLU with slope alpha.
void gpugen_bias_act(float* y, long n, float b, int relu, float alpha);
/// y = x·scale + shift, then SiLU when `silu` (group norm's affine + activation).
void gpugen_affine(const float* x, float* y, long n, float scale, float shift, int silu);
/// y = e^x (Cephes polynomial, ≤ 2 ulp).
void gpugen_exp(const float* x, float* y, long n);
/// y = 1 / (1 + e^−x).
void gpugen_sigmoid(const float* x, float* y, long n);
/// Σ x (16 float partial sums, added in double).
double gpugen_sum(const float* x, long n);
/// Σ (x − mean)².
double gpugen_squared_deviation(const float* x, long n, float mean);
/// Softmax (or log-softmax) of one contiguous row.
void gpugen_softmax_row(const float* x, float* y, long n, int logMode);
/// Direct stride-1 convolution of one image with the weights packed by gpugen_pack_conv_weights, plus `bias`
/// (Cout floats, or NULL) and `res` (a residual shaped like y, or NULL); `xpad` holds
/// gpugen_conv_s1_workspace(C, HO, WO, KH, KW) floats.
void gpugen_conv_s1(const float* x, float* y, int C, int H, int W, int Cout, int KH, int KW, int pt, int pl, int HO,
                    int WO, float* xpad, const float* wpack, const float* bias, const float* res);
/// gpugen_conv_s1 in two halves (one image on several cores): the padded copy of x, then output-channel
/// blocks [b0, b1) (8 channels each) from it.
void gpugen_conv_s1_pad(const float* x, int C, int H, int W, int KH, int KW, int pt, int pl, int HO, int WO,
                        float* xpad);
void gpugen_conv_s1_blocks(const float* xpad, float* y, int C, int Cout, int KH, int KW, int HO, int WO,
                           const float* wpack, const float* bias, const float* res, int b0, int b1);
/// y[i·k + t] = x[i] for i < n, t < k.
void gpugen_repeat(const float* x, float* y, long n, int k);
/// Floats of `xpad` scratch gpugen_conv_s1 needs.
long gpugen_conv_s1_workspace(int C, int HO, int WO, int KH, int KW);
/// dW (Cout, C, KH, KW) += the weight gradient of a stride-1 convolution over B images x (B, C, H, W) and
/// dy (B, Cout, HO, WO); `work` holds gpugen_conv_wgrad_workspace(B, C, Cout, HO, WO, KH, KW) floats.
/// s2d ≠ 0: x is read as its padded space-to-depth (each image (C/4, H, W) seen as (C, HO + KH − 1,
/// WO + KW − 1), channel 4c + 2a + e holding x[c, 2i + a − 1, 2j + e − 1]; pt and pl unused; KH = KW = 2) and
/// dW is written as the 4×4 stride-2 kernel it is the gradient of: (Cout, C/4, 4, 4), dW[o, c, 2t + a, 2u + e].
void gpugen_conv_s1_wgrad(const float* x, const float* dy, float* dw, int B, int C, int H, int W, int Cout, int KH,
                          int KW, int pt, int pl, int HO, int WO, float* work, int s2d);
/// Floats of scratch gpugen_conv_s1_wgrad needs for B images.
long gpugen_conv_wgrad_workspace(int B, int C, int Cout, int HO, int WO, int KH, int KW);
/// Packs blocks [b0, b1) of 8 output channels of w (Cout, K) for gpugen_conv_s1: block b at wpack + 8·K·b.
void gpugen_pack_conv_weights(const float* w, float* wpack, int Cout, int K, int b0, int b1);
/// Group-norm (+ SiLU) backward of one (n, group): dx, and per-channel dgamma = Σ dA·x̂, dbeta = Σ dA.
void gpugen_groupnorm_backward(const float* x, const float* dy, const float* gamma, const float* beta, float* dx,
                               float* dgamma, float* dbeta, long cpg, long hw, float eps, int silu);
/// Batch-norm statistics of one channel, `n` runs of `hw` floats `stride` floats apart: the mean and the biased
/// variance, two passes (16 float lanes per run, runs added in double).
void gpugen_bn_stats(const float* x, long n, long hw, long stride, double* mean, double* var);
/// Batch norm's normalise, affine and activation over one channel's runs: y = act((x − mean)·scale + shift), act 0
/// (none), 1 (ReLU) or 2 (leaky ReLU with slope `alpha`).
void gpugen_bn_apply(const float* x, float* y, long n, long hw, long stride, float mean, float scale, float shift,
                     int act, float alpha);
/// Batch-norm backward of one channel: dA = dy·act′ (from the output y; y NULL when act is 0), *dgamma = Σ dA·x̂ and
/// *dbeta = Σ dA with x̂ = (x − mean)·invstd, then dx = γ·invstd·(dA − Σ dA/M − x̂·Σ dA·x̂/M) over the M = n·hw
/// values when `training`, else dx = γ·invstd·dA.
void gpugen_bn_backward(const float* x, const float* y, const float* dy, float* dx, long n, long hw, long stride,
                        float mean, float invstd, float gamma, int training, int act, float alpha, float* dgamma,
                        float* dbeta);
/// dx = dy · SiLU'(x).
void gpugen_silu_grad(const float* x, const float* dy, float* dx, long n);
/// C[i][j] = Σ_{k0≤k<k1} A[i][k]·B[j][k] (A: M×K, B: N×K, both row-major; C overwritten).
void gpugen_gemm_nt_dots(const float* a, long lda, const float* b, long ldb, float* c, long ldc, long m, long n,
                         long k0, long k1);
/// glibc: serve every allocation of at least `bytes` with mmap (disables the dynamic threshold, so large
/// freed blocks go back to the system instead of staying in the heap). No-op elsewhere.
void gpugen_fix_mmap_threshold(long bytes);
/// Winograd F(4×4, r×r) stride-1 convolution (winograd.c), r = 3 or 2. The weights (K, C, r, r) transformed
/// once per call into U (gpugen_wino_weights_size(C, K, r) floats; output-channel blocks [kb0, kb1) of 32 per
/// call, so cores can share the work), then gpugen_wino_conv runs G images x (G, C, H, W) → y (G, K, HO, WO) +
/// bias (K floats per image at bias + g·biasStride, or NULL) + res (shaped like y, or NULL) for the output tile
/// rows [ty0, ty1) (4 output rows each; all: 0, ⌈HO/4⌉), with gpugen_wino_workspace(G, C, W, WO, K, pl,
/// ty1 − ty0, r) floats of scratch. A block (V and M) stays in L2 with gpugen_wino_group(C, HO, WO, r) whole
/// images per call, or, for one image that is too large, gpugen_wino_rows(C, HO, WO, r) tile rows per call.
/// layout: 0, or bit 0 to read x as its space-to-depth view (each image (C/4, 2H, 2W)), bit 1 to write y
/// depth-to-space (each image (K/4, 2HO, 2WO)); bit 2 shifts either by one pixel (x (C/4, 2H − 2, 2W − 2) read
/// as the space-to-depth of x padded by one; y (K/4, 2HO − 2, 2WO − 2) written with its one-pixel border cut).
long gpugen_wino_weights_size(int C, int K, int r);
void gpugen_wino_weights(const float* w, float* U, int C, int K, int kb0, int kb1, float* scratch, int r);
/// Floats of scratch one gpugen_wino_weights call needs.
long gpugen_wino_weights_scratch(int C, int r);
int gpugen_wino_group(int C, int HO, int WO, int r);
int gpugen_wino_rows(int C, int HO, int WO, int r);
long gpugen_wino_workspace(int G, int C, int W, int WO, int K, int pl, int rows, int r);
void gpugen_wino_conv(const float* x, float* y, int G, int C, int H, int W, int K, int pt, int pl, int HO, int WO,
                      int ty0, int ty1, const float* U, const float* bias, long biasStride, const float* res, float* work,
                      int layout, int r);
/// Adam / AdamW over n floats with CPUBackend.optimizerStep's operations (bit-identical); flags: 1 decoupled
/// decay, 2 L2, 4 the small-w lerp form of the first moment.
void gpugen_adam(float* p, const float* g, float* m, float* v, long n, float scale, float decay, float wd, float w,
                 float wMinus1, float beta2, float c2, float bc2Sqrt, float eps, float negLR, int flags);
/// e ← e − w·(e − p) over n floats.
void gpugen_ema(float* e, const float* p, long n, float w);
/// dx = x > 0 ? dy : (relu ≠ 0 ? 0 : alpha·dy) over n floats (ReLU, leaky ReLU).
void gpugen_relu_grad(const float* x, const float* dy, float* dx, long n, int relu, float alpha);
#endif

/// The CPUs in this process's affinity mask (0 where unknown).
int gpugen_affinity_cpus(void);
