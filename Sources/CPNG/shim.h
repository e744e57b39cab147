// libpng (libpng-dev); pkg-config `libpng` adds the include path.
#ifndef GPUGEN_CPNG_SHIM_H
#define GPUGEN_CPNG_SHIM_H
#include <png.h>
#endif
