#!/usr/bin/python3
"""test_stats.py — strata-probe-stats (streaming statistics, strata-stats/1,
docs/FORMAT.md; issue 12) against the raw dump of the same samples, on
stories260K.

- (a) statistics vs dump: strata-probe-stats and strata-probe-hidden --sites
  resid,attn_out,mlp_out with the same sampling options (all boundaries and
  positions; and a subset --layers 0,1,3-5 --positions 0-31,40-63:4; and
  --skip-layers 2):
  * the per-sample Block Influence rows equal an independent numpy
    computation from the dump (1e-12 absolute);
  * strata-blockinf score --metric all --bootstrap 200 --seed 5 (and
    --tokens last, and --metric angular --n 2) gives the same CSV values
    from either input within 1e-9 relative (BI, every variant, CIs with the
    same seed, rank stability), and plan --remove 2 the same JSON (scores,
    CIs, rank and remove stability, Kendall tau);
  * strata-posvec decompose gives the same /positional, /sum, /sumsq and
    per-boundary CSV columns (variance fractions, |u|, c_rms) within 1e-9
    relative;
  * strata-decay empirical gives the same CSV from the stats file as from
    strata-probe-attn's file of the same samples (1e-9 relative).
  * on a generated model (12 blocks, 8 query / 2 KV heads): scores with
    --angular-n 1-3 (--n 3) and the attention reductions of a block/head/
    sink selection (distance CSV, sink mass, entropy) agree the same way.
- (b) merge: statistics of draws 0..3 and 4..7 merged equal one pass over
  draws 0..7 (every dataset within 1e-12 relative; rows exactly), and the
  analyzers given both files at once give what the merged file gives.
- (c) resume: STRATA_TEST_PAUSE_AFTER + SIGINT leaves OUT.h5.partial
  (exit 130, n_complete = 3); --resume finishes it byte-identical (cmp) to an
  uninterrupted run.
- (d) size: the statistics file of 32 samples vs their dump (printed; the
  statistics must be under a quarter of the dump).
- (e) bad input: a dump given to merge, dump and stats mixed, the same range
  merged twice (overlap), files of different --positions merged (names the
  attribute), --resume with other options (names the attribute), angular
  --n absent from the file, analyses the file does not keep (--stats
  posvec), a stats file where a PV file is needed: non-zero exit and a
  message naming the problem.
Prints "test_stats: N passed, N failed" last.
"""
import json
import os
import signal
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pycheck import BINDIR, BUILD, CORPUS, SAN, STORIES, TOK, check, main, read_csv, run, run_interrupted  # noqa: E402

import h5py  # noqa: E402

STATS = os.path.join(BINDIR, "strata-probe-stats")
HIDDEN = os.path.join(BINDIR, "strata-probe-hidden")
ATTN = os.path.join(BINDIR, "strata-probe-attn")
BLOCKINF = os.path.join(BINDIR, "strata-blockinf")
POSVEC = os.path.join(BINDIR, "strata-posvec")
DECAY = os.path.join(BINDIR, "strata-decay")
T = 48 if SAN else 64
N = 6 if SAN else 8
BASE = ["--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS, "--seq-len", str(T),
        "--seed", "2"]
REL = 1e-9


def ok(label, r):
    rc, _, err = r
    return check(rc == 0, f"{label}: exit 0 (got {rc}): {err.strip()[-400:]}")


def fails(label, r, words):
    rc, _, err = r
    return check(rc != 0 and all(w in err for w in words),
                 f"{label}: non-zero exit and a message with {words} (got {rc}: {err.strip()[-300:]})")


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return np.inf
    m = ~np.isnan(a)
    if not m.any():
        return 0.0
    return float(np.max(np.abs(a[m] - b[m]) / np.maximum(np.abs(b[m]), 1e-300)))




def csv_rel(pa, pb, skip=()):
    """Max relative difference of every numeric cell of two CSVs with the same
    header and row count (inf if they differ in shape, in empty cells or in
    a text cell such as the metric's name)."""
    a, b = read_csv(pa), read_csv(pb)
    if len(a) != len(b) or not a or a[0].keys() != b[0].keys():
        return np.inf
    worst = 0.0
    for ra, rb in zip(a, b):
        for k in ra:
            if k in skip:
                continue
            if (ra[k] == "") != (rb[k] == ""):
                return np.inf
            if ra[k] != "":
                try:
                    worst = max(worst, rel([float(ra[k])], [float(rb[k])]))
                except ValueError:  # text
                    if ra[k] != rb[k]:
                        return np.inf
    return worst


def walk(f):
    out = {}
    f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
    return out


def np_bi(dump, L):
    """Per-sample means (N, metric, L) from a dump with resid, attn_out, mlp_out,
    in numpy float64: bi, angular n=1, relmag, bi-attn, bi-mlp (-1: last token)."""
    with h5py.File(dump, "r") as f:
        h = f["hidden"][()].astype(np.float64)
        at = f["attn_out"][()].astype(np.float64)
        ml = f["mlp_out"][()].astype(np.float64)
        layers = list(f["layers"][()])
        blocks = list(f["blocks"][()])

    def cos(u, v):
        c = (u * v).sum(-1) / np.sqrt((u * u).sum(-1) * (v * v).sum(-1))
        return np.clip(c, -1, 1)
    n = h.shape[0]
    out = np.full((n, 5, L), np.nan)
    last = np.full((n, 5, L), np.nan)
    for l in range(L):
        if l in layers and l + 1 in layers:
            x, y = h[:, layers.index(l)], h[:, layers.index(l + 1)]
            v = 1 - cos(x, y)
            out[:, 0, l], last[:, 0, l] = v.mean(1), v[:, -1]
            v = np.arccos(cos(x, y)) / np.pi
            out[:, 1, l], last[:, 1, l] = v.mean(1), v[:, -1]
        if l in layers and l in blocks:
            x, a, m = h[:, layers.index(l)], at[:, blocks.index(l)], ml[:, blocks.index(l)]
            vs = [np.sqrt(((a + m) ** 2).sum(-1)) / np.sqrt(((x + a + m) ** 2).sum(-1)),
                  1 - cos(x, x + a), 1 - cos(x + a, x + a + m)]
            for i, v in enumerate(vs):
                out[:, 2 + i, l], last[:, 2 + i, l] = v.mean(1), v[:, -1]
    return out, last


def compare_pair(tmp, tag, extra, L):
    """(a) for one setting: stats vs dump of the same samples."""
    s, d = os.path.join(tmp, f"{tag}.stats.h5"), os.path.join(tmp, f"{tag}.dump.h5")
    if not (ok(f"{tag}: probe-stats", run([STATS, *BASE, "--samples", str(N), "--angular-n", "1,2",
                                            *extra, "-o", s, "-q"])) and
            ok(f"{tag}: probe-hidden", run([HIDDEN, *BASE, "--samples", str(N), "--sites",
                                             "resid,attn_out,mlp_out", *extra, "-o", d, "-q"]))):
        return
    with h5py.File(s, "r") as f:
        metric, span = list(f["blockinf/metric"][()]), list(f["blockinf/span"][()])
        mean, last = f["blockinf/mean"][()], f["blockinf/last"][()]
        check(f.attrs["format"].decode() == "strata-stats/1" and int(f.attrs["complete"]) == 1,
              f"{tag}: format strata-stats/1, complete")
    ref, ref_last = np_bi(d, L)
    order = [metric.index(0), [i for i in range(len(metric)) if metric[i] == 1 and span[i] == 1][0],
             metric.index(2), metric.index(3), metric.index(4)]
    dm = np.nanmax(np.abs(mean[:, order] - ref)) if np.isfinite(ref).any() else np.inf
    dl = np.nanmax(np.abs(last[:, order] - ref_last))
    same_nan = np.array_equal(np.isnan(mean[:, order]), np.isnan(ref))
    print(f"  {tag}: per-sample BI rows vs numpy from the dump: max |diff| {dm:.2e} (mean), {dl:.2e} (last)")
    check(same_nan and dm <= 1e-12 and dl <= 1e-12, f"{tag}: per-sample rows = numpy ({dm}, {dl})")

    for label, args in [("all+bootstrap", ["--metric", "all", "--bootstrap", "200", "--seed", "5"]),
                        ("last", ["--metric", "all", "--tokens", "last", "--bootstrap", "50"]),
                        ("angular n=2", ["--metric", "angular", "--n", "2", "--bootstrap", "50"])]:
        cs, cd = os.path.join(tmp, f"{tag}.s.csv"), os.path.join(tmp, f"{tag}.d.csv")
        if ok(f"{tag} {label}: blockinf stats", run([BLOCKINF, s, *args, "-o", cs])) and \
                ok(f"{tag} {label}: blockinf dump", run([BLOCKINF, d, *args, "-o", cd])):
            r = csv_rel(cs, cd)
            print(f"  {tag} {label}: scores CSV stats vs dump, max rel diff {r:.2e}")
            check(r <= REL, f"{tag} {label}: scores agree ({r})")
    js, jd = os.path.join(tmp, f"{tag}.s.json"), os.path.join(tmp, f"{tag}.d.json")
    if ok(f"{tag}: plan stats", run([BLOCKINF, "plan", s, "--remove", "2", "-o", js, "-q"])) and \
            ok(f"{tag}: plan dump", run([BLOCKINF, "plan", d, "--remove", "2", "-o", jd, "-q"])):
        a, b = json.load(open(js)), json.load(open(jd))
        bs, bd = a["bootstrap"], b["bootstrap"]
        nums = lambda v: [np.nan if x is None else x for x in v]  # noqa: E731
        r = max(rel(nums(a["score"]), nums(b["score"])), rel(nums(bs["lo"]), nums(bd["lo"])),
                rel(nums(bs["hi"]), nums(bd["hi"])),
                rel(nums(bs["rank_stability"]), nums(bd["rank_stability"])),
                rel([bs["kendall_tau_mean"], bs["remove_stability"]],
                    [bd["kendall_tau_mean"], bd["remove_stability"]]))
        check(a["remove"] == b["remove"] and a["order"] == b["order"] and r <= REL,
              f"{tag}: plan JSON agrees (remove {a['remove']} vs {b['remove']}, rel {r})")
        check(a["calibration"]["draw_min"] == b["calibration"]["draw_min"] and
              a["calibration"]["n_tokens"] == b["calibration"]["n_tokens"],
              f"{tag}: plan calibration (draws, tokens) agrees")

    ps, pd = os.path.join(tmp, f"{tag}.pvs.h5"), os.path.join(tmp, f"{tag}.pvd.h5")
    if ok(f"{tag}: decompose stats", run([POSVEC, "decompose", s, "-o", ps, "-q"])) and \
            ok(f"{tag}: decompose dump", run([POSVEC, "decompose", d, "-o", pd, "-q"])):
        with h5py.File(ps, "r") as a, h5py.File(pd, "r") as b:
            r = max(rel(a[k][()], b[k][()]) for k in ("positional", "sum", "sumsq", "layers", "positions"))
            check("semantic_norm" not in a, f"{tag}: no /semantic_norm from statistics (needs raw states)")
        rc = csv_rel(ps[:-3] + ".csv", pd[:-3] + ".csv", skip=("c_norm_mean",))
        print(f"  {tag}: positional vectors stats vs dump, max rel diff {r:.2e}; CSV {rc:.2e}")
        check(r <= REL and rc <= REL, f"{tag}: positional vectors and variance fractions agree ({r}, {rc})")
    return s, d


def body(tmp):
    print(f"T = {T}, N = {N}")
    # (a) full selection; a subset; an intervention
    pair = compare_pair(tmp, "full", [], 5)
    compare_pair(tmp, "subset", ["--layers", "0,1,3-5", "--positions", "0-31,40-63:4"], 5)
    compare_pair(tmp, "skip2", ["--skip-layers", "2"], 5)

    # P2: strata-decay empirical, stats vs strata-probe-attn
    a = os.path.join(tmp, "attn.h5")
    if pair and ok("probe-attn", run([ATTN, *BASE, "--samples", str(N), "-o", a, "-q"])):
        ea, es = os.path.join(tmp, "ea.csv"), os.path.join(tmp, "es.csv")
        if ok("decay empirical attn", run([DECAY, "empirical", a, "-o", ea])) and \
                ok("decay empirical stats", run([DECAY, "empirical", pair[0], "-o", es])):
            r = csv_rel(es, ea)
            print(f"  decay empirical: stats vs probe-attn, max rel diff {r:.2e}")
            check(r <= REL, f"decay empirical agrees ({r})")

    # a generated model: 12 blocks, GQA (8 query heads, 2 KV heads), spans 1-3,
    # an attention selection
    gen = os.path.join(tmp, "gen.bin")
    if ok("mkmodel", run([os.path.join(BUILD, "tests", "mkmodel"), "--dim", "32", "--layers", "12",
                          "--heads", "8", "--kv-heads", "2", "--seq-len", "64", "-o", gen])):
        g = ["--model", gen, "--tokenizer", TOK, "--corpus", CORPUS, "--seq-len", "40", "--seed", "4",
             "--samples", "5"]
        sel = ["--attn-layers", "0,5,11", "--heads", "1,6", "--sink-k", "1,2,8"]
        gs, gd, ga = (os.path.join(tmp, x) for x in ("g.stats.h5", "g.dump.h5", "g.attn.h5"))
        if ok("gen: stats", run([STATS, *g, "--angular-n", "1-3", *sel, "-o", gs, "-q"])) and \
                ok("gen: dump", run([HIDDEN, *g, "--sites", "resid,attn_out,mlp_out", "-o", gd, "-q"])) and \
                ok("gen: attn", run([ATTN, *g, "--layers", "0,5,11", "--heads", "1,6", "--sink-k", "1,2,8",
                                     "-o", ga, "-q"])):
            for label, args in [("all", ["--metric", "all", "--bootstrap", "100", "--seed", "9"]),
                                ("angular n=3", ["--metric", "angular", "--n", "3", "--bootstrap", "100"])]:
                c1, c2 = os.path.join(tmp, "g1.csv"), os.path.join(tmp, "g2.csv")
                if ok(f"gen {label}: stats", run([BLOCKINF, gs, *args, "-o", c1])) and \
                        ok(f"gen {label}: dump", run([BLOCKINF, gd, *args, "-o", c2])):
                    r = csv_rel(c1, c2)
                    check(r <= REL, f"gen {label}: scores agree ({r})")
            c1, c2 = os.path.join(tmp, "ge1.csv"), os.path.join(tmp, "ge2.csv")
            if ok("gen: empirical stats", run([DECAY, "empirical", gs, "-o", c1])) and \
                    ok("gen: empirical attn", run([DECAY, "empirical", ga, "-o", c2])):
                r = csv_rel(c1, c2)
                print(f"  generated 12-block GQA model: decay empirical stats vs probe-attn, max rel diff {r:.2e}")
                check(r <= REL and len(read_csv(c1)) > 100, f"gen: decay empirical agrees ({r})")
            with h5py.File(gs, "r") as f, h5py.File(ga, "r") as a:
                r = max(rel(f["attn/sink_sum"][()] / f["attn/query_count"][()][:, :, None, :], a["sink/mass"][()]),
                        rel(f["attn/entropy_sum"][()] / f["attn/query_count"][()], a["entropy"][()]))
                check(r <= REL, f"gen: sink mass and entropy = strata-probe-attn's ({r})")

    # (b) merge of disjoint ranges = one pass
    h = N // 2
    s1, s2, sa, sm = (os.path.join(tmp, x) for x in ("r1.h5", "r2.h5", "rall.h5", "rm.h5"))
    if ok("range 1", run([STATS, *BASE, "--samples", str(h), "-o", s1, "-q"])) and \
            ok("range 2", run([STATS, *BASE, "--samples", str(N - h), "--sample-offset", str(h), "-o", s2, "-q"])) and \
            ok("one pass", run([STATS, *BASE, "--samples", str(N), "-o", sa, "-q"])) and \
            ok("merge", run([STATS, "merge", s1, s2, "-o", sm, "-q"])):
        with h5py.File(sa, "r") as fa, h5py.File(sm, "r") as fm:
            A, M = walk(fa), walk(fm)
            check(sorted(A) == sorted(M), f"merge: same datasets ({sorted(set(A) ^ set(M))})")
            worst = max((rel(M[k], A[k]) for k in A if k in M), default=np.inf)
            rows = all(np.array_equal(A[k], M[k], equal_nan=True)
                       for k in ("blockinf/mean", "blockinf/last", "sample_draw", "tokens", "sample_window"))
            print(f"  merge vs one pass: max rel diff {worst:.2e}; per-sample rows identical: {rows}")
            check(worst <= 1e-12 and rows, f"merge = one pass ({worst}, rows {rows})")
            check(int(fm.attrs["n_complete"]) == N and int(fm.attrs["complete"]) == 1,
                  "merged file complete with all samples")
        for label, args in [("blockinf", [BLOCKINF, "--metric", "all", "--bootstrap", "100"]),
                            ("decay", [DECAY, "empirical"])]:
            c2, cm = os.path.join(tmp, f"two.{label}.csv"), os.path.join(tmp, f"m.{label}.csv")
            if ok(f"{label} of two files", run([*args, s1, s2, "-o", c2])) and \
                    ok(f"{label} of the merged file", run([*args, sm, "-o", cm])):
                check(open(c2).read() == open(cm).read(), f"{label}: two files at once = merged file")
        p2, pm = os.path.join(tmp, "two.pv.h5"), os.path.join(tmp, "m.pv.h5")
        if ok("decompose two", run([POSVEC, "decompose", s2, s1, "-o", p2, "-q"])) and \
                ok("decompose merged", run([POSVEC, "decompose", sm, "-o", pm, "-q"])):
            with h5py.File(p2, "r") as a, h5py.File(pm, "r") as b:
                check(rel(a["sum"][()], b["sum"][()]) <= 1e-12, "decompose of two files = of the merged file")

    # (c) interrupted + --resume = uninterrupted, byte for byte
    ru, ri = os.path.join(tmp, "ru"), os.path.join(tmp, "ri")
    os.makedirs(ru, exist_ok=True)
    os.makedirs(ri, exist_ok=True)
    cmd = [STATS, *BASE, "--samples", str(N), "-o", "res.h5"]
    rc, err, paused = run_interrupted(cmd, 3, signal.SIGINT, cwd=ri)
    check(paused and rc == 130 and os.path.exists(os.path.join(ri, "res.h5.partial")),
          f"interrupted: paused, exit 130, .partial left (rc {rc}, paused {paused}): {err[-300:]}")
    with h5py.File(os.path.join(ri, "res.h5.partial"), "r") as f:
        check(int(f.attrs["n_complete"]) == 3 and int(f.attrs["complete"]) == 0,
              f"partial: n_complete 3, complete 0 (got {f.attrs['n_complete']})")
    p = subprocess.run(cmd + ["--resume"], cwd=ri, capture_output=True)
    check(p.returncode == 0, f"--resume: exit 0 ({p.stderr.decode()[-300:]})")
    p = subprocess.run(cmd, cwd=ru, capture_output=True)
    check(p.returncode == 0, "uninterrupted run: exit 0")
    a, b = os.path.join(ri, "res.h5"), os.path.join(ru, "res.h5")
    same = os.path.exists(a) and os.path.exists(b) and open(a, "rb").read() == open(b, "rb").read()
    check(same, "interrupted + --resume is byte-identical to the uninterrupted run")

    # (d) size
    n_big = 12 if SAN else 32
    sb, db = os.path.join(tmp, "big.stats.h5"), os.path.join(tmp, "big.dump.h5")
    if ok("size: stats", run([STATS, *BASE, "--samples", str(n_big), "-o", sb, "-q"])) and \
            ok("size: dump", run([HIDDEN, *BASE, "--samples", str(n_big), "--sites",
                                  "resid,attn_out,mlp_out", "-o", db, "-q"])):
        zs, zd = os.path.getsize(sb), os.path.getsize(db)
        print(f"  {n_big} samples x {T} tokens: statistics {zs} bytes, dump {zd} bytes (ratio {zs / zd:.3f})")
        check(zs * 4 < zd, f"statistics file much smaller than the dump ({zs} vs {zd})")

    # (e) bad input
    if pair:
        s, d = pair
        out = os.path.join(tmp, "bad.h5")
        fails("merge of a dump", run([STATS, "merge", s, d, "-o", out]), ["not a statistics file"])
        fails("blockinf: dump and stats mixed", run([BLOCKINF, s, d]), ["statistics files", "not both"])
        fails("decompose: dump and stats mixed", run([POSVEC, "decompose", d, s, "-o", out]), ["not both"])
        fails("merge overlapping", run([STATS, "merge", s1, sa, "-o", out]), ["overlap", "draw"])
        check(not os.path.exists(out) and not os.path.exists(out + ".partial"), "refused merges write nothing")
        sp = os.path.join(tmp, "pos.h5")
        if ok("other --positions", run([STATS, *BASE, "--samples", "2", "--sample-offset", str(N),
                                        "--positions", "0-15", "-o", sp, "-q"])):
            fails("merge of other settings", run([STATS, "merge", s1, sp, "-o", out]), ["positions_spec"])
        rp = os.path.join(tmp, "rp.h5")
        run_interrupted([STATS, *BASE, "--samples", "4", "-o", rp], 1, signal.SIGINT)
        fails("--resume with other options", run([STATS, *BASE, "--samples", "4", "--layers", "0-2",
                                                  "-o", rp, "--resume"]), ["layers_spec"])
        fails("angular span not kept", run([BLOCKINF, s, "--metric", "angular", "--n", "3"]),
              ["no angular for n = 3", "--angular-n"])
        po = os.path.join(tmp, "posonly.h5")
        if ok("--stats posvec", run([STATS, *BASE, "--samples", "2", "--stats", "posvec", "-o", po, "-q"])):
            fails("blockinf without /blockinf", run([BLOCKINF, po]), ["no Block Influence"])
            fails("decay without /attn", run([DECAY, "empirical", po]), ["no attention"])
        bo = os.path.join(tmp, "bionly.h5")
        if ok("--stats blockinf", run([STATS, *BASE, "--samples", "2", "--stats", "blockinf", "-o", bo, "-q"])):
            fails("decompose without /posvec", run([POSVEC, "decompose", bo, "-o", out]), ["no positional-vector sums"])
        fails("stats file where a PV file is needed", run([POSVEC, "formation", s, "-o", os.path.join(tmp, "fdir")]),
              ["not a strata-posvec/1 file"])
        fails("bad --stats", run([STATS, *BASE, "--stats", "hidden", "-o", out]), ["--stats"])


if __name__ == "__main__":
    main("test_stats", body)
