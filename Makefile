# circa — build, run and test. `make help` lists the targets.
#
# Sources: daemon/, adapters/, reports/ build into bin/circad; cli/ plus the same
# library objects into bin/circa.  Tests declare what they link in their first
# lines ("// uses: daemon/jcs daemon/buf"), so one module's tests build even while
# another module is being rewritten.

CC       ?= cc
PKGS     := libuv libcjson libcurl libpq libcrypto libmosquitto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lm -lpthread
OPT      ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter $(OPT) \
            -Idaemon -Iadapters -Ireports -Ibuild/gen $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS)
BUILD    ?= build
BIN      ?= bin
Q        := @

LIB_SRC  := $(filter-out daemon/main.c,$(wildcard daemon/*.c adapters/*.c reports/*.c))
# Generated C sources live in build/gen for every build flavour; their objects in $(BUILD)/gen.
GEN      := build/gen
GEN_SRC  := $(GEN)/ewc_table.c $(GEN)/openapi_json.c
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/ewc_table.o $(BUILD)/gen/openapi_json.o
CLI_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
INTEG_SRC:= $(wildcard tests/integration/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BIN)/tests/%)
INTEG_BIN:= $(INTEG_SRC:tests/integration/%.c=$(BIN)/tests/%)

.PHONY: all deps run test test-unit test-integration asan valgrind bench stop clean help
all: $(BIN)/circad $(BIN)/circa

help:
	@echo "make            build bin/circad and bin/circa"
	@echo "make deps       install missing Debian 12 packages (apt-get)"
	@echo "make run        private PostgreSQL under ./var, schema, demo data, circad in the foreground"
	@echo "make test       unit and integration tests against a private PostgreSQL, the container"
	@echo "                test and the Citus suite (SKIP when Citus cannot be installed)"
	@echo "make asan       the same tests built with ASan+UBSan"
	@echo "make valgrind   unit tests and circad under valgrind memcheck"
	@echo "make bench      ingest (ratio to COPY), metrics, reports and MQTT benchmarks"
	@echo "make test-citus the integration tests on a three-node Citus cluster"
	@echo "make stop       stop a private cluster left behind"

deps:
	$(Q)scripts/deps.sh

$(GEN)/ewc_table.c: schema/data/ewc.csv scripts/gen_ewc.sh
	$(Q)mkdir -p $(@D) && scripts/gen_ewc.sh $< > $@.tmp && mv $@.tmp $@

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# The OpenAPI document circad serves, from docs/openapi.yaml (a failed run leaves no file).
$(GEN)/openapi_json.c: docs/openapi.yaml scripts/gen_openapi.sh
	$(Q)mkdir -p $(@D) && scripts/gen_openapi.sh $< > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/%.o: $(GEN)/%.c
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(LIB_OBJ) $(CLI_OBJ) $(BUILD)/daemon/main.o: | $(GEN_SRC)

$(BIN)/circad: $(BUILD)/daemon/main.o $(LIB_OBJ)
	@mkdir -p $(@D)
	@echo "  LINK    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/circa: $(CLI_OBJ) $(LIB_OBJ)
	@mkdir -p $(@D)
	@echo "  LINK    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Each test names the modules it links: "// uses: daemon/buf daemon/jcs".
test_uses = $(patsubst %,$(BUILD)/%.o,$(shell sed -n '1,5s|^// uses: ||p' $(1)))
define TEST_RULE
$(BIN)/tests/$(basename $(notdir $(1))): $(1) $(call test_uses,$(1)) | $(GEN_SRC)
	@mkdir -p $$(@D)
	@echo "  TEST    $$@"
	$(Q)$$(CC) $$(CFLAGS) -Itests -Icli -o $$@ $(1) $(call test_uses,$(1)) $$(LDLIBS) -lcmocka
endef
$(foreach t,$(UNIT_SRC) $(INTEG_SRC),$(eval $(call TEST_RULE,$(t))))

tests: $(UNIT_BIN) $(INTEG_BIN)

# Unit and integration tests, the container test and the Citus suite (installed with
# ../shared/tools/citus-install.sh when needed, SKIP otherwise); a summary of the three last.
test: deps
	$(Q)$(MAKE) --no-print-directory all tests bench-bins
	$(Q)scripts/test-all.sh

test-unit: all $(UNIT_BIN)
	$(Q)scripts/test.sh unit

asan: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan BIN=bin/asan \
	  OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -Wno-format-truncation" \
	  LDFLAGS="-fsanitize=address,undefined" all tests
	$(Q)CIRCA_BIN=bin/asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 scripts/test.sh

valgrind: deps all tests
	$(Q)CIRCA_VALGRIND=1 scripts/test.sh

run: deps all
	$(Q)scripts/run.sh

bench: deps all
	$(Q)$(MAKE) --no-print-directory bench-bins
	$(Q)bench/run.sh
	$(Q)bench/metrics.sh
	$(Q)bench/reports.sh
	$(Q)bench/mqtt.sh

stop:
	$(Q)scripts/pg.sh stop

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Benchmark programs: every bench/*.c is one program linked with the library.
BENCH_BIN := $(patsubst bench/%.c,$(BIN)/bench/%,$(wildcard bench/*.c))
bench-bins: $(BENCH_BIN)
$(BIN)/bench/%: bench/%.c $(LIB_OBJ)
	@mkdir -p $(@D)
	@echo "  BENCH   $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Container image: build with podman (or docker), run against a test PostgreSQL.
docker-test: all
	$(Q)docker/test.sh
# The compose profile citus (a Citus coordinator, two workers, circad) from its own images.
docker-citus-test:
	$(Q)docker/citus-test.sh
.PHONY: docker-test docker-citus-test bench-bins tests

# Citus: a coordinator and two workers on loopback (tests/citus/run.sh installs Citus with
# ../shared/tools/citus-install.sh where it exists, and skips clearly elsewhere).
.PHONY: test-citus bench-citus
test-citus: all tests bench-bins
	$(Q)tests/citus/run.sh
bench-citus: deps all
	$(Q)$(MAKE) --no-print-directory bench-bins
	$(Q)bench/citus.sh
