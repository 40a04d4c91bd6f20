/*
 * engine: see engine.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "keys.h"

#define RECENT_S	5	/* seconds a stamp may be in its own second */

static enum eng_status
fail(struct eng_error *e, enum eng_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum eng_status
fail(struct eng_error *e, enum eng_status st, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	return st;
}

static enum eng_status
storage(struct eng_error *e, enum store_status st, const char *what,
    const char *subject)
{
	if (st == STORE_ENOMEM)
		return fail(e, ENG_ENOMEM, "out of memory");
	if (st == STORE_ECANCELLED)
		return ENG_INTERRUPTED;
	e->st = st;
	(void)snprintf(e->what, sizeof(e->what), "%s", what);
	(void)snprintf(e->subject, sizeof(e->subject), "%s", subject);
	return ENG_STORAGE;
}

const char *
eng_error_text(enum eng_status st, const struct eng_error *e, char *dst,
    size_t len)
{
	char	why[600];

	switch (st) {
	case ENG_OK:
		(void)snprintf(dst, len, "success");
		break;
	case ENG_STORAGE:
		if (e->what[0] == '\0') {	/* no storage error of its own */
			(void)snprintf(dst, len, "%s", e->text);
			break;
		}
		store_error_text(e->st, &e->err, why, sizeof(why));
		(void)snprintf(dst, len, "%s '%s': %s", e->what, e->subject,
		    why);
		break;
	case ENG_INTERRUPTED:
		(void)snprintf(dst, len, "interrupted");
		break;
	case ENG_ENOMEM:
	case ENG_CONFIG:
		(void)snprintf(dst, len, "%s", e->text);
		break;
	}
	return dst;
}

/*
 * --prefix names a folder under the source: relative, no empty, "." or
 * ".." segment; "2024" means "2024/", so that it never matches "2024x/".
 */
static enum eng_status
normalise_subpath(const char *p, struct buf *out, struct eng_error *e)
{
	const char	*seg;
	size_t		 n;

	if (*p == '\0')
		return ENG_OK;
	if (*p == '/')
		return fail(e, ENG_CONFIG, "bad --prefix '%s': must be relative "
		    "to the source", p);
	for (seg = p; *seg != '\0'; seg += n + (seg[n] == '/')) {
		n = strcspn(seg, "/");
		if (n == 0 || (n == 1 && seg[0] == '.') ||
		    (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return fail(e, ENG_CONFIG, "bad --prefix '%s': empty, "
			    "'.' and '..' segments are not allowed", p);
	}
	if (buf_addstr(out, p) != 0 ||
	    (out->data[out->len - 1] != '/' && buf_addch(out, '/') != 0))
		return fail(e, ENG_ENOMEM, "out of memory");
	return ENG_OK;
}

/* The presets named (all when none), in file order. */
static enum eng_status
choose(struct engine *eng, const struct eng_params *p, struct eng_error *e)
{
	const struct config	*cfg = p->cfg;
	size_t			 i, j;
	int			 take;

	for (j = 0; j < p->nnames; j++)
		if (config_preset(cfg, p->names[j]) == NULL)
			return fail(e, ENG_CONFIG, "unknown preset '%s' (see "
			    "'prewctl presets')", p->names[j]);
	eng->presets = calloc(cfg->npresets + 1, sizeof(*eng->presets));
	eng->def_md5 = calloc(cfg->npresets + 1, sizeof(*eng->def_md5));
	if (eng->presets == NULL || eng->def_md5 == NULL)
		return fail(e, ENG_ENOMEM, "out of memory");
	for (i = 0; i < cfg->npresets; i++) {
		for (take = p->nnames == 0, j = 0; j < p->nnames && !take; j++)
			take = strcmp(p->names[j], cfg->presets[i].name) == 0;
		if (take)
			eng->presets[eng->npresets++] = &cfg->presets[i];
	}
	return ENG_OK;
}

enum eng_status
engine_open(struct engine *eng, const struct eng_params *p,
    struct eng_error *e)
{
	const struct config	*cfg = p->cfg;
	enum store_status	 st;
	enum eng_status	 	 rc;
	size_t			 i;

	memset(eng, 0, sizeof(*eng));
	memset(e, 0, sizeof(*e));
	eng->cfg = cfg;
	eng->cancel = p->cancel;
	buf_init(&eng->subpath, BUF_NOMAX);
	if ((rc = normalise_subpath(p->subpath != NULL ? p->subpath : "",
	    &eng->subpath, e)) != ENG_OK)
		goto fail;
	if ((rc = choose(eng, p, e)) != ENG_OK)
		goto fail;
	if ((eng->store = store_new(cfg, &st, &e->err)) == NULL) {
		rc = storage(e, st, "cannot open storage", cfg->directory !=
		    NULL ? cfg->directory : cfg->bucket);
		e->setup = st == STORE_EINVAL || st == STORE_EAUTH;
		goto fail;
	}
	if (p->log != NULL)
		store_set_log(eng->store, p->log, p->log_arg);
	if ((eng->conn = store_conn_new(eng->store)) == NULL) {
		rc = fail(e, ENG_ENOMEM, "out of memory");
		goto fail;
	}
	store_conn_set_cancel(eng->conn, p->cancel);
	if ((eng->dp = calloc(eng->npresets + 1, sizeof(*eng->dp))) == NULL) {
		rc = fail(e, ENG_ENOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < eng->npresets; i++)
		eng->dp[i].name = eng->presets[i]->name;
	eng->params = (struct diff_params){
		.store = eng->store,
		.source = cfg->source,
		.previews = cfg->previews,
		.subpath = eng->subpath.data,
		.presets = eng->dp,
		.npresets = eng->npresets,
		.extensions = cfg->extensions,
		.nextensions = cfg->nextensions,
		.retry_failed = p->retry_failed,
		.shard = p->shard,
		.nshards = p->nshards,
		.ranges = p->ranges,
		.cancel = p->cancel,
	};
	/*
	 * The listings' first pages while the stamps come (no memory: they
	 * come after). Whatever the stamps say, diff_run lists those keys.
	 */
	if (p->lists)
		eng->params.lead = diff_lead_start(&eng->params);
	st = stamps_read(eng->conn, cfg->previews, cfg->source, eng->presets,
	    eng->npresets, &eng->stamps, &e->err);
	if (st != STORE_OK) {
		rc = storage(e, st, "cannot list", cfg->previews);
		goto fail;
	}
	for (i = 0; i < eng->npresets; i++) {
		const struct stamp *s = &eng->stamps.v[i];

		/*
		 * A mistyped source, or two configurations that would
		 * overwrite each other's previews.
		 */
		if (s->other_source && !p->any_source) {
			rc = fail(e, ENG_CONFIG, "refusing to run: preset '%s' "
			    "under '%s' is made from source '%s', not '%s' (its "
			    "stamp says so): a mistyped source, or another "
			    "configuration's preset", eng->presets[i]->name,
			    cfg->previews, s->found_source, cfg->source);
			goto fail;
		}
		eng->def_md5[i] = s->def_md5;
		eng->dp[i].changed = !s->current;
		eng->dp[i].stamp_ms = s->current ? s->mtime_ms : 0;
	}
	/* No folder of failure marks: nothing to list for them. */
	eng->params.no_marks = 1;
	for (i = 0; i < eng->stamps.ndirs; i++)
		if (strcmp(eng->stamps.dirs[i], FAILED_DIR) == 0)
			eng->params.no_marks = 0;
	eng->shard = p->shard;
	eng->nshards = p->nshards;
	return ENG_OK;
fail:
	engine_close(eng);
	return rc;
}

void
engine_close(struct engine *eng)
{
	diff_lead_free(eng->params.lead);
	stamps_release(&eng->stamps);
	store_conn_free(eng->conn);
	store_free(eng->store);
	free(eng->presets);
	free(eng->def_md5);
	free(eng->dp);
	buf_release(&eng->subpath);
	memset(eng, 0, sizeof(*eng));
}

/* Wait out the current second, or until cancelled. */
static void
wait_second(struct engine *eng)
{
	struct timespec	ts = { 1, 50 * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR &&
	    (eng->cancel == NULL || !*eng->cancel))
		;
}

/*
 * A shard other than 0: wait until the stamps of the changed presets are
 * this configuration's (shard 0 writes them), reading them once a second
 * for at most wait_s seconds; then work against them.
 */
static enum eng_status
await_stamps(struct engine *eng, long wait_s, struct eng_error *e)
{
	struct timespec		 t0, now, ts = { 1, 0 };
	struct stamps		 ss;
	enum store_status	 st;
	size_t			 i, pending;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		st = stamps_read(eng->conn, eng->cfg->previews, eng->cfg->source,
		    eng->presets, eng->npresets, &ss, &e->err);
		if (st != STORE_OK) {
			stamps_release(&ss);
			return storage(e, st, "cannot list", eng->cfg->previews);
		}
		/* Shard 0's: this definition, and this source. */
		for (pending = 0, i = 0; i < eng->npresets; i++)
			pending += eng->dp[i].changed &&
			    (ss.v[i].current != 1 || ss.v[i].other_source);
		if (pending == 0) {
			for (i = 0; i < eng->npresets; i++) {
				if (!eng->dp[i].changed)
					continue;
				eng->stamps.v[i] = ss.v[i];
				eng->dp[i].changed = 0;
				eng->dp[i].stamp_ms = ss.v[i].mtime_ms;
			}
			stamps_release(&ss);
			/* Nothing written in the stamps' own second. */
			wait_second(eng);
			return ENG_OK;
		}
		stamps_release(&ss);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= wait_s)
			return fail(e, ENG_STORAGE, "shard %u/%u waited %ld s "
			    "for shard 0 to write the new stamps under '%s': "
			    "run shard 0 too", eng->shard, eng->nshards, wait_s,
			    eng->cfg->previews);
		if (eng->cancel != NULL && *eng->cancel)
			return ENG_INTERRUPTED;
		nanosleep(&ts, NULL);
	}
}

/* A stamp that may be in its second: a shard's, or a few seconds old. */
static int
stamps_recent(const struct engine *eng)
{
	time_t	now = time(NULL);
	size_t	i;

	for (i = 0; i < eng->npresets; i++)
		if (!eng->dp[i].changed && (eng->nshards > 1 ||
		    eng->dp[i].stamp_ms / 1000 >= (int64_t)now - RECENT_S))
			return 1;
	return 0;
}

size_t
engine_stamps_awaited(const struct engine *eng)
{
	size_t	i, n = 0;

	if (eng->nshards <= 1 || eng->shard == 0)
		return 0;
	for (i = 0; i < eng->npresets; i++)
		n += eng->dp[i].changed != 0;
	return n;
}

enum eng_status
engine_write_stamps(struct engine *eng, int missing_only, long wait_s,
    eng_stamp_fn fn, void *arg, struct eng_error *e)
{
	struct buf		 key;
	enum store_status	 st;
	size_t			 i;
	int			 wrote = 0;

	memset(e, 0, sizeof(*e));
	if (engine_stamps_awaited(eng) > 0)
		return await_stamps(eng, wait_s, e);
	for (i = 0; i < eng->npresets; i++) {
		if (!eng->dp[i].changed ||
		    (missing_only && eng->stamps.v[i].exists))
			continue;
		st = stamp_write(eng->conn, eng->cfg->previews,
		    &eng->stamps.v[i], &e->err);
		if (st != STORE_OK) {
			buf_init(&key, BUF_NOMAX);
			(void)key_stamp(&key, eng->cfg->previews,
			    eng->presets[i]->name);
			storage(e, st, "cannot write the stamp", key.data);
			buf_release(&key);
			return st == STORE_ENOMEM ? ENG_ENOMEM : ENG_STORAGE;
		}
		if (fn != NULL)
			fn(arg, eng->presets[i], eng->stamps.v[i].exists);
		wrote = 1;
		/* A stamp missing before is ours now. */
		if (missing_only) {
			eng->stamps.v[i].current = 1;
			eng->stamps.v[i].etag[0] = '\0';
		}
	}
	/*
	 * The other half of "not newer than its stamp is stale" (diff.c):
	 * nothing written in a stamp's second, ours or one another process
	 * (shard 0) may have written a moment ago. Waiting a second after
	 * reading it is enough whatever the clocks say; only the choice to
	 * wait trusts ours, and a wrong one costs a render, not a preview.
	 */
	if (wrote || stamps_recent(eng))
		wait_second(eng);
	return ENG_OK;
}

void
engine_maker(const struct engine *eng, struct guard *guard, struct maker *mk)
{
	const struct config	*cfg = eng->cfg;

	*mk = (struct maker){
		.store = eng->store,
		.presets = eng->presets,
		.def_md5 = eng->def_md5,
		.npresets = eng->npresets,
		.source = cfg->source,
		.previews = cfg->previews,
		.cache_control = cfg->cache_control,
		.acl = cfg->acl,
		.limits = {
			.max_pixels = cfg->max_pixels,
			.max_bytes = cfg->max_bytes,
			.timeout_s = cfg->image_timeout_s,
		},
		.guard = guard,
	};
}

struct guard *
engine_guard(const struct engine *eng, int follow, const struct guard_cbs *cbs)
{
	return guard_new(eng->store, eng->cfg->previews, eng->cfg->source,
	    eng->presets, eng->npresets, &eng->stamps, follow, cbs);
}

enum eng_status
engine_root(struct engine *eng, struct root_item **items, size_t *n,
    struct eng_error *e)
{
	enum store_status	st;

	memset(e, 0, sizeof(*e));
	st = root_classify(eng->conn, eng->cfg->previews, eng->cfg->source,
	    eng->cfg, &eng->stamps, items, n, &e->err);
	return st == STORE_OK ? ENG_OK : storage(e, st, "cannot read the stamps "
	    "under", eng->cfg->previews);
}
