// CBLAS from OpenBLAS (libopenblas-dev); pkg-config `openblas` adds the include path.
#ifndef GPUGEN_CBLAS_SHIM_H
#define GPUGEN_CBLAS_SHIM_H
#include <cblas.h>
#endif
