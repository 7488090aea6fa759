#!/usr/bin/python3
"""plot_posvec.py — figures of strata-posvec's CSV outputs (P1, Dong et al.
2024; docs/POSVEC.md). Reads CSV only.

    plot_posvec.py pca DIR [--boundaries 1,4] -o pca.png      formation DIR
    plot_posvec.py cos DIR [--boundaries 0,1,4] -o cos.png    formation DIR
    plot_posvec.py norms DIR -o norms.png                     formation DIR
    plot_posvec.py attention DIR [--block 3] -o att.png       attention DIR
    plot_posvec.py beyond DIR -o beyond.png                   beyond-window DIR
    plot_posvec.py extension DIR [--boundary 3] -o ext.png    extension DIR
    plot_posvec.py methods DIR -o methods.png                 methods DIR

Positions beyond the trained window are summarised as binned medians with
interquartile bands (one line per boundary or method), not as point clouds,
and the trained window C is marked on every panel whose axis runs past it.
Title: what the figure shows, then model, corpus, N and T from the CSVs'
comment line (or --model, --corpus, --samples, --seq-len, --window). The
output's extension picks the format: .png, .pdf or .svg (plotkit.py).
"""
import argparse
import os
import sys

import plotkit
from plotkit import InputError

PROG = "plot_posvec"
KINDS = ("pca", "cos", "norms", "attention", "beyond", "extension", "methods")


def rows(d, name, need=()):
    """(rows, meta) of DIR/name."""
    return plotkit.read_csv(os.path.join(d, name), need, f"strata-posvec's {name}")


def col(rs, key, cast=float):
    import numpy as np
    return np.array([cast(r[key]) if r[key] != "" else np.nan for r in rs])


def by(rs, key):
    out = {}
    for r in rs:
        out.setdefault(int(r[key]) if key == "boundary" else r[key], []).append(r)
    return out


def pick(spec, have, default):
    """Boundaries to show: from --boundaries, else default; each must exist."""
    if not spec:
        return default
    try:
        want = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--boundaries {spec!r}: expected numbers like 1,4")
    bad = [b for b in want if b not in have]
    if bad:
        raise InputError(f"--boundaries: no boundary {bad[0]} in the CSVs (have "
                         f"{', '.join(map(str, sorted(have)))})")
    return want


def plot_pca(a, fig):
    sc_rows, meta = rows(a.dir, "pca_scores.csv", ("boundary", "t", "pc1", "pc2"))
    var_rows, _ = rows(a.dir, "pca_var.csv", ("boundary", "explained"))
    L, var = by(sc_rows, "boundary"), by(var_rows, "boundary")
    bounds = pick(a.boundaries, L, sorted(L)[1::max(1, len(L) // 2)][:2] or sorted(L)[:1])
    axs = fig.subplots(1, len(bounds), squeeze=False)[0]
    for ax, b in zip(axs, bounds):
        rs = L[b]
        t, x, y = col(rs, "t"), col(rs, "pc1"), col(rs, "pc2")
        sc = ax.scatter(x, y, c=t, s=6, cmap="viridis")
        ex = col(var[b], "explained")
        ax.set_title(f"boundary {b}: PC1 {100 * ex[0]:.0f}%, PC2 {100 * ex[1]:.0f}% of variance",
                     fontsize=9)
        ax.set_xlabel("PC1 score of m[b,t] (hidden-state units)")
        ax.set_ylabel("PC2 score (hidden-state units)")
        for k in range(min(4, len(t))):
            ax.annotate(f"t={int(t[k])}", (x[k], y[k]), fontsize=7, color="red")
        fig.colorbar(sc, ax=ax, label="position t (tokens)")
    return meta, "Positional vectors p[b,t] in their first two principal components"


def plot_cos(a, fig):
    import numpy as np
    rs_all, meta = rows(a.dir, "cos.csv", ("boundary", "t1", "t2", "cos"))
    L = by(rs_all, "boundary")
    bounds = pick(a.boundaries, L, sorted(L)[:: max(1, len(L) // 3)][:3])
    axs = fig.subplots(1, len(bounds), squeeze=False)[0]
    for ax, b in zip(axs, bounds):
        rs = L[b]
        ts = sorted(set(col(rs, "t1", int)))
        idx = {t: i for i, t in enumerate(ts)}
        m = np.full((len(ts), len(ts)), np.nan)
        for r in rs:
            m[idx[int(r["t1"])], idx[int(r["t2"])]] = float(r["cos"])
        im = ax.imshow(m, origin="lower", cmap="magma", vmin=np.nanmin(m), vmax=1,
                       extent=[ts[0], ts[-1], ts[0], ts[-1]])
        ax.set_title(f"boundary {b}", fontsize=9)
        ax.set_xlabel("position t2 (tokens)")
        ax.set_ylabel("position t1 (tokens)")
        fig.colorbar(im, ax=ax, label="cos(p[b,t1], p[b,t2])")
    return meta, "Cosine similarity of positional vectors between positions"


def plot_norms(a, fig):
    rs_all, meta = rows(a.dir, "norms.csv", ("boundary", "t", "p_norm", "m_norm"))
    L = by(rs_all, "boundary")
    ax1, ax2 = fig.subplots(1, 2)
    for b, rs in sorted(L.items()):
        t = col(rs, "t")
        ax1.plot(t + 1, col(rs, "p_norm"), label=f"boundary {b}", lw=1)
        ax2.plot(t + 1, col(rs, "m_norm"), label=f"boundary {b}", lw=1)
    for ax, what in ((ax1, "|p[b,t]| (hidden-state units)"),
                     (ax2, "|m[b,t]| = |p[b,t] − u[b]| (hidden-state units)")):
        ax.set_xscale("log")
        ax.set_xlabel("position t + 1 (tokens, log scale)")
        ax.set_ylabel(what)
        ax.legend(fontsize=7)
    return meta, "Norms of positional vectors p and of their position-dependent part m"


def plot_attention(a, fig):
    import numpy as np
    summ, meta = rows(a.dir, "attention_summary.csv", ("run", "block", "sink", "ppl"))
    dist, _ = rows(a.dir, "attention_dist.csv", ("run", "block", "distance", "prob"))
    blocks = sorted({int(r["block"]) for r in summ})
    blk = a.block if a.block is not None else blocks[len(blocks) // 2]
    if blk not in blocks:
        raise InputError(f"--block {blk}: not in attention_summary.csv (have "
                         f"{', '.join(map(str, blocks))})")
    runs = list(dict.fromkeys(r["run"] for r in summ))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for name in runs:
        rs = [r for r in dist if r["run"] == name and int(r["block"]) == blk]
        style = {"color": "black", "lw": 1.4, "zorder": 3} if name == "none" else {"lw": 0.9}
        ax1.plot(col(rs, "distance") + 1, col(rs, "prob"), label=name if name != "none"
                 else "unedited", **style)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("relative distance m + 1 (tokens, log scale)")
    ax1.set_ylabel(f"mean attention probability, block {blk} (log scale)")
    ax1.set_title("Attention against distance", fontsize=9)
    ax1.legend(fontsize=6)
    x = np.arange(len(blocks))
    w = 0.8 / len(runs)
    for i, name in enumerate(runs):
        rs = sorted((r for r in summ if r["run"] == name), key=lambda r: int(r["block"]))
        ax2.bar(x + (i - (len(runs) - 1) / 2) * w, col(rs, "sink"), w,
                label=name if name != "none" else "unedited",
                color="black" if name == "none" else None)
    ax2.set_xticks(x, [str(b) for b in blocks])
    ax2.set_xlabel("block (index)")
    ax2.set_ylabel("attention on token 0 (probability, all heads and queries)")
    ax2.set_title("Attention sink per block", fontsize=9)
    ppl = [float(next(r for r in summ if r["run"] == name)["ppl"]) for name in runs]
    ax3.barh(np.arange(len(runs)), ppl, color=["black" if n == "none" else "tab:blue" for n in runs])
    ax3.set_yticks(np.arange(len(runs)), ["unedited" if n == "none" else n for n in runs], fontsize=7)
    ax3.set_xscale("log")
    ax3.set_xlabel("perplexity (per token, log scale)")
    ax3.set_title("Perplexity", fontsize=9)
    ax3.invert_yaxis()
    return meta, "Removing positional (p), basis (m) or semantic (c) parts at a boundary"


def plot_beyond(a, fig):
    m_rows, meta = rows(a.dir, "beyond_match.csv", ("boundary", "t", "best_t", "max_cos"))
    ppl, pmeta = rows(a.dir, "beyond_ppl.csv", ("start", "end", "ppl"))
    C = plotkit.window(meta) or plotkit.window(pmeta)
    m = by(m_rows, "boundary")
    have = sorted(m)
    spread = sorted({have[min(1, len(have) - 1)], have[len(have) // 2], have[-1]})
    bounds = pick(a.boundaries, m, spread)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    colors = {}
    for b in bounds:
        rs = m[b]
        t = col(rs, "t")
        line = plotkit.band(ax1, t, col(rs, "max_cos"), n_bins=24, label=f"boundary {b}")
        colors[b] = line.get_color()
        plotkit.band(ax2, t, col(rs, "best_t"), n_bins=16, label=f"boundary {b}", color=colors[b])
    if C is not None:  # what a best match drawn at random from 0..C-1 looks like
        ax2.axhspan(C / 4, 3 * C / 4, color="0.5", alpha=0.12, lw=0,
                    label="uniform over 0..C−1: IQR")
        ax2.axhline(C / 2, color="0.5", lw=0.8, ls=":")
    for ax in (ax1, ax2, ax3):
        plotkit.mark_window(ax, C)
    ax1.set_xlabel("position t beyond the window (tokens)")
    ax1.set_ylabel("max cos(p[b,t], p[b,t']) over t' < C")
    ax1.set_title("Similarity to the nearest in-window vector", fontsize=9)
    ax2.set_xlabel("position t beyond the window (tokens)")
    ax2.set_ylabel("best-matching in-window position t' (tokens)")
    ax2.set_title("Which in-window position it resembles", fontsize=9)
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7, loc="lower right")
    mid = (col(ppl, "start") + col(ppl, "end")) / 2
    ax3.plot(mid, col(ppl, "ppl"), "o-", ms=3)
    ax3.set_xlabel("predicted position (tokens; bucket centre)")
    ax3.set_ylabel("perplexity (per token)")
    n = pmeta.get("n_samples")
    ax3.set_title(f"Perplexity by position{f' ({n} fresh samples)' if n else ''}", fontsize=9)
    ax3.legend(fontsize=7)
    return meta, "Positional vectors beyond the trained window (direct extrapolation); " \
                 "lines: binned median, bands: interquartile range"


def plot_extension(a, fig):
    import numpy as np
    m, meta = rows(a.dir, "extension_match.csv", ("run", "boundary", "t", "best_t"))
    h, _ = rows(a.dir, "extension_heatmap.csv", ("run", "boundary", "t_ext", "t_orig", "cos"))
    C = plotkit.window(meta)
    have = {int(r["boundary"]) for r in m}
    b = a.boundary if a.boundary is not None else max(have) // 2
    if b not in have:
        raise InputError(f"--boundary {b}: not in extension_match.csv (have "
                         f"{', '.join(map(str, sorted(have)))})")
    ax1, ax2 = fig.subplots(1, 2)
    for name in dict.fromkeys(r["run"] for r in m):
        rs = [r for r in m if r["run"] == name and int(r["boundary"]) == b]
        plotkit.band(ax1, col(rs, "t"), col(rs, "best_t"), n_bins=16, label=name, alpha=0.1)
    if C is not None:
        top = max(int(r["t"]) for r in m)
        factors = set()
        for name in {r["run"] for r in m}:  # RoPE scalings TYPE:F interpolate by F
            kind, _, f = name.partition(":")
            if kind in ("linear", "ntk", "dynamic", "dynamic-ntk", "yarn", "llama3"):
                try:
                    factors.add(float(f))
                except ValueError:
                    pass
        for f in sorted(factors):
            ax1.plot([0, top], [0, top / f], color="0.4", lw=0.8, ls="-.",
                     label=f"t' = t/{f:g} (interpolation by {f:g})")
        ax1.axhspan(C / 4, 3 * C / 4, color="0.5", alpha=0.12, lw=0,
                    label="uniform over 0..C−1: IQR")
        ax1.set_ylim(-0.03 * C, 1.03 * C)
    plotkit.mark_window(ax1, C)
    ax1.set_xlabel("position t of the extended run (tokens)")
    ax1.set_ylabel(f"best-matching original position t' (tokens; boundary {b})")
    ax1.set_title("Effective interpolation: original position matched", fontsize=9)
    ax1.legend(fontsize=7)
    runs = [r["run"] for r in h if r["run"] != "direct"]
    name = a.method or (runs[0] if runs else h[0]["run"])
    rs = [r for r in h if r["run"] == name and int(r["boundary"]) == b]
    if not rs:
        raise InputError(f"--method {name}: no rows in extension_heatmap.csv at boundary {b}")
    te, to = sorted(set(col(rs, "t_ext", int))), sorted(set(col(rs, "t_orig", int)))
    M = np.full((len(te), len(to)), np.nan)
    ie, io = {t: i for i, t in enumerate(te)}, {t: i for i, t in enumerate(to)}
    for r in rs:
        M[ie[int(r["t_ext"])], io[int(r["t_orig"])]] = float(r["cos"])
    im = ax2.imshow(M, origin="lower", aspect="auto", cmap="magma",
                    extent=[to[0], to[-1], te[0], te[-1]])
    if C is not None:
        ax2.axhline(C, color="white", ls="--", lw=0.9, label=f"trained window C = {C}")
        ax2.legend(fontsize=7, loc="lower right")
    ax2.set_xlabel("original position t' (tokens)")
    ax2.set_ylabel(f"extended position t (tokens; {name})")
    ax2.set_title(f"cos of extended and original p (boundary {b})", fontsize=9)
    fig.colorbar(im, ax=ax2, label="cos")
    return meta, "Context extension: positional vectors against the original ones"


def plot_methods(a, fig):
    rs, meta = rows(a.dir, "methods.csv", ("method", "length", "ppl"))
    C = plotkit.window(meta)
    from matplotlib.ticker import NullFormatter, ScalarFormatter
    ax = fig.subplots(1, 1)
    for name in dict.fromkeys(r["method"] for r in rs):
        s = [r for r in rs if r["method"] == name]
        ax.plot(col(s, "length"), col(s, "ppl"), "o-", ms=3, label=name)
    plotkit.mark_window(ax, C)
    lengths = sorted(set(col(rs, "length", int)))
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(x) for x in lengths])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("input length (tokens, log scale)")
    ax.set_ylabel("perplexity (per token, log scale)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return meta, "Training-free context extension: perplexity against input length"


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("dir", help="the -o DIR of the strata-posvec subcommand")
    plotkit.add_args(ap)
    ap.add_argument("--boundaries", "--layers", dest="boundaries",
                    help="boundaries to show (pca, cos, beyond), e.g. 1,4")
    ap.add_argument("--boundary", "--layer", dest="boundary", type=int,
                    help="boundary (extension)")
    ap.add_argument("--method", help="method of the extension heatmap")
    ap.add_argument("--block", type=int, help="block of the attention-against-distance panel")
    a = ap.parse_args(argv)

    def body():
        if not a.output:
            raise InputError("give -o FILE (.png, .pdf or .svg)")
        plotkit.output_format(a.output)
        plotkit.check_dpi(a.dpi)
        size = {"pca": (10, 4.4), "cos": (13, 4.4), "norms": (10, 4.4), "attention": (14, 4.8),
                "beyond": (14, 4.6),
                "extension": (11, 4.6), "methods": (9, 4.8)}[a.kind]
        plt = plotkit.pyplot()
        fig = plt.figure(figsize=size)
        try:
            meta, headline = globals()["plot_" + a.kind](a, fig)
            plotkit.title(fig, headline, plotkit.meta_from_args(meta, a), a.title)
            fig.tight_layout()
            plotkit.save(fig, a.output, a.dpi, a.palette)
        finally:
            plt.close(fig)
        print(f"{PROG}: wrote {a.output}", file=sys.stderr)
        return 0
    return plotkit.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
