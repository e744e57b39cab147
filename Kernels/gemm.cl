// gemm.cl: C = act(alpha · op(A) · op(B) + beta · C + bias), row-major, strided-batched.
// op(A) is M×K, op(B) is K×N. Each work-group stages a KB-deep slice of an MWG×KB tile of A and a
// KB×NWG tile of B in local memory (cache blocking over k, contiguous tiles: no power-of-two
// stride conflicts); each work-item accumulates a TM×TN register block with TN-wide vector FMAs.
// Edge tiles are zero-filled on load and masked on store, so any M, N, K works.

#ifndef TM
#define TM 8   // rows of C per work-item
#endif
#ifndef TN
#define TN 16  // columns of C per work-item: one vector of 2, 4, 8 or 16 floats
#endif
#ifndef WM
#define WM 8   // work-items per work-group along M
#endif
#ifndef WN
#define WN 4   // work-items per work-group along N
#endif
#ifndef KB
#define KB 32  // depth of the k slice staged in local memory (multiple of 4)
#endif

#define MWG (WM * TM)       // rows of C per work-group
#define NWG (WN * TN)       // columns of C per work-group
#define NTHREADS (WM * WN)  // work-items per work-group
#define G_CAT(a, b) a##b
#define G_T(a, b) G_CAT(a, b)
#define floatTN G_T(float, TN)
#define vloadTN G_T(vload, TN)
#define vstoreTN G_T(vstore, TN)

// Copies the `ext`×KB tile starting at (mn0, k0) of a matrix whose element (mn, k) sits at
// src[mn·ld + k] (alongK) or src[k·ld + mn] (!alongK) into dst[k·ext + mn], zero-filling outside.
inline void gemm_load_tile(__local float* dst, __global const float* src, int ld, int limMN, int K,
                           int mn0, int k0, int ext, int alongK, int tid,
                           int nthreads) {
  if (alongK) {
    const int q = KB / 4;
    for (int e = tid; e < ext * q; e += nthreads) {
      int mn = e / q, kk = (e % q) * 4;
      int gmn = mn0 + mn, gk = k0 + kk;
      float4 v = (float4)(0.0f);
      if (gmn < limMN) {
        __global const float* p = src + (long)gmn * ld + gk;
        if (gk + 3 < K) {
          v = vload4(0, p);
        } else {
          if (gk < K) v.s0 = p[0];
          if (gk + 1 < K) v.s1 = p[1];
          if (gk + 2 < K) v.s2 = p[2];
        }
      }
      dst[kk * ext + mn] = v.s0;
      dst[(kk + 1) * ext + mn] = v.s1;
      dst[(kk + 2) * ext + mn] = v.s2;
      dst[(kk + 3) * ext + mn] = v.s3;
    }
  } else {
    const int q = ext / 4;
    for (int e = tid; e < KB * q; e += nthreads) {
      int kk = e / q, mn = (e % q) * 4;
      int gk = k0 + kk, gmn = mn0 + mn;
      float4 v = (float4)(0.0f);
      if (gk < K) {
        __global const float* p = src + (long)gk * ld + gmn;
        if (gmn + 3 < limMN) {
          v = vload4(0, p);
        } else {
          if (gmn < limMN) v.s0 = p[0];
          if (gmn + 1 < limMN) v.s1 = p[1];
          if (gmn + 2 < limMN) v.s2 = p[2];
        }
      }
      vstore4(v, 0, dst + kk * ext + mn);
    }
  }
}

// biasMode: 0 none, 1 one value per column (length N), 2 one value per row (length M).
// act: ACT_* from common.cl, with actAlpha for leaky ReLU. Global size (⌈N/NWG⌉·WN, ⌈M/MWG⌉·WM, batch).
__kernel __attribute__((reqd_work_group_size(WN, WM, 1)))
void gemm_tiled(int M, int N, int K, float alpha, float beta,
                __global const float* A, int lda, long strideA, int transA,
                __global const float* B, int ldb, long strideB, int transB,
                __global float* C, int ldc, long strideC,
                __global const float* bias, int biasMode, int act, float actAlpha) {
  __local float As[KB * MWG];
  __local float Bs[KB * NWG];
  const int tx = get_local_id(0), ty = get_local_id(1);
  const int tid = ty * WN + tx;
  const int n0 = get_group_id(0) * NWG, m0 = get_group_id(1) * MWG;
  const long batch = get_global_id(2);
  A += batch * strideA;
  B += batch * strideB;
  C += batch * strideC;

  floatTN acc[TM];
  for (int i = 0; i < TM; i++) acc[i] = (floatTN)(0.0f);

  for (int k0 = 0; k0 < K; k0 += KB) {
    gemm_load_tile(As, A, lda, M, K, m0, k0, MWG, !transA, tid, NTHREADS);
    gemm_load_tile(Bs, B, ldb, N, K, n0, k0, NWG, transB, tid, NTHREADS);
    barrier(CLK_LOCAL_MEM_FENCE);
    __local const float* ap = As + ty * TM;
    __local const float* bp = Bs + tx * TN;
    for (int kk = 0; kk < KB; kk++) {
      floatTN b = vloadTN(0, bp + kk * NWG);
#pragma unroll
      for (int i = 0; i < TM; i++) acc[i] = fma((floatTN)(ap[kk * MWG + i]), b, acc[i]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }

  for (int i = 0; i < TM; i++) {
    const int gm = m0 + ty * TM + i;
    if (gm >= M) break;
    const float* row = (const float*)&acc[i];
    for (int j = 0; j < TN; j++) {
      const int gn = n0 + tx * TN + j;
      if (gn >= N) break;
      float v = alpha * row[j];
      __global float* c = C + (long)gm * ldc + gn;
      if (beta != 0.0f) v += beta * *c;
      if (biasMode == 1) v += bias[gn];
      else if (biasMode == 2) v += bias[gm];
      *c = gg_activate(v, act, actAlpha);
    }
  }
}

// CPU variant: one work-item per work-group computes the whole MWG×NWG tile, walking its WM×WN
// register blocks in turn. With no barriers, accumulators stay in registers (PoCL would otherwise
// spill them to per-work-item context arrays), and the packed A/B panels and the C tile live in
// local memory (cache blocking over k). Global size (⌈N/NWG⌉, ⌈M/MWG⌉, batch), local (1, 1, 1).
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void gemm_packed(int M, int N, int K, float alpha, float beta,
                 __global const float* A, int lda, long strideA, int transA,
                 __global const float* B, int ldb, long strideB, int transB,
                 __global float* C, int ldc, long strideC,
                 __global const float* bias, int biasMode, int act, float actAlpha) {
  __local float As[KB * MWG];
  __local float Bs[KB * NWG];
  __local float Cs[MWG * NWG];
  const int n0 = get_group_id(0) * NWG, m0 = get_group_id(1) * MWG;
  const long batch = get_group_id(2);
  A += batch * strideA;
  B += batch * strideB;
  C += batch * strideC;
  for (int e = 0; e < MWG * NWG; e += TN) vstoreTN((floatTN)(0.0f), 0, Cs + e);

  // B rows are contiguous along n when B is not transposed: a work-group whose columns are all in
  // range reads them in place (no packing; packing costs as much as the math when M is small).
  const int directB = !transB && n0 + NWG <= N;
  for (int k0 = 0; k0 < K; k0 += KB) {
    gemm_load_tile(As, A, lda, M, K, m0, k0, MWG, !transA, 0, 1);
    if (!directB) gemm_load_tile(Bs, B, ldb, N, K, n0, k0, NWG, transB, 0, 1);
    const int kmax = min(KB, K - k0);
    __global const float* bg = B + (long)k0 * ldb + n0;
    for (int bi = 0; bi < WM; bi++) {
      for (int bj = 0; bj < WN; bj++) {
        __local float* cp = Cs + bi * TM * NWG + bj * TN;
        __local const float* ap = As + bi * TM;
        floatTN acc[TM];
#pragma unroll
        for (int i = 0; i < TM; i++) acc[i] = vloadTN(0, cp + i * NWG);
        if (directB) {
          __global const float* bp = bg + bj * TN;
          for (int kk = 0; kk < kmax; kk++) {
            floatTN b = vloadTN(0, bp + (long)kk * ldb);
#pragma unroll
            for (int i = 0; i < TM; i++) acc[i] = fma((floatTN)(ap[kk * MWG + i]), b, acc[i]);
          }
        } else {
          __local const float* bp = Bs + bj * TN;
          for (int kk = 0; kk < kmax; kk++) {
            floatTN b = vloadTN(0, bp + kk * NWG);
#pragma unroll
            for (int i = 0; i < TM; i++) acc[i] = fma((floatTN)(ap[kk * MWG + i]), b, acc[i]);
          }
        }
#pragma unroll
        for (int i = 0; i < TM; i++) vstoreTN(acc[i], 0, cp + i * NWG);
      }
    }
  }

  const int rows = min(MWG, M - m0), cols = min(NWG, N - n0);
  for (int i = 0; i < rows; i++) {
    const int gm = m0 + i;
    __global float* c = C + (long)gm * ldc + n0;
    for (int j = 0; j < cols; j++) {
      float v = alpha * Cs[i * NWG + j];
      if (beta != 0.0f) v += beta * c[j];
      if (biasMode == 1) v += bias[n0 + j];
      else if (biasMode == 2) v += bias[gm];
      c[j] = gg_activate(v, act, actAlpha);
    }
  }
}
