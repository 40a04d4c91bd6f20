/*
 * store: one set of calls over the two backends. The S3 side keeps the
 * credentials provider (shared by every connection, thread-safe) and the
 * s3_config that every connection's client is made from, and turns s3/'s
 * statuses into the store's (one place: from_s3);
 * the folder side shares one struct dirstore between connections, which
 * is safe because it holds nothing mutable but an fd.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

struct store {
	struct dirstore	*dir;		/* folder backend, or NULL */
	struct s3_creds_provider *creds;
	struct s3_config s3cfg;
	s3_log_fn	 log;
	void		*log_arg;
};

struct store_conn {
	struct store		*store;
	struct s3_client	*s3;	/* NULL for the folder backend */
	struct s3_stats		 local;	/* the folder backend's counters */
	volatile sig_atomic_t	*cancel;
};

const char *
store_strerror(enum store_status st)
{
	switch (st) {
	case STORE_OK:
		return "success";
	case STORE_ENOMEM:
		return "out of memory";
	case STORE_EINVAL:
		return "invalid argument";
	case STORE_ENOTFOUND:
		return "not found";
	case STORE_ETOOBIG:
		return "too large";
	case STORE_EDENIED:
		return "access denied";
	case STORE_EAUTH:
		return "credentials refused";
	case STORE_EIO:
		return "i/o error";
	case STORE_ESERVER:
		return "server error";
	case STORE_ENETWORK:
		return "network error";
	case STORE_EPROTO:
		return "malformed response";
	case STORE_ECANCELLED:
		return "cancelled";
	case STORE_EPARTIAL:
		return "some keys failed";
	}
	return "unknown error";
}

void
store_error_clear(struct store_error *err)
{
	if (err != NULL)
		memset(err, 0, sizeof(*err));
}

/* Text for humans on one line: control bytes become spaces. */
static void
one_line(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

const char *
store_error_text(enum store_status st, const struct store_error *err,
    char *dst, size_t len)
{
	if (dst == NULL || len == 0)
		return store_strerror(st);
	/* A cut line is still a useful line: truncation is accepted. */
	if (err != NULL && err->code[0] != '\0' && err->http_status > 0)
		(void)snprintf(dst, len, "%s (HTTP %ld)", err->code,
		    err->http_status);
	else if (err != NULL && err->code[0] != '\0')
		(void)snprintf(dst, len, "%s", err->code);
	else if (err != NULL && err->message[0] != '\0')
		(void)snprintf(dst, len, "%s", err->message);
	else if (err != NULL && err->http_status > 0)
		(void)snprintf(dst, len, "%s (HTTP %ld)", store_strerror(st),
		    err->http_status);
	else
		(void)snprintf(dst, len, "%s", store_strerror(st));
	one_line(dst);
	return dst;
}

int
store_failing(enum store_status st, const struct store_error *err, int write)
{
	switch (st) {
	case STORE_ENETWORK:
	case STORE_EAUTH:
	case STORE_EPROTO:
		return 1;
	case STORE_ESERVER:
		/* A write the server will not take fails for every key. */
		return write || err->http_status == 0 ||
		    err->http_status >= 500;
	case STORE_EDENIED:
	case STORE_EIO:
		return write;
	default:
		return 0;
	}
}

/* S3 error codes that say the credentials, not the key, are refused. */
static const char *const auth_codes[] = {
	"AccountProblem", "ExpiredToken", "InvalidAccessKeyId",
	"InvalidClientTokenId", "InvalidToken", "RequestTimeTooSkewed",
	"SignatureDoesNotMatch", "TokenRefreshRequired",
};

static int
code_in(const char *code, const char *const *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (strcmp(code, v[i]) == 0)
			return 1;
	return 0;
}

/* What an S3 error code alone says, when it says something. */
static enum store_status
from_code(const char *code, long http)
{
	if (code_in(code, auth_codes, sizeof(auth_codes) /
	    sizeof(auth_codes[0])) || http == 401)
		return STORE_EAUTH;
	if (strcmp(code, "NoSuchKey") == 0)
		return STORE_ENOTFOUND;
	/* The bucket, not the key: the storage as a whole is wrong. */
	if (strcmp(code, "NoSuchBucket") == 0)
		return STORE_ESERVER;
	if (strcmp(code, "KeyTooLongError") == 0)
		return STORE_EINVAL;
	if (http == 403 || strcmp(code, "AccessDenied") == 0 ||
	    strcmp(code, "InvalidObjectState") == 0 ||
	    strcmp(code, "AccessControlListNotSupported") == 0 ||
	    strncmp(code, "KMS.", 4) == 0)
		return STORE_EDENIED;
	return STORE_ESERVER;
}

static enum store_status
from_s3(enum s3_status st, const struct s3_error *se, struct store_error *err)
{
	store_error_clear(err);
	err->http_status = se->http_status;
	memcpy(err->code, se->code, sizeof(se->code));
	(void)snprintf(err->message, sizeof(err->message), "%s", se->message);
	memcpy(err->request_id, se->request_id, sizeof(se->request_id));
	switch (st) {
	case S3_OK:
		return STORE_OK;
	case S3_ENOMEM:
		return STORE_ENOMEM;
	case S3_EINVAL:
		return STORE_EINVAL;
	case S3_ECREDS:
		return STORE_EAUTH;
	case S3_ENOTFOUND:
		return strcmp(se->code, "NoSuchBucket") == 0 ? STORE_ESERVER :
		    STORE_ENOTFOUND;
	case S3_ESERVER:
		return from_code(se->code, se->http_status);
	case S3_ECONNECT:
	case S3_ETIMEOUT:
	case S3_ENETWORK:
	case S3_ETLS:
	case S3_ESHORT:
		/* The message names the transport's trouble. */
		if (err->message[0] == '\0')
			(void)snprintf(err->message, sizeof(err->message),
			    "%s", s3_strerror(st));
		return STORE_ENETWORK;
	case S3_ETOOBIG:
		return STORE_ETOOBIG;
	case S3_EXML:
	case S3_EPROTO:
		if (err->message[0] == '\0')
			(void)snprintf(err->message, sizeof(err->message),
			    "%s", s3_strerror(st));
		return STORE_EPROTO;
	case S3_ECANCELLED:
		return STORE_ECANCELLED;
	case S3_EPARTIAL:
		return STORE_EPARTIAL;
	}
	return STORE_ESERVER;
}

struct store *
store_new(const struct config *cfg, enum store_status *st,
    struct store_error *err)
{
	struct store		*s;
	struct s3_creds_opts	 co;
	struct s3_error		 se;
	enum s3_status		 s3st;
	const char		*region;

	store_error_clear(err);
	memset(&co, 0, sizeof(co));
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		*st = STORE_ENOMEM;
		return NULL;
	}
	if (cfg->directory != NULL) {
		/* A relative folder is relative to the configuration file. */
		struct buf	 path;
		const char	*slash = strrchr(cfg->path, '/');

		buf_init(&path, BUF_NOMAX);
		if ((cfg->directory[0] != '/' && slash != NULL &&
		    buf_add(&path, cfg->path, (size_t)(slash - cfg->path) + 1)
		    != 0) || buf_addstr(&path, cfg->directory) != 0) {
			buf_release(&path);
			free(s);
			*st = STORE_ENOMEM;
			return NULL;
		}
		s->dir = dirstore_new(path.data, err);
		buf_release(&path);
		if (s->dir == NULL) {
			*st = STORE_EINVAL;
			free(s);
			return NULL;
		}
		*st = STORE_OK;
		return s;
	}
	s3_error_clear(&se);
	region = cfg->region != NULL ? cfg->region : s3_region_from_env();
	co.region = region;
	if ((s3st = s3_creds_provider_new(&co, &s->creds, &se)) != S3_OK) {
		*st = from_s3(s3st, &se, err);
		free(s);
		return NULL;
	}
	s->s3cfg = (struct s3_config){
		.endpoint = cfg->endpoint,
		.bucket = cfg->bucket,
		.region = region,
		.path_style = cfg->path_style,
		.tls_verify = cfg->tls_verify,
		.ca_bundle = cfg->ca_bundle,
		.connect_timeout_ms = cfg->timeout_ms,
		.low_speed_time_s = cfg->low_speed_time_s,
		.max_retries = cfg->retries,
		.creds = s->creds,
	};
	*st = STORE_OK;
	return s;
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	if (s->dir != NULL)
		dirstore_free(s->dir);
	else
		s3_creds_provider_free(s->creds);
	free(s);
}

void
store_abort(void)
{
	dirstore_unlink_temps();
}

void
store_set_log(struct store *s, s3_log_fn fn, void *arg)
{
	s->log = fn;
	s->log_arg = arg;
}

struct store_conn *
store_conn_new(struct store *s)
{
	struct store_conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->store = s;
	if (s->dir == NULL && (c->s3 = s3_client_new(&s->s3cfg)) == NULL) {
		free(c);
		return NULL;
	}
	if (c->s3 != NULL)
		s3_client_set_log(c->s3, s->log, s->log_arg);
	return c;
}

void
store_conn_free(struct store_conn *c)
{
	if (c == NULL)
		return;
	s3_client_free(c->s3);
	free(c);
}

void
store_conn_set_cancel(struct store_conn *c, volatile sig_atomic_t *cancel)
{
	c->cancel = cancel;
	if (c->s3 != NULL)
		s3_client_set_cancel(c->s3, cancel);
}

void
store_conn_stats(const struct store_conn *c, struct s3_stats *sum)
{
	s3_stats_add(sum, c->s3 != NULL ? s3_client_stats(c->s3) : &c->local);
}

void
store_head_init(struct store_head *hd)
{
	memset(hd, 0, sizeof(*hd));
	buf_init(&hd->meta, 64 * 1024);
}

void
store_head_release(struct store_head *hd)
{
	buf_release(&hd->meta);
}

int
store_head_meta(const struct store_head *hd, const char *name, char *dst,
    size_t len)
{
	const char	*line, *nl, *eq;
	size_t		 nlen = strlen(name), vlen;

	for (line = hd->meta.data; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			nl = line + strlen(line);
		eq = memchr(line, '=', (size_t)(nl - line));
		if (eq != NULL && (size_t)(eq - line) == nlen &&
		    memcmp(line, name, nlen) == 0) {
			vlen = (size_t)(nl - eq - 1);
			if (vlen >= len)
				return -1;
			memcpy(dst, eq + 1, vlen);
			dst[vlen] = '\0';
			return 0;
		}
		if (*nl == '\0')
			break;
	}
	return -1;
}

/* An s3_head into a store_head: the sizes say nothing is cut. */
static void
from_s3_head(const struct s3_head *sh, struct store_head *hd)
{
	_Static_assert(sizeof(sh->etag) == sizeof(hd->etag),
	    "ETag fields differ");
	_Static_assert(sizeof(sh->content_type) == sizeof(hd->content_type),
	    "Content-Type fields differ");
	hd->size = sh->size;
	hd->mtime_ms = sh->mtime_ms;
	memcpy(hd->etag, sh->etag, sizeof(hd->etag));
	memcpy(hd->content_type, sh->content_type, sizeof(hd->content_type));
	buf_reset(&hd->meta);
	(void)buf_add(&hd->meta, sh->meta.data, sh->meta.len);
}

enum store_status
store_list(struct store_conn *c, const struct s3_list_params *lp,
    s3_object_cb ocb, s3_prefix_cb pcb, void *arg, struct store_error *err)
{
	struct s3_error	se;

	if (c->s3 == NULL) {
		c->local.list++;
		return dirstore_list(c->store->dir, lp, ocb, pcb, arg, err);
	}
	s3_error_clear(&se);
	return from_s3(s3_list(c->s3, lp, ocb, pcb, arg, &se), &se, err);
}

enum store_status
store_get(struct store_conn *c, const char *key, size_t max_bytes,
    struct buf *out, struct store_head *hd, struct store_error *err)
{
	struct s3_head	 sh;
	struct s3_error	 se;
	enum store_status st;

	if (c->s3 == NULL) {
		c->local.get++;
		st = dirstore_get(c->store->dir, key, max_bytes, out, hd, err);
		if (st == STORE_OK)
			c->local.bytes_in += out->len;
		return st;
	}
	s3_error_clear(&se);
	s3_head_init(&sh);
	st = from_s3(s3_get(c->s3, key, max_bytes, out, hd != NULL ? &sh :
	    NULL, &se), &se, err);
	if (st == STORE_OK && hd != NULL)
		from_s3_head(&sh, hd);
	s3_head_release(&sh);
	return st;
}

enum store_status
store_head(struct store_conn *c, const char *key, struct store_head *hd,
    struct store_error *err)
{
	struct s3_head	 sh;
	struct s3_error	 se;
	enum store_status st;

	if (c->s3 == NULL) {
		c->local.head++;
		return dirstore_head(c->store->dir, key, hd, err);
	}
	s3_error_clear(&se);
	s3_head_init(&sh);
	st = from_s3(s3_head(c->s3, key, &sh, &se), &se, err);
	if (st == STORE_OK)
		from_s3_head(&sh, hd);
	s3_head_release(&sh);
	return st;
}

enum store_status
store_put(struct store_conn *c, const char *key, const void *data,
    size_t len, const struct s3_put_opts *opts, struct store_error *err)
{
	struct s3_error	se;

	if (c->s3 == NULL) {
		c->local.put++;
		c->local.bytes_out += len;
		return dirstore_put(c->store->dir, key, data, len, opts, err);
	}
	s3_error_clear(&se);
	return from_s3(s3_put(c->s3, key, data, len, opts, &se), &se, err);
}

/* DeleteObjects' per-key errors, in the store's terms. */
struct del_relay {
	store_delete_err_cb	 cb;
	void			*arg;
};

static void
del_relay(void *arg, const char *key, const char *code, const char *message)
{
	struct del_relay	*r = arg;
	struct store_error	 err;
	enum store_status	 st;

	store_error_clear(&err);
	(void)snprintf(err.code, sizeof(err.code), "%s", code);
	(void)snprintf(err.message, sizeof(err.message), "%s", message);
	st = from_code(code, 0);
	if (r->cb != NULL)
		r->cb(r->arg, key, st, &err);
}

enum store_status
store_delete_many(struct store_conn *c, const char *const *keys, size_t n,
    store_delete_err_cb cb, void *arg, struct store_error *err)
{
	struct del_relay	r = { cb, arg };
	struct s3_error		se;

	if (c->s3 == NULL) {
		c->local.del++;
		return dirstore_delete_many(c->store->dir, keys, n, cb, arg,
		    err);
	}
	s3_error_clear(&se);
	return from_s3(s3_delete_many(c->s3, keys, n, del_relay, &r, &se), &se,
	    err);
}
