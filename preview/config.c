/*
 * config: presets.ini, parsed with inih.
 *
 * Debian's inih r55 has traps: its fgets reader silently splits lines over
 * 199 bytes, it folds an indented line into the previous key's value, it
 * never calls the handler for a section without keys, and this build gives
 * the handler no line number. So inih reads through our own reader, which
 * takes one physical line at a time and
 *   - counts lines, so the handler knows where it is;
 *   - refuses lines longer than CONFIG_MAX_LINE, and NUL bytes;
 *   - drops a UTF-8 BOM, the CR of CR-LF and leading blanks (so no line is
 *     ever a continuation);
 *   - parses "[section]" lines itself, so an empty, unknown or duplicate
 *     section is an error even when it holds no keys.
 * inih still splits "key = value" and strips comments: ';' or '#' at the
 * start of a line, ';' after a blank inside one. A '#' inside a value is
 * part of it ("background = #ffffff").
 *
 * The first error is kept and stops the parse: from then on the handler
 * fails and the reader reports end of file. inih's own syntax errors (a
 * line with no '=') only show in its return value, the line number of the
 * first one, so the earlier of the two wins.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config.h"

#define DEFAULT_MAX_PIXELS	100000000ULL
#define DEFAULT_MAX_BYTES	(100ULL * 1024 * 1024)
#define LIMIT_MAX		(1ULL << 40)

enum skey {
	S_BUCKET, S_DIRECTORY, S_ENDPOINT, S_REGION, S_PATH_STYLE, S_SOURCE,
	S_PREVIEWS, S_ACL, S_CACHE_CONTROL, S_EXTENSIONS, S_MAX_PIXELS,
	S_MAX_BYTES, S_TLS_VERIFY, S_CA_BUNDLE, S_TIMEOUT, S_LOW_SPEED_TIME,
	S_RETRIES, S_IMAGE_TIMEOUT, S_COUNT
};

static const char *const storage_keys[S_COUNT] = {
	"bucket", "directory", "endpoint", "region", "path_style", "source",
	"previews", "acl", "cache_control", "extensions", "max_pixels",
	"max_bytes", "tls_verify", "ca_bundle", "timeout", "low_speed_time",
	"retries", "image_timeout"
};

enum pkey {
	P_WIDTH, P_HEIGHT, P_FIT, P_CROP, P_FORMAT, P_QUALITY, P_ENLARGE,
	P_BACKGROUND, P_COUNT
};

static const char *const preset_keys[P_COUNT] = {
	"width", "height", "fit", "crop", "format", "quality", "enlarge",
	"background"
};

static const char *const default_extensions[] = {
	"jpg", "jpeg", "png", "webp", "gif", "heic", "heif", "avif", "tif",
	"tiff"
};

/* S3's canned ACLs: anything else fails on every upload. */
static const char *const canned_acls[] = {
	"private", "public-read", "public-read-write", "authenticated-read",
	"aws-exec-read", "bucket-owner-read", "bucket-owner-full-control"
};

#define NITEMS(a) (sizeof(a) / sizeof((a)[0]))

enum sect { SEC_NONE, SEC_STORAGE, SEC_PRESET };

struct parser {
	struct config	*cfg;
	FILE		*fp;
	const char	*path;
	char		*err;
	size_t		 errlen;

	int		 lineno;	/* of the line inih holds */
	int		 failed;
	int		 errline;	/* of the first error, 0 for none */
	int		 eof;
	int		 readerrno;	/* nonzero: reading failed */

	enum sect	 sect;
	char		 section[64];	/* "storage", "preset small" */
	int		 storage_line;	/* 0: no [storage] yet */
	int		 storage_keyline[S_COUNT]; /* 0: not seen */
	unsigned	 preset_seen;	/* keys of the last preset */
	int		 preset_keyline[P_COUNT];
};

const struct preset *
config_preset(const struct config *cfg, const char *name)
{
	size_t	 i;

	for (i = 0; i < cfg->npresets; i++) {
		if (strcmp(cfg->presets[i].name, name) == 0)
			return &cfg->presets[i];
	}
	return NULL;
}

static void
free_extensions(char **ext, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		free(ext[i]);
	free(ext);
}

void
config_release(struct config *cfg)
{
	size_t	 i;

	free(cfg->path);
	free(cfg->bucket);
	free(cfg->directory);
	free(cfg->endpoint);
	free(cfg->region);
	free(cfg->ca_bundle);
	free(cfg->source);
	free(cfg->previews);
	free(cfg->acl);
	free(cfg->cache_control);
	free_extensions(cfg->extensions, cfg->nextensions);
	for (i = 0; i < cfg->npresets; i++)
		free(cfg->presets[i].name);
	free(cfg->presets);
	memset(cfg, 0, sizeof(*cfg));
}

/*
 * Keep the first error only. line 0: about the whole file. A message too
 * long for err is cut short; there is nothing better to do with it.
 */
static int
fail(struct parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(struct parser *p, int line, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (p->failed)
		return -1;
	p->failed = 1;
	p->errline = line;
	if (p->errlen == 0)
		return -1;
	if (line > 0)
		n = snprintf(p->err, p->errlen, "%s:%d: ", p->path, line);
	else
		n = snprintf(p->err, p->errlen, "%s: ", p->path);
	if (n < 0 || (size_t)n >= p->errlen)
		return -1;
	va_start(ap, fmt);
	(void)vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int
valid_preset_name(const char *s)
{
	if (*s == '\0' || *s == '-')
		return 0;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return 0;
	}
	return 1;
}

static int
finish_preset(struct parser *p)
{
	struct preset	*pr = &p->cfg->presets[p->cfg->npresets - 1];

	if (pr->width == 0)
		return fail(p, pr->line, "missing 'width' in [%s]", p->section);
	if ((pr->fit == FIT_COVER || pr->fit == FIT_FILL) && pr->height == 0)
		return fail(p, p->preset_keyline[P_FIT],
		    "'fit = %s' needs 'height' in [%s]", fit_name(pr->fit),
		    p->section);
	if ((p->preset_seen & (1U << P_CROP)) && pr->fit != FIT_COVER)
		return fail(p, p->preset_keyline[P_CROP],
		    "'crop' needs 'fit = cover' in [%s]", p->section);
	return 0;
}

static int
finish_storage(struct parser *p)
{
	struct config	*cfg = p->cfg;
	const char	*s, *v;
	int		 line;

	if (cfg->bucket == NULL && cfg->directory == NULL)
		return fail(p, p->storage_line, "missing 'bucket' or "
		    "'directory' in [storage]");
	/* What only S3 reads means nothing to a folder: say so. */
	if (cfg->directory != NULL) {
		static const enum skey s3only[] = {
			S_ENDPOINT, S_REGION, S_PATH_STYLE, S_TLS_VERIFY,
			S_CA_BUNDLE, S_ACL, S_CACHE_CONTROL,
		};
		size_t	i;

		for (i = 0; i < NITEMS(s3only); i++)
			if (p->storage_keyline[s3only[i]] != 0)
				return fail(p, p->storage_keyline[s3only[i]],
				    "'%s' has no meaning with 'directory' in "
				    "[storage]", storage_keys[s3only[i]]);
	}
	if (cfg->source == NULL)
		return fail(p, p->storage_line, "missing 'source' in "
		    "[storage]");
	if (cfg->previews == NULL)
		return fail(p, p->storage_line, "missing 'previews' in "
		    "[storage]");

	/* Else the previews would be listed as originals, or vice versa. */
	s = cfg->source;
	v = cfg->previews;
	if (strncmp(s, v, strlen(s)) == 0 || strncmp(v, s, strlen(v)) == 0) {
		line = p->storage_keyline[S_SOURCE];
		if (p->storage_keyline[S_PREVIEWS] > line)
			line = p->storage_keyline[S_PREVIEWS];
		return fail(p, line, "'source' and 'previews' overlap in "
		    "[storage]");
	}
	return 0;
}

static int
finish_section(struct parser *p)
{
	switch (p->sect) {
	case SEC_NONE:
		return 0;
	case SEC_STORAGE:
		return finish_storage(p);
	case SEC_PRESET:
		return finish_preset(p);
	}
	return 0;
}

static int
new_preset(struct parser *p, const char *name)
{
	struct config	*cfg = p->cfg;
	struct preset	*pr;
	size_t		 n;

	if (config_preset(cfg, name) != NULL)
		return fail(p, p->lineno, "duplicate preset '%s'", name);
	/* On case-insensitive storage they would share one folder. */
	for (n = 0; n < cfg->npresets; n++)
		if (strcasecmp(cfg->presets[n].name, name) == 0)
			return fail(p, p->lineno, "preset '%s' differs from "
			    "'%s' only in case", name, cfg->presets[n].name);
	if (cfg->npresets == CONFIG_MAX_PRESETS)
		return fail(p, p->lineno, "too many presets (at most %d)",
		    CONFIG_MAX_PRESETS);

	/* Few presets: grow one at a time. */
	n = cfg->npresets + 1;
	pr = reallocarray(cfg->presets, n, sizeof(*pr));
	if (pr == NULL)
		return fail(p, p->lineno, "out of memory");
	cfg->presets = pr;
	pr = &cfg->presets[cfg->npresets];
	preset_init(pr);
	if ((pr->name = strdup(name)) == NULL)
		return fail(p, p->lineno, "out of memory");
	cfg->npresets = n;
	pr->line = p->lineno;

	p->preset_seen = 0;
	memset(p->preset_keyline, 0, sizeof(p->preset_keyline));
	/* Names are at most PRESET_NAME_MAX bytes: this always fits. */
	if (snprintf(p->section, sizeof(p->section), "preset %s", name) >=
	    (int)sizeof(p->section))
		return fail(p, p->lineno, "preset name too long");
	p->sect = SEC_PRESET;
	return 0;
}

/* A "[...]" line; line[0] is '['. */
static int
section(struct parser *p, const char *line)
{
	char		 name[CONFIG_MAX_LINE + 1];
	const char	*end, *rest, *pname;
	size_t		 n;

	/* The section that ends here started earlier: its errors first. */
	if (finish_section(p) == -1)
		return -1;
	if ((end = strchr(line, ']')) == NULL)
		return fail(p, p->lineno, "missing ']' in section header");
	for (rest = end + 1; isspace((unsigned char)*rest); rest++)
		;
	if (*rest != '\0' && *rest != ';' && *rest != '#')
		return fail(p, p->lineno, "junk after section header");
	n = (size_t)(end - line - 1);
	memcpy(name, line + 1, n);
	name[n] = '\0';

	if (strcmp(name, "storage") == 0) {
		if (p->storage_line != 0)
			return fail(p, p->lineno, "duplicate section [storage]");
		p->storage_line = p->lineno;
		p->sect = SEC_STORAGE;
		(void)snprintf(p->section, sizeof(p->section), "storage");
		return 0;
	}
	if (strncmp(name, "preset", 6) != 0 ||
	    (name[6] != '\0' && name[6] != ' ' && name[6] != '\t'))
		return fail(p, p->lineno, "unknown section [%s]", name);

	for (pname = name + 6; *pname == ' ' || *pname == '\t'; pname++)
		;
	if (*pname == '\0')
		return fail(p, p->lineno, "empty preset name");
	if (!valid_preset_name(pname))
		return fail(p, p->lineno, "bad preset name '%s'", pname);
	if (strlen(pname) > PRESET_NAME_MAX)
		return fail(p, p->lineno, "preset name '%s' too long (at most "
		    "%d bytes)", pname, PRESET_NAME_MAX);
	return new_preset(p, pname);
}

static char *
reader(char *str, int num, void *arg)
{
	struct parser	*p = arg;
	size_t		 len = 0, kept, limit, i;
	int		 c, last = EOF, nul = 0;

	if (p->failed || p->eof)
		return NULL;
	errno = 0;
	if (num < 2) {
		fail(p, p->lineno + 1, "line buffer too small");
		return NULL;
	}
	limit = (size_t)num - 1;
	if (limit > CONFIG_MAX_LINE)
		limit = CONFIG_MAX_LINE;

	/* Read the whole line, keeping what fits: its length is the news. */
	while ((c = getc(p->fp)) != EOF && c != '\n') {
		if (c == '\0')
			nul = 1;
		if (len < (size_t)num - 1)
			str[len] = (char)c;
		len++;
		last = c;
	}
	if (c == EOF) {
		if (ferror(p->fp)) {
			p->readerrno = errno != 0 ? errno : EIO;
			p->eof = 1;
			return NULL;
		}
		if (len == 0) {
			p->eof = 1;
			return NULL;
		}
	}
	p->lineno++;
	if (last == '\r')
		len--;

	/* Lengths are counted without the BOM and the line break. */
	kept = len < (size_t)num - 1 ? len : (size_t)num - 1;
	if (p->lineno == 1 && kept >= 3 &&
	    memcmp(str, "\xef\xbb\xbf", 3) == 0) {
		memmove(str, str + 3, kept - 3);
		len -= 3;
	}
	if (len > limit) {
		fail(p, p->lineno, "line too long (%zu bytes, at most %zu)",
		    len, limit);
		return NULL;
	}
	if (nul) {
		fail(p, p->lineno, "NUL byte in line");
		return NULL;
	}
	str[len] = '\0';

	for (i = 0; isspace((unsigned char)str[i]); i++)
		;
	if (i > 0)
		memmove(str, str + i, len - i + 1);
	if (str[0] == '[' && section(p, str) == -1)
		return NULL;
	return str;
}

static int
bad_value(struct parser *p, const char *key, const char *value,
    const char *want)
{
	return fail(p, p->lineno, "bad value '%s' for '%s' in [%s] (%s)",
	    value, key, p->section, want);
}

static int
get_long(struct parser *p, const char *key, const char *value, long min,
    long max, long *out)
{
	char	*end;
	long	 n;

	errno = 0;
	n = strtol(value, &end, 10);
	if (end == value || *end != '\0')
		return fail(p, p->lineno, "bad number '%s' for '%s' in [%s]",
		    value, key, p->section);
	if (errno == ERANGE || n < min || n > max)
		return fail(p, p->lineno, "bad number '%s' for '%s' in [%s] "
		    "(%ld..%ld)", value, key, p->section, min, max);
	*out = n;
	return 0;
}

static int
get_int(struct parser *p, const char *key, const char *value, int min,
    int max, int *out)
{
	long	 n;

	if (get_long(p, key, value, min, max, &n) == -1)
		return -1;
	*out = (int)n;
	return 0;
}

/* 1..LIMIT_MAX; with suffixes, K, M or G times 1024, 1024², 1024³. */
static int
get_size(struct parser *p, const char *key, const char *value,
    int suffixes, uint64_t *out)
{
	unsigned long long	 n;
	char			*end;
	int			 shift = 0;

	errno = 0;
	/* strtoull takes "-1" as a huge number. */
	if (!isdigit((unsigned char)value[0]))
		goto bad;
	n = strtoull(value, &end, 10);
	if (end == value)
		goto bad;
	if (suffixes && *end != '\0' && end[1] == '\0') {
		switch (*end) {
		case 'K':
			shift = 10;
			break;
		case 'M':
			shift = 20;
			break;
		case 'G':
			shift = 30;
			break;
		default:
			goto bad;
		}
		end++;
	}
	if (*end != '\0')
		goto bad;
	if (errno == ERANGE || n == 0 || n > (LIMIT_MAX >> shift))
		return fail(p, p->lineno, "bad number '%s' for '%s' in [%s] "
		    "(1..%llu)", value, key, p->section, LIMIT_MAX);
	*out = (uint64_t)n << shift;
	return 0;
bad:
	return fail(p, p->lineno, "bad number '%s' for '%s' in [%s]", value,
	    key, p->section);
}

static int
get_bool(struct parser *p, const char *key, const char *value, int *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	size_t	 i;

	for (i = 0; i < NITEMS(yes); i++) {
		if (strcmp(value, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(value, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return fail(p, p->lineno, "bad boolean '%s' for '%s' in [%s]", value,
	    key, p->section);
}

static int
get_str(struct parser *p, const char *value, char **out)
{
	if ((*out = strdup(value)) == NULL)
		return fail(p, p->lineno, "out of memory");
	return 0;
}

/*
 * A key prefix ending in '/' whose segments could all be keys' segments
 * as listed: no leading '/', no empty, "." or ".." segment (S3 keeps
 * "./photo/" apart from "photo/", so such a prefix would never match
 * what the user meant).
 */
static int
get_prefix(struct parser *p, const char *key, const char *value,
    char **out)
{
	const char	*seg;
	size_t		 n;

	if (value[strlen(value) - 1] != '/')
		return bad_value(p, key, value, "must end in '/'");
	for (seg = value; *seg != '\0'; seg += n + 1) {
		n = strcspn(seg, "/");
		if (n == 0 || (n == 1 && seg[0] == '.') ||
		    (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return bad_value(p, key, value, "no leading '/', and no "
			    "empty, '.' or '..' segment");
	}
	return get_str(p, value, out);
}

static int
get_extensions(struct parser *p, const char *key, const char *value)
{
	struct config	*cfg = p->cfg;
	char		**ext = NULL, **tmp, *e;
	size_t		 n = 0, len, i, j;
	const char	*s = value;
	int		 rc = -1;

	for (;;) {
		s += strspn(s, " \t,");
		if (*s == '\0')
			break;
		len = strcspn(s, " \t,");
		if ((e = strndup(s, len)) == NULL) {
			fail(p, p->lineno, "out of memory");
			goto out;
		}
		for (i = 0; i < len; i++)
			e[i] = (char)tolower((unsigned char)e[i]);
		for (i = 0; i < len && isalnum((unsigned char)e[i]); i++)
			;
		for (j = 0; j < n && strcmp(ext[j], e) != 0; j++)
			;
		if (i != len || j != n) {
			fail(p, p->lineno, "%s extension '%.*s' for '%s' in "
			    "[%s]", i != len ? "bad" : "duplicate", (int)len,
			    s, key, p->section);
			free(e);
			goto out;
		}
		if ((tmp = reallocarray(ext, n + 1, sizeof(*ext))) == NULL) {
			fail(p, p->lineno, "out of memory");
			free(e);
			goto out;
		}
		ext = tmp;
		ext[n++] = e;
		s += len;
	}
	if (n == 0) {
		bad_value(p, key, value, "no extensions");
		goto out;
	}
	cfg->extensions = ext;
	cfg->nextensions = n;
	ext = NULL;
	n = 0;
	rc = 0;
out:
	free_extensions(ext, n);
	return rc;
}

static int
storage_key(struct parser *p, const char *key, const char *value)
{
	struct config	*cfg = p->cfg;
	long		 n;
	size_t		 i;
	int		 k;

	for (k = 0; k < S_COUNT && strcmp(storage_keys[k], key) != 0; k++)
		;
	if (k == S_COUNT)
		return fail(p, p->lineno, "unknown key '%s' in [storage]", key);
	if (p->storage_keyline[k] != 0)
		return fail(p, p->lineno, "duplicate key '%s' in [storage]",
		    key);
	p->storage_keyline[k] = p->lineno;

	if ((k == S_BUCKET && cfg->directory != NULL) ||
	    (k == S_DIRECTORY && cfg->bucket != NULL))
		return fail(p, p->lineno, "both 'bucket' and 'directory' in "
		    "[storage]");

	switch ((enum skey)k) {
	case S_BUCKET:
		/* It becomes part of a host name or a path. */
		if (strspn(value, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != strlen(value))
			return bad_value(p, key, value, "letters, digits, "
			    "'.', '-' and '_'");
		return get_str(p, value, &cfg->bucket);
	case S_DIRECTORY:
		return get_str(p, value, &cfg->directory);
	case S_ENDPOINT: {
		const char *host;

		if (strncmp(value, "http://", 7) != 0 &&
		    strncmp(value, "https://", 8) != 0)
			return bad_value(p, key, value, "want http:// or "
			    "https://");
		/* The bucket and key make the path: no path of its own. */
		host = value + (value[4] == 's' ? 8 : 7);
		if (host[strcspn(host, "/?#")] != '\0' &&
		    strcmp(host + strcspn(host, "/?#"), "/") != 0)
			return bad_value(p, key, value, "scheme, host and port "
			    "only: no path or query");
		return get_str(p, value, &cfg->endpoint);
	}
	case S_REGION:
		if (strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
		    strlen(value))
			return bad_value(p, key, value, "lowercase letters, "
			    "digits and '-'");
		return get_str(p, value, &cfg->region);
	case S_PATH_STYLE:
		return get_bool(p, key, value, &cfg->path_style);
	case S_SOURCE:
		return get_prefix(p, key, value, &cfg->source);
	case S_PREVIEWS:
		return get_prefix(p, key, value, &cfg->previews);
	case S_ACL:
		for (i = 0; i < NITEMS(canned_acls); i++) {
			if (strcmp(value, canned_acls[i]) == 0)
				return get_str(p, value, &cfg->acl);
		}
		return bad_value(p, key, value, "want a canned ACL such as "
		    "private or public-read");
	case S_CACHE_CONTROL:
		return get_str(p, value, &cfg->cache_control);
	case S_EXTENSIONS:
		return get_extensions(p, key, value);
	case S_MAX_PIXELS:
		return get_size(p, key, value, 0, &cfg->max_pixels);
	case S_MAX_BYTES:
		return get_size(p, key, value, 1, &cfg->max_bytes);
	case S_TLS_VERIFY:
		return get_bool(p, key, value, &cfg->tls_verify);
	case S_CA_BUNDLE:
		return get_str(p, value, &cfg->ca_bundle);
	case S_TIMEOUT:
		if (get_long(p, key, value, 1, 3600, &n) == -1)
			return -1;
		cfg->timeout_ms = n * 1000;
		return 0;
	case S_LOW_SPEED_TIME:
		return get_long(p, key, value, 1, 3600,
		    &cfg->low_speed_time_s);
	case S_RETRIES:
		return get_int(p, key, value, 0, 20, &cfg->retries);
	case S_IMAGE_TIMEOUT:
		return get_int(p, key, value, 1, 86400, &cfg->image_timeout_s);
	case S_COUNT:
		break;
	}
	return 0;
}

static int
get_colour(struct parser *p, const char *key, const char *value,
    unsigned char rgb[3])
{
	unsigned long	 v;

	if (value[0] != '#' || strlen(value) != 7 ||
	    strspn(value + 1, "0123456789abcdefABCDEF") != 6)
		return bad_value(p, key, value, "want #rrggbb");
	v = strtoul(value + 1, NULL, 16);
	rgb[0] = (unsigned char)(v >> 16);
	rgb[1] = (unsigned char)(v >> 8);
	rgb[2] = (unsigned char)v;
	return 0;
}

static int
preset_key(struct parser *p, const char *key, const char *value)
{
	struct preset	*pr = &p->cfg->presets[p->cfg->npresets - 1];
	int		 k;

	for (k = 0; k < P_COUNT && strcmp(preset_keys[k], key) != 0; k++)
		;
	if (k == P_COUNT)
		return fail(p, p->lineno, "unknown key '%s' in [%s]", key,
		    p->section);
	if (p->preset_seen & (1U << k))
		return fail(p, p->lineno, "duplicate key '%s' in [%s]", key,
		    p->section);
	p->preset_seen |= 1U << k;
	p->preset_keyline[k] = p->lineno;

	switch ((enum pkey)k) {
	case P_WIDTH:
		return get_int(p, key, value, 1, 16384, &pr->width);
	case P_HEIGHT:
		return get_int(p, key, value, 1, 16384, &pr->height);
	case P_FIT:
		if (fit_parse(value, &pr->fit) != 0)
			return bad_value(p, key, value, "inside, cover or "
			    "fill");
		return 0;
	case P_CROP:
		if (crop_parse(value, &pr->crop) != 0)
			return bad_value(p, key, value, "centre or attention");
		return 0;
	case P_FORMAT:
		if (format_parse(value, &pr->format) != 0)
			return bad_value(p, key, value, "jpeg, webp, avif, "
			    "png or same");
		return 0;
	case P_QUALITY:
		return get_int(p, key, value, 1, 100, &pr->quality);
	case P_ENLARGE:
		return get_bool(p, key, value, &pr->enlarge);
	case P_BACKGROUND:
		return get_colour(p, key, value, pr->background);
	case P_COUNT:
		break;
	}
	return 0;
}

/* inih's handler: nonzero is success. */
static int
handler(void *arg, const char *section, const char *key, const char *value)
{
	struct parser	*p = arg;
	int		 rc;

	(void)section;		/* ours, from the reader, is never truncated */
	if (p->failed)
		return 0;
	if (p->sect == SEC_NONE)
		rc = fail(p, p->lineno, "key '%s' outside any section", key);
	else if (*value == '\0')
		rc = fail(p, p->lineno, "empty value for '%s' in [%s]", key,
		    p->section);
	else if (p->sect == SEC_STORAGE)
		rc = storage_key(p, key, value);
	else
		rc = preset_key(p, key, value);
	return rc == 0;
}

static int
set_defaults(struct parser *p)
{
	struct config	*cfg = p->cfg;
	size_t		 i;

	if (cfg->nextensions != 0)
		return 0;
	cfg->extensions = calloc(NITEMS(default_extensions),
	    sizeof(*cfg->extensions));
	if (cfg->extensions == NULL)
		return fail(p, 0, "out of memory");
	for (i = 0; i < NITEMS(default_extensions); i++) {
		cfg->extensions[i] = strdup(default_extensions[i]);
		if (cfg->extensions[i] == NULL)
			return fail(p, 0, "out of memory");
		cfg->nextensions++;
	}
	return 0;
}

int
config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
	struct parser	 p;
	int		 rc, ret = -1;

	memset(cfg, 0, sizeof(*cfg));
	cfg->tls_verify = 1;
	cfg->retries = 5;
	cfg->timeout_ms = 10000;
	cfg->low_speed_time_s = 30;
	cfg->image_timeout_s = 60;
	cfg->max_pixels = DEFAULT_MAX_PIXELS;
	cfg->max_bytes = DEFAULT_MAX_BYTES;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.path = path;
	p.err = err;
	p.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';

	if ((p.fp = fopen(path, "r")) == NULL) {
		if (errlen > 0)
			(void)snprintf(err, errlen, "cannot open '%s': %s",
			    path, strerror(errno));
		goto out;
	}
	rc = ini_parse_stream(reader, &p, handler, &p);
	if (rc == -2)
		fail(&p, 0, "out of memory");
	else if (rc > 0 && (!p.failed || rc < p.errline)) {
		p.failed = 0;
		fail(&p, rc, "expected 'key = value' or '[section]'");
	}
	if (p.failed)
		goto out;
	if (p.readerrno != 0) {
		if (errlen > 0)
			(void)snprintf(err, errlen, "cannot read '%s': %s",
			    path, strerror(p.readerrno));
		goto out;
	}
	if (finish_section(&p) == -1)
		goto out;
	if (p.storage_line == 0) {
		fail(&p, 0, "no [storage] section");
		goto out;
	}
	if (cfg->npresets == 0) {
		fail(&p, 0, "no presets");
		goto out;
	}
	if (set_defaults(&p) == -1)
		goto out;
	if ((cfg->path = strdup(path)) == NULL) {
		fail(&p, 0, "out of memory");
		goto out;
	}
	ret = 0;
out:
	if (p.fp != NULL)
		fclose(p.fp);
	if (ret == -1)
		config_release(cfg);
	return ret;
}
