#!/usr/bin/python3
"""test_h5schema.py — dumps written by lib/h5io.c match docs/FORMAT.md, as
seen by an independent reader (h5py) and by h5dump.

Runs "$BUILD/tests/test_h5io" (twice, more than a second apart) with its own
STRATA_TMP; that program leaves schema_f32.h5, schema_f16.h5,
schema_split.h5 and schema_partial.h5.partial behind, filled with the
formula value_at(s, l, t, d) and token_at(s, t) below. Checks names, shapes,
dtypes, values, attributes and their types, dimension labels, the chunk
rule, compression, and that the two runs gave the same bytes (no time
stamps). Prints "test_h5schema: N passed, N failed".
"""
import math
import os
import shutil
import subprocess
import tempfile
import time
import traceback

from pycheck import check, done as finish  # noqa: E402


def done():
    finish("test_h5schema")


try:
    import h5py
    import numpy as np
except ImportError as e:  # a missing package is a failure, not a skip
    check(False, f"import h5py/numpy: {e} (install python3-h5py python3-numpy)")
    done()

FORMAT = "strata-dump/2"
MiB = 1 << 20


def text(a, key):
    """String attribute `key` of attrs a as str, if it is one strata writes:
    fixed-length (h5py returns numpy.bytes_), NUL-terminated, UTF-8; None
    otherwise (absent, another type, or variable-length)."""
    if key not in a:
        return None
    t = a.get_id(key).dtype
    if t.kind != "S" or not isinstance(a[key], bytes):
        return None
    return a[key].decode("utf-8")


def value_at(s, l, t, d):
    """float32 array of the formula in tests/test_h5io.c, same rounding."""
    n = (s * 131 + l * 31 + t * 7 + d * 3) % 1009 - 504
    return n.astype(np.float32) / np.float32(3)


def expected_hidden(shape):
    s, l, t, d = np.meshgrid(*[np.arange(n, dtype=np.int64) for n in shape], indexing="ij")
    return value_at(s, l, t, d)


def expected_tokens(shape):
    s, t = np.meshgrid(*[np.arange(n, dtype=np.int64) for n in shape], indexing="ij")
    return ((s * 37 + t * 11) % 512).astype(np.int32)


def chunk_rule(n_layers, seq_len, dim, esize):
    """docs/FORMAT.md, "Chunking"."""
    layer = seq_len * dim * esize
    if layer > 4 * MiB:
        pieces = math.ceil(layer / MiB)
        return (1, 1, math.ceil(seq_len / pieces), dim)
    return (1, max(1, min(n_layers, MiB // layer)), seq_len, dim)


# name: (shape (N, L+1, T, D), dtype, gzip level or None, samples written, complete)
FILES = {
    "schema_f32.h5": ((2, 6, 64, 1024), np.float32, None, 2, 1),
    "schema_f16.h5": ((3, 5, 16, 8), np.float16, None, 3, 1),
    "schema_split.h5": ((2, 2, 2100, 1024), np.float16, 1, 2, 1),
    "schema_partial.h5.partial": ((3, 5, 16, 8), np.float16, None, 1, 0),
}


def check_file(path, shape, dtype, gzip, n_written, complete):
    name = os.path.basename(path)
    with h5py.File(path, "r") as f:
        # /boundary, /position, /sample (coordinates) and /dim, /token (dimensions without
        # one) are the netCDF-4 dimensions (docs/FORMAT.md, "Dimensions")
        check(sorted(f.keys()) == ["boundary", "dim", "hidden", "layers", "position", "positions",
                                   "sample", "sample_doc", "sample_draw", "sample_window", "token",
                                   "tokens"], f"{name}: datasets {sorted(f.keys())}")
        check(np.array_equal(f["layers"][:], np.arange(shape[1])) and f["layers"].dtype == "<i4",
              f"{name}: /layers lists every boundary")
        check(np.array_equal(f["positions"][:], np.arange(shape[2]))
              and f["positions"].dtype == "<i4", f"{name}: /positions lists every position")
        for k in ("sample_doc", "sample_draw", "sample_window"):
            check(f[k].shape == (shape[0],) and f[k].dtype == "<i8" and f[k].maxshape == (None,)
                  and [x.label for x in f[k].dims] == ["sample"], f"{name}: /{k} (N) int64")
        a = f.attrs
        for key, typ in [("format", str), ("n_complete", np.int64), ("complete", np.int64),
                         ("strata_version", str), ("command_line", str), ("model_config", str),
                         ("dtype", str), ("seed", np.int64)]:
            check(key in a and (text(a, key) is not None if typ is str else type(a[key]) is typ),
                  f"{name}: attribute {key} is {type(a.get(key)).__name__}, want "
                  f"{'a fixed-length string' if typ is str else typ.__name__}")
        check(text(a, "format") == FORMAT, f"{name}: format {a.get('format')!r}")
        check(a.get("n_complete") == n_written, f"{name}: n_complete {a.get('n_complete')}")
        check(a.get("complete") == complete, f"{name}: complete {a.get('complete')}")
        check(text(a, "dtype") == ("f16" if dtype == np.float16 else "f32"), f"{name}: dtype attr")
        check(a.get("seed") == 42, f"{name}: seed")

        h, t = f["hidden"], f["tokens"]
        check(h.shape == shape, f"{name}: hidden shape {h.shape}")
        check(h.dtype == np.dtype(dtype), f"{name}: hidden dtype {h.dtype}")
        check(h.dtype.byteorder in ("<", "="), f"{name}: hidden byte order")
        check(t.shape == (shape[0], shape[2]), f"{name}: tokens shape {t.shape}")
        check(t.dtype == np.dtype("<i4"), f"{name}: tokens dtype {t.dtype}")
        check([d.label for d in h.dims] == ["sample", "boundary", "position", "dim"],
              f"{name}: hidden labels {[d.label for d in h.dims]}")
        check([d.label for d in t.dims] == ["sample", "token"],
              f"{name}: tokens labels {[d.label for d in t.dims]}")

        want_chunks = chunk_rule(shape[1], shape[2], shape[3], np.dtype(dtype).itemsize)
        check(h.chunks == want_chunks, f"{name}: chunks {h.chunks}, rule says {want_chunks}")
        check(h.compression == ("gzip" if gzip else None), f"{name}: compression {h.compression}")
        if gzip:
            check(h.compression_opts == gzip, f"{name}: gzip level {h.compression_opts}")
            check(h.shuffle, f"{name}: shuffle before gzip")
        check(t.compression is None and t.maxshape == (None, shape[2])
              and t.chunks[1] == shape[2], f"{name}: tokens raw, whole rows, growable")
        check(h.maxshape == (None,) + shape[1:], f"{name}: hidden grows along samples only")

        # values: written samples equal the formula (f16: numpy's rounding)
        want = expected_hidden((n_written,) + shape[1:])
        if dtype == np.float16:
            want = want.astype(np.float16)
        got = h[:n_written]
        check(np.array_equal(got.view(np.uint16 if dtype == np.float16 else np.uint32),
                             want.view(np.uint16 if dtype == np.float16 else np.uint32)),
              f"{name}: hidden values differ from the formula "
              f"(max |diff| {np.max(np.abs(got.astype(np.float64) - want)):.3g})")
        check(np.array_equal(t[:n_written], expected_tokens((n_written, shape[2]))),
              f"{name}: tokens differ from the formula")
        # unwritten samples hold the fill value 0
        if n_written < shape[0]:
            check(not np.any(h[n_written:]) and not np.any(t[n_written:]),
                  f"{name}: unwritten samples are not zero")

    r = subprocess.run(["h5dump", "-H", path], capture_output=True, text=True)
    check(r.returncode == 0, f"h5dump -H {name}: exit {r.returncode}: {r.stderr[:300]}")
    check('DATASET "hidden"' in r.stdout and 'DATASET "tokens"' in r.stdout,
          f"h5dump -H {name}: datasets not listed")
    r = subprocess.run(["h5dump", "-a", "/format", path], capture_output=True, text=True)
    check(r.returncode == 0 and FORMAT in r.stdout, f"h5dump -a /format {name}")
    r = subprocess.run(["h5dump", "-d", "/tokens", "-s", "0,0", "-c", "1,3", path],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "(0,0): 0, 11, 22" in r.stdout,
          f"h5dump -d /tokens {name}: {r.stdout[-200:]}")


def check_probe_dump(tmp):
    """A real dump from strata-probe-hidden with every site, f16 and
    selections, against docs/FORMAT.md: datasets, shapes, types, labels,
    chunks, the root attributes of the provenance table and their types."""
    bindir = os.environ.get("BINDIR", "bin")
    shared = os.environ.get("SHARED", os.path.join("..", "shared"))
    out = os.path.join(tmp, "probe.h5")
    r = subprocess.run([os.path.join(bindir, "strata-probe-hidden"), "--model",
                        os.path.join(shared, "models/stories260K/stories260K.bin"),
                        "--tokenizer", os.path.join(shared, "models/stories260K/tok512.bin"),
                        "--corpus", os.path.join(shared, "corpora/tinystories-val-1000.txt"),
                        "--samples", "3", "--seq-len", "64", "--layers", "1,3-5",
                        "--positions", "0-9,10-63:9", "--sites", "resid,attn_out,mlp_out",
                        "--dtype", "f16", "-o", out], capture_output=True, text=True)
    check(r.returncode == 0, f"probe-hidden: {r.stderr[-300:]}")
    if r.returncode:
        return
    with h5py.File(out, "r") as f:
        check(sorted(f.keys()) == ["attn_out", "block", "blocks", "boundary", "dim", "hidden",
                                   "layers", "mlp_out", "position", "positions", "sample",
                                   "sample_doc", "sample_draw", "sample_window", "token",
                                   "tokens"], f"probe dump datasets {sorted(f.keys())}")
        lay, blk, pos = f["layers"][:], f["blocks"][:], f["positions"][:]
        check(list(lay) == [1, 3, 4, 5] and list(blk) == [1, 3, 4], f"layers {lay} blocks {blk}")
        check(list(pos) == list(range(10)) + list(range(10, 64, 9)), f"positions {pos}")
        P = len(pos)
        for k, n, lab in (("hidden", 4, "boundary"), ("attn_out", 3, "block"),
                          ("mlp_out", 3, "block")):
            d = f[k]
            check(d.shape == (3, n, P, 64) and d.dtype == np.float16, f"/{k} {d.shape} {d.dtype}")
            check([x.label for x in d.dims] == ["sample", lab, "position", "dim"], f"/{k} labels")
            check(d.chunks == chunk_rule(n, P, 64, 2), f"/{k} chunks {d.chunks}")
            check(np.all(np.isfinite(d[:])), f"/{k} finite")
        check(f["tokens"].shape == (3, 64) and np.all(f["tokens"][:, 0] == 1), "tokens, BOS first")
        a = f.attrs
        strings = ["format", "strata_version", "command_line", "model_path", "model_config",
                   "tokenizer_path", "corpus_path", "corpus_format", "separator", "jsonl_field",
                   "seed", "seq_len", "sample_offset", "layers_spec", "positions_spec", "sites",
                   "dtype", "interventions", "sampling"]
        for key in strings:
            check(text(a, key) is not None, f"probe attribute {key}: {type(a.get(key))}")
        for key in ("n_complete", "complete", "n_windows"):
            check(key in a and type(a[key]) is np.int64, f"probe attribute {key}")
        check(text(a, "format") == FORMAT and a["complete"] == 1 and a["n_complete"] == 3
              and text(a, "sites") == "resid,attn_out,mlp_out" and text(a, "dtype") == "f16"
              and text(a, "corpus_format") == "text", "probe attribute values")
        draws = f["sample_draw"][:]
        check(sorted(draws) == [0, 1, 2] and np.all(np.diff(f["sample_window"][:]) > 0),
              f"draws 0..2 kept in stream order: {draws}")


def main():
    build = os.environ.get("BUILD", "build")
    prog = os.path.join(build, "tests", "test_h5io")
    if not os.access(prog, os.X_OK):
        check(False, f"{prog} not built (run make all)")
        done()
    if shutil.which("h5dump") is None:
        check(False, "h5dump not found (install hdf5-tools)")
        done()
    base = os.environ.get("STRATA_TMP") or None
    top = tempfile.mkdtemp(prefix="h5schema.", dir=base)
    try:
        runs = []
        for i in range(2):
            d = os.path.join(top, f"run{i}")
            os.mkdir(d)
            if runs:  # time stamps have a resolution of one second
                time.sleep(max(0.0, runs[-1][1] + 1.1 - time.time()))
            t0 = time.time()
            env = dict(os.environ, STRATA_TMP=d)
            r = subprocess.run([prog], env=env, capture_output=True, text=True)
            check(r.returncode == 0, f"{prog} run {i}: exit {r.returncode}\n{r.stdout}{r.stderr}")
            runs.append((d, t0))
        d0, d1 = runs[0][0], runs[1][0]
        for name, spec in FILES.items():
            p0, p1 = os.path.join(d0, name), os.path.join(d1, name)
            check(os.path.isfile(p0), f"{name} not written by test_h5io")
            if not os.path.isfile(p0):
                continue
            try:
                check_file(p0, *spec)
            except Exception:
                check(False, f"{name}: {traceback.format_exc()}")
            with open(p0, "rb") as a, open(p1, "rb") as b:
                check(a.read() == b.read(), f"{name}: two identical runs gave different bytes")
        try:
            check_probe_dump(top)
        except Exception:
            check(False, f"probe dump: {traceback.format_exc()}")
        check(not os.path.exists(os.path.join(d0, "schema_partial.h5")),
              "unfinished dump appeared under its final name")
    finally:
        shutil.rmtree(top, ignore_errors=True)
    done()


if __name__ == "__main__":
    main()
