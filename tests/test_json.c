/*
 * json: the --json writer (cmd/json.c) and the text escaping of keys
 * (cmd_key, cmd/common.c), as units: each writes into a memory stream
 * that is compared byte for byte with what the man page's OUTPUT section
 * says, and every JSON document is read back with th_json_parse.
 *
 * The escaping tables are written from the rules, not from the code: a
 * byte that starts no valid UTF-8 sequence (RFC 3629: no overlong form,
 * no surrogate, nothing past U+10FFFF, nothing cut short) is one escape,
 * and the bytes after it are looked at afresh.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cmd/cmd.h"
#include "cmd/json.h"
#include "helpers.h"

struct mem {
	FILE	*f;
	char	*data;
	size_t	 len;
};

static void
mem_open(struct mem *m)
{
	memset(m, 0, sizeof(*m));
	m->f = open_memstream(&m->data, &m->len);
	cr_assert_not_null(m->f);
}

/* Close the stream: m->data holds what was written, NUL-terminated. */
static void
mem_close(struct mem *m)
{
	cr_assert_eq(fclose(m->f), 0);
	m->f = NULL;
}

static void
mem_free(struct mem *m)
{
	free(m->data);
	m->data = NULL;
}

/* The document is one JSON value; returns it parsed. */
static struct th_json *
parses(const struct mem *m)
{
	return th_json_parse(m->data, m->len);
}

/* ---- nesting and commas -------------------------------------------------- */

Test(json, empty_object_and_array)
{
	struct mem	m;
	struct json	j;

	mem_open(&m);
	json_init(&j, m.f);
	json_object(&j);
	json_key(&j, "o");
	json_object(&j);
	json_end(&j);
	json_key(&j, "a");
	json_array(&j);
	json_end(&j);
	json_end(&j);
	mem_close(&m);
	cr_assert_str_eq(m.data, "{\"o\":{},\"a\":[]}");
	th_json_free(parses(&m));
	mem_free(&m);
}

Test(json, commas_between_members_and_elements)
{
	struct mem	 m;
	struct json	 j;
	struct th_json	*t;

	mem_open(&m);
	json_init(&j, m.f);
	json_object(&j);
	json_kstr(&j, "s", "x");
	json_ku64(&j, "u", 18446744073709551615ULL);
	json_key(&j, "i");
	json_int(&j, -42);
	json_key(&j, "d");
	json_double(&j, 1.5, 3);
	json_key(&j, "t");
	json_bool(&j, 1);
	json_key(&j, "f");
	json_bool(&j, 0);
	json_key(&j, "n");
	json_null(&j);
	json_kstr(&j, "sn", NULL);
	json_key(&j, "a");
	json_array(&j);
	json_u64(&j, 1);
	json_str(&j, "two");
	json_null(&j);
	json_array(&j);
	json_end(&j);
	json_object(&j);
	json_ku64(&j, "k", 3);
	json_end(&j);
	json_end(&j);
	json_key(&j, "last");
	json_u64(&j, 0);
	json_end(&j);
	mem_close(&m);
	cr_assert_str_eq(m.data, "{\"s\":\"x\",\"u\":18446744073709551615,"
	    "\"i\":-42,\"d\":1.500,\"t\":true,\"f\":false,\"n\":null,"
	    "\"sn\":null,\"a\":[1,\"two\",null,[],{\"k\":3}],\"last\":0}");
	t = parses(&m);
	cr_assert_str_eq(th_json_str(t, "s"), "x");
	cr_assert_eq(th_json_num(t, "i"), -42);
	cr_assert_eq(th_json_real(t, "d"), 1.5);
	cr_assert_null(th_json_str(t, "sn"));
	cr_assert_eq(th_json_len(th_json_at(t, "a")), 5);
	cr_assert_eq(th_json_num(t, "a[4].k"), 3);
	cr_assert_eq(th_json_num(t, "last"), 0);
	th_json_free(t);
	mem_free(&m);
}

/* Values at the top: an array of objects, each with its own commas. */
Test(json, array_of_objects)
{
	struct mem	m;
	struct json	j;
	int		i;

	mem_open(&m);
	json_init(&j, m.f);
	json_array(&j);
	for (i = 0; i < 3; i++) {
		json_object(&j);
		json_ku64(&j, "a", (uint64_t)i);
		json_ku64(&j, "b", (uint64_t)i * 10);
		json_end(&j);
	}
	json_end(&j);
	mem_close(&m);
	cr_assert_str_eq(m.data,
	    "[{\"a\":0,\"b\":0},{\"a\":1,\"b\":10},{\"a\":2,\"b\":20}]");
	th_json_free(parses(&m));
	mem_free(&m);
}

/* JSON has no NaN or infinity: they are null, and the document parses. */
Test(json, doubles_that_json_cannot_say)
{
	struct mem	m;
	struct json	j;

	mem_open(&m);
	json_init(&j, m.f);
	json_array(&j);
	json_double(&j, NAN, 3);
	json_double(&j, INFINITY, 3);
	json_double(&j, -INFINITY, 3);
	json_double(&j, 1.26, 1);
	json_end(&j);
	mem_close(&m);
	cr_assert_str_eq(m.data, "[null,null,null,1.3]");
	th_json_free(parses(&m));
	mem_free(&m);
}

/*
 * json_close_all closes what is open, innermost first, wherever the
 * printer stopped: after a key's value, inside an array, or at the root
 * (a failure in the middle of a printer still leaves one document).
 */
Test(json, close_all_closes_innermost_first)
{
	struct mem	 m;
	struct json	 j;
	struct th_json	*t;

	mem_open(&m);
	json_init(&j, m.f);
	json_object(&j);
	json_key(&j, "a");
	json_array(&j);
	json_u64(&j, 1);
	json_object(&j);
	json_kstr(&j, "k", "v");
	json_close_all(&j);
	mem_close(&m);
	cr_assert_str_eq(m.data, "{\"a\":[1,{\"k\":\"v\"}]}");
	t = parses(&m);
	cr_assert_str_eq(th_json_str(t, "a[1].k"), "v");
	th_json_free(t);
	mem_free(&m);

	/* Closing again, or with nothing open, writes nothing. */
	mem_open(&m);
	json_init(&j, m.f);
	json_close_all(&j);
	json_object(&j);
	json_close_all(&j);
	json_close_all(&j);
	json_end(&j);
	mem_close(&m);
	cr_assert_str_eq(m.data, "{}");
	mem_free(&m);
}

/* After close_all the writer can start the next document afresh. */
Test(json, close_all_then_more_members_at_root)
{
	struct mem	m;
	struct json	j;

	mem_open(&m);
	json_init(&j, m.f);
	json_object(&j);
	json_key(&j, "keys");
	json_array(&j);
	json_str(&j, "a");
	json_str(&j, "b");
	json_end(&j);
	json_ku64(&j, "exit", 0);
	json_kstr(&j, "error", NULL);
	json_close_all(&j);
	mem_close(&m);
	cr_assert_str_eq(m.data,
	    "{\"keys\":[\"a\",\"b\"],\"exit\":0,\"error\":null}");
	th_json_free(parses(&m));
	mem_free(&m);
}

/* ---- string escaping ----------------------------------------------------- */

struct esc_case {
	const char	*name;
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	const char	*json;		/* between the quotes */
	const char	*text;		/* cmd_key's */
};

#define S(x)	x, sizeof(x) - 1

static const struct esc_case esc[] = {
	{ "plain", S("photo/2024/cat.jpg"), "photo/2024/cat.jpg",
	    "photo/2024/cat.jpg" },
	{ "empty", "", 0, "", "" },
	{ "quote", S("a\"b"), "a\\\"b", "a\"b" },
	{ "backslash", S("a\\b"), "a\\\\b", "a\\\\b" },
	{ "slash and specials", S("/ %#+?&="), "/ %#+?&=", "/ %#+?&=" },
	{ "newline tab cr", S("\n\t\r"), "\\n\\t\\r", "\\n\\t\\r" },
	{ "other controls", S("\x01\x08\x0c\x1b\x1f"),
	    "\\u0001\\u0008\\u000c\\u001b\\u001f",
	    "\\x01\\x08\\x0c\\x1b\\x1f" },
	{ "nul inside", S("a\0b"), "a\\u0000b", NULL },
	{ "del", S("x\x7fy"), "x\\u007fy", "x\\x7fy" },
	{ "2-byte", S("caf\xc3\xa9"), "caf\xc3\xa9", "caf\xc3\xa9" },
	{ "2-byte lowest", S("\xc2\x80"), "\xc2\x80", "\xc2\x80" },
	{ "3-byte", S("\xe2\x82\xac"), "\xe2\x82\xac", "\xe2\x82\xac" },
	{ "3-byte lowest", S("\xe0\xa0\x80"), "\xe0\xa0\x80",
	    "\xe0\xa0\x80" },
	{ "3-byte U+FFFF", S("\xef\xbf\xbf"), "\xef\xbf\xbf",
	    "\xef\xbf\xbf" },
	{ "before surrogates", S("\xed\x9f\xbf"), "\xed\x9f\xbf",
	    "\xed\x9f\xbf" },
	{ "4-byte", S("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80",
	    "\xf0\x9f\x98\x80" },
	{ "4-byte U+10FFFF", S("\xf4\x8f\xbf\xbf"), "\xf4\x8f\xbf\xbf",
	    "\xf4\x8f\xbf\xbf" },
	{ "lone continuation", S("a\x80z"), "a\\udc80z", "a\\x80z" },
	{ "continuations", S("\xbf\x80"), "\\udcbf\\udc80", "\\xbf\\x80" },
	{ "overlong slash C0 AF", S("\xc0\xaf"), "\\udcc0\\udcaf",
	    "\\xc0\\xaf" },
	{ "overlong C1 BF", S("\xc1\xbf"), "\\udcc1\\udcbf", "\\xc1\\xbf" },
	{ "overlong 3-byte", S("\xe0\x80\xaf"), "\\udce0\\udc80\\udcaf",
	    "\\xe0\\x80\\xaf" },
	{ "overlong 4-byte", S("\xf0\x80\x80\xaf"),
	    "\\udcf0\\udc80\\udc80\\udcaf", "\\xf0\\x80\\x80\\xaf" },
	{ "surrogate ED A0 80", S("\xed\xa0\x80"), "\\udced\\udca0\\udc80",
	    "\\xed\\xa0\\x80" },
	{ "surrogate ED BF BF", S("\xed\xbf\xbf"), "\\udced\\udcbf\\udcbf",
	    "\\xed\\xbf\\xbf" },
	{ "past U+10FFFF", S("\xf4\x90\x80\x80"),
	    "\\udcf4\\udc90\\udc80\\udc80", "\\xf4\\x90\\x80\\x80" },
	{ "F5", S("\xf5\x80\x80\x80"), "\\udcf5\\udc80\\udc80\\udc80",
	    "\\xf5\\x80\\x80\\x80" },
	{ "F8 FE FF", S("\xf8\xfe\xff"), "\\udcf8\\udcfe\\udcff",
	    "\\xf8\\xfe\\xff" },
	{ "cut 2-byte at end", S("a\xc3"), "a\\udcc3", "a\\xc3" },
	{ "cut 3-byte at end", S("a\xe2\x82"), "a\\udce2\\udc82",
	    "a\\xe2\\x82" },
	{ "cut 4-byte at end", S("a\xf0\x9f\x98"), "a\\udcf0\\udc9f\\udc98",
	    "a\\xf0\\x9f\\x98" },
	{ "cut 3-byte before ASCII", S("\xe2\x82z"), "\\udce2\\udc82z",
	    "\\xe2\\x82z" },
	{ "cut 2-byte before 2-byte", S("\xc3\xc3\xa9"), "\\udcc3\xc3\xa9",
	    "\\xc3\xc3\xa9" },
	{ "bad then good", S("\xff\xfe\xe2\x82\xac."), "\\udcff\\udcfe"
	    "\xe2\x82\xac.", "\\xff\\xfe\xe2\x82\xac." },
	{ "Latin-1 name", S("b\xe4r.jpg"), "b\\udce4r.jpg", "b\\xe4r.jpg" },
};

#define NESC	(sizeof(esc) / sizeof(esc[0]))

static size_t
esc_len(const struct esc_case *c)
{
	return c->len != 0 ? c->len : strlen(c->in);
}

/* json_quote writes each case as the table says. */
Test(json, quote_table)
{
	struct mem	m;
	char		want[256];
	size_t		i;

	for (i = 0; i < NESC; i++) {
		mem_open(&m);
		json_quote(m.f, esc[i].in, esc_len(&esc[i]));
		mem_close(&m);
		cr_assert(snprintf(want, sizeof(want), "\"%s\"", esc[i].json) <
		    (int)sizeof(want));
		cr_assert_eq(m.len, strlen(want), "%s: %zu bytes '%s', want "
		    "'%s'", esc[i].name, m.len, m.data, want);
		cr_assert_str_eq(m.data, want, "%s", esc[i].name);
		mem_free(&m);
	}
}

/*
 * What th_json_parse gives back, undone as Python's surrogateescape
 * would: a lone U+DC80..U+DCFF (three bytes ED B2..B3 xx here) is the
 * byte 0x80..0xFF it stands for.
 */
static size_t
unescape_surrogates(const char *s, size_t len, char *out)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n = 0;

	while (i < len) {
		if (i + 2 < len && p[i] == 0xed && (p[i + 1] == 0xb2 ||
		    p[i + 1] == 0xb3) && (p[i + 2] & 0xc0) == 0x80) {
			unsigned cp = 0xd000 | (p[i + 1] & 0x3fu) << 6 |
			    (p[i + 2] & 0x3fu);

			out[n++] = (char)(cp - 0xdc00);
			i += 3;
			continue;
		}
		out[n++] = s[i++];
	}
	return n;
}

/*
 * Every output of the table parses as a member value, and surrogateescape
 * gives the input's bytes back, as the man page promises.
 */
Test(json, quote_table_parses_and_round_trips)
{
	struct mem		 m;
	struct json		 j;
	struct th_json		*t;
	const struct th_json	*v;
	char			 back[256];
	size_t			 i, n;

	for (i = 0; i < NESC; i++) {
		mem_open(&m);
		json_init(&j, m.f);
		json_object(&j);
		json_key(&j, esc[i].in[0] != '\0' && esc_len(&esc[i]) ==
		    strlen(esc[i].in) ? esc[i].in : "k");
		json_strn(&j, esc[i].in, esc_len(&esc[i]));
		json_end(&j);
		mem_close(&m);
		t = parses(&m);
		cr_assert_eq(th_json_len(t), 1, "%s", esc[i].name);
		v = th_json_item(t, 0);
		cr_assert_eq(th_json_type(v), TH_JSON_STRING, "%s",
		    esc[i].name);
		n = unescape_surrogates(th_json_str(v, ""), th_json_len(v),
		    back);
		cr_assert_eq(n, esc_len(&esc[i]), "%s: %zu bytes back, want "
		    "%zu", esc[i].name, n, esc_len(&esc[i]));
		cr_assert(memcmp(back, esc[i].in, n) == 0, "%s: other bytes "
		    "back", esc[i].name);
		/* The member name went through the same escaping. */
		if (esc_len(&esc[i]) == strlen(esc[i].in) &&
		    esc[i].in[0] != '\0') {
			n = unescape_surrogates(th_json_name(t, 0),
			    strlen(th_json_name(t, 0)), back);
			cr_assert(n == esc_len(&esc[i]) &&
			    memcmp(back, esc[i].in, n) == 0,
			    "%s: the key does not round-trip", esc[i].name);
		}
		th_json_free(t);
		mem_free(&m);
	}
}

/*
 * Each single byte from 0 to 255, against the rule: the short escapes,
 * \u00XX for other control bytes and DEL, \udcXX for every byte >= 0x80
 * (none of which is UTF-8 alone), itself otherwise.
 */
Test(json, quote_every_single_byte)
{
	struct mem	 m;
	char		 want[16], in[1];
	struct th_json	*t;
	unsigned	 b;

	for (b = 0; b < 256; b++) {
		in[0] = (char)b;
		if (b == '"')
			snprintf(want, sizeof(want), "\"\\\"\"");
		else if (b == '\\')
			snprintf(want, sizeof(want), "\"\\\\\"");
		else if (b == '\n')
			snprintf(want, sizeof(want), "\"\\n\"");
		else if (b == '\t')
			snprintf(want, sizeof(want), "\"\\t\"");
		else if (b == '\r')
			snprintf(want, sizeof(want), "\"\\r\"");
		else if (b < 0x20 || b == 0x7f)
			snprintf(want, sizeof(want), "\"\\u%04x\"", b);
		else if (b >= 0x80)
			snprintf(want, sizeof(want), "\"\\udc%02x\"", b);
		else
			snprintf(want, sizeof(want), "\"%c\"", (char)b);
		mem_open(&m);
		json_quote(m.f, in, 1);
		mem_close(&m);
		cr_assert_eq(m.len, strlen(want), "byte %02x: '%s', want "
		    "'%s'", b, m.data, want);
		cr_assert_str_eq(m.data, want, "byte %02x", b);
		t = parses(&m);
		th_json_free(t);
		mem_free(&m);
	}
}

/* json_str stops at a NUL; json_strn writes it. */
Test(json, str_and_strn)
{
	struct mem	m;
	struct json	j;

	mem_open(&m);
	json_init(&j, m.f);
	json_array(&j);
	json_str(&j, "a\0b");
	json_strn(&j, "a\0b", 3);
	json_strn(&j, "abc", 2);
	json_end(&j);
	mem_close(&m);
	cr_assert_str_eq(m.data, "[\"a\",\"a\\u0000b\",\"ab\"]");
	th_json_free(parses(&m));
	mem_free(&m);
}

/* ---- cmd_key: one key, one line ------------------------------------------ */

Test(json, cmd_key_table)
{
	struct mem	m;
	size_t		i;

	for (i = 0; i < NESC; i++) {
		if (esc[i].text == NULL)	/* a C string has no NUL */
			continue;
		mem_open(&m);
		cmd_key(m.f, esc[i].in);
		mem_close(&m);
		cr_assert_eq(m.len, strlen(esc[i].text), "%s: '%s', want "
		    "'%s'", esc[i].name, m.data, esc[i].text);
		cr_assert_str_eq(m.data, esc[i].text, "%s", esc[i].name);
		mem_free(&m);
	}
}

/* Each byte from 1 to 255 alone, against OUTPUT's rule. */
Test(json, cmd_key_every_single_byte)
{
	struct mem	m;
	char		want[16], in[2];
	unsigned	b;

	for (b = 1; b < 256; b++) {
		in[0] = (char)b;
		in[1] = '\0';
		if (b == '\\')
			snprintf(want, sizeof(want), "\\\\");
		else if (b == '\t')
			snprintf(want, sizeof(want), "\\t");
		else if (b == '\n')
			snprintf(want, sizeof(want), "\\n");
		else if (b == '\r')
			snprintf(want, sizeof(want), "\\r");
		else if (b < 0x20 || b >= 0x7f)
			snprintf(want, sizeof(want), "\\x%02x", b);
		else
			snprintf(want, sizeof(want), "%c", (char)b);
		mem_open(&m);
		cmd_key(m.f, in);
		mem_close(&m);
		cr_assert_str_eq(m.data, want, "byte %02x", b);
		/* One key is one line, of printable bytes. */
		cr_assert_null(memchr(m.data, '\n', m.len), "byte %02x", b);
		mem_free(&m);
	}
}

/* A key mixing everything stays one line and reads back unambiguously. */
Test(json, cmd_key_mixed)
{
	struct mem	m;

	mem_open(&m);
	cmd_key(m.f, "p/\\x41\n\xff\xc3\xa9\t\x1b.jpg");
	mem_close(&m);
	/* The backslash of a literal "\x41" is doubled: not read as 'A'. */
	cr_assert_str_eq(m.data, "p/\\\\x41\\n\\xff\xc3\xa9\\t\\x1b.jpg");
	mem_free(&m);
}
