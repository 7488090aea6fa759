#!/usr/bin/python3
"""test_wext.py — issue 15 items 1 and 2: P1's attention window extension
widens the model's attention window W (not the trained context C), and
every output records the intervention values it resolved.

Why: P1 (../shared/docs/PAPERS.md) extends a window-attention model's
window from W to r*W. On a Mistral-style checkpoint (sliding_window W = 32,
trained context C = 128) `wext:2:1` must therefore be exactly `window:64`,
not `window:256` (2C, what strata did before). The independent side is
strata-probe-ppl's `--window 64` on the same samples (the probe's own
path, not the posvec runner's) and the full-attention twin, where W = C and
`wext:2:1` must equal `window:256`.

Provenance: strata-probe-hidden used to record `t1: "end"` and
`interp_window: 0` where strata-probe-ppl records the resolved input length
and in-window positions for the same --replace and --edit flags; both must
record the same resolved numbers.

Prints "test_wext: N passed, N failed".
"""
import csv
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mkhf  # noqa: E402
from pycheck import BINDIR, CORPUS, TOK, check, main, run  # noqa: E402

try:
    import h5py
except ImportError:  # pragma: no cover
    h5py = None

HIDDEN = os.path.join(BINDIR, "strata-probe-hidden")
PPL = os.path.join(BINDIR, "strata-probe-ppl")
POSVEC = os.path.join(BINDIR, "strata-posvec")
C, W, T, N = 128, 32, 256, 2


def ok(cmd, what):
    rc, _, err = run(cmd)
    return check(rc == 0, f"{what}: exit {rc}: {err.strip()[-400:]}")


def methods_nll(tmp, model, tag, pv, methods):
    """{method: mean_nll string} of strata-posvec methods at length T."""
    out = os.path.join(tmp, f"meth_{tag}")
    if not ok([POSVEC, "methods", "--pv", pv, "--model", model, "--tokenizer", TOK,
               "--corpus", CORPUS, "--samples", str(N), "--lengths", str(T),
               "--methods", ",".join(methods), "--grid-layers", "none", "-q", "-o", out],
              f"{tag}: posvec methods"):
        return {}
    with open(os.path.join(out, "methods.csv")) as f:
        rows = [r for r in csv.DictReader(line for line in f if not line.startswith("#"))]
    return {r["method"]: float(r["mean_nll"]) for r in rows}


def ppl_nll(tmp, model, name, *extra):
    out = os.path.join(tmp, name + ".h5")
    if not ok([PPL, "--model", model, "--tokenizer", TOK, "--corpus", CORPUS, "--samples",
               str(N), "--seq-len", str(T), "-q", "-o", out] + list(extra), f"probe-ppl {name}"):
        return None
    with h5py.File(out, "r") as f:
        return f["nll"][...].astype(np.float64)


def test_wext(tmp, models, pvs):
    for arch, want_w in (("mistral", 2 * W), ("llama", 2 * C)):
        m, pv = models[arch], pvs[arch]
        other = 2 * C if arch == "mistral" else 2 * W
        got = methods_nll(tmp, m, arch, pv, ["wext:2:1", f"window:{want_w}", f"window:{other}"])
        if not check(len(got) == 3, f"{arch}: three methods in methods.csv ({sorted(got)})"):
            continue
        check(got["wext:2:1"] == got[f"window:{want_w}"],
              f"{arch}: wext:2:1 ({got['wext:2:1']!r}) is window:{want_w} ({got[f'window:{want_w}']!r})")
        check(abs(got["wext:2:1"] - got[f"window:{other}"]) > 1e-6,
              f"{arch}: wext:2:1 differs from window:{other} (the windows differ, so must the NLL)")
        # The probe's --window on the same draws: the mean NLL over predicted
        # tokens is the same quantity (float32 forward, double mean).
        nll = ppl_nll(tmp, m, f"{arch}_w{want_w}", "--window", str(want_w))
        if nll is not None:
            mean = float(nll.mean())
            check(abs(mean - got["wext:2:1"]) <= 1e-6 * max(1.0, abs(mean)),
                  f"{arch}: wext:2:1 mean NLL {got['wext:2:1']:.9g} = probe-ppl --window "
                  f"{want_w} {mean:.9g} (1e-6 relative)")


def interventions(path):
    with h5py.File(path, "r") as f:
        v = f.attrs["interventions"]
        return json.loads(v.decode() if isinstance(v, bytes) else v)


def test_provenance(tmp, models, pvs):
    m, pv = models["llama"], pvs["llama"]
    flags = ["--posvec", pv, "--replace", "1:2:1", "--edit", "sub-positional@1:8-"]
    common = ["--model", m, "--tokenizer", TOK, "--corpus", CORPUS, "--samples", "1",
              "--seq-len", str(T), "-q"] + flags
    hid, ppl = os.path.join(tmp, "prov_hidden.h5"), os.path.join(tmp, "prov_ppl.h5")
    if not (ok([HIDDEN] + common + ["-o", hid], "probe-hidden with --replace and --edit")
            and ok([PPL] + common + ["-o", ppl], "probe-ppl with --replace and --edit")):
        return
    a, b = interventions(hid)["edits"], interventions(ppl)["edits"]
    check(len(a) == 2 and a == b, f"the same resolved edits in both files: {a} vs {b}")
    for e in a:
        check(e.get("t1") == T, f"{e['kind']}: t1 resolved to the input length {T} ({e.get('t1')!r})")
    rep = [e for e in a if e["kind"] == "replace"]
    check(len(rep) == 1 and rep[0].get("interp_window") == C,
          f"replace: interp_window resolved to min(C, positions of --posvec) = {C} ({rep})")


def body(tmp):
    if not check(h5py is not None, "h5py is importable"):
        return
    models, pvs = {}, {}
    for arch in ("mistral", "llama"):
        m = os.path.join(tmp, arch)
        kw = dict(layers=2, kv_heads=2, max_pos=C, seed=7)
        if arch == "mistral":
            kw["sliding_window"] = W
        mkhf.generate(m, arch, **kw)
        d, pv = os.path.join(tmp, arch + "_d.h5"), os.path.join(tmp, arch + "_pv.h5")
        if not (ok([HIDDEN, "--model", m, "--tokenizer", TOK, "--corpus", CORPUS, "--samples", "2",
                    "--seq-len", str(T), "-q", "-o", d], f"{arch}: dump")
                and ok([POSVEC, "decompose", d, "-q", "-o", pv], f"{arch}: decompose")):
            return
        models[arch], pvs[arch] = m, pv
    test_wext(tmp, models, pvs)
    test_provenance(tmp, models, pvs)


if __name__ == "__main__":
    main("test_wext", body)
