"""test_pipeline.py — strata-probe-hidden --pipeline under mpirun (issue 12):
the blocks, not the samples, are split over the ranks (for a model that does
not fit one machine); rank r runs its share of the blocks on the residual
stream rank r-1 sends it, and rank 0 writes one dump.

Checked against a single process on the same samples, bit for bit: every
boundary, the attention and MLP outputs of every block, the tokens and the
sample origins, with 2 and 3 ranks (stories260K, 5 blocks: shares 3+2 and
2+2+1), with a --layers/--positions selection, and on a generated 12-block
GQA model with 3 ranks; a run stopped by SIGTERM after 2 samples (the
STRATA_TEST_PAUSE_AFTER event, never a timer) leaves a .partial with 2
samples that --resume completes to the same data."""
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycheck import BINDIR, BUILD, CORPUS, SAN, STORIES, TOK, check, main, run, run_interrupted  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

HIDDEN = os.path.join(BINDIR, "strata-probe-hidden")
MKMODEL = os.path.join(BUILD, "tests", "mkmodel")
os.environ.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                   "OMPI_MCA_btl_vader_single_copy_mechanism": "none"})
if SAN:  # Open MPI's thread allocations are matched by stack (lib/cli/lsan-mpi.supp)
    os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":fast_unwind_on_malloc=0"
MPIRUN = shutil.which("mpirun")
DATA = ("hidden", "attn_out", "mlp_out", "tokens", "sample_draw", "sample_window", "sample_doc",
        "layers", "positions")


def mpi(n, cmd):
    return [MPIRUN, "--oversubscribe", "--mca", "btl", "self,vader",
            "--mca", "odls_base_sigkill_timeout", "5", "-n", str(n)] + cmd


def same(ref, got, what):
    if not check(os.path.exists(got), f"{what}: {got} written"):
        return
    with h5py.File(ref, "r") as f, h5py.File(got, "r") as g:
        for name in DATA:
            if name not in f:
                continue
            a, b = f[name][:], g[name][:] if name in g else None
            check(b is not None and a.shape == b.shape and a.tobytes() == b.tobytes(),
                  f"{what}: /{name} equals the single process's bit for bit")
        check(int(g.attrs["complete"]) == 1 and int(g.attrs["n_complete"]) == f["tokens"].shape[0],
              f"{what}: complete")


def body(tmp):
    if not check(MPIRUN is not None, "mpirun found (scripts/install-deps.sh installs openmpi-bin)"):
        return
    base = ["--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS, "--samples", "5",
            "--seq-len", "64", "--seed", "4", "--sites", "resid,attn_out,mlp_out", "-q"]
    ref = os.path.join(tmp, "one.h5")
    rc, _, err = run([HIDDEN] + base + ["-o", ref])
    check(rc == 0, f"single process: {err}")
    for n in (2, 3):
        out = os.path.join(tmp, f"p{n}.h5")
        rc, _, err = run(mpi(n, [HIDDEN] + base + ["--pipeline", "-o", out]))
        check(rc == 0, f"--pipeline -n {n}: exit {rc}: {err[-400:]}")
        same(ref, out, f"--pipeline -n {n}")
        check(not any(f.startswith(f"p{n}-") for f in os.listdir(tmp)), f"-n {n}: one file, no shards")

    sel = ["--layers", "0,2,5", "--positions", "0-31:2,40"]
    ref_s = os.path.join(tmp, "one_sel.h5")
    rc, _, err = run([HIDDEN] + base + sel + ["-o", ref_s])
    check(rc == 0, f"single process, selection: {err}")
    out = os.path.join(tmp, "p2_sel.h5")
    rc, _, err = run(mpi(2, [HIDDEN] + base + sel + ["--pipeline", "-o", out]))
    check(rc == 0, f"--pipeline with a selection: {err[-400:]}")
    same(ref_s, out, "--pipeline -n 2 with --layers/--positions")

    # a deeper GQA model: 12 blocks over 3 ranks
    model = os.path.join(tmp, "m12.bin")
    rc, _, err = run([MKMODEL, "--dim", "96", "--hidden", "192", "--layers", "12", "--heads", "6",
                      "--kv-heads", "2", "--vocab", "512", "--seq-len", "128", "--seed", "8", "-o", model])
    if check(rc == 0, f"mkmodel: {err}"):
        gen = ["--model", model, "--tokenizer", TOK, "--corpus", CORPUS, "--samples", "4",
               "--seq-len", "96", "--sites", "resid,mlp_out", "-q"]
        ref_g = os.path.join(tmp, "one_g.h5")
        rc, _, err = run([HIDDEN] + gen + ["-o", ref_g])
        check(rc == 0, f"single process, 12 blocks: {err}")
        out = os.path.join(tmp, "p3_g.h5")
        rc, _, err = run(mpi(3, [HIDDEN] + gen + ["--pipeline", "-o", out]))
        check(rc == 0, f"--pipeline -n 3, 12 blocks: {err[-400:]}")
        same(ref_g, out, "--pipeline -n 3 on 12 blocks")

    # stopped after 2 samples (rank 0's pause event), then resumed
    d = os.path.join(tmp, "stop")
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, "p.h5")
    rc, err, paused = run_interrupted(mpi(2, [HIDDEN] + base + ["--pipeline", "-o", out]), 2,
                                      signal.SIGTERM)
    check(paused and rc != 0, f"--pipeline stopped after its pause (rc {rc}): {err[-300:]}")
    if check(os.path.exists(out + ".partial") and not os.path.exists(out), "stopped: only .partial"):
        with h5py.File(out + ".partial", "r") as f:
            check(int(f.attrs["n_complete"]) == 2 and int(f.attrs["complete"]) == 0,
                  "the .partial holds the 2 samples completed before the stop")
    rc, _, err = run(mpi(2, [HIDDEN] + base + ["--pipeline", "--resume", "-o", out]))
    check(rc == 0, f"--pipeline --resume: {err[-400:]}")
    same(ref, out, "stopped + resumed --pipeline")


if __name__ == "__main__":
    main("test_pipeline", body)
