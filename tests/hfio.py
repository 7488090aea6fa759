"""hfio.py — write and read Hugging Face weight files without torch.

Tests need safetensors files, torch.save .bin files and sharded checkpoints
in every dtype strata reads, and an independent reader to check lib/ against;
torch is not installed, so this module writes the torch.save zip container
and its pickle by hand (numpy only).

Tensors are passed around as an ordered dict name -> (dtype, array) with
dtype "F32", "F16" or "BF16"; the array is float32, float16, or the uint16
bit patterns for BF16 (numpy has no bfloat16; use to_bf16 / from_bf16).

torch.save layout written here (as PyTorch >= 1.6 writes it):
  <prefix>/data.pkl     pickle (protocol 2) of an OrderedDict name -> tensor,
                        tensors as torch._utils._rebuild_tensor_v2(
                        persistent_id(('storage', torch.<T>Storage, key, 'cpu',
                        numel)), storage_offset, size, stride, False,
                        OrderedDict())
  <prefix>/byteorder    "little"
  <prefix>/data/<key>   the raw storage bytes, one entry per storage
  <prefix>/version      "3\\n"
All entries STORED (no compression), every entry's data 64-byte aligned by
padding the local header's extra field with an "FB" block, as torch's
PyTorchStreamWriter does; zip64 records when an entry or offset needs them
(or always, with zip64=True, so tests can exercise that path cheaply).

Command line: `python3 hfio.py FILE...` lists the tensors of each file.
"""
import collections
import json
import os
import pickle
import struct
import sys
import zipfile
import zlib

import numpy as np

DTYPES = ("F32", "F16", "BF16")
_NP = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}
_STORAGE = {"F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage"}
_STORAGE_DTYPE = {v: k for k, v in _STORAGE.items()}


# ---------------------------------------------------------------- bfloat16

def to_bf16(x):
    """float32 -> bfloat16 bits (uint16), round to nearest even; NaN stays a
    (quiet) NaN with its sign, Inf stays Inf."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan = (bits >> 16) | 0x40
    out = np.where(np.isnan(x), nan, rounded)
    return (out & 0xFFFF).astype(np.uint16)


def from_bf16(u):
    """bfloat16 bits (uint16) -> float32, exact."""
    u = np.asarray(u, dtype=np.uint16)
    return (u.astype(np.uint32) << 16).view(np.float32)


def to_float32(dtype, array):
    """The float32 values of a tensor (exact for every dtype)."""
    if dtype == "BF16":
        return from_bf16(array)
    return np.asarray(array).astype(np.float32)


def _check(dtype, array):
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {DTYPES}")
    a = np.asarray(array)
    want = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[dtype]
    if a.dtype != want:
        raise ValueError(f"{dtype} tensor needs a {np.dtype(want).name} array, got {a.dtype}")
    return a


def _bytes(dtype, array):
    return np.ascontiguousarray(_check(dtype, array), dtype=_NP[dtype]).tobytes()


def _nbytes(dtype, array):
    return int(np.asarray(array).size) * _NP[dtype].itemsize


# ------------------------------------------------------------- safetensors

def write_safetensors(path, tensors, metadata=None):
    """Write tensors (in the given order) as one safetensors file.
    metadata: dict of str -> str for "__metadata__"; None writes
    {"format": "pt"} as transformers does, {} writes no "__metadata__"."""
    if metadata is None:
        metadata = {"format": "pt"}
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name, (dtype, array) in tensors.items():
        b = _bytes(dtype, array)
        header[name] = {"dtype": dtype, "shape": list(np.asarray(array).shape),
                        "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # data starts 8-byte aligned, as safetensors does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def _read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack_from("<Q", raw, 0)
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the file")
    header = json.loads(raw[8:8 + n].decode())
    base = 8 + n
    out = collections.OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r}: dtype {dtype} not supported")
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != count * _NP[dtype].itemsize or base + e > len(raw):
            raise ValueError(f"{path}: tensor {name!r}: bad data_offsets")
        a = np.frombuffer(raw, dtype=_NP[dtype], count=count, offset=base + b)
        out[name] = (dtype, a.reshape(shape).astype(_NP[dtype].newbyteorder("=")))
    return out


# ------------------------------------------------------------ pickle (torch)

class _Pickle:
    """A hand-written pickle emitter producing what torch.save's Pickler
    emits for a state dict (protocol 2: GLOBAL, BINPUT/BINGET; protocol 4:
    FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE), memoizing strings and
    globals so repeats become BINGET as pickle does."""

    def __init__(self, proto=2, rename=None):
        self.proto = proto
        self.out = bytearray()
        self.memo = {}
        self.n_memo = 0
        self.rename = rename or {}
        self.out += b"\x80" + bytes([proto])

    def _put(self, key):
        idx = self.n_memo
        self.n_memo += 1
        if key is not None:
            self.memo[key] = idx
        if self.proto >= 4:
            self.out += b"\x94"                       # MEMOIZE
        elif idx < 256:
            self.out += b"q" + bytes([idx])           # BINPUT
        else:
            self.out += b"r" + struct.pack("<I", idx)  # LONG_BINPUT

    def _get(self, key):
        idx = self.memo[key]
        if idx < 256:
            self.out += b"h" + bytes([idx])           # BINGET
        else:
            self.out += b"j" + struct.pack("<I", idx)  # LONG_BINGET

    def string(self, s):
        key = ("str", s)
        if key in self.memo:
            return self._get(key)
        b = s.encode("utf-8")
        if self.proto >= 4 and len(b) < 256:
            self.out += b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE
        else:
            self.out += b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE
        self._put(key)

    def glob(self, module, name):
        module, name = self.rename.get((module, name), (module, name))
        key = ("global", module, name)
        if key in self.memo:
            return self._get(key)
        if self.proto >= 4:
            self.string(module)
            self.string(name)
            self.out += b"\x93"                       # STACK_GLOBAL
        else:
            self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        self._put(key)

    def int(self, v):
        if 0 <= v <= 0xFF:
            self.out += b"K" + bytes([v])             # BININT1
        elif 0 <= v <= 0xFFFF:
            self.out += b"M" + struct.pack("<H", v)   # BININT2
        elif -0x80000000 <= v <= 0x7FFFFFFF:
            self.out += b"J" + struct.pack("<i", v)   # BININT
        else:                                        # LONG1, two's complement
            n = (v.bit_length() + 8) // 8
            self.out += b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)

    def tuple_of_ints(self, vals):
        vals = list(vals)
        if not vals:
            self.out += b")"                          # EMPTY_TUPLE
            return
        if len(vals) > 3:
            self.out += b"("                          # MARK
        for v in vals:
            self.int(v)
        self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}.get(len(vals), b"t")
        self._put(None)

    def ordered_dict_call(self):
        self.glob("collections", "OrderedDict")
        self.out += b")R"                             # EMPTY_TUPLE REDUCE
        self._put(None)

    def tensor(self, rec):
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.out += b"("                              # MARK: args
        # persistent id ('storage', torch.<T>Storage, key, 'cpu', numel)
        self.out += b"("
        self.string("storage")
        self.glob("torch", rec["storage_type"])
        self.string(rec["key"])
        self.string("cpu")
        self.int(rec["numel"])
        self.out += b"t"                              # TUPLE
        self._put(None)
        self.out += b"Q"                              # BINPERSID
        self.int(rec["offset"])
        self.tuple_of_ints(rec["shape"])
        self.tuple_of_ints(rec["stride"])
        self.out += b"\x89"                           # NEWFALSE (requires_grad)
        self.ordered_dict_call()                      # backward_hooks
        self.out += b"t"
        self._put(None)
        self.out += b"R"                              # REDUCE
        self._put(None)

    def state_dict(self, records, with_metadata=True):
        self.ordered_dict_call()
        # dict items in batches of 1000, as pickle's _batch_setitems does
        for i in range(0, len(records), 1000):
            batch = records[i:i + 1000]
            self.out += b"("                          # MARK
            for rec in batch:
                self.string(rec["name"])
                self.tensor(rec)
            self.out += b"u"                          # SETITEMS
        if with_metadata:
            # state_dict()'s _metadata attribute arrives through BUILD
            self.out += b"}"                          # EMPTY_DICT
            self._put(None)
            self.string("_metadata")
            self.ordered_dict_call()
            self.out += b"("
            self.string("")
            self.out += b"}"
            self._put(None)
            self.string("version")
            self.int(1)
            self.out += b"s"                          # SETITEM
            self.out += b"u"                          # SETITEMS
            self.out += b"s"                          # SETITEM
            self.out += b"b"                          # BUILD
        self.out += b"."                              # STOP
        if self.proto >= 4:  # one frame around everything after PROTO
            body = bytes(self.out[2:])
            self.out = bytearray(self.out[:2]) + b"\x95" + struct.pack("<Q", len(body)) + body
        return bytes(self.out)


# ------------------------------------------------------------------- zip

def _zip_write(path, entries, zip64=False, deflate=(), align=64):
    """entries: list of (name, bytes). STORED and data-aligned (torch style)
    unless the name is in `deflate` (tests of the refusal path)."""
    with open(path, "wb") as f:
        central = []
        for name, data in entries:
            nb = name.encode()
            offset = f.tell()
            crc = zlib.crc32(data) & 0xFFFFFFFF
            method = 0
            payload = data
            if name in deflate:
                method = 8
                c = zlib.compressobj(6, zlib.DEFLATED, -15)
                payload = c.compress(data) + c.flush()
            big = zip64 or len(data) >= 0xFFFFFFFF or offset >= 0xFFFFFFFF
            extra = b""
            if big:
                extra = struct.pack("<HHQQ", 1, 16, len(data), len(payload))
            start = offset + 30 + len(nb) + len(extra) + 4
            pad = (-start) % align if method == 0 else 0
            extra += b"FB" + struct.pack("<H", pad) + b"Z" * pad
            csize = 0xFFFFFFFF if big else len(payload)
            usize = 0xFFFFFFFF if big else len(data)
            version = 45 if big else 20
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, version, 0, method, 0, 0x21,
                                crc, csize, usize, len(nb), len(extra)))
            f.write(nb)
            f.write(extra)
            f.write(payload)
            central.append((nb, method, crc, len(payload), len(data), offset, big))
        cd_start = f.tell()
        for nb, method, crc, clen, ulen, offset, big in central:
            if big:
                extra = struct.pack("<HHQQQ", 1, 24, ulen, clen, offset)
                c32, u32, o32, version = 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 45
            else:
                extra, c32, u32, o32, version = b"", clen, ulen, offset, 20
            f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, version, version, 0, method,
                                0, 0x21, crc, c32, u32, len(nb), len(extra), 0, 0, 0, 0, o32))
            f.write(nb)
            f.write(extra)
        cd_end = f.tell()
        n, cd_size = len(central), cd_end - cd_start
        if zip64 or n >= 0xFFFF or cd_start >= 0xFFFFFFFF or cd_size >= 0xFFFFFFFF:
            f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_start))
            f.write(struct.pack("<IIQI", 0x07064B50, 0, cd_end, 1))
            f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF,
                                0xFFFFFFFF, 0xFFFFFFFF, 0))
        else:
            f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_start, 0))


def write_torch_bin(path, tensors, share=None, prefix="archive", zip64=False,
                    byteorder="little", strides=None, deflate=False, rename_globals=None,
                    proto=2, with_metadata=True):
    """Write tensors as torch.save(OrderedDict) would.

    share: {name: (base_name, elem_offset)} puts tensor `name` inside the
      storage of `base_name` (same dtype) at elem_offset, growing that storage
      if needed (tied weights: offset 0 and equal values; an offset beyond
      the base tensor gives a storage_offset != 0 view).
    prefix: archive folder ("archive", or the file stem as older torch wrote).
    byteorder: the byteorder record's content, None to omit it (torch < 1.12).
    strides: {name: stride tuple} overriding the C-order strides (to write
      non-contiguous views; the storage still holds the array in C order).
    deflate: compress the storage entries (torch never does; for tests).
    rename_globals: {(module, name): (module', name')} (for tests).
    proto: 2 as torch.save writes; 4 exercises FRAME/STACK_GLOBAL/MEMOIZE.
    """
    share = share or {}
    strides = strides or {}
    storages = collections.OrderedDict()  # key -> [dtype, np array]
    records = []
    key_of = {}
    for name, (dtype, array) in tensors.items():
        a = _check(dtype, array)
        flat = np.ascontiguousarray(a).reshape(-1)
        if name in share:
            base, off = share[name]
            key = key_of[base]
            sdt, st = storages[key]
            if sdt != dtype:
                raise ValueError(f"{name}: cannot share a {sdt} storage as {dtype}")
            if off + flat.size > st.size:
                st = np.concatenate([st, np.zeros(off + flat.size - st.size, dtype=st.dtype)])
            st[off:off + flat.size] = flat
            storages[key] = [sdt, st]
        else:
            key, off = str(len(storages)), 0
            storages[key] = [dtype, flat.copy()]
        key_of[name] = key
        shape = list(a.shape)
        stride = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            stride[i] = stride[i + 1] * max(shape[i + 1], 1)
        records.append({"name": name, "key": key, "offset": off, "shape": shape,
                        "stride": list(strides.get(name, stride)),
                        "storage_type": _STORAGE[dtype]})
    for rec in records:
        rec["numel"] = int(storages[rec["key"]][1].size)
    pkl = _Pickle(proto, rename_globals).state_dict(records, with_metadata)
    entries = [(f"{prefix}/data.pkl", pkl)]
    if byteorder is not None:
        entries.append((f"{prefix}/byteorder", byteorder.encode()))
    for key in sorted(storages, key=int):
        dtype, st = storages[key]
        entries.append((f"{prefix}/data/{key}", st.astype(_NP[dtype]).tobytes()))
    entries.append((f"{prefix}/version", b"3\n"))
    deflated = {f"{prefix}/data/{k}" for k in storages} if deflate else ()
    _zip_write(path, entries, zip64=zip64, deflate=deflated)


class _StorageType:
    def __init__(self, name):
        self.name = name


def _read_torch_bin(path):
    zf = zipfile.ZipFile(path)
    names = zf.namelist()
    pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        raise ValueError(f"{path}: no single <prefix>/data.pkl")
    prefix = pkls[0][: -len("data.pkl")]
    if prefix + "byteorder" in names and zf.read(prefix + "byteorder") != b"little":
        raise ValueError(f"{path}: byteorder is not little")
    cache = {}

    def persistent_load(pid):
        kind, stype, key, _location, numel = pid
        if kind != "storage" or not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"bad persistent id {pid!r}")
        dtype = _STORAGE_DTYPE[stype.name]
        if key not in cache:
            cache[key] = np.frombuffer(zf.read(f"{prefix}data/{key}"), dtype=_NP[dtype])
        st = cache[key]
        if st.size < numel:
            raise ValueError(f"{path}: storage {key} shorter than its numel")
        return (dtype, st)

    def rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None):
        dtype, st = storage
        item = st.itemsize
        view = np.lib.stride_tricks.as_strided(st[offset:], shape=tuple(size),
                                               strides=tuple(s * item for s in stride))
        return (dtype, np.array(view, dtype=_NP[dtype].newbyteorder("=")))

    allowed = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
               ("torch._utils", "_rebuild_parameter"): lambda t, rg, hooks: t}
    for sname in _STORAGE_DTYPE:
        allowed[("torch", sname)] = _StorageType(sname)

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(f"global {module}.{name} not allowed")
            return allowed[(module, name)]

        def persistent_load(self, pid):
            return persistent_load(pid)

    import io
    obj = Unpickler(io.BytesIO(zf.read(pkls[0]))).load()
    return collections.OrderedDict(obj)


def read_tensors(path):
    """name -> (dtype, array) of a safetensors or torch.save file."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PK\x03\x04":
        return _read_torch_bin(path)
    return _read_safetensors(path)


# ---------------------------------------------------------------- sharded

def write_sharded(dirpath, tensors, n_shards, fmt, **kw):
    """Write tensors into dirpath as transformers' save_pretrained does:
    n_shards == 1: model.safetensors / pytorch_model.bin;
    else model-0000k-of-0000n.safetensors / pytorch_model-0000k-of-0000n.bin
    plus model.safetensors.index.json / pytorch_model.bin.index.json.
    Tensors are split in order into n_shards runs of about equal bytes.
    Extra keywords go to the per-file writer (a `share` entry is kept only
    when both tensors land in the same shard). Returns the file names."""
    if fmt not in ("safetensors", "bin"):
        raise ValueError(f"fmt must be 'safetensors' or 'bin', not {fmt!r}")
    names = list(tensors)
    if not 1 <= n_shards <= max(len(names), 1):
        raise ValueError(f"n_shards {n_shards} for {len(names)} tensors")
    os.makedirs(dirpath, exist_ok=True)
    sizes = [_nbytes(*tensors[n]) for n in names]
    total = sum(sizes)
    groups, cur, acc = [], [], 0
    for i, (n, s) in enumerate(zip(names, sizes)):
        cur.append(n)
        acc += s
        left_names = len(names) - i - 1
        left_groups = n_shards - len(groups) - 1
        if left_groups > 0 and (acc >= total * (len(groups) + 1) / n_shards
                                or left_names == left_groups):
            groups.append(cur)
            cur = []
    groups.append(cur)
    assert len(groups) == n_shards and all(groups)
    stem, ext = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    files = []
    weight_map = {}
    for k, group in enumerate(groups):
        fname = f"{stem}.{ext}" if n_shards == 1 else f"{stem}-{k + 1:05d}-of-{n_shards:05d}.{ext}"
        part = collections.OrderedDict((n, tensors[n]) for n in group)
        fpath = os.path.join(dirpath, fname)
        if fmt == "safetensors":
            write_safetensors(fpath, part, **kw)
        else:
            kk = dict(kw)
            if "share" in kk:
                kk["share"] = {a: b for a, b in kk["share"].items()
                               if a in part and b[0] in part}
            write_torch_bin(fpath, part, **kk)
        files.append(fname)
        for n in group:
            weight_map[n] = fname
    if n_shards > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        with open(os.path.join(dirpath, f"{stem}.{ext}.index.json"), "w") as f:
            f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return files


if __name__ == "__main__":
    for p in sys.argv[1:]:
        for name, (dtype, a) in read_tensors(p).items():
            print(f"{p}: {name} {dtype} {list(a.shape)}")
