#!/usr/bin/python3
"""plot_blockinf.py — Block Influence and its variants per block, and what
removing blocks costs (ShortGPT, Men et al. 2024; P3 in
../shared/docs/PAPERS.md; docs/BLOCKINF.md), from the CSVs strata-blockinf
and scripts/blockinf_eval.py write.

Panels, in one figure:
  - BI per block (the first metric present when there is no bi), with the
    bootstrap confidence interval as whiskers when the CSV has ci_lo and
    ci_hi; the lowest-k blocks coloured and labelled with their rank, so the
    pruning order reads off the figure;
  - each further metric of the CSV (angular, relmag, bi-attn, bi-mlp) side
    by side, drawn the same way;
  - with --ppl-layer: perplexity with each single block removed (log scale,
    the unpruned model's as a dashed line);
  - with --ppl-k: perplexity against the number of blocks removed.

Reads CSV only (never the HDF5 dump). The scores CSV is strata-blockinf's
long form: block, metric, value, and optionally span, ci_lo, ci_hi,
stability, rank, n_tokens (docs/FORMAT.md "CSV files"); rows without a rank
are ranked by value. Title: what the figure shows, and model, corpus, N and
T from the CSV's comment line (or --model, --corpus, --samples, --seq-len).
The output's extension picks the format: .png, .pdf or .svg (plotkit.py).
"""
import argparse
import math
import os
import sys

import plotkit
from plotkit import InputError, num

PROG = "plot_blockinf"
METRICS = ("bi", "angular", "relmag", "bi-attn", "bi-mlp")
LABELS = {
    "bi": r"BI$_l$ = 1 − mean cos($X_l$, $X_{l+1}$)",
    "angular": r"angular distance arccos(cos)/π",
    "relmag": r"relative magnitude |f(x)| / |x + f(x)|",
    "bi-attn": r"BI of attention: 1 − cos(x, x + attn)",
    "bi-mlp": r"BI of MLP: 1 − cos($x_{mid}$, $x_{mid}$ + mlp)",
}
NAMES = {"bi": "Block Influence", "angular": "Angular distance", "relmag": "Relative magnitude",
         "bi-attn": "BI of the attention sub-block", "bi-mlp": "BI of the MLP sub-block"}


def read_scores(path):
    """({metric: (blocks, values, ranks, lo, hi)}, meta), metrics in METRICS order."""
    try:
        rows, meta = plotkit.read_csv(path, ("block", "metric", "value"),
                                      "a strata-blockinf scores CSV (long form)")
    except InputError as e:
        if "missing" in str(e):  # say so if it is the wide CSV of older strata
            try:
                with open(path, encoding="utf-8") as f:
                    head = next((ln for ln in f if not ln.startswith("#")), "")
            except (OSError, UnicodeDecodeError):
                head = ""
            if head.split(",")[0].strip() == "layer":
                raise InputError(f"{path}: a wide Block Influence CSV (column layer) of an older "
                                 "strata; rerun strata-blockinf for the long form (block, metric, "
                                 "value, ...)")
        raise
    cols = rows[0].keys()
    data = {}
    for i, r in enumerate(rows, start=2):
        m = r["metric"]
        if m not in METRICS:
            raise InputError(f"{path}: line {i}: unknown metric {m!r} (expected "
                             f"{', '.join(METRICS)})")
        v = num(path, i, r, "value", empty_ok=True)
        if v is None:
            continue
        data.setdefault(m, []).append((
            num(path, i, r, "block", int), v,
            num(path, i, r, "rank", int, empty_ok=True) if "rank" in cols else None,
            num(path, i, r, "ci_lo", empty_ok=True) if "ci_lo" in cols else None,
            num(path, i, r, "ci_hi", empty_ok=True) if "ci_hi" in cols else None))
    out = {}
    for m in METRICS:
        d = sorted(data.get(m, []))
        if not d:
            continue
        if any(x[2] is None for x in d):  # rank by value, lowest first
            by = sorted(range(len(d)), key=lambda j: (d[j][1], d[j][0]))
            d = [(x[0], x[1], by.index(j) + 1, x[3], x[4]) for j, x in enumerate(d)]
        out[m] = tuple(list(x) for x in zip(*d))
    if not out:
        raise InputError(f"{path}: no block has a score")
    return out, meta


def read_ppl_layer(path):
    rows, meta = plotkit.read_csv(path, ("block", "ppl"), "a blockinf_eval ppl_layer CSV")
    data = sorted((num(path, i, r, "block", int), num(path, i, r, "ppl"),
                   num(path, i, r, "ppl_base", empty_ok=True) if "ppl_base" in r else None)
                  for i, r in enumerate(rows, start=2))
    return [d[0] for d in data], [d[1] for d in data], data[0][2], meta


def read_ppl_k(path):
    rows, meta = plotkit.read_csv(path, ("k", "ppl"), "a blockinf_eval ppl_k CSV")
    data = sorted((num(path, i, r, "k", int), num(path, i, r, "ppl"), r.get("removed", ""))
                  for i, r in enumerate(rows, start=2))
    return [d[0] for d in data], [d[1] for d in data], [d[2] for d in data], meta


def held_out(meta):
    """' (N = 64 held-out samples)' from a blockinf_eval CSV's comment line."""
    n = meta.get("n_samples")
    return f" ({n} held-out samples)" if n else ""


def bars(ax, metric, blocks, vals, ranks, lo, hi, lowest):
    hot = [r is not None and r <= lowest for r in ranks]
    colors = ["tab:red" if h else "tab:blue" for h in hot]
    b = ax.bar(blocks, vals, color=colors, edgecolor="black", linewidth=0.4)
    if lo and all(x is not None for x in lo + hi):
        err = [[max(v - l, 0) for v, l in zip(vals, lo)], [max(h - v, 0) for v, h in zip(vals, hi)]]
        ax.errorbar(blocks, vals, yerr=err, fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    tops = hi if hi and all(x is not None for x in hi) else vals
    for bar, r, h, top in zip(b, ranks, hot, tops):
        if h:
            y = max(bar.get_height(), top)  # above the whisker
            ax.annotate(f"#{r}", (bar.get_x() + bar.get_width() / 2, y),
                        xytext=(0, 3 if y >= 0 else -12), textcoords="offset points",
                        ha="center", fontsize=8, color="tab:red")
    ax.set_xlabel("block l (index, 0 = first)")
    ax.set_ylabel(LABELS.get(metric, metric) + " (unitless)", fontsize=7)
    if len(blocks) <= 40:
        ax.set_xticks(blocks)
    ax.margins(y=0.12)


def plot(plt, scores, meta, ppl_layer, ppl_k, lowest, headline):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    panels = [("score", m) for m in scores]
    if ppl_layer:
        panels.append(("ppl_layer", None))
    if ppl_k:
        panels.append(("ppl_k", None))
    n_block = max(len(v[0]) for v in scores.values())
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    w = max(4.5, 0.3 * n_block + 1.8)
    fig, axes = plt.subplots(nrow, ncol, figsize=(w * ncol, 3.6 * nrow + 0.6), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    boot = meta.get("bootstrap", "")
    ci = meta.get("ci", "")
    for ax, (kind, m) in zip(axes.flat, panels):
        if kind == "score":
            blocks, vals, ranks, lo, hi = scores[m]
            bars(ax, m, blocks, vals, ranks, lo, hi, lowest)
            has_ci = lo and all(x is not None for x in lo)
            ax.set_title(NAMES.get(m, m), fontsize=9)
            handles = [Patch(color="tab:blue", label="other blocks")]
            if lowest > 0:
                handles.insert(0, Patch(color="tab:red", label=f"lowest {min(lowest, len(blocks))} "
                                        "(#rank: removal order)"))
            if has_ci:
                level = f"{100 * float(ci):g}% " if ci else ""
                reps = f", {boot} replicates" if boot else ""
                handles.append(Line2D([], [], color="black", marker="_", lw=0.8,
                                      label=f"{level}bootstrap CI{reps}"))
            ax.legend(handles=handles, fontsize=7, loc="best")
        elif kind == "ppl_layer":
            blocks, ppl, base, pmeta = ppl_layer
            ax.bar(blocks, ppl, color="tab:green", edgecolor="black", linewidth=0.4)
            if base is not None:
                ax.axhline(base, color="black", linestyle="--", linewidth=1,
                           label=f"no block removed: {base:.3g}")
                ax.legend(fontsize=7, loc="best")
            ax.set_yscale("log")
            ax.set_xlabel("block removed (index)")
            ax.set_ylabel("held-out perplexity (per token, log scale)")
            if len(blocks) <= 40:
                ax.set_xticks(blocks)
            ax.set_title("Perplexity with one block removed" + held_out(pmeta), fontsize=9)
        else:
            ks, ppl, removed, pmeta = ppl_k
            ax.plot(ks, ppl, marker="o", color="tab:purple")
            for k, p, r in zip(ks, ppl, removed):
                if r:
                    ax.annotate(r.split(";")[-1], (k, p), xytext=(4, -10),
                                textcoords="offset points", fontsize=7, color="tab:purple")
            ax.set_yscale("log")
            ax.set_xlabel("blocks removed K (lowest score first; label: the K-th)")
            ax.set_ylabel("held-out perplexity (per token, log scale)")
            ax.set_xticks(ks)
            ax.set_title("Perplexity against blocks removed" + held_out(pmeta), fontsize=9)
    text = plotkit.title(fig, "Block Influence per block (ShortGPT, P3)", meta, headline)
    fig.tight_layout()
    return fig, text


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Plot Block Influence (and variants) per block from a strata-blockinf CSV; "
                    "the k lowest blocks are highlighted with their rank; optional panels of "
                    "perplexity with blocks removed (scripts/blockinf_eval.py). The output's "
                    "extension picks the format: .png, .pdf or .svg.")
    ap.add_argument("csv", help="scores CSV written by strata-blockinf")
    plotkit.add_args(ap, "figure to write: .png, .pdf or .svg (default: the CSV's path with .png)")
    ap.add_argument("-k", "--lowest", type=int, default=3,
                    help="how many lowest-score blocks to highlight (default 3)")
    ap.add_argument("--ppl-layer", help="ppl_layer.csv: perplexity with each block removed")
    ap.add_argument("--ppl-k", help="ppl_k.csv: perplexity against blocks removed")
    a = ap.parse_args(argv)
    out = a.output or os.path.splitext(a.csv)[0] + ".png"

    def body():
        plotkit.output_format(out)
        plotkit.check_dpi(a.dpi)
        if a.lowest < 0:
            raise InputError(f"--lowest {a.lowest}: must be 0 or more")
        scores, meta = read_scores(a.csv)
        meta = plotkit.meta_from_args(meta, a)
        pl = read_ppl_layer(a.ppl_layer) if a.ppl_layer else None
        pk = read_ppl_k(a.ppl_k) if a.ppl_k else None
        plt = plotkit.pyplot()
        fig, _ = plot(plt, scores, meta, pl, pk, a.lowest, a.title)
        try:
            plotkit.save(fig, out, a.dpi, a.palette)
        finally:
            plt.close(fig)
        print(f"{PROG}: wrote {out}", file=sys.stderr)
        return 0
    return plotkit.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
