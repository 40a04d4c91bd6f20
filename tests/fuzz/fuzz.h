/*
 * fuzz: what the libFuzzer targets in this folder share.
 *
 * Each fuzz_<target>.c holds one static entry point, <target>_one(data,
 * size), that feeds the input to the product code and checks what must hold
 * whatever the input (no crash is not enough: a parser that accepts must
 * hand back bounded, terminated, consistent results). The file ends with
 * LLVMFuzzerTestOneInput unless FUZZ_REGRESS is defined:
 * tests/test_fuzz_regress.c defines it, includes the target files and
 * replays every input kept under tests/fuzz/regress/ through the very same
 * entry points, with FUZZ_FAIL turned into a Criterion failure.
 */
#ifndef PREWCTL_FUZZ_H
#define PREWCTL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broken invariant: libFuzzer sees a crash and keeps the input. */
#ifndef FUZZ_FAIL
#define FUZZ_FAIL(...) do {						\
	fprintf(stderr, "fuzz invariant: " __VA_ARGS__);		\
	fputc('\n', stderr);						\
	abort();							\
} while (0)
#endif

#define FUZZ_CHECK(cond, ...) do {					\
	if (!(cond))							\
		FUZZ_FAIL(__VA_ARGS__);					\
} while (0)

/* FNV-1a: a stable seed from the input, so a replay splits it the same. */
static inline uint64_t
fuzz_hash(const uint8_t *p, size_t n)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	while (n-- > 0)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

/* xorshift64*: never returns the same stream for two different seeds. */
static inline uint64_t
fuzz_rand(uint64_t *s)
{
	if (*s == 0)
		*s = 0x9e3779b97f4a7c15ULL;
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static inline int
fuzz_utf8_ok(const unsigned char *s, size_t n)
{
	size_t		i = 0, k, need;
	uint32_t	cp, min;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			need = 1; cp = s[i] & 0x1f; min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			need = 2; cp = s[i] & 0x0f; min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			need = 3; cp = s[i] & 0x07; min = 0x10000;
		} else
			return 0;
		if (n - i - 1 < need)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

#endif
