#!/usr/bin/env bash
# make fuzz [FUZZ_SECONDS=N] [FUZZ_RUNS=N] [FUZZ_TARGETS="a b"]: build the libFuzzer harnesses of
# tests/fuzz/fuzz_load.c (clang, ASan + UBSan, coverage on the library),
# make seed corpora from small files the project itself writes, and run every
# target for N seconds (default 60; .ci/run runs a 10 s smoke). A target
# fails on any sanitizer report, crash, leak, timeout (-timeout) or an
# allocation beyond -rss_limit_mb; its reproducer is kept in
# build/fuzz/findings/<target>/. Prints "fuzz: N passed, N failed".
# FUZZ_RUNS=N runs N inputs from seed 1 instead of a time: the same inputs on
# every machine (what .ci/run does). Leaks allocated inside libhdf5 (its own
# error paths on corrupt files) are suppressed (lsan-hdf5.supp);
# docs/RELIABILITY.md lists what is inside HDF5 and cannot be guarded.
set -u
cd "$(dirname "$0")/../.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
SHARED=${SHARED:-../shared}
PYTHON=${PYTHON:-/usr/bin/python3}
B=build/fuzz
mkdir -p "$B/obj" "$B/seeds" "$B/findings"
command -v clang >/dev/null || { echo "fuzz: clang not found (apt-get install clang)"; exit 2; }

# The library with coverage and sanitizers (no libFuzzer main in it).
FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
CPP="-Ilib $(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial) -D_POSIX_C_SOURCE=200809L"
LIBS="$(pkg-config --libs hdf5 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5)"
LIBS="${LIBS/-lhdf5/-lhdf5_hl -lhdf5} -llapacke -lopenblas -lcjson -lm -lpthread"
objs=()
for c in lib/*.c; do
    o=$B/obj/$(basename "${c%.c}").o
    if [ ! -f "$o" ] || [ "$c" -nt "$o" ] || [ lib/strata.h -nt "$o" ]; then
        clang -std=c11 $CPP $FLAGS -c -o "$o" "$c" || exit 2
    fi
    objs+=("$o")
done
rm -f "$B/libstrata_fuzz.a" && ar rcs "$B/libstrata_fuzz.a" "${objs[@]}"

targets=(llama2c safetensors st_index config torch tok_llama2c tok_spm tok_json corpus dump stats posvec attn gguf)
for i in "${!targets[@]}"; do
    t=${targets[$i]}
    clang -std=c11 $CPP -O1 -g -fsanitize=fuzzer,address,undefined -DFUZZ_TARGET=$((i + 1)) \
        -o "$B/fuzz_$t" tests/fuzz/fuzz_load.c "$B/libstrata_fuzz.a" $LIBS || exit 2
done

# Seeds: small real files, written by the project's own tools.
S=$B/seeds
mkdir -p "${targets[@]/#/$S/}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
BIN=${BINDIR:-bin}
build/tests/mkmodel --dim 8 --hidden 16 --layers 1 --heads 2 --kv-heads 1 --vocab 16 --seq-len 8 \
    --seed 1 -o "$S/llama2c/tiny.bin" >/dev/null 2>&1
"$PYTHON" tests/mkhf.py --arch llama --out "$T/st" --dim 8 --hidden 16 --layers 1 --heads 2 >/dev/null 2>&1
"$PYTHON" tests/mkhf.py --arch llama --out "$T/sh" --dim 8 --hidden 16 --layers 1 --heads 2 --shards 2 >/dev/null 2>&1
"$PYTHON" tests/mkhf.py --arch llama --out "$T/bin" --dim 8 --hidden 16 --layers 1 --heads 2 --format bin >/dev/null 2>&1
cp "$T/st/model.safetensors" "$S/safetensors/" 2>/dev/null
cp "$T/sh/model.safetensors.index.json" "$S/st_index/" 2>/dev/null
cp "$T/st/config.json" "$S/config/" 2>/dev/null
cp "$T/bin/pytorch_model.bin" "$S/torch/" 2>/dev/null
cp "$SHARED/models/stories260K/tok512.bin" "$S/tok_llama2c/"
cp "$SHARED/models/llama2-tokenizer/tokenizer.model" "$S/tok_spm/"
"$PYTHON" - "$SHARED/models/llama2-tokenizer/tokenizer.model" "$S/tok_json/tokenizer.json" <<'EOF' 2>/dev/null
import json, sys
# a small SentencePiece-style BPE tokenizer.json: byte fallback and a few merges
vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    vocab[f"<0x{b:02X}>"] = len(vocab)
for p in ["\u2581", "a", "b", "\u2581a", "ab"]:
    vocab[p] = len(vocab)
doc = {"model": {"type": "BPE", "vocab": vocab, "merges": ["\u2581 a", "a b"], "byte_fallback": True,
                 "unk_token": "<unk>"},
       "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                          {"type": "Replace", "pattern": {"String": " "},
                                                           "content": "\u2581"}]},
       "pre_tokenizer": None, "decoder": None,
       "added_tokens": [{"id": 0, "content": "<unk>", "special": True}]}
json.dump(doc, open(sys.argv[2], "w"))
EOF
"$PYTHON" tests/mkgguf.py --seeds "$S/gguf" >/dev/null 2>&1
head -c 4000 "$SHARED/corpora/tinystories-val-1000.txt" >"$S/corpus/stories.txt"
printf '{"text": "one"}\n{"text": "two three"}\n' >"$S/corpus/c.jsonl"
printf '1 5 7 9\n1 3\n' >"$S/corpus/c.ids"
M=$SHARED/models/stories260K/stories260K.bin
K=$SHARED/models/stories260K/tok512.bin
C=$SHARED/corpora/tinystories-val-1000.txt
"$BIN/strata-probe-hidden" -q --model "$M" --tokenizer "$K" --corpus "$C" --samples 2 --seq-len 8 \
    -o "$S/dump/d.h5" >/dev/null 2>&1
"$BIN/strata-probe-stats" -q --model "$M" --tokenizer "$K" --corpus "$C" --samples 2 --seq-len 8 \
    -o "$S/stats/s.h5" >/dev/null 2>&1
"$BIN/strata-posvec" decompose "$S/dump/d.h5" -o "$S/posvec/pv.h5" -q >/dev/null 2>&1
"$BIN/strata-probe-attn" -q --model "$M" --tokenizer "$K" --corpus "$C" --samples 2 --seq-len 8 \
    -o "$S/attn/a.h5" >/dev/null 2>&1

passed=0 failed=0
export LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan-hdf5.supp:print_suppressions=0"
if [ -n "${FUZZ_RUNS:-}" ]; then budget=(-runs="$FUZZ_RUNS" -seed=1); else budget=(-max_total_time="$SECONDS_EACH"); fi
for t in ${FUZZ_TARGETS:-${targets[@]}}; do
    mkdir -p "$B/findings/$t" "$B/corpus/$t"
    if "$B/fuzz_$t" "$B/corpus/$t" "$S/$t" "${budget[@]}" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -artifact_prefix="$B/findings/$t/" \
        -print_final_stats=0 >"$B/$t.log" 2>&1; then
        passed=$((passed + 1))
        echo "fuzz $t: $(grep -o 'Done [0-9]* runs' "$B/$t.log" | tail -1)"
    else
        failed=$((failed + 1))
        echo "fuzz $t: FAILED, see $B/$t.log and $B/findings/$t/"
        grep -m 3 -E "ERROR|SUMMARY|runtime error" "$B/$t.log"
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
