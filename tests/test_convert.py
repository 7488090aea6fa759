#!/usr/bin/python3
"""test_convert.py — strata-convert and the Hugging Face path it opens for
llama2.c models.

What is compared:
- stories260K (llama2.c, interleaved RoPE) converted to HF safetensors
  (rotate-half, q/k rows permuted) gives the same residual stream at every
  boundary and the same logits as the llama2.c file, through
  build/tests/forward_dump, over 300 tokens (crossing attention tiles).
  Tolerance: |hf - llama2c| <= 2e-5 * max|llama2c at that boundary| (the
  two layouts do the same arithmetic in another order, so only float32
  rounding differs); observed values are printed.
- greedy generation through the HF copy reproduces llama2.c's published
  200-step text (tests/golden), with the tokenizer found beside the weights.
- the converted files themselves, read by tests/hfio.py (not strata):
  f32 copy holds the llama2.c arrays bit for bit (q/k rows permuted as
  docs/CHECKPOINTS.md states); bf16 copy holds every value rounded to
  nearest even (checked against hfio.to_bf16); --drop-layers 1,3 writes
  num_hidden_layers 3 with layers renumbered (output layer 1 = input
  layer 2) and forward_dump of the pruned copy runs.
- a model converted HF -> HF (a bf16 Baichuan-13B-shaped checkpoint with
  ALiBi, NormHead and W_pack, from tests/mkhf.py) gives bit-identical
  hidden states: the weights are the same numbers and the code path is the
  same.
- bad input: out-of-range --drop-layers, a missing model, an unknown
  --dtype: non-zero exit, one message naming the problem, no output files.

Environment: BUILD, BINDIR, SHARED, STRATA_TMP as tests/run.sh sets them.
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hfio  # noqa: E402
from pycheck import BINDIR, BUILD, STORIES, TOK, check, main, run  # noqa: E402

TMP = None  # set by main()
CONVERT = os.path.join(BINDIR, "strata-convert")
GENERATE = os.path.join(BINDIR, "strata-generate")
DUMP = os.path.join(BUILD, "tests", "forward_dump")
GOLDEN = os.path.join(HERE, "golden", "stories260K_greedy200.txt")


def forward(model, tokens, tag, *extra):
    h, lg = os.path.join(TMP, f"{tag}.h.npy"), os.path.join(TMP, f"{tag}.l.npy")
    rc, _, err = run([DUMP, "--model", model, "--tokens", ",".join(map(str, tokens)),
                      "--hidden", h, "--logits", lg, *extra])
    if not check(rc == 0, f"forward_dump {tag} exits 0: {err.strip()}"):
        return None, None
    return np.load(h), np.load(lg)


def llama2c_arrays(path):
    """name -> float32 array of a llama2.c checkpoint, read here (not by strata)."""
    raw = open(path, "rb").read()
    D, F, L, H, G, V, C = np.frombuffer(raw[:28], dtype=np.int32)
    shared = V > 0
    V = abs(V)
    d = D // H
    f = np.frombuffer(raw[28:], dtype=np.float32)
    out, o = {}, 0

    def take(name, shape):
        nonlocal o
        n = int(np.prod(shape))
        out[name] = f[o:o + n].reshape(shape)
        o += n
    take("emb", (V, D))
    for nm, shp in (("rms_att", (D,)), ("wq", (D, D)), ("wk", (G * d, D)), ("wv", (G * d, D)),
                    ("wo", (D, D)), ("rms_ffn", (D,)), ("w1", (F, D)), ("w2", (D, F)),
                    ("w3", (F, D))):
        take(nm, (L,) + shp)
    take("norm", (D,))
    return out, dict(D=D, F=F, L=L, H=H, G=G, V=V, d=d, shared=shared)


def halfperm(w, heads, d):
    """HF row h*d + j = llama2.c row h*d + 2j (j < d/2), h*d + 2(j-d/2)+1 else."""
    idx = []
    for h in range(heads):
        idx += [h * d + 2 * j for j in range(d // 2)] + [h * d + 2 * j + 1 for j in range(d // 2)]
    return w[idx]


def test_stories():
    out = os.path.join(TMP, "s260-hf")
    rc, _, err = run([CONVERT, "--model", STORIES, "--tokenizer", TOK, "-o", out])
    if not check(rc == 0, f"strata-convert stories260K exits 0: {err.strip()}"):
        return
    for f in ("config.json", "model.safetensors", "tokenizer.bin"):
        check(os.path.exists(os.path.join(out, f)), f"convert wrote {f}")
    check(not any(n.endswith(".partial") for n in os.listdir(out)), "no .partial file left")
    cfg = json.load(open(os.path.join(out, "config.json")))
    a, s = llama2c_arrays(STORIES)
    check(cfg["architectures"] == ["LlamaForCausalLM"] and cfg["num_hidden_layers"] == s["L"]
          and cfg["hidden_size"] == s["D"] and cfg["num_key_value_heads"] == s["G"]
          and cfg["rms_norm_eps"] == 1e-5 and cfg["tie_word_embeddings"] == bool(s["shared"]),
          f"config.json describes stories260K: {cfg}")

    t = hfio.read_tensors(os.path.join(out, "model.safetensors"))
    same = True
    for l in range(s["L"]):
        p = f"model.layers.{l}."
        pairs = [(p + "self_attn.q_proj.weight", halfperm(a["wq"][l], s["H"], s["d"])),
                 (p + "self_attn.k_proj.weight", halfperm(a["wk"][l], s["G"], s["d"])),
                 (p + "self_attn.v_proj.weight", a["wv"][l]), (p + "self_attn.o_proj.weight", a["wo"][l]),
                 (p + "mlp.gate_proj.weight", a["w1"][l]), (p + "mlp.down_proj.weight", a["w2"][l]),
                 (p + "mlp.up_proj.weight", a["w3"][l]), (p + "input_layernorm.weight", a["rms_att"][l]),
                 (p + "post_attention_layernorm.weight", a["rms_ffn"][l])]
        for name, want in pairs:
            dt, got = t[name]
            same &= dt == "F32" and np.array_equal(got, want)
    same &= np.array_equal(t["model.embed_tokens.weight"][1], a["emb"])
    same &= np.array_equal(t["model.norm.weight"][1], a["norm"])
    check(same, "f32 copy holds the llama2.c weights bit for bit (q/k rows re-paired)")

    rng = np.random.default_rng(7)
    toks = [1] + list(rng.integers(3, s["V"], size=299))
    h0, l0 = forward(STORIES, toks, "s260-l2c")
    h1, l1 = forward(out, toks, "s260-hf")
    if h0 is not None and h1 is not None:
        worst = 0.0
        for b in range(h0.shape[0]):
            scale = np.abs(h0[b]).max()
            worst = max(worst, np.abs(h1[b] - h0[b]).max() / scale)
        lrel = np.abs(l1 - l0).max() / np.abs(l0).max()
        print(f"stories260K llama2.c vs HF copy, 300 tokens: hidden max rel {worst:.2e}, "
              f"logits {lrel:.2e}")
        check(worst <= 2e-5, f"HF copy hidden states equal llama2.c's (rel {worst:.2e} <= 2e-5)")
        check(lrel <= 2e-5, f"HF copy logits equal llama2.c's (rel {lrel:.2e} <= 2e-5)")

    rc, txt, err = run([GENERATE, "--model", out, "--steps", "200", "--temperature", "0"])
    golden = open(GOLDEN).read()
    check(rc == 0 and txt == golden,
          f"greedy 200 steps through the HF copy equals the published run.c text "
          f"(tokenizer found beside the weights): rc {rc} {err.strip()} {txt[:80]!r}")

    # bf16 copy: every value rounded to nearest even.
    out16 = os.path.join(TMP, "s260-bf16")
    rc, _, err = run([CONVERT, "--model", STORIES, "--tokenizer", TOK, "--dtype", "bf16", "-o", out16])
    if check(rc == 0, f"convert --dtype bf16 exits 0: {err.strip()}"):
        t16 = hfio.read_tensors(os.path.join(out16, "model.safetensors"))
        ok = set(t16) == set(t)
        for name, (dt, val) in t.items():
            d16, bits = t16[name]
            ok &= d16 == "BF16" and np.array_equal(bits, hfio.to_bf16(val))
        check(ok, "bf16 copy = f32 weights rounded to nearest even, every tensor")
        hb, _ = forward(out16, toks[:64], "s260-bf16")
        check(hb is not None and np.isfinite(hb).all(), "bf16 copy runs")

    # Pruned copy.
    outp = os.path.join(TMP, "s260-drop")
    rc, _, err = run([CONVERT, "--model", STORIES, "--tokenizer", TOK, "--drop-layers", "1,3", "-o", outp])
    if check(rc == 0, f"convert --drop-layers 1,3 exits 0: {err.strip()}"):
        cp = json.load(open(os.path.join(outp, "config.json")))
        tp = hfio.read_tensors(os.path.join(outp, "model.safetensors"))
        check(cp["num_hidden_layers"] == s["L"] - 2, "pruned config has L-2 layers")
        check(not any(k.startswith(f"model.layers.{s['L'] - 2}.") for k in tp),
              "pruned copy has no layer numbered L-2")
        check(np.array_equal(tp["model.layers.1.mlp.up_proj.weight"][1], a["w3"][2]) and
              np.array_equal(tp["model.layers.0.mlp.up_proj.weight"][1], a["w3"][0]) and
              np.array_equal(tp["model.layers.2.mlp.up_proj.weight"][1], a["w3"][4]),
              "kept layers 0,2,4 are renumbered 0,1,2")
        hp, _ = forward(outp, toks[:64], "s260-drop")
        check(hp is not None and hp.shape[0] == s["L"] - 1, "pruned copy runs with L-2 blocks")

    # Bad input: each a clear error and no output.
    bad = os.path.join(TMP, "bad-out")
    for args, what in ((["--drop-layers", "9"], "out of range"),
                       (["--dtype", "f8"], "f8"),
                       (["--drop-layers", "0-4"], "at least one")):
        rc, _, err = run([CONVERT, "--model", STORIES, "--tokenizer", TOK, "-o", bad] + args)
        check(rc != 0 and what in err and "strata-convert" in err,
              f"convert {' '.join(args)}: exit {rc}, message names '{what}': {err.strip()}")
        check(not os.path.exists(os.path.join(bad, "model.safetensors")),
              f"convert {' '.join(args)} leaves no model.safetensors")
    rc, _, err = run([CONVERT, "--model", os.path.join(TMP, "nope"), "-o", bad])
    check(rc != 0 and "nope" in err, f"missing model named: {err.strip()}")


def test_hf_roundtrip():
    src = os.path.join(TMP, "bc13")
    rc, _, err = run([sys.executable, os.path.join(HERE, "mkhf.py"), "--arch", "baichuan13",
                      "--dtype", "bf16", "--out", src, "--dim", "320", "--heads", "40",
                      "--layers", "2", "--position-embedding", "alibi", "--seed", "5"])
    if not check(rc == 0, f"mkhf baichuan13 exits 0: {err.strip()}"):
        return
    dst = os.path.join(TMP, "bc13-copy")
    rc, _, err = run([CONVERT, "--model", src, "--tokenizer", TOK, "--dtype", "bf16", "-o", dst])
    if not check(rc == 0, f"convert Baichuan bf16 exits 0: {err.strip()}"):
        return
    cfg = json.load(open(os.path.join(dst, "config.json")))
    check(cfg["architectures"] == ["BaichuanForCausalLM"] and cfg["position_embedding"] == "alibi",
          f"Baichuan copy keeps its architecture and ALiBi: {cfg}")
    toks = [1] + list(np.random.default_rng(3).integers(3, 512, size=40))
    h0, l0 = forward(src, toks, "bc13-src")
    h1, l1 = forward(dst, toks, "bc13-dst")
    if h0 is not None and h1 is not None:
        check(np.array_equal(h0, h1) and np.array_equal(l0, l1),
              "HF -> HF copy (W_pack, ALiBi, NormHead, bf16) gives bit-identical hidden states "
              "and logits")


def test_widen_big():
    """A bf16 checkpoint whose blocks are large enough (3.4M elements) for the
    runtime to widen them on several threads gives exactly the hidden states
    of its float32 copy (the same bf16-rounded numbers, used in place)."""
    src = os.path.join(TMP, "w512.bin")
    rc, _, err = run([os.path.join(BUILD, "tests", "mkmodel"), "--dim", "512", "--hidden", "1536",
                      "--layers", "2", "--heads", "8", "--kv-heads", "8", "--vocab", "512",
                      "--seq-len", "128", "--seed", "9", "-o", src])
    if not check(rc == 0, f"mkmodel 512-wide exits 0: {err.strip()}"):
        return
    b16, f32 = os.path.join(TMP, "w512-bf16"), os.path.join(TMP, "w512-f32")
    rc1, _, e1 = run([CONVERT, "--model", src, "--tokenizer", TOK, "--dtype", "bf16", "-o", b16])
    rc2, _, e2 = run([CONVERT, "--model", b16, "--dtype", "f32", "-o", f32])
    if not check(rc1 == 0 and rc2 == 0, f"convert to bf16 and back to f32: {e1.strip()} {e2.strip()}"):
        return
    toks = [1] + list(np.random.default_rng(5).integers(3, 512, size=63))
    h0, l0 = forward(b16, toks, "w512-bf16")
    h1, l1 = forward(f32, toks, "w512-f32")
    if h0 is not None and h1 is not None:
        check(np.array_equal(h0, h1) and np.array_equal(l0, l1),
              "bf16 blocks widened on threads = their float32 copy, bit for bit")
    h2, l2 = forward(b16, toks, "w512-bf16-rel", "--release-weights")
    if h0 is not None and h2 is not None:
        check(np.array_equal(h0, h2) and np.array_equal(l0, l2),
              "release_weights (pages dropped after each block) changes nothing")


def body(tmp):
    global TMP
    TMP = tmp
    test_stories()
    test_hf_roundtrip()
    test_widen_big()


if __name__ == "__main__":
    main("test_convert", body)
