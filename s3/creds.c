/*
 * creds: credentials and region as the AWS CLI finds them, and the
 * provider every request takes them from.
 *
 * The provider finds the credentials once, when it is made: the
 * environment, else the profile in the shared files. It hands each request
 * a copy of its own (s3_creds_snapshot), so that no client holds a pointer
 * into it and a provider can later change what it hands out.
 *
 * The shared files (credentials and config) are read by a small strict
 * reader of our own: Debian's inih splits lines longer than 199 bytes, and
 * a session token is often longer than that. The reader follows botocore's
 * configparser: "[name]" sections ("[profile name]" or "[default]" in the
 * config file), "key = value" or "key: value" split at the first
 * delimiter, '#' and ';' comment lines, no inline comments, a line
 * indented deeper than its key's line continuing that key's value, key
 * names matched without regard to case; a repeated profile or key is an
 * error. The credentials file wins key by key, as in botocore. Secrets are
 * wiped before their memory is freed, and no message ever holds a line of
 * a file.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "s3.h"

#define CREDS_FILE_MAX	(1024 * 1024)

static enum s3_status
creds_fail(struct s3_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum s3_status
creds_fail(struct s3_error *err, const char *fmt, ...)
{
	va_list	 ap;

	if (err != NULL) {
		va_start(ap, fmt);
		/* A cut message only loses the end of a path. */
		(void)vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return S3_ECREDS;
}

static const char *
env(const char *name)
{
	const char	*v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static void
wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

void
s3_creds_release(struct s3_creds *c)
{
	if (c == NULL)
		return;
	wipe_free(c->access_key);
	wipe_free(c->secret_key);
	wipe_free(c->session_token);
	c->access_key = c->secret_key = c->session_token = NULL;
}

const char *
s3_region_from_env(void)
{
	const char	*r;

	if ((r = env("AWS_REGION")) != NULL)
		return r;
	return env("AWS_DEFAULT_REGION");
}

/*
 * The whole file in one allocation sized from fstat, so no realloc leaves a
 * copy of a secret behind in freed memory. S3_ENOTFOUND when it does not
 * exist (with the message set all the same).
 */
static enum s3_status
read_file(const char *path, char **data, size_t *size, struct s3_error *err)
{
	struct stat	 sb;
	char		*p = NULL;
	size_t		 cap, n = 0;
	ssize_t		 r;
	int		 fd, saved;
	enum s3_status	 st = S3_ECREDS;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		saved = errno;
		creds_fail(err, "cannot read '%s': %s", path,
		    strerror(saved));
		return saved == ENOENT ? S3_ENOTFOUND : S3_ECREDS;
	}
	if (fstat(fd, &sb) == -1) {
		creds_fail(err, "cannot read '%s': %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > CREDS_FILE_MAX) {
		creds_fail(err, "'%s' is not a regular file of at most %d "
		    "bytes", path, CREDS_FILE_MAX);
		goto out;
	}
	cap = (size_t)sb.st_size + 1;
	if ((p = malloc(cap)) == NULL) {
		st = S3_ENOMEM;
		creds_fail(err, "out of memory");
		goto out;
	}
	for (;;) {
		r = read(fd, p + n, cap - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			saved = errno;
			creds_fail(err, "cannot read '%s': %s", path,
			    strerror(saved));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			creds_fail(err, "'%s' changed while being read", path);
			goto out;
		}
	}
	p[n] = '\0';
	*data = p;
	*size = cap;
	p = NULL;
	st = S3_OK;
out:
	if (p != NULL) {
		explicit_bzero(p, cap);
		free(p);
	}
	close(fd);
	return st;
}

/* ---- the shared files -------------------------------------------------- */

enum { PK_ACCESS, PK_SECRET, PK_TOKEN, PK_N };

static const char *const pk_names[PK_N] = {
	"aws_access_key_id",
	"aws_secret_access_key",
	"aws_session_token",
};

/*
 * Keys that make the SDKs get credentials some other way (assume a role,
 * run a program, SSO): a profile with one is refused rather than read as
 * if it held none.
 */
static const char *const pk_unsupported[] = {
	"role_arn",
	"credential_process",
	"sso_session",
	"sso_start_url",
	"web_identity_token_file",
};

/* What one file says about one profile. */
struct profile {
	char		*v[PK_N];
	const char	*unsupported;	/* the first such key, or NULL */
	int		 found;
};

static void
profile_release(struct profile *pr)
{
	size_t	 i;

	for (i = 0; i < PK_N; i++)
		wipe_free(pr->v[i]);
	memset(pr, 0, sizeof(*pr));
}

static char *
trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

/*
 * The profile a section header names: "[name]" in the credentials file;
 * "[default]" or "[profile name]" in the config file, where other sections
 * ("[sso-session x]", "[services x]") are no profile (NULL).
 */
static const char *
section_profile(char *s, int config)
{
	size_t	 n;

	if (!config || strcmp(s, "default") == 0)
		return s;
	if (strncmp(s, "profile", 7) != 0 || (s[7] != ' ' && s[7] != '\t'))
		return NULL;
	s += 7;
	s += strspn(s, " \t");
	n = strcspn(s, " \t");
	if (n == 0 || s[n] != '\0')
		return NULL;
	return s;
}

static enum s3_status
parse_file(char *data, const char *path, const char *profile, int config,
    struct profile *pr, struct s3_error *err)
{
	char		*line, *next, *nl, *s, *delim, *colon, *key, *val;
	char		**slot = NULL;
	const char	*name;
	int		 lineno = 0, sections = 0, in_profile = 0;
	size_t		 i, n, indent, key_indent = 0;
	int		 in_key = 0;

	for (line = data; line != NULL && *line != '\0'; line = next) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL) {
			next = nl + 1;
		} else {
			nl = line + strlen(line);
			next = NULL;
		}
		indent = strspn(line, " \t");
		s = trim(line, nl);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (in_key && indent > key_indent) {
			/* A value over several lines: not for a secret. */
			if (slot != NULL)
				goto malformed;
			continue;
		}
		in_key = 0;
		slot = NULL;
		if (*s == '[') {
			n = strlen(s);
			if (s[n - 1] != ']')
				goto malformed;
			s = trim(s + 1, s + n - 1);
			if (*s == '\0')
				goto malformed;
			sections++;
			name = section_profile(s, config);
			in_profile = name != NULL && strcmp(name, profile) == 0;
			if (in_profile && pr->found++)
				return creds_fail(err, "profile '%s' appears "
				    "twice in '%s'", profile, path);
			continue;
		}
		delim = strchr(s, '=');
		colon = strchr(s, ':');
		if (delim == NULL || (colon != NULL && colon < delim))
			delim = colon;
		/* No delimiter, or a key before any section. */
		if (delim == NULL || sections == 0)
			goto malformed;
		key = trim(s, delim);
		val = trim(delim + 1, delim + 1 + strlen(delim + 1));
		if (*key == '\0')
			goto malformed;
		in_key = 1;
		key_indent = indent;
		if (!in_profile)
			continue;
		for (i = 0; i < sizeof(pk_unsupported) /
		    sizeof(pk_unsupported[0]); i++)
			if (strcasecmp(key, pk_unsupported[i]) == 0 &&
			    pr->unsupported == NULL)
				pr->unsupported = pk_unsupported[i];
		for (i = 0; i < PK_N; i++) {
			if (strcasecmp(key, pk_names[i]) != 0)
				continue;
			if (pr->v[i] != NULL)
				return creds_fail(err, "%s appears twice in "
				    "profile '%s' of '%s'", pk_names[i],
				    profile, path);
			slot = &pr->v[i];
			if (*val != '\0' && (pr->v[i] = strdup(val)) == NULL) {
				creds_fail(err, "out of memory");
				return S3_ENOMEM;
			}
		}
	}
	return S3_OK;
malformed:
	return creds_fail(err, "malformed line %d in '%s'", lineno, path);
}

/* S3_ENOTFOUND when the file does not exist. */
static enum s3_status
read_profile(const char *path, const char *profile, int config,
    struct profile *pr, struct s3_error *err)
{
	char		*data = NULL;
	size_t		 size = 0;
	enum s3_status	 st;

	if ((st = read_file(path, &data, &size, err)) != S3_OK)
		return st;
	st = parse_file(data, path, profile, config, pr, err);
	explicit_bzero(data, size);
	free(data);
	return st;
}

/* AWS_xxx_FILE, else ~/.aws/name; NULL with no HOME. */
static enum s3_status
shared_path(const char *var, const char *name, char *dst, size_t len,
    const char **path, struct s3_error *err)
{
	const char	*home, *p;
	int		 n;

	*path = NULL;
	if ((p = env(var)) != NULL) {
		*path = p;
		return S3_OK;
	}
	if ((home = env("HOME")) == NULL)
		return S3_OK;
	n = snprintf(dst, len, "%s/.aws/%s", home, name);
	if (n < 0 || (size_t)n >= len)
		return creds_fail(err, "HOME is too long");
	*path = dst;
	return S3_OK;
}

/*
 * The profile from the credentials file and the config file, the first
 * winning key by key as in botocore. S3_ENOTFOUND when neither holds a key
 * for it (then none says where we looked); a profile named by AWS_PROFILE
 * must exist.
 */
static enum s3_status
from_profile(struct s3_creds *c, char *source, size_t srclen, char *none,
    size_t nonelen, struct s3_error *err)
{
	static const char *const vars[2] = {
		"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
	};
	static const char *const names[2] = { "credentials", "config" };
	struct profile	 pr[2];
	char		 buf[2][PATH_MAX];
	const char	*path[2], *profile, *from[PK_N];
	char		**dst[PK_N];
	enum s3_status	 st = S3_OK;
	int		 explicit, f, n;
	size_t		 i;

	memset(pr, 0, sizeof(pr));
	if ((profile = env("AWS_PROFILE")) != NULL)
		explicit = 1;
	else {
		profile = "default";
		explicit = 0;
	}
	for (f = 0; f < 2; f++) {
		if ((st = shared_path(vars[f], names[f], buf[f],
		    sizeof(buf[f]), &path[f], err)) != S3_OK)
			goto out;
		if (path[f] == NULL)
			continue;
		st = read_profile(path[f], profile, f == 1, &pr[f], err);
		if (st == S3_ENOTFOUND)
			st = S3_OK;
		if (st != S3_OK)
			goto out;
		if (pr[f].unsupported != NULL) {
			st = creds_fail(err, "profile '%s' in '%s' sets %s, "
			    "which prewctl does not support", profile, path[f],
			    pr[f].unsupported);
			goto out;
		}
	}
	if (!pr[0].found && !pr[1].found) {
		if (explicit) {
			st = creds_fail(err, "profile '%s' not found in "
			    "'%s' or '%s'", profile,
			    path[0] != NULL ? path[0] : "~/.aws/credentials",
			    path[1] != NULL ? path[1] : "~/.aws/config");
			goto out;
		}
	}
	dst[PK_ACCESS] = &c->access_key;
	dst[PK_SECRET] = &c->secret_key;
	dst[PK_TOKEN] = &c->session_token;
	for (i = 0; i < PK_N; i++) {
		f = pr[0].v[i] != NULL ? 0 : 1;
		from[i] = path[f];
		*dst[i] = pr[f].v[i];
		pr[f].v[i] = NULL;
	}
	if (c->access_key == NULL && c->secret_key == NULL) {
		s3_creds_release(c);
		if (path[0] == NULL && path[1] == NULL)
			(void)snprintf(none, nonelen, "profile '%s' (HOME is "
			    "not set)", profile);
		else
			(void)snprintf(none, nonelen, "profile '%s' of '%s' "
			    "or '%s'", profile, path[0] != NULL ? path[0] :
			    "~/.aws/credentials", path[1] != NULL ? path[1] :
			    "~/.aws/config");
		st = S3_ENOTFOUND;
		goto out;
	}
	if (c->secret_key == NULL) {
		st = creds_fail(err, "profile '%s' in '%s' has "
		    "aws_access_key_id but no aws_secret_access_key", profile,
		    from[PK_ACCESS]);
		goto out;
	}
	if (c->access_key == NULL) {
		st = creds_fail(err, "profile '%s' in '%s' has "
		    "aws_secret_access_key but no aws_access_key_id", profile,
		    from[PK_SECRET]);
		goto out;
	}
	n = snprintf(source, srclen, "profile '%s'", profile);
	if (n < 0 || (size_t)n >= srclen) {
		st = creds_fail(err, "AWS_PROFILE is too long");
		goto out;
	}
	st = S3_OK;
out:
	profile_release(&pr[0]);
	profile_release(&pr[1]);
	return st;
}

static enum s3_status
dup_env(char **dst, const char *v, struct s3_error *err)
{
	if ((*dst = strdup(v)) == NULL) {
		creds_fail(err, "out of memory");
		return S3_ENOMEM;
	}
	return S3_OK;
}

/* The environment, else the profile; source names which. */
static enum s3_status
load(struct s3_creds *c, char *source, size_t srclen, struct s3_error *err)
{
	const char	*ak, *sk, *tok;
	char		 none[2 * PATH_MAX + 64];
	enum s3_status	 st;

	memset(c, 0, sizeof(*c));
	s3_error_clear(err);
	ak = env("AWS_ACCESS_KEY_ID");
	sk = env("AWS_SECRET_ACCESS_KEY");
	if (ak != NULL && sk == NULL)
		return creds_fail(err, "AWS_ACCESS_KEY_ID is set but "
		    "AWS_SECRET_ACCESS_KEY is not");
	if (ak == NULL && sk != NULL)
		return creds_fail(err, "AWS_SECRET_ACCESS_KEY is set but "
		    "AWS_ACCESS_KEY_ID is not");
	if (ak != NULL) {
		tok = env("AWS_SESSION_TOKEN");
		if ((st = dup_env(&c->access_key, ak, err)) != S3_OK ||
		    (st = dup_env(&c->secret_key, sk, err)) != S3_OK ||
		    (tok != NULL &&
		    (st = dup_env(&c->session_token, tok, err)) != S3_OK))
			goto out;
		(void)snprintf(source, srclen, "environment");
		return S3_OK;
	}

	none[0] = '\0';
	if ((st = from_profile(c, source, srclen, none, sizeof(none), err)) ==
	    S3_ENOTFOUND)
		st = creds_fail(err, "no credentials in the environment or in "
		    "%s", none);
	if (st != S3_OK)
		goto out;
	return S3_OK;
out:
	s3_creds_release(c);
	return st;
}

struct s3_creds_provider {
	char		 source[128];	/* for messages */
	struct s3_creds	 cur;		/* never changes */
};

enum s3_status
s3_creds_provider_new(struct s3_creds_provider **out, struct s3_error *err)
{
	struct s3_creds_provider	*p;
	enum s3_status			 st;

	*out = NULL;
	s3_error_clear(err);
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		creds_fail(err, "out of memory");
		return S3_ENOMEM;
	}
	if ((st = load(&p->cur, p->source, sizeof(p->source), err)) !=
	    S3_OK) {
		free(p);
		return st;
	}
	*out = p;
	return S3_OK;
}

struct s3_creds_provider *
s3_creds_provider_static(const struct s3_creds *c)
{
	struct s3_creds_provider	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	(void)snprintf(p->source, sizeof(p->source), "static credentials");
	p->cur.access_key = strdup(c->access_key);
	p->cur.secret_key = strdup(c->secret_key);
	if (c->session_token != NULL)
		p->cur.session_token = strdup(c->session_token);
	if (p->cur.access_key == NULL || p->cur.secret_key == NULL ||
	    (c->session_token != NULL && p->cur.session_token == NULL)) {
		s3_creds_provider_free(p);
		return NULL;
	}
	return p;
}

void
s3_creds_provider_free(struct s3_creds_provider *p)
{
	if (p == NULL)
		return;
	s3_creds_release(&p->cur);
	free(p);
}

const char *
s3_creds_provider_source(const struct s3_creds_provider *p)
{
	return p->source;
}

enum s3_status
s3_creds_snapshot(struct s3_creds_provider *p, struct s3_creds *out,
    struct s3_error *err)
{
	memset(out, 0, sizeof(*out));
	s3_error_clear(err);
	out->access_key = strdup(p->cur.access_key);
	out->secret_key = strdup(p->cur.secret_key);
	if (p->cur.session_token != NULL)
		out->session_token = strdup(p->cur.session_token);
	if (out->access_key == NULL || out->secret_key == NULL ||
	    (p->cur.session_token != NULL && out->session_token == NULL)) {
		s3_creds_release(out);
		creds_fail(err, "out of memory");
		return S3_ENOMEM;
	}
	return S3_OK;
}
