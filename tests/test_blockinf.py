#!/usr/bin/python3
"""test_blockinf.py — strata-blockinf (score, plan), scripts/blockinf_eval.py
and strata-convert --drop-layers: ShortGPT's pipeline (P3 in
../shared/docs/PAPERS.md, docs/BLOCKINF.md) end to end.

Every number is recomputed here from the dump read with h5py (not strata's
reader), in float64 numpy:
- scores: BI, angular distance (n = 1 and n = 2; all tokens and the last
  token), relative magnitude, BI of the attention and MLP sub-blocks of a
  stories260K dump with resid, attn_out and mlp_out equal numpy's within
  1e-6 (absolute; observed ~1e-16, printed); ranks agree.
- the scores CSV is long form (block, metric, span, value, ci_lo, ci_hi,
  stability, rank, n_tokens; one row per metric and scored block) after a
  comment line naming model, corpus, n_samples and seq_len.
- bootstrap: the CSV's ci_lo, ci_hi and stability equal a numpy bootstrap that
  follows the documented rule (splitmix64 stream from the seed; replicate b
  draws indices next() % N; percentile interval with linear interpolation;
  stab = fraction of replicates where the block keeps its rank) within
  1e-8 (the CSV prints 9 significant digits); the same seed gives byte-identical output, another seed different
  intervals; every interval contains its point estimate.
- two shards (--sample-offset) give the same point estimates and ranks as
  one dump of the same draws (1e-12).
- plan: JSON `remove` = the K lowest BI, `order` = all, by numpy; the CSV
  lists the same; an angular plan removes the run l..l+K-1 minimising
  d(l, l+K); bootstrap `remove_stability` and `kendall_tau_mean` equal
  numpy's.
- pruned checkpoint: strata-convert --drop-layers 1,3 of stories260K gives
  hidden states bit-identical to the unpruned HF copy run with
  strata-probe-hidden --skip-layers 1,3 at every kept boundary, and within
  2e-5 * max|h| of the llama2.c original with --skip-layers (its RoPE
  layout differs, so only float32 rounding differs).
- the pipeline on a generated Baichuan2-7B-shaped model (tests/mkhf.py,
  vocab 512, tok512.bin): probe-hidden (draws 8..) -> score -> plan ->
  blockinf_eval.py (held-out draws 0..7: no evaluation sample equals a
  calibration sample) -> convert --drop-layers -> probe-ppl on the pruned
  model = the eval's perplexity with the plan's blocks skipped, exactly.
- bad input: --remove K >= L, an unknown metric, relmag on a dump without
  attn_out/mlp_out, plan without --remove, --n beyond L, evaluation that is
  not held out: non-zero exit, one message naming the problem.
About 15 s; under STRATA_SAN=1 fewer samples.
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pycheck import BINDIR, CORPUS, SAN, STORIES, TOK, check, main, read_csv, read_meta, run  # noqa: E402

import h5py  # noqa: E402

ROOT = os.path.dirname(HERE)
PROBE = os.path.join(BINDIR, "strata-probe-hidden")
PPL = os.path.join(BINDIR, "strata-probe-ppl")
BLOCKINF = os.path.join(BINDIR, "strata-blockinf")
CONVERT = os.path.join(BINDIR, "strata-convert")
EVAL = os.path.join(ROOT, "scripts", "blockinf_eval.py")
TOL = 1e-6
N = 6 if SAN else 12
T = 48 if SAN else 64
OFF = 16
MASK = (1 << 64) - 1


def ok(label, rc, err):
    return check(rc == 0, f"{label}: exit 0 (got {rc}): {err.strip()[-400:]}")


def probe(model, out, n, offset, sites="resid,attn_out,mlp_out", extra=(), tok=TOK, seq=T):
    return run([PROBE, "--model", model, "--tokenizer", tok, "--corpus", CORPUS,
                "--samples", str(n), "--seq-len", str(seq), "--seed", "3",
                "--sample-offset", str(offset), "--sites", sites, "-o", out, *extra])


SCORE_COLS = ["block", "metric", "span", "value", "ci_lo", "ci_hi", "stability", "rank", "n_tokens"]






def column(rows, metric, L, field="value"):
    """(L) float array of one field of a metric's rows (long form) by block;
    NaN for blocks without a row or with an empty field."""
    v = np.full(L, np.nan)
    for r in rows:
        if r["metric"] == metric and r.get(field, "") != "":
            v[int(r["block"])] = float(r[field])
    return v


# ------------------------------------------------------------- references

def load(path):
    with h5py.File(path, "r") as f:
        h = f["hidden"][...].astype(np.float64)  # (N, L+1, P, D)
        a = f["attn_out"][...].astype(np.float64) if "attn_out" in f else None  # (N, L, P, D)
        m = f["mlp_out"][...].astype(np.float64) if "mlp_out" in f else None
        toks = f["tokens"][...]
    return h, a, m, toks


def cos(x, y):
    return (x * y).sum(-1) / np.sqrt((x * x).sum(-1) * (y * y).sum(-1))


def per_sample(h, a, m, metric, n=1, last=False):
    """(N, L) each sample's mean of the per-token metric; NaN where undefined."""
    sl = slice(-1, None) if last else slice(None)
    h = h[:, :, sl]
    L = h.shape[1] - 1
    out = np.full((h.shape[0], L), np.nan)
    for l in range(L):
        x = h[:, l]
        if metric == "bi":
            v = 1 - cos(x, h[:, l + 1])
        elif metric == "angular":
            if l + n > L:
                continue
            v = np.arccos(np.clip(cos(x, h[:, l + n]), -1, 1)) / np.pi
        else:
            at, ml = a[:, l, sl], m[:, l, sl]
            if metric == "relmag":
                f = at + ml
                v = np.linalg.norm(f, axis=-1) / np.linalg.norm(x + f, axis=-1)
            elif metric == "bi-attn":
                v = 1 - cos(x, x + at)
            else:
                v = 1 - cos(x + at, x + at + ml)
        out[:, l] = v.mean(-1)
    return out


def ranks_of(score):
    """1-based rank, lowest first, ties to the lower block; 0 for NaN."""
    idx = [l for l in range(len(score)) if np.isfinite(score[l])]
    order = sorted(idx, key=lambda l: (score[l], l))
    r = np.zeros(len(score), dtype=int)
    for i, l in enumerate(order):
        r[l] = i + 1
    return r, order


def splitmix_indices(seed, count, n):
    s, out = seed, []
    for _ in range(count):
        s = (s + 0x9E3779B97F4A7C15) & MASK
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append((z ^ (z >> 31)) % n)
    return np.array(out, dtype=np.int64)


def np_bootstrap(vals, B, seed, ci):
    """lo, hi, stab (L), replicates (B, L), tau mean — the documented rule."""
    Ns, L = vals.shape
    idx = splitmix_indices(seed, B * Ns, Ns).reshape(B, Ns)
    reps = vals[idx].mean(1)  # (B, L)
    point = vals.mean(0)
    pr, _ = ranks_of(point)
    lo = np.quantile(reps, (1 - ci) / 2, axis=0)
    hi = np.quantile(reps, (1 + ci) / 2, axis=0)
    stab = np.zeros(L)
    taus = []
    for b in range(B):
        rr, _ = ranks_of(reps[b])
        stab += (rr == pr) & (pr > 0)
        k = [l for l in range(L) if pr[l] and rr[l]]
        c = d = 0
        for i in range(len(k)):
            for j in range(i + 1, len(k)):
                s = (pr[k[i]] - pr[k[j]]) * (rr[k[i]] - rr[k[j]])
                c += s > 0
                d += s < 0
        taus.append((c - d) / (c + d) if c + d else 1.0)
    return lo, hi, stab / B, reps, float(np.mean(taus))


# ------------------------------------------------------------------ parts

def check_scores(tmp, dump):
    h, a, m, _ = load(dump)
    L = h.shape[1] - 1
    out = os.path.join(tmp, "all.csv")
    rc, _, err = run([BLOCKINF, "score", dump, "--metric", "bi,angular,relmag,bi-attn,bi-mlp",
                      "-o", out])
    if not ok("score --metric (all five)", rc, err):
        return
    rows = read_csv(out)
    cols = list(rows[0].keys())
    check(cols == SCORE_COLS, f"long-form columns {SCORE_COLS}: {cols}")
    check(len(rows) == 5 * L and
          [(r["metric"], int(r["block"])) for r in rows] ==
          [(mt, l) for mt in ("bi", "angular", "relmag", "bi-attn", "bi-mlp") for l in range(L)],
          f"one row per metric and block, metrics in the order asked: {len(rows)} rows")
    check(all(int(r["n_tokens"]) == h.shape[0] * h.shape[2] and r["span"] == "1" for r in rows),
          "n_tokens = N * P, span 1")
    check(all(r[k] == "" for r in rows for k in ("ci_lo", "ci_hi", "stability")),
          "no bootstrap: ci_lo, ci_hi, stability empty")
    meta = read_meta(out)
    check(meta.get("program") == "strata-blockinf" and meta.get("model") == STORIES and
          meta.get("corpus") == CORPUS and meta.get("n_samples") == str(h.shape[0]) and
          meta.get("seq_len") == str(T), f"provenance line names model, corpus, N, T: {meta}")
    for metric in ("bi", "angular", "relmag", "bi-attn", "bi-mlp"):
        want = per_sample(h, a, m, metric).mean(0)
        got = column(rows, metric, L)
        d = np.nanmax(np.abs(got - want))
        check(d <= TOL, f"{metric}: within {TOL} of numpy: max diff {d:.3g}; {got} vs {want}")
        rk = column(rows, metric, L, "rank")
        check(np.array_equal(rk.astype(int), ranks_of(want)[0]), f"{metric}: ranks {rk}")
        print(f"{metric}: {np.array2string(want, precision=4)} (max diff {d:.2g})")
    # the old command line (dump first, no subcommand) is `score --metric bi`
    old = os.path.join(tmp, "old.csv")
    rc, _, err = run([BLOCKINF, dump, "-o", old])
    if ok("strata-blockinf DUMP -o CSV", rc, err):
        r2 = read_csv(old)
        check(list(r2[0].keys()) == SCORE_COLS and
              [x["value"] for x in r2] == [x["value"] for x in rows if x["metric"] == "bi"],
              f"old command line: the same BI rows: {list(r2[0].keys())}")
    for n, last in ((2, False), (1, True), (3, True)):
        o = os.path.join(tmp, f"ang{n}{last}.csv")
        cmd = [BLOCKINF, dump, "--metric", "angular", "--n", str(n), "-o", o]
        rc, _, err = run(cmd + (["--tokens", "last"] if last else []))
        if not ok(f"angular --n {n} last={last}", rc, err):
            continue
        rr = read_csv(o)
        want = per_sample(h, a, m, "angular", n=n, last=last).mean(0)
        got = column(rr, "angular", L)
        check(len(rr) == L + 1 - n and all(x["span"] == str(n) for x in rr),
              f"angular n={n}: rows for blocks 0..{L - n} only (a missing row, not an empty "
              f"cell), span {n}")
        same_nan = np.array_equal(np.isnan(got), np.isnan(want))
        d = np.nanmax(np.abs(got - want))
        check(same_nan and d <= TOL, f"angular n={n} tokens={'last' if last else 'all'}: "
              f"rows 0..{L - n}, max diff {d:.3g}; {got} vs {want}")
        check(all(int(x["n_tokens"]) == h.shape[0] * (1 if last else h.shape[2]) for x in rr),
              f"angular n={n}: n_tokens counts the tokens used")
    o = os.path.join(tmp, "bilast.csv")
    rc, _, err = run([BLOCKINF, dump, "--tokens", "last", "-o", o])
    if ok("bi --tokens last", rc, err):
        want = per_sample(h, a, m, "bi", last=True).mean(0)
        d = np.nanmax(np.abs(column(read_csv(o), "bi", L) - want))
        check(read_meta(o).get("tokens") == "last", "provenance line says tokens=last")
        check(d <= TOL, f"bi on the last token: max diff {d:.3g}")


def check_bootstrap(tmp, dump):
    h, a, m, _ = load(dump)
    L = h.shape[1] - 1
    B, ci = 200, 0.9

    def boot(seed, tag):
        o = os.path.join(tmp, f"boot_{tag}.csv")
        rc, _, err = run([BLOCKINF, dump, "--metric", "bi,relmag", "--bootstrap", str(B),
                          "--seed", str(seed), "--ci", str(ci), "-o", o])
        return o if ok(f"bootstrap seed {seed}", rc, err) else None

    a1, a2, b1 = boot(7, "a1"), boot(7, "a2"), boot(8, "b1")
    if not (a1 and a2 and b1):
        return
    check(open(a1, "rb").read() == open(a2, "rb").read(), "same seed: byte-identical CSV")
    ra, rb = read_csv(a1), read_csv(b1)
    check(any(x["ci_lo"] != y["ci_lo"] or x["ci_hi"] != y["ci_hi"] for x, y in zip(ra, rb)),
          "another seed: different intervals")
    meta = read_meta(a1)
    check(meta.get("bootstrap") == str(B) and meta.get("ci") == str(ci) and meta.get("seed") == "7",
          f"provenance line names the bootstrap: {meta}")
    for metric in ("bi", "relmag"):
        vals = per_sample(h, a, m, metric)
        lo, hi, stab, _, _ = np_bootstrap(vals, B, 7, ci)
        point = column(ra, metric, L)
        glo, ghi = column(ra, metric, L, "ci_lo"), column(ra, metric, L, "ci_hi")
        gst = column(ra, metric, L, "stability")
        d = max(np.abs(glo - lo).max(), np.abs(ghi - hi).max())
        check(d <= 1e-8, f"{metric}: interval equals numpy's splitmix64 bootstrap: max diff {d:.3g}")
        check(np.abs(gst - stab).max() <= 1e-9, f"{metric}: rank stability {gst} = numpy {stab}")
        check(np.all((glo <= point) & (point <= ghi)), f"{metric}: CI contains the point: "
              f"{glo} <= {point} <= {ghi}")
        check(np.all(ghi > glo), f"{metric}: intervals have width")
        print(f"{metric} {int(ci * 100)}% CI: lo {np.array2string(glo, precision=4)} "
              f"hi {np.array2string(ghi, precision=4)} stab {gst}")


def check_shards(tmp, dump):
    n1 = N // 2
    s1, s2 = os.path.join(tmp, "shard1.h5"), os.path.join(tmp, "shard2.h5")
    for path, n, off in ((s1, n1, OFF), (s2, N - n1, OFF + n1)):
        rc, _, err = probe(STORIES, path, n, off)
        if not ok(f"probe shard at offset {off}", rc, err):
            return
    one, two = os.path.join(tmp, "one.csv"), os.path.join(tmp, "two.csv")
    cmd = ["--metric", "bi,angular,relmag,bi-attn,bi-mlp"]
    rc1, _, e1 = run([BLOCKINF, dump, *cmd, "-o", one])
    rc2, _, e2 = run([BLOCKINF, s1, s2, *cmd, "-o", two])
    if ok("score one dump", rc1, e1) and ok("score two shards", rc2, e2):
        r1, r2 = read_csv(one), read_csv(two)
        d = max(abs(float(x["value"]) - float(y["value"])) for x, y in zip(r1, r2))
        same_rank = all(x[k] == y[k] for x, y in zip(r1, r2)
                        for k in ("block", "metric", "rank", "n_tokens"))
        check(len(r1) == len(r2) and d <= 1e-12 and same_rank,
              f"shards = one dump: max diff {d:.3g}, ranks equal {same_rank}")


def check_plan(tmp, dump):
    h, a, m, _ = load(dump)
    L = h.shape[1] - 1
    bi = per_sample(h, a, m, "bi")
    point = bi.mean(0)
    _, order = ranks_of(point)
    for K in (1, 2):
        pj, pc = os.path.join(tmp, f"plan{K}.json"), os.path.join(tmp, f"plan{K}.csv")
        rc, _, err = run([BLOCKINF, "plan", dump, "--remove", str(K), "--bootstrap", "100",
                          "--seed", "5", "-o", pj, "--csv", pc])
        if not ok(f"plan --remove {K}", rc, err):
            continue
        p = json.load(open(pj))
        check(p["remove"] == order[:K], f"plan K={K}: remove {p['remove']} = the {K} lowest BI "
              f"{order[:K]}")
        check(p["order"] == order and p["n_layer"] == L and sorted(p["keep"] + p["remove"]) ==
              list(range(L)), f"plan K={K}: order {p['order']}, keep {p['keep']}")
        cal = p["calibration"]
        check(cal["draw_min"] == OFF and cal["draw_max"] == OFF + N - 1 and cal["seq_len"] == T,
              f"plan records the calibration draws {OFF}..{OFF + N - 1}: {cal}")
        _, _, _, reps, tau = np_bootstrap(bi, 100, 5, 0.95)
        same = np.mean([sorted(ranks_of(r)[1][:K]) == sorted(order[:K]) for r in reps])
        check(abs(p["bootstrap"]["remove_stability"] - same) <= 1e-12 and
              abs(p["bootstrap"]["kendall_tau_mean"] - tau) <= 1e-12,
              f"plan K={K}: remove_stability {p['bootstrap']['remove_stability']} = {same}, "
              f"tau {p['bootstrap']['kendall_tau_mean']} = {tau}")
        rows = read_csv(pc)
        check(list(rows[0].keys()) == ["rank", "block", "metric", "span", "value", "remove"] and
              [int(r["block"]) for r in rows] == order and
              [int(r["rank"]) for r in rows] == list(range(1, L + 1)) and
              [int(r["block"]) for r in rows if r["remove"] == "1"] == order[:K] and
              max(abs(float(r["value"]) - point[int(r["block"])]) for r in rows) <= TOL,
              f"plan CSV: rank, block, metric, span, value, remove; rows in removal order, "
              f"first {K} marked")
        check(read_meta(pc).get("remove") == str(K), "plan CSV's provenance line names K")
    pj = os.path.join(tmp, "plan_ang.json")
    rc, _, err = run([BLOCKINF, "plan", dump, "--remove", "2", "--metric", "angular", "-o", pj])
    if ok("plan --metric angular --remove 2", rc, err):
        d = per_sample(h, a, m, "angular", n=2).mean(0)
        l0 = int(np.nanargmin(d))
        check(json.load(open(pj))["remove"] == [l0, l0 + 1],
              f"angular plan: the run {l0},{l0 + 1} minimising d(l, l+2) {d}")


def check_errors(tmp, dump):
    resid = os.path.join(tmp, "resid.h5")
    rc, _, err = probe(STORIES, resid, 2, OFF, sites="resid")
    ok("probe resid only", rc, err)

    def fails(label, cmd, needle):
        rc, _, err = run(cmd)
        lines = [ln for ln in err.splitlines() if ln.startswith("strata-blockinf:")]
        check(rc != 0, f"{label}: exit non-zero (got {rc})")
        check(len(lines) == 1 and needle in lines[0], f"{label}: one message naming "
              f"'{needle}': {err!r}")

    out = os.path.join(tmp, "x.json")
    fails("--remove 5 of 5 blocks", [BLOCKINF, "plan", dump, "--remove", "5", "-o", out], "--remove 5")
    fails("--remove 9", [BLOCKINF, "plan", dump, "--remove", "9"], "5 blocks")
    fails("unknown metric", [BLOCKINF, dump, "--metric", "bogus"], "bogus")
    fails("relmag without attn_out/mlp_out", [BLOCKINF, resid, "--metric", "relmag"], "attn_out")
    fails("bi-mlp without mlp_out", [BLOCKINF, "plan", resid, "--remove", "1", "--metric", "bi-mlp"],
          "mlp_out")
    fails("plan without --remove", [BLOCKINF, "plan", dump], "--remove")
    fails("plan with two metrics", [BLOCKINF, "plan", dump, "--remove", "1", "--metric", "bi,relmag"],
          "one metric")
    fails("--n beyond L", [BLOCKINF, dump, "--metric", "angular", "--n", "6"], "--n 6")
    check(not os.path.exists(out) and not os.path.exists(out + ".partial"), "no plan left behind")
    # `all` on a resid-only dump: bi and angular, with a note
    o = os.path.join(tmp, "all_resid.csv")
    rc, _, err = run([BLOCKINF, resid, "--metric", "all", "-o", o])
    if ok("--metric all on a resid-only dump", rc, err):
        metrics = list(dict.fromkeys(r["metric"] for r in read_csv(o)))
        check(metrics == ["bi", "angular"] and "note" in err,
              f"all = bi, angular on a resid-only dump (note on stderr): {metrics}")


def check_pruned(tmp):
    full, pruned = os.path.join(tmp, "hf_full"), os.path.join(tmp, "hf_pruned")
    for d, extra in ((full, []), (pruned, ["--drop-layers", "1,3"])):
        rc, _, err = run([CONVERT, "--model", STORIES, "-o", d, *extra])
        if not ok(f"convert {' '.join(extra) or '(all layers)'}", rc, err):
            return
    n = 3
    dumps = {}
    for tag, model, extra in (("pruned", pruned, []), ("full_skip", full, ["--skip-layers", "1,3"]),
                              ("orig_skip", STORIES, ["--skip-layers", "1,3"])):
        path = os.path.join(tmp, f"{tag}.h5")
        rc, _, err = probe(model, path, n, 0, sites="resid", extra=extra)
        if not ok(f"probe-hidden {tag}", rc, err):
            return
        dumps[tag] = load(path)[0]
    p, fs, os_ = dumps["pruned"], dumps["full_skip"], dumps["orig_skip"]
    kept = [0, 2, 4]
    bmap = [0] + [k + 1 for k in kept]  # pruned boundary j <-> original boundary
    check(p.shape[1] == 4 and fs.shape[1] == 6, f"boundaries: pruned {p.shape}, full {fs.shape}")
    same = np.array_equal(p, fs[:, bmap])
    check(same, f"pruned checkpoint = HF copy with --skip-layers 1,3 at boundaries {bmap}, bit for "
          f"bit (max diff {np.abs(p - fs[:, bmap]).max():.3g})")
    rel = np.abs(p - os_[:, bmap]).max() / np.abs(os_).max()
    check(rel <= 2e-5, f"pruned checkpoint vs llama2.c original with --skip-layers 1,3: "
          f"max diff {rel:.3g} x max|h| <= 2e-5")
    check(np.array_equal(fs[:, 2], fs[:, 1]) and np.array_equal(fs[:, 4], fs[:, 3]),
          "a skipped block passes the stream through unchanged")
    print(f"pruned vs skip: bit-identical {same}; vs llama2.c {rel:.2g} x max|h|")


def check_baichuan(tmp):
    mdir = os.path.join(tmp, "baichuan7")
    rc, _, err = run([sys.executable, os.path.join(HERE, "mkhf.py"), "--arch", "baichuan7",
                      "--out", mdir, "--layers", "4", "--vocab", "512", "--seed", "4"])
    if not ok("mkhf baichuan7", rc, err):
        return
    M, n_cal = 4 if SAN else 8, 6 if SAN else 10
    dump = os.path.join(tmp, "bc.h5")
    rc, _, err = probe(mdir, dump, n_cal, M)
    if not ok("baichuan: probe-hidden at draws M..", rc, err):
        return
    h, a, m, cal_toks = load(dump)
    sc = os.path.join(tmp, "bc_scores.csv")
    rc, _, err = run([BLOCKINF, dump, "--metric", "all", "--bootstrap", "50", "-o", sc])
    if ok("baichuan: score --metric all", rc, err):
        rows = read_csv(sc)
        d = max(np.nanmax(np.abs(column(rows, c, 4) - per_sample(h, a, m, c).mean(0)))
                for c in ("bi", "angular", "relmag", "bi-attn", "bi-mlp"))
        check(d <= TOL, f"baichuan: all five scores within {TOL} of numpy: {d:.3g}")
    plan = os.path.join(tmp, "bc_plan.json")
    rc, _, err = run([BLOCKINF, "plan", dump, "--remove", "1", "-o", plan])
    if not ok("baichuan: plan --remove 1", rc, err):
        return
    p = json.load(open(plan))
    want = ranks_of(per_sample(h, a, m, "bi").mean(0))[1]
    check(p["remove"] == want[:1], f"baichuan: plan removes {p['remove']} = lowest BI {want[:1]}")
    ev = os.path.join(tmp, "bc_eval")
    rc, _, err = run([sys.executable, EVAL, plan, "-o", ev, "--samples", str(M), "--kmax", "2",
                      "--bindir", BINDIR])
    # (tests/test_plot.py checks where blockinf_eval.py finds the programs without --bindir)
    if not ok("baichuan: blockinf_eval.py", rc, err):
        return
    pl, pk = read_csv(os.path.join(ev, "ppl_layer.csv")), read_csv(os.path.join(ev, "ppl_k.csv"))
    check([int(r["block"]) for r in pl] == [0, 1, 2, 3] and [int(r["k"]) for r in pk] == [0, 1, 2],
          f"eval: 4 single-removal rows, K = 0..2: {len(pl)}, {[r['k'] for r in pk]}")
    check([r["removed"] for r in pk] == ["", str(want[0]), f"{want[0]};{want[1]}"],
          f"eval: K blocks removed (';'-separated) = the plan's order prefixes: "
          f"{[r['removed'] for r in pk]}")
    em = read_meta(os.path.join(ev, "ppl_k.csv"))
    check(em.get("model") == mdir and em.get("n_samples") == str(M) and em.get("seq_len") == str(T),
          f"eval CSVs' provenance line: model, N, T: {em}")
    base = float(pk[0]["ppl"])
    check(all(float(r["ppl_base"]) == base for r in pl), "eval: ppl_base = the K = 0 perplexity")
    single = {int(r["block"]): float(r["ppl"]) for r in pl}
    check(float(pk[1]["ppl"]) == single[want[0]], "eval: K = 1 = the single removal of that block")
    # held out: no evaluation window equals a calibration window
    with h5py.File(os.path.join(ev, "runs", "skip_none.h5"), "r") as f:
        ev_toks = f["tokens"][...]
    shared = {r.tobytes() for r in ev_toks} & {r.tobytes() for r in cal_toks}
    check(len(ev_toks) == M and not shared, f"eval: {len(ev_toks)} held-out samples, "
          f"{len(shared)} shared with calibration")
    rc, _, err = run([sys.executable, EVAL, plan, "-o", ev, "--samples", str(M + 1),
                      "--bindir", BINDIR])
    check(rc != 0 and "--sample-offset" in err and f"--samples {M} or fewer" in err,
          f"eval refuses M > the first calibration draw, saying what to do: {rc}, {err.strip()}")
    # convert --drop-layers with the plan -> probe-ppl on the pruned model
    pruned = os.path.join(tmp, "bc_pruned")
    rc, _, err = run([CONVERT, "--model", mdir, "--tokenizer", TOK, "--drop-layers",
                      ",".join(map(str, p["remove"])), "-o", pruned])
    if not ok("baichuan: convert --drop-layers", rc, err):
        return
    out = os.path.join(tmp, "bc_pruned_ppl.h5")
    rc, _, err = run([PPL, "--model", pruned, "--tokenizer", TOK, "--corpus", CORPUS,
                      "--samples", str(M), "--seq-len", str(T), "--seed", "3", "-o", out])
    if ok("baichuan: probe-ppl on the pruned model", rc, err):
        allrow = [r for r in read_csv(out[:-3] + ".csv") if r["kind"] == "all"][0]
        check(float(allrow["ppl"]) == float(pk[1]["ppl"]),
              f"pruned model ppl {allrow['ppl']} = skip-layers ppl {pk[1]['ppl']} (bit for bit)")
        print(f"baichuan7 (L=4): remove {p['remove']}; ppl {base:.4g} -> {allrow['ppl']}")


def body(tmp):
    dump = os.path.join(tmp, "stories.h5")
    rc, _, err = probe(STORIES, dump, N, OFF)
    if not ok("probe-hidden stories260K (resid, attn_out, mlp_out)", rc, err):
        return
    check_scores(tmp, dump)
    check_bootstrap(tmp, dump)
    check_shards(tmp, dump)
    check_plan(tmp, dump)
    check_errors(tmp, dump)
    check_pruned(tmp)
    check_baichuan(tmp)


if __name__ == "__main__":
    main("test_blockinf", body)
