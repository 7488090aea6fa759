#!/usr/bin/python3
"""test_netcdf.py — every HDF5 file strata writes is a netCDF-4 file that
xarray opens with engine="h5netcdf" and engine="netcdf4" (issue 14;
docs/FORMAT.md, "Dimensions" and "Opening in xarray").

Files, all from stories260K with shapes chosen so that axes of different
meaning have equal lengths (the case where readers without dimension
scales merge them into one phony_dim):
- a hidden-state dump (strata-probe-hidden, every site): N = Lk = Bk = P = 4,
  T = 8; and the same dump after --append of 2 samples;
- an attention file (strata-probe-attn --maps): N = Ls = Hs = K = 3, T = 8;
- a perplexity file (strata-probe-ppl): the dump's samples, T = 8;
- a statistics file (strata-probe-stats, all groups): the attention file's
  samples, Lk = P = Ls = Hs = Ks = 3;
- a positional-vector file (strata-posvec decompose of the dump).

For each file, each group and each engine:
- no dimension is a phony_dim_N, and the group's variables are exactly the
  datasets of docs/FORMAT.md (the placeholders of dimensions without a
  coordinate are not variables);
- every variable has the dimensions docs/FORMAT.md names, in order, and
  no variable repeats a dimension; dimension lengths are the run's;
- the coordinates are the expected variables and their values equal what
  h5py reads from the file and what they copy (/sample = /sample_draw,
  /boundary = /layers, /block = /blocks or /layers, /head = /heads,
  /position = /positions; the perplexity file's samples are the dump's
  draws, the statistics file's the attention file's);
- every variable's values and dtype equal h5py's (NaN where NaN; no
  fill-value masking, no conversion);
- every string attribute (root and variables) reads as str equal to what
  h5py reads, and strata wrote it fixed-length (h5py: numpy.bytes_).
With h5py: each axis of each variable has exactly one dimension scale
attached, labelled with its name; a dimension without a coordinate is the
netCDF placeholder ("This is a netCDF dimension but not a netCDF variable.")
and _Netcdf4Dimid numbers the dimensions of the file without repeats.

Skipped (no checks) only if xarray cannot be imported; a missing engine
(python3-h5netcdf, python3-netcdf4) is a failure.
Prints "test_netcdf: N passed, N failed" last.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pycheck import BINDIR, CORPUS, STORIES, TOK, check, done, main, run  # noqa: E402

try:
    import xarray as xr
except ImportError as e:
    print(f"test_netcdf: skipped, xarray is not importable ({e}); install python3-xarray "
          "python3-h5netcdf python3-netcdf4")
    done("test_netcdf")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

HIDDEN = os.path.join(BINDIR, "strata-probe-hidden")
ATTN = os.path.join(BINDIR, "strata-probe-attn")
PPL = os.path.join(BINDIR, "strata-probe-ppl")
STATS = os.path.join(BINDIR, "strata-probe-stats")
POSVEC = os.path.join(BINDIR, "strata-posvec")
MODEL = ["--model", STORIES, "--tokenizer", TOK, "--corpus", CORPUS, "--seed", "3"]
ENGINES = ("h5netcdf", "netcdf4")
NOT_A_VARIABLE = b"This is a netCDF dimension but not a netCDF variable."
L, D = 5, 64  # stories260K: blocks, width

# Per file kind, per group: {variable: dimensions} as docs/FORMAT.md names
# them (coordinates included: a coordinate's dimension is itself).
DUMP = {"/": {
    "hidden": ("sample", "boundary", "position", "dim"),
    "attn_out": ("sample", "block", "position", "dim"),
    "mlp_out": ("sample", "block", "position", "dim"),
    "tokens": ("sample", "token"),
    "layers": ("boundary",), "blocks": ("block",), "positions": ("position",),
    "sample_doc": ("sample",), "sample_window": ("sample",), "sample_draw": ("sample",),
    "sample": ("sample",), "boundary": ("boundary",), "block": ("block",),
    "position": ("position",)}}
ATTN_FILE = {
    "/": {"tokens": ("sample", "token"), "layers": ("block",), "heads": ("head",),
          "entropy": ("block", "head", "query"), "query_count": ("block", "head", "query"),
          "sample": ("sample",), "block": ("block",), "head": ("head",)},
    "/dist": {"prob_mean": ("block", "head", "distance"),
              "logit_mean": ("block", "head", "distance"),
              "count": ("block", "head", "distance"), "distance": ("distance",)},
    "/sink": {"mass": ("block", "head", "k", "query"), "k": ("k",)},
    "/maps": {"probs": ("sample", "block", "head", "query", "key"),
              "logits": ("sample", "block", "head", "query", "key")}}
PPL_FILE = {"/": {"nll": ("sample", "target"), "tokens": ("sample", "token"),
                  "sample": ("sample",), "target": ("target",)}}
STATS_FILE = {
    "/": {"tokens": ("sample", "token"), "layers": ("boundary",), "positions": ("position",),
          "sample_doc": ("sample",), "sample_window": ("sample",), "sample_draw": ("sample",),
          "sample": ("sample",), "boundary": ("boundary",), "position": ("position",)},
    "/posvec": {"sum": ("boundary", "position", "dim"), "sumsq": ("boundary", "position")},
    "/blockinf": {"metric": ("row",), "span": ("row",), "mean": ("sample", "row", "block"),
                  "last": ("sample", "row", "block"), "block": ("block",)},
    "/attn": {"layers": ("block",), "heads": ("head",),
              "prob_sum": ("block", "head", "distance"),
              "logit_sum": ("block", "head", "distance"),
              "count": ("block", "head", "distance"),
              "entropy_sum": ("block", "head", "query"),
              "query_count": ("block", "head", "query"),
              "sink_sum": ("block", "head", "sink_k", "query"),
              "block": ("block",), "head": ("head",), "sink_k": ("sink_k",),
              "distance": ("distance",)}}
PV_FILE = {"/": {"positional": ("boundary", "position", "dim"),
                 "sum": ("boundary", "position", "dim"),
                 "sumsq": ("boundary", "position"), "semantic_norm": ("boundary", "position"),
                 "layers": ("boundary",), "positions": ("position",),
                 "boundary": ("boundary",), "position": ("position",)}}


def produce(label, cmd, out):
    rc, _, err = run(cmd)
    return check(rc == 0 and os.path.isfile(out), f"{label}: exit {rc}: {err.strip()[-400:]}")


def h5_text(attrs, key):
    """(is fixed-length, value as str) of a string attribute read by h5py."""
    v = attrs[key]
    fixed = attrs.get_id(key).dtype.kind == "S"
    return fixed, v.decode("utf-8") if isinstance(v, bytes) else v


def same_values(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def check_attrs(label, xattrs, hattrs):
    """String attributes: str in xarray, equal to h5py's, fixed-length as
    strata writes them (unless beyond the fixed-length limit of 63 KiB)."""
    for key in hattrs:
        if key in ("DIMENSION_LIST", "DIMENSION_LABELS", "REFERENCE_LIST", "CLASS", "NAME",
                   "_Netcdf4Dimid"):
            continue
        if isinstance(hattrs[key], (bytes, str)):
            fixed, want = h5_text(hattrs, key)
            check(fixed or len(want) >= 63 << 10, f"{label}: attribute {key} is fixed-length")
            got = xattrs.get(key)
            check(isinstance(got, str) and got == want,
                  f"{label}: attribute {key} reads as str {want!r:.60}, got {got!r:.60}")
        else:
            check(key in xattrs and np.array_equal(np.asarray(xattrs[key]),
                                                   np.asarray(hattrs[key])),
                  f"{label}: attribute {key} = {hattrs[key]!r}, got {xattrs.get(key)!r}")


def check_scales(label, path, layout):
    """The HDF5 side of netCDF-4: scales attached to every axis, labels,
    placeholders, _Netcdf4Dimid."""
    with h5py.File(path, "r") as f:
        dimids = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.attrs.get("CLASS") == b"DIMENSION_SCALE":
                dimids.append(int(obj.attrs["_Netcdf4Dimid"]))
                base = name.split("/")[-1]
                nm = obj.attrs.get("NAME", b"")
                check(nm == base.encode() or nm.startswith(NOT_A_VARIABLE),
                      f"{label}: scale /{name} NAME {nm!r}")
        f.visititems(visit)
        check(len(dimids) == len(set(dimids)), f"{label}: _Netcdf4Dimid repeats: {dimids}")
        for group, variables in layout.items():
            for var, dims in variables.items():
                full = (group.rstrip("/") + "/" + var).lstrip("/")
                if not check(full in f, f"{label}: /{full} exists"):
                    continue
                d = f[full]
                if var == dims[0] and len(dims) == 1:  # a coordinate is a scale itself
                    check(h5py.h5ds.is_scale(d.id), f"{label}: coordinate /{full} is a scale")
                    continue
                scales = [[s.name.split("/")[-1] for s in d.dims[i].values()]
                          for i in range(d.ndim)]
                check(scales == [[x] for x in dims],
                      f"{label}: /{full} scales {scales}, want {list(dims)}")
                check([d.dims[i].label for i in range(d.ndim)] == list(dims),
                      f"{label}: /{full} labels {[d.dims[i].label for i in range(d.ndim)]}")


def check_file(label, path, layout, sizes, coords):
    """Open every group of `path` with both engines; check dims, variables,
    values, coordinates (coords: {group/name: expected values}) and
    attributes against h5py's reading. sizes: {dimension: length}, where
    "group:dimension" names one that a group defines for itself."""
    check_scales(label, path, layout)
    for engine in ENGINES:
        for group, variables in layout.items():
            what = f"{label} {engine} {group}"
            try:
                ds = xr.open_dataset(path, engine=engine, group=None if group == "/" else group)
            except Exception as e:  # noqa: BLE001 (the reader's own error is the message)
                check(False, f"{what}: open_dataset: {e!r}")
                continue
            with ds, h5py.File(path, "r") as f:
                g = f[group]
                phony = [d for d in ds.dims if str(d).startswith("phony_dim")]
                check(not phony, f"{what}: phony dimensions {phony}")
                check(set(ds.variables) == set(variables),
                      f"{what}: variables {sorted(ds.variables)}, want {sorted(variables)}")
                for var, dims in variables.items():
                    if var not in ds.variables:
                        continue
                    v = ds.variables[var]
                    check(v.dims == dims, f"{what}: {var} dims {v.dims}, want {dims}")
                    check(len(set(v.dims)) == len(v.dims), f"{what}: {var} repeats a dimension")
                    for d in v.dims:
                        want = sizes.get(f"{group}:{d}", sizes.get(d))
                        check(ds.sizes[d] == want,
                              f"{what}: dimension {d} has length {ds.sizes[d]}, want {want}")
                    check(same_values(v.values, g[var][()]),
                          f"{what}: {var} values differ from h5py's ({v.dtype} vs {g[var].dtype})")
                    check_attrs(f"{what}: {var}", v.attrs, g[var].attrs)
                want_coords = {n for n, d in variables.items() if d == (n,)}
                check(set(ds.coords) == want_coords,
                      f"{what}: coordinates {sorted(ds.coords)}, want {sorted(want_coords)}")
                for name, want in coords.items():
                    gname, _, cname = name.rpartition("/")
                    if (gname or "/") != group or cname not in ds.coords:
                        continue
                    got = ds.coords[cname].values
                    check(np.array_equal(got, np.asarray(want)) and
                          np.array_equal(got, g[cname][()]),
                          f"{what}: coordinate {cname} = {list(got)}, want {list(want)}")
                if group == "/":
                    check_attrs(f"{what}: root", ds.attrs, f.attrs)


def h5(path, name):
    with h5py.File(path, "r") as f:
        return f[name][()]


def body(tmp):
    for engine in ENGINES:
        try:
            __import__({"h5netcdf": "h5netcdf", "netcdf4": "netCDF4"}[engine])
        except ImportError as e:
            check(False, f"engine {engine}: {e} (install python3-h5netcdf python3-netcdf4)")
    dump = os.path.join(tmp, "dump.h5")
    attn = os.path.join(tmp, "attn.h5")
    ppl = os.path.join(tmp, "ppl.h5")
    stats = os.path.join(tmp, "stats.h5")
    pv = os.path.join(tmp, "pv.h5")

    # dump: sample, boundary, block, position all 4 long
    hidden_cmd = [HIDDEN, *MODEL, "--samples", "4", "--seq-len", "8", "--layers", "1-4",
                  "--positions", "0-3", "--sites", "resid,attn_out,mlp_out", "-q"]
    if produce("probe-hidden", hidden_cmd + ["-o", dump], dump):
        draws = h5(dump, "sample_draw")
        check(sorted(draws) == [0, 1, 2, 3], f"dump draws {draws}")
        check_file("dump", dump, DUMP,
                   {"sample": 4, "boundary": 4, "block": 4, "position": 4, "dim": D, "token": 8},
                   {"sample": draws, "boundary": [1, 2, 3, 4], "block": [1, 2, 3, 4],
                    "position": [0, 1, 2, 3]})
        for eng in ENGINES:
            with xr.open_dataset(dump, engine=eng) as ds:
                check(ds.hidden.sel(boundary=3).shape == (4, 4, D)
                      and same_values(ds.hidden.sel(boundary=3).values, h5(dump, "hidden")[:, 2]),
                      f"dump {eng}: hidden.sel(boundary=3) is /hidden[:, 2]")

        # positional vectors of the dump
        if produce("posvec decompose", [POSVEC, "decompose", dump, "-o", pv, "-q"], pv):
            check_file("posvec", pv, PV_FILE,
                       {"boundary": 4, "position": 4, "dim": D},
                       {"boundary": [1, 2, 3, 4], "position": [0, 1, 2, 3]})

        # the dump's samples through strata-probe-ppl: the same draws
        if produce("probe-ppl", [PPL, *MODEL, "--samples", "4", "--seq-len", "8", "-q",
                                 "-o", ppl], ppl):
            check_file("ppl", ppl, PPL_FILE, {"sample": 4, "target": 7, "token": 8},
                       {"sample": draws, "target": np.arange(1, 8)})

        # --append grows the sample coordinate with the rows
        appended = os.path.join(tmp, "appended.h5")
        if produce("probe-hidden (to append to)", hidden_cmd + ["-o", appended], appended) and \
           produce("probe-hidden --append", [HIDDEN, *MODEL, "--samples", "2", "--seq-len", "8",
                                             "--layers", "1-4", "--positions", "0-3", "--sites",
                                             "resid,attn_out,mlp_out", "--append", "-q", "-o",
                                             appended], appended):
            d6 = h5(appended, "sample_draw")
            check(sorted(d6) == list(range(6)), f"appended draws {d6}")
            check_file("appended dump", appended, DUMP,
                       {"sample": 6, "boundary": 4, "block": 4, "position": 4, "dim": D,
                        "token": 8},
                       {"sample": d6, "boundary": [1, 2, 3, 4], "block": [1, 2, 3, 4],
                        "position": [0, 1, 2, 3]})

    # attention: sample, block, head and sink width all 3 long; token, query,
    # key and distance all T = 8
    if produce("probe-attn", [ATTN, *MODEL, "--samples", "3", "--seq-len", "8", "--layers", "0-2",
                              "--heads", "0-2", "--sink-k", "1,2,4", "--maps", "-q", "-o", attn],
               attn):
        adraws = h5(attn, "sample")
        check(sorted(adraws) == [0, 1, 2], f"attention file draws {adraws}")
        check_file("attn", attn, ATTN_FILE,
                   {"sample": 3, "block": 3, "head": 3, "k": 3, "token": 8, "query": 8,
                    "key": 8, "distance": 8},
                   {"sample": adraws, "block": [0, 1, 2], "head": [0, 1, 2],
                    "sink/k": [1, 2, 4], "dist/distance": np.arange(8)})
        for eng in ENGINES:
            with xr.open_dataset(attn, engine=eng, group="maps") as ds:
                p = ds.probs.isel(sample=0, block=1, head=2)
                check(p.dims == ("query", "key") and
                      np.allclose(p.sum("key").values, 1.0, atol=1e-5),
                      f"attn {eng}: maps rows (query) sum to 1 over key")

        # statistics of the attention file's samples: Lk = P = Ls = Hs = Ks = 3
        if produce("probe-stats", [STATS, *MODEL, "--samples", "3", "--seq-len", "8",
                                   "--layers", "0-2", "--positions", "0-2",
                                   "--attn-layers", "0-2", "--heads", "0-2",
                                   "--sink-k", "1,2,4", "-q", "-o", stats], stats):
            sdraws = h5(stats, "sample_draw")
            check(np.array_equal(sdraws, adraws), f"stats draws {sdraws} = attention's {adraws}")
            rows = len(h5(stats, "blockinf/metric"))
            check_file("stats", stats, STATS_FILE,
                       {"sample": 3, "token": 8, "boundary": 3, "position": 3, "dim": D,
                        "row": rows, "/blockinf:block": L, "/attn:block": 3, "head": 3,
                        "sink_k": 3, "distance": 8, "query": 8},
                       {"sample": sdraws, "boundary": [0, 1, 2], "position": [0, 1, 2],
                        "blockinf/block": np.arange(L), "attn/block": [0, 1, 2],
                        "attn/head": [0, 1, 2], "attn/sink_k": [1, 2, 4],
                        "attn/distance": np.arange(8)})


if __name__ == "__main__":
    main("test_netcdf", body)
