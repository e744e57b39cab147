// FMA-throughput loop for the native CPU backend's FP32 peak (`gpugen bench peak`).
#ifndef GPUGEN_CPUPEAK_H
#define GPUGEN_CPUPEAK_H
#include <stdint.h>

/// Runs `iters` steps of 12 independent FMA chains with the widest vector unit this CPU has
/// (AVX-512, AVX2+FMA, else SSE multiply-add). Returns flops done; `sink` defeats dead-code removal.
double gpugen_fma_loop(int64_t iters, float* sink);

/// The vector ISA gpugen_fma_loop uses on this CPU.
const char* gpugen_fma_isa(void);
#endif
