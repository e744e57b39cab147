#!/usr/bin/env python3
"""safetensors fixtures for GPUGenNNTests (SafeTensorsPythonTests).

    python3 make_fixtures.py             write the fixture files and expected.json next to this script
    python3 make_fixtures.py --check DIR  load gpugen-written files in DIR with Python's safetensors and
                                          compare them with DIR/expected.json (written by gpugen's test)

Needs `pip install safetensors numpy`. Expected values are float32 bit patterns (8 hex digits), so the
comparison on the Swift side is bit for bit. BF16 is written as raw bytes (NumPy has no bfloat16) and
checked to load with the reference reader.
"""

import json
import os
import struct
import sys

import numpy as np
import safetensors
from safetensors import safe_open
from safetensors.numpy import load_file, save, save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def bits32(a):
    """float32 bit patterns of `a` (any dtype, converted with NumPy's astype) as hex strings."""
    f = np.ascontiguousarray(np.asarray(a).astype(np.float32)).reshape(-1)
    return ["%08x" % int(u) for u in f.view(np.uint32)]


def from_bits32(hexes, shape):
    return np.array([int(h, 16) for h in hexes], dtype=np.uint32).view(np.float32).reshape(shape)


def f16(bits):
    return np.array(bits, dtype=np.uint16).view(np.float16)


def header_order(path):
    """Tensor names sorted by data offsets (ties in header order), as gpugen reports them."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    items = [(k, v) for k, v in header.items() if k != "__metadata__"]
    idx = {k: i for i, (k, _) in enumerate(items)}
    items.sort(key=lambda kv: (kv[1]["data_offsets"][0], kv[1]["data_offsets"][1], idx[kv[0]]))
    return [k for k, _ in items]


def describe(path, tensors, dtypes, metadata):
    return {
        "metadata": metadata or {},
        "order": header_order(path),
        "tensors": {
            name: {"dtype": dtypes[name], "shape": list(np.shape(a)), "bits": bits32(a)}
            for name, a in tensors.items()
        },
    }


def write_raw(path, tensors, metadata=None):
    """A safetensors file from (name, dtype, shape, raw bytes), laid out like the reference writer."""
    header, offset, data = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    blob = struct.pack("<Q", len(h)) + h + data
    safetensors.deserialize(blob)  # the reference reader accepts it
    with open(path, "wb") as f:
        f.write(blob)


def make():
    rng = np.random.default_rng(0)
    files = {}
    specials32 = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1.17549435e-38,
                           3.4028235e38, 1.0, -2.5, 1.0 / 3.0, 65504.0], dtype=np.float32)

    # F32 with metadata, an empty tensor and a 0-rank tensor.
    t = {
        "weight": specials32.reshape(2, 6),
        "bias": rng.standard_normal(3).astype(np.float32),
        "empty": np.zeros((0, 4), np.float32),
        "scalar": np.array(-7.25, np.float32),
    }
    meta = {"format": "pt", "note": "gpugen \u2713 \"quoted\"\n"}
    save_file(t, os.path.join(HERE, "f32.safetensors"), metadata=meta)
    files["f32.safetensors"] = describe(os.path.join(HERE, "f32.safetensors"), t, {k: "F32" for k in t}, meta)

    # F16: zeros, subnormals, the normal range edges, infinities, NaNs (quiet, payload), randoms.
    halfs = [0x0000, 0x8000, 0x0001, 0x8001, 0x02AB, 0x03FF, 0x0400, 0x3C00, 0x3555, 0xC248, 0x7BFF,
             0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0x7D55]
    halfs += [int(x) for x in rng.integers(0, 0x7C00, 14)]
    t = {
        "h": f16(halfs).reshape(4, 8),
        "h_empty": np.zeros((2, 0), np.float16),
        "h_scalar": f16([0x4248]).reshape(()),
    }
    meta = {"dtype": "f16"}
    save_file(t, os.path.join(HERE, "f16.safetensors"), metadata=meta)
    files["f16.safetensors"] = describe(os.path.join(HERE, "f16.safetensors"), t, {k: "F16" for k in t}, meta)

    # BF16, written as raw bytes; the float32 value of a bfloat16 is its bits << 16.
    bf = [0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x3F80, 0xC0A0, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80,
          0x7FC0, 0xFFC1, 0x7F81]
    bf += [int(x) for x in rng.integers(0, 0x10000, 10)]
    bf_tensors = [
        ("b", "BF16", [3, 8], np.array(bf, np.uint16).astype("<u2").tobytes()),
        ("b_empty", "BF16", [0], b""),
        ("b_scalar", "BF16", [], np.array([0x4049], np.uint16).astype("<u2").tobytes()),
    ]
    path = os.path.join(HERE, "bf16.safetensors")
    write_raw(path, bf_tensors, {"dtype": "bf16"})
    as_f32 = {
        name: (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
        for name, _, shape, raw in bf_tensors
    }
    files["bf16.safetensors"] = describe(path, as_f32, {k: "BF16" for k in as_f32}, {"dtype": "bf16"})

    # Every other dtype gpugen converts, next to F16/F32 (the reference sorts them by alignment).
    t = {
        "f64": np.array([0.1, -1e39, 1e-50, 2.0 ** -149, 1 + 2.0 ** -24, np.nan, -np.inf, 3.0], np.float64),
        "i64": np.array([0, -1, 2 ** 24 + 1, 2 ** 53 + 1, -(2 ** 63), 2 ** 63 - 1], np.int64),
        "u64": np.array([0, 2 ** 64 - 1, 2 ** 24 + 3], np.uint64),
        "i32": np.array([-(2 ** 31), 2 ** 31 - 1, 16777217, 5], np.int32),
        "u32": np.array([2 ** 32 - 1, 7], np.uint32),
        "i16": np.array([-32768, 32767, -3], np.int16),
        "u16": np.array([65535, 0], np.uint16),
        "i8": np.array([-128, 127, 0], np.int8),
        "u8": np.array([255, 1], np.uint8).reshape(2, 1),
        "bool": np.array([True, False, True]),
        "f16": f16([0x3C00, 0x0001]),
        "f32": np.array([1.5], np.float32),
    }
    dtypes = {"f64": "F64", "i64": "I64", "u64": "U64", "i32": "I32", "u32": "U32", "i16": "I16",
              "u16": "U16", "i8": "I8", "u8": "U8", "bool": "BOOL", "f16": "F16", "f32": "F32"}
    path = os.path.join(HERE, "mixed.safetensors")
    save_file(t, path)
    files["mixed.safetensors"] = describe(path, t, dtypes, None)

    # Files gpugen must reproduce byte for byte (one metadata entry: the reference orders several by hash).
    compat = {}
    c32 = [
        ("z.weight", rng.standard_normal((3, 2)).astype(np.float32)),
        ("a.bias", rng.standard_normal(2).astype(np.float32)),
        ("m", np.array(2.0, np.float32)),
        ("e", np.zeros((0, 3), np.float32)),
        ("B", specials32),
    ]
    save_file(dict(c32), os.path.join(HERE, "compat_f32.safetensors"), metadata={"format": "pt"})
    compat["compat_f32.safetensors"] = {
        "dtype": "F32", "metadata": {"format": "pt"},
        "tensors": [[n, list(a.shape), bits32(a)] for n, a in c32],
    }
    # float32 inputs whose float16 rounding is delicate: ties to even, subnormal ties, overflow edges.
    tricky = np.array([
        1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 1 + 2.0 ** -11 + 2.0 ** -20, 2.0 ** -25, 3 * 2.0 ** -25,
        2.0 ** -25 + 2.0 ** -40, 2.0 ** -24, 2.0 ** -14 - 2.0 ** -25, 2.0 ** -14 - 2.0 ** -26, 65504,
        65519.99, 65520, 1e10, -65520, 2.0 ** -26, -0.0, np.inf, -np.inf, np.nan, 1e-45, 0.1, -1 / 3,
    ], dtype=np.float32)
    tricky = np.concatenate([tricky, np.array([0x7FC02000, 0xFFC00000], np.uint32).view(np.float32)])
    c16 = [
        ("tricky", tricky),
        ("random", (rng.standard_normal((4, 5)) * 1000).astype(np.float32)),
        ("tiny", (rng.standard_normal(6) * 1e-6).astype(np.float32)),
        ("s", np.array(0.5, np.float32)),
    ]
    save_file({n: a.astype(np.float16) for n, a in c16}, os.path.join(HERE, "compat_f16.safetensors"),
              metadata={"source": "float32"})
    compat["compat_f16.safetensors"] = {
        "dtype": "F16", "metadata": {"source": "float32"},
        "tensors": [[n, list(a.shape), bits32(a)] for n, a in c16],
    }

    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump({"safetensors": safetensors.__version__, "numpy": np.__version__, "files": files,
                   "compat": compat}, f, sort_keys=True, separators=(",", ":"))
        f.write("\n")
    print("wrote fixtures to", HERE)


def bf16_bits(f32):
    """Round-to-nearest-even float32 -> bfloat16 bits (NaN: quiet, sign and top payload kept)."""
    u = f32.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    return np.where(np.isnan(f32), (u >> 16) | 0x40, r).astype(np.uint16)


def check(directory):
    with open(os.path.join(directory, "expected.json")) as f:
        expected = json.load(f)["files"]
    failures = []
    for fname, spec in sorted(expected.items()):
        path = os.path.join(directory, fname)
        with open(path, "rb") as f:
            blob = f.read()
        try:
            raw = dict(safetensors.deserialize(blob))  # name -> {dtype, shape, data}
            with safe_open(path, framework="numpy") as st:
                metadata = st.metadata() or {}
        except Exception as e:  # noqa: BLE001 - any failure to load is the finding
            failures.append("%s: Python's safetensors cannot load it: %s" % (fname, e))
            continue
        if metadata != spec["metadata"]:
            failures.append("%s: metadata %r != %r" % (fname, metadata, spec["metadata"]))
        names = [n for n, _, _ in spec["tensors"]]
        if sorted(raw) != sorted(names):
            failures.append("%s: tensors %s != %s" % (fname, sorted(raw), sorted(names)))
            continue
        dtype = spec["dtype"]
        arrays = load_file(path) if dtype != "BF16" else None
        source = {}
        for name, shape, hexes in spec["tensors"]:
            src = from_bits32(hexes, shape)
            source[name] = src
            got = raw[name]
            if got["dtype"].upper() != dtype or list(got["shape"]) != shape:
                failures.append("%s/%s: %s %s != %s %s" % (fname, name, got["dtype"], got["shape"], dtype, shape))
                continue
            data = bytes(got["data"])
            if dtype == "F32":
                want = src.astype("<f4").tobytes()
                ok = data == want and arrays[name].tobytes() == src.tobytes()
            elif dtype == "F16":
                want = src.astype(np.float16).astype("<f2").tobytes()  # NumPy's rounding
                ok = data == want and arrays[name].tobytes() == src.astype(np.float16).tobytes()
            else:
                want = bf16_bits(src.reshape(-1)).astype("<u2").tobytes()
                ok = data == want
            if not ok:
                failures.append("%s/%s: data differs from the expected %s encoding" % (fname, name, dtype))
        if dtype in ("F32", "F16") and len(spec["metadata"]) <= 1:
            np_dtype = np.float32 if dtype == "F32" else np.float16
            ref = save({n: a.astype(np_dtype) for n, a in source.items()}, metadata=spec["metadata"] or None)
            same = ref == blob
            print("%s: byte-identical to safetensors.numpy.save: %s" % (fname, same))
            if not same:
                failures.append("%s: bytes differ from safetensors.numpy.save of the same tensors" % fname)
        print("%s: loaded %d tensors (%s), metadata %r" % (fname, len(raw), dtype, metadata))
    for f in failures:
        print("FAIL", f)
    print("%d files checked, %d failures (safetensors %s, numpy %s)"
          % (len(expected), len(failures), safetensors.__version__, np.__version__))
    return 1 if failures else 0


if __name__ == "__main__":
    np.seterr(over="ignore")  # float32 -> float16 overflow to inf is intended
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    elif len(sys.argv) == 1:
        make()
    else:
        sys.exit(__doc__)
