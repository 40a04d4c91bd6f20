# prewctl: keep an S3 bucket's image previews in step with its originals.
#
#   make            build ./prewctl
#   make check      install what the tests need (as root), build, and run
#                   every test (starts the test S3 server unless
#                   PREWCTL_TEST_ENDPOINT names one)
#   make check-unit the tests that need no server, in seconds
#   make install    PREFIX=/usr/local DESTDIR=
#   make demo       previews of the sample photos in a local folder
#   make fuzz       build the libFuzzer targets (tests/fuzz/) with clang
#                   into build-fuzz/ and run each for FUZZ_SECONDS (60)
#   make valgrind   one folder-backend scenario under valgrind: nothing
#                   may be definitely lost
#   make bench      prewctl against vipsthumbnail, sharp and the AWS CLI
#                   (tests/bench/run; BENCH_BIG=0 skips the 200k/1M rows)
#   make clean
#
# B=DIR builds out of tree (objects and binaries under DIR), so several
# builds of one tree can run at once; SAN=1 (ASan + UBSan) builds under
# build-san/ unless B says otherwise.

VERSION	= 0.1.0
PREFIX	?= /usr/local
BINDIR	= $(PREFIX)/bin
MANDIR	= $(PREFIX)/share/man/man1

CC	?= cc
PKGS	= vips lcms2 libcurl libxml-2.0 inih libcrypto libmicrohttpd hiredis
CFLAGS	?= -O2 -g
WFLAGS	= -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE
CPPFLAGS += -I. -DPREWCTL_VERSION='"$(VERSION)"'
# Quiet: before `make deps-build` has run, the packages may not be there.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# The Debian 12 packages each kind of run needs: the one list of them.
DEPS_BUILD = build-essential pkg-config libvips-dev liborc-0.4-dev \
	libcurl4-openssl-dev libxml2-dev libinih-dev libssl-dev liblcms2-dev \
	libmicrohttpd-dev libhiredis-dev
DEPS_UNIT = $(DEPS_BUILD) libcriterion-dev groff-base groff python3
DEPS_TEST = $(DEPS_UNIT) radosgw ceph-mon ceph-osd curl ca-certificates \
	redis-server nginx-light python3-prometheus-client python3-yaml \
	systemd
DEPS_CI	= $(DEPS_TEST) clang libclang-rt-14-dev valgrind libvips-tools
LDLIBS	= $(PKG_LIBS) -lpthread -lm

ifeq ($(SAN),1)
CFLAGS	+= -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS	+= -fsanitize=address,undefined
B	?= build-san
# Any report fails the run: a leak or UB in prewctl shows as a failed test.
# tests/lsan.supp says which library leaks are ignored, and why.
SAN_ENV	= ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0
endif
B	?= .

ALL_CFLAGS = $(WFLAGS) $(CFLAGS) $(PKG_CFLAGS) $(CPPFLAGS)

ifeq ($(V),1)
Q	=
else
Q	= @echo "  CC      $<";
endif

LIB_SRCS = $(sort $(wildcard s3/*.c store/*.c preview/*.c serve/*.c))
CMD_SRCS = $(sort $(wildcard cmd/*.c))
TEST_SRCS = $(sort $(wildcard tests/test_*.c tests/helpers.c tests/jsonread.c))
LIB_OBJS = $(LIB_SRCS:%.c=$(B)/%.o)
CMD_OBJS = $(CMD_SRCS:%.c=$(B)/%.o)
TEST_OBJS = $(TEST_SRCS:%.c=$(B)/%.o)
HDRS	= $(wildcard s3/*.h store/*.h preview/*.h serve/*.h cmd/*.h tests/*.h)
LIB	= $(B)/libprewctl.a
CMDLIB	= $(B)/libprewctlcmd.a
PREWCTL	= $(B)/prewctl
TESTS	= $(B)/tests/prewctl-tests

all: $(PREWCTL)

# Each object depends on the headers it includes (-MMD), so touching one
# header rebuilds only what uses it; V=1 shows the whole command.
$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

-include $(wildcard $(LIB_OBJS:.o=.d) $(CMD_OBJS:.o=.d) $(TEST_OBJS:.o=.d) \
    $(B)/prewctl.d)

$(LIB): $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $(LIB_OBJS)

# cmd/ is a library too, so that unit tests can link what it holds.
$(CMDLIB): $(CMD_OBJS)
	rm -f $@
	ar rcs $@ $(CMD_OBJS)

$(PREWCTL): $(B)/prewctl.o $(CMDLIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(B)/prewctl.o $(CMDLIB) $(LIB) $(LDLIBS)

$(TESTS): $(TEST_OBJS) $(CMDLIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJS) $(CMDLIB) $(LIB) $(LDLIBS) \
	    -lcriterion

tests: $(TESTS)

deps-build:
	@tests/install-deps $(DEPS_BUILD)
deps-unit:
	@tests/install-deps $(DEPS_UNIT)
deps-test:
	@tests/install-deps $(DEPS_TEST)
deps-ci:
	@tests/install-deps $(DEPS_CI)

# A fresh make reads pkg-config's flags once the packages are there.
check: deps-test
	@$(MAKE) --no-print-directory check-installed
check-unit: deps-unit
	@$(MAKE) --no-print-directory check-unit-installed

check-installed: $(PREWCTL) $(TESTS) lint-man
	PREWCTL_BIN=$(abspath $(PREWCTL)) tests/check-contrib
	$(SAN_ENV) PREWCTL_BIN=$(abspath $(PREWCTL)) \
	    PREWCTL_TESTS=$(abspath $(TESTS)) tests/run-tests

check-unit-installed: $(PREWCTL) $(TESTS) lint-man
	$(SAN_ENV) PREWCTL_BIN=$(abspath $(PREWCTL)) \
	    PREWCTL_TESTS=$(abspath $(TESTS)) tests/run-tests --unit

lint-man:
	@out=$$(groff -mandoc -ww -z man/prewctl.1 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi

install: $(PREWCTL)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 755 $(PREWCTL) $(DESTDIR)$(BINDIR)/prewctl
	install -m 644 man/prewctl.1 $(DESTDIR)$(MANDIR)/prewctl.1

demo: deps-build
	@$(MAKE) --no-print-directory demo-installed
demo-installed: $(PREWCTL)
	demo/run

# libFuzzer targets: clang, ASan and UBSan, out of tree. Each runs for
# FUZZ_SECONDS from its seeds in tests/fuzz/corpus/<target>/; what it learns
# goes to $(FUZZ_B)/corpus/<target>/ and a crashing input to
# $(FUZZ_B)/crash/<target>/ (keep it under tests/fuzz/regress/<target>/:
# test_fuzz_regress.c replays those in make check).
FUZZ_B	?= build-fuzz
FUZZ_CC	?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = listxml s3error sigv4 config creds
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = $(WFLAGS) -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) \
	$(PKG_CFLAGS) $(CPPFLAGS)
FUZZ_LIB_OBJS = $(LIB_SRCS:%.c=$(FUZZ_B)/%.o)
FUZZ_BINS = $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz_%)

$(FUZZ_LIB_OBJS): $(FUZZ_B)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_B)/libprewctl.a: $(FUZZ_LIB_OBJS)
	rm -f $@
	ar rcs $@ $(FUZZ_LIB_OBJS)

$(FUZZ_BINS): $(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h \
    $(HDRS) $(FUZZ_B)/libprewctl.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(FUZZ_B)/libprewctl.a $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

# A crash, a leak, a broken invariant or a timeout fails the run (after
# every target has had its turn); each target's output stays in
# $(FUZZ_B)/<target>.log.
fuzz: $(FUZZ_BINS)
	@failed=; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_B)/corpus/$$t $(FUZZ_B)/crash/$$t || exit 1; \
		dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
		echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
		if $(FUZZ_B)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
		    -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
		    -artifact_prefix=$(FUZZ_B)/crash/$$t/ $$dict \
		    $(FUZZ_B)/corpus/$$t tests/fuzz/corpus/$$t \
		    > $(FUZZ_B)/$$t.log 2>&1; then \
			grep -E '^(Done|stat::number_of_executed_units)' \
			    $(FUZZ_B)/$$t.log | tr '\n' ' '; echo; \
		else \
			grep -E -A3 '^(fuzz invariant|==[0-9]+==ERROR|SUMMARY)' \
			    $(FUZZ_B)/$$t.log | head -n 40; \
			echo "fuzz: $$t FAILED; input in $(FUZZ_B)/crash/$$t/"; \
			failed="$$failed $$t"; \
		fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi

# One folder-backend scenario under valgrind: generate over the demo photos
# (three presets: JPEG, WebP with an attention crop, PNG), then plan. The
# build must not use ASan (valgrind cannot run it). tests/valgrind.supp
# documents the library caches it ignores. As libvips' docs advise under
# valgrind: no Orc (valgrind cannot follow its run-time generated code) and
# GLib's slices as plain malloc.
VALGRIND = VIPS_NOVECTOR=1 G_SLICE=always-malloc G_DEBUG=gc-friendly \
	valgrind --quiet --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --error-exitcode=1 \
	--suppressions=tests/valgrind.supp --num-callers=30

valgrind: $(PREWCTL)
	@if [ "$(SAN)" = 1 ]; then echo "make valgrind: not with SAN=1"; exit 2; fi
	@set -e; d=$$(mktemp -d "$${TMPDIR:-/tmp}/prewctl-vg.XXXXXX"); \
	trap 'rm -rf -- "$$d"' EXIT; \
	mkdir -p "$$d/photo"; cp -R demo/photo/. "$$d/photo/"; \
	printf '%s\n' '[storage]' "directory = $$d" 'source = photo/' \
	    'previews = prew/' '[preset small]' 'width = 160' \
	    '[preset sq]' 'width = 96' 'height = 96' 'fit = cover' \
	    'crop = attention' 'format = webp' \
	    '[preset png]' 'width = 64' 'format = png' > "$$d/presets.ini"; \
	echo "valgrind: prewctl generate -j 2"; \
	$(VALGRIND) $(PREWCTL) -c "$$d/presets.ini" generate -j 2; \
	n=$$(find "$$d/prew" -type f ! -name '.prewctl-*' | wc -l); \
	echo "valgrind: $$n previews made"; \
	[ "$$n" -eq 12 ] || { echo "valgrind: want 12 previews"; exit 1; }; \
	echo "valgrind: prewctl plan"; \
	$(VALGRIND) $(PREWCTL) -c "$$d/presets.ini" plan; \
	echo "valgrind: nothing definitely lost, no memory errors"

bench: $(PREWCTL) $(LIB)
	PREWCTL_BIN=$(abspath $(PREWCTL)) PREWCTL_LIB=$(abspath $(LIB)) \
	    tests/bench/run

clean:
	rm -f $(PREWCTL) $(B)/prewctl.o $(CMD_OBJS) $(LIB_OBJS) $(TEST_OBJS) \
	    $(LIB) $(CMDLIB) $(TESTS)
	rm -f $(B)/prewctl.d $(CMD_OBJS:.o=.d) $(LIB_OBJS:.o=.d) \
	    $(TEST_OBJS:.o=.d)
	rm -rf demo/prew build-san build-fuzz

.PHONY: all tests check check-unit check-installed check-unit-installed \
	deps-build deps-unit deps-test deps-ci lint-man install demo \
	demo-installed clean fuzz fuzz-build valgrind bench
