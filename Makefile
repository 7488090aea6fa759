# strata — plain Makefile. `make` builds lib/libstrata.a and bin/*;
# `make test` installs missing Debian packages, builds and runs the suite;
# `make check` runs the same suite under AddressSanitizer and UBSan.

CC      ?= gcc
OPT     ?= -O2 -march=native
WARN    := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wpointer-arith -Wdouble-promotion -Werror
# HDF5 from pkg-config (Debian's hdf5.pc is the serial flavour); without an
# hdf5.pc, Debian's serial paths. pkg-config's Libs omit the high-level
# library (dimension scales), which sits beside libhdf5 in the same -L
# directory: -lhdf5_hl goes in just before -lhdf5.
ifeq ($(shell pkg-config --exists hdf5 2>/dev/null && echo y),y)
HDF5_CFLAGS := $(shell pkg-config --cflags hdf5)
HDF5_LIBS   := $(shell pkg-config --libs hdf5)
else
HDF5_CFLAGS := -I/usr/include/hdf5/serial
HDF5_LIBS   := -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5
endif
CPPFLAGS += -Ilib $(HDF5_CFLAGS) -D_POSIX_C_SOURCE=200809L
CFLAGS  ?= $(OPT) -g
# Open MPI (Debian's openmpi-bin, libopenmpi-dev; issue 12): only the
# command-line layer (lib/cli/mpi.c) includes mpi.h and only programs and
# tests link it; lib/libstrata.a stays free of MPI. Flags from pkg-config
# ompi-c, else mpicc --showme; its headers as system headers (-isystem) so
# our -Werror does not judge them. Without Open MPI the layer builds its
# single-process stand-ins (-DSTRATA_NO_MPI); `make test` installs it first.
ifeq ($(shell pkg-config --exists ompi-c 2>/dev/null && echo y),y)
MPI_CFLAGS := $(patsubst -I%,-isystem %,$(shell pkg-config --cflags ompi-c))
MPI_LIBS   := $(shell pkg-config --libs ompi-c)
else ifneq ($(shell command -v mpicc 2>/dev/null),)
MPI_CFLAGS := $(patsubst -I%,-isystem %,$(shell mpicc --showme:compile))
MPI_LIBS   := $(shell mpicc --showme:link)
else
MPI_CFLAGS := -DSTRATA_NO_MPI
MPI_LIBS   :=
endif
LDLIBS  := $(patsubst -lhdf5,-lhdf5_hl -lhdf5,$(HDF5_LIBS)) -llapacke -lopenblas -lcjson $(MPI_LIBS) -lm -lpthread

# `make check` rebuilds everything here with sanitizers.
BUILD   ?= build
BINDIR  ?= bin
SAN     ?=
ifeq ($(SAN),1)
CFLAGS  := -O1 -march=native -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:lib/%.c=$(BUILD)/lib/%.o)
LIBA     := $(if $(filter build,$(BUILD)),lib/libstrata.a,$(BUILD)/libstrata.a)
# The command-line layer (lib/cli/, programs and their tests only): its own
# archive, linked before libstrata.a.
CLI_SRC  := $(wildcard lib/cli/*.c)
CLI_OBJ  := $(CLI_SRC:lib/cli/%.c=$(BUILD)/lib/cli/%.o)
CLIA     := $(if $(filter build,$(BUILD)),lib/cli/libstrata_cli.a,$(BUILD)/libstrata_cli.a)
PROG_SRC := $(wildcard probes/*.c analyzers/*.c)
PROGS    := $(foreach s,$(PROG_SRC),$(BINDIR)/strata-$(basename $(notdir $(s))))
TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TOOLS    := $(BUILD)/tests/mkmodel $(BUILD)/tests/forward_dump $(BUILD)/tests/tokenize_tool
BENCH    := $(BUILD)/bench/bench_forward $(BUILD)/bench/bench_batch $(BUILD)/bench/mkbig

PREFIX  ?= /usr/local

.PHONY: all deps test test-run check clang fuzz bench demo install clean
all: $(LIBA) $(CLIA) $(PROGS) $(TESTS) $(TOOLS)

deps:
	@scripts/install-deps.sh

$(BUILD)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

$(BUILD)/lib/cli/%.o: lib/cli/%.c $(wildcard lib/cli/*.h) lib/strata.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(MPI_CFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

$(CLIA): $(CLI_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# A program is <dir>/<name>.c (main) plus, if the directory <dir>/<name>/
# exists, its *.c parts and private *.h, all compiled into one binary.
prog_parts = $(wildcard $(basename $(1))/*.c)
prog_hdrs  = $(wildcard $(basename $(1))/*.h)
define prog_rule
$(BINDIR)/strata-$(basename $(notdir $(1))): $(1) $(call prog_parts,$(1)) $(call prog_hdrs,$(1)) $(CLIA) $(LIBA) lib/strata.h lib/cli/cli.h
	@mkdir -p $(BINDIR)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $$@ $(1) $(call prog_parts,$(1)) $(CLIA) $(LIBA) $(LDLIBS)
endef
$(foreach s,$(PROG_SRC),$(eval $(call prog_rule,$(s))))

$(BUILD)/tests/%: tests/%.c tests/check.h $(CLIA) $(LIBA) lib/strata.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $< $(CLIA) $(LIBA) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c bench/bench.h $(CLIA) $(LIBA) lib/strata.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $< $(CLIA) $(LIBA) $(LDLIBS)

test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/run.sh

# Same suite, sanitized build in build/asan (the slow long-input cases are
# skipped there by tests/run.sh when STRATA_SAN=1).
check: deps
	@$(MAKE) --no-print-directory SAN=1 BUILD=build/asan BINDIR=build/asan/bin all
	@ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/lib/cli/lsan-mpi.supp:print_suppressions=0 \
	  STRATA_SAN=1 BUILD=build/asan BINDIR=build/asan/bin tests/run.sh

# The same build with clang, into build/clang so the gcc objects stay: both
# compilers must build warning-free (-Werror), and clang warns where gcc does
# not (float to double in initialisers, concatenated string literals).
# libFuzzer harnesses for every file reader (tests/fuzz/run.sh says how):
# make fuzz FUZZ_SECONDS=N runs each for N seconds; FUZZ_RUNS=N runs N
# inputs from a fixed seed; FUZZ_TARGETS="a b" picks targets.
FUZZ_SECONDS ?= 60
fuzz:
	@$(MAKE) --no-print-directory all
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_TARGETS="$(FUZZ_TARGETS)" tests/fuzz/run.sh

clang:
	@$(MAKE) --no-print-directory CC=clang BUILD=build/clang BINDIR=build/clang/bin all

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) scripts/bench.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@BINDIR=$(BINDIR) scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/strata/scripts
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 lib/libstrata.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 lib/strata.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 scripts/*.py $(DESTDIR)$(PREFIX)/share/strata/scripts/

clean:
	rm -rf build bin lib/libstrata.a lib/cli/libstrata_cli.a
