#!/usr/bin/env python3
"""Checks that folders gpugen's AutoencoderKL.save(to:) writes load in diffusers and give gpugen's outputs.

Export them first (freshly initialised models of the attn / noattn28 / noquant configs, each with
gpugen_io.safetensors holding gpugen's x, mean, logvar, z and decoded):

  GPUGEN_AKL_EXPORT=/tmp/akl_export swift test --filter AutoencoderKLTests/testSaveFreshModelsForDiffusers
  python3 check_gpugen_saved.py /tmp/akl_export

For each folder: AutoencoderKL.from_pretrained must load it with no missing or unexpected weights and the
config must survive unchanged; diffusers' encode (latent_dist.mean, .logvar) and decode on gpugen's inputs
must match gpugen's outputs within 1e-4 x their max abs. Exits non-zero on any failure.
"""
import json
import os
import sys

import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file


def check(folder: str) -> bool:
    model, info = AutoencoderKL.from_pretrained(folder, output_loading_info=True)
    model = model.float().eval()
    ok = not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"))
    saved = json.load(open(os.path.join(folder, "config.json")))
    for key, value in saved.items():
        if key.startswith("_"):
            continue
        have = model.config[key]
        if isinstance(have, tuple):
            have = list(have)
        if have != value:
            print(f"  config {key}: diffusers has {have!r}, gpugen wrote {value!r}")
            ok = False
    io = load_file(os.path.join(folder, "gpugen_io.safetensors"))
    with torch.no_grad():
        dist = model.encode(io["x"]).latent_dist
        decoded = model.decode(io["z"]).sample
    report = {}
    for key, got in (("mean", dist.mean), ("logvar", dist.logvar), ("decoded", decoded)):
        want = io[key]
        rel = float((got - want).abs().max() / want.abs().max())
        report[key] = rel
        ok = ok and got.shape == want.shape and rel <= 1e-4
    print(f"{os.path.basename(folder)}: loading info {info}; max abs error / max abs {report}; "
          f"{'OK' if ok else 'FAILED'}")
    return ok


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/akl_export"
    torch.set_num_threads(1)
    folders = sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "config.json")))
    if not folders:
        print(f"no exported models under {root}")
        return 1
    results = [check(os.path.join(root, d)) for d in folders]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
