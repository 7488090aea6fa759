#!/usr/bin/env bash
# make bench: forward throughput on generated models against a bare sgemm
# loop measured in the same run (bench/bench_forward.c says why). Models are
# generated once into data/cache/ (about 0.9 GB for the 7B-shaped layer).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cache=data/cache
mkdir -p "$cache"
gen() { # file, mkmodel args...
    local f=$cache/$1; shift
    [ -f "$f" ] || { echo "bench: generating $f" >&2; "$BUILD/tests/mkmodel" "$@" -o "$f"; }
}
gen bench-w1024.bin --dim 1024 --hidden 2816 --layers 4 --heads 16 --kv-heads 4 --vocab 512 --seq-len 512 --seed 1
gen bench-7b-layer.bin --dim 4096 --hidden 11008 --layers 1 --heads 32 --kv-heads 32 --vocab 512 --seq-len 512 --seed 2
echo "== width 1024, 4 blocks, GQA 16/4"
"$BUILD/bench/bench_forward" "$cache/bench-w1024.bin" 512 5
echo "== one Llama-7B-shaped block (llama.cpp CPU: 1.8 s/layer at 512 tokens, 1.5 s of it sgemm)"
"$BUILD/bench/bench_forward" "$cache/bench-7b-layer.bin" 512 3
