#!/usr/bin/python3
"""ref_hf.py — an independent float64 numpy reference of the forward pass of
the Hugging Face checkpoints strata loads (Llama, Mistral, Baichuan 7B/13B;
docs/CHECKPOINTS.md), for the tests that compare strata's C runtime
against it.

Why a second implementation: strata's runtime works one tile of query rows
at a time in float32; this file runs the whole sequence at once in float64
with one (T, T) score matrix per head, an explicit causal / sliding-window /
ALiBi mask and rotate-half RoPE, so the two share no code path. It is written
from docs/CHECKPOINTS.md and the Hugging Face transformers semantics
(modeling_llama.py, modeling_rope_utils.py, modeling_mistral.py, Baichuan 2's
modeling_baichuan.py; P4 in ../shared/docs/PAPERS.md), not from strata's C.
Weights are read through tests/hfio.py.

Covered: RMSNorm (eps inside the root), rotate-half RoPE (dimension i of a
head pairs with i + d/2) with rope_theta and rope_scaling linear, dynamic
(NTK), yarn and llama3; GQA; SwiGLU; Mistral sliding_window (key j visible to
query i iff i - W < j <= i); Baichuan fused W_pack (rows q, k, v); ALiBi with
Baichuan's slopes (non-power-of-two head counts interleaved); NormHead (each
classifier row divided by its L2 norm, floored at 1e-12); tied embeddings;
head_dim != D/H. Frequencies are computed in float64 (transformers rounds
inv_freq to float32).

Legend: L blocks, T tokens, D width, F MLP width, H query heads, G key/value
heads, d head width, V vocabulary, C trained context.

Usable as a module (load, forward, inv_freq, alibi_slopes) or as a command:
ref_hf.py MODEL --tokens 1,5,9 [--position-embedding rope|alibi|none] prints the
argmax of the last position's logits and the hidden-state norms.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hfio  # noqa: E402

ARCHS = ("LlamaForCausalLM", "MistralForCausalLM", "BaichuanForCausalLM")
# first found wins, as in docs/CHECKPOINTS.md
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")


class Model:
    """Config fields (resolved to their defaults) and float64 weights."""

    def __init__(self):
        self.cfg = {}
        self.arch = ""
        self.D = self.F = self.L = self.H = self.G = self.d = self.V = self.C = 0
        self.eps = 1e-6
        self.theta = 10000.0
        self.rope_scaling = None
        self.window = None            # sliding window W or None
        self.tie = False
        self.positions = "rope"       # rope | alibi | none
        self.norm_head = False
        self.w = {}


def _float64(dtype, a):
    if dtype == "BF16":
        return hfio.from_bf16(np.asarray(a)).astype(np.float64)
    if dtype in ("F32", "F16", "F64"):
        return np.asarray(a).astype(np.float64)
    raise ValueError(f"tensor dtype {dtype} is not a float type")


def _weight_files(path):
    """(directory, [weight files]) for a checkpoint directory or a file in it."""
    if os.path.isdir(path):
        d = path
        for name in WEIGHT_FILES:
            if os.path.isfile(os.path.join(d, name)):
                path = os.path.join(d, name)
                break
        else:
            raise ValueError(f"{d}: no {', '.join(WEIGHT_FILES)}")
    else:
        d = os.path.dirname(os.path.abspath(path))
    if path.endswith(".index.json"):
        with open(path) as f:
            wmap = json.load(f)["weight_map"]
        return d, wmap
    return d, {None: path}


def _read_weights(path):
    d, wmap = _weight_files(path)
    if None in wmap:
        return {k: _float64(*v) for k, v in hfio.read_tensors(wmap[None]).items()}
    out = {}
    for fname in sorted(set(wmap.values())):
        got = hfio.read_tensors(os.path.join(d, fname))
        for name, shard in wmap.items():
            if shard == fname:
                if name not in got:
                    raise ValueError(f"{fname}: no tensor {name} (the index names it)")
                out[name] = _float64(*got[name])
    return out


def load(path):
    """Config and weights of a checkpoint directory (or a weight file inside
    it, then config.json comes from the same directory)."""
    d = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    m = Model()
    m.cfg = cfg
    m.arch = cfg["architectures"][0]
    if m.arch not in ARCHS:
        raise ValueError(f"architecture {m.arch} not supported")
    if cfg.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {cfg['hidden_act']} not supported")
    m.D, m.F = cfg["hidden_size"], cfg["intermediate_size"]
    m.L, m.H, m.V = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["vocab_size"]
    m.G = cfg.get("num_key_value_heads") or m.H
    m.d = cfg.get("head_dim") or m.D // m.H
    m.C = cfg.get("max_position_embeddings") or cfg.get("model_max_length")
    m.eps = cfg.get("rms_norm_eps", 1e-6)
    m.theta = float(cfg.get("rope_theta", 10000.0))
    m.rope_scaling = cfg.get("rope_scaling")
    m.window = cfg.get("sliding_window") if m.arch == "MistralForCausalLM" else None
    m.tie = bool(cfg.get("tie_word_embeddings", False))
    baichuan = m.arch == "BaichuanForCausalLM"
    m.norm_head = baichuan
    # Baichuan 13B (5120 wide, 40 blocks) is ALiBi, everything else RoPE
    m.positions = "alibi" if baichuan and m.D == 5120 and m.L == 40 else "rope"
    m.positions = cfg.get("position_embedding", m.positions)
    w = _read_weights(path)
    D, H, G, d = m.D, m.H, m.G, m.d
    for l in range(m.L):
        p = f"model.layers.{l}.self_attn."
        if baichuan:
            pack = w.pop(p + "W_pack.weight")                      # (3D, D): q, k, v rows
            w[p + "q_proj.weight"], w[p + "k_proj.weight"], w[p + "v_proj.weight"] = \
                pack[:D], pack[D:2 * D], pack[2 * D:]
    want = {"model.embed_tokens.weight": (m.V, D), "model.norm.weight": (D,)}
    for l in range(m.L):
        p = f"model.layers.{l}."
        want.update({p + "input_layernorm.weight": (D,),
                     p + "post_attention_layernorm.weight": (D,),
                     p + "self_attn.q_proj.weight": (H * d, D),
                     p + "self_attn.k_proj.weight": (G * d, D),
                     p + "self_attn.v_proj.weight": (G * d, D),
                     p + "self_attn.o_proj.weight": (D, H * d),
                     p + "mlp.gate_proj.weight": (m.F, D),
                     p + "mlp.up_proj.weight": (m.F, D),
                     p + "mlp.down_proj.weight": (D, m.F)})
    if not m.tie:
        want["lm_head.weight"] = (m.V, D)
    for name, shape in want.items():
        if name not in w:
            raise ValueError(f"tensor {name} missing")
        if w[name].shape != shape:
            raise ValueError(f"tensor {name} has shape {w[name].shape}, expected {shape}")
    m.w = {k: w[k] for k in want}
    cls = m.w["model.embed_tokens.weight"] if m.tie else m.w["lm_head.weight"]
    if m.norm_head:
        cls = cls / np.maximum(np.linalg.norm(cls, axis=1, keepdims=True), 1e-12)
    m.w["classifier"] = cls
    return m


# ----------------------------------------------------------------- positions

def inv_freq(theta, d, scaling=None, C=None, P=None):
    """Frequencies theta_i (d/2,) after rope_scaling for a sequence of P
    positions, and the factor cos and sin are multiplied by (yarn)."""
    i = np.arange(d // 2, dtype=np.float64)
    base = theta ** (-2.0 * i / d)
    if not scaling:
        return base, 1.0
    kind = scaling.get("rope_type", scaling.get("type"))
    s = float(scaling.get("factor", 1.0))
    C = scaling.get("original_max_position_embeddings") or C
    if kind == "default":
        return base, 1.0
    if kind == "linear":
        return base / s, 1.0
    if kind == "dynamic":
        if P is None or P <= C:
            return base, 1.0
        b = theta * (s * P / C - (s - 1.0)) ** (d / (d - 2.0))
        return b ** (-2.0 * i / d), 1.0
    if kind == "yarn":
        fast = scaling.get("beta_fast") or 32.0
        slow = scaling.get("beta_slow") or 1.0
        att = scaling.get("attention_factor")
        if att is None:
            att = 0.1 * math.log(s) + 1.0 if s > 1 else 1.0

        def cd(r):
            return d * math.log(C / (2 * math.pi * r)) / (2 * math.log(theta))
        low = max(math.floor(cd(fast)), 0)
        high = min(math.ceil(cd(slow)), d - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((i - low) / (high - low), 0.0, 1.0)
        extrap = 1.0 - ramp
        return base / s * (1.0 - extrap) + base * extrap, float(att)
    if kind == "llama3":
        lo, hi = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        C0 = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / base
        out = np.where(wavelen > C0 / lo, base / s, base)
        smooth = (C0 / wavelen - lo) / (hi - lo)
        mid = (wavelen >= C0 / hi) & (wavelen <= C0 / lo)
        return np.where(mid, (1 - smooth) * base / s + smooth * base, out), 1.0
    raise ValueError(f"rope_scaling type {kind!r} not supported")


def rope_rotate_half(x, freq, scale, pos):
    """x (T, n, d) rotated by pos * freq: dimension i pairs with i + d/2."""
    ang = pos[:, None] * freq[None, :]                              # (T, d/2)
    c = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1)[:, None, :] * scale
    s = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1)[:, None, :] * scale
    h = x.shape[-1] // 2
    rot = np.concatenate([-x[..., h:], x[..., :h]], axis=-1)
    return x * c + rot * s


def alibi_slopes(n):
    """Baichuan's _get_interleave: 2^(-8k/n), k = 1..n, for n a power of two;
    otherwise the slopes of the largest power of two p below n, then every
    other slope (first, third, ...) of the 2p set for the remaining n - p."""
    def pow2(m):
        return [2.0 ** (-8.0 * k / m) for k in range(1, m + 1)]
    if n & (n - 1) == 0:
        return np.array(pow2(n))
    p = 1 << (n.bit_length() - 1)
    return np.concatenate([pow2(p), alibi_slopes(2 * p)[0::2][:n - p]])


# ----------------------------------------------------------------- forward

def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def forward(model, tokens, positions=None):
    """Hidden states (L+1, T, D) (0 = embeddings, l+1 = residual after block
    l, before the final norm) and logits (T, V), float64, for tokens at
    positions 0..T-1. model: a checkpoint path or a Model from load();
    positions: None (the checkpoint's scheme) or "rope" | "alibi" | "none"."""
    m = model if isinstance(model, Model) else load(model)
    tokens = np.asarray(tokens, dtype=np.int64)
    T, D, H, G, d = len(tokens), m.D, m.H, m.G, m.d
    if T == 0 or tokens.min() < 0 or tokens.max() >= m.V:
        raise ValueError("empty token list or token id out of range")
    scheme = positions or m.positions
    pos = np.arange(T, dtype=np.float64)
    if scheme == "rope":
        freq, scale = inv_freq(m.theta, d, m.rope_scaling, m.C, T)
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    visible = j <= i
    if m.window:
        visible &= j > i - m.window
    bias = np.where(visible, 0.0, -np.inf)[None]                    # (1, T, T)
    if scheme == "alibi":
        bias = bias + alibi_slopes(H)[:, None, None] * (j - i)[None]  # (H, T, T)
    w = m.w
    hidden = np.empty((m.L + 1, T, D))
    x = w["model.embed_tokens.weight"][tokens]                      # (T, D)
    hidden[0] = x
    for l in range(m.L):
        p = f"model.layers.{l}."
        xb = rmsnorm(x, w[p + "input_layernorm.weight"], m.eps)
        q = (xb @ w[p + "self_attn.q_proj.weight"].T).reshape(T, H, d)
        k = (xb @ w[p + "self_attn.k_proj.weight"].T).reshape(T, G, d)
        v = (xb @ w[p + "self_attn.v_proj.weight"].T).reshape(T, G, d)
        if scheme == "rope":
            q = rope_rotate_half(q, freq, scale, pos)
            k = rope_rotate_half(k, freq, scale, pos)
        k = np.repeat(k, H // G, axis=1)                            # head h reads h // (H/G)
        v = np.repeat(v, H // G, axis=1)
        q, k, v = (a.transpose(1, 0, 2) for a in (q, k, v))        # (H, T, d)
        sc = q @ k.transpose(0, 2, 1) / math.sqrt(d) + bias         # (H, T, T)
        sc -= sc.max(axis=-1, keepdims=True)
        pr = np.exp(sc)
        pr /= pr.sum(axis=-1, keepdims=True)
        att = (pr @ v).transpose(1, 0, 2).reshape(T, H * d)
        x = x + att @ w[p + "self_attn.o_proj.weight"].T
        xb = rmsnorm(x, w[p + "post_attention_layernorm.weight"], m.eps)
        g = xb @ w[p + "mlp.gate_proj.weight"].T
        u = xb @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
        hidden[l + 1] = x
    logits = rmsnorm(x, w["model.norm.weight"], m.eps) @ w["classifier"].T
    return hidden, logits


def main(argv=None):
    ap = argparse.ArgumentParser(description="float64 reference forward pass of a Hugging "
                                 "Face checkpoint (Llama, Mistral, Baichuan)")
    ap.add_argument("model", help="checkpoint directory or a weight file in it")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--position-embedding", dest="positions", choices=["rope", "alibi", "none"])
    a = ap.parse_args(argv)
    try:
        toks = [int(t) for t in a.tokens.split(",")]
        hidden, logits = forward(a.model, toks, a.positions)
    except (OSError, ValueError, KeyError) as e:
        print(f"ref_hf: {e}", file=sys.stderr)
        return 1
    print("hidden rms per layer:", " ".join(f"{np.sqrt(np.mean(h * h)):.4g}" for h in hidden))
    print("argmax of the last logits:", int(np.argmax(logits[-1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
