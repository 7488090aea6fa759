#!/usr/bin/python3
"""test_hf_ref.py — end-to-end check of strata's Hugging Face checkpoint
loader and forward pass (docs/CHECKPOINTS.md) against an independent float64
numpy reference (tests/ref_hf.py), on random checkpoints written by
tests/mkhf.py.

For each case a checkpoint is generated into $STRATA_TMP, the lead's test
tool `$BUILD/tests/forward_dump --model PATH --tokens 1,... --hidden H.npy
--logits LG.npy [--position-embedding rope|alibi|none]` runs one sequence of T tokens
(first token 1, the rest from a seeded rng) at positions 0..T-1, and its
float32 hidden states (L+1, T, D) and logits (T, V) are compared with
ref_hf.forward. Tolerance, per layer l (and likewise for the logits):
    |strata - ref| <= 1e-4 * max|ref at layer l| + 1e-5
The printed "rel" is the worst max|strata - ref| / max|ref| over the layers
and the logits.

Cases (f32 and bf16 each, one also f16; single-file and 3-shard,
safetensors and PyTorch .bin, every combination of the three occurring;
--model the directory and, for some, the weight file inside it; T 40, 64
or 70; the first variant of each case runs again with --attn-block 16 so
masks cross attention tiles):
  Llama with GQA (no scaling); rope_scaling linear, dynamic (T > C so it
  acts), yarn (defaults, and explicit beta_fast / beta_slow /
  attention_factor), llama3; tied embeddings; head_dim != D/H; no positions
  (--position-embedding none, and "position_embedding": "none" in config.json);
  Mistral with sliding_window 16 < T 64; Baichuan-7B shape (W_pack, RoPE,
  NormHead), also run with --position-embedding alibi; Baichuan-13B shape (W_pack,
  ALiBi with 40 heads from config.json's position_embedding, NormHead) and
  12 heads (ALiBi from --position-embedding alibi; 12 is not a power of two).
A safetensors file whose header length is 128 + 256k (k <= 5), so that its
first two bytes read like a pickle PROTO opcode, must still load.
Failure cases: forward_dump must exit non-zero (not by a signal) with the
culprit (file, tensor or config field) named on stderr: truncated shard,
safetensors offsets past the end of the file, a transposed tensor, an I32
tensor named like a weight, a shard named in the index but missing, a tensor
in no shard, an index naming the wrong shard for a tensor, malformed
config.json, a missing or mistyped required field, unknown architecture,
hidden_act "gelu", attention_bias true, Baichuan with num_key_value_heads !=
num_attention_heads, a directory without weights.

The reference is checked on its own first, so its verdict means something:
it equals tests/ref_llama2c.py (a separate implementation with interleaved
RoPE) on the same weights after un-permuting the q/k rows (HF row h*d + j,
j < d/2, is llama2.c row h*d + 2j; j >= d/2 is row h*d + 2(j - d/2) + 1);
rope_scaling linear with factor 1 and dynamic with T <= C equal no scaling
exactly; ALiBi slopes for 8, 12 and 40 heads equal the documented values;
Baichuan-7B equals Llama built from the same seed (W_pack split) up to the
NormHead; Mistral with a window W equals Llama on the first W positions and
differs from position W on (the window's edge, i - W < j); yarn and llama3
leave the highest frequency alone and divide the lowest by the factor.

Environment: BUILD (default build), BINDIR, SHARED (unused), STRATA_TMP
(scratch directory, else a temporary one), STRATA_SAN=1 (sanitizers: shorter
sequences). Prints "test_hf_ref: N passed, N failed" last; exits non-zero
on failure.
"""
import json
import os
import shutil
import struct
import sys
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hfio  # noqa: E402
import mkhf  # noqa: E402
import ref_hf  # noqa: E402
import ref_llama2c  # noqa: E402
from pycheck import BUILD, SAN, check, main, run  # noqa: E402


DUMP = os.path.join(BUILD, "tests", "forward_dump")
REL_TOL, ABS_TOL = 1e-4, 1e-5

T_RUN = 32 if SAN else 64          # tokens of the reference self-checks
T_CASES = (24, 32, 37) if SAN else (40, 64, 70)   # case i runs T_CASES[i % 3] tokens
ATTN_BLOCK = 16                    # a second run with --attn-block 16 (several tiles)
WINDOW = 8 if SAN else 16          # Mistral sliding window (< min(T_CASES))
C_DYN = 16 if SAN else 32          # max_position_embeddings of the dynamic case (< T)


def tokens_for(seed, T, V=512):
    rng = np.random.default_rng(seed)
    return [1] + [int(t) for t in rng.integers(2, V, T - 1)]


# ----------------------------------------------------------------- cases

# name, arch, mkhf.make_config keywords, forward_dump --position-embedding (or None),
# variants: (dtype, format, shards, --model the "dir" or the weight "file")
# (dtype cycles f32/bf16 so every case runs in both; formats and shard counts
# are spread so every combination of dtype, format and sharding occurs)
LIN = {"rope_type": "linear", "factor": 2.0}
DYN = {"type": "dynamic", "factor": 2.0}          # the legacy "type" spelling
YARN = {"rope_type": "yarn", "factor": 4.0}
YARN_P = {"rope_type": "yarn", "factor": 8.0, "beta_fast": 16, "beta_slow": 2,
          "attention_factor": 1.25}
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
CASES = [
    ("llama_gqa", "llama", dict(heads=4, kv_heads=2), None,
     [("f32", "safetensors", 1, "dir"), ("bf16", "bin", 3, "dir")]),
    ("llama_linear", "llama", dict(heads=4, kv_heads=2, rope_scaling=LIN), None,
     [("f32", "bin", 1, "dir"), ("bf16", "safetensors", 3, "dir")]),
    ("llama_dynamic", "llama", dict(heads=4, kv_heads=1, max_pos=C_DYN, rope_scaling=DYN), None,
     [("f32", "safetensors", 3, "dir"), ("bf16", "bin", 1, "dir")]),
    ("llama_yarn", "llama", dict(dim=128, heads=4, kv_heads=1, max_pos=64, rope_scaling=YARN),
     None, [("f32", "safetensors", 1, "file"), ("bf16", "bin", 3, "dir")]),
    ("llama_yarn_params", "llama", dict(dim=128, heads=4, kv_heads=2, max_pos=128,
                                        rope_scaling=YARN_P), None,
     [("bf16", "safetensors", 1, "dir")]),
    ("llama_llama3", "llama", dict(heads=4, kv_heads=2, rope_theta=500000.0,
                                   max_pos=512, rope_scaling=LLAMA3), None,
     [("f32", "bin", 3, "dir"), ("bf16", "safetensors", 1, "dir")]),
    ("llama_tied", "llama", dict(heads=4, kv_heads=4, tie=True), None,
     [("f32", "safetensors", 1, "file"), ("bf16", "bin", 1, "dir"),
      ("f16", "safetensors", 3, "dir")]),
    ("llama_headdim32", "llama", dict(dim=64, heads=4, kv_heads=2, head_dim=32), None,
     [("f32", "safetensors", 1, "dir"), ("bf16", "safetensors", 3, "dir")]),
    ("llama_nopos", "llama", dict(heads=4, kv_heads=2), "none",
     [("f32", "safetensors", 1, "dir")]),
    ("llama_nopos_config", "llama", dict(heads=4, kv_heads=2, position_embedding="none"), None,
     [("bf16", "bin", 1, "dir")]),
    ("mistral_window", "mistral", dict(heads=4, kv_heads=2, sliding_window=WINDOW), None,
     [("f32", "bin", 1, "dir"), ("bf16", "safetensors", 3, "dir")]),
    ("baichuan7", "baichuan7", dict(), None,
     [("f32", "safetensors", 1, "dir"), ("bf16", "bin", 3, "dir")]),
    ("baichuan7_alibi_cli", "baichuan7", dict(), "alibi",
     [("f32", "safetensors", 1, "dir")]),
    ("baichuan13_h40", "baichuan13", dict(dim=320, heads=40, layers=2), None,
     [("f32", "safetensors", 3, "dir"), ("bf16", "bin", 1, "dir"),
      ("bf16", "safetensors", 1, "file")]),
    ("baichuan13_h12", "baichuan13", dict(dim=96, heads=12, layers=2,
                                          position_embedding="omit"), "alibi",
     [("f32", "bin", 1, "dir"), ("bf16", "safetensors", 3, "dir")]),
]


def model_arg(d, fmt, shards, how):
    if how == "dir":
        return d
    if shards == 1:
        return os.path.join(d, "model.safetensors" if fmt == "safetensors"
                            else "pytorch_model.bin")
    return os.path.join(d, ("model.safetensors" if fmt == "safetensors"
                            else "pytorch_model.bin") + ".index.json")


def compare(label, got_h, got_lg, ref_h, ref_lg):
    """Per-layer and logits tolerance; returns the worst relative error."""
    ok = check(got_h.shape == ref_h.shape, f"{label}: hidden shape {got_h.shape} == "
               f"{ref_h.shape}")
    ok &= check(got_lg.shape == ref_lg.shape, f"{label}: logits shape {got_lg.shape} == "
                f"{ref_lg.shape}")
    if not ok:
        return float("nan")
    check(got_h.dtype == np.float32 and got_lg.dtype == np.float32,
          f"{label}: .npy arrays are float32 ({got_h.dtype}, {got_lg.dtype})")
    worst = 0.0
    bad = []
    parts = [(f"layer {l}", got_h[l], ref_h[l]) for l in range(ref_h.shape[0])]
    parts.append(("logits", got_lg, ref_lg))
    for what, g, r in parts:
        g = g.astype(np.float64)
        scale = np.abs(r).max()
        diff = np.abs(g - r).max() if np.all(np.isfinite(g)) else float("inf")
        worst = max(worst, diff / scale)
        if not diff <= REL_TOL * scale + ABS_TOL:
            bad.append(f"{what}: max|diff| {diff:.3g} > {REL_TOL * scale + ABS_TOL:.3g} "
                       f"(max|ref| {scale:.3g})")
    check(not bad, f"{label}: within 1e-4 * max|ref| + 1e-5 at every layer and the logits: "
          + "; ".join(bad))
    return worst


def run_cases(tmp, have_dump):
    for ci, (name, arch, kw, positions, variants) in enumerate(CASES):
        T = T_CASES[ci % len(T_CASES)]
        if name == "llama_dynamic":
            check(T > C_DYN, f"{name}: T {T} > C {C_DYN}, so dynamic scaling acts")
        toks = tokens_for(100 + ci, T)
        for vi, (dtype, fmt, shards, how) in enumerate(variants):
            label = f"{name} {dtype} {fmt} x{shards}" + (" (file)" if how == "file" else "")
            d = os.path.join(tmp, f"{name}_{dtype}_{fmt}_{shards}")
            try:
                mkhf.generate(d, arch, dtype, fmt, shards, seed=10 + ci, **kw)
                ref_h, ref_lg = ref_hf.forward(d, toks, positions)
            except (OSError, ValueError, KeyError) as e:
                check(False, f"{label}: generate / reference: {e!r}")
                continue
            if not have_dump:
                continue
            hp, lp = os.path.join(d, "hidden.npy"), os.path.join(d, "logits.npy")
            cmd = [DUMP, "--model", model_arg(d, fmt, shards, how),
                   "--tokens", ",".join(map(str, toks)), "--hidden", hp, "--logits", lp]
            if positions:
                cmd += ["--position-embedding", positions]
            rc, _, err = run(cmd)
            if not check(rc == 0, f"{label}: forward_dump exit {rc}: {err.strip()[-400:]}"):
                continue
            try:
                got_h, got_lg = np.load(hp), np.load(lp)
            except (OSError, ValueError) as e:
                check(False, f"{label}: np.load of the outputs: {e}")
                continue
            rel = compare(label, got_h, got_lg, ref_h, ref_lg)
            print(f"{label}: T {T}, worst rel diff {rel:.3g}")
            if vi:
                continue
            # the first variant again with attention in tiles of 16 query rows, so
            # windows, ALiBi and causal masks cross tile boundaries
            rc, _, err = run(cmd + ["--attn-block", str(ATTN_BLOCK)])
            label += f" --attn-block {ATTN_BLOCK}"
            if check(rc == 0, f"{label}: forward_dump exit {rc}: {err.strip()[-400:]}"):
                rel = compare(label, np.load(hp), np.load(lp), ref_h, ref_lg)
                print(f"{label}: T {T}, worst rel diff {rel:.3g}")


# ----------------------------------------------------------------- reference alone

def to_llama2c(m):
    """A ref_llama2c.Model holding the weights of ref_hf Model m (Llama,
    head_dim = D/H) with the q/k rows un-permuted back to interleaved pairs."""
    D, H, G, d, L = m.D, m.H, m.G, m.d, m.L
    half = d // 2

    def unpermute(w, n):
        # llama2.c row h*d + 2j + t  <-  HF row h*d + j + t*d/2
        rows = [h * d + j + t * half for h in range(n) for j in range(half) for t in (0, 1)]
        return w[rows]
    c = ref_llama2c.Model()
    c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads = D, m.F, L, H, G
    c.vocab_size, c.seq_len = m.V, 4096
    c.shared_classifier = m.tie
    lw = lambda s: np.stack([m.w[f"model.layers.{l}.{s}"] for l in range(L)])  # noqa: E731
    c.w = {
        "token_embedding": m.w["model.embed_tokens.weight"],
        "rms_att": lw("input_layernorm.weight"),
        "wq": np.stack([unpermute(m.w[f"model.layers.{l}.self_attn.q_proj.weight"], H)
                        for l in range(L)]),
        "wk": np.stack([unpermute(m.w[f"model.layers.{l}.self_attn.k_proj.weight"], G)
                        for l in range(L)]),
        "wv": lw("self_attn.v_proj.weight"),
        "wo": lw("self_attn.o_proj.weight"),
        "rms_ffn": lw("post_attention_layernorm.weight"),
        "w1": lw("mlp.gate_proj.weight"),
        "w2": lw("mlp.down_proj.weight"),
        "w3": lw("mlp.up_proj.weight"),
        "rms_final": m.w["model.norm.weight"],
        "wcls": m.w["classifier"],
    }
    return c


def maxrel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def check_reference_alone(tmp):
    T = T_RUN
    toks = tokens_for(7, T)
    # llama2.c's reference (interleaved RoPE, eps 1e-5) on un-permuted weights
    for heads, kv in ((4, 2), (2, 2)):
        d = os.path.join(tmp, f"ref_llama2c_{heads}_{kv}")
        mkhf.generate(d, "llama", "f32", "safetensors", 1, seed=3, heads=heads, kv_heads=kv,
                      rms_norm_eps=ref_llama2c.NORM_EPS)
        m = ref_hf.load(d)
        h1, lg1 = ref_hf.forward(m, toks)
        h2, lg2 = ref_llama2c.forward(to_llama2c(m), toks)
        r = max(maxrel(h1, h2), maxrel(lg1, lg2))
        check(r < 1e-12, f"reference: HF rotate-half == llama2.c interleaved after the row "
              f"permutation (H {heads}, G {kv}): max rel diff {r:.3g}")
        print(f"reference: equals ref_llama2c.py on un-permuted q/k (H {heads}, G {kv}): "
              f"max rel diff {r:.3g}")
        # and the permutation matters: without it the two disagree
        c = to_llama2c(m)
        c.w["wq"] = np.stack([m.w[f"model.layers.{l}.self_attn.q_proj.weight"]
                              for l in range(m.L)])
        c.w["wk"] = np.stack([m.w[f"model.layers.{l}.self_attn.k_proj.weight"]
                              for l in range(m.L)])
        r = maxrel(ref_llama2c.forward(c, toks)[0], h1)
        check(r > 1e-3, f"reference: without the permutation the two differ ({r:.3g})")

    # scaling fixed points: linear factor 1 and dynamic with T <= C are no scaling
    m = ref_hf.load(os.path.join(tmp, "ref_llama2c_4_2"))
    base_h, base_lg = ref_hf.forward(m, toks)
    for sc, C in (({"rope_type": "linear", "factor": 1.0}, 2048),
                  ({"type": "dynamic", "factor": 4.0}, T),
                  ({"rope_type": "dynamic", "factor": 2.0}, 4 * T)):
        m.rope_scaling, m.C = sc, C
        h, lg = ref_hf.forward(m, toks)
        check(np.array_equal(h, base_h) and np.array_equal(lg, base_lg),
              f"reference: {sc} with T {T}, C {C} equals no scaling exactly")
    m.rope_scaling, m.C = {"type": "dynamic", "factor": 4.0}, T - 1
    check(not np.array_equal(ref_hf.forward(m, toks)[0], base_h),
          "reference: dynamic with T = C + 1 changes the hidden states")
    d = 16
    f0, _ = ref_hf.inv_freq(10000.0, d)
    check(np.allclose(f0, 10000.0 ** (-np.arange(0, d, 2) / d), rtol=1e-15, atol=0),
          "reference: theta_i = base^(-2i/d)")
    f, _ = ref_hf.inv_freq(10000.0, d, {"type": "dynamic", "factor": 2.0}, 32, 64)
    want = (10000.0 * 3.0 ** (d / (d - 2))) ** (-np.arange(0, d, 2) / d)
    check(np.allclose(f, want, rtol=1e-14, atol=0),
          "reference: dynamic s 2, P 2C: base' = base * 3^(d/(d-2))")
    f, att = ref_hf.inv_freq(10000.0, 32, YARN, 64)
    f0, _ = ref_hf.inv_freq(10000.0, 32)
    check(f[0] == f0[0] and abs(f[-1] - f0[-1] / 4) < 1e-18 and np.all(f <= f0) and
          np.all(f >= f0 / 4 * (1 - 1e-15)),
          f"reference: yarn keeps theta_0, divides theta_(d/2-1) by s: {f / f0}")
    check(abs(att - (0.1 * np.log(4.0) + 1)) < 1e-15, f"reference: yarn attention factor {att}")
    f, _ = ref_hf.inv_freq(500000.0, 16, LLAMA3, 512)
    f0, _ = ref_hf.inv_freq(500000.0, 16)
    ratio = f / f0
    check(ratio[0] == 1.0 and 1 / 8 < ratio[1] < 1.0 and np.allclose(ratio[3:], 1 / 8),
          f"reference: llama3 keeps the high frequency, smooths the middle, divides the low "
          f"by 8: {ratio}")

    # ALiBi slopes
    s8 = ref_hf.alibi_slopes(8)
    check(np.array_equal(s8, 2.0 ** -np.arange(1, 9)), f"reference: ALiBi slopes H 8: {s8}")
    s12 = ref_hf.alibi_slopes(12)
    want12 = np.concatenate([2.0 ** -np.arange(1, 9), 2.0 ** -np.array([0.5, 1.5, 2.5, 3.5])])
    check(np.allclose(s12, want12, rtol=1e-15, atol=0), f"reference: ALiBi slopes H 12: {s12}")
    s40 = ref_hf.alibi_slopes(40)
    want40 = np.concatenate([2.0 ** (-np.arange(1, 33) / 4), 2.0 ** (-np.arange(1, 16, 2) / 8)])
    check(np.allclose(s40, want40, rtol=1e-15, atol=0), "reference: ALiBi slopes H 40")
    print(f"reference: ALiBi slopes H 12 = {np.array2string(s12, precision=4)}")

    # Baichuan-7B from the same seed as an MHA Llama has the same weights: same
    # hidden states; logits equal Llama's with the classifier rows normalized
    mk = dict(heads=4, kv_heads=4)
    dl, db = os.path.join(tmp, "ref_same_llama"), os.path.join(tmp, "ref_same_b7")
    mkhf.generate(dl, "llama", "f32", "safetensors", 1, seed=5, rms_norm_eps=1e-6, **mk)
    mkhf.generate(db, "baichuan7", "f32", "bin", 1, seed=5)
    ml, mb = ref_hf.load(dl), ref_hf.load(db)
    hl, _ = ref_hf.forward(ml, toks)
    hb, lgb = ref_hf.forward(mb, toks)
    cls = ml.w["lm_head.weight"]
    ml.w["classifier"] = cls / np.linalg.norm(cls, axis=1, keepdims=True)
    _, lgl = ref_hf.forward(ml, toks)
    r = max(maxrel(hb, hl), maxrel(lgb, lgl))
    check(r < 1e-13, f"reference: Baichuan-7B W_pack split + NormHead == Llama, same weights: "
          f"{r:.3g}")

    # Mistral window W: equal to Llama before position W, different at W
    dm = os.path.join(tmp, "ref_same_mistral")
    mkhf.generate(dm, "mistral", "f32", "safetensors", 1, seed=5, rms_norm_eps=1e-6,
                  sliding_window=WINDOW, **mk)
    hm, _ = ref_hf.forward(dm, toks)
    check(np.array_equal(hm[:, :WINDOW], hl[:, :WINDOW]),
          f"reference: sliding window {WINDOW} leaves positions < {WINDOW} alone")
    check(np.abs(hm[1, WINDOW] - hl[1, WINDOW]).max() > 1e-6,
          f"reference: sliding window {WINDOW}: position {WINDOW} no longer sees key 0")
    mw = ref_hf.load(dm)
    mw.window = T
    check(np.array_equal(ref_hf.forward(mw, toks)[0], hl),
          f"reference: sliding window {T} = T equals no window")


# ----------------------------------------------------------------- magic bytes

def check_header_magic(tmp):
    """A safetensors file whose 8-byte header length starts 0x80 0x0k (k <= 5)
    begins like a pickle PROTO opcode; it is still safetensors (byte 8 is
    '{') and must load. Header lengths 128 + 256k, k = 0..5, do this; the
    metadata is padded to hit one of them."""
    cfg = mkhf.make_config("llama", heads=4, kv_heads=2, layers=1)
    tensors = mkhf.encode(mkhf.make_weights(cfg, seed=6), "f32")
    d = os.path.join(tmp, "magic_0x80")
    mkhf.write(d, cfg, tensors, "safetensors", 1)
    path = os.path.join(d, "model.safetensors")
    hit = None
    for n in range(0, 1500):
        hfio.write_safetensors(path, tensors, {"format": "pt", "pad": "x" * n})
        with open(path, "rb") as f:
            (hlen,) = struct.unpack("<Q", f.read(8))
        if hlen % 256 == 0x80 and hlen < 0x600:
            hit = hlen
            break
    if not check(hit is not None, "magic: found a metadata padding giving header length "
                 "128 + 256k"):
        return
    toks = tokens_for(8, T_RUN)
    ref_h, ref_lg = ref_hf.forward(d, toks)
    hp, lp = os.path.join(d, "hidden.npy"), os.path.join(d, "logits.npy")
    label = f"safetensors header length {hit} (0x{hit:x}: first bytes 80 {hit >> 8:02x})"
    rc, _, err = run([DUMP, "--model", d, "--tokens", ",".join(map(str, toks)),
                      "--hidden", hp, "--logits", lp])
    if check(rc == 0, f"{label}: loads as safetensors: exit {rc}: {err.strip()[-300:]}"):
        rel = compare(label, np.load(hp), np.load(lp), ref_h, ref_lg)
        print(f"{label}: worst rel diff {rel:.3g}")


# ----------------------------------------------------------------- failures

def st_header(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack_from("<Q", raw, 0)
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def st_rewrite(path, header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def edit_config(d, fn):
    p = os.path.join(d, "config.json")
    with open(p) as f:
        cfg = json.load(f)
    fn(cfg)
    with open(p, "w") as f:
        json.dump(cfg, f, indent=2)


def check_failures(tmp):
    toks = ",".join(map(str, tokens_for(9, 16)))
    base_kw = dict(heads=4, kv_heads=2)
    cfg = mkhf.make_config("llama", **base_kw)
    good = mkhf.make_weights(cfg, seed=4)
    Q0 = "model.layers.0.self_attn.q_proj.weight"
    K1 = "model.layers.1.self_attn.k_proj.weight"
    N1 = "model.layers.1.post_attention_layernorm.weight"

    def fresh(name, fmt="safetensors", shards=1, weights=None, arch="llama", kw=None):
        d = os.path.join(tmp, "bad_" + name)
        shutil.rmtree(d, ignore_errors=True)
        c = mkhf.make_config(arch, **(base_kw if kw is None else kw))
        w = weights if weights is not None else (good if kw is None else
                                                 mkhf.make_weights(c, seed=4))
        mkhf.write(d, c, mkhf.encode(w, "f32"), fmt, shards)
        return d

    def shard_files(d, ext):
        with open(os.path.join(d, f"{'model' if ext == 'safetensors' else 'pytorch_model'}"
                               f".{ext}.index.json")) as f:
            wmap = json.load(f)["weight_map"]
        return wmap

    def expect_fail(label, model, culprits, extra=()):
        rc, _, err = run([DUMP, "--model", model, "--tokens", toks,
                          "--hidden", os.path.join(tmp, "bad_h.npy"),
                          "--logits", os.path.join(tmp, "bad_lg.npy")] + list(extra))
        check(rc > 0, f"{label}: forward_dump exits non-zero, not by a signal (got {rc}): "
              f"{err.strip()[-300:]}")
        named = any(c in err for c in culprits)
        check(named, f"{label}: stderr names {' or '.join(culprits)}: {err.strip()[-300:]!r}")
        print(f"{label}: exit {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}")

    # the untouched model runs: the failures below are the edits' doing
    d = fresh("control", "safetensors", 3)
    rc, _, err = run([DUMP, "--model", d, "--tokens", toks, "--hidden",
                      os.path.join(tmp, "ok_h.npy"), "--logits", os.path.join(tmp, "ok_lg.npy")])
    check(rc == 0, f"failure cases: the unedited control model runs: exit {rc}: {err[-300:]}")

    wmap = shard_files(d, "safetensors")
    shard2 = sorted(set(wmap.values()))[1]
    p = os.path.join(d, shard2)
    with open(p, "rb") as f:
        raw = f.read()
    with open(p, "wb") as f:
        f.write(raw[:-100])
    expect_fail("truncated safetensors shard", d, [shard2])

    d = fresh("trunc_bin", "bin", 1)
    p = os.path.join(d, "pytorch_model.bin")
    with open(p, "rb") as f:
        raw = f.read()
    with open(p, "wb") as f:
        f.write(raw[:-300])
    expect_fail("truncated pytorch_model.bin", d, ["pytorch_model.bin"])

    d = fresh("offsets_past_end")
    p = os.path.join(d, "model.safetensors")
    header, data = st_header(p)
    b, e = header[Q0]["data_offsets"]
    header[Q0]["data_offsets"] = [len(data) + 64, len(data) + 64 + (e - b)]
    st_rewrite(p, header, data)
    expect_fail("safetensors offsets past the end of the file", d, [Q0])

    w = dict(good)
    w[K1] = good[K1].T.copy()
    expect_fail("k_proj stored transposed", fresh("transposed", weights=w), [K1])
    w = dict(good)
    w["model.layers.2.mlp.down_proj.weight"] = good["model.layers.2.mlp.down_proj.weight"].T.copy()
    expect_fail("down_proj stored transposed (.bin)", fresh("transposed_bin", "bin", weights=w),
                ["model.layers.2.mlp.down_proj.weight"])

    d = fresh("i32")
    p = os.path.join(d, "model.safetensors")
    header, data = st_header(p)
    header[Q0]["dtype"] = "I32"              # same size: only the dtype is wrong
    st_rewrite(p, header, data)
    expect_fail("I32 tensor named like a weight", d, [Q0])

    d = fresh("missing_shard", "bin", 3)
    wmap = shard_files(d, "bin")
    gone = sorted(set(wmap.values()))[2]
    os.remove(os.path.join(d, gone))
    expect_fail("shard named in the index but missing", d, [gone])

    w = {k: v for k, v in good.items() if k != N1}
    expect_fail("tensor in no shard", fresh("no_tensor", "safetensors", 3, weights=w), [N1])
    w = {k: v for k, v in good.items() if k != "lm_head.weight"}
    expect_fail("lm_head missing, not tied (.bin)", fresh("no_lm_head", "bin", weights=w),
                ["lm_head.weight"])

    d = fresh("wrong_shard", "safetensors", 3)
    ip = os.path.join(d, "model.safetensors.index.json")
    with open(ip) as f:
        index = json.load(f)
    files = sorted(set(index["weight_map"].values()))
    index["weight_map"][N1] = [x for x in files if x != index["weight_map"][N1]][0]
    with open(ip, "w") as f:
        json.dump(index, f)
    expect_fail("index names a shard that does not hold the tensor", d, [N1])

    d = fresh("bad_json")
    with open(os.path.join(d, "config.json"), "r+") as f:
        text = f.read()
        f.seek(0)
        f.truncate()
        f.write(text[:len(text) // 2])
    expect_fail("malformed config.json", d, ["config.json"])

    d = fresh("no_layers")
    edit_config(d, lambda c: c.pop("num_hidden_layers"))
    expect_fail("config without num_hidden_layers", d, ["num_hidden_layers"])
    d = fresh("str_layers")
    edit_config(d, lambda c: c.update(num_hidden_layers="3"))
    expect_fail("num_hidden_layers is a string", d, ["num_hidden_layers"])
    d = fresh("gpt2")
    edit_config(d, lambda c: c.update(architectures=["GPT2LMHeadModel"]))
    expect_fail("unknown architecture", d, ["GPT2LMHeadModel"])
    d = fresh("gelu")
    edit_config(d, lambda c: c.update(hidden_act="gelu"))
    expect_fail("hidden_act gelu", d, ["gelu"])
    d = fresh("attn_bias")
    edit_config(d, lambda c: c.update(attention_bias=True))
    expect_fail("attention_bias true", d, ["attention_bias"])
    d = fresh("baichuan_gqa", arch="baichuan7", kw=dict(heads=4))
    edit_config(d, lambda c: c.update(num_key_value_heads=2))
    expect_fail("Baichuan with num_key_value_heads != num_attention_heads", d,
                ["num_key_value_heads"])
    d = fresh("no_weights")
    os.remove(os.path.join(d, "model.safetensors"))
    expect_fail("directory without weight files", d, [d, "model.safetensors"])

    # non-finite weights and a non-positive norm epsilon: one rule in the
    # loader (issue 13), whatever the format and dtype
    for dt, fmt in (("f32", "safetensors"), ("bf16", "safetensors"), ("f16", "bin")):
        w = {k: v.copy() for k, v in good.items()}
        w[K1][1, 2] = np.nan if dt != "f16" else np.inf
        d = os.path.join(tmp, f"bad_nan_{dt}")
        shutil.rmtree(d, ignore_errors=True)
        mkhf.write(d, cfg, mkhf.encode(w, dt), fmt, 1)
        expect_fail(f"non-finite weight ({dt}, {fmt})", d, ["block 1 wk element"])
    d = fresh("eps")
    edit_config(d, lambda c: c.update(rms_norm_eps=-1))
    expect_fail("rms_norm_eps -1", d, ["rms_norm_eps"])

    # lenient files are refused, not guessed at (issue 13): two tensors
    # sharing bytes, a zip member given twice, a config key given twice
    d = fresh("overlap")
    p = os.path.join(d, "model.safetensors")
    header, data = st_header(p)
    O0 = "model.layers.0.self_attn.o_proj.weight"
    header[O0]["data_offsets"] = list(header[Q0]["data_offsets"])
    st_rewrite(p, header, data)
    expect_fail("two tensors share bytes", d, ["overlap"])
    d = fresh("dupzip", "bin", 1)
    p = os.path.join(d, "pytorch_model.bin")
    with zipfile.ZipFile(p) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    last = [e for e in entries if "/data/" in e[0]][-1]
    hfio._zip_write(p, entries + [last])
    expect_fail("a zip member given twice", d, ["appears twice"])
    d = fresh("dupkey")
    cp = os.path.join(d, "config.json")
    with open(cp) as f:
        text = f.read()
    with open(cp, "w") as f:
        f.write(text.replace("{", '{"num_hidden_layers": 2, ', 1))
    expect_fail("a config key given twice", d, ["num_hidden_layers\" is given twice"])

    # a checkpoint with no tensors at all is an error, not an assertion
    for fmt, shards in (("safetensors", 1), ("bin", 1), ("safetensors", 3)):
        d = os.path.join(tmp, f"bad_empty_{fmt}_{shards}")
        shutil.rmtree(d, ignore_errors=True)
        mkhf.write(d, cfg, mkhf.encode(good, "f32"), fmt, shards)
        if shards == 1 and fmt == "safetensors":
            st_rewrite(os.path.join(d, "model.safetensors"), {}, b"")
        elif shards == 1:  # a torch.save of {}
            hfio.write_torch_bin(os.path.join(d, "pytorch_model.bin"), {})
        else:
            ip = os.path.join(d, "model.safetensors.index.json")
            with open(ip) as f:
                index = json.load(f)
            index["weight_map"] = {}
            with open(ip, "w") as f:
                json.dump(index, f)
        expect_fail(f"no tensors ({fmt}, {shards} file(s))", d, ["holds no tensors"])


# ----------------------------------------------------------------- main

def body(tmp):
    check_reference_alone(tmp)
    have = check(os.access(DUMP, os.X_OK), f"{DUMP} exists (make builds it)")
    run_cases(tmp, have)
    if have:
        check_header_magic(tmp)
        check_failures(tmp)


if __name__ == "__main__":
    main("test_hf_ref", body)
