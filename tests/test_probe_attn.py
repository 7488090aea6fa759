#!/usr/bin/python3
"""test_probe_attn.py — end-to-end checks of strata-probe-attn
(docs/FORMAT.md): attention maps against an independent float64 numpy
computation, the ALiBi bias against the documented slopes, the on-the-fly
reductions against the same reductions computed in numpy from full maps,
and clean failures on bad input.

Why these: the probe never holds a (T, T) map when it reduces, so the only
evidence that its reductions are right is agreement with reductions of
maps that were checked on their own; and the maps are checked against
attention recomputed from the reference hidden states (tests/ref_hf.py,
tests/ref_llama2c.py: whole sequence, explicit masks, float64), so the
runtime's tiles, windows, GQA head mapping and ALiBi are all covered.

Reference attention for block l: xb = RMSNorm(hidden[l]) (the reference's
residual stream entering block l), q and k from the checkpoint's weights,
RoPE (rotate-half for Hugging Face, interleaved for llama2.c), logits =
q.k/sqrt(d) + ALiBi bias, -inf where masked, softmax.

Tolerances (float32 runtime vs float64 reference, printed as "max diff"):
    probabilities   |strata - ref| <= 2e-5
    logits          |strata - ref| <= 1e-4 * max|ref logit| + 1e-5 (visible entries)
    row sums        |sum_j p[i, j] - 1| <= 1e-5
    ALiBi           |(logits - logits without ALiBi) - slope_h (j - i)|
                    <= 1e-5 * (1 + |slope_h (j - i)|) + 2e-6 * max|logit|
    reductions      vs numpy of the maps of the same samples (float64):
                    means and sink mass 1e-9 absolute, counts exact, entropy
                    1e-5 absolute (strata computes it as lse - sum p s from
                    the float32 tile, numpy as -sum p log p)

Environment: BUILD, BINDIR, SHARED, STRATA_TMP, STRATA_SAN=1 (smaller runs).
Prints "test_probe_attn: N passed, N failed" last; exits non-zero on failure.
"""
import math
import json
import os
import signal
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mkhf  # noqa: E402
import ref_hf  # noqa: E402
import ref_llama2c  # noqa: E402
from pycheck import BINDIR, CORPUS, SAN, STORIES, TOK, check, main, run, run_interrupted  # noqa: E402

try:
    import h5py
except ImportError:  # reported as a failure, not a crash
    h5py = None

PROBE = os.path.join(BINDIR, "strata-probe-attn")

T_LONG = 130 if SAN else 200     # crosses 3 (4) tiles of 64 query rows
N_LONG = 2 if SAN else 3
P_TOL, L_REL, L_ABS, SUM_TOL = 2e-5, 1e-4, 1e-5, 1e-5
RED_TOL, ENT_TOL = 1e-9, 1e-5


def probe(model, out, n, t, *extra, seed=0):
    return run([PROBE, "--model", model, "--tokenizer", TOK, "--corpus", CORPUS,
                "--samples", str(n), "--seq-len", str(t), "--seed", str(seed), *extra,
                "-o", out])


def read(path):
    """{dataset name: array} and {attribute: value} of a result file."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, o: out.__setitem__(name, o[()])
                     if isinstance(o, h5py.Dataset) else None)
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    return out, attrs


def probe_read(label, model, out, n, t, *extra, seed=0):
    rc, _, err = probe(model, out, n, t, *extra, seed=seed)
    if not check(rc == 0 and os.path.isfile(out), f"{label}: probe exit {rc}: {err.strip()}"):
        return None, None
    check(not os.path.exists(out + ".partial"), f"{label}: no .partial left after success")
    return read(out)


# ----------------------------------------------------------------- reference attention

def softmax_masked(logits):
    """Rows of logits (..., T, T) with -inf masked -> probabilities, float64."""
    mx = np.max(logits, axis=-1, keepdims=True)
    e = np.exp(logits - mx)
    return e / e.sum(axis=-1, keepdims=True)


def ref_attn_hf(m, tokens, positions=None):
    """(L, H, T, T) logits (-inf masked) and probabilities from ref_hf."""
    hidden, _ = ref_hf.forward(m, tokens, positions)
    T, H, G, d = len(tokens), m.H, m.G, m.d
    scheme = positions or m.positions
    pos = np.arange(T, dtype=np.float64)
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    visible = j <= i
    if m.window:
        visible &= j > i - m.window
    lg = np.empty((m.L, H, T, T))
    for l in range(m.L):
        p = f"model.layers.{l}."
        xb = ref_hf.rmsnorm(hidden[l], m.w[p + "input_layernorm.weight"], m.eps)
        q = (xb @ m.w[p + "self_attn.q_proj.weight"].T).reshape(T, H, d)
        k = (xb @ m.w[p + "self_attn.k_proj.weight"].T).reshape(T, G, d)
        if scheme == "rope":
            freq, sc = ref_hf.inv_freq(m.theta, d, m.rope_scaling, m.C, T)
            q = ref_hf.rope_rotate_half(q, freq, sc, pos)
            k = ref_hf.rope_rotate_half(k, freq, sc, pos)
        k = np.repeat(k, H // G, axis=1)
        s = np.einsum("ihd,jhd->hij", q, k) / math.sqrt(d)
        if scheme == "alibi":
            s = s + ref_hf.alibi_slopes(H)[:, None, None] * (j - i)[None]
        lg[l] = np.where(visible[None], s, -np.inf)
    return lg, softmax_masked(lg)


def ref_attn_llama2c(m, tokens):
    hidden, _ = ref_llama2c.forward(m, tokens)
    T, H, G, hs = len(tokens), m.n_heads, m.n_kv_heads, m.head_size
    visible = np.tril(np.ones((T, T), dtype=bool))
    lg = np.empty((m.n_layers, H, T, T))
    for l in range(m.n_layers):
        xb = ref_llama2c.rmsnorm(hidden[l], m.w["rms_att"][l])
        q = ref_llama2c.rope(xb @ m.w["wq"][l].T, H, hs).reshape(T, H, hs)
        k = ref_llama2c.rope(xb @ m.w["wk"][l].T, G, hs).reshape(T, G, hs)
        k = np.repeat(k, H // G, axis=1)
        s = np.einsum("ihd,jhd->hij", q, k) / math.sqrt(hs)
        lg[l] = np.where(visible[None], s, -np.inf)
    return lg, softmax_masked(lg)


def compare_maps(label, data, ref_fn, layers=None, heads=None):
    """Maps of every sample against the reference (all layers/heads, or the
    chosen subset); prints the max differences."""
    P, S, toks = data["maps/probs"], data["maps/logits"], data["tokens"]
    worst_p = worst_l = 0.0
    ok = True
    for n in range(len(toks)):
        rl, rp = ref_fn(toks[n])
        if layers is not None:
            rl, rp = rl[layers][:, heads], rp[layers][:, heads]
        dp = np.abs(P[n] - rp).max()
        vis = np.isfinite(rl)
        same_mask = np.array_equal(vis, np.isfinite(S[n])) and np.all(S[n][~vis] == -np.inf)
        ok &= same_mask
        scale = np.abs(rl[vis]).max()
        dl = np.abs(S[n][vis] - rl[vis]).max()
        worst_p, worst_l = max(worst_p, dp), max(worst_l, dl / scale)
        ok &= dp <= P_TOL and dl <= L_REL * scale + L_ABS
    check(ok, f"{label}: maps equal the float64 reference (p within {P_TOL}, logits within "
          f"{L_REL} * max|logit| + {L_ABS}, same -inf mask)")
    print(f"{label}: max diff probabilities {worst_p:.3g}, logits (rel) {worst_l:.3g}")


def check_map_shape(label, data, window=None):
    """Rows sum to one; zero right of the diagonal and left of a window."""
    P, S = data["maps/probs"].astype(np.float64), data["maps/logits"]
    T = P.shape[-1]
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    hidden = j > i
    if window:
        hidden |= j <= i - window
    sums = np.abs(P.sum(-1) - 1).max()
    check(sums <= SUM_TOL, f"{label}: every query row sums to one (max |sum-1| {sums:.3g})")
    check(np.all(P[..., hidden] == 0), f"{label}: probabilities are 0 where masked")
    check(np.all(S[..., hidden] == -np.inf) and np.all(np.isfinite(S[..., ~hidden])),
          f"{label}: logits are -inf exactly where masked")


# ----------------------------------------------------------------- reductions from maps

def numpy_reductions(data, ks):
    """The probe's reductions recomputed from full maps (N, Ls, Hs, T, T)."""
    P, S = data["maps/probs"].astype(np.float64), data["maps/logits"].astype(np.float64)
    N, Ls, Hs, T, _ = P.shape
    vis = np.isfinite(S)
    pm, lm, cnt = (np.full((Ls, Hs, T), np.nan) for _ in range(3))
    for m in range(T):
        dp = np.diagonal(P, offset=-m, axis1=-2, axis2=-1)   # (N, Ls, Hs, T-m)
        ds = np.diagonal(S, offset=-m, axis1=-2, axis2=-1)
        dv = np.diagonal(vis, offset=-m, axis1=-2, axis2=-1)
        c = dv.sum(axis=(0, 3)).astype(np.float64)
        cnt[..., m] = c
        with np.errstate(invalid="ignore", divide="ignore"):
            pm[..., m] = np.where(dv, dp, 0).sum(axis=(0, 3)) / c
            lm[..., m] = np.where(dv, ds, 0).sum(axis=(0, 3)) / c
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(P > 0, P * np.log(np.where(P > 0, P, 1)), 0)
    ent = -plogp.sum(-1).mean(0)                              # (Ls, Hs, T)
    sink = np.stack([P[..., :k].sum(-1).mean(0) for k in ks], axis=2)  # (Ls, Hs, K, T)
    return {"dist/prob_mean": pm, "dist/logit_mean": lm, "dist/count": cnt, "entropy": ent,
            "sink/mass": sink}


def compare_reductions(label, got, want):
    for name, w in want.items():
        g = got.get(name)
        if not check(g is not None and g.shape == w.shape,
                     f"{label}: {name} has shape {w.shape}: got {None if g is None else g.shape}"):
            continue
        tol = ENT_TOL if name == "entropy" else 0 if name == "dist/count" else RED_TOL
        nan_same = np.array_equal(np.isnan(g), np.isnan(w))
        fin = ~np.isnan(w)
        diff = np.abs(g[fin] - w[fin]).max() if fin.any() else 0.0
        check(nan_same and diff <= tol, f"{label}: {name} equals numpy from the maps "
              f"(max diff {diff:.3g}, tol {tol}, NaN where nothing was counted: {nan_same})")
        print(f"{label}: {name}: max diff {diff:.3g}")


def check_reductions(label, maps_data, red_data, ks_maps, ks_red):
    """Reductions of the --maps run against numpy of its maps, and the
    reductions-only run (same samples, sink widths ks_red) against the same
    numbers."""
    compare_reductions(label + " (maps run)", maps_data, numpy_reductions(maps_data, ks_maps))
    compare_reductions(label + " (reductions run)", red_data,
                       numpy_reductions(maps_data, ks_red))
    check("maps/probs" not in red_data, f"{label}: no maps without --maps")
    T = maps_data["tokens"].shape[1]
    qc = red_data.get("query_count")
    check(qc is not None and np.all(qc == len(maps_data["tokens"])) and qc.shape[-1] == T,
          f"{label}: query_count is N at every position")
    check(np.array_equal(maps_data.get("sink/k"), ks_maps)
          and np.array_equal(red_data.get("sink/k"), ks_red),
          f"{label}: /sink/k = {ks_maps} and {ks_red}")


# ----------------------------------------------------------------- cases

def case_llama(tmp):
    d = os.path.join(tmp, "llama")
    mkhf.generate(d, "llama", "f32", "safetensors", 1, seed=21, dim=64, heads=4, kv_heads=2,
                  layers=3)
    m = ref_hf.load(d)
    T, N = T_LONG, N_LONG
    full, attrs = probe_read("llama maps", d, os.path.join(tmp, "llama_maps.h5"), N, T, "--maps")
    if full is None:
        return
    check(full["maps/probs"].shape == (N, 3, 4, T, T), f"llama: /maps/probs (N, L, H, T, T): "
          f"{full['maps/probs'].shape}")
    for a in ("command_line", "model_path", "model_config", "tokenizer_path", "corpus_path",
              "seed", "sampling", "strata_version"):
        check(a in attrs, f"llama: root attribute {a}")
    check(attrs.get("complete") == 1 and attrs.get("n_complete") == N,
          f"llama: complete = 1, n_complete = {N}")
    check(np.array_equal(full["layers"], [0, 1, 2]) and np.array_equal(full["heads"], [0, 1, 2, 3]),
          "llama: /layers, /heads list all by default")
    check_map_shape("llama", full)
    compare_maps("llama (GQA 4:2)", full, lambda t: ref_attn_hf(m, t))
    red, _ = probe_read("llama reductions", d, os.path.join(tmp, "llama_red.h5"), N, T,
                        "--sink-k", "1,4,16")
    if red is not None:
        check(np.array_equal(red["tokens"], full["tokens"]), "llama: same seed, same samples")
        check_reductions("llama T=%d" % T, full, red, [1, 4], [1, 4, 16])
        # identical inputs (the same command line) give an identical file
        first = os.path.join(tmp, "llama_red_first.h5")
        os.replace(os.path.join(tmp, "llama_red.h5"), first)
        rc, _, err = probe(d, os.path.join(tmp, "llama_red.h5"), N, T, "--sink-k", "1,4,16")
        with open(first, "rb") as a, open(os.path.join(tmp, "llama_red.h5"), "rb") as b:
            check(rc == 0 and a.read() == b.read(), "llama: a second identical run writes a "
                  f"byte-identical file ({err.strip()})")
    # a subset of layers and heads is the same slice of the full run
    sub, _ = probe_read("llama subset", d, os.path.join(tmp, "llama_sub.h5"), N, T, "--maps",
                        "--layers", "2,1", "--heads", "3,0-0")
    if sub is not None:
        check(np.array_equal(sub["layers"], [1, 2]) and np.array_equal(sub["heads"], [0, 3]),
              f"llama subset: /layers [1 2], /heads [0 3]: {sub['layers']}, {sub['heads']}")
        sl = (slice(None), [1, 2])
        same = np.array_equal(sub["maps/probs"], full["maps/probs"][sl][:, :, [0, 3]])
        same &= np.array_equal(sub["maps/logits"], full["maps/logits"][sl][:, :, [0, 3]])
        check(same, "llama subset: maps equal the slice of the full run")
        same = all(np.array_equal(sub[k], full[k][[1, 2]][:, [0, 3]], equal_nan=True)
                   for k in ("dist/prob_mean", "dist/logit_mean", "entropy", "sink/mass"))
        check(same, "llama subset: reductions equal the slice of the full run")


def case_window(tmp):
    d = os.path.join(tmp, "mistral")
    W = 48
    mkhf.generate(d, "mistral", "f32", "safetensors", 1, seed=22, dim=64, heads=4, kv_heads=4,
                  layers=2, sliding_window=W)
    m = ref_hf.load(d)
    T, N = T_LONG, N_LONG
    full, _ = probe_read("mistral maps", d, os.path.join(tmp, "win_maps.h5"), N, T, "--maps")
    if full is None:
        return
    check_map_shape(f"mistral W={W}", full, window=W)
    compare_maps(f"mistral W={W}", full, lambda t: ref_attn_hf(m, t))
    red, _ = probe_read("mistral reductions", d, os.path.join(tmp, "win_red.h5"), N, T)
    if red is not None:
        check_reductions(f"mistral W={W} T={T}", full, red, [1, 4], [1, 4])
        pm = red["dist/prob_mean"]
        check(np.all(np.isnan(pm[..., W:])) and np.all(red["dist/count"][..., W:] == 0)
              and np.all(np.isfinite(pm[..., :W])),
              "mistral: distances >= W have count 0 and mean NaN")
        # the first key is out of the window for queries >= W: no sink mass
        check(np.all(red["sink/mass"][:, :, 0, W:] == 0), "mistral: no sink mass beyond W")


def case_stories(tmp):
    if not check(os.path.isfile(STORIES), f"{STORIES} exists"):
        return
    m = ref_llama2c.load(STORIES)
    T, N = (100 if SAN else 160), 2
    full, _ = probe_read("stories maps", STORIES, os.path.join(tmp, "st_maps.h5"), N, T,
                         "--maps", "--layers", "0,2-4", "--heads", "1-6")
    if full is None:
        return
    check_map_shape("stories260K", full)
    compare_maps("stories260K (interleaved RoPE, GQA 8:4)", full,
                 lambda t: ref_attn_llama2c(m, t), layers=[0, 2, 3, 4], heads=list(range(1, 7)))


def case_interventions(tmp):
    """The probes share the runtime interventions: with --attn-temperature 2
    every visible logit of block 0 doubles (its input is the embedding, so
    only the scale differs; later blocks see changed inputs);
    with --skip-layers 1 the kept blocks' maps are those of the model whose
    block 1 leaves the residual stream unchanged, so block 0 is untouched and
    block 2 changes; the attribute records both."""
    if not os.path.isfile(STORIES):
        return
    T, N = 64, 2
    base, _ = probe_read("interv base", STORIES, os.path.join(tmp, "iv0.h5"), N, T, "--maps",
                         "--layers", "0,2")
    hot, attrs = probe_read("interv temp", STORIES, os.path.join(tmp, "iv1.h5"), N, T, "--maps",
                            "--layers", "0,2", "--attn-temperature", "2")
    skip, _ = probe_read("interv skip", STORIES, os.path.join(tmp, "iv2.h5"), N, T, "--maps",
                         "--layers", "0,2", "--skip-layers", "1")
    if base is None or hot is None or skip is None:
        return
    S0, S1 = base["maps/logits"][:, 0], hot["maps/logits"][:, 0]
    vis = np.isfinite(S0)
    err = np.abs(S1[vis] - 2 * S0[vis]).max() / np.abs(S0[vis]).max()
    check(np.array_equal(np.isfinite(S1), vis) and err <= 1e-6,
          f"--attn-temperature 2 doubles every visible logit of block 0 (rel {err:.2g})")
    iv = json.loads(attrs.get("interventions", "{}"))
    check(iv.get("attn_temperature") == 2 or "2" in json.dumps(iv),
          f"interventions attribute records the temperature: {attrs.get('interventions')}")
    P0, P2 = base["maps/probs"], skip["maps/probs"]
    check(np.array_equal(P0[:, 0], P2[:, 0]), "--skip-layers 1 leaves block 0's maps unchanged")
    check(np.abs(P0[:, 1] - P2[:, 1]).max() > 1e-3, "--skip-layers 1 changes block 2's maps")


def alibi_slopes_doc(H):
    """docs/CHECKPOINTS.md: 2^(-8k/H) for H a power of two; else n = the
    largest power of two below H: the n slopes of n, then slopes 1, 3, 5, ...
    (1-based) of the 2n-head set for the remaining H - n heads."""
    n = 1
    while n * 2 <= H:
        n *= 2
    s = [2.0 ** (-8.0 * k / n) for k in range(1, n + 1)]
    s += [2.0 ** (-8.0 * k / (2 * n)) for k in range(1, 2 * (H - n), 2)]
    return np.array(s)


def case_alibi(tmp):
    T, N = (40 if SAN else 70), 2
    for H, D in ((40, 320), (12, 96)):
        d = os.path.join(tmp, f"baichuan13_h{H}")
        mkhf.generate(d, "baichuan13", "f32", "safetensors", 1, seed=23, dim=D, heads=H)
        label = f"baichuan13 H={H}"
        a, _ = probe_read(label, d, os.path.join(tmp, f"alibi{H}.h5"), N, T, "--maps",
                          "--layers", "0")
        b, _ = probe_read(label + " --position-embedding none", d, os.path.join(tmp, f"noalibi{H}.h5"),
                          N, T, "--maps", "--layers", "0", "--position-embedding", "none")
        if a is None or b is None:
            continue
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        slopes = alibi_slopes_doc(H)
        want = slopes[:, None, None] * (j - i)[None]               # (H, T, T)
        vis = j <= i
        got = (a["maps/logits"][:, 0][..., vis].astype(np.float64)
               - b["maps/logits"][:, 0][..., vis])                  # (N, H, visible)
        want = np.broadcast_to(want[..., vis], got.shape)
        scale = np.abs(a["maps/logits"][..., vis]).max()
        diff = np.abs(got - want)
        ok = np.all(diff <= 1e-5 * (1 + np.abs(want)) + 2e-6 * scale)
        check(ok, f"{label}: logits - logits(--position-embedding none) = slope_h * (j - i) with the "
              f"documented slopes (max diff {diff.max():.3g})")
        print(f"{label}: ALiBi bias max diff {diff.max():.3g} (largest |bias| "
              f"{np.abs(want).max():.3g})")
        check_map_shape(label, a)
        if H == 12:  # and the whole map against the reference, ALiBi included
            m = ref_hf.load(d)
            compare_maps(label, a, lambda t: tuple(x[:1] for x in ref_attn_hf(m, t)))


def case_bad_input(tmp):
    d = os.path.join(tmp, "llama")  # from case_llama (3 blocks, 4 heads)
    if not os.path.isdir(d):
        mkhf.generate(d, "llama", "f32", "safetensors", 1, seed=21, dim=64, heads=4,
                      kv_heads=2, layers=3)
    cases = [
        ("unknown layer", ["--layers", "1,3"], "block 3"),
        ("unknown head", ["--heads", "4"], "head 4"),
        ("malformed layer list", ["--layers", "1-x"], "--layers"),
        ("maps too large", ["--maps", "--max-map-bytes", "1M"], "reductions"),
        ("sink width 0", ["--sink-k", "0"], "--sink-k"),
    ]
    for label, extra, words in cases:
        out = os.path.join(tmp, "bad.h5")
        rc, _, err = probe(d, out, 4, 256, *extra)
        check(rc != 0 and words in err and "strata-probe-attn" in err,
              f"bad input ({label}): non-zero exit and a message naming '{words}': "
              f"exit {rc}, {err.strip()!r}")
        check(not os.path.exists(out) and not os.path.exists(out + ".partial"),
              f"bad input ({label}): no output file")
    out = os.path.join(tmp, "bad.h5")
    missing = os.path.join(tmp, "no-such-corpus.txt")
    rc, _, err = run([PROBE, "--model", d, "--tokenizer", TOK, "--corpus", missing, "--samples",
                      "2", "--seq-len", "32", "-o", out])
    check(rc != 0 and missing in err, f"bad input (missing corpus): exit {rc}, message names "
          f"the path: {err.strip()!r}")
    check(not os.path.exists(out) and not os.path.exists(out + ".partial"),
          "bad input (missing corpus): no output file")


def case_interrupt(tmp):
    """SIGINT mid-run: exit 130, OUT.partial with complete = 0 and the
    reductions of the completed samples, no OUT."""
    out = os.path.join(tmp, "int.h5")
    for stale in (out, out + ".partial"):  # a reused STRATA_TMP must not end the wait early
        if os.path.exists(stale):
            os.remove(stale)
    cmd = [PROBE, "--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS, "--samples",
           "400", "--seq-len", "256", "-o", out]
    rc, err, paused = run_interrupted(cmd, 2, signal.SIGINT)
    if not check(paused and rc == 130, f"interrupt: exit 130: got {rc}: {err[-300:]}"):
        return
    check(not os.path.exists(out) and os.path.isfile(out + ".partial"),
          "interrupt: OUT.partial left, no OUT")
    data, attrs = read(out + ".partial")
    n = attrs.get("n_complete", -1)
    check(attrs.get("complete") == 0 and n == 2, f"interrupt: complete = 0, n_complete "
          f"{n} = 2")
    qc = data.get("query_count")
    check(qc is not None and np.all(qc == n), "interrupt: reductions cover n_complete samples")
    if n > 0:
        check(np.all(np.isfinite(data["entropy"])), "interrupt: reductions are finite")


def body(tmp):
    if not check(h5py is not None, "h5py importable (apt-get install python3-h5py)"):
        return
    if not check(os.access(PROBE, os.X_OK), f"{PROBE} built"):
        return
    t0 = time.time()
    for case in (case_llama, case_window, case_stories, case_interventions, case_alibi,
                 case_bad_input, case_interrupt):
        t = time.time()
        case(tmp)
        print(f"{case.__name__}: {time.time() - t:.1f} s")
    print(f"total {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main("test_probe_attn", body)
