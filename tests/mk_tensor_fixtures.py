"""mk_tensor_fixtures.py — weight files for tests/test_tensors.c.

Usage: mk_tensor_fixtures.py OUTDIR
       mk_tensor_fixtures.py --dump FILE OUT.expect

Writes good files (safetensors, torch .bin in several torch.save variants,
sharded checkpoints) with a FILE.expect next to each, and damaged files the
C reader must refuse. A .expect file has one line per tensor, as the
independent Python reader (hfio.read_tensors) sees it:
    name <TAB> dtype <TAB> d0,d1,.. <TAB> stored bytes (hex) <TAB> float32 bytes (hex)
with "-" for an empty field (a 0-dim shape, no bytes). Before writing it,
every good file is read back and compared with the tensors it was written
from, so a .expect states what the file holds, not what the writer meant.
"""
import collections
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hfio  # noqa: E402


def ref_tensors():
    rng = np.random.default_rng(20240607)
    t = collections.OrderedDict()
    emb = rng.standard_normal((3, 4)).astype(np.float32)
    t["model.embed_tokens.weight"] = ("F32", emb)
    t["lm_head.weight"] = ("F32", emb.copy())  # tied in the .bin files
    t["model.layers.0.mlp.up_proj.weight"] = ("F32", rng.standard_normal((2, 2)).astype(np.float32))
    f16 = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 6e-8, -6e-8, 1e-5, np.inf, -np.inf,
                    np.nan, 0.333, 1024.5, 3.0e-6, 0.1, -7.0], dtype=np.float16)
    t["model.norm.weight"] = ("F16", f16)
    bf = rng.standard_normal(30).astype(np.float32) * 10
    bf[:6] = [np.nan, np.inf, -np.inf, 1e-39, -0.0, 3.0e38]
    t["model.layers.0.self_attn.q_proj.weight"] = ("BF16", hfio.to_bf16(bf).reshape(2, 3, 5))
    t["scalar"] = ("F32", np.array(-1.25, dtype=np.float32))
    t["empty"] = ("F16", np.zeros((0, 4), dtype=np.float16))
    t["long"] = ("BF16", hfio.to_bf16(rng.standard_normal((1, 37))))
    t["big"] = ("F16", (rng.standard_normal((10, 103)) * 3).astype(np.float16))
    return t


# Tied embedding (offset 0) and a view at storage offset 12 of the same
# storage, as torch.save writes tied or sliced parameters.
SHARE = {"lm_head.weight": ("model.embed_tokens.weight", 0),
         "model.layers.0.mlp.up_proj.weight": ("model.embed_tokens.weight", 12)}
# A size-1 dimension may carry any stride in torch; the reader must accept it.
ODD_STRIDE = {"long": (999, 1)}


def write_expect(path, tensors):
    with open(path, "w") as f:
        for name, (dtype, a) in tensors.items():
            raw = np.ascontiguousarray(a).tobytes().hex() or "-"
            wide = hfio.to_float32(dtype, a).tobytes().hex() or "-"
            shape = ",".join(str(d) for d in a.shape) or "-"
            f.write(f"{name}\t{dtype}\t{shape}\t{raw}\t{wide}\n")


def same(got, want, what):
    if list(got) != list(want):
        raise SystemExit(f"{what}: names {list(got)} != {list(want)}")
    for k in want:
        (d1, a1), (d2, a2) = got[k], want[k]
        if d1 != d2 or a1.shape != a2.shape or a1.tobytes() != np.ascontiguousarray(a2).tobytes():
            raise SystemExit(f"{what}: tensor {k} differs")


def good(path, tensors, writer, **kw):
    writer(path, tensors, **kw)
    got = hfio.read_tensors(path)
    same(got, tensors, path)
    write_expect(path + ".expect", got)


def patch_header(src, dst, edit):
    """Rewrite the JSON header of a safetensors file through edit(dict)."""
    with open(src, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack_from("<Q", raw)
    header = json.loads(raw[8:8 + n])
    edit(header)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + raw[8 + n:])


def main(out):
    os.makedirs(out, exist_ok=True)
    T = ref_tensors()
    j = lambda name: os.path.join(out, name)  # noqa: E731
    good(j("st.safetensors"), T, hfio.write_safetensors)
    good(j("pt.bin"), T, hfio.write_torch_bin, share=SHARE, strides=ODD_STRIDE)
    good(j("pt_stem.bin"), T, hfio.write_torch_bin, prefix="pt_stem", byteorder=None, proto=4,
         with_metadata=False)
    good(j("pt64.bin"), T, hfio.write_torch_bin, share=SHARE, zip64=True)
    for fmt, n in (("safetensors", 3), ("bin", 2)):
        d = j(f"sh_{fmt}")
        files = hfio.write_sharded(d, T, n, fmt)
        merged = collections.OrderedDict()
        for f in files:
            merged.update(hfio.read_tensors(os.path.join(d, f)))
        same(merged, T, d)
        write_expect(d + ".expect", merged)

    # hfio.to_bf16 against lib's strata_f32_to_bf16: ties, NaNs, Inf,
    # denormals, overflow, and random bit patterns.
    special = np.array([0x3F808000, 0x3F818000, 0xBF818000, 0x3F808001, 0x7F7FFFFF, 0x7F7F7FFF,
                        0xFF7FFFFF, 0x00000001, 0x00008000, 0x00018000, 0x00017FFF, 0x807FFFFF,
                        0x7FC00000, 0xFFC00001, 0x7F800001, 0x7F800000, 0xFF800000, 0x80000000,
                        0x00000000, 0x3F800000], dtype=np.uint32)
    rnd = np.random.default_rng(5).integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)
    rnd[::2] = (rnd[::2] & 0xFFFF0000) | 0x8000
    src = np.concatenate([special, rnd]).view(np.float32)
    hfio.write_safetensors(j("bf16.safetensors"), collections.OrderedDict(
        [("src", ("F32", src)), ("bf16", ("BF16", hfio.to_bf16(src)))]))

    # ---- damaged files
    with open(j("st.safetensors"), "rb") as f:
        st = f.read()
    with open(j("bad_trunc.safetensors"), "wb") as f:  # data cut short
        f.write(st[:-10])
    with open(j("bad_hlen.safetensors"), "wb") as f:  # header length past the file
        f.write(struct.pack("<Q", len(st)) + st[8:])
    with open(j("bad_json.safetensors"), "wb") as f:
        h = b'{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'  # no closing brace
        h += b" " * (-len(h) % 8)
        f.write(struct.pack("<Q", len(h)) + h + b"\0" * 4)

    def past(h):  # offsets consistent with the shape, but beyond the data
        b, e = h["big"]["data_offsets"]
        h["big"]["data_offsets"] = [b + 4096, e + 4096]
    patch_header(j("st.safetensors"), j("bad_past.safetensors"), past)
    patch_header(j("st.safetensors"), j("bad_dtype.safetensors"),
                 lambda h: h["model.norm.weight"].update(dtype="I64"))
    patch_header(j("st.safetensors"), j("bad_size.safetensors"),
                 lambda h: h["model.embed_tokens.weight"].update(shape=[3, 5]))
    patch_header(j("st.safetensors"), j("bad_shape.safetensors"),
                 lambda h: h["scalar"].update(shape=[-1]))
    dup = collections.OrderedDict([("model.norm.weight", T["model.norm.weight"])])
    hfio.write_safetensors(j("dup_a.safetensors"), dup)
    hfio.write_torch_bin(j("dup_b.bin"), dup)
    hfio.write_torch_bin(j("bad_deflate.bin"), T, deflate=True)
    hfio.write_torch_bin(j("bad_global.bin"), T,
                         rename_globals={("torch._utils", "_rebuild_tensor_v2"): ("os", "system")})
    hfio.write_torch_bin(j("bad_stride.bin"), T, strides={"model.embed_tokens.weight": (1, 3)})
    hfio.write_torch_bin(j("bad_order.bin"), T, byteorder="big")
    with open(j("pt.bin"), "rb") as f:
        pt = f.read()
    with open(j("bad_trunc.bin"), "wb") as f:
        f.write(pt[: len(pt) // 2])
    # A storage shorter than its tensor: shrink the numel in the pickle is
    # hard to do by hand, so point a tensor past its storage via share.
    small = collections.OrderedDict(T)
    hfio.write_torch_bin(j("bad_range.bin"), small, share=SHARE)
    _stretch_storage_offset(j("bad_range.bin"))


def _stretch_storage_offset(path):
    """Patch the pickled storage_offset 12 (BININT1 12 after BINPERSID) of
    the up_proj view to 250, past its storage, keeping every zip checksum
    valid is unnecessary: the C reader does not verify CRCs, and this file
    is for the C reader only."""
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    i = raw.find(b"QK\x0c")
    if i < 0:
        raise SystemExit("storage offset 12 not found in pickle")
    raw[i + 2] = 250
    with open(path, "wb") as f:
        f.write(raw)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--dump":
        write_expect(sys.argv[3], hfio.read_tensors(sys.argv[2]))
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        raise SystemExit(__doc__)
