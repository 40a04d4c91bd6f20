/*
 * store: one set of calls over the two backends. The S3 side keeps the
 * credentials provider (shared by every connection, thread-safe) and the
 * s3_config that every connection's client is made from; the folder side
 * shares one struct dirstore between connections, which is safe because
 * it holds nothing mutable but an fd.
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
	char		 name[512];
};

struct store_conn {
	struct store		*store;
	struct s3_client	*s3;	/* NULL for the folder backend */
	struct s3_stats		 local;	/* the folder backend's counters */
	volatile sig_atomic_t	*cancel;
};

struct store *
store_new(const struct config *cfg, enum s3_status *st, struct s3_error *err)
{
	struct store		*s;
	struct s3_creds_opts	 co;
	const char		*region;

	s3_error_clear(err);
	memset(&co, 0, sizeof(co));
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		*st = S3_ENOMEM;
		return NULL;
	}
	if (cfg->directory != NULL) {
		/* A relative folder is relative to the configuration file. */
		struct buf	 path;
		const char	*slash = strrchr(cfg->path, '/');

		buf_init(&path, BUF_NOMAX);
		if (cfg->directory[0] != '/' && slash != NULL)
			buf_add(&path, cfg->path, (size_t)(slash - cfg->path) + 1);
		if (buf_addstr(&path, cfg->directory) != 0) {
			buf_release(&path);
			free(s);
			*st = S3_ENOMEM;
			return NULL;
		}
		s->dir = dirstore_new(path.data, err);
		snprintf(s->name, sizeof(s->name), "%s", path.data);
		buf_release(&path);
		if (s->dir == NULL) {
			*st = S3_EINVAL;
			free(s);
			return NULL;
		}
		*st = S3_OK;
		return s;
	}
	region = cfg->region != NULL ? cfg->region : s3_region_from_env();
	co.region = region;
	if ((*st = s3_creds_provider_new(&co, &s->creds, err)) != S3_OK) {
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
	snprintf(s->name, sizeof(s->name), "s3://%s", cfg->bucket);
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

const char *
store_name(const struct store *s)
{
	return s->name;
}

int
store_is_local(const struct store *s)
{
	return s->dir != NULL;
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

enum s3_status
store_list(struct store_conn *c, const struct s3_list_params *lp,
    s3_object_cb ocb, s3_prefix_cb pcb, void *arg, struct s3_error *err)
{
	if (c->s3 != NULL)
		return s3_list(c->s3, lp, ocb, pcb, arg, err);
	c->local.list++;
	return dirstore_list(c->store->dir, lp, ocb, pcb, arg, err);
}

enum s3_status
store_get(struct store_conn *c, const char *key, size_t max_bytes,
    struct buf *out, struct s3_error *err)
{
	enum s3_status	st;

	if (c->s3 != NULL)
		return s3_get(c->s3, key, max_bytes, out, NULL, err);
	c->local.get++;
	st = dirstore_get(c->store->dir, key, max_bytes, out, err);
	if (st == S3_OK)
		c->local.bytes_in += out->len;
	return st;
}

enum s3_status
store_put(struct store_conn *c, const char *key, const void *data,
    size_t len, const struct s3_put_opts *opts, struct s3_error *err)
{
	if (c->s3 != NULL)
		return s3_put(c->s3, key, data, len, opts, err);
	c->local.put++;
	c->local.bytes_out += len;
	return dirstore_put(c->store->dir, key, data, len, err);
}

enum s3_status
store_delete_many(struct store_conn *c, const char *const *keys, size_t n,
    s3_delete_err_cb cb, void *arg, struct s3_error *err)
{
	if (c->s3 != NULL)
		return s3_delete_many(c->s3, keys, n, cb, arg, err);
	c->local.del++;
	return dirstore_delete_many(c->store->dir, keys, n, cb, arg, err);
}
