# Makefile for kommander (PGXS)
#
#   make                 the extension (WERROR=1: warnings are errors)
#   make install         install it into the Postgres found by pg_config
#   make core            build and run the unit tests of the Raft core and of
#                        the host's rules, the wire test, and the fuzz
#                        targets over their corpus
#   make fuzz            build the fuzz targets (clang, libFuzzer); run them
#                        with scripts/fuzz.sh
#   make fuzz-corpus     rewrite their generated seed corpus
#   make sim             build the deterministic simulator sim/kmd-sim and
#                        the history checker sim/kmd-lincheck
#   make simcheck        its unit tests, kmd-lincheck's, and sim/run-tests.sh
#   make regress         pg_regress on a temporary instance
#   make tap             TAP tests (PostgreSQL::Test::Cluster); builds the
#                        nemesis test's clients and sim/kmd-lincheck first

EXTENSION = kommander
MODULE_big = kommander
DATA = kommander--1.0.sql
PGFILEDESC = "kommander - Multi-Raft consensus between Postgres servers"

PROTO_SRC = proto/kommander.proto
PROTO_GEN = proto/kommander.pb-c.c proto/kommander.pb-c.h
RUNTIME_SRCS = $(wildcard src/*.c)
CORE_SRCS = $(wildcard src/raft/*.c)
HOST_SRCS = $(wildcard src/host/*.c)
OBJS = $(RUNTIME_SRCS:.c=.o) $(CORE_SRCS:.c=.o) $(HOST_SRCS:.c=.o) proto/kommander.pb-c.o

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src -Iproto -I$(shell $(PG_CONFIG) --includedir)
SHLIB_LINK = -lprotobuf-c -L$(shell $(PG_CONFIG) --libdir) -lpq

# Postgres headers trip a few -Wextra warnings; the rest are ours to fix.
KMD_WARNINGS = -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers
ifeq ($(WERROR),1)
KMD_WARNINGS += -Werror
endif
PG_CFLAGS = $(KMD_WARNINGS)

# In this order: the first bootstraps the node the others use, the last
# drops the extension.
REGRESS = single_node key_range contained_writes apply_context primitives direct_writes request_ids leases transactions strict_commands table_ddl_guard table_keys unprivileged_roles planted_objects ddl_as_caller watch drop_extension
REGRESS_OPTS = --temp-instance=tmp_check_regress \
	--temp-config=$(srcdir)/test/regress.conf

EXTRA_CLEAN = $(PROTO_GEN) build tmp_check tmp_check_regress results \
	regression.diffs regression.out log sim/kmd-sim sim/kmd-lincheck

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# One run of protoc-c makes both files (a grouped target: two separate
# targets would run it twice and leave the header newer than the objects).
$(PROTO_GEN) &: $(PROTO_SRC)
	protoc-c --c_out=. $(PROTO_SRC)

# PGXS tracks no header dependencies: every object depends on every header.
$(RUNTIME_SRCS:.c=.o) $(RUNTIME_SRCS:.c=.bc): proto/kommander.pb-c.h $(wildcard src/*.h src/raft/*.h src/host/*.h)
$(CORE_SRCS:.c=.o) $(CORE_SRCS:.c=.bc): $(wildcard src/raft/*.h)
$(HOST_SRCS:.c=.o) $(HOST_SRCS:.c=.bc): $(wildcard src/raft/*.h src/host/*.h)

# ---------------------------------------------------------------------------
# The Raft core, the host's rules and the simulator are plain C99, built
# without Postgres.
# ---------------------------------------------------------------------------
NATIVE_CC ?= gcc
NATIVE_CFLAGS = -std=c99 -O2 -g -Wall -Wextra -Wshadow $(if $(filter 1,$(WERROR)),-Werror)
CORE_TESTS = $(patsubst test/core/%.c,build/core/%,$(filter-out test/core/fixture.c,$(wildcard test/core/*.c)))

# The core tests run under AddressSanitizer and UBSan: memory errors fail them.
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

build/core/%: test/core/%.c test/core/fixture.c test/core/fixture.h $(CORE_SRCS) $(HOST_SRCS) src/raft/raft.h src/raft/raft_int.h src/host/host.h
	@mkdir -p build/core
	$(NATIVE_CC) $(NATIVE_CFLAGS) $(SANITIZE) -Isrc -Isrc/raft -Itest/core -o $@ $< test/core/fixture.c $(CORE_SRCS) $(HOST_SRCS) -lcmocka

# ---------------------------------------------------------------------------
# src/wire.c built outside the server, with the server's headers and a shim
# of the few Postgres functions it calls (test/fuzz/pg_shim.c), for its test
# and its fuzz targets (libFuzzer).  Kept apart from the extension's build:
# everything goes to build/fuzz.
# ---------------------------------------------------------------------------
FUZZ_CC ?= clang
FUZZ_TARGETS = batch command
FUZZ_BINS = $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))
FUZZ_CFLAGS = -g -O1 $(KMD_WARNINGS) -Wno-ignored-attributes \
	-I$(shell $(PG_CONFIG) --includedir-server) -I. -Isrc -Iproto -Itest/fuzz
FUZZ_WIRE = src/wire.c proto/kommander.pb-c.c test/fuzz/pg_shim.c
FUZZ_DEPS = $(FUZZ_WIRE) src/wire.h src/command.h test/fuzz/pg_shim.h \
	proto/kommander.pb-c.h $(CORE_SRCS) src/raft/raft.h src/raft/raft_int.h

build/fuzz/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_DEPS)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ $< $(FUZZ_WIRE) $(CORE_SRCS) -lprotobuf-c

build/fuzz/test_wire: test/fuzz/test_wire.c $(FUZZ_DEPS)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(SANITIZE) -o $@ $< $(FUZZ_WIRE) -lprotobuf-c -lcmocka

build/fuzz/make_corpus: test/fuzz/make_corpus.c test/core/fixture.c test/core/fixture.h $(FUZZ_DEPS)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Isrc/raft -Itest/core $(SANITIZE) -o $@ $< test/core/fixture.c \
		$(FUZZ_WIRE) $(CORE_SRCS) -lprotobuf-c

.PHONY: core sim simcheck regress tap fuzz fuzz-corpus
core: $(CORE_TESTS) build/fuzz/test_wire $(FUZZ_BINS)
	CMOCKA_MESSAGE_OUTPUT=TAP prove --exec '' $(CORE_TESTS) build/fuzz/test_wire
	prove --exec bash test/fuzz/regress.sh

fuzz: $(FUZZ_BINS)

fuzz-corpus: build/fuzz/make_corpus
	@mkdir -p $(patsubst %,test/fuzz/corpus/%,$(FUZZ_TARGETS))
	rm -f $(patsubst %,test/fuzz/corpus/%/gen-*,$(FUZZ_TARGETS))
	build/fuzz/make_corpus test/fuzz/corpus

SIM_LIB_SRCS = $(filter-out sim/main.c sim/lincheck.c sim/test_%.c,$(wildcard sim/*.c))
SIM_CORE_OBJS = $(patsubst src/raft/%.c,build/sim/raft/%.o,$(CORE_SRCS)) \
	$(patsubst src/host/%.c,build/sim/host/%.o,$(HOST_SRCS))
SIM_LIB_OBJS = $(patsubst sim/%.c,build/sim/%.o,$(SIM_LIB_SRCS))
SIM_TESTS = $(patsubst sim/%.c,build/sim/%,$(wildcard sim/test_*.c))

build/sim/raft/%.o: src/raft/%.c src/raft/raft.h src/raft/raft_int.h
	@mkdir -p build/sim/raft
	$(NATIVE_CC) $(NATIVE_CFLAGS) -DRAFT_SIM_BUGS -Isrc/raft -c -o $@ $<

build/sim/host/%.o: src/host/%.c src/host/host.h src/raft/raft.h
	@mkdir -p build/sim/host
	$(NATIVE_CC) $(NATIVE_CFLAGS) -DRAFT_SIM_BUGS -Isrc -c -o $@ $<

build/sim/%.o: sim/%.c $(wildcard sim/*.h) src/raft/raft.h src/host/host.h
	@mkdir -p build/sim
	$(NATIVE_CC) $(NATIVE_CFLAGS) -DRAFT_SIM_BUGS -Isrc -Isrc/raft -Isim -c -o $@ $<

sim/kmd-sim: build/sim/main.o $(SIM_LIB_OBJS) $(SIM_CORE_OBJS)
	$(NATIVE_CC) $(NATIVE_CFLAGS) -o $@ $^ -lm

build/sim/test_%: build/sim/test_%.o $(SIM_LIB_OBJS) $(SIM_CORE_OBJS)
	$(NATIVE_CC) $(NATIVE_CFLAGS) -o $@ $^ -lm

sim/kmd-lincheck: build/sim/lincheck.o build/sim/history.o build/sim/json.o build/sim/linearizability.o build/sim/lin_cache.o
	$(NATIVE_CC) $(NATIVE_CFLAGS) -o $@ $^

sim: sim/kmd-sim sim/kmd-lincheck

# The simulator and its core under AddressSanitizer and UBSan, for a few
# hundred seeds in sim/run-tests.sh (slower, so not the default binary).
build/sim/kmd-sim-asan: $(wildcard sim/*.c sim/*.h) $(CORE_SRCS) $(HOST_SRCS) src/raft/raft.h src/raft/raft_int.h src/host/host.h
	@mkdir -p build/sim
	$(NATIVE_CC) $(NATIVE_CFLAGS) $(SANITIZE) -DRAFT_SIM_BUGS -Isrc -Isrc/raft -Isim -o $@ \
		$(filter-out sim/test_%.c sim/lincheck.c,$(wildcard sim/*.c)) $(CORE_SRCS) $(HOST_SRCS) -lm

simcheck: sim build/sim/kmd-sim-asan $(SIM_TESTS)
	$(if $(SIM_TESTS),prove --exec '' $(SIM_TESTS))
	prove --exec bash sim/lincheck-tests.sh
	bash sim/run-tests.sh

regress: installcheck

# The clients of the nemesis test (t/180_nemesis.pl): plain C with libpq.
build/nemesis/kmd-nemesis-client: test/nemesis/client.c
	@mkdir -p build/nemesis
	$(NATIVE_CC) $(NATIVE_CFLAGS) -D_DEFAULT_SOURCE -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq

tap: build/nemesis/kmd-nemesis-client sim/kmd-lincheck
	PERL5LIB="$(dir $(PGXS))../../src/test/perl:$(srcdir)/t:$$PERL5LIB" \
	PATH="$(shell $(PG_CONFIG) --bindir):$$PATH" \
	PG_REGRESS="$(dir $(PGXS))../../src/test/regress/pg_regress" \
	TESTDIR="$(CURDIR)" PGPORT=65432 \
	prove $(PROVE_FLAGS) -I $(srcdir)/t $(if $(PROVE_TESTS),$(PROVE_TESTS),t/*.pl)
