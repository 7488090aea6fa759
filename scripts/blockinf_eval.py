#!/usr/bin/python3
"""blockinf_eval.py — perplexity of a model with blocks removed, on held-out
text, for a plan from `strata-blockinf plan` (ShortGPT, Men et al. 2024; P3
in ../shared/docs/PAPERS.md; docs/BLOCKINF.md).

Two curves, each point one run of `strata-probe-ppl --skip-layers`:
  ppl_layer.csv  the model with each single block removed (the paper's
                 per-layer removal curve): block, rank, score, mean_nll, ppl,
                 ppl_base, n_tokens
  ppl_k.csv      the model with the plan's first K blocks removed, K = 0 ..
                 Kmax (order = the plan's "order", lowest score first; an
                 angular plan is not nested in K, so only K = 0 and its own K):
                 k, removed (';'-separated blocks), mean_nll, ppl, n_tokens
Both start with a comment line naming model, corpus, samples and length
(docs/FORMAT.md "CSV files").

Held out: strata's samples are draws of one seeded shuffle of the corpus'
windows (lib/corpus.c), and distinct draws are distinct, non-overlapping
windows, each starting at a document start, so no token is shared. The
calibration dump records its draws (the plan's calibration.draw_min ..
draw_max, made with strata-probe-hidden --sample-offset D); this script
evaluates draws 0 .. M-1 of the same shuffle (same corpus, format,
separator or JSONL field, seed and sequence length: strata-probe-ppl samples
as strata-probe-hidden does), and refuses M > draw_min.

Reads the plan JSON and the CSVs strata-probe-ppl writes. Runs
strata-probe-ppl from --bindir, else $BINDIR, else the first of: the bin/
of the source tree this script is in, PREFIX/bin when the script is
installed as PREFIX/share/strata/scripts (make install), the PATH, and
/usr/local/bin (the Makefile's default PREFIX).
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

PROG = "blockinf_eval"


class InputError(Exception):
    pass


PPL = "strata-probe-ppl"
DEFAULT_PREFIX = "/usr/local"  # the Makefile's PREFIX


def find_bindir(given):
    """(directory holding strata-probe-ppl, where it was looked for)."""
    if given:
        return given, [given]
    if os.environ.get("BINDIR"):
        return os.environ["BINDIR"], [os.environ["BINDIR"] + " ($BINDIR)"]
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [(os.path.join(os.path.dirname(here), "bin"), "the source tree's bin/")]
    parts = here.split(os.sep)
    if parts[-3:] == ["share", "strata", "scripts"]:  # PREFIX/share/strata/scripts
        cands.append((os.sep.join(parts[:-3] + ["bin"]), "the install prefix"))
    on_path = shutil.which(PPL)
    cands.append((os.path.dirname(on_path) if on_path else None, "the PATH"))
    cands.append((os.path.join(DEFAULT_PREFIX, "bin"), "make install's default PREFIX"))
    tried = []
    for d, what in cands:
        if d is None:
            tried.append(what)
            continue
        tried.append(f"{d} ({what})")
        p = os.path.join(d, PPL)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return d, tried
    raise InputError(f"{PPL} not found; looked in {', '.join(tried)}. Build it (make) or install "
                     "it (make install PREFIX=DIR), or give --bindir DIR")


def meta_line(**kv):
    """'# key=value ...' (docs/FORMAT.md "CSV files"); empty values left out."""
    def esc(v):  # white space, '%', ',' and control bytes as %XX, as lib/cli/csv.c does
        return "".join(f"%{ord(c):02X}" if c <= " " or c in "%,\x7f" else c for c in str(v))
    return "#" + "".join(f" {k}={esc(v)}" for k, v in kv.items() if v not in (None, ""))


def load_plan(path):
    try:
        with open(path, encoding="utf-8") as f:
            plan = json.load(f)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}")
    except ValueError as e:
        raise InputError(f"{path}: not JSON: {e}")
    for key in ("remove", "order", "n_layer", "metric", "calibration"):
        if key not in plan:
            raise InputError(f"{path}: not a strata-blockinf plan (no \"{key}\")")
    return plan


def ppl_of(bindir, run_dir, tag, skip, a, cal):
    """(mean_nll, ppl, n_values) of one strata-probe-ppl run, from its CSV."""
    out = os.path.join(run_dir, f"{tag}.h5")
    out_csv = os.path.join(run_dir, f"{tag}.csv")
    fmt_ = cal.get("corpus_format", "text")
    cmd = [os.path.join(bindir, PPL), "--model", a.model, "--corpus", a.corpus,
           "--corpus-format", fmt_, "--samples", str(a.samples),
           "--seq-len", str(cal["seq_len"]), "--seed", str(cal["seed"]), "--csv", out_csv,
           "-o", out]
    if fmt_ == "text":
        cmd += ["--sep", cal.get("separator") or "<|endoftext|>"]
    elif fmt_ == "jsonl":
        cmd += ["--jsonl-field", cal.get("jsonl_field") or "text"]
    if a.tokenizer:
        cmd += ["--tokenizer", a.tokenizer]
    if skip:
        cmd += ["--skip-layers", ",".join(str(l) for l in skip)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise InputError(f"{cmd[0]}: cannot run: {e.strerror or e} (give --bindir DIR, the "
                         f"directory of {PPL})")
    if p.returncode != 0:
        msg = " ".join(p.stderr.split())[-400:]
        raise InputError(f"strata-probe-ppl --skip-layers {','.join(map(str, skip)) or '-'} "
                         f"failed (exit {p.returncode}): {msg}")
    with open(out_csv, newline="") as f:
        for r in csv.DictReader(ln for ln in f if not ln.startswith("#")):
            if r["kind"] == "all":
                return float(r["mean_nll"]), float(r["ppl"]), int(r["n_values"])
    raise InputError(f"{out_csv}: no 'all' row")


def write_csv(path, meta, header, rows):
    tmp = path + ".partial"
    try:
        with open(tmp, "w", newline="") as f:
            f.write(meta + "\n")
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror or e}")


def fmt(x):
    return f"{x:.10g}"


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Perplexity on held-out samples with each block removed and with the "
                    "plan's K lowest blocks removed (K = 0 .. Kmax), via strata-probe-ppl "
                    "--skip-layers. Samples: draws 0 .. M-1 of the calibration's seeded "
                    "shuffle, which must lie below the calibration's draws "
                    "(strata-probe-hidden --sample-offset).")
    ap.add_argument("plan", help="PLAN.json from strata-blockinf plan")
    ap.add_argument("-o", "--output", required=True, help="output directory (created)")
    ap.add_argument("--samples", type=int, help="M held-out samples (default min(64, draw_min))")
    ap.add_argument("--kmax", type=int, help="largest K of ppl_k.csv (default max(K, L/2))")
    ap.add_argument("--model", help="checkpoint (default: the calibration's model_path)")
    ap.add_argument("--tokenizer", help="tokenizer (default: the calibration's)")
    ap.add_argument("--corpus", help="the calibration's corpus as seen from here (default: "
                    "its corpus_path); must be the same text")
    ap.add_argument("--bindir",
                    help="where strata-probe-ppl is (default: $BINDIR, else this source tree's "
                         "bin/, the install prefix, the PATH, /usr/local/bin)")
    a = ap.parse_args(argv)
    try:
        plan = load_plan(a.plan)
        cal = plan["calibration"]
        L = int(plan["n_layer"])
        for key in ("seed", "seq_len", "corpus_path", "model_path"):
            if key not in cal:
                raise InputError(f"{a.plan}: calibration has no \"{key}\" (the dump lacks it)")
        a.model = a.model or cal["model_path"]
        a.tokenizer = a.tokenizer or cal.get("tokenizer_path")
        a.corpus = a.corpus or cal["corpus_path"]
        dmin = cal.get("draw_min")
        if dmin is None:
            raise InputError(f"{a.plan}: calibration records no draws")
        if a.samples is None:
            a.samples = min(64, int(dmin))
        if dmin < 1:
            raise InputError(
                f"{a.plan}: the calibration used draws {dmin} .. {cal.get('draw_max')}, so no "
                "draw is left for held-out samples; redo the calibration dump with "
                "strata-probe-hidden --sample-offset M (M held-out samples first, e.g. 64), "
                "then strata-blockinf plan on it")
        if a.samples < 1 or a.samples > dmin:
            raise InputError(
                f"{a.plan}: --samples {a.samples}: the held-out samples are draws 0 .. M-1 "
                f"below the calibration's draws {dmin} .. {cal.get('draw_max')}, so M must be "
                f"1 .. {dmin}; give --samples {dmin} or fewer, or, for more, redo the calibration "
                f"dump with strata-probe-hidden --sample-offset {max(a.samples, 1)} (or more) "
                "and plan again")
        remove = [int(l) for l in plan["remove"]]
        order = [int(l) for l in plan["order"]]
        score = plan.get("score") or [None] * L
        nested = plan["metric"] != "angular"
        kmax = a.kmax if a.kmax is not None else max(len(remove), L // 2)
        if not 0 <= kmax < L:
            raise InputError(f"--kmax {kmax}: expected 0 .. {L - 1}")
        bindir, _ = find_bindir(a.bindir)
        meta = meta_line(program=PROG, model=a.model, corpus=a.corpus, n_samples=a.samples,
                         seq_len=cal["seq_len"], metric=plan["metric"],
                         draws=f"0-{a.samples - 1}")
        run_dir = os.path.join(a.output, "runs")
        try:
            os.makedirs(run_dir, exist_ok=True)
        except OSError as e:
            raise InputError(f"{a.output}: cannot create: {e.strerror or e}")

        cache = {}

        def ppl(skip):
            key = tuple(sorted(skip))
            if key not in cache:
                tag = "skip_" + ("-".join(map(str, key)) if key else "none")
                cache[key] = ppl_of(bindir, run_dir, tag, list(key), a, cal)
                print(f"{PROG}: removed [{' '.join(map(str, key))}]: ppl {cache[key][1]:.4f}",
                      file=sys.stderr)
            return cache[key]

        base = ppl([])
        rank = {l: i + 1 for i, l in enumerate(order)}
        rows = []
        for l in range(L):
            nll, p, n = ppl([l])
            s = score[l] if l < len(score) else None
            rows.append([l, rank.get(l, ""), "" if s is None else fmt(s), fmt(nll), fmt(p),
                         fmt(base[1]), n])
        write_csv(os.path.join(a.output, "ppl_layer.csv"), meta,
                  ["block", "rank", "score", "mean_nll", "ppl", "ppl_base", "n_tokens"], rows)
        ks = range(kmax + 1) if nested else sorted({0, len(remove)})
        rows = []
        for k in ks:
            if nested and k > len(order):
                break
            skip = order[:k] if nested else (remove if k else [])
            nll, p, n = ppl(skip)
            rows.append([k, ";".join(map(str, skip)), fmt(nll), fmt(p), n])
        write_csv(os.path.join(a.output, "ppl_k.csv"), meta,
                  ["k", "removed", "mean_nll", "ppl", "n_tokens"], rows)
    except InputError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    print(f"{PROG}: wrote {a.output}/ppl_layer.csv and ppl_k.csv ({a.samples} held-out samples, "
          f"draws 0 .. {a.samples - 1}; calibration draws {dmin} .. {cal.get('draw_max')})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
