"""test_mpi_analyzers.py — the analyzers that read raw dumps, under mpirun
(issue 12): strata-blockinf and strata-posvec decompose split the samples
over the ranks and reduce to rank 0, which alone writes.

Checked against a single process on the same dump (stories260K, 7 samples x
48 tokens, all sites): strata-blockinf's scores CSV (all five metrics, the
seeded bootstrap, rank stability) and its pruning plan are byte-identical
with 2 and 3 ranks (a sample's row does not depend on which rank computes
it); strata-posvec decompose's positional vectors, sums and mean |c| agree
within 1e-12 relative (float64 summation order differs), layers and
positions exactly; the dump shards of an mpirun probe run read the same."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycheck import BINDIR, CORPUS, SAN, STORIES, TOK, check, main, run  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

os.environ.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                   "OMPI_MCA_btl_vader_single_copy_mechanism": "none"})
if SAN:  # Open MPI's thread allocations are matched by stack (lib/cli/lsan-mpi.supp)
    os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":fast_unwind_on_malloc=0"
MPIRUN = shutil.which("mpirun")
HIDDEN = os.path.join(BINDIR, "strata-probe-hidden")
BLOCKINF = os.path.join(BINDIR, "strata-blockinf")
POSVEC = os.path.join(BINDIR, "strata-posvec")


def mpi(n, cmd):
    return [MPIRUN, "--oversubscribe", "--mca", "btl", "self,vader", "-n", str(n)] + cmd


def same_bytes(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def body(tmp):
    if not check(MPIRUN is not None, "mpirun found (scripts/install-deps.sh installs openmpi-bin)"):
        return
    dump = os.path.join(tmp, "d.h5")
    rc, _, err = run([HIDDEN, "--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS,
                      "--samples", "7", "--seq-len", "48", "--seed", "5",
                      "--sites", "resid,attn_out,mlp_out", "-q", "-o", dump])
    if not check(rc == 0, f"dump: {err}"):
        return
    bi = ["--metric", "all", "--bootstrap", "100", "--seed", "3", "-q"]
    ref = os.path.join(tmp, "bi1.csv")
    rc, _, err = run([BLOCKINF, dump] + bi + ["-o", ref])
    check(rc == 0, f"blockinf single process: {err}")
    plan1 = os.path.join(tmp, "plan1.json")
    rc, _, err = run([BLOCKINF, "plan", dump, "--remove", "2", "-q", "-o", plan1])
    check(rc == 0, f"blockinf plan single process: {err}")
    pv1 = os.path.join(tmp, "pv1.h5")
    rc, _, err = run([POSVEC, "decompose", dump, "-q", "-o", pv1])
    check(rc == 0, f"decompose single process: {err}")
    for n in (2, 3):
        out = os.path.join(tmp, f"bi{n}.csv")
        rc, _, err = run(mpi(n, [BLOCKINF, dump] + bi + ["-o", out]))
        check(rc == 0 and os.path.exists(out) and same_bytes(ref, out),
              f"blockinf -n {n}: the scores CSV equals the single process's byte for byte ({err[-300:]})")
        plan = os.path.join(tmp, f"plan{n}.json")
        rc, _, err = run(mpi(n, [BLOCKINF, "plan", dump, "--remove", "2", "-q", "-o", plan]))
        if check(rc == 0 and os.path.exists(plan), f"blockinf plan -n {n}: {err[-300:]}"):
            with open(plan1) as f, open(plan) as g:
                a, b = f.read(), g.read()
            # the plan records its command line; everything else must match
            strip = lambda s: "\n".join(x for x in s.splitlines() if "command_line" not in x)  # noqa: E731
            check(strip(a) == strip(b), f"blockinf plan -n {n} equals the single process's")
        pv = os.path.join(tmp, f"pv{n}.h5")
        rc, _, err = run(mpi(n, [POSVEC, "decompose", dump, "-q", "-o", pv]))
        if not check(rc == 0 and os.path.exists(pv), f"decompose -n {n}: {err[-300:]}"):
            continue
        with h5py.File(pv1, "r") as f, h5py.File(pv, "r") as g:
            worst = 0.0
            for name in f:
                a, b = f[name][:], g[name][:] if name in g else None
                if b is None or a.shape != b.shape:
                    check(False, f"decompose -n {n}: /{name} present with the same shape")
                    continue
                if a.dtype.kind == "f":
                    rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-300)
                    worst = max(worst, float(rel.max()) if rel.size else 0.0)
                else:
                    check(np.array_equal(a, b), f"decompose -n {n}: /{name} identical")
            check(worst <= 1e-12, f"decompose -n {n}: within 1e-12 relative (max {worst:.3g})")
            check(int(g.attrs["n_samples"]) == 7, f"decompose -n {n}: counts all 7 samples")
            print(f"decompose -n {n}: max relative difference {worst:.3g}")


if __name__ == "__main__":
    main("test_mpi_analyzers", body)
