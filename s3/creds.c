/*
 * creds: credentials and region as the AWS CLI finds them.
 *
 * The shared credentials file is read by a small strict reader of our own:
 * Debian's inih splits lines longer than 199 bytes, and a session token is
 * often longer than that. The reader follows botocore's configparser: "[name]"
 * sections with no "profile " prefix, "key = value" or "key: value" split at
 * the first delimiter, '#' and ';' comment lines, no inline comments, key
 * names matched without regard to case; a repeated section or key is an
 * error. Secrets are wiped before their memory is freed, and no message ever
 * holds a line of the file.
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
 * copy of a secret behind in freed memory.
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

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return creds_fail(err, "cannot read '%s': %s", path,
		    strerror(errno));
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

static enum s3_status
parse_file(char *data, const char *path, const char *profile,
    struct s3_creds *c, struct s3_error *err)
{
	static const char *const names[] = {
		"aws_access_key_id",
		"aws_secret_access_key",
		"aws_session_token",
	};
	char		**slot[3];
	char		*line, *next, *nl, *s, *delim, *colon, *key, *val;
	int		 lineno = 0, sections = 0, in_profile = 0, found = 0;
	size_t		 i, n;

	slot[0] = &c->access_key;
	slot[1] = &c->secret_key;
	slot[2] = &c->session_token;
	for (line = data; line != NULL && *line != '\0'; line = next) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL) {
			next = nl + 1;
		} else {
			nl = line + strlen(line);
			next = NULL;
		}
		s = trim(line, nl);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			n = strlen(s);
			if (s[n - 1] != ']')
				goto malformed;
			s = trim(s + 1, s + n - 1);
			if (*s == '\0')
				goto malformed;
			sections++;
			in_profile = strcmp(s, profile) == 0;
			if (in_profile && found++)
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
		if (!in_profile)
			continue;
		for (i = 0; i < 3; i++) {
			if (strcasecmp(key, names[i]) != 0)
				continue;
			if (*slot[i] != NULL)
				return creds_fail(err, "%s appears twice in "
				    "profile '%s' of '%s'", names[i], profile,
				    path);
			if (*val != '\0' && (*slot[i] = strdup(val)) == NULL) {
				creds_fail(err, "out of memory");
				return S3_ENOMEM;
			}
		}
	}
	if (!found)
		return creds_fail(err, "profile '%s' not found in '%s'",
		    profile, path);
	if (c->access_key == NULL)
		return creds_fail(err, "profile '%s' in '%s' has no "
		    "aws_access_key_id", profile, path);
	if (c->secret_key == NULL)
		return creds_fail(err, "profile '%s' in '%s' has no "
		    "aws_secret_access_key", profile, path);
	return S3_OK;
malformed:
	return creds_fail(err, "malformed line %d in '%s'", lineno, path);
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

enum s3_status
s3_creds_load(struct s3_creds *c, struct s3_error *err)
{
	const char	*ak, *sk, *tok, *path, *profile, *home;
	char		 pathbuf[PATH_MAX], *data = NULL;
	size_t		 size = 0;
	int		 n;
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
		return S3_OK;
	}

	if ((profile = env("AWS_PROFILE")) == NULL)
		profile = "default";
	if ((path = env("AWS_SHARED_CREDENTIALS_FILE")) == NULL) {
		if ((home = env("HOME")) == NULL)
			return creds_fail(err, "no credentials: neither "
			    "AWS_ACCESS_KEY_ID nor HOME is set");
		n = snprintf(pathbuf, sizeof(pathbuf), "%s/.aws/credentials",
		    home);
		if (n < 0 || (size_t)n >= sizeof(pathbuf))
			return creds_fail(err, "HOME is too long");
		path = pathbuf;
	}
	if ((st = read_file(path, &data, &size, err)) != S3_OK)
		goto out;
	st = parse_file(data, path, profile, c, err);
out:
	if (data != NULL) {
		explicit_bzero(data, size);
		free(data);
	}
	if (st != S3_OK)
		s3_creds_release(c);
	return st;
}
