#!/usr/bin/env python3
"""gguf2hf.py — build Hugging Face tokenizer.json (and SentencePiece
tokenizer.model) files from llama.cpp's vocabulary-only GGUF files, so the
C tokenizers can be checked against llama.cpp's reference vectors
(models/gguf-vocab/*.inp/.out) without shipping any tokenizer.json.

  gguf2hf.py spm   IN.gguf OUT.json    Llama 2 style: BPE + byte_fallback,
                                       merges derived from the scores the way
                                       transformers' SpmConverter does
  gguf2hf.py bytelevel IN.gguf OUT.json GPT-2/NeoX style: ByteLevel, merges
                                       from tokenizer.ggml.merges
  gguf2hf.py model IN.gguf OUT.model   a SentencePiece ModelProto (BPE)
  gguf2hf.py dump  IN.gguf             print the metadata (arrays: lengths)

GGUF v2/v3 layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv
(key string, u32 type, value); strings are u64 length + bytes; arrays are
u32 element type, u64 count, elements. Little endian. Only the metadata is
read (the vocab files hold no tensors worth reading).
"""
import json
import struct
import sys

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8", errors="surrogateescape")
        self.pos += n
        return s

    def value(self, t):
        if t in SCALARS:
            return self.take(SCALARS[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("<I"), self.take("<Q")
            if et in SCALARS:  # bulk-read numbers: vocabularies are large
                fmt = SCALARS[et]
                size = struct.calcsize(fmt)
                vals = list(struct.unpack_from("<%d%s" % (n, fmt[1]), self.data, self.pos))
                self.pos += n * size
                return vals
            return [self.value(et) for _ in range(n)]
        raise ValueError("unknown GGUF type %d at %d" % (t, self.pos))


def read_gguf(path):
    with open(path, "rb") as f:
        r = Reader(f.read())
    if r.data[:4] != b"GGUF":
        raise ValueError(path + ": not a GGUF file")
    r.pos = 4
    version = r.take("<I")
    if version not in (2, 3):
        raise ValueError("%s: GGUF version %d" % (path, version))
    r.take("<Q")  # n_tensors
    n_kv = r.take("<Q")
    kv = {}
    for _ in range(n_kv):
        key = r.string()
        kv[key] = r.value(r.take("<I"))
    return kv


# token_type values in GGUF (llama.cpp) and SentencePiece agree:
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def added_tokens(tokens, types):
    out = []
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if ty in (UNKNOWN, CONTROL, USER_DEFINED):
            out.append({"id": i, "content": t, "single_word": False, "lstrip": False,
                        "rstrip": False, "normalized": ty == USER_DEFINED,
                        "special": ty != USER_DEFINED})
    return out


def spm_merges(tokens, scores):
    """transformers' SentencePieceExtractor: every split of every piece into
    two pieces is a merge, ordered by the merged piece's score (highest
    first, stable), within a piece by the ids of its two halves."""
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, score in zip(tokens, scores):
        local = []
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda x: x[2], reverse=True)
    return [[a, b] for a, b, _ in merges]


def to_spm_json(kv):
    tokens, scores = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.scores"]
    types = kv["tokenizer.ggml.token_type"]
    bos, eos = kv.get("tokenizer.ggml.bos_token_id", 1), kv.get("tokenizer.ggml.eos_token_id", 2)
    unk = kv.get("tokenizer.ggml.unknown_token_id", 0)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_tokens(tokens, types),
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": tokens[bos], "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [],
            "special_tokens": {tokens[bos]: {"id": tokens[bos], "ids": [bos],
                                             "tokens": [tokens[bos]]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": tokens[unk],
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": spm_merges(tokens, scores)},
        "_eos_hint": tokens[eos],
    }


def to_bytelevel_json(kv):
    tokens, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_tokens(tokens, types),
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                          "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False,
                           "trim_offsets": True, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False,
                    "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": kv["tokenizer.ggml.merges"]},
    }


# ------------------------------------------------------- protobuf writing

def varint(v):
    v &= (1 << 64) - 1  # negative int32 is sign-extended to 10 bytes
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(f, v):
    return varint(f << 3) + varint(v)


def field_bytes(f, b):
    return varint(f << 3 | 2) + varint(len(b)) + b


def field_float(f, x):
    return varint(f << 3 | 5) + struct.pack("<f", x)


def to_spm_model(kv, add_dummy_prefix=True):
    tokens, scores = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.scores"]
    types = kv["tokenizer.ggml.token_type"]
    out = bytearray()
    for t, s, ty in zip(tokens, scores, types):
        piece = field_bytes(1, t.encode("utf-8", errors="surrogateescape")) + field_float(2, s)
        if ty != NORMAL:
            piece += field_varint(3, ty)
        out += field_bytes(1, piece)
    trainer = (field_varint(3, 2) + field_varint(4, len(tokens)) + field_varint(35, 1)
               + field_varint(40, kv.get("tokenizer.ggml.unknown_token_id", 0))
               + field_varint(41, kv.get("tokenizer.ggml.bos_token_id", 1))
               + field_varint(42, kv.get("tokenizer.ggml.eos_token_id", 2))
               + field_varint(43, -1))
    normalizer = (field_bytes(1, b"identity") + field_bytes(2, b"")
                  + field_varint(3, int(add_dummy_prefix)) + field_varint(4, 0))
    out += field_bytes(2, trainer) + field_bytes(3, normalizer)
    return bytes(out)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    kv = read_gguf(argv[2])
    if argv[1] == "dump":
        for k, v in kv.items():
            print(k, ("[%d] %r..." % (len(v), v[:8])) if isinstance(v, list) else repr(v))
        return
    if argv[1] in ("spm", "bytelevel"):
        doc = to_spm_json(kv) if argv[1] == "spm" else to_bytelevel_json(kv)
        doc.pop("_eos_hint", None)
        with open(argv[3], "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)
    elif argv[1] == "model":
        prefix = kv.get("tokenizer.ggml.add_space_prefix", True)
        with open(argv[3], "wb") as f:
            f.write(to_spm_model(kv, prefix))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
