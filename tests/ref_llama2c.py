#!/usr/bin/python3
"""ref_llama2c.py — an independent float64 numpy reference of the llama2.c
forward pass (karpathy/llama2.c run.c, legacy checkpoint format), for the
tests that compare strata's C runtime against it.

Why a second implementation: strata's runtime works one block of query rows
at a time in float32 with BLAS; this file runs the whole sequence at once in
float64 with a causal mask and explicit RoPE rotation, so the two share no
code path and agreement is evidence that both follow run.c. It is written
from the format description, not from strata's C code.

Legend: L blocks, T tokens, D width, F MLP width, H query heads, G key/value
heads, d = D/H head width, V vocabulary.

Also here: the llama2.c tokenizer file reader (tok512.bin) and run.c's
greedy decoding, so the reference can be checked on its own against the
published stories260K output.

Usable as a module (load, forward, greedy, load_tokenizer, decode) or as a
command: ref_llama2c.py MODEL [--tokenizer TOK] [--steps N] prints the greedy
continuation from BOS.
"""
import argparse
import struct
import sys

import numpy as np

NORM_EPS = 1e-5
ROPE_BASE = 10000.0
BOS = 1


class Model:
    """Config and float64 weights of one checkpoint."""

    def __init__(self):
        self.dim = self.hidden_dim = self.n_layers = 0
        self.n_heads = self.n_kv_heads = self.vocab_size = self.seq_len = 0
        self.shared_classifier = True
        self.w = {}

    @property
    def head_size(self):
        return self.dim // self.n_heads

    @property
    def kv_dim(self):
        return self.dim * self.n_kv_heads // self.n_heads


def load(path):
    """Read a llama2.c legacy checkpoint; ValueError if its size disagrees
    with its header (truncated, padded, or not this format)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 28:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for a llama2.c header")
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    m = Model()
    m.shared_classifier = vocab > 0
    vocab = abs(vocab)
    if min(dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len) <= 0:
        raise ValueError(f"{path}: header has a non-positive field")
    if dim % n_heads or n_heads % n_kv or (dim // n_heads) % 2:
        raise ValueError(f"{path}: dim {dim}, n_heads {n_heads}, n_kv_heads {n_kv} disagree")
    m.dim, m.hidden_dim, m.n_layers = dim, hidden, n_layers
    m.n_heads, m.n_kv_heads, m.vocab_size, m.seq_len = n_heads, n_kv, vocab, seq_len
    D, F, L, V, KV, hs = dim, hidden, n_layers, vocab, m.kv_dim, m.head_size
    shapes = [
        ("token_embedding", (V, D)),
        ("rms_att", (L, D)),
        ("wq", (L, D, D)),
        ("wk", (L, KV, D)),
        ("wv", (L, KV, D)),
        ("wo", (L, D, D)),
        ("rms_ffn", (L, D)),
        ("w1", (L, F, D)),
        ("w2", (L, D, F)),
        ("w3", (L, F, D)),
        ("rms_final", (D,)),
        ("freq_cis_real", (seq_len, hs // 2)),
        ("freq_cis_imag", (seq_len, hs // 2)),
    ]
    if not m.shared_classifier:
        shapes.append(("wcls", (V, D)))
    n_float = sum(int(np.prod(s)) for _, s in shapes)
    if len(raw) != 28 + 4 * n_float:
        raise ValueError(f"{path}: header needs {28 + 4 * n_float} bytes, file has {len(raw)}")
    flat = np.frombuffer(raw, dtype="<f4", offset=28).astype(np.float64)
    off = 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        m.w[name] = flat[off:off + n].reshape(shape)
        off += n
    if m.shared_classifier:
        m.w["wcls"] = m.w["token_embedding"]
    return m


def rmsnorm(x, w):
    # x: (T, D); the epsilon sits inside the root, as in run.c
    return x * w / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + NORM_EPS)


def rope(x, n_heads, head_size):
    """Rotate interleaved pairs (2j, 2j+1) of every head of x (T, n_heads*d)
    by pos * base^(-2j/d). Computed from scratch rather than from the file's
    freq_cis tables, which run.c does not read either."""
    T = x.shape[0]
    j = np.arange(head_size // 2, dtype=np.float64)
    freq = ROPE_BASE ** (-(2.0 * j) / head_size)               # (d/2)
    ang = np.arange(T, dtype=np.float64)[:, None] * freq[None]  # (T, d/2)
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    xr = x.reshape(T, n_heads, head_size // 2, 2)
    x0, x1 = xr[..., 0], xr[..., 1]
    out = np.stack([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)
    return out.reshape(T, n_heads * head_size)


def forward(m, tokens):
    """Hidden states (L+1, T, D) at every block boundary (0 = embeddings,
    l = after block l, before the final norm) and logits (T, V), float64."""
    tokens = np.asarray(tokens, dtype=np.int64)
    T, D, H, G, hs = len(tokens), m.dim, m.n_heads, m.n_kv_heads, m.head_size
    if T == 0 or T > m.seq_len:
        raise ValueError(f"{T} tokens; the model takes 1..{m.seq_len}")
    if tokens.min() < 0 or tokens.max() >= m.vocab_size:
        raise ValueError("token id out of range")
    w = m.w
    hidden = np.empty((m.n_layers + 1, T, D))
    x = w["token_embedding"][tokens].copy()                     # (T, D)
    hidden[0] = x
    mask = np.triu(np.full((T, T), -np.inf), k=1)              # keys after the query
    for l in range(m.n_layers):
        xb = rmsnorm(x, w["rms_att"][l])
        q = rope(xb @ w["wq"][l].T, H, hs).reshape(T, H, hs)
        k = rope(xb @ w["wk"][l].T, G, hs).reshape(T, G, hs)
        v = (xb @ w["wv"][l].T).reshape(T, G, hs)
        # query head h reads key/value head h // (H/G)
        k = np.repeat(k, H // G, axis=1)
        v = np.repeat(v, H // G, axis=1)
        q, k, v = (a.transpose(1, 0, 2) for a in (q, k, v))    # (H, T, d)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(hs) + mask  # (H, T, T)
        scores -= scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=-1, keepdims=True)
        att = (p @ v).transpose(1, 0, 2).reshape(T, D)
        x = x + att @ w["wo"][l].T
        xb = rmsnorm(x, w["rms_ffn"][l])
        a = xb @ w["w1"][l].T
        x = x + ((a / (1.0 + np.exp(-a))) * (xb @ w["w3"][l].T)) @ w["w2"][l].T
        hidden[l + 1] = x
    logits = rmsnorm(x, w["rms_final"]) @ w["wcls"].T
    return hidden, logits


def greedy(m, steps, prompt=(BOS,)):
    """run.c at temperature 0: positions 0..steps-1, the prompt forced,
    argmax afterwards, stop when BOS comes out. Returns the tokens after
    the first prompt token. Reruns the whole prefix each step (no KV cache):
    slow but a different path again."""
    seq = list(prompt)
    out = []
    for pos in range(steps):
        if pos + 1 < len(seq):
            nxt = seq[pos + 1]
        else:
            _, logits = forward(m, seq[:pos + 1])
            nxt = int(np.argmax(logits[-1]))
            seq.append(nxt)
        if nxt == BOS:
            break
        out.append(nxt)
    return out


def load_tokenizer(path, vocab_size=None):
    """llama2.c tokenizer file: int32 max_token_length, then per token
    float32 score, int32 length, bytes. Returns (pieces, scores)."""
    with open(path, "rb") as f:
        raw = f.read()
    off = 4
    pieces, scores = [], []
    while off < len(raw) and (vocab_size is None or len(pieces) < vocab_size):
        score, n = struct.unpack_from("<fi", raw, off)
        off += 8
        pieces.append(raw[off:off + n])
        scores.append(score)
        off += n
    if vocab_size is not None and len(pieces) != vocab_size:
        raise ValueError(f"{path}: {len(pieces)} tokens, expected {vocab_size}")
    return pieces, scores


def decode(pieces, tokens, prev=BOS):
    """Bytes of tokens as run.c's decode() prints them: the leading space of
    a piece right after BOS is dropped; <0xXX> pieces are one raw byte."""
    out = bytearray()
    for t in tokens:
        p = pieces[t]
        if prev == BOS and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            try:
                p = bytes([int(p[3:5], 16)])
            except ValueError:
                pass
        out += p
        prev = t
    return bytes(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description="float64 reference of llama2.c's forward pass: "
                                 "greedy decoding from BOS")
    ap.add_argument("model", help="llama2.c checkpoint (.bin)")
    ap.add_argument("--tokenizer", help="llama2.c tokenizer file (tok512.bin); "
                    "without it token ids are printed")
    ap.add_argument("--steps", type=int, default=40, help="positions to run (default 40)")
    a = ap.parse_args(argv)
    try:
        m = load(a.model)
        toks = greedy(m, a.steps)
        if a.tokenizer:
            pieces, _ = load_tokenizer(a.tokenizer, m.vocab_size)
            sys.stdout.buffer.write(decode(pieces, toks) + b"\n")
        else:
            print(" ".join(map(str, toks)))
    except (OSError, ValueError) as e:
        print(f"ref_llama2c: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
