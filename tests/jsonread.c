/*
 * jsonread: the tests' one JSON reader. It parses a whole document
 * strictly (RFC 8259: one value, no trailing commas, no control bytes in
 * strings, surrogate escapes kept as their code points) into a tree, so
 * that a test both checks that --json printed JSON and reads values from
 * it by path: "presets.small.generated", "failures[2].error",
 * "keys" (an array), with '.' in names written as "\\.".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

struct th_json {
	enum th_json_type	 type;
	char			*str;		/* string (UTF-8), or number text */
	size_t			 len;
	char			**names;	/* object member names */
	struct th_json		**v;		/* members or elements */
	size_t			 n;
};

struct jparse {
	const char	*p, *end;
	const char	*err;
};

static void
ws(struct jparse *jp)
{
	while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' ||
	    *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

static struct th_json	*value(struct jparse *, int depth);

static int
hex4(const char *p, unsigned *out)
{
	unsigned	v = 0;
	int		i;

	for (i = 0; i < 4; i++) {
		v <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			v |= (unsigned)(p[i] - '0');
		else if (p[i] >= 'a' && p[i] <= 'f')
			v |= (unsigned)(p[i] - 'a' + 10);
		else if (p[i] >= 'A' && p[i] <= 'F')
			v |= (unsigned)(p[i] - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* A code point as UTF-8 (lone surrogates too, as CESU would: 3 bytes). */
static void
put_utf8(struct buf *b, unsigned cp)
{
	char	u[4];

	if (cp < 0x80) {
		u[0] = (char)cp;
		cr_assert(buf_add(b, u, 1) == 0);
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		cr_assert(buf_add(b, u, 2) == 0);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		cr_assert(buf_add(b, u, 3) == 0);
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		cr_assert(buf_add(b, u, 4) == 0);
	}
}

static char *
string(struct jparse *jp, size_t *lenp)
{
	struct buf	 b;
	unsigned	 cp, lo;

	if (jp->p >= jp->end || *jp->p != '"') {
		jp->err = "a string was expected";
		return NULL;
	}
	jp->p++;
	buf_init(&b, BUF_NOMAX);
	while (jp->p < jp->end && *jp->p != '"') {
		unsigned char c = (unsigned char)*jp->p;

		if (c < 0x20) {
			jp->err = "a control byte in a string";
			goto fail;
		}
		if (c != '\\') {
			cr_assert(buf_addch(&b, (char)c) == 0);
			jp->p++;
			continue;
		}
		if (++jp->p >= jp->end)
			break;
		switch (*jp->p) {
		case '"': case '\\': case '/':
			cr_assert(buf_addch(&b, *jp->p) == 0);
			break;
		case 'b':
			cr_assert(buf_addch(&b, '\b') == 0);
			break;
		case 'f':
			cr_assert(buf_addch(&b, '\f') == 0);
			break;
		case 'n':
			cr_assert(buf_addch(&b, '\n') == 0);
			break;
		case 'r':
			cr_assert(buf_addch(&b, '\r') == 0);
			break;
		case 't':
			cr_assert(buf_addch(&b, '\t') == 0);
			break;
		case 'u':
			if (jp->end - jp->p < 5 || hex4(jp->p + 1, &cp) != 0) {
				jp->err = "a bad \\u escape";
				goto fail;
			}
			jp->p += 4;
			/* A pair makes one code point; a lone one stays. */
			if (cp >= 0xd800 && cp < 0xdc00 && jp->end - jp->p >= 7 &&
			    jp->p[1] == '\\' && jp->p[2] == 'u' &&
			    hex4(jp->p + 3, &lo) == 0 && lo >= 0xdc00 &&
			    lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
				jp->p += 6;
			}
			put_utf8(&b, cp);
			break;
		default:
			jp->err = "a bad escape";
			goto fail;
		}
		jp->p++;
	}
	if (jp->p >= jp->end) {
		jp->err = "an unterminated string";
		goto fail;
	}
	jp->p++;
	return buf_detach(&b, lenp);
fail:
	buf_release(&b);
	return NULL;
}

static int
number(struct jparse *jp)
{
	const char	*s = jp->p;

	if (jp->p < jp->end && *jp->p == '-')
		jp->p++;
	if (jp->p < jp->end && *jp->p == '0')
		jp->p++;
	else if (jp->p < jp->end && *jp->p >= '1' && *jp->p <= '9')
		while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
			jp->p++;
	else
		return -1;
	if (jp->p < jp->end && *jp->p == '.') {
		if (++jp->p >= jp->end || *jp->p < '0' || *jp->p > '9')
			return -1;
		while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
			jp->p++;
	}
	if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
		jp->p++;
		if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-'))
			jp->p++;
		if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9')
			return -1;
		while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
			jp->p++;
	}
	return jp->p > s ? 0 : -1;
}

static struct th_json *
node(enum th_json_type t)
{
	struct th_json	*j = calloc(1, sizeof(*j));

	cr_assert_not_null(j);
	j->type = t;
	return j;
}

static void
push(struct th_json *j, char *name, struct th_json *v)
{
	j->v = realloc(j->v, (j->n + 1) * sizeof(*j->v));
	cr_assert_not_null(j->v);
	if (j->type == TH_JSON_OBJECT) {
		j->names = realloc(j->names, (j->n + 1) * sizeof(*j->names));
		cr_assert_not_null(j->names);
		j->names[j->n] = name;
	}
	j->v[j->n++] = v;
}

static struct th_json *
container(struct jparse *jp, int depth, int object)
{
	struct th_json	*j = node(object ? TH_JSON_OBJECT : TH_JSON_ARRAY);
	struct th_json	*v;
	char		*name = NULL;

	jp->p++;
	ws(jp);
	if (jp->p < jp->end && *jp->p == (object ? '}' : ']')) {
		jp->p++;
		return j;
	}
	for (;;) {
		ws(jp);
		if (object) {
			if ((name = string(jp, NULL)) == NULL)
				goto fail;
			ws(jp);
			if (jp->p >= jp->end || *jp->p != ':') {
				jp->err = "a ':' was expected";
				goto fail;
			}
			jp->p++;
		}
		if ((v = value(jp, depth + 1)) == NULL)
			goto fail;
		push(j, name, v);
		name = NULL;
		ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == (object ? '}' : ']')) {
			jp->p++;
			return j;
		}
		jp->err = object ? "a ',' or '}' was expected" :
		    "a ',' or ']' was expected";
		goto fail;
	}
fail:
	free(name);
	th_json_free(j);
	return NULL;
}

static struct th_json *
value(struct jparse *jp, int depth)
{
	struct th_json	*j;
	const char	*s;

	ws(jp);
	if (depth > 64) {
		jp->err = "nested too deep";
		return NULL;
	}
	if (jp->p >= jp->end) {
		jp->err = "a value was expected";
		return NULL;
	}
	switch (*jp->p) {
	case '{':
		return container(jp, depth, 1);
	case '[':
		return container(jp, depth, 0);
	case '"':
		j = node(TH_JSON_STRING);
		if ((j->str = string(jp, &j->len)) == NULL) {
			free(j);
			return NULL;
		}
		return j;
	}
	if (jp->end - jp->p >= 4 && memcmp(jp->p, "true", 4) == 0) {
		jp->p += 4;
		return node(TH_JSON_TRUE);
	}
	if (jp->end - jp->p >= 5 && memcmp(jp->p, "false", 5) == 0) {
		jp->p += 5;
		return node(TH_JSON_FALSE);
	}
	if (jp->end - jp->p >= 4 && memcmp(jp->p, "null", 4) == 0) {
		jp->p += 4;
		return node(TH_JSON_NULL);
	}
	s = jp->p;
	if (number(jp) != 0) {
		jp->err = "not a JSON value";
		return NULL;
	}
	j = node(TH_JSON_NUMBER);
	j->str = strndup(s, (size_t)(jp->p - s));
	j->len = (size_t)(jp->p - s);
	return j;
}

struct th_json *
th_json_parse(const char *doc, size_t len)
{
	struct jparse	 jp = { doc, doc + len, NULL };
	struct th_json	*j;

	j = value(&jp, 0);
	if (j != NULL) {
		ws(&jp);
		if (jp.p != jp.end) {
			jp.err = "text after the value";
			th_json_free(j);
			j = NULL;
		}
	}
	cr_assert_not_null(j, "not JSON: %s at byte %zu of: %.2000s", jp.err,
	    (size_t)(jp.p - doc), doc);
	return j;
}

void
th_json_free(struct th_json *j)
{
	size_t	i;

	if (j == NULL)
		return;
	for (i = 0; i < j->n; i++) {
		th_json_free(j->v[i]);
		if (j->names != NULL)
			free(j->names[i]);
	}
	free(j->v);
	free(j->names);
	free(j->str);
	free(j);
}

const struct th_json *
th_json_at(const struct th_json *j, const char *path)
{
	char	seg[256];
	size_t	k, i;
	long	idx;
	char	*end;

	while (j != NULL && *path != '\0') {
		if (*path == '[') {
			errno = 0;
			idx = strtol(path + 1, &end, 10);
			if (j->type != TH_JSON_ARRAY || *end != ']' || idx < 0 ||
			    (size_t)idx >= j->n)
				return NULL;
			j = j->v[idx];
			path = end + 1;
			if (*path == '.')
				path++;
			continue;
		}
		for (k = 0; *path != '\0' && *path != '.' && *path != '[' &&
		    k + 1 < sizeof(seg); path++) {
			if (*path == '\\' && path[1] != '\0')
				path++;
			seg[k++] = *path;
		}
		seg[k] = '\0';
		if (*path == '.')
			path++;
		if (j->type != TH_JSON_OBJECT)
			return NULL;
		for (i = 0; i < j->n && strcmp(j->names[i], seg) != 0; i++)
			;
		j = i < j->n ? j->v[i] : NULL;
	}
	return j;
}

enum th_json_type
th_json_type(const struct th_json *j)
{
	return j->type;
}

size_t
th_json_len(const struct th_json *j)
{
	return j->type == TH_JSON_STRING ? j->len : j->n;
}

const char *
th_json_name(const struct th_json *j, size_t i)
{
	return j->type == TH_JSON_OBJECT && i < j->n ? j->names[i] : NULL;
}

const struct th_json *
th_json_item(const struct th_json *j, size_t i)
{
	return i < j->n ? j->v[i] : NULL;
}

long long
th_json_num(const struct th_json *root, const char *path)
{
	const struct th_json	*j = th_json_at(root, path);
	char			*end;
	long long		 v;

	cr_assert_not_null(j, "no '%s' in the JSON", path);
	cr_assert_eq(j->type, TH_JSON_NUMBER, "'%s' is no number", path);
	errno = 0;
	v = strtoll(j->str, &end, 10);
	cr_assert(errno == 0 && *end == '\0', "'%s' is no integer: %s", path,
	    j->str);
	return v;
}

double
th_json_real(const struct th_json *root, const char *path)
{
	const struct th_json	*j = th_json_at(root, path);

	cr_assert_not_null(j, "no '%s' in the JSON", path);
	cr_assert_eq(j->type, TH_JSON_NUMBER, "'%s' is no number", path);
	return strtod(j->str, NULL);
}

const char *
th_json_str(const struct th_json *root, const char *path)
{
	const struct th_json	*j = th_json_at(root, path);

	cr_assert_not_null(j, "no '%s' in the JSON", path);
	if (j->type == TH_JSON_NULL)
		return NULL;
	cr_assert_eq(j->type, TH_JSON_STRING, "'%s' is no string", path);
	return j->str;
}

int
th_json_bool(const struct th_json *root, const char *path)
{
	const struct th_json	*j = th_json_at(root, path);

	cr_assert_not_null(j, "no '%s' in the JSON", path);
	cr_assert(j->type == TH_JSON_TRUE || j->type == TH_JSON_FALSE,
	    "'%s' is no boolean", path);
	return j->type == TH_JSON_TRUE;
}
