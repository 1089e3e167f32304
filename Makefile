# SPDX-License-Identifier: MIT
# weir - build, test, benchmark and install.
#
#   make                      build/libweir.a
#   make check                build and run the cmocka suite (installs
#                             cmocka if it can)
#   make check SANITIZE=thread            ... under ThreadSanitizer
#   make check SANITIZE=address,undefined ... under ASan + UBSan
#   make check WEIR_PORTABLE_WAIT=1       ... sleeping on pthread condvars,
#                                             not futex
#   make soak                 the bus under a random mix for
#                             WEIR_SOAK_SECONDS (default 60)
#   make crash                durable topics against SIGKILL
#                             (CRASH_KILLS per sync policy, default 20)
#   make run                  build and run the demo program
#   make examples             build every example
#   make bench                benchmarks against peers (installs them if it can)
#   make fuzz                 the libFuzzer targets, with clang (installs it
#                             if it can), into build/fuzz/
#   make fuzz-run FUZZ_SECONDS=60   each of them for that long
#   make install PREFIX=/usr/local (and DESTDIR=) / make uninstall / make clean
#
# Every output goes under build/ (build/san-<name>/ for a sanitizer build),
# so plain and sanitized objects never mix.

CC       ?= cc
CXX      ?= c++
PREFIX   ?= /usr/local
SANITIZE ?=
comma    := ,

WARN     := -Wall -Wextra -Wpedantic -Werror
OPT      := -O2 -g
MODEFLAGS :=
ifeq ($(SANITIZE),)
BUILD    := build
else
BUILD    := build/san-$(subst $(comma),-,$(SANITIZE))
OPT      := -O1 -g -fno-omit-frame-pointer
MODEFLAGS := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all \
             -DWEIR_TEST_SANITIZED=1
endif

# WEIR_PORTABLE_WAIT=1 sleeps on a mutex + condition variable instead of a
# futex; its objects go to their own folder too.
ifeq ($(WEIR_PORTABLE_WAIT),1)
BUILD    := $(if $(SANITIZE),$(BUILD)-portable,build/portable)
MODEFLAGS += -DWEIR_PORTABLE_WAIT=1
endif

CFLAGS_ALL   := -std=c11 $(OPT) $(WARN) -fPIC -pthread -Iinclude \
                $(MODEFLAGS) $(CFLAGS)
CXXFLAGS_ALL := -std=c++11 $(OPT) $(WARN) -pthread -Iinclude \
                $(MODEFLAGS) $(CXXFLAGS)
LDFLAGS_ALL  := -pthread $(MODEFLAGS) $(LDFLAGS)

# lib/ has one folder per layer, each seeing only itself and the layers
# below it (lib/README.md): an include of a higher layer's header fails
# to compile.
LAYERS   := base core journal bus
LIB_SRC  := $(foreach l,$(LAYERS),$(wildcard lib/$(l)/*.c))
LIB_OBJ  := $(patsubst lib/%.c,$(BUILD)/lib/%.o,$(LIB_SRC))
LIB_INTERNAL := $(foreach l,$(LAYERS),$(wildcard lib/$(l)/*_internal.h))
INC_base := -Ilib/base
INC_core := $(INC_base) -Ilib/core
INC_journal := $(INC_core) -Ilib/journal
INC_bus  := $(INC_journal) -Ilib/bus
LIB      := $(BUILD)/libweir.a
HEADERS  := $(wildcard include/*.h include/weir/*.h)

TEST_SUPPORT_SRC := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJ := $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(TEST_SUPPORT_SRC))
TEST_C   := $(wildcard tests/test_*.c)
TEST_CXX := $(wildcard tests/test_*.cpp)
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_C)) \
            $(patsubst tests/%.cpp,$(BUILD)/tests/%,$(TEST_CXX))

EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLES    := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

.SECONDARY:

.PHONY: all check check-layout check-licence check-layers check-calls run \
        soak crash examples bench install uninstall clean deps-test deps-fuzz \
        fuzz fuzz-run

all: $(LIB)

$(BUILD)/lib/%.o: lib/%.c $(HEADERS) $(LIB_INTERNAL) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(INC_$(firstword $(subst /, ,$*))) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# --- tests ------------------------------------------------------------------

deps-test:
	@.ci/ensure-pkg c cmocka.h libcmocka-dev

$(BUILD)/tests/support/%.o: tests/support/%.c $(wildcard tests/support/*.h) \
                            $(HEADERS) | deps-test
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -D_GNU_SOURCE -Itests $(INC_bus) -c $< -o $@

$(BUILD)/tests/%: tests/%.c $(TEST_SUPPORT_OBJ) $(LIB) \
                  $(wildcard tests/support/*.h) | deps-test
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -D_GNU_SOURCE -Itests $(INC_bus) $< \
	    $(TEST_SUPPORT_OBJ) $(LIB) -lcmocka $(LDFLAGS_ALL) -o $@

$(BUILD)/tests/%: tests/%.cpp $(TEST_SUPPORT_OBJ) $(LIB) \
                  $(wildcard tests/support/*.h) | deps-test
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_ALL) -Itests $< $(TEST_SUPPORT_OBJ) $(LIB) -lcmocka \
	    $(LDFLAGS_ALL) -o $@

# The fuzz targets, each run by driver.c (no libFuzzer) on its seed
# corpus and FUZZ_RUNS inputs made from it (default 2000, a fifth of that
# under a sanitizer), built like the tests.  The more specific pattern
# wins over the tests' one above.
FUZZ_TARGETS := fuzz_queue fuzz_bus fuzz_names
FUZZ_DRIVERS := $(patsubst %,$(BUILD)/tests/fuzz/%,$(FUZZ_TARGETS))

$(BUILD)/tests/fuzz/%: tests/fuzz/%.c tests/fuzz/driver.c tests/fuzz/fuzz.h \
                       $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -D_GNU_SOURCE -Itests/fuzz $(INC_bus) \
	    -DFUZZ_NAME='"$*"' -DFUZZ_CORPUS='"tests/fuzz/corpus/$*"' \
	    -DFUZZ_FAILED='"$@-failed-input"' $< tests/fuzz/driver.c $(LIB) \
	    $(LDFLAGS_ALL) -o $@

# make check ends with a few seconds of the soak and a few kills of the
# crash test (make soak and make crash run longer).
SOAK_CHECK_SECONDS ?= 3
CRASH_CHECK_KILLS ?= 3

check: $(TESTS) $(FUZZ_DRIVERS) $(BUILD)/tests/soak $(BUILD)/tests/crash \
       check-layout check-licence check-layers check-calls
	@$(if $(FUZZ_RUNS),FUZZ_RUNS=$(FUZZ_RUNS)) \
	    tests/run-all $(TESTS) $(FUZZ_DRIVERS)
	@WEIR_SOAK_SECONDS=$(SOAK_CHECK_SECONDS) $(BUILD)/tests/soak
	@CRASH_KILLS=$(CRASH_CHECK_KILLS) $(BUILD)/tests/crash

# No file of lib/ calls one above it (tests/check-calls gives the order).
check-calls: $(LIB)
	@tests/check-calls $(BUILD)/lib

# A lower layer of lib/ cannot see a higher one's headers.
check-layers:
	@! echo '#include "bus_internal.h"' | $(CC) -std=c11 -Iinclude \
	    $(INC_core) -fsyntax-only -x c - 2>/dev/null || \
	    { echo "check-layers: FAILED, lib/core sees lib/bus"; exit 1; }
	@! echo '#include "queue_internal.h"' | $(CC) -std=c11 -Iinclude \
	    $(INC_base) -fsyntax-only -x c - 2>/dev/null || \
	    { echo "check-layers: FAILED, lib/base sees lib/core"; exit 1; }
	@! echo '#include "log_internal.h"' | $(CC) -std=c11 -Iinclude \
	    $(INC_core) -fsyntax-only -x c - 2>/dev/null || \
	    { echo "check-layers: FAILED, lib/core sees lib/journal"; exit 1; }
	@! echo '#include "bus_internal.h"' | $(CC) -std=c11 -Iinclude \
	    $(INC_journal) -fsyntax-only -x c - 2>/dev/null || \
	    { echo "check-layers: FAILED, lib/journal sees lib/bus"; exit 1; }
	@echo "check-layers: each layer of lib/ sees no header of one above it"

# Every source file says its licence in its first lines (outside a git
# checkout there is no list of sources, and nothing to check).
check-licence:
	@missing=$$(git ls-files 2>/dev/null | \
	    grep -E -e '\.(c|h|cpp|rs|go|java|sh|awk|toml|mod)$$' \
	        -e '(^|/)(Makefile|run|run-all|ensure-[a-z]+|make-corpus)$$' | \
	    while read -r f; do head -3 "$$f" | \
	        grep -q 'SPDX-License-Identifier: MIT' || echo "$$f"; done); \
	if [ -n "$$missing" ]; then \
	    echo "check-licence: FAILED, no SPDX line in:" $$missing; exit 1; fi; \
	test -f LICENSE || { echo "check-licence: FAILED, no LICENSE"; exit 1; }
	@echo "check-licence: every source file carries SPDX-License-Identifier: MIT"

# A program's own flags must not change the layout of public structs it
# shares with the built library: a different WEIR_CACHELINE is refused.
check-layout:
	@if echo '#include <weir.h>' | $(CC) -std=c11 -Iinclude \
	        -DWEIR_CACHELINE=128 -fsyntax-only -x c - 2>/dev/null; then \
	    echo "check-layout: FAILED, -DWEIR_CACHELINE=128 compiled"; exit 1; \
	fi
	@echo '#include <weir.h>' | $(CC) -std=c11 -Iinclude \
	    -DWEIR_CACHELINE=64 -fsyntax-only -x c -
	@echo "check-layout: WEIR_CACHELINE is fixed by the library's headers"

# --- examples ---------------------------------------------------------------

$(BUILD)/examples/%: examples/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(LIB) $(LDFLAGS_ALL) -o $@

examples: $(EXAMPLES)

run: $(BUILD)/examples/order_pipeline
	$(BUILD)/examples/order_pipeline

# --- soak: WEIR_SOAK_SECONDS of a random mix (default 60) ---------------------

soak: $(BUILD)/tests/soak
	$(BUILD)/tests/soak

# --- crash: durable topics against SIGKILL, CRASH_KILLS per policy (20) -----

crash: $(BUILD)/tests/crash
	$(if $(CRASH_KILLS),CRASH_KILLS=$(CRASH_KILLS)) $(BUILD)/tests/crash

$(BUILD)/tests/soak $(BUILD)/tests/crash: $(BUILD)/tests/%: tests/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -D_GNU_SOURCE $< $(LIB) $(LDFLAGS_ALL) -o $@

# --- fuzzing with libFuzzer (issue 19; not part of check) ------------------
#
# clang's libFuzzer with ASan and UBSan: the library's objects are built
# again for it under build/fuzz/ (with fuzzer-no-link, so its branches
# guide the fuzzer too), whatever SANITIZE says.

FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -std=c11 -O1 -g -fno-omit-frame-pointer $(WARN) -pthread \
                -Iinclude -fsanitize=address,undefined \
                -fno-sanitize-recover=all
FUZZ_LIB_OBJ := $(patsubst lib/%.c,$(FUZZ_BUILD)/lib/%.o,$(LIB_SRC))
FUZZERS      := $(patsubst %,$(FUZZ_BUILD)/%,$(FUZZ_TARGETS))

deps-fuzz:
	@CC=$(FUZZ_CC) .ci/ensure-fuzzer clang

$(FUZZ_BUILD)/lib/%.o: lib/%.c $(HEADERS) $(LIB_INTERNAL) Makefile | deps-fuzz
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link \
	    $(INC_$(firstword $(subst /, ,$*))) -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_LIB_OBJ) \
                      | deps-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -Itests/fuzz $(INC_bus) $< \
	    $(FUZZ_LIB_OBJ) -o $@

fuzz: $(FUZZERS)

fuzz-run: fuzz
	@for t in $(FUZZ_TARGETS); do \
	    tests/fuzz/run $$t $(FUZZ_SECONDS) || exit 1; done

# --- benchmarks (never part of check) -----------------------------------------

bench: $(LIB)
	@bench/run

# --- install ----------------------------------------------------------------

install: $(LIB)
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/weir
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libweir.a
	install -m 644 include/weir.h $(DESTDIR)$(PREFIX)/include/weir.h
	install -m 644 include/weir/*.h $(DESTDIR)$(PREFIX)/include/weir/
	sed -e 's|@PREFIX@|$(PREFIX)|' \
	    -e 's|@VERSION@|$(shell sed -n \
	        's/^#define WEIR_VERSION_[A-Z]* *//p' include/weir/common.h | \
	        paste -sd.)|' \
	    lib/weir.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/weir.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libweir.a $(DESTDIR)$(PREFIX)/include/weir.h \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/weir.pc
	rm -rf $(DESTDIR)$(PREFIX)/include/weir

clean:
	rm -rf build
