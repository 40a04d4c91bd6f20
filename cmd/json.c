/*
 * json: see json.h.
 */
#include <string.h>

#include "json.h"

void
json_init(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

/* Before any value: the comma, unless a key just said where it goes. */
static void
value(struct json *j)
{
	if (j->key) {
		j->key = 0;
		return;
	}
	if (j->depth == 0 || j->depth > JSON_DEPTH)
		return;
	if (!j->first[j->depth - 1])
		fputc(',', j->f);
	j->first[j->depth - 1] = 0;
}

static void
open_(struct json *j, int ch)
{
	value(j);
	fputc(ch, j->f);
	/* No printer here nests this deep; past it, output is not JSON. */
	if (j->depth < JSON_DEPTH) {
		j->first[j->depth] = 1;
		j->closer[j->depth] = ch == '{' ? '}' : ']';
	}
	j->depth++;
}

void
json_object(struct json *j)
{
	open_(j, '{');
}

void
json_array(struct json *j)
{
	open_(j, '[');
}

void
json_end(struct json *j)
{
	if (j->depth == 0)
		return;
	j->depth--;
	j->key = 0;
	fputc(j->depth < JSON_DEPTH ? j->closer[j->depth] : '}', j->f);
}

void
json_close_all(struct json *j)
{
	while (j->depth > 0)
		json_end(j);
}

void
json_key(struct json *j, const char *k)
{
	value(j);
	json_quote(j->f, k, strlen(k));
	fputc(':', j->f);
	j->key = 1;
}

size_t
utf8_seq(const unsigned char *p, size_t n)
{
	uint32_t	cp;
	size_t		len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

void
json_quote(FILE *f, const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n;

	fputc('"', f);
	while (i < len) {
		switch (p[i]) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		default:
			if (p[i] < 0x20 || p[i] == 0x7f) {
				fprintf(f, "\\u%04x", p[i]);
				break;
			}
			if ((n = utf8_seq(p + i, len - i)) == 0) {
				fprintf(f, "\\udc%02x", p[i]);
				break;
			}
			fwrite(p + i, 1, n, f);
			i += n;
			continue;
		}
		i++;
	}
	fputc('"', f);
}

void
json_str(struct json *j, const char *s)
{
	if (s == NULL) {
		json_null(j);
		return;
	}
	json_strn(j, s, strlen(s));
}

void
json_strn(struct json *j, const char *s, size_t len)
{
	value(j);
	json_quote(j->f, s, len);
}

void
json_u64(struct json *j, uint64_t v)
{
	value(j);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void
json_int(struct json *j, long long v)
{
	value(j);
	fprintf(j->f, "%lld", v);
}

void
json_double(struct json *j, double v, int decimals)
{
	value(j);
	/* JSON has no NaN or infinity. */
	if (v != v || v > 1e300 || v < -1e300)
		fputs("null", j->f);
	else
		fprintf(j->f, "%.*f", decimals, v);
}

void
json_bool(struct json *j, int v)
{
	value(j);
	fputs(v ? "true" : "false", j->f);
}

void
json_null(struct json *j)
{
	value(j);
	fputs("null", j->f);
}

void
json_kstr(struct json *j, const char *k, const char *v)
{
	json_key(j, k);
	json_str(j, v);
}

void
json_ku64(struct json *j, const char *k, uint64_t v)
{
	json_key(j, k);
	json_u64(j, v);
}
