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
- the tokenizer goes along (issue 14): from tok512.bin, a tokenizer.json in
  the shape transformers' LlamaConverter gives (BPE, byte fallback, "▁"
  for spaces, merges from the scores, added tokens <unk> <s> </s>) and a
  tokenizer_config.json, no tokenizer.bin; through strata (tokenize_tool)
  it encodes the first 200 TinyStories documents to exactly tok512.bin's
  ids, and through python tokenizers / transformers too where importable
  (not on Debian 12: no package; the checks then say so and are skipped).
  From a SentencePiece tokenizer.model (Llama 2's, beside a vocab-32000
  model): the .model copied byte for byte plus a tokenizer.json whose vocab
  and 61249 merges equal tests/gguf2hf.py's (the converter's algorithm) and
  whose ids equal tokenizer.model's and python sentencepiece's; converting
  that copy again copies tokenizer.json, tokenizer.model,
  tokenizer_config.json and special_tokens_map.json byte for byte.
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
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hfio  # noqa: E402
from pycheck import BINDIR, BUILD, CORPUS, SHARED, STORIES, TOK, check, main, run  # noqa: E402

TMP = None  # set by main()
CONVERT = os.path.join(BINDIR, "strata-convert")
GENERATE = os.path.join(BINDIR, "strata-generate")
DUMP = os.path.join(BUILD, "tests", "forward_dump")
TOOL = os.path.join(BUILD, "tests", "tokenize_tool")
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
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        check(os.path.exists(os.path.join(out, f)), f"convert wrote {f}")
    check(not os.path.exists(os.path.join(out, "tokenizer.bin")),
          "no llama2.c tokenizer.bin in the Hugging Face copy")
    check(not any(n.endswith(".partial") for n in os.listdir(out)), "no .partial file left")
    check_stories_tokenizer(out)
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


def tokenize(tok, texts, tag, bos=True):
    """(kind, ids per text) from build/tests/tokenize_tool."""
    inp, outp = os.path.join(TMP, f"{tag}.in"), os.path.join(TMP, f"{tag}.out")
    with open(inp, "wb") as f:
        for t in texts:
            f.write(struct.pack("<I", len(t)) + t)
    rc, _, err = run([TOOL] + (["--bos"] if bos else []) + [tok, inp, outp])
    if not check(rc == 0, f"tokenize_tool {tag} exits 0: {err.strip()}"):
        return None, []
    lines = open(outp, encoding="utf-8").read().split("\n")
    return lines[0].split(" ", 1)[1], [[int(x) for x in ln.split()] if not ln.startswith("error")
                                       else ln for ln in lines[1:1 + len(texts)]]


def stories(n):
    """The first n TinyStories documents, as bytes."""
    docs = open(CORPUS, "rb").read().split(b"<|endoftext|>")
    return [d.strip(b"\n") for d in docs[:n]]


def hf_reference(out, texts, tag):
    """ids (with BOS) from python `tokenizers` on OUT/tokenizer.json and from
    transformers' AutoTokenizer on OUT, where importable; None each otherwise."""
    tk = tf = None
    try:
        from tokenizers import Tokenizer
        t = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        tk = [t.encode(x.decode("utf-8")).ids for x in texts]
    except ImportError:
        print(f"{tag}: python tokenizers not importable, its check skipped")
    try:
        from transformers import AutoTokenizer
        t = AutoTokenizer.from_pretrained(out)
        tf = [t.encode(x.decode("utf-8")) for x in texts]
    except ImportError:
        print(f"{tag}: python transformers not importable, its check skipped")
    return tk, tf


def check_stories_tokenizer(out):
    """The tokenizer.json written from tok512.bin: LlamaConverter's shape, and
    the same ids as tok512.bin on 200 TinyStories documents through strata
    (and through tokenizers/transformers where installed)."""
    if not all(os.path.exists(os.path.join(out, f)) for f in ("tokenizer.json",
                                                               "tokenizer_config.json")):
        return
    j = json.load(open(os.path.join(out, "tokenizer.json"), encoding="utf-8"))
    c = json.load(open(os.path.join(out, "tokenizer_config.json"), encoding="utf-8"))
    m = j["model"]
    check(m["type"] == "BPE" and m["byte_fallback"] and m["unk_token"] == "<unk>"
          and len(m["vocab"]) == 512 and m["vocab"]["<0x0A>"] == 13
          and m["vocab"]["\u2581t"] == 259 and not any(" " in p for p in m["vocab"]),
          "tokenizer.json: BPE, byte fallback, 512 pieces with spaces spelled \u2581")
    check([(a["id"], a["content"], a["special"]) for a in j["added_tokens"]]
          == [(0, "<unk>", True), (1, "<s>", True), (2, "</s>", True)],
          f"added tokens <unk> <s> </s>: {j['added_tokens']}")
    check(j["normalizer"]["normalizers"][0] == {"type": "Prepend", "prepend": "\u2581"}
          and j["normalizer"]["normalizers"][1]["content"] == "\u2581", "Prepend + Replace")
    check(m["merges"][0] == "\u2581 t" and len(m["merges"]) == len(set(m["merges"])),
          f"merges follow the scores (first '\u2581 t'): {m['merges'][:3]}")
    check(c["bos_token"] == "<s>" and c["eos_token"] == "</s>" and c["model_max_length"] == 512,
          f"tokenizer_config.json: {c}")

    docs = stories(200)
    kind_hf, got = tokenize(out, docs, "s260-json")
    kind_l2c, want = tokenize(TOK, docs, "s260-bin")
    same = sum(g == w for g, w in zip(got, want))
    n_tok = sum(len(w) for w in want)
    print(f"stories260K tokenizer.json vs tok512.bin: {same} of {len(docs)} documents, "
          f"{n_tok} tokens")
    check(kind_hf == "hf-bpe" and kind_l2c == "llama2c" and same == len(docs) == 200,
          f"the converted tokenizer.json ({kind_hf}) encodes 200 TinyStories documents to "
          f"tok512.bin's ids ({kind_l2c}): {same} equal")
    tk, tf = hf_reference(out, docs, "test_convert")
    if tk is not None:
        check(tk == want, "python tokenizers on the converted tokenizer.json gives tok512's ids")
    if tf is not None:
        check(tf == want, "transformers AutoTokenizer on the converted copy gives tok512's ids")


def test_spm_source():
    """A llama2.c model beside a SentencePiece tokenizer.model: the copy keeps
    the .model byte for byte and gains a tokenizer.json equal to what
    transformers' converter makes (tests/gguf2hf.py from llama.cpp's copy
    of the same vocabulary) that strata reads with sentencepiece's ids.
    Converting that copy again (HF -> HF) copies the tokenizer files as
    they are."""
    model_src = os.path.join(SHARED, "models", "llama2-tokenizer", "tokenizer.model")
    src = os.path.join(TMP, "spm-src")
    os.makedirs(src, exist_ok=True)
    shutil.copy(model_src, os.path.join(src, "tokenizer.model"))
    rc, _, err = run([os.path.join(BUILD, "tests", "mkmodel"), "--dim", "8", "--hidden", "16",
                      "--layers", "1", "--heads", "2", "--vocab", "32000", "--seq-len", "64",
                      "-o", os.path.join(src, "model.bin")])
    if not check(rc == 0, f"mkmodel vocab 32000: {err.strip()}"):
        return
    out = os.path.join(TMP, "spm-hf")
    rc, _, err = run([CONVERT, "--model", os.path.join(src, "model.bin"), "-o", out])
    if not check(rc == 0, f"convert beside tokenizer.model exits 0: {err.strip()}"):
        return
    check(sorted(os.listdir(out)) == ["config.json", "model.safetensors", "tokenizer.json",
                                      "tokenizer.model", "tokenizer_config.json"],
          f"copy holds weights, tokenizer.model, tokenizer.json, config: {os.listdir(out)}")
    check(open(os.path.join(out, "tokenizer.model"), "rb").read() == open(model_src, "rb").read(),
          "tokenizer.model copied byte for byte")
    ref = os.path.join(TMP, "llama-spm.json")
    rc, _, err = run([sys.executable, os.path.join(HERE, "gguf2hf.py"), "spm",
                      os.path.join(SHARED, "models", "gguf-vocab", "ggml-vocab-llama-spm.gguf"), ref])
    if check(rc == 0, f"gguf2hf.py spm: {err.strip()}") and \
            check(os.path.exists(os.path.join(out, "tokenizer.json")), "tokenizer.json written"):
        a = json.load(open(ref, encoding="utf-8"))["model"]
        b = json.load(open(os.path.join(out, "tokenizer.json"), encoding="utf-8"))["model"]
        check(a["vocab"] == b["vocab"] and [" ".join(x) for x in a["merges"]] == b["merges"],
              f"vocab and all {len(b['merges'])} merges equal the converter's")
    texts = stories(100) + ["naïve café 日本語 Привет 🦙 a▁b".encode(), b"ab\xff", b"\xe2\x96 x"]
    kind, got = tokenize(out, texts, "spm-json")
    _, want = tokenize(os.path.join(src, "tokenizer.model"), texts, "spm-model")
    check(kind == "hf-bpe" and got == want and len(got) == len(texts),
          f"the written tokenizer.json ({kind}) gives tokenizer.model's ids on {len(texts)} texts")
    try:
        import sentencepiece
        sp = sentencepiece.SentencePieceProcessor(model_file=model_src)
        check(got == [[1] + sp.encode(t) for t in texts], "... which are sentencepiece's ids")
    except ImportError:
        print("test_convert: python sentencepiece not importable, its check skipped")

    # HF -> HF: tokenizer files copied as they are.
    again = os.path.join(TMP, "spm-hf2")
    extra = os.path.join(out, "special_tokens_map.json")
    open(extra, "w").write('{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}\n')
    rc, _, err = run([CONVERT, "--model", out, "-o", again])
    if check(rc == 0, f"convert the copy again exits 0: {err.strip()}"):
        def data(d, f):
            p = os.path.join(d, f)
            return open(p, "rb").read() if os.path.exists(p) else None
        same = all(data(out, f) is not None and data(out, f) == data(again, f)
                   for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                             "special_tokens_map.json"))
        check(same, "HF -> HF copies tokenizer.json, tokenizer.model, tokenizer_config.json and "
                    "special_tokens_map.json byte for byte")
        check(not any(n.endswith(".partial") for n in os.listdir(again)), "no .partial file left")


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
    test_spm_source()
    test_hf_roundtrip()
    test_widen_big()


if __name__ == "__main__":
    main("test_convert", body)
