#!/usr/bin/env python3
"""gpugen's random numbers in numpy: Philox4x32-10 (Random123) and Box–Muller, bit for bit.

The same generator as Sources/GPUGenCore/Noise/Philox.swift and the Philox section of Kernels/common.cl,
vectorised over many counters (the 32×32→64 products are done in uint64). Counters are
(block, sample, step, stream), the key is the seed's (low, high) 32-bit words.

    philox_block(counters[N,4] uint32, seed) -> [N,4] uint32
    normals(seed, samples, per_sample, first_sample=0, step=0, stream=0) -> float32 [samples, per_sample]
        exactly Tensor.randomNormal / CPUBackend.randomNormal: element e of sample i is word e % 4 of the
        Box–Muller'd block (e // 4, first_sample + i, step, stream); a tail of fewer than 4 elements takes
        the first words of its block (the rest of the block is dropped).
    epoch_order(seed, n, epoch)          stream 10 (docs/TRAINING.md): stable argsort of word 0 of (0, i, epoch, 10)
    timesteps(seed, batch, step, T)      stream 11: word 0 of (0, j, step, 11) mod T
    noise(seed, B, chw, step)            stream 12: normals(seed, B, chw, 0, step, 12)

Box–Muller is done in float32 as in Swift: u = float32(w)·2⁻³² + 2⁻³³ (float32 ops), r = sqrt(−2·log u1),
θ = float32(6.28318530717958648)·u2, (r·cos θ, r·sin θ). The Philox words and the uniforms are exact; for
log/cos/sin there are three choices (`libm=`):
  "libm" (default)  the C library's logf/cosf/sinf through ctypes: the functions Swift calls on Linux, so this
                    is bit-identical to gpugen's CPU backend on the same machine (verified below); ~1 µs a call,
                    0.06 s for a 64×1024 draw;
  "f64"             float64 numpy, rounded to float32: vectorised; ≤ 2 ulp (≤ 1.2e-7 abs) from glibc, which is
                    not correctly rounded in near-tie cases; ~98.5 % of values identical;
  "f32"             numpy's float32 SIMD ufuncs: ≤ 3 ulp, ~79 % identical.
OpenCL devices differ from the CPU by a few ulp anyway (NoiseTests allows 1e-5).

Self-test:  python3 Tools/gpugen_random.py [--gpugen PATH]
  - the three Random123 known-answer vectors (also in Tests/GPUGenCoreTests/NoiseTests.swift);
  - numpy normals vs C logf/cosf/sinf (the functions Swift calls on Linux);
  - if a gpugen binary is found (--gpugen, else /work/main/.build/{release,debug}/gpugen, else
    .build/{release,debug}/gpugen): gpugen's seeded sampling noise (stream 0, step 0) recovered through
    `gpugen sample --sampler ddim --steps 1 --npy` on a tiny all-zero UNet (output exactly 0) whose scheduler
    has two training steps with β = 0.75 (one sampling step is t = 0): ᾱ = 1/4, so x̂₀ = x/√ᾱ = 2·x exactly,
    and the DDIM step to ᾱ_prev = 1 returns x̂₀. The output halved is exactly gpugen's initial noise (75 values
    an image: a tail block too), compared with normals(seed, n, C·H·W).
"""
import argparse
import ctypes
import ctypes.util
import os
import subprocess
import sys
import tempfile

import numpy as np

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = 0x9E3779B9
W1 = 0xBB67AE85
MASK = np.uint64(0xFFFFFFFF)
TWO_PI = np.float32(6.28318530717958648)
TWO_M32 = np.float32(2.0 ** -32)
TWO_M33 = np.float32(2.0 ** -33)

STREAM_DATA_ORDER = 10
STREAM_TIMESTEPS = 11
STREAM_NOISE = 12
STREAM_INIT = 20


def key(seed):
    """The key for a 64-bit seed: (low word, high word)."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return seed & 0xFFFFFFFF, seed >> 32


def philox_block(counters, seed=None, key_words=None):
    """Philox4x32-10 of every row of `counters` ([N,4] uint32) under the seed's key (or key_words=(k0,k1)).
    Returns [N,4] uint32."""
    c = np.asarray(counters, dtype=np.uint32).reshape(-1, 4).astype(np.uint64)
    c0, c1, c2, c3 = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    k0, k1 = key_words if key_words is not None else key(seed)
    for r in range(10):
        kk0, kk1 = np.uint64(k0), np.uint64(k1)
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ kk0, p1 & MASK, (p0 >> np.uint64(32)) ^ c3 ^ kk1, p0 & MASK)
        k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)


def uniform(u):
    """A word to a uniform in (0, 1]: float32(u)·2⁻³² + 2⁻³³ in float32."""
    return np.asarray(u, dtype=np.uint32).astype(np.float32) * TWO_M32 + TWO_M33


_libm = None


def _libm_vec(name, x):
    global _libm
    if _libm is None:
        _libm = ctypes.CDLL(ctypes.util.find_library("m"))
        for f in ("logf", "cosf", "sinf"):
            getattr(_libm, f).restype = ctypes.c_float
            getattr(_libm, f).argtypes = [ctypes.c_float]
    f = getattr(_libm, name)
    flat = np.asarray(x, dtype=np.float32).ravel()
    return np.array([f(float(v)) for v in flat], dtype=np.float32).reshape(np.shape(x))


def _log(x, libm):
    if libm == "f64":
        return np.log(x.astype(np.float64)).astype(np.float32)
    if libm == "f32":
        return np.log(x)
    return _libm_vec("logf", x)


def _cos_sin(x, libm):
    if libm == "f64":
        d = x.astype(np.float64)
        return np.cos(d).astype(np.float32), np.sin(d).astype(np.float32)
    if libm == "f32":
        return np.cos(x), np.sin(x)
    return _libm_vec("cosf", x), _libm_vec("sinf", x)


def box_muller(a, b, libm="f64"):
    """Two word arrays to two float32 normal arrays (r·cos θ, r·sin θ), float32 as in Swift."""
    r = np.sqrt(np.float32(-2) * _log(uniform(a), libm))
    theta = TWO_PI * uniform(b)
    c, s = _cos_sin(theta, libm)
    return r * c, r * s


def block_normals(words, libm="f64"):
    """[N,4] uint32 words to [N,4] float32 normals: Box–Muller on (x, y) and on (z, w)."""
    w = np.asarray(words, dtype=np.uint32)
    a, b = box_muller(w[:, 0], w[:, 1], libm)
    c, d = box_muller(w[:, 2], w[:, 3], libm)
    return np.stack([a, b, c, d], axis=1)


def counters(blocks, samples, step, stream):
    """[len(samples)*len(blocks), 4] counters (block, sample, step, stream), sample-major."""
    blocks = np.asarray(blocks, dtype=np.uint32)
    samples = np.asarray(samples, dtype=np.uint32)
    ctr = np.empty((samples.size, blocks.size, 4), dtype=np.uint32)
    ctr[:, :, 0] = blocks[None, :]
    ctr[:, :, 1] = samples[:, None]
    ctr[:, :, 2] = np.uint32(step)
    ctr[:, :, 3] = np.uint32(stream)
    return ctr.reshape(-1, 4)


def normals(seed, samples, per_sample, first_sample=0, step=0, stream=0, libm="libm"):
    """gpugen's randomNormal: float32 [samples, per_sample]."""
    nb = (per_sample + 3) // 4
    if samples == 0 or nb == 0:
        return np.zeros((samples, per_sample), dtype=np.float32)
    sample_ids = (np.arange(samples, dtype=np.uint64) + np.uint64(first_sample)).astype(np.uint32)
    words = philox_block(counters(np.arange(nb), sample_ids, step, stream), seed)
    z = block_normals(words, libm).reshape(samples, nb * 4)
    return np.ascontiguousarray(z[:, :per_sample])


def word0(seed, n, step, stream):
    """Word 0 of Philox(counter (0, i, step, stream)) for i in 0..<n, as uint32."""
    return philox_block(counters([0], np.arange(n), step, stream), seed)[:, 0]


def epoch_order(seed, n, epoch):
    """The order of the n images in epoch `epoch` (stream 10): stable argsort of the keys (ties by index)."""
    return np.argsort(word0(seed, n, epoch, STREAM_DATA_ORDER), kind="stable")


def timesteps(seed, batch, step, T):
    """The training timesteps of global step `step` (stream 11): word0 mod T, int64 [batch]."""
    return (word0(seed, batch, step, STREAM_TIMESTEPS).astype(np.int64) % int(T)).astype(np.int64)


def noise(seed, B, chw, step, libm="libm"):
    """The training noise of global step `step` (stream 12): float32 [B, chw]."""
    return normals(seed, B, chw, 0, step, STREAM_NOISE, libm=libm)


# ---------------------------------------------------------------------------------------------------------
# Self-test

KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def ulp_diff(a, b):
    """Distance in float32 ulps (same-sign values; sign changes count through zero)."""
    ia = np.asarray(a, np.float32).view(np.int32).astype(np.int64)
    ib = np.asarray(b, np.float32).view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)


def test_kat():
    ok = True
    for ctr, k, want in KAT:
        got = tuple(int(v) for v in philox_block(np.array([ctr], np.uint32), key_words=k)[0])
        good = got == want
        ok &= good
        print(f"KAT counter {' '.join(f'{v:08x}' for v in ctr)}: {'ok' if good else 'FAIL'}"
              f" ({' '.join(f'{v:08x}' for v in got)})")
    # A 64-bit seed is split (low, high): key(seed) of the third vector.
    s = (0x299F31D0 << 32) | 0xA4093822
    got = tuple(int(v) for v in philox_block(np.array([KAT[2][0]], np.uint32), s)[0])
    ok &= got == KAT[2][2]
    print(f"KAT via 64-bit seed {s:#x}: {'ok' if got == KAT[2][2] else 'FAIL'}")
    # Extremes of the uniform mapping (NoiseTests.testUniformExtremesAndBoxMullerAreFinite).
    u = uniform(np.array([0, 1, 0xFFFFFFFF, 0xFFFFFF00], np.uint32))
    ext = u[0] == 2.0 ** -33 and u[1] == 1.5 * 2.0 ** -32 and u[2] == 1 and u[3] < 1
    ok &= bool(ext)
    print(f"uniform extremes: {'ok' if ext else 'FAIL'}")
    return ok


def test_libm(n=20000):
    """normals() (f64 and f32 modes) against the C library's logf/cosf/sinf, the functions Swift calls."""
    w = philox_block(counters(np.arange(n // 4), [7], 3, 12), 1234)
    ref = block_normals(w, "libm")
    for mode in ("f64", "f32"):
        got = block_normals(w, mode)
        d = np.abs(got - ref)
        print(f"normals libm={mode} vs C logf/cosf/sinf over {ref.size} values: max abs diff {d.max():.3g}, "
              f"max ulp {int(ulp_diff(got, ref).max())}, identical {100 * np.mean(got == ref):.3f}%")
    return True


def find_gpugen(path=None):
    cands = [path] if path else [
        "/work/main/.build/release/gpugen", "/work/main/.build/debug/gpugen",
        ".build/release/gpugen", ".build/debug/gpugen"]
    return next((c for c in cands if c and os.path.exists(c)), None)


def test_gpugen(exe, seed=12345, n=6, size=5, libm="libm"):
    """gpugen's seeded initial noise (stream 0, step 0) through an exact DDIM step (zero UNet, ᾱ = 1/4)."""
    import json
    import torch
    from diffusers import UNet2DModel
    # One level (no resampling), so any size works: 3·5·5 = 75 values per image, not a multiple of 4.
    cfg = dict(sample_size=size, in_channels=3, out_channels=3, block_out_channels=(8,), layers_per_block=1,
               down_block_types=("DownBlock2D",), up_block_types=("UpBlock2D",), norm_num_groups=4)
    with tempfile.TemporaryDirectory() as d:
        unet = UNet2DModel(**cfg)
        with torch.no_grad():
            for p in unet.parameters():
                p.zero_()
        unet.save_pretrained(os.path.join(d, "unet"))
        os.makedirs(os.path.join(d, "scheduler"))
        json.dump(dict(_class_name="DDIMScheduler", num_train_timesteps=2, beta_start=0.75, beta_end=0.75,
                       beta_schedule="linear", clip_sample=False, set_alpha_to_one=True, prediction_type="epsilon",
                       timestep_spacing="leading", steps_offset=0, thresholding=False),
                  open(os.path.join(d, "scheduler", "scheduler_config.json"), "w"))
        json.dump(dict(_class_name="DDPMPipeline", unet=["diffusers", "UNet2DModel"],
                       scheduler=["diffusers", "DDIMScheduler"]), open(os.path.join(d, "model_index.json"), "w"))
        out = os.path.join(d, "g.npy")
        cmd = [exe, "sample", "--model", d, "--sampler", "ddim", "--steps", "1", "--n", str(n), "--batch-size", "4",
               "--seed", str(seed), "--device", "cpu", "--npy", out, "--out", os.path.join(d, "g.png")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"gpugen comparison skipped: {' '.join(cmd)} failed:\n{r.stderr.strip()[-800:]}")
            return None
        g = np.load(out).reshape(n, -1) / np.float32(2)
    want = normals(seed, n, 3 * size * size, libm=libm)
    d = np.abs(g - want)
    print(f"gpugen ({exe}) seeded noise vs libm={libm}, {g.size} values (per sample {3 * size * size}, batches of 4): "
          f"max abs diff {d.max():.3g}, max ulp {int(ulp_diff(g, want).max())}, "
          f"identical {100 * np.mean(g == want):.2f}%")
    return bool(d.max() == 0) if libm == "libm" else bool(d.max() < 1e-5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpugen", help="gpugen binary to compare with (default: look for a build)")
    ap.add_argument("--no-gpugen", action="store_true")
    a = ap.parse_args()
    ok = test_kat()
    test_libm()
    if not a.no_gpugen:
        exe = find_gpugen(a.gpugen)
        if exe:
            r = test_gpugen(exe, libm="libm")
            if r is not None:
                test_gpugen(exe, libm="f64")
            ok &= r is not False
        else:
            print("no gpugen build found: skipped the comparison with gpugen")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
