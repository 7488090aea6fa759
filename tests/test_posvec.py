#!/usr/bin/python3
"""test_posvec.py — strata-posvec (P1 positional vectors, docs/POSVEC.md)
against independent numpy computations on stories260K dumps.

Checks, with tolerances (p is float32, sums float64):
- decompose: /positional equals the mean of the dump's /hidden computed with
  h5py + numpy in float64, |diff| <= 1e-6 * max|p| + 1e-7; /sum equals the
  numpy float64 sum within 1e-9 relative; the CSV's var_total, var_pos,
  frac_pos and c_norm_mean equal numpy's within 1e-6 relative.
- shards: decompose of two dumps of disjoint samples (--sample-offset),
  `merge` of their two PV files, and decompose of both shards at once all
  equal the one-pass PV of all samples within 1e-6 * max|p| (double sums in
  another order).
- formation: PCA eigenvalues equal numpy.linalg.eigh of the population
  covariance of {p[b,t]}_t within 1e-6 * the largest; the K written
  components are orthonormal (|V V^T - I| <= 1e-6) and v_k^T Cov v_k
  reproduces eigenvalue k; |p| and |m| of norms.csv equal numpy's.
- interventions through strata-probe-ppl: --replace B:1:1 at every boundary
  leaves /nll bit-identical; sub-positional then add-positional at the same
  boundary restores /nll within 1e-4 (float rounding of h - p + p), while
  sub-positional alone changes it by more (the control that shows the check
  can fail).
- the in-process runs of `attention` reproduce strata-probe-ppl (same
  samples): mean NLL unedited and with one edit within 1e-9 relative.
- the shared sampling options: with --sample-offset 2 --corpus-format text
  `attention` still reproduces strata-probe-ppl given the same options
  (and differs from the offset-0 run: the control).
- `methods` with its default options on a generated 32-layer model
  (tests/mkmodel: D 32, 4 heads, trained window 32; PV from a 64-token
  dump): methods.csv has one row per method and length (6 x 4), grid.csv
  the direct row plus one per (boundary 1..31, R, ALPHA) = 125, all finite.
- beyond-window / extension / methods run end to end (a PV of 560 > C
  positions); in `methods`, replacement r = 1, alpha = 1 at length C gives
  exactly the direct run's mean NLL.
- bad input: missing dump, a layer-subset PV given to a tool that edits,
  shards of different shapes, a PV that does not reach beyond the window:
  non-zero exit and a message naming the problem.
Prints "test_posvec: N passed, N failed" last.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pycheck import BINDIR, BUILD, CORPUS, SAN, STORIES, TOK, check, main, read_csv, read_meta, run  # noqa: E402

import h5py  # noqa: E402

POSVEC = os.path.join(BINDIR, "strata-posvec")
HIDDEN = os.path.join(BINDIR, "strata-probe-hidden")
PPL = os.path.join(BINDIR, "strata-probe-ppl")
MODEL = ["--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS]
T = 48 if SAN else 64
N = 6


def ok(cmd, what):
    rc, out, err = run(cmd)
    if not check(rc == 0, f"{what}: exit {rc}\n{err[-2000:]}"):
        return None
    return err


def fails(cmd, what, needle):
    rc, out, err = run(cmd)
    check(rc != 0 and needle in err, f"{what}: expected failure mentioning '{needle}', got exit {rc}: {err[-600:]}")






def dump(tmp, name, extra):
    path = os.path.join(tmp, name)
    ok([HIDDEN] + MODEL + ["--seq-len", str(T), "--seed", "3", "-o", path] + extra, f"dump {name}")
    return path


def test_decompose(tmp):
    full = dump(tmp, "all.h5", ["--samples", str(N)])
    a = dump(tmp, "a.h5", ["--samples", "2"])
    b = dump(tmp, "b.h5", ["--samples", str(N - 2), "--sample-offset", "2"])
    pv = os.path.join(tmp, "pv.h5")
    ok([POSVEC, "decompose", full, "-o", pv], "decompose")
    with h5py.File(full, "r") as f:
        h = f["hidden"][:].astype(np.float64)  # (N, L+1, T, D)
    p_ref = h.mean(axis=0)
    with h5py.File(pv, "r") as f:
        p = f["positional"][:]
        s = f["sum"][:]
        layers = f["layers"][:]
        check(p.dtype == np.float32 and p.shape == p_ref.shape, f"/positional {p.dtype} {p.shape}")
        check(list(layers) == list(range(h.shape[1])), "/layers lists every boundary")
        check(int(f.attrs["n_samples"]) == N, "n_samples attribute")
        with h5py.File(full, "r") as g:  # the dump's origin, copied so it outlives the dump
            same = all(k in f.attrs and f.attrs[k] == g.attrs[k] for k in ("model_path", "corpus_path", "seq_len"))
        check(same, "model_path, corpus_path and seq_len copied from the dump")
    d = np.abs(p - p_ref).max()
    print(f"decompose: max |p - numpy mean| = {d:.3g} (max |p| {np.abs(p_ref).max():.3g})")
    check(d <= 1e-6 * np.abs(p_ref).max() + 1e-7, f"p equals the numpy mean ({d})")
    ds = np.abs(s - h.sum(axis=0)).max() / np.abs(h.sum(axis=0)).max()
    check(ds <= 1e-9, f"/sum equals the numpy sum ({ds})")
    # per-boundary statistics
    rows = read_csv(os.path.join(tmp, "pv.csv"))
    check([int(r["boundary"]) for r in rows] == list(range(h.shape[1])), "pv.csv: one row per boundary")
    meta = read_meta(os.path.join(tmp, "pv.csv"))
    check(meta.get("command") == "decompose" and meta.get("model") == STORIES and
          meta.get("corpus") == CORPUS and meta.get("n_samples") == str(N) and
          meta.get("seq_len") == str(T) and meta.get("trained_window") == "512",
          f"pv.csv's provenance line: model, corpus, N, T, C ({meta})")
    for bi, r in enumerate(rows):
        hb = h[:, bi]  # (N, T, D)
        u = p_ref[bi].mean(axis=0)
        vt = ((hb - u) ** 2).sum(-1).mean()
        vp = ((p_ref[bi] - u) ** 2).sum(-1).mean()
        cn = np.sqrt(((hb - p_ref[bi]) ** 2).sum(-1)).mean()
        for key, ref in (("var_total", vt), ("var_pos", vp), ("frac_pos", vp / vt), ("c_norm_mean", cn)):
            check(abs(float(r[key]) - ref) <= 1e-6 * abs(ref) + 1e-12, f"boundary {bi} {key}: {r[key]} vs {ref}")
    # shards: merge and multi-dump decompose equal one pass
    pa, pb, pm, pab = (os.path.join(tmp, x) for x in ("pa.h5", "pb.h5", "pm.h5", "pab.h5"))
    ok([POSVEC, "decompose", a, "-o", pa], "decompose shard a")
    ok([POSVEC, "decompose", b, "-o", pb], "decompose shard b")
    ok([POSVEC, "merge", pa, pb, "-o", pm], "merge")
    mrows = read_csv(pm[:-3] + ".csv")
    check(all(r["c_norm_mean"] == "" for r in mrows) and all(r["frac_pos"] != "" for r in mrows),
          "merge's CSV: mean |c| is no value (an empty field, not nan)")
    mm = read_meta(pm[:-3] + ".csv")
    check(mm.get("model") == STORIES and mm.get("n_samples") == str(N),
          f"merge's CSV names the model (through the PV files' sources) and N ({mm})")
    ok([POSVEC, "decompose", a, b, "-o", pab], "decompose two shards")
    for path, what in ((pm, "merge"), (pab, "decompose a b")):
        with h5py.File(path, "r") as f:
            q = f["positional"][:]
            n = int(f.attrs["n_samples"])
        d = np.abs(q - p).max()
        print(f"{what}: max |p - one pass| = {d:.3g}")
        check(n == N and d <= 1e-6 * np.abs(p).max(), f"{what} equals one pass ({d}, n {n})")
    return full, pv, p_ref


def test_formation(tmp, pv, p_ref):
    out = os.path.join(tmp, "form")
    ok([POSVEC, "formation", pv, "-o", out, "--components", "4"], "formation")
    var = read_csv(os.path.join(out, "pca_var.csv"))
    comp = read_csv(os.path.join(out, "pca_components.csv"))
    norms = read_csv(os.path.join(out, "norms.csv"))
    D = p_ref.shape[2]
    worst_e = worst_o = worst_v = worst_n = 0.0
    for b in range(p_ref.shape[0]):
        x = p_ref[b].astype(np.float32).astype(np.float64)  # the file's float32 p
        xc = x - x.mean(axis=0)
        cov = xc.T @ xc / x.shape[0]
        ev_ref = np.sort(np.linalg.eigvalsh(cov))[::-1]
        ev = np.array([float(r["eigval"]) for r in var if int(r["boundary"]) == b])
        worst_e = max(worst_e, np.abs(ev - ev_ref).max() / ev_ref[0])
        V = np.zeros((4, D))
        for r in comp:
            if int(r["boundary"]) == b:
                V[int(r["k"]), int(r["i"])] = float(r["value"])
        worst_o = max(worst_o, np.abs(V @ V.T - np.eye(4)).max())
        worst_v = max(worst_v, np.abs(np.einsum("ki,ij,kj->k", V, cov, V) - ev_ref[:4]).max() / ev_ref[0])
        pn = np.array([float(r["p_norm"]) for r in norms if int(r["boundary"]) == b])
        mn = np.array([float(r["m_norm"]) for r in norms if int(r["boundary"]) == b])
        worst_n = max(worst_n, np.abs(pn - np.linalg.norm(x, axis=1)).max() / pn.max(),
                      np.abs(mn - np.linalg.norm(xc, axis=1)).max() / mn.max())
    print(f"formation: eigval rel {worst_e:.3g}, |VV^T-I| {worst_o:.3g}, v'Cv rel {worst_v:.3g}, norms rel {worst_n:.3g}")
    check(worst_e <= 1e-6, f"eigenvalues match numpy ({worst_e})")
    check(worst_o <= 1e-6, f"components orthonormal ({worst_o})")
    check(worst_v <= 1e-6, f"components reproduce explained variance ({worst_v})")
    check(worst_n <= 1e-6, f"norms match ({worst_n})")
    dist = read_csv(os.path.join(out, "distinct.csv"))
    check(all(1 <= int(r["n_distinct"]) <= p_ref.shape[1] for r in dist), "distinct counts in range")
    leaders = [[int(x) for x in r["leaders"].split(";")] for r in dist]
    check(all(ld[0] == 0 and ld == sorted(ld) and len(ld) == min(16, int(r["n_distinct"]))
              for ld, r in zip(leaders, dist)),
          "distinct.csv: leaders ';'-separated in one field, from position 0, increasing")
    lay = read_csv(os.path.join(out, "layers.csv"))
    check([(int(r["boundary"]), int(r["boundary_next"])) for r in lay] ==
          [(b, b + 1) for b in range(p_ref.shape[0] - 1)], "layers.csv: boundary, boundary_next")
    fm = read_meta(os.path.join(out, "norms.csv"))
    check(fm.get("command") == "formation" and fm.get("model") == STORIES and
          fm.get("n_samples") == str(N) and fm.get("seq_len") == str(T),
          f"formation CSVs name model, N, T ({fm})")


def nll(tmp, name, extra):
    path = os.path.join(tmp, name)
    if ok([PPL] + MODEL + ["--samples", "3", "--seq-len", str(T), "--seed", "1", "-o", path] + extra, f"ppl {name}") is None:
        return None
    with h5py.File(path, "r") as f:
        return f["nll"][:]


def test_edits(tmp, pv, n_bound):
    base = nll(tmp, "base.h5", [])
    for b in range(n_bound):
        r = nll(tmp, f"rep{b}.h5", ["--posvec", pv, "--replace", f"{b}:1:1"])
        check(r is not None and np.array_equal(r, base), f"replace {b}:1:1 leaves /nll identical")
    b = n_bound // 2
    sa = nll(tmp, "subadd.h5", ["--posvec", pv, "--edit", f"sub-positional@{b}:0-", "--edit", f"add-positional@{b}:0-"])
    sub = nll(tmp, "sub.h5", ["--posvec", pv, "--edit", f"sub-positional@{b}:0-"])
    d1, d2 = np.abs(sa - base).max(), np.abs(sub - base).max()
    print(f"edits: sub+add max |dnll| = {d1:.3g}; sub alone {d2:.3g}")
    check(d1 <= 1e-4, f"sub then add positional is the identity to rounding ({d1})")
    check(d2 > 1e-2, f"control: removing p changes the NLL ({d2})")
    # the analyzer's in-process runs are the probe's runs
    out = os.path.join(tmp, "att")
    ok([POSVEC, "attention", "--pv", pv] + MODEL + ["--samples", "3", "--seq-len", str(T), "--seed", "1",
                                                     "--boundary", "1", "--kinds", "sub-positional", "--ranges", "0-4", "-o", out], "attention")
    edited = nll(tmp, "e.h5", ["--posvec", pv, "--edit", "sub-positional@1:0-4"])
    rows = read_csv(os.path.join(out, "attention_summary.csv"))
    m0 = float([r for r in rows if r["run"] == "none"][0]["mean_nll"])
    m1 = float([r for r in rows if r["run"] != "none"][0]["mean_nll"])
    none = [r for r in rows if r["run"] == "none"]
    check([int(r["block"]) for r in none] == list(range(n_bound - 1)) and
          all(r["boundary"] == r["t0"] == r["t1"] == "" for r in none) and
          all(r["boundary"] == "1" and r["t0"] == "0" and r["t1"] == "4"
              for r in rows if r["run"] != "none"),
          "attention_summary.csv: one row per block; boundary, t0, t1 empty for the unedited run")
    am = read_meta(os.path.join(out, "attention_summary.csv"))
    check(am.get("n_samples") == "3" and am.get("seq_len") == str(T) and am.get("model") == STORIES,
          f"attention CSVs name model, N, T ({am})")
    check(abs(m0 - base.mean()) <= 1e-5 * base.mean(), f"attention unedited NLL {m0} = probe-ppl {base.mean()}")
    check(abs(m1 - edited.mean()) <= 1e-5 * edited.mean(), f"attention edited NLL {m1} = probe-ppl {edited.mean()}")


def test_sampling_options(tmp, pv):
    """posvec draws its samples with the shared sampling options: the same
    --sample-offset / --corpus-format give probe-ppl's samples."""
    extra = ["--sample-offset", "2", "--corpus-format", "text"]
    base = nll(tmp, "off0.h5", [])
    off = nll(tmp, "off2.h5", extra)
    out = os.path.join(tmp, "att_off")
    if ok([POSVEC, "attention", "--pv", pv] + MODEL + ["--samples", "3", "--seq-len", str(T), "--seed", "1",
                                                        "--kinds", "sub-positional", "--ranges", "0-4", "-o", out] + extra,
          "attention --sample-offset 2 --corpus-format text") is not None and off is not None:
        rows = read_csv(os.path.join(out, "attention_summary.csv"))
        m0 = float([r for r in rows if r["run"] == "none"][0]["mean_nll"])
        check(abs(m0 - off.mean()) <= 1e-5 * off.mean(),
              f"attention with --sample-offset 2: NLL {m0} = probe-ppl's {off.mean()}")
        check(base is not None and abs(m0 - base.mean()) > 1e-4,
              f"control: offset 2 draws other samples than offset 0 ({m0} vs {base.mean() if base is not None else None})")
    fails([POSVEC, "attention", "--pv", pv] + MODEL + ["--corpus-format", "bogus", "-o", out],
          "unknown --corpus-format", "--corpus-format")


def test_methods_defaults(tmp):
    """`strata-posvec methods` with its default options on a 32-layer model:
    no fixed-size limit (the grid alone has 31 boundaries x 2 x 2 settings)."""
    mk = os.path.join(BUILD, "tests", "mkmodel")
    m = os.path.join(tmp, "m32.bin")
    if ok([mk, "--dim", "32", "--heads", "4", "--layers", "32", "--seq-len", "32", "-o", m], "mkmodel 32 layers") is None:
        return
    d = os.path.join(tmp, "m32.h5")
    pv = os.path.join(tmp, "m32pv.h5")
    common = ["--model", m, "--tokenizer", TOK, "--corpus", CORPUS]
    ok([HIDDEN] + common + ["--samples", "2", "--seq-len", "64", "-o", d, "-q"], "dump of the 32-layer model")
    ok([POSVEC, "decompose", d, "-o", pv, "-q"], "decompose 32 layers")
    out = os.path.join(tmp, "m32methods")
    if ok([POSVEC, "methods", "--pv", pv] + common + ["-o", out], "methods with default options on 32 layers") is None:
        return
    rows = read_csv(os.path.join(out, "methods.csv"))
    meths = ["direct", "linear:4", "ntk:4", "dynamic-ntk:4", "window:C", "wext:2:1.1"]
    got = sorted((r["method"], int(r["length"])) for r in rows)
    want = sorted((mm, L) for mm in meths for L in (32, 64, 96, 128))
    check(got == want, f"methods.csv: one row per method and length ({len(rows)} rows)")
    check(all(np.isfinite(float(r["mean_nll"])) for r in rows), "methods.csv NLL finite")
    grid = read_csv(os.path.join(out, "grid.csv"))
    settings = sorted((int(r["boundary"]) if r["boundary"] else -1, float(r["r"]), float(r["alpha"]))
                      for r in grid)
    want = sorted([(-1, 1.0, 1.0)] + [(b, r, a) for b in range(1, 32) for r in (2.0, 4.0) for a in (1.0, 1.3)])
    check(grid[0]["boundary"] == "", "grid.csv: the no-replacement row has an empty boundary")
    check(settings == want, f"grid.csv: direct + 31 x 2 x 2 settings ({len(grid)} rows)")
    check(all(int(r["length"]) == 64 and np.isfinite(float(r["ppl"])) for r in grid), "grid at 2C, finite")


def test_runs(tmp):
    """beyond-window, extension and methods end to end on a PV of 560 > C = 512
    positions; in-process replacement r = 1, alpha = 1 inside the window must
    give exactly the direct run's perplexity."""
    long = dump(tmp, "long.h5", ["--samples", "2", "--seq-len", "560"])
    pl = os.path.join(tmp, "plong.h5")
    ok([POSVEC, "decompose", long, "-o", pl], "decompose 560")
    bw = os.path.join(tmp, "bw")
    if ok([POSVEC, "beyond-window", "--pv", pl] + MODEL + ["--samples", "1", "-o", bw], "beyond-window"):
        m = read_csv(os.path.join(bw, "beyond_match.csv"))
        check(len(m) == 6 * 48 and all(512 <= int(r["t"]) < 560 and 0 <= int(r["best_t"]) < 512
                                       and float(r["max_cos"]) <= 1 + 1e-6 for r in m), "beyond_match rows")
        check(sorted({int(r["boundary"]) for r in m}) == list(range(6)), "beyond_match: boundary column")
        sm = read_csv(os.path.join(bw, "beyond_summary.csv"))
        check(all(r["slope"] == "" and r["ratio"] == "" for r in sm) and sm[-1]["sink_in"] == "" and
              all(r["sink_in"] != "" for r in sm[:-1]),
              "beyond_summary: no value is an empty field (slope, ratio; the sink of boundary L)")
        bm = read_meta(os.path.join(bw, "beyond_match.csv"))
        check(bm.get("trained_window") == "512" and bm.get("seq_len") == "560" and
              bm.get("n_samples") == "2", f"beyond_match names C, T and the PV's N ({bm})")
    ex = os.path.join(tmp, "ext")
    if ok([POSVEC, "extension", "--pv", pl] + MODEL + ["--samples", "1", "--seq-len", "540", "--methods", "direct,ntk:2", "-o", ex], "extension"):
        check(len(read_csv(os.path.join(ex, "extension_summary.csv"))) == 12, "extension summary rows")
    me = os.path.join(tmp, "meth")
    if ok([POSVEC, "methods", "--pv", pl] + MODEL + ["--samples", "1", "--lengths", "512", "--methods", "direct",
                                                     "--replace", "2:1:1", "--grid-layers", "none", "-o", me], "methods"):
        r = {x["method"]: float(x["mean_nll"]) for x in read_csv(os.path.join(me, "methods.csv"))}
        check(r.get("direct") is not None and r.get("direct") == r.get("replace:2:1:1"),
              f"in-process replace r=1 alpha=1 in the window equals direct ({r})")


def test_errors(tmp, pv):
    fails([POSVEC, "decompose", os.path.join(tmp, "nope.h5"), "-o", os.path.join(tmp, "x.h5")], "missing dump", "nope.h5")
    sub = dump(tmp, "sub.h5", ["--samples", "2", "--layers", "0,2"])
    psub = os.path.join(tmp, "psub.h5")
    ok([POSVEC, "decompose", sub, "-o", psub], "decompose a layer subset")
    with h5py.File(psub, "r") as f:
        check(list(f["layers"][:]) == [0, 2] and f["positional"].shape[0] == 2, "subset PV keeps /layers")
    fails([POSVEC, "attention", "--pv", psub] + MODEL + ["--samples", "1", "--seq-len", str(T), "-o", os.path.join(tmp, "y")],
          "attention with a layer subset", "boundaries")
    fails([PPL] + MODEL + ["--samples", "1", "--seq-len", str(T), "--posvec", psub, "--replace", "1:1:1", "-o", os.path.join(tmp, "z.h5")],
          "probe-ppl with a layer subset", "psub.h5")
    short = dump(tmp, "short.h5", ["--samples", "2", "--seq-len", "32"])
    pshort = os.path.join(tmp, "pshort.h5")
    ok([POSVEC, "decompose", short, "-o", pshort], "decompose short")
    fails([POSVEC, "merge", pv, pshort, "-o", os.path.join(tmp, "m.h5")], "mismatched shards", "shape")
    check(not os.path.exists(os.path.join(tmp, "m.h5")), "no output after a failed merge")
    fails([POSVEC, "merge", os.path.join(tmp, "all.h5"), "-o", os.path.join(tmp, "m.h5")], "merge a dump", "strata-posvec/1")
    fails([POSVEC, "beyond-window", "--pv", pv] + MODEL + ["-o", os.path.join(tmp, "bw")], "beyond-window inside the window", "positions")
    fails([POSVEC, "frobnicate"], "unknown command", "unknown command")


def body(tmp):
    for p in (STORIES, TOK, CORPUS, POSVEC):
        if not check(os.path.exists(p), f"{p} exists"):
            return
    full, pv, p_ref = test_decompose(tmp)
    test_formation(tmp, pv, p_ref)
    test_edits(tmp, pv, p_ref.shape[0])
    test_sampling_options(tmp, pv)
    test_methods_defaults(tmp)
    test_runs(tmp)
    test_errors(tmp, pv)


if __name__ == "__main__":
    main("test_posvec", body)
