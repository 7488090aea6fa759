#!/usr/bin/python3
"""test_probe_ppl.py — strata-probe-ppl and the interventions of
lib/cli/model.c / lib/interv.c (issue 4), end to end.

The files are read with h5py (not strata's reader) and every number is
recomputed by an independent float64 numpy forward pass: tests/ref_hf.py
for generated Hugging Face checkpoints (tests/mkhf.py: a GQA Llama with
trained window C = 128 and its Mistral twin with sliding_window 16 -- mkhf
draws the weights from the tensor shapes and the seed only, so the twins
have the same weights), tests/ref_llama2c.py for stories260K.
nll[t] = logsumexp(logits[t]) - logits[t, tok[t+1]] in float64.

Tolerance of strata (float32 logits reduced in double) against the float64
reference: |nll - ref| <= 2e-5 + 2e-5 |ref| (observed: about 2e-6; the
values are printed).

What is checked:
- /nll (N, T-1) float64 and /tokens (N, T) int32 equal the reference for
  the Llama (T = 96 and T = 160 > C, with the note on stderr) and
  stories260K (llama2.c path); /tokens equal strata-probe-hidden's for the
  same corpus, seed and length; provenance attributes; the CSV (means by
  position, by --bucket and overall; ppl = exp(mean)) equals numpy's means
  of /nll within 1e-9 relative.
- --skip-layers 1 equals strata-convert --drop-layers 1 run without
  skipping, bit for bit (same weights, same code path).
- --rope-scaling linear:1 and ntk:1, --attn-temperature 1, --replace B:1:1
  (delta exactly 0): bit-identical /nll. linear:2, ntk:2 (base * 2^(d/(d-2))
  in the reference), dynamic-ntk:2 at T = 160 > C, and --attn-temperature
  1.5 (the reference scales q_proj by 1.5, which scales q.k the same way)
  equal the reference within the tolerance.
- --window 16 on the Llama equals the Mistral twin with sliding_window 16
  bit for bit, and the reference with a window.
- edits with a positional-vector file made here with numpy from a
  strata-probe-hidden dump (p = mean over samples): sub-positional then
  add-positional is the identity up to float rounding (|d nll| <= 1e-4);
  sub-positional, sub-basis, sub-semantic (at the last boundary) and
  replace r=2, alpha=1.3 from t0=4 equal the reference with the same edit
  applied to its residual stream.
- sub-semantic through strata-probe-hidden (if it takes the options): the
  dumped boundary equals p exactly.
- Ctrl-C leaves OUT.h5.partial (n_complete samples, complete = 0), no
  OUT.h5, no CSV, exit 130.
- bad input: bad --edit / --replace / --rope-scaling / --skip-layers syntax,
  boundary or block out of range, posvec with the wrong width, a missing
  posvec, an edit without --posvec, positions beyond the file: non-zero
  exit, a message naming the problem, no output left.
Under STRATA_SAN=1 the stories260K comparison uses 2 samples instead of 4.
About 7 s (18 s under sanitizers).
"""
import csv
import json
import math
import os
import signal
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mkhf  # noqa: E402
import ref_hf  # noqa: E402
import ref_llama2c  # noqa: E402
from pycheck import BINDIR, CORPUS, SAN, STORIES, TOK, check, main, run, run_interrupted  # noqa: E402

try:
    import h5py
except ImportError:
    h5py = None

PPL = os.path.join(BINDIR, "strata-probe-ppl")
HIDDEN = os.path.join(BINDIR, "strata-probe-hidden")
CONVERT = os.path.join(BINDIR, "strata-convert")
TMP = None
C = 128          # trained window of the generated models
N, T = 4, 96     # samples and length of most runs
SEED = 5
ABS, REL = 2e-5, 2e-5


def ppl(model, out, *extra, n=N, t=T, seed=SEED):
    """Run strata-probe-ppl; (rc, stderr, nll, tokens, attrs)."""
    rc, _, err = run([PPL, "--model", model, "--tokenizer", TOK, "--corpus", CORPUS,
                      "--samples", str(n), "--seq-len", str(t), "--seed", str(seed),
                      "-o", out] + list(extra))
    if rc != 0 or h5py is None or not os.path.exists(out):
        return rc, err, None, None, None
    with h5py.File(out, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        return rc, err, f["nll"][...], f["tokens"][...], attrs


def ref_nll(logits, toks):
    lg = np.asarray(logits, dtype=np.float64)
    mx = lg.max(axis=1, keepdims=True)
    lse = (mx + np.log(np.exp(lg - mx).sum(axis=1, keepdims=True)))[:, 0]
    return lse[:-1] - lg[np.arange(len(toks) - 1), toks[1:]]


def compare(what, nll, ref):
    if not check(nll is not None and nll.shape == ref.shape, f"{what}: /nll shape"):
        return
    d = np.abs(nll - ref)
    worst = float((d / (ABS + REL * np.abs(ref))).max())
    print(f"{what}: max |nll - ref| {d.max():.2e} ({worst:.2f} of the tolerance)")
    check(worst <= 1.0, f"{what}: /nll equals the float64 reference (max diff {d.max():.2e})")


def same(what, a, b):
    ok = a is not None and b is not None and a.shape == b.shape and np.array_equal(a, b)
    diff = np.abs(a - b).max() if a is not None and b is not None and a.shape == b.shape else None
    check(ok, f"{what}: bit-identical /nll (max diff {diff})")


# ------------------------------------------------- an edited float64 reference

def ref_edit_forward(m, tokens, edits=(), lam=1.0):
    """ref_hf.forward with edits applied to the residual stream: edits is a
    list of (boundary, fn) and fn(x (T, D)) returns the edited stream, applied
    after boundary b is formed (0 = embeddings). lam scales q.k (temperature).
    Written from ref_hf's functions; returns logits (T, V)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    Tn, H, G, d = len(tokens), m.H, m.G, m.d
    pos = np.arange(Tn, dtype=np.float64)
    freq, scale = ref_hf.inv_freq(m.theta, d, m.rope_scaling, m.C, Tn)
    i, j = np.arange(Tn)[:, None], np.arange(Tn)[None, :]
    vis = j <= i
    if m.window:
        vis &= j > i - m.window
    bias = np.where(vis, 0.0, -np.inf)[None]
    w = m.w

    def apply(b, x):
        for bb, fn in edits:
            if bb == b:
                x = fn(x.copy())
        return x
    x = apply(0, w["model.embed_tokens.weight"][tokens])
    for l in range(m.L):
        p = f"model.layers.{l}."
        xb = ref_hf.rmsnorm(x, w[p + "input_layernorm.weight"], m.eps)
        q = (xb @ w[p + "self_attn.q_proj.weight"].T).reshape(Tn, H, d)
        k = (xb @ w[p + "self_attn.k_proj.weight"].T).reshape(Tn, G, d)
        v = (xb @ w[p + "self_attn.v_proj.weight"].T).reshape(Tn, G, d)
        q = ref_hf.rope_rotate_half(q, freq, scale, pos)
        k = ref_hf.rope_rotate_half(k, freq, scale, pos)
        k, v = np.repeat(k, H // G, axis=1), np.repeat(v, H // G, axis=1)
        q, k, v = (a.transpose(1, 0, 2) for a in (q, k, v))
        sc = lam * (q @ k.transpose(0, 2, 1)) / math.sqrt(d) + bias
        sc -= sc.max(axis=-1, keepdims=True)
        pr = np.exp(sc)
        pr /= pr.sum(axis=-1, keepdims=True)
        x = x + (pr @ v).transpose(1, 0, 2).reshape(Tn, H * d) @ w[p + "self_attn.o_proj.weight"].T
        xb = ref_hf.rmsnorm(x, w[p + "post_attention_layernorm.weight"], m.eps)
        g = xb @ w[p + "mlp.gate_proj.weight"].T
        u = xb @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
        x = apply(l + 1, x)
    return ref_hf.rmsnorm(x, w["model.norm.weight"], m.eps) @ w["classifier"].T


def ref_all(m, toks, **kw):
    return np.stack([ref_nll(ref_edit_forward(m, t, **kw), t) for t in toks])


# ----------------------------------------------------------------- tests

def make_models():
    llama, mistral = os.path.join(TMP, "llama"), os.path.join(TMP, "mistral")
    kw = dict(layers=3, kv_heads=2, max_pos=C, seed=3)
    mkhf.generate(llama, "llama", **kw)
    mkhf.generate(mistral, "mistral", sliding_window=16, **kw)
    return llama, mistral


def test_base(llama):
    out = os.path.join(TMP, "base.h5")
    rc, err, nll, toks, attrs = ppl(llama, out, "--bucket", "32")
    if not check(rc == 0 and nll is not None, f"probe-ppl base run: rc {rc}: {err.strip()}"):
        return None, None
    with h5py.File(out, "r") as f:
        check(f["nll"].dtype == np.float64 and f["nll"].shape == (N, T - 1),
              f"/nll is float64 (N, T-1): {f['nll'].dtype} {f['nll'].shape}")
        check(f["tokens"].dtype == np.int32 and f["tokens"].shape == (N, T),
              f"/tokens is int32 (N, T): {f['tokens'].dtype} {f['tokens'].shape}")
    check(not os.path.exists(out + ".partial"), "no .partial left after a complete run")
    for a in ("format", "strata_version", "command_line", "model_path", "model_config",
              "tokenizer_path", "corpus_path", "seed", "sampling", "interventions"):
        check(a in attrs, f"attribute {a} present")
    check(attrs.get("format") == "strata-ppl/1" and attrs.get("complete") == 1
          and attrs.get("n_complete") == N, f"format/complete/n_complete: {attrs}")
    iv = json.loads(attrs.get("interventions", "{}"))
    check(iv.get("edits") == [] and iv.get("skip_layers") == [] and iv.get("window") is None,
          f"interventions of a plain run: {iv}")
    m = ref_hf.load(llama)
    compare("llama T=96", nll, ref_all(m, toks))

    # CSV beside the output (base.csv), --bucket 32
    with open(os.path.join(TMP, "base.csv")) as f:
        first = f.readline()
        check(first.startswith("# program=strata-probe-ppl ") and f" n_samples={N} " in first
              and f" seq_len={T} " in first, f"CSV provenance line: {first.strip()}")
        rows = list(csv.DictReader(f))
    pos = [r for r in rows if r["kind"] == "position"]
    buck = [r for r in rows if r["kind"] == "bucket"]
    allr = [r for r in rows if r["kind"] == "all"]
    mean = nll.mean(axis=0)
    ok = len(pos) == T - 1 and all(int(r["start"]) == t and int(r["n_samples"]) == N
                                   for t, r in enumerate(pos))
    ok &= np.allclose([float(r["mean_nll"]) for r in pos], mean, rtol=1e-9, atol=0)
    ok &= np.allclose([float(r["ppl"]) for r in pos], np.exp(mean), rtol=1e-9, atol=0)
    edges = list(range(0, T - 1, 32)) + [T - 1]
    ok &= [(int(r["start"]), int(r["end"])) for r in buck] == list(zip(edges[:-1], edges[1:]))
    ok &= np.allclose([float(r["mean_nll"]) for r in buck],
                      [nll[:, a:b].mean() for a, b in zip(edges[:-1], edges[1:])], rtol=1e-9)
    ok &= len(allr) == 1 and math.isclose(float(allr[0]["mean_nll"]), nll.mean(), rel_tol=1e-9)
    ok &= math.isclose(float(allr[0]["ppl"]), math.exp(nll.mean()), rel_tol=1e-9)
    check(ok, "CSV: means by position, by bucket of 32 and overall equal numpy's of /nll")

    # same samples as strata-probe-hidden
    dump = os.path.join(TMP, "dump.h5")
    rc, _, err = run([HIDDEN, "--model", llama, "--tokenizer", TOK, "--corpus", CORPUS,
                      "--samples", str(N), "--seq-len", str(T), "--seed", str(SEED), "-o", dump])
    if check(rc == 0, f"probe-hidden dump: {err.strip()}"):
        with h5py.File(dump, "r") as f:
            check(np.array_equal(f["tokens"][...], toks),
                  "/tokens equal strata-probe-hidden's for the same corpus, seed and length")
            p = f["hidden"][...].astype(np.float64).mean(axis=0)      # (L+1, T, D)
        return nll, toks, p
    return nll, toks, None


def test_long(llama):
    out = os.path.join(TMP, "long.h5")
    rc, err, nll, toks, _ = ppl(llama, out, n=2, t=160)
    check(rc == 0 and "beyond the model's trained window" in err,
          f"T=160 > C=128 runs with a note on stderr: rc {rc} {err.strip()}")
    if nll is None:
        return
    m = ref_hf.load(llama)
    compare("llama T=160 (beyond C)", nll, ref_all(m, toks))
    rc, err, nd, td, _ = ppl(llama, os.path.join(TMP, "dyn.h5"), "--rope-scaling", "dynamic-ntk:2",
                             n=2, t=160)
    if check(rc == 0, f"dynamic-ntk:2: {err.strip()}"):
        m.rope_scaling = {"rope_type": "dynamic", "factor": 2.0}
        compare("dynamic-ntk:2 at T=160", nd, ref_all(m, td))


def test_runtime_options(llama, mistral, base):
    nll0, toks = base
    m = ref_hf.load(llama)
    for args in (["--rope-scaling", "linear:1"], ["--rope-scaling", "ntk:1"],
                 ["--attn-temperature", "1"]):
        rc, err, nll, _, _ = ppl(llama, os.path.join(TMP, "x.h5"), *args)
        if check(rc == 0, f"{args}: {err.strip()}"):
            same(" ".join(args), nll, nll0)
    rc, err, nll, _, attrs = ppl(llama, os.path.join(TMP, "lin2.h5"), "--rope-scaling", "linear:2")
    if check(rc == 0, f"linear:2: {err.strip()}"):
        check(json.loads(attrs["interventions"])["rope_scale"] == "linear:2", "rope_scale recorded")
        check(np.abs(nll - nll0).max() > 1e-3, "linear:2 changes the NLL")
        m.rope_scaling = {"rope_type": "linear", "factor": 2.0}
        compare("linear:2", nll, ref_all(m, toks))
        m.rope_scaling = None
    rc, err, nll, _, _ = ppl(llama, os.path.join(TMP, "ntk2.h5"), "--rope-scaling", "ntk:2")
    if check(rc == 0, f"ntk:2: {err.strip()}"):
        theta = m.theta
        m.theta = theta * 2.0 ** (m.d / (m.d - 2.0))
        compare("ntk:2 (reference base * 2^(d/(d-2)))", nll, ref_all(m, toks))
        m.theta = theta
    rc, err, nll, _, _ = ppl(llama, os.path.join(TMP, "temp.h5"), "--attn-temperature", "1.5")
    if check(rc == 0, f"temperature 1.5: {err.strip()}"):
        compare("attn-temperature 1.5", nll, ref_all(m, toks, lam=1.5))

    # skipped block == model built without it
    drop = os.path.join(TMP, "llama-drop1")
    rc, _, err = run([CONVERT, "--model", llama, "--tokenizer", TOK, "--drop-layers", "1",
                      "-o", drop])
    if check(rc == 0, f"strata-convert --drop-layers 1: {err.strip()}"):
        rc1, e1, a, _, attrs = ppl(llama, os.path.join(TMP, "skip.h5"), "--skip-layers", "1")
        rc2, e2, b, _, _ = ppl(drop, os.path.join(TMP, "drop.h5"))
        if check(rc1 == 0 and rc2 == 0, f"skip / dropped runs: {e1.strip()} {e2.strip()}"):
            same("--skip-layers 1 vs --drop-layers 1", a, b)
            check(np.abs(a - nll0).max() > 1e-3, "skipping a block changes the NLL")
            check(json.loads(attrs["interventions"])["skip_layers"] == [1], "skip_layers recorded")

    # window: Llama --window 16 == Mistral sliding_window 16 == reference
    rc1, e1, a, ta, _ = ppl(llama, os.path.join(TMP, "win.h5"), "--window", "16")
    rc2, e2, b, _, _ = ppl(mistral, os.path.join(TMP, "mis.h5"))
    if check(rc1 == 0 and rc2 == 0, f"window runs: {e1.strip()} {e2.strip()}"):
        same("llama --window 16 vs mistral sliding_window 16", a, b)
        check(np.abs(a - nll0).max() > 1e-3, "the window changes the NLL")
        compare("mistral sliding_window 16", b, ref_all(ref_hf.load(mistral), ta))
    rc, err, nll, _, _ = ppl(mistral, os.path.join(TMP, "mis0.h5"), "--window", "0")
    if check(rc == 0, f"mistral --window 0: {err.strip()}"):
        same("mistral --window 0 vs llama (full attention)", nll, nll0)


def write_posvec(path, p):
    with h5py.File(path, "w") as f:
        f.create_dataset("positional", data=np.asarray(p, dtype=np.float32))


def test_edits(llama, base, p):
    nll0, toks = base
    pv = os.path.join(TMP, "posvec.h5")
    write_posvec(pv, p)
    p32 = np.asarray(p, dtype=np.float32).astype(np.float64)   # what strata reads
    m = ref_hf.load(llama)

    rc, err, nll, _, attrs = ppl(llama, os.path.join(TMP, "e1.h5"), "--posvec", pv,
                                 "--edit", "sub-positional@2:0-", "--edit", "add-positional@2:0-96")
    if check(rc == 0, f"sub- then add-positional: {err.strip()}"):
        d = np.abs(nll - nll0).max()
        print(f"sub-positional then add-positional: max |d nll| {d:.2e}")
        check(d <= 1e-4, f"sub- then add-positional is the identity to rounding ({d:.2e})")
        iv = json.loads(attrs["interventions"])
        check([(e["kind"], e["boundary"], e["site"], e["t0"], e["t1"]) for e in iv["edits"]] ==
              [("sub-positional", 2, "blk.1.resid_post", 0, T),
               ("add-positional", 2, "blk.1.resid_post", 0, T)] and iv["posvec"] == pv,
              f"edits recorded: {iv}")
    rc, err, nll, _, _ = ppl(llama, os.path.join(TMP, "e2.h5"), "--posvec", pv, "--replace", "2:1:1")
    if check(rc == 0, f"replace 2:1:1: {err.strip()}"):
        same("--replace 2:1:1", nll, nll0)

    def sub(b, t0, t1, vec):
        def fn(x):
            x[t0:t1] -= vec[t0:t1]
            return x
        return [(b, fn)]
    u = p32.mean(axis=1)                                        # (L+1, D)
    L = m.L

    def semantic(x):
        x[4:50] = p32[L, 4:50]
        return x

    def replace(x, b=1, r=2.0, alpha=1.3, t0=4):
        Cw = min(C, p32.shape[1])
        for t in range(t0, x.shape[0]):
            s = t / r
            i = min(int(math.floor(s)), Cw - 1)
            f = s - i if s < Cw - 1 else 0.0
            pi = p32[b, i] if f == 0 else (1 - f) * p32[b, i] + f * p32[b, i + 1]
            x[t] += alpha * pi - p32[b, t]
        return x
    cases = [
        (["--edit", "sub-positional@2:8-40"], sub(2, 8, 40, p32[2]), "sub-positional@2:8-40"),
        (["--edit", "sub-basis@1:0-"], sub(1, 0, T, p32[1] - u[1]), "sub-basis@1:0-"),
        (["--edit", f"sub-semantic@{L}:4-50"], [(L, semantic)], f"sub-semantic@{L}:4-50"),
        (["--edit", "sub-positional@0:0-4"], sub(0, 0, 4, p32[0]), "sub-positional@0:0-4"),
        (["--replace", "1:2:1.3"], [(1, replace)], "replace 1:2:1.3 (t0 = 4)"),
    ]
    for args, edits, what in cases:
        rc, err, nll, tk, _ = ppl(llama, os.path.join(TMP, "e.h5"), "--posvec", pv, *args)
        if check(rc == 0, f"{what}: {err.strip()}"):
            check(np.abs(nll - nll0).max() > 1e-3, f"{what} changes the NLL")
            compare(what, nll, ref_all(m, tk, edits=edits))

    # sub-semantic seen in a dump (if strata-probe-hidden takes the options)
    _, out, _ = run([HIDDEN, "--help"])
    if "--edit" not in out:
        print("strata-probe-hidden has no --edit yet: sub-semantic capture is checked in "
              "test_interv.c only")
        return
    dump = os.path.join(TMP, "dump-sem.h5")
    rc, _, err = run([HIDDEN, "--model", llama, "--tokenizer", TOK, "--corpus", CORPUS,
                      "--samples", str(N), "--seq-len", str(T), "--seed", str(SEED),
                      "--posvec", pv, "--edit", "sub-semantic@2:4-40", "-o", dump])
    if check(rc == 0, f"probe-hidden --edit sub-semantic@2:4-40: {err.strip()}"):
        with h5py.File(dump, "r") as f:
            h = f["hidden"][:, 2, 4:40, :]
        want = np.asarray(p, dtype=np.float32)[2, 4:40]
        check(all(np.array_equal(h[s], want) for s in range(N)),
              "sub-semantic: every sample's boundary 2 equals p exactly at positions 4..39")


def test_interrupt():
    out = os.path.join(TMP, "int.h5")
    n = 900  # of the corpus's 933 windows of 256 tokens
    for f in (out, out + ".partial"):  # a stale .partial must not pass for this run's
        if os.path.exists(f):
            os.remove(f)
    rc, err, paused = run_interrupted([PPL, "--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS,
                                       "--samples", str(n), "--seq-len", "256", "-o", out],
                                      3, signal.SIGINT)
    check(paused and rc == 130 and "interrupted" in err,
          f"SIGINT: exit 130 and a message: {rc} {err.strip()[-200:]}")
    check(not os.path.exists(out) and not os.path.exists(os.path.join(TMP, "int.csv")),
          "interrupted: no OUT.h5 and no CSV")
    if check(os.path.exists(out + ".partial"), "interrupted: OUT.h5.partial stays"):
        with h5py.File(out + ".partial", "r") as f:
            k = int(f.attrs["n_complete"])
            ok = f.attrs["complete"] == 0 and k == 3 and f["nll"].shape == (n, 255)
            ok &= k == 0 or bool(np.all(f["tokens"][k - 1] != 0))
            ok &= bool(np.all(np.isfinite(f["nll"][:k]))) and not np.any(f["tokens"][k:])
        check(ok, f".partial holds n_complete = {k} finished samples, complete = 0")


def test_bad_input(llama, p):
    wrong = os.path.join(TMP, "posvec-wrong-d.h5")
    write_posvec(wrong, np.zeros((p.shape[0], p.shape[1], p.shape[2] + 1)))
    good = os.path.join(TMP, "posvec.h5")
    missing = os.path.join(TMP, "no-such-posvec.h5")
    cases = [
        (["--posvec", good, "--edit", "sub-foo@1:0-4"], "unknown kind"),
        (["--posvec", good, "--edit", "sub-positional@1"], "expected ':T0-T1'"),
        (["--posvec", good, "--edit", "sub-positional@1:9-3"], "empty"),
        (["--posvec", good, "--edit", "sub-positional@4:0-4"], "out of range"),
        (["--posvec", good, "--edit", "sub-positional@1:0-200"], "positions up to 199"),
        (["--posvec", good, "--replace", "1:0:1"], "R must be > 0"),
        (["--posvec", good, "--replace", "1:2"], "ALPHA"),
        (["--posvec", wrong, "--edit", "sub-positional@1:0-4"], "width"),
        (["--posvec", missing, "--edit", "sub-positional@1:0-4"], "no-such-posvec.h5"),
        (["--edit", "sub-positional@1:0-4"], "--posvec"),
        (["--skip-layers", "3"], "out of range"),
        (["--skip-layers", "1,x"], "--skip-layers"),
        (["--rope-scaling", "linear"], "TYPE:FACTOR"),
        (["--rope-scaling", "cubic:2"], "TYPE:FACTOR"),
        (["--attn-temperature", "0"], "must be finite and > 0"),
        (["--window", "-1"], "--window"),
    ]
    for args, needle in cases:
        out = os.path.join(TMP, "bad.h5")
        rc, err, _, _, _ = ppl(llama, out, *args)
        left = [f for f in (out, out + ".partial", os.path.join(TMP, "bad.csv")) if os.path.exists(f)]
        check(rc != 0 and needle in err and not left and err.count("\n") <= 2,
              f"{' '.join(args)}: rc {rc}, message names '{needle}', nothing left: {err.strip()} {left}")


def test_stories():
    out = os.path.join(TMP, "stories.h5")
    n = 2 if SAN else 4
    rc, err, nll, toks, _ = ppl(STORIES, out, n=n, t=200, seed=1)
    if not check(rc == 0 and nll is not None, f"stories260K run: {err.strip()}"):
        return
    m = ref_llama2c.load(STORIES)
    ref = np.stack([ref_nll(ref_llama2c.forward(m, t)[1], t) for t in toks])
    compare("stories260K (llama2.c) T=200", nll, ref)


def test_offset():
    """--sample-offset K takes draws K.. of the same seeded order: two halves
    hold the same windows as one run, none twice, with the same NLL."""
    full = ppl(STORIES, os.path.join(TMP, "off_full.h5"), n=4, t=64, seed=3)
    a = ppl(STORIES, os.path.join(TMP, "off_a.h5"), n=2, t=64, seed=3)
    b = ppl(STORIES, os.path.join(TMP, "off_b.h5"), "--sample-offset", "2", n=2, t=64, seed=3)
    if not check(all(r[0] == 0 and r[2] is not None for r in (full, a, b)),
                 f"--sample-offset runs: {full[1]} {a[1]} {b[1]}"):
        return
    rows = {tuple(t): n for t, n in zip(full[3].tolist(), full[2].tolist())}
    halves = list(zip(a[3].tolist(), a[2].tolist())) + list(zip(b[3].tolist(), b[2].tolist()))
    check(len({tuple(t) for t, _ in halves}) == 4 and all(tuple(t) in rows for t, _ in halves),
          "draws 0-1 and 2-3 are the four windows of one 4-sample run, none twice")
    check(all(np.array_equal(rows[tuple(t)], n) for t, n in halves),
          "each window's NLL is the same in the halves as in the whole run")


def body(tmp):
    global TMP
    TMP = tmp
    if not check(h5py is not None, "h5py is importable"):
        return
    llama, mistral = make_models()
    nll0, toks, p = test_base(llama)
    if nll0 is None:
        return
    test_long(llama)
    test_runtime_options(llama, mistral, (nll0, toks))
    if check(p is not None, "positional vectors from the dump"):
        test_edits(llama, (nll0, toks), p)
        test_bad_input(llama, p)
    test_stories()
    test_offset()
    test_interrupt()


if __name__ == "__main__":
    main("test_probe_ppl", body)
