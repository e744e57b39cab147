#!/usr/bin/env bash
# Runs the libFuzzer targets of Fuzz/ (every parser of untrusted bytes) for SECONDS each, under AddressSanitizer,
# starting from the seed corpus in Fuzz/corpus/TARGET (copied; the repo's corpus is not modified). A crash, a trap,
# a hang (> 10 s on one input), a single allocation over 1 GiB or an RSS over 2 GiB is a finding: its input is
# saved under fuzz-findings/TARGET/ and the script exits 1. Prints one line per target: executions, exec/s,
# coverage (edges) and features, as libFuzzer counts them.
#   Benchmarks/fuzz.sh SECONDS [TARGET…] [--json FILE]
#   targets: safetensors json unet-config scheduler-config family-config npy idx png (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
all=(safetensors json unet-config scheduler-config family-config npy idx png)
[ $# -ge 1 ] || { echo "usage: Benchmarks/fuzz.sh SECONDS [TARGET…] [--json FILE]" >&2; exit 2; }
seconds=$1; shift
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 1 ] || { echo "SECONDS must be a positive integer" >&2; exit 2; }
targets=(); json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=$2; shift 2 ;;
    *) [[ " ${all[*]} " == *" $1 "* ]] || { echo "unknown target $1 (choose from ${all[*]})" >&2; exit 2; }
       targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
echo "building the fuzz targets (-sanitize=fuzzer,address)…" >&2
GPUGEN_FUZZ=1 swift build --product gpugen-fuzz -Xswiftc -sanitize=fuzzer,address --scratch-path .build-fuzz \
  2>&1 | grep -v "Cannot export local symbol" | grep -E "error|warning: |Compiling|Build" | tail -3 >&2
bin=.build-fuzz/debug/gpugen-fuzz
[ -x "$bin" ] || { echo "the fuzz build failed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
results=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "fuzz-findings/$t"
  cp -r "Fuzz/corpus/$t/." "$work/$t/"
  log="$work/$t.log"
  set +e
  GPUGEN_FUZZ_TARGET=$t SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 "$bin" "$work/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -detect_leaks=0 \
    -print_final_stats=1 -artifact_prefix="fuzz-findings/$t/" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  if [ "$rc" -eq 0 ]; then verdict="no finding"; rmdir "fuzz-findings/$t" 2>/dev/null || true
  else
    verdict="FINDING (exit $rc): $(ls fuzz-findings/$t | head -3 | tr '\n' ' ')"
    status=1
    grep -E "gpugen-fuzz finding|ERROR: |Fatal error|SUMMARY" "$log" | head -5 >&2 || true
    cp "$log" "fuzz-findings/$t/fuzz.log"
  fi
  printf '%-17s %5ss  %10s runs  %7s exec/s  cov %6s  ft %6s  %s\n' "$t" "$seconds" "${runs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$verdict"
  results+=("{\"target\":\"$t\",\"seconds\":$seconds,\"runs\":${runs:-0},\"exec_per_s\":${rate:-0},\"coverage\":${cov:-0},\"features\":${ft:-0},\"finding\":$([ "$rc" -eq 0 ] && echo false || echo true)}")
done
rmdir fuzz-findings 2>/dev/null || true
if [ -n "$json" ]; then (IFS=,; echo "[${results[*]}]") >"$json"; fi
exit $status
