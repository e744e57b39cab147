// zlib (zlib1g-dev); pkg-config `zlib` adds the include path.
#ifndef GPUGEN_CZLIB_SHIM_H
#define GPUGEN_CZLIB_SHIM_H
#include <zlib.h>
#endif
