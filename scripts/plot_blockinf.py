#!/usr/bin/python3
"""plot_blockinf.py — Block Influence and its variants per block, and what
removing blocks costs (ShortGPT, Men et al. 2024; P3 in
../shared/docs/PAPERS.md; docs/BLOCKINF.md), from the CSVs strata-blockinf
and scripts/blockinf_eval.py write.

Panels, in one PNG:
  - BI per block (the first metric present when there is no bi column), with
    the bootstrap confidence interval as whiskers when the CSV has bi_lo and
    bi_hi; the lowest-k blocks coloured and labelled with their rank, so the
    pruning order reads off the figure (the paper finds them late, but not
    the very last);
  - each further metric of the CSV (angular, relmag, bi_attn, bi_mlp) side
    by side, drawn the same way;
  - with --ppl-layer: perplexity with each single block removed (log scale,
    the unpruned model's as a dashed line);
  - with --ppl-k: perplexity against the number of blocks removed.

Reads CSV only (never the HDF5 dump), so plotting needs neither strata nor
h5py. Columns of the scores CSV: layer, and for each metric M its value M,
its rank (`rank` for bi, `M_rank` otherwise; optional: ranked by value),
optional M_lo and M_hi; empty cells are blocks the metric does not score.
"""
import argparse
import csv
import math
import os
import sys

PROG = "plot_blockinf"
METRICS = ("bi", "angular", "relmag", "bi_attn", "bi_mlp")
LABELS = {
    "bi": r"BI$_l$ = 1 − mean cos($X_l$, $X_{l+1}$)",
    "angular": r"angular distance arccos(cos)/π",
    "relmag": r"relative magnitude |f(x)| / |x + f(x)|",
    "bi_attn": r"BI of attention: 1 − cos(x, x + attn)",
    "bi_mlp": r"BI of MLP: 1 − cos($x_{mid}$, $x_{mid}$ + mlp)",
}


class InputError(Exception):
    pass


def read_rows(path, what, required):
    """Rows of a CSV as dicts of stripped strings; InputError naming path."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(ln for ln in f if not ln.startswith("#")))
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}")
    except (csv.Error, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable CSV: {e}")
    rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in rows]
    cols = list(rows[0].keys()) if rows else []
    missing = [c for c in required if c not in cols]
    if not rows or missing:
        raise InputError(f"{path}: expected {what} with columns {', '.join(required)}; "
                         + (f"missing {', '.join(missing)}" if rows else "no data rows"))
    return rows


def num(path, line, row, col, kind=float, empty_ok=False):
    v = row.get(col, "")
    if v == "" and empty_ok:
        return None
    try:
        return kind(v)
    except ValueError:
        raise InputError(f"{path}: line {line}: {col} must be a number: {v!r}")


def read_scores(path):
    """{metric: (layers, values, ranks, lo, hi)}, metrics in METRICS order."""
    rows = read_rows(path, "a strata-blockinf CSV", ("layer",))
    cols = rows[0].keys()
    present = [m for m in METRICS if m in cols]
    if not present:
        raise InputError(f"{path}: expected a strata-blockinf CSV with columns layer and one of "
                         f"{', '.join(METRICS)} (bi also needs rank); missing all of them")
    out = {}
    for m in present:
        rcol = "rank" if m == "bi" else f"{m}_rank"
        if m == "bi" and "rank" not in cols:
            raise InputError(f"{path}: expected a strata-blockinf CSV with columns layer, bi, "
                             "rank; missing rank")
        data = []
        for i, r in enumerate(rows, start=2):
            layer = num(path, i, r, "layer", int)
            v = num(path, i, r, m, empty_ok=True)
            if v is None:
                continue
            rank = num(path, i, r, rcol, int, empty_ok=True) if rcol in cols else None
            lo = num(path, i, r, f"{m}_lo", empty_ok=True) if f"{m}_lo" in cols else None
            hi = num(path, i, r, f"{m}_hi", empty_ok=True) if f"{m}_hi" in cols else None
            data.append((layer, v, rank, lo, hi))
        if not data:
            continue
        data.sort()
        if any(d[2] is None for d in data):  # rank by value, lowest first
            by = sorted(range(len(data)), key=lambda j: (data[j][1], data[j][0]))
            data = [(d[0], d[1], by.index(j) + 1, d[3], d[4]) for j, d in enumerate(data)]
        out[m] = tuple(list(x) for x in zip(*data))
    if not out:
        raise InputError(f"{path}: no block has a score")
    return out


def read_ppl_layer(path):
    rows = read_rows(path, "a blockinf_eval ppl_layer CSV", ("layer", "ppl"))
    data = sorted((num(path, i, r, "layer", int), num(path, i, r, "ppl"),
                   num(path, i, r, "ppl_base", empty_ok=True) if "ppl_base" in r else None)
                  for i, r in enumerate(rows, start=2))
    return [d[0] for d in data], [d[1] for d in data], data[0][2]


def read_ppl_k(path):
    rows = read_rows(path, "a blockinf_eval ppl_k CSV", ("k", "ppl"))
    data = sorted((num(path, i, r, "k", int), num(path, i, r, "ppl"), r.get("removed", ""))
                  for i, r in enumerate(rows, start=2))
    return [d[0] for d in data], [d[1] for d in data], [d[2] for d in data]


def bars(ax, metric, layers, vals, ranks, lo, hi, lowest):
    hot = [r is not None and r <= lowest for r in ranks]
    colors = ["tab:red" if h else "tab:blue" for h in hot]
    b = ax.bar(layers, vals, color=colors, edgecolor="black", linewidth=0.4)
    if all(x is not None for x in lo + hi) and lo:
        err = [[max(v - l, 0) for v, l in zip(vals, lo)], [max(h - v, 0) for v, h in zip(vals, hi)]]
        ax.errorbar(layers, vals, yerr=err, fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    for bar, r, h in zip(b, ranks, hot):
        if h:
            y = bar.get_height()
            ax.annotate(f"#{r}", (bar.get_x() + bar.get_width() / 2, y),
                        xytext=(0, 3 if y >= 0 else -12), textcoords="offset points",
                        ha="center", fontsize=8, color="tab:red")
    ax.set_xlabel("block l (0 = first)")
    ax.set_ylabel(LABELS.get(metric, metric), fontsize=8)
    if len(layers) <= 40:
        ax.set_xticks(layers)
    ax.margins(y=0.12)


def plot(scores, ppl_layer, ppl_k, out, title, lowest):
    import matplotlib
    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    panels = [("score", m) for m in scores]
    if ppl_layer:
        panels.append(("ppl_layer", None))
    if ppl_k:
        panels.append(("ppl_k", None))
    n_layer = max(len(v[0]) for v in scores.values())
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    w = max(6.0, 0.35 * n_layer + 2.0)
    fig, axes = plt.subplots(nrow, ncol, figsize=(w * ncol, 4.0 * nrow), dpi=100, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (kind, m) in zip(axes.flat, panels):
        if kind == "score":
            layers, vals, ranks, lo, hi = scores[m]
            bars(ax, m, layers, vals, ranks, lo, hi, lowest)
            ci = " with bootstrap CI" if lo and all(x is not None for x in lo) else ""
            name = {"bi": "Block Influence"}.get(m, m.replace("_", "-"))
            ax.set_title(f"{name} per block{ci}" + (f" — {title}" if title else ""), fontsize=10)
            handles = [Patch(color="tab:blue", label="other blocks")]
            if lowest > 0:
                handles.insert(0, Patch(color="tab:red", label=f"lowest {min(lowest, len(layers))} "
                                        "(#rank: removal order)"))
            ax.legend(handles=handles, fontsize=7, loc="best")
        elif kind == "ppl_layer":
            layers, ppl, base = ppl_layer
            ax.bar(layers, ppl, color="tab:green", edgecolor="black", linewidth=0.4)
            if base is not None:
                ax.axhline(base, color="black", linestyle="--", linewidth=1,
                           label=f"no block removed: {base:.3g}")
                ax.legend(fontsize=7, loc="best")
            ax.set_yscale("log")
            ax.set_xlabel("block removed")
            ax.set_ylabel("perplexity (held-out)")
            if len(layers) <= 40:
                ax.set_xticks(layers)
            ax.set_title("Perplexity with one block removed", fontsize=10)
        else:
            ks, ppl, removed = ppl_k
            ax.plot(ks, ppl, marker="o", color="tab:purple")
            for k, p, r in zip(ks, ppl, removed):
                if r:
                    ax.annotate(r.split()[-1], (k, p), xytext=(4, -10), textcoords="offset points",
                                fontsize=7, color="tab:purple")
            ax.set_yscale("log")
            ax.set_xlabel("blocks removed K (lowest score first; label: the K-th)")
            ax.set_ylabel("perplexity (held-out)")
            ax.set_xticks(ks)
            ax.set_title("Perplexity against blocks removed", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Plot Block Influence (and variants) per block from a strata-blockinf CSV "
                    "as a PNG; the k lowest blocks are highlighted with their rank; optional "
                    "panels of perplexity with blocks removed (scripts/blockinf_eval.py).")
    ap.add_argument("csv", help="scores CSV written by strata-blockinf")
    ap.add_argument("-o", "--output", help="PNG to write (default: the CSV's path with .png)")
    ap.add_argument("--title", help="model name for the title")
    ap.add_argument("-k", "--lowest", type=int, default=3,
                    help="how many lowest-score blocks to highlight (default 3)")
    ap.add_argument("--ppl-layer", help="ppl_layer.csv: perplexity with each block removed")
    ap.add_argument("--ppl-k", help="ppl_k.csv: perplexity against blocks removed")
    a = ap.parse_args(argv)
    out = a.output or os.path.splitext(a.csv)[0] + ".png"
    try:
        if a.lowest < 0:
            raise InputError(f"--lowest {a.lowest}: must be 0 or more")
        scores = read_scores(a.csv)
        pl = read_ppl_layer(a.ppl_layer) if a.ppl_layer else None
        pk = read_ppl_k(a.ppl_k) if a.ppl_k else None
        try:
            plot(scores, pl, pk, out, a.title, a.lowest)
        except OSError as e:
            raise InputError(f"{out}: cannot write: {e.strerror or e}")
    except InputError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    print(f"{PROG}: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
