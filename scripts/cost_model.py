#!/usr/bin/env python3
"""cost_model.py — the numbers of docs/SCALING.md: time, memory per rank and
output size of the P1 (positional vectors) and P3 (Block Influence) studies
on Llama-2-7B, 13B and 70B, from one measured rate.

The only measured input is the rate a machine sustains on the projections
(GFLOP/s; `make bench` prints it per block as "strata forward ... GFLOP/s",
and the fraction of the bare-sgemm rate reached). Everything else is
arithmetic on the published shapes:

  flops per token = sum over blocks of 2 * (weights of the block)     (GEMMs)
                  + 2 * T * H * d per block        (attention: q.k and p.v
                                                    over T/2 keys on average)
  tokens/s on one machine = rate / flops per token
  time(N tokens, M machines) = N / (M * tokens/s)      (samples split over
                                                        ranks; pipeline mode
                                                        has the same total)
  dump bytes per token (all L+1 boundaries, float32) = (L + 1) * D * 4
  P1 statistics bytes = (L + 1) * P * (D + 1) * 8     (independent of N)
  P3 statistics bytes = N_samples * L * 5 * 8         (five metrics)

usage: scripts/cost_model.py [--gflops R] [--window T] [--markdown]
"""
import argparse

MODELS = {  # L, D, F, H, G (published configs), V
    "Llama-2-7B": (32, 4096, 11008, 32, 32, 32000),
    "Llama-2-13B": (40, 5120, 13824, 40, 40, 32000),
    "Llama-2-70B": (80, 8192, 28672, 64, 8, 32000),
}
MACHINE_GIB = 24  # this machine kind: 2 cores, 24 GiB


def block_params(D, F, H, G):
    d = D // H
    return D * H * d + 2 * D * G * d + H * d * D + 3 * D * F


def flops_per_token(L, D, F, H, G, T):
    d = D // H
    return L * (2 * block_params(D, F, H, G) + 2 * T * H * d)


def human_time(s):
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def human_bytes(b):
    for unit, k in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if b >= k:
            return f"{b / k:.1f} {unit}"
    return f"{b:.0f} B"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gflops", type=float, default=240.0,
                    help="sustained projection rate of one machine (GFLOP/s)")
    ap.add_argument("--window", type=int, default=4096, help="tokens per sample T")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    T = a.window
    rows = []
    for name, (L, D, F, H, G, V) in MODELS.items():
        fpt = flops_per_token(L, D, F, H, G, T)
        tps = a.gflops * 1e9 / fpt
        params = L * block_params(D, F, H, G) + 2 * V * D
        bf16 = params * 2 / 2**30
        ranks_needed = 1
        while bf16 / ranks_needed + 3 > MACHINE_GIB:  # + one widened block, scratch
            ranks_needed += 1
        for N in (1e5, 1e6, 1e7):
            times = [human_time(N / (m * tps)) for m in (1, 8, 64)]
            dump = N * (L + 1) * D * 4
            p1 = (L + 1) * T * (D + 1) * 8
            p3 = N / T * L * 5 * 8
            rows.append((name, f"{fpt / 1e9:.1f}", f"{tps:.1f}", f"{N:.0e}", *times,
                         f"{bf16:.1f} GiB / {ranks_needed}", human_bytes(dump), human_bytes(dump / 2),
                         human_bytes(p1), human_bytes(p3)))
    head = ("model", "GFLOP/token", "tokens/s (1 machine)", "tokens", "1 machine", "8 machines",
            "64 machines", "bf16 weights / min ranks", "dump f32", "dump f16", "P1 stats", "P3 stats")
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + " --- |" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        for r in rows:
            print(", ".join(f"{h}={v}" for h, v in zip(head, r)))


if __name__ == "__main__":
    main()
