#!/usr/bin/python3
"""test_shapes.py — every program at the shapes users run (issue 12 item 4,
"no toy limits"): layer, head, KV-head, vocabulary and window counts of
7B-70B models, at a width small enough that the suite stays fast.

Generated models (random weights, tests/mkmodel and tests/mkhf.py):
  A  llama2.c .bin:  32 layers, 32 heads, 8 KV heads, vocab 32000, seq_len
     4096, D 64 (Llama-2-7B's counts; head width 2)
  B  Hugging Face Baichuan-13B-like: 40 layers, 40 heads (Baichuan has no
     GQA), vocab 125696, ALiBi, NormHead, fused W_pack, bf16, D 80
  G  Hugging Face llama: 40 layers, 40 heads, 8 KV heads, vocab 125696, D 80
     (the 40/8 head shape with GQA)
  C  Hugging Face Llama-3-like (30 safetensors shards, as Llama-3-70B):
     80 layers, 64 heads, 8 KV heads, vocab
     128256, rope_theta 500000, llama3 rope_scaling (factor 8, original
     window 8192), head_dim 4, D 128, max_position_embeddings 131072
Each has a llama2.c tokenizer of its full vocabulary written here (ids 0..2
specials, 3..258 bytes, then " w<i>"), and a .ids corpus of random ids over
the whole vocabulary, so the highest embedding and classifier rows are used.

What is checked, each against something computed independently:
- probe-hidden: /hidden shape (N, Lk, P, D), /layers, /positions equal to
  what --layers/--positions and the model imply; every value finite. A at
  T 4096 (512 under STRATA_SAN=1) keeping boundaries 0,1,16,31,32 and
  positions 0-15 plus every 8th of the last 96: positions < 16 equal a
  16-token float64 numpy forward (tests/ref_llama2c.py) of the sample's
  first tokens, |diff| <= 1e-4 * max|ref| per boundary (causality: a prefix
  does not see later tokens). A (all 33 boundaries), B, G, C at short T:
  every kept boundary against tests/ref_llama2c.py / tests/ref_hf.py, same
  tolerance. C with --sites resid,attn_out,mlp_out: (N, 80, P, D) sub-block
  outputs that add up to the next boundary (1e-5 of max|h|). A text corpus
  through C's 128256-id tokenizer: byte fallback ids only.
- probe-ppl on B (V 125696, T 24) and C (V 128256, T 100: several logit row
  blocks): /nll (N, T-1) finite, equal to numpy's log-softmax of the
  reference logits within 1e-3 absolute (one sample), mean within 1.0 nat
  of log V (random weights give almost flat predictions: logits of spread
  ~1 add about var/2 ~ 0.5 nat).
- probe-attn: reductions at T 1024 (128 under SAN) on A, all 32 layers x 32
  heads: /dist/count = N (T - m) as FORMAT.md states, finite, and
  sum_m prob_mean * count = N T (each query row sums to 1). Maps at T 16
  on A, B (ALiBi, 40 heads: non-power-of-two slopes), G (GQA 40/8) and C
  (GQA 64/8, llama3 RoPE) for subsets of blocks and heads incl. the last:
  rows sum to 1, 0 above the diagonal, probs = softmax(logits), /entropy =
  entropy of the maps; for B, G and C probs and logits equal a numpy
  attention computed from the reference's input to that block (1e-4).
- generate: A and C (tokenizer found beside the weights), a few greedy
  steps: the text equals the numpy reference's greedy tokens as run.c
  prints them.
- convert: C (80 layers) HF -> HF f32 copy: config counts kept, the copy's
  hidden states equal the original's bit for bit (<= 1e-6 relative);
  --drop-layers 40-79: 40 layers, boundaries 0..40 equal the original's.
- blockinf: BI of all 80 blocks of C (and 32 of A) equals numpy's
  1 - mean cos within 1e-6, n_tokens = N*P, ranks 1..L; --metric all
  --bootstrap 20 on the 80-block sites dump: 5 x 80 rows, finite.
- posvec: decompose's /positional equals numpy's mean over samples (1e-5
  relative; of the T 4096 subset dump: shape (5, P, 64), /layers and
  /positions kept, equal to the one sample); formation's pca_var explained
  fractions sum to 1 on each of 33 boundaries; methods on A at short
  lengths gives finite perplexities.
- decay: check on C's config.json (head_dim 4, llama3) and on Llama-3.1-8B's
  real config (head_dim 128, 131072 positions, llama3): first_neg equal to
  the first m with sum_i cos(m f_i) < 0 for numpy's frequencies
  (ref_hf.inv_freq); on A's .bin (head width 2: B(m) = cos m, first_neg 2);
  on B (ALiBi) exit 1 naming alibi. gap on A and C: one row set per layer x
  (heads + mean), 32 x 33 and 80 x 65.
Timings per program are printed (informational, never asserted).
About 35-60 s on 2 cores (most of it the T 4096 run); under STRATA_SAN=1
about a minute, with shorter windows and the same layer/head/vocabulary
counts.
"""
import csv
import json
import math
import os
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mkhf  # noqa: E402
import ref_hf  # noqa: E402
import ref_llama2c  # noqa: E402
from pycheck import BINDIR, BUILD, CORPUS, SAN, check, main, run  # noqa: E402

import h5py  # noqa: E402

MKMODEL = os.path.join(BUILD, "tests", "mkmodel")
DUMP = os.path.join(BUILD, "tests", "forward_dump")
P = {n: os.path.join(BINDIR, "strata-" + n) for n in
     ("probe-hidden", "probe-ppl", "probe-attn", "generate", "convert", "blockinf",
      "posvec", "decay")}
T_LONG = 512 if SAN else 4096   # A's long window
REL = 1e-4                      # float32 runtime vs float64 reference, of max|ref|
TIMES = {}


def read_rows(path):
    """Rows of a strata CSV; comment lines (the provenance line) skipped."""
    with open(path, newline="") as f:
        return list(csv.DictReader(ln for ln in f if not ln.startswith("#")))


def timed(prog, cmd, timeout=1200):
    t0 = time.monotonic()
    r = run(cmd, timeout=timeout)
    dt = time.monotonic() - t0
    TIMES[prog] = TIMES.get(prog, 0.0) + dt
    print(f"  {os.path.basename(cmd[0])} {' '.join(cmd[1:3])}...: {dt:.1f}s (exit {r[0]})")
    return r


def ok(r, what):
    return check(r[0] == 0, f"{what} exits 0 (got {r[0]}): {r[2].strip()[-600:]}")


def ok_verdict(r, what):
    """strata-decay check: exit 0 when its verdict is pass, 1 when fail (the
    CSV is on stdout either way)."""
    rows = list(csv.DictReader(r[1].splitlines())) if r[0] in (0, 1) else []
    v = rows[0].get("verdict") if len(rows) == 1 else None
    return check(v in ("pass", "fail") and r[0] == (0 if v == "pass" else 1),
                 f"{what} exits 0 on pass, 1 on fail (got {r[0]}, verdict {v}): {r[2].strip()[-600:]}")


def write_tokenizer(path, V):
    """llama2.c tokenizer of V pieces: <unk>, BOS, EOS, <0x00>..<0xFF>, " w<i>"."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % b for b in range(256)]
    pieces += [b" w%d" % i for i in range(len(pieces), V)]
    out = [struct.pack("<i", max(map(len, pieces)))]
    for i, p in enumerate(pieces):
        out.append(struct.pack("<fi", 0.0 if i < 259 else -float(i), len(p)) + p)
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return pieces


def write_ids(path, V, n_docs, doc_len, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for _ in range(n_docs):
            ids = rng.integers(3, V, doc_len)
            ids[-1] = V - 1     # the last row of every table is read
            f.write(" ".join(map(str, ids)) + "\n")


def run_c_text(pieces, tokens):
    """run.c's output of tokens: decode() then safe_printf (a lone byte piece
    that is neither printable nor space is not printed)."""
    out, prev = bytearray(), ref_llama2c.BOS
    for t in tokens:
        b = ref_llama2c.decode(pieces, [t], prev)
        if len(b) == 1 and not (0x20 <= b[0] < 0x7f or b[0] in b"\t\n\v\f\r"):
            b = b""
        out += b
        prev = t
    return bytes(out)


def hf_greedy(m, steps):
    seq, out = [ref_llama2c.BOS], []
    for _ in range(steps):
        _, lg = ref_hf.forward(m, seq)
        nxt = int(np.argmax(lg[-1]))
        if nxt == ref_llama2c.BOS:
            break
        seq.append(nxt)
        out.append(nxt)
    return out


def close(name, got, ref, rel=REL):
    """got vs ref per leading index, |diff| <= rel * max|ref| there."""
    worst = 0.0
    for i in range(ref.shape[0]):
        scale = max(np.abs(ref[i]).max(), 1e-30)
        worst = max(worst, float(np.abs(got[i] - ref[i]).max() / scale))
    print(f"  {name}: max |diff| / max|ref| = {worst:.2e} (tolerance {rel:g})")
    return check(worst <= rel, f"{name}: {worst:.3e} > {rel:g}")


def check_dump(name, path, N, layers, positions, D):
    with h5py.File(path, "r") as f:
        h = f["hidden"][...]
        check(h.shape == (N, len(layers), len(positions), D),
              f"{name}: /hidden shape {h.shape} != {(N, len(layers), len(positions), D)}")
        check(list(f["layers"][...]) == list(layers), f"{name}: /layers {list(f['layers'][...])}")
        check(list(f["positions"][...]) == list(positions), f"{name}: /positions")
        check(np.isfinite(h).all(), f"{name}: /hidden finite")
        return h, f["tokens"][...]


def probe_hidden(name, model, tok, corpus, T, N, out, layers=None, positions=None, extra=()):
    cmd = [P["probe-hidden"], "--model", model, "--tokenizer", tok, "--corpus", corpus,
           "--samples", str(N), "--seq-len", str(T), "--seed", "1", "-q", "-o", out, *extra]
    if layers:
        cmd += ["--layers", layers]
    if positions:
        cmd += ["--positions", positions]
    return ok(timed("probe-hidden", cmd), f"{name}: probe-hidden")


def blockinf_check(name, dump, L, tmp):
    out = os.path.join(tmp, name + ".bi.csv")
    if not ok(timed("blockinf", [P["blockinf"], dump, "-q", "-o", out]), f"{name}: blockinf"):
        return
    with h5py.File(dump, "r") as f:
        h = f["hidden"][...].astype(np.float64)
    x, y = h[:, :-1], h[:, 1:]
    cos = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
    mc = cos.transpose(1, 0, 2).reshape(L, -1).mean(1)
    rows = read_rows(out)
    check(len(rows) == L and [int(r["block"]) for r in rows] == list(range(L)) and
          all(r["metric"] == "bi" for r in rows), f"{name}: blockinf rows {len(rows)} != {L}")
    if len(rows) != L:
        return
    got_bi = np.array([float(r["value"]) for r in rows])
    d = np.abs(got_bi - (1 - mc)).max()
    print(f"  {name}: blockinf BI of {L} blocks vs numpy: max |diff| {d:.2e} (tolerance 1e-6)")
    check(d <= 1e-6, f"{name}: blockinf BI differs from numpy by {d:.3e}")
    n_tok = h.shape[0] * h.shape[2]
    check(all(int(r["n_tokens"]) == n_tok for r in rows), f"{name}: n_tokens != {n_tok}")
    ranks = sorted(int(r["rank"]) for r in rows)
    check(ranks == list(range(1, L + 1)), f"{name}: ranks are not 1..{L}")


def ref_attn(m, x, l, T):
    """numpy attention probabilities and logits (H, T, T) of block l of HF
    model m given its input x (T, D) (the reference's boundary l)."""
    H, G, d = m.H, m.G, m.d
    w, p = m.w, f"model.layers.{l}."
    xb = ref_hf.rmsnorm(x, w[p + "input_layernorm.weight"], m.eps)
    q = (xb @ w[p + "self_attn.q_proj.weight"].T).reshape(T, H, d)
    k = (xb @ w[p + "self_attn.k_proj.weight"].T).reshape(T, G, d)
    pos = np.arange(T, dtype=np.float64)
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    bias = np.where(j <= i, 0.0, -np.inf)[None]
    if m.positions == "rope":
        freq, scale = ref_hf.inv_freq(m.theta, d, m.rope_scaling, m.C, T)
        q = ref_hf.rope_rotate_half(q, freq, scale, pos)
        k = ref_hf.rope_rotate_half(k, freq, scale, pos)
    elif m.positions == "alibi":
        bias = bias + ref_hf.alibi_slopes(H)[:, None, None] * (j - i)[None]
    k = np.repeat(k, H // G, axis=1)
    sc = np.einsum("thd,shd->hts", q, k) / math.sqrt(d) + bias
    pr = np.exp(sc - sc.max(-1, keepdims=True))
    return pr / pr.sum(-1, keepdims=True), sc


def attn_maps(name, model, tok, corpus, layers, heads, tmp, T=16, mref=None):
    out = os.path.join(tmp, name + ".attn.h5")
    r = timed("probe-attn", [P["probe-attn"], "--model", model, "--tokenizer", tok, "--corpus",
                             corpus, "--samples", "2", "--seq-len", str(T), "--layers", layers,
                             "--heads", heads, "--maps", "-q", "-o", out])
    if not ok(r, f"{name}: probe-attn --maps"):
        return
    with h5py.File(out, "r") as f:
        pr, lg, ent = f["maps/probs"][...], f["maps/logits"][...], f["entropy"][...]
        ls, hs = list(f["layers"][...]), list(f["heads"][...])
        toks = f["tokens"][...]
    nl, nh = len(layers.split(",")), len(heads.split(","))
    check(pr.shape == (2, nl, nh, T, T), f"{name}: /maps/probs shape {pr.shape}")
    check(ls == [int(x) for x in layers.split(",")] and hs == [int(x) for x in heads.split(",")],
          f"{name}: /layers {ls} /heads {hs}")
    check(np.abs(pr.sum(-1) - 1).max() < 1e-5, f"{name}: attention rows sum to 1")
    check((pr[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0).all(),
          f"{name}: causal mask")
    lg64 = lg.astype(np.float64)
    sm = np.exp(lg64 - lg64.max(-1, keepdims=True))
    sm /= sm.sum(-1, keepdims=True)
    d = np.abs(sm - pr).max()
    print(f"  {name}: maps probs vs softmax(logits): max |diff| {d:.2e} (tolerance 1e-5)")
    check(d < 1e-5, f"{name}: probs != softmax(logits) ({d:.3e})")
    p64 = pr.astype(np.float64)
    e = -(np.where(p64 > 0, p64 * np.log(np.where(p64 > 0, p64, 1)), 0)).sum(-1).mean(0)
    d = np.abs(e - ent).max()
    check(d < 1e-5, f"{name}: /entropy vs entropy of the maps: {d:.3e}")
    if mref is None:
        return
    # against numpy from the reference's input to each block (sample 1)
    hid, _ = ref_hf.forward(mref, toks[1])
    dp = dl = 0.0
    for a, l in enumerate(ls):
        rp, rl = ref_attn(mref, hid[l], l, T)
        dp = max(dp, float(np.abs(pr[1, a] - rp[hs]).max()))
        fin = np.isfinite(rl[hs])
        check(np.array_equal(fin, np.isfinite(lg[1, a])), f"{name}: -inf pattern of logits")
        scale = np.abs(rl[hs][fin]).max()
        dl = max(dl, float(np.abs(lg[1, a][fin] - rl[hs][fin]).max() / scale))
    print(f"  {name}: maps vs numpy attention of blocks {ls} heads {hs}: max |dp| {dp:.2e}, "
          f"logits rel {dl:.2e} (tolerance 1e-4)")
    check(dp <= 1e-4 and dl <= 1e-4, f"{name}: maps differ from numpy: {dp:.3e} {dl:.3e}")


def body(tmp):
    t_all = time.monotonic()
    j = lambda *a: os.path.join(tmp, *a)  # noqa: E731

    # ---- models, tokenizers, corpora ----
    t0 = time.monotonic()
    A = j("a32.bin")
    r = run([MKMODEL, "--dim", "64", "--layers", "32", "--heads", "32", "--kv-heads", "8",
             "--vocab", "32000", "--seq-len", "4096", "--seed", "7", "-o", A])
    if not ok(r, "mkmodel 32/32/8/32000/4096"):
        return
    tokA = j("tok32000.bin")
    piecesA = write_tokenizer(tokA, 32000)
    idsA = j("a.ids")
    write_ids(idsA, 32000, 40, 300, 1)
    B, G, C = j("b13"), j("g40"), j("c80")
    mkhf.generate(B, "baichuan13", "bf16", "safetensors", 1, seed=11, dim=80, layers=40,
                  heads=40, vocab=125696)
    mkhf.generate(G, "llama", "f32", "safetensors", 1, seed=12, dim=80, layers=40,
                  heads=40, kv_heads=8, vocab=125696, max_pos=4096)
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    mkhf.generate(C, "llama", "f32", "safetensors", 30, seed=13, dim=128, layers=80, heads=64,
                  kv_heads=8, head_dim=4, vocab=128256, max_pos=131072, rope_theta=500000.0,
                  rope_scaling=llama3)
    write_tokenizer(os.path.join(B, "tokenizer.bin"), 125696)
    write_tokenizer(os.path.join(G, "tokenizer.bin"), 125696)
    piecesC = write_tokenizer(os.path.join(C, "tokenizer.bin"), 128256)
    idsB, idsC = j("b.ids"), j("c.ids")
    write_ids(idsB, 125696, 24, 80, 2)
    write_ids(idsC, 128256, 24, 120, 3)
    print(f"  models, tokenizers, corpora: {time.monotonic() - t0:.1f}s")
    mA = ref_llama2c.load(A)

    # ---- A: 32 layers, long window ----
    hA = j("a_long.h5")
    lay = "0,1,16,31,32"
    pos = f"0-15,{T_LONG - 96}-{T_LONG - 1}:8"
    if probe_hidden("A", A, tokA, idsA, T_LONG, 1, hA, lay, pos):
        kept = list(range(16)) + list(range(T_LONG - 96, T_LONG, 8))
        h, toks = check_dump("A long", hA, 1, [0, 1, 16, 31, 32], kept, 64)
        check(toks.shape == (1, T_LONG), f"A: /tokens shape {toks.shape}")
        ref, _ = ref_llama2c.forward(mA, toks[0, :16])
        close(f"A T={T_LONG} positions 0-15 vs numpy 16-token prefix", h[0][:, :16],
              ref[[0, 1, 16, 31, 32]])
        pv = j("a_long_pv.h5")
        if ok(timed("posvec", [P["posvec"], "decompose", hA, "-q", "-o", pv]),
              "A: decompose of the T 4096 subset dump"):
            with h5py.File(pv, "r") as f:
                check(f["positional"].shape == (5, len(kept), 64)
                      and list(f["positions"][...]) == kept
                      and list(f["layers"][...]) == [0, 1, 16, 31, 32],
                      f"A: long /positional shape {f['positional'].shape}")
                check(np.array_equal(f["positional"][...], h[0]),
                      "A: /positional of one sample = its hidden states")

    # all boundaries, short windows: blockinf, posvec
    hA2 = j("a_all.h5")
    NA, TA = (3, 32) if SAN else (6, 64)
    if probe_hidden("A", A, tokA, idsA, TA, NA, hA2):
        h, toks = check_dump("A all", hA2, NA, list(range(33)), list(range(TA)), 64)
        ref, _ = ref_llama2c.forward(mA, toks[0])
        close("A all boundaries vs numpy", h[0], ref)
        blockinf_check("A", hA2, 32, tmp)
        pv = j("a_pv.h5")
        if ok(timed("posvec", [P["posvec"], "decompose", hA2, "-q", "-o", pv]), "A: decompose"):
            with h5py.File(pv, "r") as f:
                p = f["positional"][...]
            m = h.astype(np.float64).mean(0)
            check(p.shape == m.shape, f"A: /positional shape {p.shape} != {m.shape}")
            if p.shape == m.shape:
                close("A posvec decompose vs numpy mean", p, m, 1e-5)
            fdir = j("a_form")
            if ok(timed("posvec", [P["posvec"], "formation", pv, "-q", "-o", fdir]),
                  "A: formation"):
                rows = read_rows(os.path.join(fdir, "pca_var.csv"))
                tot = {}
                for rw in rows:
                    b = rw["boundary"]
                    tot[b] = tot.get(b, 0.0) + float(rw["explained"])
                check(len(tot) == 33 and all(abs(v - 1) < 1e-6 for v in tot.values()),
                      f"A: formation pca_var: {len(tot)} boundaries, explained sums "
                      f"{sorted(tot.values())[:1]}..")
            mdir = j("a_methods")
            r = timed("posvec", [P["posvec"], "methods", "--pv", pv, "--model", A,
                                 "--tokenizer", tokA, "--corpus", idsA, "--samples", "2",
                                 "--lengths", f"{TA},{2 * TA}", "--methods", "direct,linear:2",
                                 "--grid-layers", "none", "-q", "-o", mdir])
            if ok(r, "A: posvec methods"):
                rows = read_rows(os.path.join(mdir, "methods.csv"))
                check(len(rows) >= 4 and all(math.isfinite(float(rw["ppl"])) for rw in rows),
                      f"A: methods.csv {len(rows)} rows, finite ppl")

    # probe-attn reductions over all 32 x 32, and maps
    TR = 128 if SAN else 1024
    out = j("a_red.h5")
    r = timed("probe-attn", [P["probe-attn"], "--model", A, "--tokenizer", tokA, "--corpus",
                             idsA, "--samples", "2", "--seq-len", str(TR), "-q", "-o", out])
    if ok(r, "A: probe-attn reductions"):
        with h5py.File(out, "r") as f:
            cnt, pm = f["dist/count"][...], f["dist/prob_mean"][...]
            ent = f["entropy"][...]
        check(cnt.shape == (32, 32, TR), f"A: /dist/count shape {cnt.shape}")
        check(np.array_equal(cnt, np.broadcast_to(2.0 * (TR - np.arange(TR)), cnt.shape)),
              "A: /dist/count = N (T - m)")
        check(np.isfinite(pm).all() and np.isfinite(ent).all() and (ent >= -1e-9).all(),
              "A: reductions finite, entropy >= 0")
        # the mean of p over all (i, i-m) pairs weighted by count sums to T rows of 1
        s = (pm * cnt).sum(-1)
        check(np.abs(s - 2 * TR).max() < 1e-6 * TR, f"A: sum_m p_mean*count = N T ({s.max()})")
    attn_maps("A", A, tokA, idsA, "0,31", "0,7,31", tmp)

    # generate
    steps = 6
    r = timed("generate", [P["generate"], "--model", A, "--tokenizer", tokA, "--steps",
                           str(steps), "-q"])
    if ok(r, "A: generate"):
        want = run_c_text(piecesA, ref_llama2c.greedy(mA, steps))
        got = r[1].encode()
        check(got.rstrip(b"\n") == want, f"A: generate {got[:80]!r} != reference {want[:80]!r}")

    # decay gap
    TG = 32
    r = timed("decay", [P["decay"], "gap", "--model", A, "--tokenizer", tokA, "--seq-len",
                        str(TG), "--trials", "4", "--stride", "4", "-q"])
    if ok(r, "A: decay gap"):
        rows = list(csv.DictReader(r[1].splitlines()))
        keys = {(int(rw["block"]), int(rw["head"])) for rw in rows}
        check(keys == {(l, hh) for l in range(32) for hh in range(-1, 32)},
              f"A: decay gap covers {len(keys)} (layer, head) pairs, want 32 x 33")
        check(all(math.isfinite(float(rw["gap"])) for rw in rows if rw["gap"] not in ("", "nan")),
              "A: decay gap finite")

    # ---- B (Baichuan-13B-like, ALiBi, vocab 125696) and G (40/8 GQA) ----
    for name, M, ids in (("B", B, idsB), ("G", G, idsB)):
        mref = ref_hf.load(M)
        tokM = os.path.join(M, "tokenizer.bin")
        out = j(name + ".h5")
        T = 24
        if probe_hidden(name, M, tokM, ids, T, 2, out, positions="0-23:3"):
            h, toks = check_dump(name, out, 2, list(range(41)), list(range(0, 24, 3)), 80)
            ref, _ = ref_hf.forward(mref, toks[1])
            close(f"{name} 40 layers vs ref_hf", h[1], ref[:, ::3])
        if name == "B":
            ppl_check(name, M, tokM, ids, mref, 125696, tmp)
            attn_maps("B", M, tokM, ids, "0,39", "0,1,38,39", tmp, mref=mref)
        else:
            attn_maps("G", M, tokM, ids, "0,39", "0,4,5,39", tmp, mref=mref)

    # ---- C (Llama-3-like, 80 layers, vocab 128256) ----
    mC = ref_hf.load(C)
    tokC = os.path.join(C, "tokenizer.bin")
    hC = j("c.h5")
    NC, TC = (2, 16) if SAN else (4, 32)
    if probe_hidden("C", C, tokC, idsC, TC, NC, hC):
        h, toks = check_dump("C", hC, NC, list(range(81)), list(range(TC)), 128)
        ref, _ = ref_hf.forward(mC, toks[0])
        close("C 80 layers vs ref_hf", h[0], ref)
        blockinf_check("C", hC, 80, tmp)
        cp = j("c80-copy")
        if ok(timed("convert", [P["convert"], "--model", C, "-q", "-o", cp]), "C: convert"):
            cfg = json.load(open(os.path.join(cp, "config.json")))
            check(cfg.get("num_hidden_layers") == 80 and cfg.get("num_attention_heads") == 64
                  and cfg.get("num_key_value_heads") == 8 and cfg.get("vocab_size") == 128256,
                  f"C: copy's config counts {cfg.get('num_hidden_layers')} "
                  f"{cfg.get('num_attention_heads')} {cfg.get('num_key_value_heads')} "
                  f"{cfg.get('vocab_size')}")
            hc2 = j("c2.h5")
            if probe_hidden("C copy", cp, tokC, idsC, TC, NC, hc2):
                with h5py.File(hc2, "r") as f:
                    h2 = f["hidden"][...]
                check(h2.shape == h.shape, f"C: copy's dump shape {h2.shape}")
                if h2.shape == h.shape:
                    d = float(np.abs(h2 - h).max() / np.abs(h).max())
                    print(f"  C: converted copy vs original hidden: max rel diff {d:.2e} "
                          "(tolerance 1e-6)")
                    check(d <= 1e-6, f"C: copy differs by {d:.3e}")
    # 100 positions: the logits go in several row blocks at V 128256
    ppl_check("C", C, tokC, idsC, mC, 128256, tmp, T=40 if SAN else 100)
    attn_maps("C", C, tokC, idsC, "0,40,79", "0,7,8,63", tmp, mref=mC)
    r = timed("generate", [P["generate"], "--model", C, "--steps", "4", "-q"])
    if ok(r, "C: generate (tokenizer beside the weights)"):
        want = run_c_text(piecesC, hf_greedy(mC, 4))
        got = r[1].encode()
        check(got.rstrip(b"\n") == want, f"C: generate {got[:80]!r} != reference {want[:80]!r}")

    # decay check on the Llama-3-like config
    r = timed("decay", [P["decay"], "check", "--config", os.path.join(C, "config.json"),
                        "--context", "8192", "-q"])
    if ok_verdict(r, "C: decay check"):
        rows = list(csv.DictReader(r[1].splitlines()))
        if check(len(rows) == 1, f"C: decay check rows {len(rows)}"):
            rw = rows[0]
            check(float(rw["base"]) == 500000.0 and int(rw["head_dim"]) == 4
                  and int(rw["context"]) == 8192, f"C: decay check row {rw}")
            f, _ = ref_hf.inv_freq(500000.0, 4, mC.rope_scaling, mC.C)
            m = np.arange(8192, dtype=np.float64)
            B_m = np.cos(np.outer(m, f)).sum(1)
            neg = np.nonzero(B_m < 0)[0]
            want = int(neg[0]) if len(neg) else 8192
            print(f"  C: decay check first_neg {rw['first_neg']}, numpy {want} "
                  f"(llama3 frequencies {f})")
            check(int(rw["first_neg"]) == want,
                  f"C: decay check first_neg {rw['first_neg']} != numpy {want}")

    # Llama-3.1-8B's own config.json (head_dim 128, 131072 positions): check
    # reads only the config, so the real width costs nothing
    l31 = j("llama31-8b")
    os.makedirs(l31, exist_ok=True)
    cfg = mkhf.make_config("llama", dim=4096, hidden=14336, layers=32, heads=32, kv_heads=8,
                           vocab=128256, max_pos=131072, rope_theta=500000.0,
                           rope_scaling=llama3)
    json.dump(cfg, open(os.path.join(l31, "config.json"), "w"))
    r = timed("decay", [P["decay"], "check", "--config", l31, "-q"])
    if ok_verdict(r, "Llama-3.1-8B config: decay check"):
        rw = list(csv.DictReader(r[1].splitlines()))[0]
        f, _ = ref_hf.inv_freq(500000.0, 128, llama3, 131072)
        Bm = np.empty(131072)
        for m0 in range(0, 131072, 16384):
            m = np.arange(m0, m0 + 16384, dtype=np.float64)
            Bm[m0:m0 + 16384] = np.cos(np.outer(m, f)).sum(1)
        neg = np.nonzero(Bm < 0)[0]
        want = int(neg[0]) if len(neg) else 131072
        print(f"  Llama-3.1-8B config: first_neg {rw['first_neg']}, numpy {want}; bound "
              f"{rw['bound']}")
        check(int(rw["head_dim"]) == 128 and int(rw["context"]) == 131072
              and int(rw["first_neg"]) == want and float(rw["bound"]) > 0,
              f"Llama-3.1-8B decay check row {rw}, numpy first_neg {want}")

    r = timed("decay", [P["decay"], "check", "--config", A, "-q"])
    if ok_verdict(r, "A: decay check (llama2.c .bin)"):
        rw = list(csv.DictReader(r[1].splitlines()))[0]
        # head width 2: B(m) = cos(m), first negative at m = 2
        check(int(rw["head_dim"]) == 2 and int(rw["context"]) == 4096 and
              int(rw["first_neg"]) == 2 and rw["verdict"] == "fail", f"A: decay check row {rw}")
    r = timed("decay", [P["decay"], "check", "--config", B, "-q"])
    check(r[0] == 1 and "alibi" in r[2], f"B: decay check of an ALiBi model exits 1 naming "
          f"alibi: exit {r[0]}, {r[2].strip()}")
    TG = 24
    r = timed("decay", [P["decay"], "gap", "--model", C, "--seq-len", str(TG), "--trials", "2",
                        "--stride", "2", "-q"])
    if ok(r, "C: decay gap"):
        rows = list(csv.DictReader(r[1].splitlines()))
        keys = {(int(rw["block"]), int(rw["head"])) for rw in rows}
        check(keys == {(l, hh) for l in range(80) for hh in range(-1, 64)},
              f"C: decay gap covers {len(keys)} (layer, head) pairs, want 80 x 65")

    # a text corpus through the 128256-id llama2.c tokenizer: its pieces " w<i>"
    # have no merge path, so every byte falls back to id byte + 3
    out = j("c_text.h5")
    if probe_hidden("C text", C, tokC, CORPUS, 32, 2, out, layers="0,80", positions="0-7"):
        with h5py.File(out, "r") as f:
            tk = f["tokens"][...]
        check(tk.shape == (2, 32) and (tk[:, 0] == 1).all() and
              ((tk == 1) | ((tk >= 3) & (tk < 259))).all(),
              f"C: text through the 128256 tokenizer is byte fallback: {tk[0, :8]}")

    # sub-block sites at 80 blocks, every blockinf metric
    hs = j("c_sites.h5")
    if probe_hidden("C sites", C, tokC, idsC, 16, 3, hs, extra=("--sites", "resid,attn_out,mlp_out")):
        with h5py.File(hs, "r") as f:
            hh, at, ml = f["hidden"][...], f["attn_out"][...], f["mlp_out"][...]
            blk = list(f["blocks"][...])
        check(at.shape == (3, 80, 16, 128) and ml.shape == at.shape and blk == list(range(80)),
              f"C: /attn_out {at.shape} /mlp_out {ml.shape}")
        if at.shape == (3, 80, 16, 128):
            d = np.abs(hh[:, 1:] - hh[:, :-1] - at - ml).max() / np.abs(hh).max()
            check(d < 1e-5, f"C: boundary l+1 = l + attn_out + mlp_out ({d:.2e})")
        out = j("c_all.csv")
        r = timed("blockinf", [P["blockinf"], hs, "--metric", "all", "--bootstrap", "20", "-q",
                               "-o", out])
        if ok(r, "C: blockinf --metric all --bootstrap 20"):
            rows = read_rows(out)
            metrics = ("bi", "angular", "relmag", "bi-attn", "bi-mlp")
            check(len(rows) == 5 * 80 and sorted({rw["metric"] for rw in rows}) == sorted(metrics)
                  and all(rw["ci_lo"] != "" and rw["ci_hi"] != "" for rw in rows),
                  f"C: blockinf all: {len(rows)} rows (5 metrics x 80 blocks) with intervals")
            check(all(math.isfinite(float(rw[c])) for rw in rows for c in ("value", "ci_lo", "ci_hi")),
                  "C: blockinf all metrics finite")

    # pruning at 80 layers: drop the last 40 blocks; boundaries 0..40 unchanged
    cp = j("c40-pruned")
    if ok(timed("convert", [P["convert"], "--model", C, "--drop-layers", "40-79", "-q", "-o",
                            cp]), "C: convert --drop-layers 40-79"):
        cfg = json.load(open(os.path.join(cp, "config.json")))
        check(cfg.get("num_hidden_layers") == 40, f"C: pruned layers {cfg.get('num_hidden_layers')}")
        hp = j("c40.h5")
        if probe_hidden("C pruned", cp, tokC, idsC, TC, NC, hp) and os.path.exists(hC):
            with h5py.File(hp, "r") as f, h5py.File(hC, "r") as g:
                a, b = f["hidden"][...], g["hidden"][:, :41]
            check(a.shape == b.shape and np.array_equal(a, b),
                  "C: pruned copy's boundaries 0..40 equal the original's")

    print("  time per program: " + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(TIMES.items()))
          + f"; total {time.monotonic() - t_all:.1f}s")


def ppl_check(name, M, tokM, ids, mref, V, tmp, T=24):
    out = j2(tmp, name + ".ppl.h5")
    N = 2
    r = timed("probe-ppl", [P["probe-ppl"], "--model", M, "--tokenizer", tokM, "--corpus", ids,
                            "--samples", str(N), "--seq-len", str(T), "-q", "-o", out])
    if not ok(r, f"{name}: probe-ppl"):
        return
    with h5py.File(out, "r") as f:
        nll, toks = f["nll"][...], f["tokens"][...]
    check(nll.shape == (N, T - 1), f"{name}: /nll shape {nll.shape}")
    check(np.isfinite(nll).all(), f"{name}: /nll finite")
    _, lg = ref_hf.forward(mref, toks[0])
    ls = lg - lg.max(1, keepdims=True)
    ls -= np.log(np.exp(ls).sum(1, keepdims=True))
    want = -ls[np.arange(T - 1), toks[0, 1:]]
    d = float(np.abs(nll[0] - want).max())
    print(f"  {name}: /nll vs numpy log-softmax over V={V}: max |diff| {d:.2e} (tolerance 1e-3); "
          f"mean {nll.mean():.3f} vs log V {math.log(V):.3f}")
    check(d <= 1e-3, f"{name}: nll differs from numpy by {d:.3e}")
    check(abs(nll.mean() - math.log(V)) < 1.0, f"{name}: mean NLL {nll.mean():.3f} not within "
          f"1 nat of log V {math.log(V):.3f}")


def j2(*a):
    return os.path.join(*a)


if __name__ == "__main__":
    main("test_shapes", body)
