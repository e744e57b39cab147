// The number of CPUs this process may run on (its affinity mask), for the CPU backend's thread count.
#define _GNU_SOURCE
#include <sched.h>
#include "cpupeak.h"

int gpugen_affinity_cpus(void) {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
#endif
  return 0;
}
