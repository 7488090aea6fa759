#!/usr/bin/python3
"""test_badinput.py — the analyzers given files that disagree with
themselves (issue 13 items 1, 2, 9, 12): every case must end in a clear
error, never a crash, a read past a buffer or a silent result.

Files: a real dump, attention file and statistics file of stories260K
(3 samples x 16 tokens, the probes), the positional-vector file strata-posvec
decompose makes of the dump; each corrupted copy is made with h5py:
- positional-vector files (strata-posvec formation, merge): /positional,
  /sumsq, /layers, /semantic_norm larger than /sum implies; /positional 2-D;
  /layers not increasing; a NaN in /positional; n_samples a string;
  model_config an integer;
- attention files (strata-decay empirical): /dist/prob_mean and /dist/count
  larger than /dist/logit_mean implies, /layers and /heads 2-D, an
  interrupted run (complete = 0, refused without --allow-partial, read
  with it);
- statistics files (strata-decay empirical, strata-posvec decompose,
  strata-blockinf): /attn/prob_sum, /attn/sink_sum, /posvec/sum,
  /blockinf/mean larger than implied, /attn/layers 2-D, complete = 0
  (refused without --allow-partial), a NaN in /posvec/sum;
- dumps (strata-blockinf, strata-posvec decompose): a NaN and a zero hidden
  state, a NaN block output (/attn_out, --metric all).
Each bad case checks: exit status 1 (a signal or an abort is not 1), no
output written (neither OUT nor OUT.partial, no output directory), the
message names the file and the dataset or attribute, and no sanitizer
report (under STRATA_SAN=1, tests/run.sh from `make check`, BINDIR is the
ASan/UBSan build with detect_leaks=1, so an overflow, UB or a leak at the
error exit shows up here). Before the fixes the oversized cases overflowed
a heap buffer (an ASan abort; in the normal build a silent exit 0 or a
random crash), the 2-D /positional exited 0 with zeroed results, the
partial attention file was read without a word, and strata-blockinf left
its block-output buffers unreachable when it stopped on a zero state.

Prints "test_badinput: N passed, N failed" last.
"""
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pycheck import BINDIR, CORPUS, STORIES, TOK, check, main, run  # noqa: E402

import h5py  # noqa: E402

POSVEC = os.path.join(BINDIR, "strata-posvec")
DECAY = os.path.join(BINDIR, "strata-decay")
BLOCKINF = os.path.join(BINDIR, "strata-blockinf")
MODEL = ["--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS]
SAMPLING = ["--samples", "3", "--seq-len", "16", "--seed", "0", "-q"]
TIMEOUT = 120  # seconds a refusal may take (under ASan too); before the fixes some cases hung
SAN_MARKS = ("Sanitizer", "runtime error:", "LeakSanitizer")


def ok(res, what):
    rc, out, err = res
    return check(rc == 0, f"{what}: exit {rc}: {err[-800:]}")


def variant(tmp, src, name, edit):
    """A copy of src named name, changed by edit(h5py.File)."""
    dst = os.path.join(tmp, name)
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        edit(f)
    return dst


def replace(name, data):
    def edit(f):
        del f[name]
        f[name] = data
    return edit


def set_attrs(**attrs):
    def edit(f):
        for k, v in attrs.items():
            f.attrs[k] = v
    return edit


def refused(what, cmd, bad, outputs, names):
    """cmd must fail with status 1, write none of outputs (nor OUT.partial),
    name the file bad and each of names, and draw no sanitizer report."""
    for o in outputs:
        for p in (o, o + ".partial"):
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.remove(p)
    rc, out, err = run(cmd, timeout=TIMEOUT)
    check(rc == 1, f"{what}: exit status {rc}, expected 1 (a signal or abort is not 1): {err[-1500:]}")
    left = [p for o in outputs for p in (o, o + ".partial") if os.path.exists(p)]
    check(not left, f"{what}: output written: {left}")
    base = os.path.basename(bad)
    check(base in err, f"{what}: message does not name the file {base}: {err[-600:]}")
    for n in names:
        check(n in err, f"{what}: message does not name {n}: {err[-600:]}")
    check(not any(m in err for m in SAN_MARKS), f"{what}: sanitizer report: {err[-2500:]}")
    return err


def body(tmp):
    dump = os.path.join(tmp, "dump.h5")
    attn = os.path.join(tmp, "attn.h5")
    stats = os.path.join(tmp, "stats.h5")
    pv = os.path.join(tmp, "pv.h5")
    if not (ok(run([os.path.join(BINDIR, "strata-probe-hidden")] + MODEL + SAMPLING + ["-o", dump]), "probe-hidden")
            and ok(run([os.path.join(BINDIR, "strata-probe-attn")] + MODEL + SAMPLING + ["-o", attn]), "probe-attn")
            and ok(run([os.path.join(BINDIR, "strata-probe-stats")] + MODEL + SAMPLING + ["-o", stats]), "probe-stats")
            and ok(run([POSVEC, "decompose", dump, "-o", pv, "-q"]), "posvec decompose")):
        return
    with h5py.File(pv) as f:
        Lk, T, D = f["sum"].shape
    out_dir = os.path.join(tmp, "formation")
    out_h5 = os.path.join(tmp, "out.h5")
    out_csv = os.path.join(tmp, "out.csv")

    # the good files work (the control: the checks below can fail)
    ok(run([POSVEC, "formation", pv, "-o", out_dir, "-q"]), "formation of a good PV file")
    ok(run([POSVEC, "merge", pv, pv, "-o", out_h5, "--csv", out_csv, "-q"]), "merge of good PV files")
    ok(run([DECAY, "empirical", attn, "-o", out_csv]), "empirical of a good attention file")
    ok(run([DECAY, "empirical", stats, "-o", out_csv]), "empirical of a good statistics file")

    # --- item 1: positional-vector files
    pv_cases = [
        ("/positional larger", "pv_bigpos.h5", replace("positional", np.ones((Lk, T, D + 8), np.float32)),
         ["/positional", f"({Lk}, {T}, {D})"]),
        ("/positional 2-D", "pv_pos2d.h5", replace("positional", np.ones((Lk, T * D), np.float32)),
         ["/positional", f"({Lk}, {T}, {D})"]),
        ("/sumsq larger", "pv_bigsumsq.h5", replace("sumsq", np.ones((Lk, T * 5))), ["/sumsq", f"({Lk}, {T})"]),
        ("/layers larger", "pv_biglayers.h5", replace("layers", np.arange(300, dtype=np.int32)),
         ["/layers", f"({Lk},)"]),
        ("/positions larger", "pv_bigpositions.h5", replace("positions", np.arange(T + 40, dtype=np.int32)),
         ["/positions"]),
        ("/semantic_norm larger", "pv_bigcnorm.h5", replace("semantic_norm", np.ones((Lk + 2, T))),
         ["/semantic_norm"]),
        ("/layers not increasing", "pv_layers_order.h5",
         replace("layers", np.array([0] * Lk, dtype=np.int32)), ["/layers"]),
        ("NaN in /positional", "pv_nan.h5",
         lambda f: f["positional"].__setitem__((0, 1, 2), np.nan), ["/positional"]),
        ("n_samples a string", "pv_nstr.h5", set_attrs(n_samples="4"), ["n_samples"]),
        ("model_config an integer", "pv_cfgint.h5", set_attrs(model_config=np.int64(3)), ["model_config"]),
    ]
    for what, name, edit, names in pv_cases:
        bad = variant(tmp, pv, name, edit)
        refused(f"formation, {what}", [POSVEC, "formation", bad, "-o", out_dir], bad, [out_dir], names)
        refused(f"merge, {what}", [POSVEC, "merge", pv, bad, "-o", out_h5, "--csv", out_csv], bad,
                [out_h5, out_csv], names)

    # --- item 2: attention files
    with h5py.File(attn) as f:
        Ls, Hs, Ta = f["dist/logit_mean"].shape
    at_cases = [
        ("/dist/prob_mean larger", "at_bigprob.h5", replace("dist/prob_mean", np.ones((Ls, Hs, Ta * 4))),
         ["/dist/prob_mean", f"({Ls}, {Hs}, {Ta})"]),
        ("/dist/count larger", "at_bigcount.h5", replace("dist/count", np.ones((Ls, Hs + 3, Ta))),
         ["/dist/count"]),
        ("/layers 2-D", "at_layers2d.h5", replace("layers", np.zeros((Ls, 4), np.int32)), ["/layers", f"({Ls},)"]),
        ("/heads 2-D", "at_heads2d.h5", replace("heads", np.zeros((Hs, 2), np.int32)), ["/heads"]),
        ("/dist/logit_mean 2-D", "at_lg2d.h5", replace("dist/logit_mean", np.ones((Ls, Hs * Ta))),
         ["/dist/logit_mean"]),
        ("complete not 0/1", "at_complete7.h5", set_attrs(complete=np.int64(7)), ["complete"]),
    ]
    for what, name, edit, names in at_cases:
        bad = variant(tmp, attn, name, edit)
        refused(f"decay empirical, {what}", [DECAY, "empirical", bad, "-o", out_csv], bad, [out_csv], names)

    # --- item 9: an interrupted attention file
    part = variant(tmp, attn, "at_partial.h5", set_attrs(complete=np.int64(0), n_complete=np.int64(2)))
    err = refused("decay empirical, interrupted attention file", [DECAY, "empirical", part, "-o", out_csv],
                  part, [out_csv], ["--allow-partial"])
    check("2 of 3" in err, f"the refusal says how many samples are complete: {err}")
    rc, _, err = run([DECAY, "empirical", part, "--allow-partial", "-o", out_csv])
    check(rc == 0 and os.path.exists(out_csv), f"--allow-partial reads it: {rc} {err}")
    rc, out, err = run([DECAY, "empirical", "--help"])
    check(rc == 0 and "--allow-partial" in out, "empirical --help lists --allow-partial")

    # --- item 2: statistics files (lib/stats.c)
    with h5py.File(stats) as f:
        sLs, sHs, sKs, sT = f["attn/sink_sum"].shape
        sLk, sP, sD = f["posvec/sum"].shape
        sN, sK, sL = f["blockinf/mean"].shape
    st_cases = [
        ("/attn/prob_sum larger", "st_bigprob.h5", replace("attn/prob_sum", np.ones((sLs, sHs, sT * 4))),
         ["/attn/prob_sum", f"({sLs}, {sHs}, {sT})"]),
        ("/attn/count larger", "st_bigcount.h5", replace("attn/count", np.ones((sLs + 1, sHs, sT))),
         ["/attn/count"]),
        ("/attn/sink_sum larger", "st_bigsink.h5", replace("attn/sink_sum", np.ones((sLs, sHs, sKs + 2, sT))),
         ["/attn/sink_sum"]),
        ("/attn/layers 2-D", "st_layers2d.h5", replace("attn/layers", np.zeros((sLs, 3), np.int32)),
         ["/attn/layers"]),
        ("/tokens 1-D", "st_tokens1d.h5", replace("tokens", np.zeros(sN * sT, np.int32)), ["/tokens"]),
    ]
    for what, name, edit, names in st_cases:
        bad = variant(tmp, stats, name, edit)
        refused(f"decay empirical (stats), {what}", [DECAY, "empirical", bad, "-o", out_csv], bad,
                [out_csv], names)
    bad = variant(tmp, stats, "st_bigsum.h5", replace("posvec/sum", np.ones((sLk, sP, sD + 1))))
    refused("posvec decompose (stats), /posvec/sum larger", [POSVEC, "decompose", bad, "-o", out_h5],
            bad, [out_h5], ["/posvec/sum", f"({sLk}, {sP}, {sD})"])
    bad = variant(tmp, stats, "st_bigsumsq.h5", replace("posvec/sumsq", np.ones((sLk, sP + 9))))
    refused("posvec decompose (stats), /posvec/sumsq larger", [POSVEC, "decompose", bad, "-o", out_h5],
            bad, [out_h5], ["/posvec/sumsq"])
    bad = variant(tmp, stats, "st_bigbi.h5", replace("blockinf/mean", np.ones((sN, sK, sL + 3))))
    refused("blockinf (stats), /blockinf/mean larger", [BLOCKINF, bad, "-o", out_csv], bad, [out_csv],
            ["/blockinf/mean"])
    bad = variant(tmp, stats, "st_nan.h5", lambda f: f["posvec/sum"].__setitem__((1, 2, 3), np.nan))
    refused("posvec decompose (stats), NaN in /posvec/sum", [POSVEC, "decompose", bad, "-o", out_h5],
            bad, [out_h5], ["/posvec/sum", "non-finite"])
    part = variant(tmp, stats, "st_partial.h5", set_attrs(complete=np.int64(0), n_complete=np.int64(2)))
    refused("decay empirical (stats), interrupted", [DECAY, "empirical", part, "-o", out_csv], part,
            [out_csv], ["--allow-partial", "2 samples complete"])
    rc, _, err = run([DECAY, "empirical", part, "--allow-partial", "-o", out_csv])
    check(rc == 0 and os.path.exists(out_csv), f"--allow-partial reads the statistics: {rc} {err}")

    # --- item 12: NaN and zero hidden states in a dump (no leak at the error exit)
    def hidden_at(val):
        def edit(f):
            h = f["hidden"]
            x = h[1]
            x[2, 3, :] = val
            h[1] = x
        return edit
    for label, val in (("NaN", np.nan), ("zero", 0.0)):
        bad = variant(tmp, dump, f"dump_{label}.h5", hidden_at(val))
        refused(f"blockinf, a {label} hidden state", [BLOCKINF, bad, "-o", out_csv], bad, [out_csv],
                ["sample 1", "position 3"])
        refused(f"blockinf plan, a {label} hidden state",
                [BLOCKINF, "plan", bad, "--remove", "1", "-o", out_h5], bad, [out_h5], ["sample 1"])
    sites = os.path.join(tmp, "dump_sites.h5")
    if ok(run([os.path.join(BINDIR, "strata-probe-hidden")] + MODEL + SAMPLING +
              ["--sites", "resid,attn_out,mlp_out", "-o", sites]), "probe-hidden --sites"):
        def attn_nan(f):
            h = f["attn_out"]
            x = h[1]
            x[2, 3, :] = np.nan
            h[1] = x
        bad = variant(tmp, sites, "dump_attn_nan.h5", attn_nan)
        refused("blockinf --metric all, a NaN attn_out", [BLOCKINF, bad, "--metric", "all", "-o", out_csv],
                bad, [out_csv], ["sample 1", "position 3"])
    bad = os.path.join(tmp, "dump_NaN.h5")
    refused("posvec decompose, a NaN hidden state", [POSVEC, "decompose", bad, "-o", out_h5], bad,
            [out_h5], ["non-finite", "sample 1"])

    # --- item 13: a dump whose boundary ids go beyond the blocks of the model
    # it names (its model_config) is refused, not scored as a larger model
    def layer_beyond(f):
        ids = f["layers"][:]
        ids[-1] = ids[-1] + 4
        f["layers"][...] = ids
    bad = variant(tmp, dump, "dump_layer_beyond.h5", layer_beyond)
    refused("blockinf, a boundary id beyond the model", [BLOCKINF, bad, "-o", out_csv], bad,
            [out_csv], ["boundary", "model_config"])


if __name__ == "__main__":
    main("test_badinput", body)
