"""test_mpi.py — the probes under `mpirun -n 2` and `-n 3` (Open MPI, issue 12)
give the single-process results, on this machine (oversubscribed):

- strata-probe-hidden writes one shard a rank (OUT-0000r-of-0000R.h5); read
  back in rank order they are the single-process dump, bit for bit (hidden
  states, tokens, sample origins), and strata-blockinf over the shards
  writes the single-process CSV byte for byte;
- strata-probe-ppl writes one file on rank 0 equal to the single-process
  file (/nll, /tokens, attributes) and the same CSV bytes, also with more
  ranks than samples;
- strata-probe-attn: one file on rank 0, --maps and /tokens identical, the
  reductions within 1e-12 relative (summation order differs);
- strata-probe-stats (all three statistics): one file on rank 0; per-sample
  rows (/blockinf, /tokens, sample origins) identical, the sums (/posvec,
  /attn) within 1e-12 relative; strata-blockinf (all metrics, bootstrap) and
  strata-posvec decompose on it give the single-process outputs within 1e-12;
  stopped under mpirun and resumed with the same R, or plainly (R = 1), it
  gives the single-process file;
- one progress/summary line (rank 0), a command-line error said once;
- stop and resume: STRATA_STOP_AFTER and a real SIGTERM sent to mpirun stop
  every rank after the same round (exit 130, .partial shards / file holding
  exactly the agreed samples); --resume then gives files byte-identical to an
  uninterrupted run.

Plain runs without mpirun are the rest of the suite. As root Open MPI needs
OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM); --oversubscribe for 3 ranks on 2 cores;
btl self,vader with single_copy_mechanism none works in containers.
"""
import csv
import filecmp
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycheck import BINDIR, CORPUS, SAN, STORIES, TOK, check, main, run_interrupted  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

HIDDEN = os.path.join(BINDIR, "strata-probe-hidden")
PPL = os.path.join(BINDIR, "strata-probe-ppl")
ATTN = os.path.join(BINDIR, "strata-probe-attn")
BLOCKINF = os.path.join(BINDIR, "strata-blockinf")
STATS = os.path.join(BINDIR, "strata-probe-stats")
POSVEC = os.path.join(BINDIR, "strata-posvec")

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}
os.environ.update(MPI_ENV)
if SAN:  # the ranks' Open MPI thread allocations are matched by stack (lib/cli/lsan-mpi.supp)
    os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":fast_unwind_on_malloc=0"
MPIRUN = shutil.which("mpirun")
N, T = 7, 64
COMMON = ["--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS, "--samples", str(N),
          "--seq-len", str(T), "--seed", "3"]


def mpi(n, cmd, sigkill_timeout=False):
    # On SIGINT/SIGTERM mpirun sends every rank SIGCONT, waits this many
    # seconds (default 1), sends SIGTERM, waits as long again, then SIGKILL.
    extra = ["--mca", "odls_base_sigkill_timeout", "3"] if sigkill_timeout else []
    return [MPIRUN, "--oversubscribe", "--mca", "btl", "self,vader"] + extra + ["-n", str(n)] + cmd


def in_dir(d, cmd, env=None):
    """run() in directory d (outputs are relative, so the command lines the
    files record are the same in every directory)."""
    try:
        p = subprocess.run(cmd, capture_output=True, cwd=d, timeout=600,
                           env=dict(os.environ, **(env or {})))
        return p.returncode, p.stderr.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)


def attrs(f):
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def shards(d, stem, R):
    return [os.path.join(d, f"{stem}-{r:05d}-of-{R:05d}.h5") for r in range(R)]


def check_hidden(ref, paths, what):
    """The shards, in rank order, against the single-process dump ref."""
    try:
        fs = [h5py.File(p, "r") for p in paths]
    except OSError as e:
        return check(False, f"{what}: shards open: {e}")
    with h5py.File(ref, "r") as f:
        for name in ("hidden", "tokens", "sample_draw", "sample_window", "sample_doc"):
            got = np.concatenate([g[name][:] for g in fs])
            check(same_bits(got, f[name][:]), f"{what}: /{name} of the shards in rank order "
                  "is the single-process dump's, bit for bit")
        for name in ("layers", "positions"):
            check(all(same_bits(g[name][:], f[name][:]) for g in fs), f"{what}: /{name} in every shard")
        ra = attrs(f)
        for r, g in enumerate(fs):
            ga = attrs(g)
            check(ga.get("shard_rank") == r and ga.get("shard_ranks") == len(fs)
                  and ga.get("complete") == 1 and ga.get("n_complete") == g["tokens"].shape[0],
                  f"{what}: shard {r} says which shard it is and is complete")
            check(all(ga.get(k) == ra[k] for k in ("model_config", "seed", "seq_len", "sampling",
                                                  "command_line", "interventions")),
                  f"{what}: shard {r} has the single-process provenance")
        sizes = [g["tokens"].shape[0] for g in fs]
        check(max(sizes) - min(sizes) <= 1 and sum(sizes) == N, f"{what}: shares {sizes} of {N}")
    for g in fs:
        g.close()


def check_ppl(ref, got, what):
    if not check(os.path.exists(got), f"{what}: {got} written"):
        return
    with h5py.File(ref, "r") as f, h5py.File(got, "r") as g:
        check(same_bits(g["nll"][:], f["nll"][:]), f"{what}: /nll identical")
        check(same_bits(g["tokens"][:], f["tokens"][:]), f"{what}: /tokens identical")
        check(attrs(g) == attrs(f), f"{what}: root attributes identical")
    check(filecmp.cmp(ref[:-3] + ".csv", got[:-3] + ".csv", shallow=False), f"{what}: CSV identical")


REDUCTIONS = ("dist/prob_mean", "dist/logit_mean", "dist/count", "entropy", "sink/mass", "query_count")


def check_attn(ref, got, what, maps=True):
    if not check(os.path.exists(got), f"{what}: {got} written"):
        return
    with h5py.File(ref, "r") as f, h5py.File(got, "r") as g:
        for name in ("tokens", "layers", "heads", "sink/k") + (("maps/probs", "maps/logits") if maps else ()):
            check(same_bits(g[name][:], f[name][:]), f"{what}: /{name} identical")
        worst = 0.0
        for name in REDUCTIONS:
            a, b = f[name][:], g[name][:]
            if not check(a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b)),
                         f"{what}: /{name} shape and NaNs"):
                continue
            m = ~np.isnan(a)
            rel = np.abs(a[m] - b[m]) / np.maximum(np.abs(a[m]), 1e-300)
            worst = max(worst, float(rel.max()) if rel.size else 0.0)
        check(worst <= 1e-12, f"{what}: reductions within 1e-12 relative (max {worst:.3g})")
        print(f"  {what}: reductions max relative difference {worst:.3g}")
        check(attrs(g) == attrs(f), f"{what}: root attributes identical")


def rel(a, b):
    """Max relative difference (inf when shapes or NaN patterns differ)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return np.inf
    m = ~np.isnan(a)
    if not m.any():
        return 0.0
    return float(np.max(np.abs(a[m] - b[m]) / np.maximum(np.abs(a[m]), 1e-300)))


def csv_rel(pa, pb):
    """Max relative difference of the numeric cells of two CSVs; text cells
    must be equal (inf otherwise, or when the shapes differ)."""
    with open(pa, newline="") as f:
        a = list(csv.reader(f))
    with open(pb, newline="") as f:
        b = list(csv.reader(f))
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        return np.inf
    worst = 0.0
    for ra, rb in zip(a, b):
        for x, y in zip(ra, rb):
            try:
                fx, fy = float(x), float(y)
            except ValueError:
                if x != y:
                    return np.inf
                continue
            worst = max(worst, rel([fx], [fy]))
    return worst


STATS_ROWS = ("tokens", "sample_doc", "sample_window", "sample_draw", "layers", "positions",
              "blockinf/metric", "blockinf/span", "blockinf/mean", "blockinf/last",
              "attn/layers", "attn/heads", "attn/sink_k")
STATS_SUMS = ("posvec/sum", "posvec/sumsq", "attn/prob_sum", "attn/logit_sum", "attn/count",
              "attn/entropy_sum", "attn/query_count", "attn/sink_sum")


def datasets(f):
    out = []
    f.visititems(lambda k, v: out.append(k) if isinstance(v, h5py.Dataset) else None)
    return sorted(out)


def check_stats(ref, got, what):
    """A statistics file got against the single-process ref (both complete,
    or both .partial after the same samples): the same datasets, per-sample
    rows bit for bit, sums within 1e-12 relative, the same attributes but
    the command line (-o differs)."""
    if not check(os.path.exists(got), f"{what}: {got} written"):
        return
    with h5py.File(ref, "r") as f, h5py.File(got, "r") as g:
        check(datasets(f) == datasets(g), f"{what}: the same datasets")
        for name in STATS_ROWS:
            if name in f and name in g:
                check(same_bits(f[name][()], g[name][()]), f"{what}: /{name} identical")
        worst = 0.0
        for name in STATS_SUMS:
            if name in f and name in g:
                worst = max(worst, rel(f[name][()], g[name][()]))
        check(worst <= 1e-12, f"{what}: sums within 1e-12 relative (max {worst:.3g})")
        print(f"  {what}: sums max relative difference {worst:.3g}")
        ra, ga = attrs(f), attrs(g)
        ra.pop("command_line", None), ga.pop("command_line", None)
        check(ra == ga, f"{what}: root attributes identical but command_line (n_complete "
              f"{ga.get('n_complete')}, complete {ga.get('complete')})")


def check_stats_analyzers(d1, d, what):
    """strata-blockinf and strata-posvec decompose on d/s.h5 give what they
    give on d1/s.h5, within 1e-12 relative."""
    for sub, args, outs in (("bi", [BLOCKINF, "s.h5", "--metric", "all", "--bootstrap", "50",
                                   "--seed", "5", "-o", "bi.csv", "-q"], ("bi.csv",)),
                            ("pv", [POSVEC, "decompose", "s.h5", "-o", "pv.h5", "-q"],
                             ("pv.h5", "pv.csv"))):
        for dd in (d1, d):
            if not os.path.exists(os.path.join(dd, outs[0])):
                rc, err = in_dir(dd, args)
                check(rc == 0, f"{what}: {os.path.basename(args[0])} in {dd}: rc {rc}: {err.strip()[-300:]}")
        worst = 0.0
        for o in outs:
            a, b = os.path.join(d1, o), os.path.join(d, o)
            if not (os.path.exists(a) and os.path.exists(b)):
                worst = np.inf
            elif o.endswith(".csv"):
                worst = max(worst, csv_rel(a, b))
            else:
                with h5py.File(a, "r") as f, h5py.File(b, "r") as g:
                    if datasets(f) != datasets(g):
                        worst = np.inf
                    for k in datasets(f):
                        if k in g:
                            worst = max(worst, rel(f[k][()], g[k][()]))
        check(worst <= 1e-12, f"{what}: {sub} on the MPI file = on the single-process file "
              f"(max rel {worst:.3g})")


def test(tmp):
    if not check(MPIRUN is not None, "mpirun found (scripts/install-deps.sh installs openmpi-bin)"):
        return
    d1 = os.path.join(tmp, "single")
    os.makedirs(d1)
    hid = [HIDDEN] + COMMON + ["-o", "h.h5"]
    ppl = [PPL] + COMMON + ["-o", "p.h5"]
    attn = [ATTN] + COMMON + ["--maps", "--layers", "0,2,4", "-o", "a.h5"]
    stats = [STATS] + COMMON + ["--angular-n", "1,2", "-o", "s.h5"]
    for cmd in (hid, ppl, attn, stats):
        rc, err = in_dir(d1, cmd)
        check(rc == 0, f"single process {os.path.basename(cmd[0])}: rc {rc}: {err.strip()[-300:]}")
    rc, err = in_dir(d1, [BLOCKINF, "h.h5", "-o", "bi.csv", "-q"])
    check(rc == 0, f"blockinf of the single-process dump: {err.strip()}")

    for R in (2, 3):
        d = os.path.join(tmp, f"np{R}")
        os.makedirs(d)
        rc, err = in_dir(d, mpi(R, hid))
        check(rc == 0, f"mpirun -n {R} probe-hidden: rc {rc}: {err.strip()[-500:]}")
        check(sorted(os.listdir(d)) == sorted(os.path.basename(p) for p in shards(d, "h", R)),
              f"-n {R}: exactly {R} shards written ({os.listdir(d)})")
        check(err.count("wrote ") == 1 and err.count("samples, ") >= 1
              and err.count("7/7 samples") == 1, f"-n {R}: one progress line and one summary: {err!r}")
        check_hidden(os.path.join(d1, "h.h5"), shards(d, "h", R), f"-n {R} probe-hidden")
        rc, err = in_dir(d, [BLOCKINF] + [os.path.basename(p) for p in shards(d, "h", R)]
                         + ["-o", "bi.csv", "-q"])
        check(rc == 0 and filecmp.cmp(os.path.join(d, "bi.csv"), os.path.join(d1, "bi.csv"), shallow=False),
              f"-n {R}: strata-blockinf over the shards gives the single-process CSV: {err.strip()}")

        rc, err = in_dir(d, mpi(R, ppl))
        check(rc == 0, f"mpirun -n {R} probe-ppl: rc {rc}: {err.strip()[-500:]}")
        check(err.count("wrote ") == 1, f"-n {R} probe-ppl: one summary line")
        check_ppl(os.path.join(d1, "p.h5"), os.path.join(d, "p.h5"), f"-n {R} probe-ppl")

        rc, err = in_dir(d, mpi(R, attn))
        check(rc == 0, f"mpirun -n {R} probe-attn: rc {rc}: {err.strip()[-500:]}")
        check_attn(os.path.join(d1, "a.h5"), os.path.join(d, "a.h5"), f"-n {R} probe-attn")

        rc, err = in_dir(d, mpi(R, stats))
        check(rc == 0 and err.count("wrote ") == 1,
              f"mpirun -n {R} probe-stats: rc {rc}, one summary line: {err.strip()[-500:]}")
        check(not any(n.startswith("s-") or n.endswith(".partial") for n in os.listdir(d)),
              f"-n {R} probe-stats: one file, no shards or .partial left")
        check_stats(os.path.join(d1, "s.h5"), os.path.join(d, "s.h5"), f"-n {R} probe-stats")
        check_stats_analyzers(d1, d, f"-n {R} probe-stats")

    # More ranks than samples: idle ranks take part in every round.
    d = os.path.join(tmp, "few")
    os.makedirs(d)
    few = [a if a != str(N) else "2" for a in COMMON]
    rc, err = in_dir(d1, [PPL] + few + ["-o", "p2.h5"])
    rc3, err3 = in_dir(d, mpi(3, [PPL] + few + ["-o", "p2.h5"]))
    check(rc == 0 and rc3 == 0, f"probe-ppl --samples 2 single / -n 3: {err.strip()} {err3.strip()[-300:]}")
    check_ppl(os.path.join(d1, "p2.h5"), os.path.join(d, "p2.h5"), "-n 3 probe-ppl, 2 samples")
    rc, err = in_dir(d1, [STATS] + few + ["-o", "s2.h5"])
    rc3, err3 = in_dir(d, mpi(3, [STATS] + few + ["-o", "s2.h5"]))
    check(rc == 0 and rc3 == 0, f"probe-stats --samples 2 single / -n 3: {err.strip()} {err3.strip()[-300:]}")
    check_stats(os.path.join(d1, "s2.h5"), os.path.join(d, "s2.h5"), "-n 3 probe-stats, 2 samples")
    rc, err = in_dir(d, mpi(3, [HIDDEN] + few + ["-o", "h2.h5"]))
    check(rc == 2 and "fewer than the 3 ranks" in err and err.count("strata-probe-hidden: --samples") == 1,
          f"-n 3 probe-hidden --samples 2: exit 2, said once: rc {rc}: {err.strip()[-300:]}")
    rc, err = in_dir(d, mpi(2, hid + ["--append"]))
    check(rc == 2 and err.count("--append is not supported under mpirun") == 1,
          f"-n 2 probe-hidden --append: exit 2, said once: rc {rc}: {err.strip()[-300:]}")

    # Stop after the agreed round, then resume: the uninterrupted bytes.
    d = os.path.join(tmp, "stop3")
    os.makedirs(d)
    rc, err = in_dir(d, mpi(3, hid), env={"STRATA_STOP_AFTER": "4"})
    parts = [p + ".partial" for p in shards(d, "h", 3)]
    check(rc == 130 and all(os.path.exists(p) for p in parts),
          f"-n 3 probe-hidden STRATA_STOP_AFTER=4: exit 130, 3 .partial shards: rc {rc}: {err.strip()[-300:]}")
    if all(os.path.exists(p) for p in parts):
        nc = [int(h5py.File(p, "r").attrs["n_complete"]) for p in parts]
        check(nc == [2, 2, 2], f"every rank stopped after the same round (2 rounds of 3): {nc}")
    rc, err = in_dir(d, mpi(3, hid + ["--resume"]))
    check(rc == 0 and all(filecmp.cmp(p, q, shallow=False)
                          for p, q in zip(shards(d, "h", 3), shards(os.path.join(tmp, "np3"), "h", 3))),
          f"-n 3 --resume: shards byte-identical to the uninterrupted run: rc {rc}: {err.strip()[-300:]}")

    # A real SIGTERM to mpirun (relayed to every rank) while all are paused:
    # each rank stops after the round, closes its shard and waits in
    # MPI_Finalize, where mpirun's SIGKILL finds it (mpirun exits 1).
    d = os.path.join(tmp, "sig2")
    os.makedirs(d)
    rc, err, paused = run_interrupted(mpi(2, hid, sigkill_timeout=True), 2, signal.SIGTERM, cwd=d)
    parts = [p + ".partial" for p in shards(d, "h", 2)]
    check(paused and rc != 0 and all(os.path.exists(p) for p in parts),
          f"-n 2 SIGTERM to mpirun: stopped, .partial shards kept: rc {rc}, paused {paused}: {err[-300:]}")
    if all(os.path.exists(p) for p in parts):
        nc = [int(h5py.File(p, "r").attrs["n_complete"]) for p in parts]
        check(nc == [1, 1], f"SIGTERM: every rank stopped after the same round: {nc}")
    rc, err = in_dir(d, mpi(2, hid + ["--resume"]))
    check(rc == 0 and all(filecmp.cmp(p, q, shallow=False)
                          for p, q in zip(shards(d, "h", 2), shards(os.path.join(tmp, "np2"), "h", 2))),
          f"-n 2 --resume after SIGTERM: byte-identical shards: rc {rc}: {err.strip()[-300:]}")

    # probe-ppl and probe-attn stopped: the .partial holds the agreed prefix.
    d = os.path.join(tmp, "stopppl")
    os.makedirs(d)
    rc, err = in_dir(d, mpi(2, ppl), env={"STRATA_STOP_AFTER": "3"})
    part = os.path.join(d, "p.h5.partial")
    check(rc == 130 and os.path.exists(part) and not os.path.exists(os.path.join(d, "p.csv")),
          f"-n 2 probe-ppl stopped: exit 130, .partial, no CSV: rc {rc}: {err.strip()[-300:]}")
    if os.path.exists(part):
        with h5py.File(part, "r") as g, h5py.File(os.path.join(d1, "p.h5"), "r") as f:
            k = int(g.attrs["n_complete"])
            check(k == 4 and g.attrs["complete"] == 0 and same_bits(g["nll"][:k], f["nll"][:k]),
                  f"-n 2 probe-ppl stopped: rows 0..{k - 1} (2 rounds of 2) are the single process'")
    d = os.path.join(tmp, "stopattn")
    os.makedirs(d)
    rc1, err1 = in_dir(d1, attn[:-1] + ["a3.h5"], env={"STRATA_STOP_AFTER": "3"})
    rc, err = in_dir(d, mpi(3, attn[:-1] + ["a3.h5"]), env={"STRATA_STOP_AFTER": "3"})
    check(rc1 == 130 and rc == 130, f"probe-attn stopped after 3: single rc {rc1}, -n 3 rc {rc}: {err.strip()[-300:]}")
    ref, got = os.path.join(d1, "a3.h5.partial"), os.path.join(d, "a3.h5.partial")
    if os.path.exists(ref) and os.path.exists(got):
        with h5py.File(got, "r") as g:
            check(int(g.attrs["n_complete"]) == 3, "-n 3 probe-attn stopped: n_complete 3 (one round)")
        check_attn(ref, got, "-n 3 probe-attn stopped after one round", maps=True)
    else:
        check(False, "probe-attn stopped: both .partial files exist")


    # probe-stats stopped under mpirun: the agreed rounds' samples, and
    # --resume (same R, or plainly) gives the single-process file.
    ref = os.path.join(d1, "s.h5")

    def stats_partial(d1, k):
        """The single-process .partial stopped after k samples (made once)."""
        out = os.path.join(d1, f"s{k}.h5.partial")
        if not os.path.exists(out):
            rc, err = in_dir(d1, stats[:-1] + [f"s{k}.h5"], env={"STRATA_STOP_AFTER": str(k)})
            check(rc == 130, f"single process probe-stats stopped after {k}: rc {rc}: {err.strip()[-300:]}")
        return out

    for R, stop, rows, resume_R in ((3, "4", 6, 3), (2, "3", 4, 1)):
        d = os.path.join(tmp, f"stopstats{R}")
        os.makedirs(d)
        rc, err = in_dir(d, mpi(R, stats), env={"STRATA_STOP_AFTER": stop})
        part = os.path.join(d, "s.h5.partial")
        check(rc == 130 and os.path.exists(part) and not os.path.exists(os.path.join(d, "s.h5")),
              f"-n {R} probe-stats STRATA_STOP_AFTER={stop}: exit 130, .partial: rc {rc}: {err.strip()[-300:]}")
        if os.path.exists(part):
            with h5py.File(part, "r") as g:
                check(int(g.attrs["n_complete"]) == rows, f"-n {R} probe-stats stopped: n_complete "
                      f"{int(g.attrs['n_complete'])}, the agreed rounds' {rows}")
            check_stats(stats_partial(d1, rows), part, f"-n {R} probe-stats stopped after {rows} samples")
        cmd = stats + ["--resume"]
        rc, err = in_dir(d, mpi(resume_R, cmd) if resume_R > 1 else cmd)
        check(rc == 0, f"-n {R} probe-stats resumed with R={resume_R}: rc {rc}: {err.strip()[-300:]}")
        check_stats(ref, os.path.join(d, "s.h5"), f"-n {R} probe-stats stopped, resumed with R={resume_R}")

    # --checkpoint 0: the sums reduced to rank 0 and saved after every round
    # (the other ranks restart from zero); stopped, then resumed with another R.
    d = os.path.join(tmp, "ckstats")
    os.makedirs(d)
    ck = stats[:-2] + ["--checkpoint", "0", "-o", "s.h5"]
    rc, err = in_dir(d, mpi(3, ck))
    check(rc == 0, f"-n 3 probe-stats --checkpoint 0: rc {rc}: {err.strip()[-300:]}")
    with h5py.File(os.path.join(d, "s.h5"), "r") as g:
        check("checkpoint" in attrs(g)["command_line"], "--checkpoint in the command line")
    # (the command line differs; check_stats ignores it)
    check_stats(ref, os.path.join(d, "s.h5"), "-n 3 probe-stats --checkpoint 0")
    os.remove(os.path.join(d, "s.h5"))
    rc, err = in_dir(d, mpi(3, ck), env={"STRATA_STOP_AFTER": "4"})
    check(rc == 130, f"-n 3 probe-stats --checkpoint 0 stopped: rc {rc}: {err.strip()[-300:]}")
    rc, err = in_dir(d, mpi(2, ck + ["--resume"]))
    check(rc == 0, f"... resumed with -n 2: rc {rc}: {err.strip()[-300:]}")
    check_stats(ref, os.path.join(d, "s.h5"), "-n 3 probe-stats --checkpoint 0 stopped, resumed with -n 2")

    # A real SIGTERM to mpirun while every rank is paused after an agreed
    # round: the statistics of those samples are saved; --resume completes.
    d = os.path.join(tmp, "sigstats")
    os.makedirs(d)
    rc, err, paused = run_interrupted(mpi(2, stats, sigkill_timeout=True), 2, signal.SIGTERM, cwd=d)
    part = os.path.join(d, "s.h5.partial")
    check(paused and rc != 0 and os.path.exists(part),
          f"-n 2 probe-stats SIGTERM to mpirun: stopped, .partial kept: rc {rc}, paused {paused}: {err[-300:]}")
    if os.path.exists(part):
        check_stats(stats_partial(d1, 2), part, "-n 2 probe-stats after SIGTERM")
    rc, err = in_dir(d, mpi(2, stats + ["--resume"]))
    check(rc == 0, f"-n 2 probe-stats --resume after SIGTERM: rc {rc}: {err.strip()[-300:]}")
    check_stats(ref, os.path.join(d, "s.h5"), "-n 2 probe-stats resumed after SIGTERM")


if __name__ == "__main__":
    main("test_mpi", test)
