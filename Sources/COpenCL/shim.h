// Target the OpenCL 1.2 API so the same host code runs on PoCL, NVIDIA, AMD, Intel and Apple.
#ifndef GPUGEN_COPENCL_SHIM_H
#define GPUGEN_COPENCL_SHIM_H
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#endif
