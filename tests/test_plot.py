#!/usr/bin/python3
"""test_plot.py — the plot scripts (scripts/plot_blockinf.py,
plot_posvec.py, plot_decay.py and their shared scripts/plotkit.py) draw
what they claim, in the format asked, and fail cleanly on bad input; and
scripts/blockinf_eval.py finds strata's programs without --bindir.

Why: a figure is the one result a person looks at, and a script that
silently writes a blank image, PNG bytes under a .pdf name, a title that
does not say which model and data, or a mark at the wrong m, or a traceback
on a typo'd path, is worse than none. The CSVs here are written by the test
(values chosen so the answer is known), so most of this runs without
strata's programs; the decay mark uses bin/strata-decay.

Checks:
- plot_blockinf on long-form CSVs (block, metric, value, ci_lo, ci_hi,
  rank, ...): PNG signature and size, both bar colours, default output
  next to the CSV, --help; a missing file, an old wide CSV, no rows,
  non-numeric values and an unwritable output each exit non-zero with one
  message naming the file; all five metrics with --ppl-layer and --ppl-k
  give a grid of panels in their colours; ci_lo/ci_hi add whiskers.
- every script: .pdf output starts with %PDF, .svg with <?xml or <svg, .png
  has a pHYs chunk of >= 150 dpi (200 by default) and the pixel size that
  goes with it; an unknown extension exits non-zero naming the file and the
  formats, writing nothing; the SVG's title names model, corpus, N and T of
  the CSV's comment line (and --model overrides it).
- --palette: a palette PNG (colour type 3), 150 dpi, smaller than RGBA.
- plot_posvec beyond / extension / methods mark the trained window
  ("trained window C = 512" in the SVG) and draw binned medians: the SVG of
  20000 points is not much larger than that of 2000 (a scatter's grows ten
  times); attention names every run, the block and the provenance.
- plot_decay curve of `strata-decay curve --every 4 --summary` marks the
  first negative B(m) at the exact m (1707 and 7757 for bases 1e4, 1e5,
  d = 128), printed and as SVG text, with --summary and without it (the
  script then evaluates every m itself), and not at the first sampled
  negative m of the CSV (which differs).
- blockinf_eval.py without --bindir finds strata-probe-ppl (a stand-in
  script here) in $BINDIR, in PREFIX/bin when installed as
  PREFIX/share/strata/scripts, on the PATH, and the source tree's bin/;
  found nowhere, it exits 1 naming --bindir; a plan whose calibration left
  no held-out draw, or --samples above it, says which --samples or
  --sample-offset to use.
Prints "test_plot: N passed, N failed".
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pycheck import BINDIR, SAN, check, main  # noqa: E402

ROOT = os.path.dirname(HERE)
SCRIPTS = os.path.join(ROOT, "scripts")
BLOCKINF = os.path.join(SCRIPTS, "plot_blockinf.py")
POSVEC = os.path.join(SCRIPTS, "plot_posvec.py")
DECAY = os.path.join(SCRIPTS, "plot_decay.py")
EVAL = os.path.join(SCRIPTS, "blockinf_eval.py")

RED, BLUE = (214, 39, 40), (31, 119, 180)  # matplotlib tab:red, tab:blue
GREEN, PURPLE = (44, 160, 44), (148, 103, 189)  # tab:green, tab:purple
META = ("# program=strata-blockinf command=score model=/m/stories260K.bin "
        "corpus=/c/tiny%20stories.txt n_samples=12 seq_len=64 positions=64 tokens=all bootstrap=0")


def run_script(script, *args, env=None):
    p = subprocess.run([sys.executable, script, *args], capture_output=True, timeout=300, env=env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def run(*args):
    return run_script(BLOCKINF, *args)


def png_size(path):
    """(width, height) from the IHDR chunk, or None if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def png_dpi(path):
    """Dots per inch from the pHYs chunk (x axis), or None."""
    with open(path, "rb") as f:
        data = f.read()
    i = 8
    while i + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        if kind == b"pHYs":
            x, _, unit = struct.unpack(">IIB", data[i + 8:i + 17])
            return x * 0.0254 if unit == 1 else None
        if kind == b"IDAT":
            return None
        i += 12 + n
    return None


def colour_pixels(path, rgb):
    """How many pixels of the image are within 2% of colour rgb."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import numpy as np
    img = mpimg.imread(path)[..., :3]
    return int(np.all(np.abs(img - np.array(rgb) / 255.0) < 0.02, axis=-1).sum())


def dark_pixels(path):
    """Pixels darker than 15% in every channel (black lines, text)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import numpy as np
    img = mpimg.imread(path)[..., :3]
    return int(np.all(img < 0.15, axis=-1).sum())


def head(path, n=64):
    with open(path, "rb") as f:
        return f.read(n)


def svg_text(path):
    """The text of an SVG's <text> elements (matplotlib with svg.fonttype
    none keeps text as text), joined."""
    with open(path, encoding="utf-8", errors="replace") as f:
        s = f.read()
    return " ".join(re.sub(r"<[^>]+>", "", t) for t in re.findall(r"<text[^>]*>.*?</text>", s, re.S))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def long_rows(values, metric="bi", lo=None, hi=None, skip=()):
    """Long-form rows of one metric: block,metric,span,value,ci_lo,ci_hi,stability,rank,n_tokens."""
    order = sorted((l for l in range(len(values)) if l not in skip), key=lambda l: values[l])
    rank = {l: r + 1 for r, l in enumerate(order)}
    out = []
    for l, v in enumerate(values):
        if l in skip:
            continue
        a = "" if lo is None else f"{lo[l]}"
        b = "" if hi is None else f"{hi[l]}"
        out.append(f"{l},{metric},1,{v},{a},{b},{'' if lo is None else 1},{rank[l]},768\n")
    return out


HEADER = "block,metric,span,value,ci_lo,ci_hi,stability,rank,n_tokens\n"


# ---------------------------------------------------------- plot_blockinf

def blockinf_plots(tmp):
    # 12 blocks; lowest BI at blocks 9, 8, 10 (ranks 1, 2, 3), like ShortGPT's
    # finding that late blocks, but not the last, matter least.
    bi = [0.62, 0.21, 0.15, 0.12, 0.10, 0.09, 0.08, 0.07, 0.031, 0.02, 0.04, 0.30]
    order = sorted(range(len(bi)), key=lambda l: bi[l])
    rank = {l: r + 1 for r, l in enumerate(order)}
    good = os.path.join(tmp, "bi.csv")
    write(good, META + "\n" + HEADER + "".join(long_rows(bi)))

    rc, _, err = run("--help")
    check(rc == 0, f"--help exits 0 (got {rc}: {err})")

    out = os.path.join(tmp, "custom.png")
    rc, _, err = run(good, "-o", out, "--lowest", "3")
    check(rc == 0, f"plot exits 0 (got {rc}: {err})")
    red = 0
    if check(os.path.isfile(out), "PNG written at -o"):
        size = png_size(out)
        check(size is not None, "output is a PNG (signature and IHDR)")
        if size:
            w, h = size
            check(600 <= w <= 6000 and 400 <= h <= 6000, f"PNG size plausible: {w}x{h}")
        nbytes = os.path.getsize(out)
        check(5_000 <= nbytes <= 5_000_000, f"PNG byte size plausible: {nbytes}")
        # the legend swatch is red too: compare with a run highlighting nothing
        none = os.path.join(tmp, "none.png")
        rc0, _, err0 = run(good, "-o", none, "--lowest", "0")
        check(rc0 == 0, f"--lowest 0 plots (exit {rc0}: {err0})")
        red, red0 = colour_pixels(out, RED), colour_pixels(none, RED) if rc0 == 0 else 0
        check(red > red0 + 300, f"lowest-BI bars drawn in the highlight colour: {red} red "
              f"pixels vs {red0} with nothing highlighted")
        blue = colour_pixels(out, BLUE)
        check(blue > 5000, f"other bars drawn in the plain colour: {blue} pixels")

    rc, _, err = run(good)
    default = os.path.join(tmp, "bi.png")
    check(rc == 0 and png_size(default) is not None,
          f"default output next to the CSV: {default} (exit {rc}: {err})")

    # the required columns only, no comment line, rows in any order: still plots
    minimal = os.path.join(tmp, "minimal.csv")
    write(minimal, "value,metric,block\n0.1,bi,1\n0.05,bi,0\n0.2,bi,2\n")
    rc, _, err = run(minimal, "-o", os.path.join(tmp, "minimal.png"))
    check(rc == 0 and png_size(os.path.join(tmp, "minimal.png")) is not None,
          f"minimal CSV (block, metric, value only, any order) plots (exit {rc}: {err})")

    def fails(label, path, *extra, names=None, words=()):
        rc, _, err = run(path, *extra)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        check(rc != 0, f"{label}: exit non-zero (got {rc})")
        check("Traceback" not in err, f"{label}: a message, not a traceback: {err!r}")
        check(len(lines) == 1 and (names or path) in lines[0] and all(w in err for w in words),
              f"{label}: one line naming {names or path} {words}: {err!r}")

    fails("missing file", os.path.join(tmp, "no-such.csv"))
    wrong = os.path.join(tmp, "wrong.csv")
    write(wrong, "blk,influence\n0,0.5\n1,0.2\n")
    fails("CSV without block/metric/value", wrong, words=("block", "metric", "value"))
    wide = os.path.join(tmp, "wide.csv")
    write(wide, "layer,bi,mean_cos,rank,n_tokens\n0,0.5,0.5,2,10\n1,0.2,0.8,1,10\n")
    fails("the wide CSV of older strata", wide, words=("rerun strata-blockinf", "long form"))
    empty = os.path.join(tmp, "empty.csv")
    open(empty, "w").close()
    fails("empty CSV", empty)
    nonnum = os.path.join(tmp, "nonnum.csv")
    write(nonnum, "block,metric,value,rank\n0,bi,abc,1\n")
    fails("non-numeric value", nonnum)
    unknown = os.path.join(tmp, "unknown.csv")
    write(unknown, "block,metric,value\n0,bogus,0.1\n")
    fails("unknown metric", unknown, words=("bogus",))
    bad_out = os.path.join(tmp, "no-such-dir", "x.png")
    fails("output in a missing directory", good, "-o", bad_out, names=bad_out)

    # --- strata-blockinf score --metric all --bootstrap: CIs, variants, ppl panels
    full = os.path.join(tmp, "full.csv")
    var = {"angular": [b * 0.9 + 0.01 for b in bi], "relmag": [min(0.95, 2 * b + 0.2) for b in bi],
           "bi-attn": [b / 2 for b in bi], "bi-mlp": [b / 3 + 0.01 for b in bi]}
    text = META.replace("bootstrap=0", "bootstrap=1000 ci=0.95 seed=0") + "\n" + HEADER
    text += "".join(long_rows(bi, "bi", [b * 0.8 for b in bi], [b * 1.2 for b in bi]))
    for m, v in var.items():
        # angular with --n 2 has no score for the last block: no row
        text += "".join(long_rows(v, m, [x * 0.9 for x in v], [x * 1.1 for x in v],
                                  skip=(len(bi) - 1,) if m == "angular" else ()))
    write(full, text)
    ppl_layer = os.path.join(tmp, "ppl_layer.csv")
    write(ppl_layer, "# program=blockinf_eval n_samples=4\nblock,rank,score,mean_nll,ppl,ppl_base,"
          "n_tokens\n" + "".join(f"{l},{rank[l]},{b},0,{4 + 100 * b},4.0,1000\n"
                                 for l, b in enumerate(bi)))
    ppl_k = os.path.join(tmp, "ppl_k.csv")
    write(ppl_k, "k,removed,mean_nll,ppl,n_tokens\n0,,1.4,4.0,1000\n1,9,2,6.0,1000\n"
          "2,9;8,3,20.0,1000\n")
    out_full = os.path.join(tmp, "full.png")
    rc, _, err = run(full, "-o", out_full, "--ppl-layer", ppl_layer, "--ppl-k", ppl_k)
    if check(rc == 0 and png_size(out_full) is not None,
             f"scores with CIs, 4 variants, ppl panels: PNG (exit {rc}: {err})") and png_size(out):
        w, h = png_size(out_full)
        check(w >= 2 * png_size(out)[0] and h >= 1.8 * png_size(out)[1],
              f"7 panels in a grid: {w}x{h} vs one panel {png_size(out)}")
        green, purple = colour_pixels(out_full, GREEN), colour_pixels(out_full, PURPLE)
        check(green > 3000, f"ppl-per-removed-block bars drawn: {green} green pixels")
        check(purple > 100, f"ppl-against-K curve drawn: {purple} purple pixels")
        check(colour_pixels(out_full, RED) > 5 * red,
              f"lowest blocks highlighted in every score panel: {colour_pixels(out_full, RED)} "
              f"red pixels vs {red} in one panel")
    # confidence whiskers: wide against narrow intervals of the same data (one
    # panel; the same legend and caps, so the difference is the whiskers' length)
    one_ci, one_no = os.path.join(tmp, "one_ci.csv"), os.path.join(tmp, "one_no.csv")
    write(one_ci, HEADER + "".join(long_rows(bi, "bi", [b * 0.6 for b in bi], [b * 1.4 for b in bi])))
    write(one_no, HEADER + "".join(long_rows(bi, "bi", [b * 0.999 for b in bi],
                                             [b * 1.001 for b in bi])))
    pa, pb = os.path.join(tmp, "one_ci.png"), os.path.join(tmp, "one_no.png")
    rca, _, ea = run(one_ci, "-o", pa)
    rcb, _, eb = run(one_no, "-o", pb)
    if check(rca == 0 and rcb == 0, f"one-panel plots with wide and narrow CIs ({ea} {eb})"):
        da, db = dark_pixels(pa), dark_pixels(pb)
        check(da > db + 300, f"CI whiskers drawn: {da} dark pixels vs {db} with narrow intervals")
    # a CSV of one variant only (no bi) plots
    ang = os.path.join(tmp, "angular.csv")
    write(ang, HEADER + "".join(long_rows([0.3, 0.1, 0.2], "angular")))
    rc, _, err = run(ang, "-o", os.path.join(tmp, "angular.png"))
    check(rc == 0, f"angular-only CSV plots (exit {rc}: {err})")
    bad_pl = os.path.join(tmp, "bad_ppl_layer.csv")
    write(bad_pl, "block,nll\n0,1.0\n")
    fails("ppl-layer CSV without ppl", good, "--ppl-layer", bad_pl, "-o",
          os.path.join(tmp, "x.png"), names=bad_pl)
    fails("missing ppl-k CSV", good, "--ppl-k", os.path.join(tmp, "no-k.csv"), "-o",
          os.path.join(tmp, "x.png"), names=os.path.join(tmp, "no-k.csv"))
    return good


# ------------------------------------------------ formats, titles, extension

def formats(tmp, good, posvec_dir):
    cases = [("plot_blockinf", BLOCKINF, [good]),
             ("plot_posvec", POSVEC, ["methods", posvec_dir]),
             ("plot_decay", DECAY, ["bound", write_bound(tmp)])]
    for name, script, args in cases:
        pdf, svg, png = (os.path.join(tmp, f"{name}.{e}") for e in ("pdf", "svg", "png"))
        rc, _, err = run_script(script, *args, "-o", pdf)
        check(rc == 0 and head(pdf, 5) == b"%PDF-", f"{name}: .pdf is a PDF ({rc}: {err[-200:]}; "
              f"starts {head(pdf, 8) if os.path.exists(pdf) else None})")
        rc, _, err = run_script(script, *args, "-o", svg)
        ok_svg = rc == 0 and (head(svg).lstrip().startswith(b"<?xml") or
                              head(svg).lstrip().startswith(b"<svg")) and b"<svg" in head(svg, 4096)
        check(ok_svg, f"{name}: .svg is SVG ({rc}: {err[-200:]})")
        rc, _, err = run_script(script, *args, "-o", png)
        dpi = png_dpi(png) if rc == 0 else None
        check(dpi is not None and dpi >= 150 and abs(dpi - 200) < 1,
              f"{name}: .png at 200 dpi by default (pHYs: {dpi}; {err[-200:]})")
        rc, _, err = run_script(script, *args, "-o", png, "--dpi", "150")
        size = png_size(png)
        dpi = png_dpi(png)
        check(rc == 0 and dpi is not None and abs(dpi - 150) < 1 and size and size[0] >= 600,
              f"{name}: --dpi 150 gives a 150-dpi PNG of plausible size ({dpi}, {size})")
        pal = os.path.join(tmp, f"{name}-pal.png")
        rc, _, err = run_script(script, *args, "-o", pal, "--dpi", "150", "--palette")
        ok_pal = rc == 0 and png_size(pal) is not None and head(pal, 26)[25] == 3
        check(ok_pal and abs((png_dpi(pal) or 0) - 150) < 1 and
              os.path.getsize(pal) < os.path.getsize(png),
              f"{name}: --palette gives a smaller 150-dpi palette PNG ({rc}: {err[-200:]})")
        for bad in ("fig.jpg", "fig", "fig.PNG.txt"):
            path = os.path.join(tmp, f"{name}-{bad}")
            rc, _, err = run_script(script, *args, "-o", path)
            lines = [ln for ln in err.splitlines() if ln.strip()]
            check(rc != 0 and "Traceback" not in err and len(lines) == 1 and path in lines[0]
                  and ".png, .pdf or .svg" in lines[0] and not os.path.exists(path),
                  f"{name}: -o {bad} refused with one message naming the file and the formats, "
                  f"nothing written ({rc}: {err!r})")
    # the title names model, corpus, N and T from the CSV's comment line
    svg = os.path.join(tmp, "plot_blockinf.svg")
    if os.path.exists(svg):
        t = svg_text(svg)
        for want in ("Block Influence", "stories260K.bin", "tiny stories.txt", "N = 12 samples",
                     "T = 64 tokens"):
            check(want in t, f"plot_blockinf title names {want!r} (SVG text: {t[:300]!r})")
    svg2 = os.path.join(tmp, "flags.svg")
    rc, _, err = run_script(BLOCKINF, good, "-o", svg2, "--model", "Llama-2-7b-hf", "--samples",
                            "1000", "--seq-len", "4096")
    t = svg_text(svg2) if rc == 0 else ""
    check("Llama-2-7b-hf" in t and "stories260K" not in t and "N = 1000 samples" in t and
          "T = 4096 tokens" in t, f"--model, --samples, --seq-len override the comment line: {t[:300]!r}")


def write_bound(tmp):
    path = os.path.join(tmp, "bound.csv")
    if not os.path.exists(path):
        rows = ["length,base,fit,fit_a,fit_k"]
        for L in (1000, 2000, 4000, 8000, 16000):
            rows.append(f"{L},{0.05 * L ** 1.6:.6g},{0.05 * L ** 1.6:.6g},0.05,1.6")
        write(path, "\n".join(rows) + "\n")
    return path


# ------------------------------------------------------------ plot_posvec

def posvec_dirs(tmp, n_points):
    """beyond-window, extension and methods CSVs with C = 512: best-matching
    positions as noise over 0..511 (what stories260K shows), n_points rows."""
    import numpy as np
    rng = np.random.default_rng(1)
    d = os.path.join(tmp, f"pv{n_points}")
    os.makedirs(d, exist_ok=True)
    meta = ("# program=strata-posvec command=beyond-window model=/m/stories260K.bin "
            "corpus=/c/tiny.txt n_samples=40 seq_len=2048 trained_window=512 pv=pv.h5\n")
    t = np.linspace(512, 2047, n_points // 2).astype(int)
    lines = []
    for b in (1, 3):
        for ti in t:
            lines.append(f"direct,{b},{ti},{rng.integers(0, 512)},{0.9 + 0.05 * rng.random():.6f}\n")
    write(os.path.join(d, "beyond_match.csv"), meta + "run,boundary,t,best_t,max_cos\n" + "".join(lines))
    write(os.path.join(d, "beyond_ppl.csv"), meta.replace("n_samples=40", "n_samples=8") +
          "start,end,mean_nll,ppl\n" + "".join(f"{s},{s + 64},1.5,{4.5 + s / 1000}\n"
                                               for s in range(0, 2047, 64)))
    emeta = meta.replace("beyond-window", "extension").replace("seq_len=2048", "seq_len=1024")
    te = np.linspace(0, 1023, n_points // 2).astype(int)
    lines = [f"{run},2,{ti},{min(511, int(ti / (2 if run == 'linear:2' else 1)) + rng.integers(-20, 20)) % 512},"
             "0.9\n" for run in ("direct", "linear:2") for ti in te]
    write(os.path.join(d, "extension_match.csv"), emeta + "run,boundary,t,best_t,max_cos\n" + "".join(lines))
    lines = [f"linear:2,2,{a},{b},{0.5 + 0.4 * rng.random():.4f}\n"
             for a in range(0, 1024, 32) for b in range(0, 512, 32)]
    write(os.path.join(d, "extension_heatmap.csv"), emeta + "run,boundary,t_ext,t_orig,cos\n" + "".join(lines))
    mmeta = meta.replace("beyond-window", "methods").replace("seq_len=2048", "seq_len=512;1024;2048") \
        .replace("n_samples=40", "n_samples=8")
    lines = [f"{m},{L},1.5,{p},4,5\n" for m, ps in (("direct", (3.8, 6.0, 5.4)), ("window:C", (3.8, 5.7, 4.3)))
             for L, p in zip((512, 1024, 2048), ps)]
    write(os.path.join(d, "methods.csv"), mmeta + "method,length,mean_nll,ppl,ppl_in,ppl_beyond\n" + "".join(lines))
    ameta = meta.replace("beyond-window", "attention").replace("seq_len=2048", "seq_len=512") \
        .replace("n_samples=40", "n_samples=8")
    runs = [("none", "none", "", "", ""), ("sub-positional@1:0-4", "sub-positional", 1, 0, 4)]
    lines = [f"{r},{k},{b},{t0},{t1},{blk},{0.01 * (blk + 1) * (i + 1)},{0.01 * (blk + 1)},0.99,1.3,"
             f"{3.8 + 8 * i},3.8\n" for i, (r, k, b, t0, t1) in enumerate(runs) for blk in range(5)]
    write(os.path.join(d, "attention_summary.csv"), ameta + "run,kind,boundary,t0,t1,block,sink,"
          "sink_base,hidden_cos,mean_nll,ppl,ppl_base\n" + "".join(lines))
    lines = [f"{r[0]},{blk},{m},{1 / (m + 2)}\n" for r in runs for blk in range(5) for m in range(512)]
    write(os.path.join(d, "attention_dist.csv"), ameta + "run,block,distance,prob\n" + "".join(lines))
    return d


def posvec_plots(tmp):
    small, big = posvec_dirs(tmp, 2000), posvec_dirs(tmp, 20000)
    for kind, extra in (("beyond", []), ("extension", ["--boundary", "2"]), ("methods", [])):
        svg = os.path.join(tmp, f"pv_{kind}.svg")
        rc, _, err = run_script(POSVEC, kind, small, *extra, "-o", svg)
        if not check(rc == 0, f"plot_posvec {kind}: exit 0 ({err[-300:]})"):
            continue
        t = svg_text(svg)
        check("trained window C = 512" in t, f"plot_posvec {kind}: the trained window is marked "
              f"({t[:200]!r})")
        check("stories260K.bin" in t and "tiny.txt" in t and "samples" in t and "tokens" in t,
              f"plot_posvec {kind}: title names model, corpus, N and T ({t[:300]!r})")
    svg = os.path.join(tmp, "pv_attention.svg")
    rc, _, err = run_script(POSVEC, "attention", small, "--block", "3", "-o", svg)
    t = svg_text(svg) if rc == 0 else ""
    check(rc == 0 and "unedited" in t and "sub-positional@1:0-4" in t and "block 3" in t and
          "stories260K.bin" in t and "N = 8 samples" in t,
          f"plot_posvec attention: runs, block and provenance in the SVG ({err[-300:]}; {t[:300]!r})")
    # binned medians: ten times the points, about the same drawing
    sizes = []
    for d in (small, big):
        svg = os.path.join(tmp, f"pv_beyond_{os.path.basename(d)}.svg")
        rc, _, err = run_script(POSVEC, "beyond", d, "-o", svg)
        sizes.append(os.path.getsize(svg) if rc == 0 else None)
    check(None not in sizes and sizes[1] < 1.5 * sizes[0],
          f"beyond: binned medians, not a scatter: SVG of 20000 points {sizes[1]} bytes vs "
          f"2000 points {sizes[0]}")
    ext = os.path.join(tmp, "pv_ext_big.svg")
    rc, _, _ = run_script(POSVEC, "extension", small, "--boundary", "2", "-o", ext)
    rc2, _, _ = run_script(POSVEC, "extension", big, "--boundary", "2", "-o", ext + ".2.svg")
    if rc == 0 and rc2 == 0:
        a, b = os.path.getsize(ext), os.path.getsize(ext + ".2.svg")
        check(b < 1.5 * a, f"extension: binned medians: {b} vs {a} bytes")
    rc, _, err = run_script(POSVEC, "extension", small, "--boundary", "7", "-o", ext)
    check(rc != 0 and "Traceback" not in err and "--boundary 7" in err,
          f"plot_posvec extension --boundary 7 (absent): one message ({err!r})")
    rc, _, err = run_script(POSVEC, "beyond", os.path.join(tmp, "nowhere"), "-o", ext)
    check(rc != 0 and "Traceback" not in err and "beyond_match.csv" in err,
          f"plot_posvec on a directory without its CSVs: one message ({err!r})")
    return small


# ------------------------------------------------------------- plot_decay

def decay_marks(tmp):
    decay = os.path.join(BINDIR, "strata-decay")
    if not check(os.access(decay, os.X_OK), f"{decay} built"):
        return
    curve, summ = os.path.join(tmp, "curve.csv"), os.path.join(tmp, "first_neg.csv")
    p = subprocess.run([decay, "curve", "--base", "10000,100000,1000000", "--dim", "128",
                        "--max-dist", "20000", "--every", "4", "--summary", summ, "-o", curve, "-q"],
                       capture_output=True, timeout=300)
    if not check(p.returncode == 0, f"strata-decay curve: {p.stderr.decode()[-300:]}"):
        return
    import csv
    with open(summ) as f:
        exact = {float(r["base"]): int(r["first_neg"])
                 for r in csv.DictReader(ln for ln in f if not ln.startswith("#"))}
    check(exact.get(1e4) == 1707 and exact.get(1e5) == 7757,
          f"strata-decay's exact first negative m: {exact}")
    sampled = {}
    with open(curve) as f:
        for r in csv.DictReader(ln for ln in f if not ln.startswith("#")):
            b = float(r["base"])
            if b not in sampled and float(r["b"]) < 0:
                sampled[b] = int(r["m"])
    check(sampled.get(1e4) != 1707 and sampled.get(1e5) != 7757,
          f"the every-4th-m CSV's own first negative rows differ ({sampled}): the test can fail")
    for label, extra in (("with --summary", ["--summary", summ]), ("without --summary", [])):
        svg = os.path.join(tmp, f"curve{len(extra)}.svg")
        rc, _, err = run_script(DECAY, "curve", curve, *extra, "-o", svg)
        if not check(rc == 0, f"plot_decay curve {label}: exit 0 ({err[-300:]})"):
            continue
        said = re.findall(r"base (\S+): m = (\d+)", err)
        marks = {float(b): int(m) for b, m in said}
        check(marks == {1e4: 1707, 1e5: 7757}, f"plot_decay {label}: prints the marks at the exact "
              f"m 1707, 7757 ({marks}; {err.strip()[-300:]})")
        t = svg_text(svg)
        check("m = 1707" in t and "m = 7757" in t and f"m = {sampled.get(1e4)}" not in t,
              f"plot_decay {label}: the SVG labels the exact m ({t[:300]!r})")
    # a summary that disagrees is what gets drawn (the script does not second-guess it)
    fake = os.path.join(tmp, "fake_summary.csv")
    write(fake, "base,first_neg,b_at\n10000,1234,-1\n100000,-1,0\n1000000,-1,0\n")
    rc, _, err = run_script(DECAY, "curve", curve, "--summary", fake, "-o", os.path.join(tmp, "f.svg"))
    check(rc == 0 and "base 10000: m = 1234 (strata-decay --summary)" in err,
          f"plot_decay marks what --summary says ({err.strip()[-300:]})")
    rc, _, err = run_script(DECAY, "bound", write_bound(tmp), "--summary", fake, "-o",
                            os.path.join(tmp, "b.svg"))
    check(rc != 0 and "--summary" in err and "Traceback" not in err,
          f"--summary with the bound plot is refused ({err!r})")


# --------------------------------------------------------- blockinf_eval

FAKE_PPL = r'''#!/usr/bin/python3
# stand-in for strata-probe-ppl: writes its CSV; ppl = MARK + number of skipped blocks
import sys
a = sys.argv[1:]
csv_path = a[a.index("--csv") + 1]
out = a[a.index("-o") + 1]
skip = a[a.index("--skip-layers") + 1].split(",") if "--skip-layers" in a else []
open(out, "w").close()
with open(csv_path, "w") as f:
    f.write("kind,start,end,n_samples,n_values,mean_nll,ppl\n")
    f.write(f"all,0,63,2,126,1.0,{MARK + len(skip)}\n")
'''


def fake_bin(d, mark):
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "strata-probe-ppl")
    write(p, FAKE_PPL.replace("MARK", str(mark)))
    os.chmod(p, 0o755)
    return d


def eval_finds_programs(tmp):
    plan = {"format": "strata-blockinf-plan/1", "metric": "bi", "n": 1, "tokens": "all",
            "n_layer": 3, "remove": [1], "keep": [0, 2], "order": [1, 2, 0],
            "score": [0.3, 0.1, 0.2], "bootstrap": None,
            "calibration": {"model_path": "m.bin", "tokenizer_path": "t.bin", "corpus_path": "c.txt",
                            "corpus_format": "text", "separator": "<|endoftext|>", "seed": "0",
                            "seq_len": 64, "n_samples": 10, "n_tokens": 640, "draw_min": 4,
                            "draw_max": 13}}
    pj = os.path.join(tmp, "plan.json")
    write(pj, json.dumps(plan))
    base_env = {k: v for k, v in os.environ.items() if k != "BINDIR"}
    base_env["PATH"] = "/usr/bin:/bin"
    elsewhere = shutil.which("strata-probe-ppl", path="/usr/bin:/bin") or \
        os.path.exists("/usr/local/bin/strata-probe-ppl")
    # installed layout: PREFIX/share/strata/scripts/blockinf_eval.py and PREFIX/bin
    prefix = os.path.join(tmp, "prefix")
    sdir = os.path.join(prefix, "share", "strata", "scripts")
    os.makedirs(sdir, exist_ok=True)
    shutil.copy(EVAL, sdir)
    fake_bin(os.path.join(prefix, "bin"), 100)
    # a copy of the script with no bin/ beside it, and a directory on the PATH
    loose = os.path.join(tmp, "a", "loose")
    os.makedirs(loose, exist_ok=True)
    shutil.copy(EVAL, loose)
    pathdir = fake_bin(os.path.join(tmp, "onpath"), 200)
    envdir = fake_bin(os.path.join(tmp, "envbin"), 300)

    def ppl_k(out):
        import csv
        with open(os.path.join(out, "ppl_k.csv")) as f:
            return [float(r["ppl"]) for r in csv.DictReader(ln for ln in f if not ln.startswith("#"))]

    cases = [("installed: PREFIX/bin", os.path.join(sdir, "blockinf_eval.py"), base_env, 100),
             ("on the PATH", os.path.join(loose, "blockinf_eval.py"),
              dict(base_env, PATH=pathdir + ":/usr/bin:/bin"), 200),
             ("$BINDIR", os.path.join(loose, "blockinf_eval.py"),
              dict(base_env, BINDIR=envdir, PATH=pathdir + ":/usr/bin:/bin"), 300)]
    for label, script, env, mark in cases:
        out = os.path.join(tmp, "eval_" + str(mark))
        rc, _, err = run_script(script, pj, "-o", out, "--samples", "2", env=env)
        got = ppl_k(out) if rc == 0 else None
        check(rc == 0 and got == [mark, mark + 1], f"blockinf_eval finds strata-probe-ppl {label} "
              f"without --bindir (exit {rc}, ppl {got}): {err.strip()[-300:]}")
    if not elsewhere:
        rc, _, err = run_script(os.path.join(loose, "blockinf_eval.py"), pj, "-o",
                                os.path.join(tmp, "eval_none"), "--samples", "2", env=base_env)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        check(rc == 1 and len(lines) == 1 and "not found" in err and "--bindir" in err and
              "the PATH" in err and "Traceback" not in err,
              f"blockinf_eval with no strata-probe-ppl anywhere: exit 1, one line naming --bindir "
              f"({rc}: {err!r})")
    # the source tree's own bin/ comes first when the script runs from the tree
    sys.path.insert(0, SCRIPTS)
    import blockinf_eval
    saved = os.environ.pop("BINDIR", None)
    try:
        if os.access(os.path.join(ROOT, "bin", "strata-probe-ppl"), os.X_OK):
            d, _ = blockinf_eval.find_bindir(None)
            check(os.path.realpath(d) == os.path.realpath(os.path.join(ROOT, "bin")),
                  f"from the source tree: its bin/ ({d})")
    finally:
        if saved is not None:
            os.environ["BINDIR"] = saved
    # what to do when the calibration leaves no or too few held-out draws
    plan["calibration"]["draw_min"] = 0
    p0 = os.path.join(tmp, "plan0.json")
    write(p0, json.dumps(plan))
    rc, _, err = run_script(EVAL, p0, "-o", os.path.join(tmp, "e0"), "--bindir", envdir)
    check(rc == 1 and "no draw is left" in err and "--sample-offset M" in err and
          "Traceback" not in err, f"draw_min 0: says to redo the calibration with "
          f"--sample-offset ({err.strip()!r})")
    rc, _, err = run_script(EVAL, pj, "-o", os.path.join(tmp, "e9"), "--samples", "9",
                            "--bindir", envdir)
    check(rc == 1 and "give --samples 4 or fewer" in err and "--sample-offset 9" in err,
          f"--samples 9 > draw_min 4: names --samples 4 and --sample-offset 9 ({err.strip()!r})")


def body(tmp):
    if SAN:
        # The plot scripts are Python, the same under the sanitizers; only
        # the decay marks run a compiled program (strata-decay).
        decay_marks(tmp)
        return
    good = blockinf_plots(tmp)
    small = posvec_plots(tmp)
    formats(tmp, good, small)
    decay_marks(tmp)
    eval_finds_programs(tmp)


if __name__ == "__main__":
    main("test_plot", body)
