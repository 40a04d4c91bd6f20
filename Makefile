# prewctl: keep an S3 bucket's image previews in step with its originals.
#
#   make            build ./prewctl
#   make check      build and run every test (starts the test S3 server
#                   unless PREWCTL_TEST_ENDPOINT names one)
#   make install    PREFIX=/usr/local DESTDIR=
#   make demo       previews of the sample photos in a local folder
#   make clean

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
endif

ALL_CFLAGS = $(WFLAGS) $(CFLAGS) $(PKG_CFLAGS) $(CPPFLAGS)

LIB_SRCS = $(sort $(wildcard s3/*.c preview/*.c))
CMD_SRCS = $(sort $(wildcard cmd/*.c))
TEST_SRCS = $(sort $(wildcard tests/test_*.c tests/helpers.c))
LIB_OBJS = $(LIB_SRCS:.c=.o)
CMD_OBJS = $(CMD_SRCS:.c=.o)
TEST_OBJS = $(TEST_SRCS:.c=.o)
HDRS	= $(wildcard s3/*.h preview/*.h cmd/*.h tests/*.h)

all: prewctl

%.o: %.c $(HDRS)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

libprewctl.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $(LIB_OBJS)

prewctl: prewctl.o $(CMD_OBJS) libprewctl.a
	$(CC) $(LDFLAGS) -o $@ prewctl.o $(CMD_OBJS) libprewctl.a $(LDLIBS)

tests/prewctl-tests: $(TEST_OBJS) libprewctl.a
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJS) libprewctl.a $(LDLIBS) -lcriterion

check: prewctl tests/prewctl-tests lint-man
	tests/run-tests

lint-man:
	@out=$$(groff -mandoc -ww -z man/prewctl.1 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi

install: prewctl
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 755 prewctl $(DESTDIR)$(BINDIR)/prewctl
	install -m 644 man/prewctl.1 $(DESTDIR)$(MANDIR)/prewctl.1

demo:
	demo/run

clean:
	rm -f prewctl prewctl.o $(CMD_OBJS) $(LIB_OBJS) $(TEST_OBJS) \
	    libprewctl.a tests/prewctl-tests
	rm -rf demo/prew

.PHONY: all check lint-man install demo clean
