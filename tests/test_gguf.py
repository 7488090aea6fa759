#!/usr/bin/python3
"""test_gguf.py — GGUF checkpoints (llama.cpp's format) through strata:
weights, config, tokenizer and bad input. GGUF files are written by
tests/mkgguf.py (numpy, from ggml's spec; shares no code with strata).

What is compared, and how closely:
(1) dtypes kept as stored. A Llama with GQA (L 4, H 4, G 2, D 64) written by
    tests/mkhf.py and converted to GGUF F32: strata's hidden states and
    logits equal those of the same safetensors checkpoint through strata to
    |gguf - hf| <= 1e-5 * max|hf| (GGUF rows are interleaved, HF rows
    rotate-half: the same arithmetic in another order, so float32 rounding
    only), and the float64 numpy reference (tests/ref_hf.py) to 1e-4. A
    llama2.c checkpoint of the same shape (build/tests/mkmodel: already
    interleaved) and its GGUF F32 copy give bit-identical results. F16 and
    BF16 GGUFs made from F16/BF16 safetensors: strata-convert of the loaded
    GGUF back to float32 safetensors holds exactly the stored values
    (q/k rows permuted back); the forward pass is bit-identical to a GGUF
    F32 holding the widened values in the same layout, and matches the
    F16/BF16 safetensors copy to 1e-5.
(2) quantized types Q8_0, Q4_0, Q4_K, Q6_K and a Q4_K_M-like mix (D 256, so
    every row is whole K-blocks): every tensor strata-convert writes from
    the loaded GGUF equals the numpy decoding of the same bytes
    (mkgguf.dequantize) bit for bit; the quantization error against the
    original float weights lies in the range expected of each type (a
    sanity check on the writer); strata's forward pass matches the float64
    reference run on the decoded weights to 1e-4.
    Also: Baichuan 7B (W_pack split, lm_head normalized as llama.cpp users
    do for NormHead) and the 13B shape with ALiBi (--position-embedding
    alibi, since a small model is not recognisable as 13B), tied embeddings,
    head_dim != D/H, RoPE scaling linear and yarn as metadata and llama3 as
    rope_freqs.weight, each against the safetensors checkpoint to 1e-5
    (and the scaling cases differ from unscaled runs, so they are seen).
(3) tokenizer: the vocabulary-only GGUFs of llama.cpp
    ($SHARED/models/gguf-vocab) encode their .inp vectors to the .out ids
    through strata_tokenizer_open on the .gguf (SentencePiece and GPT-2
    byte-level kinds), also from a directory holding only the .gguf; the
    Baichuan vocabulary equals the tokenizer.model tests/gguf2hf.py builds
    from it; the stories260K tokenizer in a GGUF equals tok512.bin on corpus
    text. A vocabulary-only GGUF as --model fails with "no tensors".
(4) stories260K (llama2.c) converted to GGUF F32 with its tokenizer: the
    same logits and hidden states over 300 tokens bit for bit, and
    strata-generate with the tokenizer read from the GGUF prints the
    published 200-step text (tests/golden).
(5) bad input through strata-generate: truncation, bad magic, version 1,
    big-endian, huge string length and array count, tensor beyond the
    file, n_dims 5, unknown and unsupported types, duplicate tensor and
    key, overlapping and misaligned tensors, NaN weights (F32 and a Q8_0
    scale), a bad alignment, missing and mistyped keys, shape mismatch,
    unknown architecture, an extra tensor: exit 1 (never a crash) with a
    message naming the file and the problem.

Environment: BUILD, BINDIR, SHARED, STRATA_TMP as tests/run.sh sets them.
"""
import glob
import json
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hfio  # noqa: E402
import mkgguf as mg  # noqa: E402
import mkhf  # noqa: E402
import ref_hf  # noqa: E402
from pycheck import BINDIR, BUILD, CORPUS, SHARED, STORIES, TOK, check, main, run  # noqa: E402

TMP = None
DUMP = os.path.join(BUILD, "tests", "forward_dump")
MKMODEL = os.path.join(BUILD, "tests", "mkmodel")
TOKTOOL = os.path.join(BUILD, "tests", "tokenize_tool")
CONVERT = os.path.join(BINDIR, "strata-convert")
GENERATE = os.path.join(BINDIR, "strata-generate")
GOLDEN = os.path.join(HERE, "golden", "stories260K_greedy200.txt")
VOCAB = os.path.join(SHARED, "models", "gguf-vocab")
TOKENS = [1, 5, 9, 33, 100, 7, 300, 2, 8, 9, 77, 411, 3, 250, 19, 64]


def forward(model, tag, *extra, tokens=TOKENS):
    h, lg = os.path.join(TMP, f"{tag}.h.npy"), os.path.join(TMP, f"{tag}.l.npy")
    rc, _, err = run([DUMP, "--model", model, "--tokens", ",".join(map(str, tokens)),
                      "--hidden", h, "--logits", lg, *extra])
    if not check(rc == 0, f"forward_dump {tag} exits 0: {err.strip()}"):
        return None
    return np.load(h), np.load(lg)


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


def close(got, want, tol, what):
    """got, want: (hidden, logits) pairs; relative max error of each <= tol."""
    if got is None or want is None:
        return check(False, f"{what}: no result")
    e = max(rel(got[0], want[0]), rel(got[1], want[1]))
    print(f"  {what}: max rel diff {e:.2e} (tol {tol:g})")
    return check(e <= tol, f"{what}: rel diff {e:.3g} > {tol:g}")


def tensors_f32(path):
    return {k: hfio.to_float32(*v) for k, v in hfio.read_tensors(path).items()}


def convert(model, out, *extra):
    rc, _, err = run([CONVERT, "-q", "--model", model, "-o", out, *extra])
    check(rc == 0, f"strata-convert {model} exits 0: {err.strip()}")
    return rc == 0


GG2HF = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
         "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
         "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
         "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def hf_name(g):
    top = {"token_embd.weight": "model.embed_tokens.weight",
           "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
    if g in top:
        return top[g]
    _, l, k, _ = g.split(".")
    return f"model.layers.{l}.{GG2HF[k]}.weight"


# ------------------------------------------------------------------ (1)

def test_dtypes():
    print("(1) F32, F16, BF16")
    shape = dict(dim=64, layers=4, heads=4, kv_heads=2)
    hf = os.path.join(TMP, "hf32")
    mkhf.generate(hf, "llama", "f32", seed=3, **shape)
    g = os.path.join(TMP, "f32.gguf")
    mg.hf_to_gguf(hf, g, "f32")
    a = forward(g, "f32g")
    close(a, forward(hf, "f32h"), 1e-5, "GGUF F32 vs safetensors F32")
    ref = ref_hf.forward(hf, TOKENS)
    close(a, ref, 1e-4, "GGUF F32 vs float64 reference")
    # the loaded config, as strata-convert records it
    out = os.path.join(TMP, "f32conv")
    if convert(g, out, "--tokenizer", TOK):
        c, src = json.load(open(os.path.join(out, "config.json"))), json.load(open(os.path.join(hf, "config.json")))
        for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "vocab_size", "max_position_embeddings", "rope_theta",
                  "rms_norm_eps", "tie_word_embeddings"):
            check(c.get(k) == src.get(k), f"config {k}: {c.get(k)} == {src.get(k)}")
        w, orig = tensors_f32(os.path.join(out, "model.safetensors")), tensors_f32(os.path.join(hf, "model.safetensors"))
        check(all(np.array_equal(w[k], orig[k]) for k in orig), "F32 GGUF -> safetensors holds the original values")

    # llama2.c (interleaved like GGUF): bit for bit
    b = os.path.join(TMP, "gqa.bin")
    rc, _, err = run([MKMODEL, "--dim", "64", "--layers", "4", "--heads", "4", "--kv-heads", "2",
                      "--seed", "5", "-o", b])
    if check(rc == 0, f"mkmodel: {err}"):
        gb = os.path.join(TMP, "gqa.gguf")
        mg.llama2c_to_gguf(b, gb, "f32")
        x, y = forward(gb, "gqag"), forward(b, "gqab")
        check(x is not None and y is not None and np.array_equal(x[0], y[0])
              and np.array_equal(x[1], y[1]), "GQA llama2.c vs its GGUF F32: bit-identical")

    for dt in ("f16", "bf16"):
        hd = os.path.join(TMP, f"hf_{dt}")
        mkhf.generate(hd, "llama", dt, seed=4, **shape)
        gd = os.path.join(TMP, f"{dt}.gguf")
        mg.hf_to_gguf(hd, gd, dt)
        _, ts = mg.read_gguf(gd)
        want = mg.TYPES[dt][0]
        check(all(t["type"] == want for n, t in ts.items() if len(t["ne"]) == 2),
              f"{dt} GGUF stores its matrices as {dt}")
        out = os.path.join(TMP, f"{dt}conv")
        if convert(gd, out, "--tokenizer", TOK, "--dtype", "f32"):
            w = tensors_f32(os.path.join(out, "model.safetensors"))
            orig = tensors_f32(os.path.join(hd, "model.safetensors"))
            bad = [k for k in orig if not np.array_equal(w.get(k), orig[k])]
            check(not bad, f"{dt} GGUF -> f32 safetensors equals the {dt} values exactly: {bad[:3]}")
        x = forward(gd, f"{dt}g")
        close(x, forward(hd, f"{dt}h"), 1e-5, f"GGUF {dt} vs safetensors {dt}")
        # the same values stored as F32 in the same (interleaved) layout: widening is exact
        g32 = os.path.join(TMP, f"{dt}as32.gguf")
        mg.hf_to_gguf(hd, g32, "f32")
        y = forward(g32, f"{dt}as32")
        check(x is not None and y is not None and np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]),
              f"GGUF {dt} == GGUF F32 of the widened {dt} values, bit for bit")


# ------------------------------------------------------------------ (2)

QUANT_ERR = {"q8_0": (1e-3, 0.012), "q6_k": (4e-3, 0.04), "q4_k": (0.02, 0.13),
             "q4_0": (0.02, 0.15)}


def test_quantized():
    print("(2) Q8_0, Q4_0, Q4_K, Q6_K, mixed")
    hf = os.path.join(TMP, "hfq")
    mkhf.generate(hf, "llama", "f32", seed=6, dim=256, hidden=512, layers=2, heads=4, kv_heads=2)
    orig = tensors_f32(os.path.join(hf, "model.safetensors"))
    for kind in ("q8_0", "q4_0", "q4_k", "q6_k", "q4_k_m"):
        g = os.path.join(TMP, f"{kind}.gguf")
        mg.hf_to_gguf(hf, g, kind)
        _, ts = mg.read_gguf(g)
        types = {mg.TYPE_NAMES[t["type"]] for t in ts.values() if len(t["ne"]) == 2}
        want = {"q8_0", "q4_k", "q6_k"} if kind == "q4_k_m" else {kind}
        check(types == want, f"{kind}: the matrices are stored as {types}")
        out = os.path.join(TMP, f"{kind}conv")
        if not convert(g, out, "--tokenizer", TOK):
            continue
        conv = tensors_f32(os.path.join(out, "model.safetensors"))
        bad, errs = [], {}
        for name, t in ts.items():
            v = mg.tensor_values(t)
            if name.endswith("attn_q.weight"):
                v = mg.unpermute(v, 4)
            elif name.endswith("attn_k.weight"):
                v = mg.unpermute(v, 2)
            h = hf_name(name)
            if not np.array_equal(v, conv[h]):
                bad.append(name)
            if v.ndim == 2:
                e = float(np.sqrt(np.mean((v - orig[h]) ** 2) / np.mean(orig[h] ** 2)))
                errs.setdefault(mg.TYPE_NAMES[t["type"]], []).append(e)
        check(not bad, f"{kind}: strata's dequantized weights equal numpy's bit for bit: {bad[:3]}")
        for ty, es in errs.items():
            lo, hi = QUANT_ERR[ty]
            print(f"  {kind}: {ty} rel rms error {min(es):.4f}..{max(es):.4f}")
            check(lo <= min(es) and max(es) <= hi, f"{kind}: {ty} error {min(es):.4f}..{max(es):.4f} "
                  f"outside {lo}..{hi}")
        close(forward(g, kind), ref_hf.forward(out, TOKENS), 1e-4,
              f"GGUF {kind} vs float64 reference on the decoded weights")


def test_variants():
    print("(2) Baichuan, ALiBi, tied, head_dim, RoPE scaling")
    cases = [("baichuan7", dict(dim=64, heads=4, layers=2), ()),
             ("baichuan13", dict(dim=64, heads=4, layers=2), ("--position-embedding", "alibi")),
             ("llama", dict(dim=64, heads=4, layers=2, tie=True), ()),
             ("llama", dict(dim=64, heads=4, kv_heads=2, layers=2, head_dim=32), ())]
    for i, (arch, kw, extra) in enumerate(cases):
        hf = os.path.join(TMP, f"var{i}")
        mkhf.generate(hf, arch, "f32", seed=10 + i, **kw)
        g = hf + ".gguf"
        mg.hf_to_gguf(hf, g, "f32")
        what = f"{arch} {kw} {' '.join(extra)}"
        want = forward(hf, f"var{i}h")
        close(forward(g, f"var{i}g", *extra), want, 1e-5, f"GGUF {what} vs safetensors")
        if arch == "baichuan13":  # a small model is RoPE by shape; ALiBi must matter
            other = forward(g, f"var{i}r")
            check(other is not None and want is not None and rel(other[1], want[1]) > 1e-3,
                  "Baichuan GGUF without --position-embedding alibi differs (RoPE)")
    scalings = [{"rope_type": "linear", "factor": 2.0},
                {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512},
                {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}]
    toks = list(range(1, 200, 3))
    for sc in scalings:
        hf = os.path.join(TMP, f"rs_{sc['rope_type']}")
        mkhf.generate(hf, "llama", "f32", seed=20, dim=64, heads=2, layers=2, max_pos=131072,
                      rope_theta=500000.0, rope_scaling=sc)
        g = hf + ".gguf"
        mg.hf_to_gguf(hf, g, "f32")
        if sc["rope_type"] == "llama3":
            _, ts = mg.read_gguf(g)
            check("rope_freqs.weight" in ts, "llama3 scaling is written as rope_freqs.weight")
        want = forward(hf, "rsh", tokens=toks)
        close(forward(g, "rsg", tokens=toks), want, 1e-5, f"GGUF rope_scaling {sc['rope_type']}")
        plain = forward(g, "rsn", "--rope-scaling", "none", tokens=toks)
        check(plain is not None and want is not None and rel(plain[1], want[1]) > 1e-4,
              f"rope_scaling {sc['rope_type']} changes the result (so it was applied)")


# ------------------------------------------------------------------ (3)

def encode(tok, texts, tag):
    """ids (list of lists or error strings) of texts through tokenize_tool."""
    inp, out = os.path.join(TMP, f"{tag}.in"), os.path.join(TMP, f"{tag}.out")
    with open(inp, "wb") as f:
        for t in texts:
            f.write(struct.pack("<I", len(t)) + t)
    rc, _, err = run([TOKTOOL, tok, inp, out])
    if rc != 0:
        return None, err.strip()
    lines = open(out, encoding="utf-8", errors="replace").read().split("\n")
    return lines[0], [ln.split() for ln in lines[1:1 + len(texts)]]


def vectors(name):
    inp = open(os.path.join(VOCAB, name + ".inp"), "rb").read().split(b"\n__ggml_vocab_test__\n")[:-1]
    out = open(os.path.join(VOCAB, name + ".out")).read().split("\n")[:len(inp)]
    return inp, [ln.split() for ln in out]


def test_tokenizer():
    print("(3) tokenizer")
    for name, kind in (("ggml-vocab-llama-spm.gguf", "sentencepiece"),
                       ("ggml-vocab-mpt.gguf", "hf-bytelevel")):
        texts, want = vectors(name)
        head, got = encode(os.path.join(VOCAB, name), texts, name)
        if not check(head is not None, f"{name} opens: {got}"):
            continue
        check(head == f"kind {kind}", f"{name}: {head}")
        n_bad = sum(g != w for g, w in zip(got, want))
        print(f"  {name}: {len(texts) - n_bad} of {len(texts)} vectors")
        check(len(texts) == 46 and n_bad == 0, f"{name}: {n_bad} vectors differ")
        d = os.path.join(TMP, "dir_" + name)
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(VOCAB, name), d)
        head2, got2 = encode(d, texts, name + "dir")
        check(head2 == head and got2 == got, f"{name} from a directory holding only it")
    d2 = os.path.join(TMP, "two_gguf")
    os.makedirs(d2, exist_ok=True)
    for name in ("ggml-vocab-llama-spm.gguf", "ggml-vocab-mpt.gguf"):
        shutil.copy(os.path.join(VOCAB, name), d2)
    head, err = encode(d2, [b"a"], "two")
    check(head is None and "2 .gguf files" in err, f"a directory with two .gguf files is refused: {err}")

    # Baichuan: the GGUF tokenizer vs the tokenizer.model made from it
    bc = os.path.join(VOCAB, "ggml-vocab-baichuan.gguf")
    model = os.path.join(TMP, "baichuan.model")
    rc, _, err = run([sys.executable, os.path.join(HERE, "gguf2hf.py"), "model", bc, model])
    if check(rc == 0, f"gguf2hf model: {err}"):
        texts, _ = vectors("ggml-vocab-llama-spm.gguf")
        texts += [ln.encode() for ln in open(CORPUS, encoding="utf-8").read().split("\n")[:100] if ln]
        a, b = encode(bc, texts, "bc_gguf"), encode(model, texts, "bc_model")
        check(a[0] == "kind sentencepiece" and a == b,
              "Baichuan vocabulary: GGUF and tokenizer.model encode alike")

    # stories260K's tokenizer moved into a GGUF vs tok512.bin
    s = os.path.join(TMP, "s260.gguf")
    mg.llama2c_to_gguf(STORIES, s, "f32", tokenizer=TOK)
    docs = [ln.encode() for ln in open(CORPUS, encoding="utf-8").read().split("\n")[:300] if ln.strip()]
    a, b = encode(s, docs, "s_gguf"), encode(TOK, docs, "s_tok")
    check(a[1] is not None and a[1] == b[1], "tok512 in a GGUF encodes the corpus as tok512.bin does")

    rc, _, err = run([GENERATE, "--model", os.path.join(VOCAB, "ggml-vocab-llama-spm.gguf"), "--steps", "4"])
    check(rc == 1 and "no tensors" in err and "ggml-vocab-llama-spm.gguf" in err,
          f"a vocabulary-only GGUF as --model: {err.strip()}")
    g = os.path.join(TMP, "notok.gguf")
    mg.llama2c_to_gguf(STORIES, g, "f32")
    rc, _, err = run([GENERATE, "--model", g, "--steps", "4"])
    check(rc == 1 and "no tokenizer" in err and "--tokenizer" in err,
          f"a GGUF without tokenizer and no --tokenizer: {err.strip()}")


# ------------------------------------------------------------------ (4)

def test_stories():
    print("(4) stories260K")
    s = os.path.join(TMP, "s260.gguf")
    if not os.path.exists(s):
        mg.llama2c_to_gguf(STORIES, s, "f32", tokenizer=TOK)
    toks = [1] + [(i * 37 + 11) % 512 for i in range(299)]
    a, b = forward(s, "s260g", tokens=toks), forward(STORIES, "s260b", tokens=toks)
    if a is not None and b is not None:
        print(f"  max |diff|: hidden {np.abs(a[0] - b[0]).max():.3g}, logits {np.abs(a[1] - b[1]).max():.3g}")
    check(a is not None and b is not None and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]),
          "stories260K GGUF F32 == llama2.c, bit for bit")
    rc, out, err = run([GENERATE, "--model", s, "--steps", "200", "-q"])
    check(rc == 0 and out == open(GOLDEN).read(), f"strata-generate on the GGUF prints the golden text: {err}")
    d = os.path.join(TMP, "s260dir")
    os.makedirs(d, exist_ok=True)
    shutil.copy(s, d)
    rc, out2, err = run([GENERATE, "--model", d, "--steps", "200", "-q"])
    check(rc == 0 and out2 == out, f"--model DIR holding only the .gguf: {err}")
    # version 2 and another alignment read the same
    kv, ts = parts(s)
    for what, kw in (("version 2", dict(version=2)), ("alignment 64", dict(align=64))):
        p = os.path.join(TMP, f"s260_{what.replace(' ', '')}.gguf")
        extra = [("general.alignment", mg.U32, 64)] if "align" in kw else []
        open(p, "wb").write(assemble(kv + extra, [tuple(t) for t in ts], **kw))
        c = forward(p, "s260v", tokens=toks)
        check(c is not None and b is not None and np.array_equal(c[1], b[1]), f"stories260K GGUF {what}")


# ------------------------------------------------------------------ (5)

def assemble(kv, tensors, version=3, align=32, n_t=None, n_kv=None, magic=b"GGUF"):
    """GGUF bytes from kv [(key, vtype, value)] (or raw bytes entries) and
    tensors [(name, ne, type, data, offset or None)]."""
    infos, data = [], bytearray()
    for name, ne, t, raw, off in tensors:
        if off is None:
            off = -(-len(data) // align) * align
            data += b"\0" * (off - len(data)) + raw
        infos.append(mg.enc_tensor_info(name, ne, t, off))
    head = magic + struct.pack("<IQQ", version, len(tensors) if n_t is None else n_t,
                               len(kv) if n_kv is None else n_kv)
    head += b"".join(e if isinstance(e, bytes) else mg.enc_kv(*e) for e in kv) + b"".join(infos)
    head += b"\0" * (-len(head) % align)
    return head + bytes(data)


def parts(path):
    kv, ts = mg.read_gguf(path)
    return ([(k, t, v) for k, (t, v) in kv.items()],
            [[n, t["ne"], t["type"], t["data"], None] for n, t in ts.items()])


def test_bad_input():
    print("(5) bad input")
    tiny = os.path.join(TMP, "tiny.bin")
    rc, _, err = run([MKMODEL, "--dim", "32", "--hidden", "64", "--layers", "1", "--heads", "2",
                      "--seed", "7", "-o", tiny])
    if not check(rc == 0, f"mkmodel tiny: {err}"):
        return
    good, goodq, good8 = (os.path.join(TMP, f"tiny_{k}.gguf") for k in ("f32", "q4_0", "q8_0"))
    mg.llama2c_to_gguf(tiny, good, "f32", tokenizer=TOK)
    mg.llama2c_to_gguf(tiny, goodq, "q4_0", tokenizer=TOK)
    mg.llama2c_to_gguf(tiny, good8, "q8_0", tokenizer=TOK)
    for p in (good, goodq, good8):
        rc, _, err = run([GENERATE, "--model", p, "--steps", "4", "-q"])
        check(rc == 0, f"the valid base file {os.path.basename(p)} runs: {err.strip()}")
    raw = open(good, "rb").read()
    kv, ts = parts(good)
    kvq, tsq = parts(goodq)
    kv8, ts8 = parts(good8)

    def with_kv(key, vtype, value, base=kv):
        return [(k, t, v) if k != key else (k, vtype, value) for k, t, v in base]

    def tensor(which, base, **chg):
        out = [list(t) for t in base]
        for t in out:
            if t[0] == which:
                for k, v in chg.items():
                    t[{"name": 0, "ne": 1, "type": 2, "data": 3, "offset": 4}[k]] = v
        return out
    nan = bytearray(ts[0][3])
    nan[8:12] = struct.pack("<f", float("nan"))
    q8nan = bytearray([t for t in ts8 if t[0] == "blk.0.attn_q.weight"][0][3])
    q8nan[34:36] = b"\x00\x7e"  # the second block's scale: f16 NaN
    kvmap = dict((k, (t, v)) for k, t, v in kv)
    cases = [
        ("truncated header", raw[:20], "too short"),
        ("truncated metadata", raw[:300], "truncated"),
        ("truncated data", raw[:len(raw) // 2], "beyond the end of the file"),
        ("one byte short", raw[:-1], "beyond the end of the file"),
        ("bad magic", b"GGUG" + raw[4:], "magic"),
        ("version 1", raw[:4] + struct.pack("<I", 1) + raw[8:], "version 1"),
        ("version 9", raw[:4] + struct.pack("<I", 9) + raw[8:], "version 9"),
        ("big-endian", raw[:4] + struct.pack(">I", 3) + raw[8:], "big-endian"),
        ("huge tensor count", raw[:8] + struct.pack("<Q", 1 << 60) + raw[16:], "claims"),
        ("huge key length", assemble([struct.pack("<Q", 1 << 62) + b"x"] + kv, [tuple(t) for t in ts]),
         "length"),
        ("huge value string", assemble([mg.enc_str("general.name") + struct.pack("<IQ", mg.STR, 1 << 62)] + kv,
                                       [tuple(t) for t in ts]), "truncated"),
        ("huge array count", assemble([mg.enc_str("x.arr") + struct.pack("<IIQ", mg.ARR, mg.U32, 1 << 61)] + kv,
                                      [tuple(t) for t in ts]), "claims"),
        ("nested array", assemble([mg.enc_str("x.arr") + struct.pack("<IIQ", mg.ARR, mg.ARR, 1)] + kv,
                                  [tuple(t) for t in ts]), "nested"),
        ("bad value type", assemble([mg.enc_str("x.v") + struct.pack("<I", 13) + b"\0" * 8] + kv,
                                    [tuple(t) for t in ts]), "value type 13"),
        ("tensor offset beyond the file", assemble(kv, tensor("blk.0.ffn_up.weight", ts, offset=1 << 40)),
         "beyond the end of the file"),
        ("n_dims 5", assemble(kv, tensor("blk.0.attn_q.weight", ts, ne=[32, 32, 1, 1, 1])), "n_dims 5"),
        ("unknown type", assemble(kv, tensor("blk.0.attn_q.weight", ts, type=77)), "type 77"),
        ("unsupported type", assemble(kvq, tensor("blk.0.attn_q.weight", tsq, type=20)), "IQ4_NL"),
        ("duplicate tensor", assemble(kv, tensor("blk.0.attn_k.weight", ts, name="blk.0.attn_q.weight")),
         "given twice"),
        ("duplicate key", assemble(kv + [kv[0]], [tuple(t) for t in ts]), "given twice"),
        ("overlapping tensors", assemble(kv, [t if t[0] != "blk.0.attn_k.weight" else t[:4] + [0]
                                              for t in (list(x) for x in ts)]), "overlap"),
        ("misaligned tensor", assemble(kv, tensor("output_norm.weight", ts, offset=4)), "multiple of"),
        ("NaN in an F32 weight", assemble(kv, tensor(ts[0][0], ts, data=bytes(nan))), "not finite"),
        ("NaN Q8_0 scale", assemble(kv8, tensor("blk.0.attn_q.weight", ts8, data=bytes(q8nan))), "not finite"),
        ("alignment 24", assemble(kv + [("general.alignment", mg.U32, 24)], [tuple(t) for t in ts], align=24),
         "power of two"),
        ("mistyped key", assemble(with_kv("llama.block_count", mg.STR, "one"), [tuple(t) for t in ts]),
         "llama.block_count"),
        ("missing key", assemble([e for e in kv if e[0] != "llama.embedding_length"], [tuple(t) for t in ts]),
         "llama.embedding_length"),
        ("shape mismatch", assemble(with_kv("llama.feed_forward_length", mg.U32, 96), [tuple(t) for t in ts]),
         "blk.0.ffn_gate.weight"),
        ("unknown architecture", assemble(with_kv("general.architecture", mg.STR, "gpt2"), [tuple(t) for t in ts]),
         "gpt2"),
        ("extra tensor", assemble(kv, [tuple(t) for t in ts] + [("blk.0.attn_q.bias", [32], 0, b"\0" * 128, None)]),
         "blk.0.attn_q.bias"),
        ("vocab mismatch", assemble(with_kv("llama.vocab_size", mg.U32, 511), [tuple(t) for t in ts]),
         "511"),
        ("out-of-range key", assemble(with_kv("llama.attention.head_count_kv", mg.U32, 3), [tuple(t) for t in ts]),
         "head_count_kv\" = 3 is out of range"),
        ("experts", assemble(kv + [("llama.expert_count", mg.U32, 8)], [tuple(t) for t in ts]),
         "mixture-of-experts"),
        ("rope_freqs not llama3", assemble(kv, [tuple(t) for t in ts] + [
            ("rope_freqs.weight", [8], 0, np.linspace(1, 3, 8, dtype=np.float32).tobytes(), None)]),
         "not Llama 3's scheme"),
        ("no tokenizer model", assemble([e for e in kv if e[0] != "tokenizer.ggml.model"],
                                        [tuple(t) for t in ts]), "no tokenizer.ggml.model"),
    ]
    check(kvmap["llama.block_count"][1] == 1, "the base file has one block")
    ctl = os.path.join(TMP, "reassembled.gguf")  # the cases' builder, unchanged: a valid file
    open(ctl, "wb").write(assemble(kv, [tuple(t) for t in ts]))
    rc, out, err = run([GENERATE, "--model", ctl, "--steps", "4", "-q"])
    rc0, out0, _ = run([GENERATE, "--model", good, "--steps", "4", "-q"])
    check(rc == 0 and out == out0, f"the reassembled base file runs as the original: {err.strip()}")
    for what, data, needle in cases:
        p = os.path.join(TMP, "bad_" + what.replace(" ", "_") + ".gguf")
        open(p, "wb").write(data)
        rc, _, err = run([GENERATE, "--model", p, "--steps", "2"])
        ok = rc == 1 and p in err and needle in err
        check(ok, f"bad input '{what}': exit {rc}, wants '{needle}' and the path in: {err.strip()[:300]}")
        # the tokenizer reader sees the same file: an error or a tokenizer, never a crash
        rc2, _, err2 = run([TOKTOOL, p, os.path.join(TMP, "empty.in"), os.path.join(TMP, "bad.out")])
        check(rc2 in (0, 1), f"tokenize_tool on '{what}' exits 0 or 1, got {rc2}: {err2.strip()[:200]}")


def body(tmp):
    global TMP
    TMP = tmp
    open(os.path.join(TMP, "empty.in"), "wb").close()
    for t in (test_dtypes, test_quantized, test_variants, test_tokenizer, test_stories, test_bad_input):
        t()
    for f in glob.glob(os.path.join(TMP, "*.npy")):
        os.remove(f)


if __name__ == "__main__":
    main("test_gguf", body)
