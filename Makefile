# prewctl: keep an S3 bucket's image previews in step with its originals.
#
#   make            build ./prewctl
#   make check      build and run every test (starts the test S3 server
#                   unless PREWCTL_TEST_ENDPOINT names one)
#   make install    PREFIX=/usr/local DESTDIR=
#   make demo       previews of the sample photos in a local folder
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
PKGS	= vips libcurl libxml-2.0 inih libcrypto
CFLAGS	?= -O2 -g
WFLAGS	= -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE
CPPFLAGS += -I. -DPREWCTL_VERSION='"$(VERSION)"'
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))
LDLIBS	= $(PKG_LIBS) -lpthread -lm

ifeq ($(SAN),1)
CFLAGS	+= -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS	+= -fsanitize=address,undefined
B	?= build-san
endif
B	?= .

ALL_CFLAGS = $(WFLAGS) $(CFLAGS) $(PKG_CFLAGS) $(CPPFLAGS)

LIB_SRCS = $(sort $(wildcard s3/*.c preview/*.c))
CMD_SRCS = $(sort $(wildcard cmd/*.c))
TEST_SRCS = $(sort $(wildcard tests/test_*.c tests/helpers.c))
LIB_OBJS = $(LIB_SRCS:%.c=$(B)/%.o)
CMD_OBJS = $(CMD_SRCS:%.c=$(B)/%.o)
TEST_OBJS = $(TEST_SRCS:%.c=$(B)/%.o)
HDRS	= $(wildcard s3/*.h preview/*.h cmd/*.h tests/*.h)
LIB	= $(B)/libprewctl.a
PREWCTL	= $(B)/prewctl
TESTS	= $(B)/tests/prewctl-tests

all: $(PREWCTL)

$(B)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $(LIB_OBJS)

$(PREWCTL): $(B)/prewctl.o $(CMD_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(B)/prewctl.o $(CMD_OBJS) $(LIB) $(LDLIBS)

$(TESTS): $(TEST_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJS) $(LIB) $(LDLIBS) -lcriterion

tests: $(TESTS)

check: $(PREWCTL) $(TESTS) lint-man
	PREWCTL_BIN=$(abspath $(PREWCTL)) PREWCTL_TESTS=$(abspath $(TESTS)) \
	    tests/run-tests

lint-man:
	@out=$$(groff -mandoc -ww -z man/prewctl.1 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi

install: $(PREWCTL)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 755 $(PREWCTL) $(DESTDIR)$(BINDIR)/prewctl
	install -m 644 man/prewctl.1 $(DESTDIR)$(MANDIR)/prewctl.1

demo:
	demo/run

clean:
	rm -f $(PREWCTL) $(B)/prewctl.o $(CMD_OBJS) $(LIB_OBJS) $(TEST_OBJS) \
	    $(LIB) $(TESTS)
	rm -rf demo/prew build-san

.PHONY: all tests check lint-man install demo clean
