# npsd — build, test, run.  `make run` and `make check` are all a newcomer needs.
PREFIX    ?= /usr/local
DESTDIR   ?=
SANITIZE  ?= 0
CC        ?= cc

ifeq ($(FUZZ),1)
# `make fuzz`: clang's libFuzzer, its coverage in the library too.
BUILD     ?= build/libfuzzer
CC        := clang
SANFLAGS  := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT       := -O1
else ifeq ($(SANITIZE),1)
BUILD     ?= build/san
SANFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT       := -O1
else
BUILD     ?= build
SANFLAGS  :=
OPT       := -O2
endif

PKGS      := libmicrohttpd sqlite3 libcurl jansson inih libsystemd nettle gnutls
DEB_PKGS  := libmicrohttpd-dev libsqlite3-dev libcurl4-gnutls-dev check libjansson-dev \
             libinih-dev libsystemd-dev pkg-config nettle-dev libgnutls28-dev tzdata

WARN      := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wwrite-strings -Wundef
CFLAGS    ?= $(OPT) -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) -Iinclude -I$(BUILD) \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS_ALL = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

LIB_SRC   := $(filter-out src/main.c src/npsctl.c,$(wildcard src/*.c))
LIB_OBJ   := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/migrations.o \
             $(BUILD)/obj/ui_assets.o
UNIT_SRC  := $(wildcard tests/check_*.c)
IT_SRC    := $(wildcard tests/it_*.c)
TEST_BIN  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC) $(IT_SRC))
TESTLIB_SRC := $(filter-out $(UNIT_SRC) $(IT_SRC),$(wildcard tests/*.c))
MIGRATIONS := $(sort $(wildcard sql/[0-9][0-9][0-9][0-9]_*.sql))

# The fuzz targets (fuzz/fuzz_*.c) and the inputs each starts from and replays in `make check`.
FUZZ_TARGETS := bodies config text
FUZZ_SEEDS_bodies := fuzz/corpus/bodies tests/corpus/malformed
FUZZ_SEEDS_config := fuzz/corpus/config etc/npsd.conf etc/npsd.dev.conf
FUZZ_SEEDS_text   := fuzz/corpus/text
FUZZ_REPLAY  := $(patsubst %,$(BUILD)/fuzz/replay_%,$(FUZZ_TARGETS))
FUZZ_SECONDS ?= 60

# A recipe that fails (an embed script, a compile) leaves no half-written target behind.
.DELETE_ON_ERROR:
.PHONY: all deps ui-deps ui-check run check valgrind lint install clean bench bench-instructions fuzz fuzz-run
all: $(BUILD)/npsd $(BUILD)/npsctl

# The end of a recipe that has listed the Debian packages it lacks in $$missing.
APT_INSTALL_MISSING = if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Installs only what is missing, so it is quick when everything is there.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	$(APT_INSTALL_MISSING)

# The console's browser tests need Node.js with npm, and Chromium: installed from Debian
# when their commands are missing (a machine may have Node.js from elsewhere, with its own
# npm), then playwright-core, pinned in tests/ui/package-lock.json, from the npm registry.
ui-deps: deps
	@missing=""; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	$(APT_INSTALL_MISSING)
	@{ [ tests/ui/node_modules/.package-lock.json -nt tests/ui/package-lock.json ] && \
	   [ tests/ui/node_modules/.package-lock.json -nt tests/ui/package.json ]; } || \
	  (cd tests/ui && npm ci --no-audit --no-fund)

$(BUILD)/obj/%.o: src/%.c $(wildcard include/npsd/*.h) | $(BUILD)/obj
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Migrations are compiled in, so an installed npsd needs no sql/ folder. The folder itself
# is a prerequisite too: a migration removed or renamed changes only its time.
$(BUILD)/migrations.c: $(MIGRATIONS) sql/embed.sh sql | $(BUILD)/obj
	sh sql/embed.sh $(MIGRATIONS) > $@

$(BUILD)/obj/migrations.o: $(BUILD)/migrations.c
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

# So is the web console (src/ui/): one page, its script, its style and the lease's timer
# (a worker's).
UI_FILES  := index_html=src/ui/index.html app_js=src/ui/app.js app_css=src/ui/app.css \
             lease_timer_js=src/ui/lease-timer.js
$(BUILD)/ui_assets.c: $(foreach f,$(UI_FILES),$(lastword $(subst =, ,$(f)))) src/ui/embed.sh | $(BUILD)/obj
	sh src/ui/embed.sh $(UI_FILES) > $@

$(BUILD)/obj/ui_assets.o: $(BUILD)/ui_assets.c include/npsd/ui_assets.h
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libnpsd.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/npsd: src/main.c $(BUILD)/libnpsd.a
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/npsctl: src/npsctl.c $(BUILD)/libnpsd.a
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/%.c $(TESTLIB_SRC) $(wildcard tests/*.h) $(BUILD)/libnpsd.a | $(BUILD)/tests
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(TESTLIB_SRC) $(BUILD)/libnpsd.a $(CHECK_LIBS) $(LDLIBS_ALL)

$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/replay.c $(BUILD)/libnpsd.a | $(BUILD)/fuzz
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $< fuzz/replay.c $(BUILD)/libnpsd.a $(LDLIBS_ALL)

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c $(BUILD)/libnpsd.a | $(BUILD)/fuzz
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libnpsd.a $(LDLIBS_ALL)

$(BUILD)/obj $(BUILD)/tests $(BUILD)/fuzz:
	mkdir -p $@

# Unit tests first (fast), the fuzz targets over their saved inputs, then the integration
# tests against the real binaries, then the console's browser tests.
check: deps
	$(MAKE) all $(TEST_BIN) $(FUZZ_REPLAY)
	@set -e; for t in $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC)); do \
	  echo "== $$t"; $$t; \
	done
	@set -e; $(foreach t,$(FUZZ_TARGETS),echo "== $(BUILD)/fuzz/replay_$(t)"; \
	  $(BUILD)/fuzz/replay_$(t) $(FUZZ_SEEDS_$(t));)
	@set -e; for t in $(patsubst tests/%.c,$(BUILD)/tests/%,$(IT_SRC)); do \
	  echo "== $$t"; NPSD_BIN=$(BUILD)/npsd NPSCTL_BIN=$(BUILD)/npsctl $$t; \
	done
	$(MAKE) ui-check

# libFuzzer on each target for FUZZ_SECONDS (default 60), from its seeds. What it finds
# stays in build/libfuzzer/fuzz/corpus/; a crash is written to build/libfuzzer/fuzz/ (the
# log shows it): put it in fuzz/corpus/TARGET/ with the fix, and `make check` replays it.
fuzz: deps
	@command -v clang >/dev/null || { missing=clang; $(APT_INSTALL_MISSING); }
	$(MAKE) FUZZ=1 fuzz-run

fuzz-run: $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_TARGETS))
	@set -e; $(foreach t,$(FUZZ_TARGETS),mkdir -p $(BUILD)/fuzz/corpus/$(t); \
	  echo "== fuzz $(t), $(FUZZ_SECONDS)s (log: $(BUILD)/fuzz/$(t).log)"; \
	  dirs=""; for seed in $(FUZZ_SEEDS_$(t)); do \
	    if [ -d $$seed ]; then dirs="$$dirs $$seed"; else cp $$seed $(BUILD)/fuzz/corpus/$(t)/; fi; \
	  done; \
	  $(BUILD)/fuzz/fuzz_$(t) -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(BUILD)/fuzz/ \
	    $(BUILD)/fuzz/corpus/$(t) $$dirs >$(BUILD)/fuzz/$(t).log 2>&1 || \
	    { tail -n 40 $(BUILD)/fuzz/$(t).log; exit 1; }; \
	  tail -n 1 $(BUILD)/fuzz/$(t).log;)

ui-check: ui-deps all
	@echo "== tests/ui/console.test.mjs"
	NPSD_BIN=$(BUILD)/npsd NPSCTL_BIN=$(BUILD)/npsctl node --test tests/ui/console.test.mjs

# The unit tests in-process (CK_FORK=no) under valgrind: leaks and bad reads fail it.
valgrind: deps
	$(MAKE) all $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
	@set -e; for t in $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC)); do \
	  echo "== valgrind $$t"; CK_FORK=no valgrind -q --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=definite $$t; \
	done

run: deps all
	@mkdir -p var
	@# A new database (var/ emptied) needs a new token: the old one is in no database.
	@if [ ! -s var/dev-admin.token ] || [ ! -e var/npsd.db ]; then \
	  umask 077; $(BUILD)/npsctl --db var/npsd.db key create --role admin --name dev-admin > var/dev-admin.token; \
	fi
	@echo "npsd dev admin token: $$(cat var/dev-admin.token)"
	@echo "try: curl -s -H \"Authorization: Bearer $$(cat var/dev-admin.token)\" http://127.0.0.1:8080/v1/surveys"
	@echo "or the web console: http://127.0.0.1:8080/ui/ (sign in with the token above)"
	exec $(BUILD)/npsd --config etc/npsd.dev.conf

bench: deps all
	sh bench/run.sh

# Instructions per answer by thread, under callgrind: a steady figure for A/B of a change.
bench-instructions: deps all
	sh bench/instructions.sh

lint:
	@! grep -nE '\b(gets|sprintf|strcpy|strcat|strtok|atoi)\s*\(' src/*.c include/npsd/*.h tests/*.c fuzz/*.c || \
	  { echo "banned call above"; exit 1; }
	clang-format --dry-run --Werror src/*.c src/*.h include/npsd/*.h fuzz/*.c

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/npsd $(DESTDIR)/etc/npsd \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/share/doc/npsd \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(BUILD)/npsd $(BUILD)/npsctl $(DESTDIR)$(PREFIX)/bin/
	install -m 644 man/npsd.8 man/npsctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 644 man/npsd.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 etc/npsd.conf $(DESTDIR)$(PREFIX)/share/npsd/npsd.conf.sample
	@# 644: the unit's DynamicUser= is in no group that could read a 640 root file, and the
	@# file holds no secret (keys live hashed in the database, webhook auth in it too).
	[ -e $(DESTDIR)/etc/npsd/npsd.conf ] || install -m 644 etc/npsd.conf $(DESTDIR)/etc/npsd/npsd.conf
	install -m 644 README.md $(DESTDIR)$(PREFIX)/share/doc/npsd/README.md
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@DOCDIR@|$(PREFIX)/share/doc/npsd|g' systemd/npsd.service \
	  > $(DESTDIR)$(PREFIX)/lib/systemd/system/npsd.service

clean:
	rm -rf build
