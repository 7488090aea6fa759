#!/usr/bin/env bash
# test_symbols.sh — every symbol libstrata.a exports starts with strata_, so
# linking the library into a program never collides with the program's own
# names; file-private helpers are static.
set -u
BUILD=${BUILD:-build}
# Where the Makefile puts the archive (its LIBA).
if [ "$BUILD" = build ]; then A=lib/libstrata.a; else A=$BUILD/libstrata.a; fi
pass=0 fail=0
ok() { # description, command status (0 = pass)
    if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi
}

# Every global definition, whatever its kind (text, data, bss, read-only,
# common, weak): nm -g --defined-only prints "address type name".
syms=$(nm -g --defined-only "$A" 2>/dev/null | awk 'NF == 3 {print $3}')
grep -qx strata_model_load <<<"$syms"; ok "nm lists $A's exports (strata_model_load among them)" $?
bad=$(grep -v '^strata_' <<<"$syms")
[ -z "$bad" ]; ok "every exported symbol has the strata_ prefix" $?
[ -n "$bad" ] && printf 'exported without strata_: %s\n' $bad >&2

echo "test_symbols: $pass passed, $fail failed"
[ $fail -eq 0 ]
