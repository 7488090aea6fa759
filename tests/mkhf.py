#!/usr/bin/python3
"""mkhf.py — write small random Hugging Face checkpoints (config.json plus
safetensors or PyTorch .bin weights, single file or sharded) for the tests
of strata's Hugging Face loader (docs/CHECKPOINTS.md is the contract).

Why random weights: the tests need checkpoints of every architecture,
position scheme and file layout strata reads, small enough to run a float64
reference on in milliseconds; the published models are gigabytes. The
weights are deterministic from --seed, and scaled so activations stay O(1)
through the blocks (so a comparison at 1e-4 of the layer's scale means
something): embeddings N(0,1)*0.5, norm weights 1 + N(0,1)*0.1, q/k/v and
gate/up projections N(0,1)/sqrt(fan_in) (q.k/sqrt(d) of order 1, so the
softmax is neither flat nor one-hot), o and down projections
N(0,1)*0.5/sqrt(fan_in), the classifier N(0,1)/sqrt(D).

Architectures (--arch):
  llama       LlamaForCausalLM, q/k/v_proj, GQA via --kv-heads
  mistral     MistralForCausalLM, as llama plus sliding_window
  baichuan7   BaichuanForCausalLM with the Baichuan2-7B config keys
              (max_position_embeddings and model_max_length, no rope_theta),
              fused W_pack (3D, D)
  baichuan13  BaichuanForCausalLM with the Baichuan2-13B config keys
              (model_max_length only); default 40 heads, D 320, 2 layers, and
              "position_embedding": "alibi" in config.json, because a small
              model cannot be recognised as 13B by its shape

Tensors go through tests/hfio.py (to_bf16, write_sharded) so the generator
and strata share no code. Usable as a module (make_config, make_weights,
encode, write, generate) or as a command; see --help.

Legend: L blocks, D width, F MLP width, H query heads, G key/value heads,
d head width, V vocabulary, C trained context.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hfio  # noqa: E402

ARCHS = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "baichuan7": "BaichuanForCausalLM",
    "baichuan13": "BaichuanForCausalLM",
}
DTYPES = {"f32": "F32", "bf16": "BF16", "f16": "F16"}


def make_config(arch="llama", dim=None, hidden=None, layers=None, heads=None, kv_heads=None,
                vocab=512, max_pos=None, rope_theta=None, rope_scaling=None,
                sliding_window=None, tie=False, position_embedding=None, head_dim=None,
                rms_norm_eps=None, dtype="f32"):
    """config.json as a dict, with the keys Hugging Face (or Baichuan's own
    modeling code) writes for that architecture. None means the default."""
    if arch not in ARCHS:
        raise ValueError(f"unknown --arch {arch!r}; one of {', '.join(ARCHS)}")
    b13 = arch == "baichuan13"
    dim = dim or (320 if b13 else 64)
    heads = heads or (40 if b13 else 4)
    layers = layers or (2 if b13 else 3)
    hidden = hidden or (8 * dim // 3 + 7) // 8 * 8
    eps = rms_norm_eps if rms_norm_eps is not None else (1e-6 if arch.startswith("baichuan")
                                                           else 1e-5)
    torch_dtype = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[dtype]
    cfg = {"architectures": [ARCHS[arch]]}
    if arch.startswith("baichuan"):
        if kv_heads not in (None, heads):
            raise ValueError("Baichuan has no GQA: --kv-heads must equal --heads")
        if sliding_window is not None or rope_scaling is not None or rope_theta is not None:
            raise ValueError("Baichuan configs have no sliding_window, rope_scaling, rope_theta")
        if head_dim is not None:
            raise ValueError("Baichuan configs have no head_dim")
        cfg.update({
            "_from_model_config": True,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": dim,
            "initializer_range": 0.02,
            "intermediate_size": hidden,
        })
        if not b13:
            cfg["max_position_embeddings"] = max_pos or 4096
        cfg.update({
            "model_max_length": max_pos or 4096,
            "model_type": "baichuan",
            "num_attention_heads": heads,
            "num_hidden_layers": layers,
            "pad_token_id": 0,
            "rms_norm_eps": eps,
            "tie_word_embeddings": bool(tie),
            "torch_dtype": torch_dtype,
            "transformers_version": "4.29.2",
            "use_cache": True,
            "vocab_size": vocab,
            "z_loss_weight": 0,
        })
        if b13 and position_embedding is None:
            position_embedding = "alibi"
    else:
        if sliding_window is not None and arch != "mistral":
            raise ValueError("--sliding-window is a Mistral key")
        cfg.update({
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": dim,
            "initializer_range": 0.02,
            "intermediate_size": hidden,
            "max_position_embeddings": max_pos or 2048,
            "model_type": "llama" if arch == "llama" else "mistral",
            "num_attention_heads": heads,
            "num_hidden_layers": layers,
            "num_key_value_heads": kv_heads or heads,
            "rms_norm_eps": eps,
            "rope_scaling": rope_scaling,
            "rope_theta": float(rope_theta if rope_theta is not None else 10000.0),
            "tie_word_embeddings": bool(tie),
            "torch_dtype": torch_dtype,
            "transformers_version": "4.44.0",
            "use_cache": True,
            "vocab_size": vocab,
        })
        if arch == "llama":
            cfg["mlp_bias"] = False
            cfg["pretraining_tp"] = 1
        else:
            cfg["sliding_window"] = sliding_window
        if head_dim is not None:
            cfg["head_dim"] = head_dim
    if position_embedding not in (None, "omit"):
        if position_embedding not in ("rope", "alibi", "none"):
            raise ValueError(f"--position-embedding {position_embedding!r}: rope, alibi or none")
        cfg["position_embedding"] = position_embedding
    if dim % heads and head_dim is None:
        raise ValueError(f"--dim {dim} is not a multiple of --heads {heads}")
    if heads % (kv_heads or heads):
        raise ValueError(f"--heads {heads} is not a multiple of --kv-heads {kv_heads}")
    return cfg


def shapes(cfg):
    """[(name, shape)] of every tensor the checkpoint holds, in file order."""
    D, F = cfg["hidden_size"], cfg["intermediate_size"]
    L, H, V = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["vocab_size"]
    G = cfg.get("num_key_value_heads", H)
    d = cfg.get("head_dim") or D // H
    baichuan = cfg["architectures"][0] == "BaichuanForCausalLM"
    out = [("model.embed_tokens.weight", (V, D))]
    for l in range(L):
        p = f"model.layers.{l}."
        out.append((p + "input_layernorm.weight", (D,)))
        if baichuan:
            out.append((p + "self_attn.W_pack.weight", (3 * D, D)))
        else:
            out += [(p + "self_attn.q_proj.weight", (H * d, D)),
                    (p + "self_attn.k_proj.weight", (G * d, D)),
                    (p + "self_attn.v_proj.weight", (G * d, D))]
        out += [(p + "self_attn.o_proj.weight", (D, H * d)),
                (p + "post_attention_layernorm.weight", (D,)),
                (p + "mlp.gate_proj.weight", (F, D)),
                (p + "mlp.up_proj.weight", (F, D)),
                (p + "mlp.down_proj.weight", (D, F))]
    out.append(("model.norm.weight", (D,)))
    if not cfg.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", (V, D)))
    return out


def make_weights(cfg, seed=1):
    """name -> float64 array, deterministic from seed (scales in the banner)."""
    rng = np.random.default_rng(seed)
    w = {}
    for name, shape in shapes(cfg):
        z = rng.standard_normal(shape)
        if name.endswith("embed_tokens.weight"):
            w[name] = z * 0.5
        elif len(shape) == 1:                       # RMSNorm weights
            w[name] = 1.0 + 0.1 * z
        elif name.endswith(("o_proj.weight", "down_proj.weight")):
            w[name] = z * (0.5 / np.sqrt(shape[1]))
        else:                                       # q/k/v, W_pack, gate/up, lm_head
            w[name] = z / np.sqrt(shape[1])
    return w


def encode(weights, dtype="f32"):
    """float64 weights -> hfio's {name: (dtype, array)} in one storage dtype
    ("f32", "bf16", "f16", or the hfio names "F32", "BF16", "F16")."""
    dt = DTYPES.get(dtype, dtype)
    out = {}
    for name, a in weights.items():
        if dt == "F32":
            out[name] = ("F32", np.ascontiguousarray(a, dtype=np.float32))
        elif dt == "F16":
            out[name] = ("F16", np.ascontiguousarray(a, dtype=np.float16))
        elif dt == "BF16":
            out[name] = ("BF16", hfio.to_bf16(np.ascontiguousarray(a, dtype=np.float32)))
        else:
            raise ValueError(f"dtype {dtype!r}: f32, bf16 or f16")
    return out


def write(out, cfg, tensors, fmt="safetensors", shards=1):
    """config.json and the weights into directory out (created)."""
    if fmt not in ("safetensors", "bin"):
        raise ValueError(f"--format {fmt!r}: safetensors or bin")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    hfio.write_sharded(out, tensors, shards, fmt)


def generate(out, arch="llama", dtype="f32", fmt="safetensors", shards=1, seed=1, **kw):
    """make_config + make_weights + encode + write; returns the config."""
    cfg = make_config(arch, dtype=dtype, **kw)
    write(out, cfg, encode(make_weights(cfg, seed), dtype), fmt, shards)
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description="write a small random Hugging Face checkpoint "
                                 "(config.json + weights) for strata's loader tests")
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    ap.add_argument("--format", default="safetensors", choices=["safetensors", "bin"])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dim", type=int, help="D (64; baichuan13 320)")
    ap.add_argument("--hidden", type=int, help="F (8D/3 rounded up to 8)")
    ap.add_argument("--layers", type=int, help="L (3; baichuan13 2)")
    ap.add_argument("--heads", type=int, help="H (4; baichuan13 40)")
    ap.add_argument("--kv-heads", type=int, help="G (= H)")
    ap.add_argument("--head-dim", type=int, help="d, written as head_dim (default D/H, "
                    "not written)")
    ap.add_argument("--vocab", type=int, default=512, help="V (512, tok512.bin's size)")
    ap.add_argument("--max-pos", type=int, help="C (2048; Baichuan 4096)")
    ap.add_argument("--rope-theta", type=float)
    ap.add_argument("--rope-scaling", help='JSON, e.g. \'{"rope_type": "linear", "factor": 2}\'')
    ap.add_argument("--sliding-window", type=int)
    ap.add_argument("--rms-norm-eps", type=float)
    ap.add_argument("--tie", action="store_true", help="tie_word_embeddings, no lm_head")
    ap.add_argument("--position-embedding", choices=["rope", "alibi", "none", "omit"],
                    help="strata's config key (baichuan13 default alibi; omit = leave it out)")
    a = ap.parse_args(argv)
    try:
        scaling = json.loads(a.rope_scaling) if a.rope_scaling else None
        if a.shards < 1:
            raise ValueError("--shards must be >= 1")
        cfg = generate(a.out, a.arch, a.dtype, a.format, a.shards, a.seed, dim=a.dim,
                       hidden=a.hidden, layers=a.layers, heads=a.heads, kv_heads=a.kv_heads,
                       head_dim=a.head_dim, vocab=a.vocab, max_pos=a.max_pos,
                       rope_theta=a.rope_theta, rope_scaling=scaling,
                       sliding_window=a.sliding_window, tie=a.tie,
                       position_embedding=a.position_embedding, rms_norm_eps=a.rms_norm_eps)
    except (OSError, ValueError) as e:
        print(f"mkhf: {e}", file=sys.stderr)
        return 1
    print(f"mkhf: {a.out}: {cfg['architectures'][0]} D {cfg['hidden_size']} "
          f"L {cfg['num_hidden_layers']} H {cfg['num_attention_heads']} "
          f"{a.dtype} {a.format} x{a.shards}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
