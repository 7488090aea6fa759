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
# common, weak): nm -g --defined-only prints "address type name". Under
# `make check` ASan adds a global __odr_asan.NAME beside each global variable
# NAME; the name it stands for is the one checked.
exports() {
    nm -g --defined-only "$1" 2>/dev/null | awk 'NF == 3 {sub(/^__odr_asan[._]/, "", $3); print $3}'
}
syms=$(exports "$A")
grep -qx strata_model_load <<<"$syms"; ok "nm lists $A's exports (strata_model_load among them)" $?
bad=$(grep -v '^strata_' <<<"$syms")
[ -z "$bad" ]; ok "every exported symbol has the strata_ prefix" $?
[ -n "$bad" ] && printf 'exported without strata_: %s\n' $bad >&2

# The command-line layer's own archive (its CLIA): every export starts with cli_.
if [ "$BUILD" = build ]; then C=lib/cli/libstrata_cli.a; else C=$BUILD/libstrata_cli.a; fi
csyms=$(exports "$C")
grep -qx cli_parse <<<"$csyms"; ok "nm lists $C's exports (cli_parse among them)" $?
cbad=$(grep -v '^cli_' <<<"$csyms")
[ -z "$cbad" ]; ok "every symbol the CLI layer exports has the cli_ prefix" $?
[ -n "$cbad" ] && printf 'exported without cli_: %s\n' $cbad >&2

echo "test_symbols: $pass passed, $fail failed"
[ $fail -eq 0 ]
