#!/usr/bin/python3
"""plot_decay.py — the figures of P2 ("Base of RoPE bounds context length",
Men et al. 2024; ../shared/docs/PAPERS.md) from the CSVs strata-decay writes.

  curve CSV      B(m)/(d/2) against m, one line per base, with each base's
                 first negative m marked (the paper's decay figure):
                 --summary FILE (strata-decay curve --summary) gives the
                 exact m strata-decay found over every m; without it the
                 script computes B(m) for every m itself (float64, d from
                 the CSV's B(0) = d/2), so a curve written --every k is
                 still marked at the exact m, not at the first sampled one;
                 upper_norm is drawn dashed when the CSV has it
  bound CSV      lower bound of the base against context length, log-log,
                 with the power-law fit base = a * L^k (and, with
                 --paper-fit A,K, the paper's fit for comparison)
  empirical CSV  mean attention logit (and probability) against relative
                 distance, one line per block (head -1 = mean over heads)
  gap CSV        similar-vs-random logit gap against distance, per block

Why these pictures: the theory says B(m) must stay >= 0 over the context,
so the curve's first zero crossing and the bound's growth with L are the
results; the empirical ones show whether a model's attention behaves so.
Reads CSV only (comment lines skipped; a first '# key=value' line names
model, corpus, N, T, C: docs/FORMAT.md "CSV files"). The marked m are
printed to stderr. The output's extension picks the format: .png, .pdf or
.svg (plotkit.py).
"""
import argparse
import math
import os
import sys

import plotkit
from plotkit import InputError

PROG = "plot_decay"
NEED = {
    "curve": ("base", "m", "b_norm"),
    "bound": ("length", "base", "fit_a", "fit_k"),
    "empirical": ("head", "distance", "logit_mean", "prob_mean"),
    "gap": ("head", "distance", "gap"),
}


def read_csv(path, kind):
    """(rows of floats, meta); the block column is `block` (older
    strata-decay: `layer`)."""
    rows, meta = plotkit.read_csv(path, NEED[kind], f"a strata-decay {kind} CSV")
    if kind in ("empirical", "gap"):
        key = "block" if "block" in rows[0] else "layer" if "layer" in rows[0] else None
        if key is None:
            raise InputError(f"{path}: expected a strata-decay {kind} CSV with a column block "
                             "(or layer); missing block")
    out = []
    for i, r in enumerate(rows, start=2):
        try:
            d = {k: float(v) for k, v in r.items() if k and v != ""}
        except ValueError:
            raise InputError(f"{path}: line {i}: non-numeric value in {r}")
        if kind in ("empirical", "gap"):
            d["block"] = d.pop(key)
            d.setdefault("head", -1.0)  # an empty head: the mean over heads (as -1)
        out.append(d)
    return out, meta


def read_summary(path):
    """{base: first_neg or None} of strata-decay curve --summary."""
    rows, _ = plotkit.read_csv(path, ("base", "first_neg"), "a strata-decay curve --summary CSV")
    out = {}
    for i, r in enumerate(rows, start=2):
        base = plotkit.num(path, i, r, "base")
        m = plotkit.num(path, i, r, "first_neg", int, empty_ok=True)  # empty or -1: none
        out[base] = m if m is not None and m >= 0 else None
    return out


def by(rows, key):
    groups = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return groups


def exact_first_neg(base, d, m_max):
    """First m in 0..m_max with B(m) = sum_i cos(m theta_i) < 0, float64."""
    import numpy as np
    theta = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    for m0 in range(0, m_max + 1, 1 << 14):
        m = np.arange(m0, min(m_max + 1, m0 + (1 << 14)), dtype=np.float64)
        b = np.cos(np.outer(m, theta)).sum(axis=1)
        neg = np.nonzero(b < 0)[0]
        if neg.size:
            return int(m[neg[0]])
    return None


def plot_curve(rows, ax, path, summary):
    ax_u = ax.twinx() if "upper_norm" in rows[0] else None
    if ax_u:
        ax_u.set_ylabel("upper bound / (d/2) (dashed; unitless)")
    marks, d_seen = [], None
    for base, rs in sorted(by(rows, "base").items()):
        rs.sort(key=lambda r: r["m"])
        m = [r["m"] for r in rs]
        line, = ax.plot(m, [r["b_norm"] for r in rs], lw=1, label=f"base {base:g}")
        if ax_u and "upper_norm" in rs[0]:
            ax_u.plot(m, [r["upper_norm"] for r in rs], lw=0.8, ls="--", color=line.get_color())
        if summary is not None and base in summary:
            neg, src = summary[base], "strata-decay --summary"
        else:
            if rs[0]["m"] != 0 or "b" not in rs[0]:
                raise InputError(f"{path}: base {base:g}: no row m = 0 with column b to find d "
                                 "from; give --summary FILE (strata-decay curve --summary)")
            d = int(round(2 * rs[0]["b"]))
            d_seen = d
            neg, src = exact_first_neg(base, d, int(m[-1])), "every m, float64"
        if "b" in rs[0] and rs[0]["m"] == 0:
            d_seen = int(round(2 * rs[0]["b"]))
        marks.append((base, neg, src, int(m[-1])))
        if neg is not None:
            ax.axvline(neg, color=line.get_color(), lw=1.0, ls=":")
            ax.annotate(f"m = {neg}", (neg, 0.97 - 0.06 * len([x for x in marks if x[1]])),
                        xycoords=("data", "axes fraction"), fontsize=8, color=line.get_color(),
                        xytext=(3, 0), textcoords="offset points", va="top",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                              "alpha": 0.8})
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("relative distance m (tokens)")
    ax.set_ylabel("B(m) / (d/2) (unitless)")
    ax.set_title("dotted: first m with B(m) < 0", fontsize=9)
    ax.legend(fontsize=8)
    head = "RoPE long-term decay B(m)/(d/2)" + (f", head width d = {d_seen}" if d_seen else "")
    return head, marks


def plot_bound(rows, ax, paper_fit):
    good = [r for r in rows if r.get("base", 0) > 0 and "fit_a" in r]
    if not good:
        raise InputError("no length has a bound on the grid")
    L = [r["length"] for r in good]
    ax.loglog(L, [r["base"] for r in good], "^", color="tab:blue", label="lower bound (grid)")
    xs = [min(L) * (max(L) / min(L)) ** (i / 50) for i in range(51)]
    a, k = good[0]["fit_a"], good[0]["fit_k"]
    if math.isfinite(a) and math.isfinite(k):
        ax.loglog(xs, [a * x ** k for x in xs], "-", color="tab:red",
                  label=f"strata's fit: base = {a:.4g} L^{k:.4g}")
    if paper_fit:
        pa, pk = paper_fit
        ax.loglog(xs, [pa * x ** pk for x in xs], "--", color="0.4",
                  label=f"paper's fit: base = {pa:g} L^{pk:g}")
    shown = False
    for r in rows:
        if r.get("differs") == 1:
            ax.loglog([r["length"]], [r["base_f64"]], "o", mfc="none", color="tab:green",
                      label=None if shown else "double-precision answer where float32 differs")
            shown = True
    ax.set_xlabel("context length L (tokens)")
    ax.set_ylabel("lower bound of RoPE's base (unitless)")
    ax.grid(True, which="both", ls=":", lw=0.5)
    ax.legend(fontsize=8)
    return "Lower bound of RoPE's base against context length"


def plot_blocks(rows, ax, col, ylabel, C):
    mean = [r for r in rows if r["head"] == -1] or rows
    for block, rs in sorted(by(mean, "block").items()):
        rs.sort(key=lambda r: r["distance"])
        ax.plot([r["distance"] for r in rs], [r[col] for r in rs], lw=1, label=f"block {block:.0f}")
    if C is not None and max(r["distance"] for r in mean) >= C:
        plotkit.mark_window(ax, C)
    ax.set_xlabel("relative distance m = i − j (tokens)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)


def parse_fit(s):
    try:
        a, k = (float(x) for x in s.split(","))
        return a, k
    except ValueError:
        raise InputError(f"--paper-fit {s!r}: expected A,K as in base = A L^K, e.g. 0.0424,1.628")


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=sorted(NEED), help="which CSV of strata-decay")
    ap.add_argument("csv")
    plotkit.add_args(ap, "figure: .png, .pdf or .svg (default: the CSV's path with .png)")
    ap.add_argument("--summary", help="curve: strata-decay curve --summary FILE, the exact first "
                    "negative m per base")
    ap.add_argument("--paper-fit", help="bound: also draw base = A L^K, e.g. 0.0424,1.628 (P2)")
    a = ap.parse_args(argv)
    out = a.output or os.path.splitext(a.csv)[0] + ".png"

    def body():
        plotkit.output_format(out)
        plotkit.check_dpi(a.dpi)
        if a.summary and a.kind != "curve":
            raise InputError("--summary belongs to the curve plot")
        if a.paper_fit and a.kind != "bound":
            raise InputError("--paper-fit belongs to the bound plot")
        rows, meta = read_csv(a.csv, a.kind)
        meta = plotkit.meta_from_args(meta, a)
        summary = read_summary(a.summary) if a.summary else None
        fit = parse_fit(a.paper_fit) if a.paper_fit else None
        C = plotkit.window(meta)
        plt = plotkit.pyplot()
        marks = None
        if a.kind == "empirical":
            fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.6))
            plot_blocks(rows, ax, "logit_mean", "mean attention logit (pre-softmax, unitless)", C)
            ax.set_title("Attention logit", fontsize=9)
            plot_blocks(rows, ax2, "prob_mean", "mean attention probability (log scale)", C)
            ax2.set_title("Attention probability", fontsize=9)
            ax2.set_yscale("log")
            head = "Attention against relative distance (mean over heads)"
        else:
            fig, ax = plt.subplots(figsize=(7.5, 4.6))
            if a.kind == "curve":
                head, marks = plot_curve(rows, ax, a.csv, summary)
            elif a.kind == "bound":
                head = plot_bound(rows, ax, fit)
            else:
                plot_blocks(rows, ax, "gap", "logit(similar) − logit(random) (unitless)", C)
                ax.axhline(0, color="black", lw=0.6)
                head = "Similar-vs-random attention logit gap against distance"
        try:
            plotkit.title(fig, head, meta, a.title)
            fig.tight_layout()
            plotkit.save(fig, out, a.dpi, a.palette)
        finally:
            plt.close(fig)
        if marks is not None:
            said = ", ".join(f"base {b:g}: " + (f"m = {m}" if m is not None else
                                                f"none up to m = {top}")
                             + f" ({src})" for b, m, src, top in marks)
            print(f"{PROG}: first m with B(m) < 0 marked at {said}", file=sys.stderr)
        print(f"{PROG}: wrote {out}", file=sys.stderr)
        return 0
    return plotkit.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
