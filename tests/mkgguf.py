#!/usr/bin/python3
"""mkgguf.py — a small GGUF writer and reader (numpy only, no gguf-py) for
the tests of strata's GGUF loader: writes Hugging Face checkpoints (as
tests/mkhf.py makes them) and llama2.c checkpoints as GGUF files the way
llama.cpp's converters do, in F32, F16, BF16 or the block-quantized Q8_0,
Q4_0, Q4_K and Q6_K, plus an independent numpy dequantizer of those blocks.

Written from ggml's docs/gguf.md (file layout, metadata keys) and the block
layouts of ggml-common.h; nothing here is shared with strata's C code.

File layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv;
n_kv times (string key, u32 value type, value); n_tensors times (string
name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset); zero padding to
the alignment; the data section (each tensor at an aligned offset). Strings:
u64 length + bytes; arrays: u32 element type, u64 count, elements.
ne is reversed from numpy's shape: a (rows, cols) matrix has ne = [cols, rows].

What the converter does, as llama.cpp's convert_hf_to_gguf.py:
  - tensor names token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v,
    attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output
    (absent when the embedding is tied);
  - q and k rows permuted from Hugging Face's rotate-half order back to
    Meta's interleaved pairs: w.reshape(heads, 2, d/2, D).swapaxes(1, 2)
    (k with the key/value head count);
  - Baichuan's W_pack split into q, k, v (q and k permuted likewise) and,
    unless told otherwise, lm_head normalized row by row (Baichuan 2's
    NormHead folded in, as its README tells llama.cpp users to do);
  - 1-D norm weights stay F32; rope_scaling linear/yarn as metadata, llama3
    as the rope_freqs.weight tensor of per-frequency divisors.

Quantizers: not llama.cpp's (any valid encoding will do, since the tests
compare strata's decoding of the bytes with the numpy decoding here), but
reasonable: per-block scales from the block's range, rounded to nearest.

Command line: see --help. As a module: write_gguf, read_gguf, quantize,
dequantize, hf_to_gguf, llama2c_to_gguf and the encoders enc_str, enc_kv,
enc_tensor_info for hand-made (also corrupt) files.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hfio  # noqa: E402

# metadata value types
U8, I8, U16, I16, U32, I32, F32V, BOOL, STR, ARR, U64, I64, F64V = range(13)
_SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32V: "<f",
           BOOL: "<?", U64: "<Q", I64: "<q", F64V: "<d"}
# ggml tensor types: id, values a block, bytes a block
TYPES = {"f32": (0, 1, 4), "f16": (1, 1, 2), "q4_0": (2, 32, 18), "q8_0": (8, 32, 34),
         "q4_k": (12, 256, 144), "q5_k": (13, 256, 176), "q6_k": (14, 256, 210),
         "bf16": (30, 1, 2)}
TYPE_NAMES = {v[0]: k for k, v in TYPES.items()}
FILE_TYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "q4_k": 15, "q6_k": 18, "bf16": 32,
             "q4_k_m": 15}
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


# ------------------------------------------------------------------ writing

def enc_str(s):
    b = s.encode("utf-8", errors="surrogateescape") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def enc_value(vtype, value):
    if vtype == STR:
        return enc_str(value)
    if vtype == ARR:
        etype, items = value
        out = struct.pack("<IQ", etype, len(items))
        if etype == STR:
            return out + b"".join(enc_str(s) for s in items)
        return out + np.asarray(items, dtype=np.dtype(_SCALAR[etype])).tobytes()
    return struct.pack(_SCALAR[vtype], value)


def enc_kv(key, vtype, value):
    return enc_str(key) + struct.pack("<I", vtype) + enc_value(vtype, value)


def enc_tensor_info(name, ne, ggml_type, offset):
    return (enc_str(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
            + struct.pack("<IQ", ggml_type, offset))


def write_gguf(path, kv, tensors, alignment=32, version=3):
    """kv: [(key, vtype, value)]; tensors: [(name, ne, ggml_type, raw bytes)]
    in file order; each tensor's data at the next aligned data offset."""
    if alignment != 32 and not any(k == "general.alignment" for k, _, _ in kv):
        kv = list(kv) + [("general.alignment", U32, alignment)]
    infos, data, off = [], bytearray(), 0
    for name, ne, t, raw in tensors:
        off = -(-len(data) // alignment) * alignment
        data += b"\0" * (off - len(data))
        infos.append(enc_tensor_info(name, ne, t, off))
        data += raw
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv))
    head += b"".join(enc_kv(*e) for e in kv) + b"".join(infos)
    head += b"\0" * (-len(head) % alignment)
    with open(path, "wb") as f:
        f.write(head)
        f.write(bytes(data))


# ------------------------------------------------------------------ reading

class _Rd:
    def __init__(self, raw):
        self.raw, self.pos = raw, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.raw, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("<Q")
        s = self.raw[self.pos:self.pos + n]
        self.pos += n
        return s.decode("utf-8", errors="surrogateescape")

    def value(self, t):
        if t == STR:
            return self.string()
        if t == ARR:
            et, n = self.take("<IQ")
            if et == STR:
                return (et, [self.string() for _ in range(n)])
            dt = np.dtype(_SCALAR[et])
            a = np.frombuffer(self.raw, dtype=dt, count=n, offset=self.pos)
            self.pos += n * dt.itemsize
            return (et, a.tolist())
        return self.take(_SCALAR[t])


def read_gguf(path):
    """(kv {key: (vtype, value)}, tensors {name: {type, ne, data}}) of a GGUF
    file, read here without strata."""
    raw = open(path, "rb").read()
    if raw[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    r = _Rd(raw)
    r.pos = 4
    version, n_t, n_kv = r.take("<IQQ")
    kv = {}
    for _ in range(n_kv):
        key = r.string()
        t = r.take("<I")
        kv[key] = (t, r.value(t))
    align = kv.get("general.alignment", (U32, 32))[1]
    infos = []
    for _ in range(n_t):
        name = r.string()
        nd = r.take("<I")
        ne = list(struct.unpack_from(f"<{nd}Q", raw, r.pos))
        r.pos += 8 * nd
        t, off = r.take("<IQ")
        infos.append((name, ne, t, off))
    base = -(-r.pos // align) * align
    tensors = {}
    for name, ne, t, off in infos:
        _, blck, size = TYPES[TYPE_NAMES[t]]
        nbytes = int(np.prod(ne)) // blck * size
        tensors[name] = {"type": t, "ne": ne, "data": raw[base + off:base + off + nbytes]}
    return kv, tensors


# ------------------------------------------------------------- quantizing

def _f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16)


def quantize(kind, x):
    """x (rows, cols) float -> raw bytes of ggml type `kind` (row-major)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if kind == "f32":
        return x.tobytes()
    if kind == "f16":
        return x.astype(np.float16).tobytes()
    if kind == "bf16":
        return hfio.to_bf16(x).tobytes()
    _, blck, _ = TYPES[kind]
    if x.shape[-1] % blck:
        raise ValueError(f"{kind}: rows of {x.shape[-1]} values are not whole blocks of {blck}")
    b = x.reshape(-1, blck)
    nb = b.shape[0]
    if kind == "q8_0":
        d = _f16(np.abs(b).max(axis=1) / 127.0)
        df = d.astype(np.float32)[:, None]
        q = np.where(df > 0, np.rint(b / np.where(df > 0, df, 1)), 0).clip(-127, 127)
        out = np.zeros((nb, 34), np.uint8)
        out[:, 0:2] = d.view(np.uint8).reshape(nb, 2)
        out[:, 2:] = q.astype(np.int8).view(np.uint8)
        return out.tobytes()
    if kind == "q4_0":
        i = np.abs(b).argmax(axis=1)
        mx = b[np.arange(nb), i]
        d = _f16(mx / -8.0)
        df = d.astype(np.float32)[:, None]
        q = np.where(df != 0, np.rint(b / np.where(df != 0, df, 1)) + 8, 8).clip(0, 15)
        q = q.astype(np.uint8)
        out = np.zeros((nb, 18), np.uint8)
        out[:, 0:2] = d.view(np.uint8).reshape(nb, 2)
        out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
        return out.tobytes()
    if kind == "q4_k":
        sub = b.reshape(nb, 8, 32)
        lo = np.minimum(sub.min(axis=2), 0.0)            # (nb, 8): x >= lo
        scale = (sub.max(axis=2) - lo) / 15.0
        mn = -lo
        d = _f16(scale.max(axis=1) / 63.0)
        dmin = _f16(mn.max(axis=1) / 63.0)
        dd, dm = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
        sc = np.where(dd > 0, np.rint(scale / np.where(dd > 0, dd, 1)), 0).clip(0, 63).astype(np.uint8)
        m = np.where(dm > 0, np.rint(mn / np.where(dm > 0, dm, 1)), 0).clip(0, 63).astype(np.uint8)
        eff_d = (dd * sc)[:, :, None]
        eff_m = (dm * m)[:, :, None]
        q = np.where(eff_d > 0, np.rint((sub + eff_m) / np.where(eff_d > 0, eff_d, 1)), 0)
        q = q.clip(0, 15).astype(np.uint8)                # (nb, 8, 32)
        s = np.zeros((nb, 12), np.uint8)
        s[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
        s[:, 4:8] = (m[:, 0:4] & 63) | ((m[:, 4:8] >> 4) << 6)
        s[:, 8:12] = (sc[:, 4:8] & 15) | ((m[:, 4:8] & 15) << 4)
        qs = (q[:, 0::2, :] | (q[:, 1::2, :] << 4)).reshape(nb, 128)  # chunk c: sub 2c low, 2c+1 high
        out = np.zeros((nb, 144), np.uint8)
        out[:, 0:2] = d.view(np.uint8).reshape(nb, 2)
        out[:, 2:4] = dmin.view(np.uint8).reshape(nb, 2)
        out[:, 4:16] = s
        out[:, 16:] = qs
        return out.tobytes()
    if kind == "q6_k":
        sub = b.reshape(nb, 16, 16)
        scale = np.abs(sub).max(axis=2) / 31.0            # (nb, 16)
        d = _f16(scale.max(axis=1) / 127.0)
        dd = d.astype(np.float32)[:, None]
        sc = np.where(dd > 0, np.rint(scale / np.where(dd > 0, dd, 1)), 0).clip(-128, 127)
        eff = (dd * sc)[:, :, None]
        q = np.where(eff > 0, np.rint(sub / np.where(eff > 0, eff, 1)), 0).clip(-32, 31) + 32
        q = q.astype(np.uint8).reshape(nb, 2, 4, 32)      # half, quarter, l
        ql = np.zeros((nb, 2, 64), np.uint8)
        ql[:, :, :32] = (q[:, :, 0] & 15) | ((q[:, :, 2] & 15) << 4)
        ql[:, :, 32:] = (q[:, :, 1] & 15) | ((q[:, :, 3] & 15) << 4)
        qh = (q[:, :, 0] >> 4) | ((q[:, :, 1] >> 4) << 2) | ((q[:, :, 2] >> 4) << 4) | ((q[:, :, 3] >> 4) << 6)
        out = np.zeros((nb, 210), np.uint8)
        out[:, 0:128] = ql.reshape(nb, 128)
        out[:, 128:192] = qh.reshape(nb, 64)
        out[:, 192:208] = sc.astype(np.int8).view(np.uint8)
        out[:, 208:210] = d.view(np.uint8).reshape(nb, 2)
        return out.tobytes()
    raise ValueError(f"cannot quantize to {kind}")


def dequantize(ggml_type, raw, n):
    """n float32 values of ggml type id `ggml_type` from raw bytes, with the
    same float32 operations in the same order as ggml's reference decoders."""
    kind = TYPE_NAMES[ggml_type]
    if kind == "f32":
        return np.frombuffer(raw, "<f4", n).copy()
    if kind == "f16":
        return np.frombuffer(raw, "<f2", n).astype(np.float32)
    if kind == "bf16":
        return hfio.from_bf16(np.frombuffer(raw, "<u2", n))
    _, blck, size = TYPES[kind]
    b = np.frombuffer(raw, np.uint8, n // blck * size).reshape(-1, size)
    nb = b.shape[0]

    def half(col):
        return b[:, col:col + 2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    if kind == "q8_0":
        return (b[:, 2:].view(np.int8).astype(np.float32) * half(0)).reshape(-1)
    if kind == "q4_0":
        qs = b[:, 2:18].astype(np.int32)
        q = np.concatenate([(qs & 15) - 8, (qs >> 4) - 8], axis=1).astype(np.float32)
        return (q * half(0)).reshape(-1)
    if kind == "q4_k":
        d, dmin, s = half(0), half(2), b[:, 4:16].astype(np.int32)
        sc = np.zeros((nb, 8), np.int32)
        m = np.zeros((nb, 8), np.int32)
        sc[:, :4], m[:, :4] = s[:, 0:4] & 63, s[:, 4:8] & 63
        sc[:, 4:] = (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)
        m[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
        dl = d * sc.astype(np.float32)                    # (nb, 8) float32
        ml = dmin * m.astype(np.float32)
        qs = b[:, 16:].reshape(nb, 4, 32)
        q = np.stack([qs & 15, qs >> 4], axis=2).reshape(nb, 8, 32).astype(np.float32)
        return (dl[:, :, None] * q - ml[:, :, None]).reshape(-1)
    if kind == "q6_k":
        ql = b[:, 0:128].reshape(nb, 2, 64).astype(np.int32)
        qh = b[:, 128:192].reshape(nb, 2, 32).astype(np.int32)
        sc = b[:, 192:208].view(np.int8).astype(np.float32).reshape(nb, 2, 8)
        d = half(208)[:, :, None]
        q = np.empty((nb, 2, 4, 32), np.int32)
        q[:, :, 0] = (ql[:, :, :32] & 15) | ((qh & 3) << 4)
        q[:, :, 1] = (ql[:, :, 32:] & 15) | (((qh >> 2) & 3) << 4)
        q[:, :, 2] = (ql[:, :, :32] >> 4) | (((qh >> 4) & 3) << 4)
        q[:, :, 3] = (ql[:, :, 32:] >> 4) | (((qh >> 6) & 3) << 4)
        q = (q - 32).astype(np.float32).reshape(nb, 2, 8, 16)   # 16-value sub-blocks in order
        s = (d * sc)[:, :, :, None]
        return (s * q).reshape(-1)
    raise ValueError(f"cannot dequantize {kind}")


def tensor_values(t):
    """float32 array of a read_gguf tensor, in numpy shape (reversed ne)."""
    n = int(np.prod(t["ne"]))
    return dequantize(t["type"], t["data"], n).reshape(list(reversed(t["ne"])))


# ------------------------------------------------------------- converting

def permute(w, n_head):
    """Hugging Face rotate-half rows -> interleaved pairs (llama.cpp's permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    """The inverse: interleaved rows -> rotate-half."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensor_bytes(kind, dtype, a):
    """Raw bytes of a (dtype, array) weight stored as `kind`: the same dtype
    keeps its bits; anything else goes through float32."""
    if kind == "f32":
        return 0, hfio.to_float32(dtype, a).astype("<f4").tobytes()
    if kind == "f16" and dtype == "F16":
        return TYPES["f16"][0], np.asarray(a, "<f2").tobytes()
    if kind == "bf16" and dtype == "BF16":
        return TYPES["bf16"][0], np.asarray(a, "<u2").tobytes()
    return TYPES[kind][0], quantize(kind, hfio.to_float32(dtype, a))


def _kind_for(name, kind):
    """Storage of one tensor: norms F32; q4_k_m mixes as llama.cpp's Q4_K_M roughly does."""
    if name.endswith("norm.weight"):
        return "f32"
    if kind != "q4_k_m":
        return kind
    if name == "token_embd.weight":
        return "q8_0"
    if name == "output.weight" or name.endswith(("attn_v.weight", "ffn_down.weight")):
        return "q6_k"
    return "q4_k"


def llama_kv(arch, D, F, L, H, G, d, C, eps, theta, V, kind, name="strata-test"):
    kv = [("general.architecture", STR, arch), ("general.name", STR, name),
          (f"{arch}.context_length", U32, C), (f"{arch}.embedding_length", U32, D),
          (f"{arch}.block_count", U32, L), (f"{arch}.feed_forward_length", U32, F),
          (f"{arch}.attention.head_count", U32, H), (f"{arch}.attention.head_count_kv", U32, G),
          (f"{arch}.attention.layer_norm_rms_epsilon", F32V, eps),
          (f"{arch}.rope.dimension_count", U32, d), (f"{arch}.rope.freq_base", F32V, theta),
          (f"{arch}.vocab_size", U32, V), ("general.file_type", U32, FILE_TYPE.get(kind, 1))]
    if d * H != D:
        kv += [(f"{arch}.attention.key_length", U32, d), (f"{arch}.attention.value_length", U32, d)]
    if kind not in ("f32", "f16", "bf16"):
        kv.append(("general.quantization_version", U32, 2))
    return kv


def tokenizer_kv(source):
    """tokenizer.ggml.* keys from a llama2.c tokenizer (tok512.bin: pieces
    spelled with spaces, which SentencePiece writes as U+2581) or copied
    from another GGUF (e.g. a vocab-only file)."""
    if source is None:
        return []
    raw = open(source, "rb").read()
    if raw[:4] == b"GGUF":
        kv, _ = read_gguf(source)
        out = []
        for k, (t, v) in kv.items():
            if k.startswith("tokenizer."):
                out.append((k, t, v))
        return out
    pos, toks, scores = 4, [], []
    while pos < len(raw):
        s, n = struct.unpack_from("<fi", raw, pos)
        toks.append(raw[pos + 8:pos + 8 + n])
        scores.append(s)
        pos += 8 + n
    pieces, types = [], []
    for i, t in enumerate(toks):
        if i == 0:
            pieces.append("<unk>"), types.append(UNKNOWN)
        elif i in (1, 2):
            pieces.append("<s>" if i == 1 else "</s>"), types.append(CONTROL)
        elif 3 <= i < 259:
            pieces.append(t.decode()), types.append(BYTE)
        else:
            pieces.append(t.decode("utf-8", errors="surrogateescape").replace(" ", "\u2581"))
            types.append(NORMAL)
    return [("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ARR, (STR, pieces)),
            ("tokenizer.ggml.scores", ARR, (F32V, scores)),
            ("tokenizer.ggml.token_type", ARR, (I32, types)),
            ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
            ("tokenizer.ggml.unknown_token_id", U32, 0)]


def _llama3_factors(theta, d, sc):
    """rope_freqs.weight as convert_hf_to_gguf.py computes it for llama3."""
    freqs = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float32) / d)
    f, lo, hi = float(sc["factor"]), float(sc.get("low_freq_factor", 1.0)), float(sc.get("high_freq_factor", 4.0))
    C0 = float(sc.get("original_max_position_embeddings", 8192))
    out = []
    for fr in freqs:
        wl = 2 * math.pi / float(fr)
        if wl < C0 / hi:
            out.append(1.0)
        elif wl > C0 / lo:
            out.append(f)
        else:
            s = (C0 / wl - lo) / (hi - lo)
            out.append(1.0 / ((1 - s) / f + s))
    return np.asarray(out, np.float32)


def hf_to_gguf(hf_dir, out, kind="f32", tokenizer=None, normalize_head=None, alignment=32):
    """A Hugging Face checkpoint directory (single-file safetensors or .bin) as GGUF."""
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    wfile = next(os.path.join(hf_dir, f) for f in ("model.safetensors", "pytorch_model.bin")
                 if os.path.exists(os.path.join(hf_dir, f)))
    w = hfio.read_tensors(wfile)
    baichuan = cfg["architectures"][0] == "BaichuanForCausalLM"
    arch = "baichuan" if baichuan else "llama"
    D, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    H, V = cfg["num_attention_heads"], cfg["vocab_size"]
    G = cfg.get("num_key_value_heads") or H
    d = cfg.get("head_dim") or D // H
    C = cfg.get("max_position_embeddings") or cfg.get("model_max_length")
    theta = float(cfg.get("rope_theta", 10000.0))
    kv = llama_kv(arch, D, F, L, H, G, d, C, cfg.get("rms_norm_eps", 1e-6), theta, V, kind)
    extra = []
    sc = cfg.get("rope_scaling")
    if sc:
        t = sc.get("rope_type", sc.get("type"))
        if t == "linear":
            kv += [(f"{arch}.rope.scaling.type", STR, "linear"),
                   (f"{arch}.rope.scaling.factor", F32V, float(sc["factor"]))]
        elif t == "yarn":
            kv += [(f"{arch}.rope.scaling.type", STR, "yarn"),
                   (f"{arch}.rope.scaling.factor", F32V, float(sc["factor"])),
                   (f"{arch}.rope.scaling.original_context_length", U32,
                    int(sc.get("original_max_position_embeddings", C)))]
        elif t == "llama3":
            extra.append(("rope_freqs.weight", [d // 2], 0, _llama3_factors(theta, d, sc).tobytes()))
        else:
            raise ValueError(f"rope_scaling {t} has no GGUF form here")
    kv += tokenizer_kv(tokenizer)
    names = [("model.embed_tokens.weight", "token_embd.weight")]
    tensors = []
    if normalize_head is None:
        normalize_head = baichuan
    for l in range(L):
        p, q = f"model.layers.{l}.", f"blk.{l}."
        if baichuan:
            dt, pack = w.pop(p + "self_attn.W_pack.weight")
            w[p + "self_attn.q_proj.weight"] = (dt, pack[:H * d])
            w[p + "self_attn.k_proj.weight"] = (dt, pack[H * d:2 * H * d])
            w[p + "self_attn.v_proj.weight"] = (dt, pack[2 * H * d:])
        names += [(p + "input_layernorm.weight", q + "attn_norm.weight"),
                  (p + "self_attn.q_proj.weight", q + "attn_q.weight"),
                  (p + "self_attn.k_proj.weight", q + "attn_k.weight"),
                  (p + "self_attn.v_proj.weight", q + "attn_v.weight"),
                  (p + "self_attn.o_proj.weight", q + "attn_output.weight"),
                  (p + "post_attention_layernorm.weight", q + "ffn_norm.weight"),
                  (p + "mlp.gate_proj.weight", q + "ffn_gate.weight"),
                  (p + "mlp.up_proj.weight", q + "ffn_up.weight"),
                  (p + "mlp.down_proj.weight", q + "ffn_down.weight")]
    names.append(("model.norm.weight", "output_norm.weight"))
    if "lm_head.weight" in w and not cfg.get("tie_word_embeddings", False):
        names.append(("lm_head.weight", "output.weight"))
    for hf, gg in names:
        dt, a = w[hf]
        if gg.endswith("attn_q.weight"):
            a = permute(a, H)
        elif gg.endswith("attn_k.weight"):
            a = permute(a, G)
        elif gg == "output.weight" and normalize_head:
            x = hfio.to_float32(dt, a).astype(np.float64)
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            dt, a = "F32", x.astype(np.float32)
        k = _kind_for(gg, kind)
        t, raw = _tensor_bytes(k, dt, a)
        tensors.append((gg, list(reversed(a.shape)), t, raw))
    write_gguf(out, kv, tensors + extra, alignment=alignment)


def llama2c_to_gguf(path, out, kind="f32", tokenizer=None):
    """A llama2.c checkpoint (already interleaved: no permutation) as GGUF."""
    raw = open(path, "rb").read()
    D, F, L, H, G, Vs, C = struct.unpack_from("<7i", raw)
    V, shared, d = abs(Vs), Vs > 0, D // H
    f = np.frombuffer(raw, "<f4", offset=28)
    o = 0

    def take(*shape):
        nonlocal o
        n = int(np.prod(shape))
        a = f[o:o + n].reshape(shape)
        o += n
        return a
    emb = take(V, D)
    arrs = {k: take(L, *s) for k, s in (("attn_norm", (D,)), ("attn_q", (H * d, D)),
                                           ("attn_k", (G * d, D)), ("attn_v", (G * d, D)),
                                           ("attn_output", (D, H * d)), ("ffn_norm", (D,)),
                                           ("ffn_gate", (F, D)), ("ffn_down", (D, F)),
                                           ("ffn_up", (F, D)))}
    norm = take(D)
    take(C, d)  # freq_cis (unused)
    cls = None if shared else take(V, D)
    kv = llama_kv("llama", D, F, L, H, G, d, C, 1e-5, 10000.0, V, kind) + tokenizer_kv(tokenizer)
    tensors = []

    def add(name, a):
        k = _kind_for(name, kind)
        t, b = _tensor_bytes(k, "F32", a)
        tensors.append((name, list(reversed(a.shape)), t, b))
    add("token_embd.weight", emb)
    for l in range(L):
        for k in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                  "ffn_gate", "ffn_up", "ffn_down"):
            add(f"blk.{l}.{k}.weight", arrs[k][l])
    add("output_norm.weight", norm)
    if cls is not None:
        add("output.weight", cls)
    write_gguf(out, kv, tensors)


def gpt2_chars():
    """GPT-2's byte -> printable character map (bytes_to_unicode)."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    out, k = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + k)
            k += 1
    return out


def write_seeds(d):
    """Small valid files for the fuzzer (tests/fuzz/run.sh): a one-block
    model with every tensor type strata reads and a 16-piece SentencePiece
    vocabulary, and a vocabulary-only byte-level (gpt2) file."""
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(1)
    D, F, H, G, V = 32, 32, 2, 1, 16
    pieces = ["<unk>", "<s>", "</s>", "<0x41>", "\u2581", "a", "b", "c", "\u2581a", "ab",
              "\u2581ab", "ba", "<0x0A>", "\u2581b", "user", "cc"]
    types = [UNKNOWN, CONTROL, CONTROL, BYTE, NORMAL, NORMAL, NORMAL, NORMAL, NORMAL, NORMAL,
             NORMAL, NORMAL, BYTE, NORMAL, USER_DEFINED, NORMAL]
    kv = llama_kv("llama", D, F, 1, H, G, D // H, 8, 1e-5, 10000.0, V, "q8_0")
    kv += [("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ARR, (STR, pieces)),
           ("tokenizer.ggml.scores", ARR, (F32V, [-float(i) for i in range(V)])),
           ("tokenizer.ggml.token_type", ARR, (I32, types))]
    spec = [("token_embd.weight", (V, D), "q8_0"), ("blk.0.attn_norm.weight", (D,), "f32"),
            ("blk.0.attn_q.weight", (D, D), "q4_0"), ("blk.0.attn_k.weight", (D // 2, D), "f16"),
            ("blk.0.attn_v.weight", (D // 2, D), "bf16"), ("blk.0.attn_output.weight", (D, D), "q8_0"),
            ("blk.0.ffn_norm.weight", (D,), "f32"), ("blk.0.ffn_gate.weight", (F, D), "q4_0"),
            ("blk.0.ffn_up.weight", (F, D), "q8_0"), ("blk.0.ffn_down.weight", (D, F), "f16"),
            ("output_norm.weight", (D,), "f32"), ("output.weight", (V, D), "f32")]
    tensors = []
    for name, shape, kind in spec:
        a = 1.0 + 0.1 * rng.standard_normal(shape) if len(shape) == 1 else rng.standard_normal(shape) / 6
        tensors.append((name, list(reversed(shape)), TYPES[kind][0], quantize(kind, a.reshape(-1, shape[-1]))))
    tensors.append(("rope_freqs.weight", [D // H // 2], 0,
                    _llama3_factors(10000.0, D // H, {"factor": 8.0}).tobytes()))
    write_gguf(os.path.join(d, "model.gguf"), kv, tensors)
    ch = gpt2_chars()
    toks = ["<|endoftext|>"] + [ch[b] for b in range(256)] + [ch[32] + "a", "ab", ch[32] + "ab"]
    vkv = [("general.architecture", STR, "gpt2"), ("tokenizer.ggml.model", STR, "gpt2"),
           ("tokenizer.ggml.pre", STR, "gpt-2"), ("tokenizer.ggml.tokens", ARR, (STR, toks)),
           ("tokenizer.ggml.token_type", ARR, (I32, [CONTROL] + [NORMAL] * (len(toks) - 1))),
           ("tokenizer.ggml.merges", ARR, (STR, [ch[32] + " a", "a b", ch[32] + "a b"])),
           ("tokenizer.ggml.bos_token_id", U32, 0), ("tokenizer.ggml.eos_token_id", U32, 0)]
    write_gguf(os.path.join(d, "vocab-gpt2.gguf"), vkv, [])


def main(argv=None):
    ap = argparse.ArgumentParser(description="write a GGUF file from a Hugging Face or llama2.c "
                                 "checkpoint (strata's GGUF tests)")
    ap.add_argument("source", nargs="?", help="Hugging Face checkpoint directory or llama2.c .bin")
    ap.add_argument("out", nargs="?", help="output .gguf")
    ap.add_argument("--seeds", metavar="DIR", help="instead: write the fuzzer's seed files into DIR")
    ap.add_argument("--type", default="f32", choices=sorted(set(TYPES) | {"q4_k_m"}) ,
                    help="storage of the 2-D weights (norms stay f32)")
    ap.add_argument("--tokenizer", help="tok512.bin-style llama2.c tokenizer or a GGUF to copy "
                    "tokenizer.* keys from")
    ap.add_argument("--no-normalize-head", action="store_true",
                    help="Baichuan: keep lm_head as stored (default: normalize its rows)")
    a = ap.parse_args(argv)
    if a.seeds:
        write_seeds(a.seeds)
        return 0
    if not a.source or not a.out:
        ap.error("give SOURCE and OUT (or --seeds DIR)")
    try:
        if os.path.isdir(a.source):
            hf_to_gguf(a.source, a.out, a.type, a.tokenizer,
                       False if a.no_normalize_head else None)
        else:
            llama2c_to_gguf(a.source, a.out, a.type, a.tokenizer)
    except (OSError, ValueError, KeyError) as e:
        print(f"mkgguf: {e}", file=sys.stderr)
        return 1
    print(f"mkgguf: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
