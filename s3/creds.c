/*
 * creds: the credentials provider, the chain that chooses its source, and
 * the two static sources (the environment and the shared files).
 *
 * The chain runs once, in s3_creds_provider_new, in the AWS SDKs' order
 * (see s3.h). Static credentials never expire. Credentials from web
 * identity, a container endpoint or instance metadata carry an expiry;
 * s3_creds_snapshot fetches new ones from the same source when they expire
 * within REFRESH_EARLY seconds:
 *
 *  - one thread fetches at a time (the fetching mutex); while the old
 *    credentials are still valid, the others do not wait for it but go on
 *    with the old ones;
 *  - a failed fetch keeps the old credentials until they expire;
 *  - after a fetch, failed or not, the next waits RETRY_GAP seconds unless
 *    the credentials have expired: a failing endpoint, or one that hands
 *    out credentials expiring soon (instance metadata does until it
 *    rotates them), is not asked at every request;
 *  - once they have expired a snapshot waits for a fetch, at most one
 *    every EXPIRED_GAP seconds (in between it fails at once with the last
 *    reason), and threads that queued behind a fetch take its outcome
 *    instead of fetching again.
 *
 * The shared files are read by a small strict reader of our own: Debian's
 * inih splits lines longer than 199 bytes, and a session token is often
 * longer than that. The reader follows botocore's configparser: "[name]"
 * sections ("[profile name]" or "[default]" in the config file), "key =
 * value" or "key: value" split at the first delimiter, '#' and ';' comment
 * lines, no inline comments, a line indented deeper than its key's line
 * continuing that key's value, key names matched without regard to case; a
 * repeated profile or key is an error. The credentials file wins key by
 * key, as in botocore. Secrets are wiped before their memory is freed, and
 * no message ever holds a line of a file.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "credsrc.h"
#include "sigv4.h"

#define CREDS_FILE_MAX	(1024 * 1024)
#define REFRESH_EARLY	(5 * 60)	/* the SDKs refresh 5 to 15 min early */
#define RETRY_GAP	30
#define EXPIRED_GAP	5

struct s3_creds_provider {
	struct credsrc	 src;		/* chosen once, read-only after */
	time_t		(*clock)(void *);
	void		*clock_arg;
	pthread_mutex_t	 fetching;	/* held by the one thread fetching */
	/* lock guards every field below it. */
	pthread_mutex_t	 lock;
	struct s3_creds	 cur;
	time_t		 tried;		/* the last fetch; 0: none yet */
	unsigned	 fetches;	/* fetches finished, failed or not */
	struct s3_error	 last;		/* what the last fetch said */
};

enum s3_status
credsrc_fail(struct s3_error *err, const char *fmt, ...)
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

static enum s3_status
no_memory(struct s3_error *err)
{
	credsrc_fail(err, "out of memory");
	return S3_ENOMEM;
}

const char *
credsrc_env(const char *name)
{
	const char	*v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

void
credsrc_wipe_free(char *s)
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
	credsrc_wipe_free(c->access_key);
	credsrc_wipe_free(c->secret_key);
	credsrc_wipe_free(c->session_token);
	c->access_key = c->secret_key = c->session_token = NULL;
	c->expires = 0;
}

const char *
s3_region_from_env(void)
{
	const char	*r;

	if ((r = credsrc_env("AWS_REGION")) != NULL)
		return r;
	return credsrc_env("AWS_DEFAULT_REGION");
}

int
credsrc_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

enum s3_status
credsrc_check(const struct s3_creds *c, const char *what,
    struct s3_error *err)
{
	if (c->access_key == NULL || *c->access_key == '\0')
		return credsrc_fail(err, "%s: no access key", what);
	if (c->secret_key == NULL || *c->secret_key == '\0')
		return credsrc_fail(err, "%s: no secret key", what);
	/* They go into headers: a CR or LF would add one. */
	if (credsrc_has_control(c->access_key) ||
	    credsrc_has_control(c->secret_key) ||
	    (c->session_token != NULL &&
	    credsrc_has_control(c->session_token)))
		return credsrc_fail(err, "%s: a control character in the "
		    "credentials", what);
	return S3_OK;
}

/*
 * The whole file in one allocation sized from fstat, so no realloc leaves a
 * copy of a secret behind in freed memory. S3_ENOTFOUND when it does not
 * exist (with the message set all the same).
 */
enum s3_status
credsrc_read_file(const char *path, char **data, size_t *size,
    struct s3_error *err)
{
	struct stat	 sb;
	char		*p = NULL;
	size_t		 cap = 0, n = 0;
	ssize_t		 r;
	int		 fd, saved;
	enum s3_status	 st = S3_ECREDS;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		saved = errno;
		credsrc_fail(err, "cannot read '%s': %s", path,
		    strerror(saved));
		return saved == ENOENT ? S3_ENOTFOUND : S3_ECREDS;
	}
	if (fstat(fd, &sb) == -1) {
		credsrc_fail(err, "cannot read '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > CREDS_FILE_MAX) {
		credsrc_fail(err, "'%s' is not a regular file of at most %d "
		    "bytes", path, CREDS_FILE_MAX);
		goto out;
	}
	cap = (size_t)sb.st_size + 1;
	if ((p = malloc(cap)) == NULL) {
		st = no_memory(err);
		goto out;
	}
	for (;;) {
		r = read(fd, p + n, cap - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			saved = errno;
			credsrc_fail(err, "cannot read '%s': %s", path,
			    strerror(saved));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			credsrc_fail(err, "'%s' changed while being read",
			    path);
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

/* ---- the environment --------------------------------------------------- */

static enum s3_status
dup_secret(char **dst, const char *v, struct s3_error *err)
{
	if ((*dst = strdup(v)) == NULL)
		return no_memory(err);
	return S3_OK;
}

static enum s3_status
from_env(struct s3_creds *c, struct s3_error *err)
{
	const char	*ak, *sk, *tok;
	enum s3_status	 st;

	ak = credsrc_env("AWS_ACCESS_KEY_ID");
	sk = credsrc_env("AWS_SECRET_ACCESS_KEY");
	if (ak == NULL && sk == NULL)
		return S3_ENOTFOUND;
	if (sk == NULL)
		return credsrc_fail(err, "AWS_ACCESS_KEY_ID is set but "
		    "AWS_SECRET_ACCESS_KEY is not");
	if (ak == NULL)
		return credsrc_fail(err, "AWS_SECRET_ACCESS_KEY is set but "
		    "AWS_ACCESS_KEY_ID is not");
	tok = credsrc_env("AWS_SESSION_TOKEN");
	if ((st = dup_secret(&c->access_key, ak, err)) != S3_OK ||
	    (st = dup_secret(&c->secret_key, sk, err)) != S3_OK ||
	    (tok != NULL &&
	    (st = dup_secret(&c->session_token, tok, err)) != S3_OK))
		return st;
	return credsrc_check(c, "the environment", err);
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
		credsrc_wipe_free(pr->v[i]);
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
				return credsrc_fail(err, "profile '%s' appears "
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
				return credsrc_fail(err, "%s appears twice in "
				    "profile '%s' of '%s'", pk_names[i],
				    profile, path);
			slot = &pr->v[i];
			if (*val != '\0' && (pr->v[i] = strdup(val)) == NULL)
				return no_memory(err);
		}
	}
	return S3_OK;
malformed:
	return credsrc_fail(err, "malformed line %d in '%s'", lineno, path);
}

/* S3_ENOTFOUND when the file does not exist. */
static enum s3_status
read_profile(const char *path, const char *profile, int config,
    struct profile *pr, struct s3_error *err)
{
	char		*data = NULL;
	size_t		 size = 0;
	enum s3_status	 st;

	if ((st = credsrc_read_file(path, &data, &size, err)) != S3_OK)
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
	if ((p = credsrc_env(var)) != NULL) {
		*path = p;
		return S3_OK;
	}
	if ((home = credsrc_env("HOME")) == NULL)
		return S3_OK;
	n = snprintf(dst, len, "%s/.aws/%s", home, name);
	if (n < 0 || (size_t)n >= len)
		return credsrc_fail(err, "HOME is too long");
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
from_profile(struct s3_creds *c, struct credsrc *src, char *none,
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
	if ((profile = credsrc_env("AWS_PROFILE")) != NULL)
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
			st = credsrc_fail(err, "profile '%s' in '%s' sets %s, "
			    "which prewctl does not support", profile, path[f],
			    pr[f].unsupported);
			goto out;
		}
	}
	if (!pr[0].found && !pr[1].found) {
		if (explicit) {
			st = credsrc_fail(err, "profile '%s' not found in "
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
		/* For a message: a cut one only loses the end of a path. */
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
		st = credsrc_fail(err, "profile '%s' in '%s' has "
		    "aws_access_key_id but no aws_secret_access_key", profile,
		    from[PK_ACCESS]);
		goto out;
	}
	if (c->access_key == NULL) {
		st = credsrc_fail(err, "profile '%s' in '%s' has "
		    "aws_secret_access_key but no aws_access_key_id", profile,
		    from[PK_SECRET]);
		goto out;
	}
	src->kind = CS_PROFILE;
	n = snprintf(src->name, sizeof(src->name), "profile '%s'", profile);
	if (n < 0 || (size_t)n >= sizeof(src->name)) {
		st = credsrc_fail(err, "AWS_PROFILE is too long");
		goto out;
	}
	st = credsrc_check(c, src->name, err);
out:
	profile_release(&pr[0]);
	profile_release(&pr[1]);
	return st;
}

/* ---- the chain ----------------------------------------------------------- */

void
credsrc_release(struct credsrc *src)
{
	free(src->url);
	free(src->token_file);
	credsrc_wipe_free(src->auth);
	free(src->role_arn);
	free(src->session_name);
	free(src->ca_bundle);
	memset(src, 0, sizeof(*src));
}

static enum s3_status
set_name(struct credsrc *src, enum credsrc_kind kind, const char *name)
{
	src->kind = kind;
	/* Our own short names: they fit. */
	(void)snprintf(src->name, sizeof(src->name), "%s", name);
	return S3_OK;
}

/*
 * The first source that is set, and its credentials in c. A source that is
 * set but fails ends the walk, as in the SDKs.
 */
static enum s3_status
walk_chain(struct credsrc *src, const struct s3_creds_opts *o, time_t now,
    struct s3_creds *c, struct s3_error *err)
{
	char		 none[2 * PATH_MAX + 64], msg[sizeof(err->message)];
	enum s3_status	 st;

	if ((st = from_env(c, err)) != S3_ENOTFOUND)
		return st == S3_OK ? set_name(src, CS_ENV, "environment") : st;
	if ((st = credsrc_web_identity(src, o, now, err)) != S3_ENOTFOUND)
		return st == S3_OK ? credsrc_fetch(src, now, c, err) : st;
	none[0] = '\0';
	if ((st = from_profile(c, src, none, sizeof(none), err)) !=
	    S3_ENOTFOUND)
		return st;
	if ((st = credsrc_container(src, o, err)) != S3_ENOTFOUND)
		return st == S3_OK ? credsrc_fetch(src, now, c, err) : st;
	if ((st = credsrc_imds(src, err)) == S3_OK &&
	    (st = credsrc_fetch(src, now, c, err)) == S3_OK)
		return S3_OK;
	if (st == S3_ENOMEM)
		return st;
	/*
	 * Nothing is set: say where we looked, and what metadata said (a
	 * reason cut short is still a reason).
	 */
	if (st == S3_ENOTFOUND)
		(void)snprintf(msg, sizeof(msg), "instance metadata is "
		    "disabled (AWS_EC2_METADATA_DISABLED)");
	else
		(void)snprintf(msg, sizeof(msg), "%s", err->message);
	return credsrc_fail(err, "no credentials in the environment or in "
	    "%s; %s", none, msg);
}

static time_t
clock_time(void *arg)
{
	(void)arg;
	return time(NULL);
}

static struct s3_creds_provider *
provider_alloc(void)
{
	struct s3_creds_provider	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p);
		return NULL;
	}
	if (pthread_mutex_init(&p->fetching, NULL) != 0) {
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	p->clock = clock_time;
	return p;
}

enum s3_status
s3_creds_provider_new(const struct s3_creds_opts *o,
    struct s3_creds_provider **out, struct s3_error *err)
{
	static const struct s3_creds_opts	 none;
	struct s3_creds_provider		*p;
	enum s3_status				 st;

	*out = NULL;
	s3_error_clear(err);
	if (o == NULL)
		o = &none;
	if ((p = provider_alloc()) == NULL)
		return no_memory(err);
	if (o->clock != NULL) {
		p->clock = o->clock;
		p->clock_arg = o->clock_arg;
	}
	st = walk_chain(&p->src, o, p->clock(p->clock_arg), &p->cur, err);
	if (st != S3_OK) {
		s3_creds_provider_free(p);
		return st;
	}
	*out = p;
	return S3_OK;
}

struct s3_creds_provider *
s3_creds_provider_static(const struct s3_creds *c)
{
	struct s3_creds_provider	*p;

	if ((p = provider_alloc()) == NULL)
		return NULL;
	(void)set_name(&p->src, CS_STATIC, "static credentials");
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
	credsrc_release(&p->src);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->fetching);
	free(p);
}

const char *
s3_creds_provider_source(const struct s3_creds_provider *p)
{
	return p->src.name;
}

/* Whether to fetch now; p->lock held. */
static int
due(const struct s3_creds_provider *p, time_t now)
{
	if (p->cur.expires == 0 || now < p->cur.expires - REFRESH_EARLY)
		return 0;
	if (now < p->cur.expires)
		return p->tried == 0 || now >= p->tried + RETRY_GAP;
	return p->tried == 0 || now >= p->tried + EXPIRED_GAP;
}

/* A copy of the current credentials, if still valid; p->lock held. */
static enum s3_status
copy_current(const struct s3_creds_provider *p, time_t now,
    struct s3_creds *out, struct s3_error *err)
{
	char	 when[17];

	if (p->cur.expires != 0 && now >= p->cur.expires) {
		sigv4_amz_date(p->cur.expires, when);
		return credsrc_fail(err, "credentials from %s expired at %s "
		    "and cannot be renewed: %s", p->src.name, when,
		    p->last.message[0] != '\0' ? p->last.message :
		    "no fetch succeeded");
	}
	out->access_key = strdup(p->cur.access_key);
	out->secret_key = strdup(p->cur.secret_key);
	if (p->cur.session_token != NULL)
		out->session_token = strdup(p->cur.session_token);
	out->expires = p->cur.expires;
	if (out->access_key == NULL || out->secret_key == NULL ||
	    (p->cur.session_token != NULL && out->session_token == NULL)) {
		s3_creds_release(out);
		return no_memory(err);
	}
	return S3_OK;
}

/* One fetch, its outcome kept for every thread; p->fetching held. */
static void
fetch(struct s3_creds_provider *p, time_t now)
{
	struct s3_creds	 fresh;
	struct s3_error	 ferr;
	enum s3_status	 st;

	memset(&fresh, 0, sizeof(fresh));
	s3_error_clear(&ferr);
	st = credsrc_fetch(&p->src, now, &fresh, &ferr);
	pthread_mutex_lock(&p->lock);
	p->fetches++;
	p->tried = now;
	if (st == S3_OK) {
		s3_creds_release(&p->cur);
		p->cur = fresh;
		s3_error_clear(&p->last);
	} else
		p->last = ferr;
	pthread_mutex_unlock(&p->lock);
}

enum s3_status
s3_creds_snapshot(struct s3_creds_provider *p, struct s3_creds *out,
    struct s3_error *err)
{
	enum s3_status	 st;
	time_t		 now;
	unsigned	 seen;
	int		 valid;

	memset(out, 0, sizeof(*out));
	s3_error_clear(err);
	now = p->clock(p->clock_arg);
	pthread_mutex_lock(&p->lock);
	if (!due(p, now)) {
		st = copy_current(p, now, out, err);
		pthread_mutex_unlock(&p->lock);
		return st;
	}
	valid = now < p->cur.expires;
	seen = p->fetches;
	pthread_mutex_unlock(&p->lock);

	if (!valid)
		pthread_mutex_lock(&p->fetching);
	else if (pthread_mutex_trylock(&p->fetching) != 0) {
		/* Another thread is fetching; the old ones still do. */
		pthread_mutex_lock(&p->lock);
		st = copy_current(p, now, out, err);
		pthread_mutex_unlock(&p->lock);
		return st;
	}
	pthread_mutex_lock(&p->lock);
	if (p->fetches == seen) {
		/* Nobody fetched while we waited: our turn. */
		pthread_mutex_unlock(&p->lock);
		fetch(p, now);
		pthread_mutex_lock(&p->lock);
	}
	st = copy_current(p, now, out, err);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->fetching);
	return st;
}
