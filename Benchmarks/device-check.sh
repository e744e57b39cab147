#!/usr/bin/env bash
# Checks a machine with an OpenCL GPU and no Swift toolchain, given a gpugen binary built elsewhere
# (`swift build -c release --static-swift-stdlib`): the OpenCL ICD loader and vendor ICDs (what is missing and
# which package or file provides it), then `gpugen devices`, `gpugen selftest`, `bench peak`, `bench gemm` up to
# n = 4096 with the percentage of peak, `bench unet` (per-evaluation times and the reference config's DPM++
# sampling rate in images/s) and, when PyTorch with CUDA can be imported, the same config in PyTorch. Writes all
# of it as one JSON object.
#
#   Benchmarks/device-check.sh BINARY [--device SPEC] [--out FILE] [--quick]
#
#   --device SPEC  the device to check (default gpu); CI dry-runs the script on PoCL with --device opencl:0
#   --out FILE     the JSON (default device-check.json)
#   --quick        small sizes and short runs (a dry run of the script, not a measurement)
#
# Exit status: 0 when every step ran and the selftest passed, 1 when a step or the selftest failed, 2 for bad
# arguments, an OpenCL installation that cannot work (no loader, or no ICD that points at an existing library)
# or a shared library the binary needs (OpenBLAS, libpng, zlib) that is missing.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="" device=gpu out=device-check.json quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=${2:?--device needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --quick) quick=1; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "device-check: error: unknown option $1" >&2; exit 2 ;;
    *) if [ -z "$bin" ]; then bin=$1; shift; else echo "device-check: error: unexpected argument $1" >&2; exit 2; fi ;;
  esac
done
if [ -z "$bin" ]; then echo "usage: Benchmarks/device-check.sh BINARY [--device SPEC] [--out FILE] [--quick]" >&2; exit 2; fi
if [ ! -x "$bin" ]; then echo "device-check: error: $bin is not an executable gpugen binary" >&2; exit 2; fi

problems=()   # what is wrong with the OpenCL installation (each line says what provides the fix)
notes=()
# Whether a shared library can be found: an absolute path that exists, or a name the dynamic linker knows.
have_lib() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    *)
      ldconfig -p 2>/dev/null | grep -F -- "$1" >/dev/null && return 0
      for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib /usr/lib/aarch64-linux-gnu; do
        [ -e "$d/$1" ] && return 0
      done
      return 1 ;;
  esac
}
provider() {
  case "$1" in
    *nvidia*) echo "NVIDIA's driver (Debian: nvidia-opencl-icd / libnvidia-compute-NNN on Ubuntu; the .run installer ships it)" ;;
    *amdocl* | *rocm*) echo "ROCm's rocm-opencl-runtime (or amdgpu-pro's opencl)" ;;
    *MesaOpenCL* | *RusticlOpenCL*) echo "Mesa (mesa-opencl-icd)" ;;
    *igdrcl* | *intel*) echo "Intel's compute runtime (intel-opencl-icd)" ;;
    *pocl*) echo "PoCL (pocl-opencl-icd)" ;;
    *) echo "the vendor's OpenCL driver" ;;
  esac
}

# 1. The ICD loader.
if ! have_lib libOpenCL.so.1; then
  problems+=("no OpenCL ICD loader (libOpenCL.so.1): install ocl-icd-libopencl1 (Debian/Ubuntu) or ocl-icd (Fedora, Arch)")
fi
# 2. Vendor ICDs: OCL_ICD_VENDORS (a folder or one .icd file) or /etc/OpenCL/vendors.
vendors=${OCL_ICD_VENDORS:-/etc/OpenCL/vendors}
icds=()
if [ -d "$vendors" ]; then
  for f in "$vendors"/*.icd; do [ -e "$f" ] && icds+=("$f"); done
elif [ -f "$vendors" ]; then
  icds+=("$vendors")
fi
good_icds=0
icd_json=""
for f in "${icds[@]}"; do
  lib=$(head -n1 "$f" | tr -d '[:space:]')
  if have_lib "$lib"; then
    good_icds=$((good_icds + 1)); ok=true
  else
    ok=false
    problems+=("$f points at $lib, which is not installed or not on the library path: install $(provider "$lib"), or remove $f")
  fi
  icd_json+="${icd_json:+,}{\"file\":\"$f\",\"library\":\"$lib\",\"found\":$ok}"
done
if [ ${#icds[@]} -eq 0 ]; then
  hint="no vendor ICD in $vendors"
  if have_lib libnvidia-opencl.so.1; then
    hint+=": NVIDIA's libnvidia-opencl.so.1 is installed but nothing names it; run 'echo libnvidia-opencl.so.1 > /etc/OpenCL/vendors/nvidia.icd' (package nvidia-opencl-icd), or point OCL_ICD_VENDORS at a file holding that line"
  elif have_lib libamdocl64.so; then
    hint+=": ROCm's libamdocl64.so is installed; add /etc/OpenCL/vendors/amdocl64.icd naming it (rocm-opencl-runtime)"
  else
    hint+=": install your GPU vendor's OpenCL driver (NVIDIA: nvidia-opencl-icd; AMD: rocm-opencl-runtime or mesa-opencl-icd; Intel: intel-opencl-icd)"
  fi
  problems+=("$hint")
fi
# 3. The binary's other shared libraries (a --static-swift-stdlib build still links these dynamically).
missing_libs=()
if command -v ldd >/dev/null; then
  while read -r lib; do
    [ -n "$lib" ] || continue
    missing_libs+=("$lib")
    case "$lib" in
      libopenblas*) pkg="libopenblas0 (Debian/Ubuntu) or openblas (Fedora, Arch)" ;;
      libpng16*) pkg="libpng16-16 (Debian/Ubuntu) or libpng" ;;
      libz.so*) pkg="zlib1g or zlib" ;;
      libOpenCL*) pkg="ocl-icd-libopencl1 or ocl-icd" ;;
      libstdc++* | libgcc_s*) pkg="libstdc++6 / libgcc-s1" ;;
      *) pkg="the package that ships it" ;;
    esac
    problems+=("$bin needs $lib, which is not installed: install $pkg")
  done < <(ldd "$bin" 2>/dev/null | awk '/not found/ { print $1 }')
fi
for p in "${problems[@]}"; do echo "device-check: $p" >&2; done
if ! have_lib libOpenCL.so.1 || [ "$good_icds" -eq 0 ] || [ ${#missing_libs[@]} -gt 0 ]; then
  echo "device-check: error: gpugen cannot run on this machine yet (see above)" >&2
  exit 2
fi

# 4. gpugen itself. Each step's JSON output is kept; a failed step is recorded, not fatal.
status=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Runs a step: name, then the command; its stdout goes to $tmp/name, stderr to the terminal.
step() {
  local name=$1; shift
  echo "== $name: $*" >&2
  "$@" >"$tmp/$name" 2> >(tee "$tmp/$name.err" >&2)
  local s=$?
  echo "$s" >"$tmp/$name.status"
  [ "$s" -eq 0 ] || { echo "device-check: $name exited with status $s" >&2; status=1; }
}
# JSON lines → a JSON array.
lines() { [ -s "$tmp/$1" ] && { echo -n "["; grep '^{' "$tmp/$1" | paste -sd, - | tr -d '\n'; echo -n "]"; } || echo -n "[]"; }
if [ "$quick" -eq 1 ]; then
  sizes=(64 128); unet=(--batch 1 --sample-batch 4 --steps 2 --seconds 0); qs=(--quick); torchq=(--quick)
else
  sizes=(256 512 1024 2048 4096); unet=(); qs=(); torchq=()
fi
step devices "$bin" devices --json
step selftest "$bin" selftest --device "$device" --json "${qs[@]}"
step peak "$bin" bench peak --device "$device" --json
step gemm "$bin" bench gemm --device "$device" --size "${sizes[@]}" --json
step unet "$bin" bench unet --device "$device" --json "${unet[@]}"
torch_json=null
if python3 -c 'import torch, diffusers, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  step pytorch python3 "$here/pytorch_unet_bench.py" --device cuda "${torchq[@]}"
  torch_json=$(lines pytorch)
else
  notes+=("PyTorch with CUDA (and diffusers) cannot be imported here: no PyTorch comparison")
  echo "device-check: ${notes[-1]}" >&2
fi

# 5. The figures against the issue's targets: GEMM at the largest n as % of peak; sampling vs PyTorch.
gemm_pct=$(grep '^{' "$tmp/gemm" 2>/dev/null | grep '"impl":"gpugen"' | tail -n1 | sed -n 's/.*"percent_of_peak":\([0-9.eE+-]*\).*/\1/p')
ips=$(grep '^{' "$tmp/unet" 2>/dev/null | grep '"images_per_s"' | tail -n1 | sed -n 's/.*"images_per_s":\([0-9.eE+-]*\).*/\1/p')
tips=""
[ "$torch_json" != null ] && tips=$(grep '"images_per_s"' "$tmp/pytorch" | tail -n1 | sed -n 's/.*"images_per_s": *\([0-9.eE+-]*\).*/\1/p')
ratio=null
[ -n "$ips" ] && [ -n "$tips" ] && ratio=$(awk -v a="$ips" -v b="$tips" 'BEGIN { printf "%.3f", a / b }')
selftest_json=$(cat "$tmp/selftest" 2>/dev/null)
[ -n "$selftest_json" ] || selftest_json=null
devices_json=$(cat "$tmp/devices" 2>/dev/null)
[ -n "$devices_json" ] || devices_json=null
problems_json=$(printf '%s\n' "${problems[@]}" "${notes[@]}" | grep -v '^$' | sed 's/\\/\\\\/g; s/"/\\"/g; s/.*/"&"/' | paste -sd, -)
{
  echo "{"
  echo "\"binary\": \"$bin\", \"device\": \"$device\", \"quick\": $([ "$quick" -eq 1 ] && echo true || echo false),"
  echo "\"host\": \"$(uname -nrm)\", \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "\"icds\": [$icd_json], \"notes\": [$problems_json],"
  echo "\"devices\": $devices_json,"
  echo "\"selftest\": $selftest_json, \"selftest_status\": $(cat "$tmp/selftest.status"),"
  echo "\"peak\": $(lines peak),"
  echo "\"gemm\": $(lines gemm),"
  echo "\"unet\": $(lines unet),"
  echo "\"pytorch\": $torch_json,"
  echo "\"gemm_largest_percent_of_peak\": ${gemm_pct:-null}, \"sampling_images_per_s\": ${ips:-null},"
  echo "\"pytorch_sampling_images_per_s\": ${tips:-null}, \"sampling_vs_pytorch\": $ratio,"
  echo "\"status\": $status"
  echo "}"
} >"$out"
echo "device-check: wrote $out (GEMM at the largest n: ${gemm_pct:-?} % of peak; sampling ${ips:-?} images/s; vs PyTorch ${ratio})" >&2
exit $status
