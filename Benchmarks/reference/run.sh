#!/usr/bin/env bash
# Build and run the CLBlast SGEMM reference benchmark.
#   Benchmarks/reference/run.sh [--json] [n ...]     (default n: 1024 2048)
#   REF_DEVICE=<i>   flat device index over all OpenCL platforms (default 0)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${REF_BUILD_DIR:-/tmp/gpugen-reference-build}"

if [ ! -f /usr/include/clblast_c.h ]; then
    echo "run.sh: installing libclblast-dev" >&2
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get install -y libclblast-dev >&2
fi

mkdir -p "$build"
gcc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra \
    -o "$build/clblast_sgemm" "$here/clblast_sgemm.c" \
    -lclblast -lOpenCL -lm

exec "$build/clblast_sgemm" "$@"
