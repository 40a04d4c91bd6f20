/*
 * diff: see diff.h for the model.
 *
 * Each stream is a producer thread running one listing, pushing entries
 * into a ring of RING_SIZE. The merge (the caller's thread) pops. A full
 * ring blocks its producer, so a listing never runs far ahead of the
 * consumer; when the merge stops early it sets `stop` and wakes every
 * producer, whose callback then returns nonzero and ends its listing.
 * Lock invariant: ring fields, `done`, `status` and `stop` are read and
 * written only with the stream's mutex held.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "diff.h"
#include "keys.h"

#define RING_SIZE 1024

struct stream {
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	struct diff_entry	 ring[RING_SIZE];
	size_t			 head, count;
	int			 done;
	int			 stop;
	int			 nomem;
	enum store_status	 status;
	struct store_error	 err;

	/* Set before the thread starts, read-only after. */
	pthread_t		 thread;
	struct store_conn	*conn;
	struct buf		 prefix;	/* full listing prefix */
	size_t			 strip;		/* bytes to strip from keys */
	int			 is_source;
	char *const		*exts;
	size_t			 nexts;
	volatile sig_atomic_t	*cancel;

	uint64_t		 ignored;	/* producer only, read after join */

	/* Consumer side: the current head, owned by the merge. */
	struct diff_entry	 cur;
	int			 has_cur;
};

static const char *const pstate_names[PS_COUNT] = {
	"none", "missing", "stale-original", "stale-preset", "fresh", "orphan",
	"known-failure"
};

const char *
pstate_name(enum pstate s)
{
	return (unsigned)s < PS_COUNT ? pstate_names[s] : "?";
}

int
pstate_todo(enum pstate s, int force)
{
	return s == PS_MISSING || s == PS_STALE_ORIGINAL ||
	    s == PS_STALE_PRESET || (s == PS_FRESH && force);
}

int
diff_has_extension(const char *key, char *const *exts, size_t n)
{
	const char	*dot, *slash;
	size_t		 i;

	dot = strrchr(key, '.');
	slash = strrchr(key, '/');
	if (dot == NULL || (slash != NULL && dot < slash) || dot[1] == '\0')
		return 0;
	for (i = 0; i < n; i++)
		if (strcasecmp(dot + 1, exts[i]) == 0)
			return 1;
	return 0;
}

enum pstate
diff_classify(const struct diff_entry *src, const struct diff_entry *prev,
    const struct diff_entry *mark, const struct diff_preset *p,
    int retry_failed)
{
	enum pstate	s;

	if (src == NULL)
		return prev != NULL ? PS_ORPHAN : PS_NONE;
	if (prev == NULL)
		s = PS_MISSING;
	/*
	 * A preview must be strictly newer than its original: S3 lists
	 * LastModified to the second, and an original replaced in the second
	 * its preview was written must not be missed. The cost is one more
	 * render of a preview made in its original's second.
	 */
	else if (src->mtime_ms >= prev->mtime_ms)
		s = PS_STALE_ORIGINAL;
	else if (p->changed || prev->mtime_ms <= p->stamp_ms)
		s = PS_STALE_PRESET;
	else
		return PS_FRESH;
	/* The same strictness for the mark: it must postdate both. */
	if (mark != NULL && !retry_failed && !p->changed &&
	    mark->mtime_ms > src->mtime_ms && mark->mtime_ms > p->stamp_ms)
		return PS_KNOWN_FAILURE;
	return s;
}

static int
stream_push(void *arg, const struct s3_object *o)
{
	struct stream		*s = arg;
	struct diff_entry	*e;
	const char		*etag = o->etag != NULL ? o->etag : "";
	size_t			 klen, elen;
	int			 stop;

	if (s->is_source && !diff_has_extension(o->key + s->strip, s->exts,
	    s->nexts)) {
		s->ignored++;
		return 0;
	}
	pthread_mutex_lock(&s->mtx);
	while (s->count == RING_SIZE && !s->stop &&
	    (s->cancel == NULL || !*s->cancel))
		pthread_cond_wait(&s->cv, &s->mtx);
	stop = s->stop || (s->cancel != NULL && *s->cancel);
	if (!stop) {
		e = &s->ring[(s->head + s->count) % RING_SIZE];
		/* The key and its ETag in one allocation, neither cut. */
		klen = strlen(o->key);
		elen = strlen(etag);
		if ((e->key = malloc(klen + elen + 2)) == NULL) {
			s->nomem = 1;
			stop = 1;
		} else {
			memcpy(e->key, o->key, klen + 1);
			memcpy(e->key + klen + 1, etag, elen + 1);
			e->etag = e->key + klen + 1;
			e->size = o->size;
			e->mtime_ms = o->mtime_ms;
			s->count++;
			pthread_cond_broadcast(&s->cv);
		}
	}
	pthread_mutex_unlock(&s->mtx);
	return stop;
}

static void *
stream_main(void *arg)
{
	struct stream		*s = arg;
	struct s3_list_params	 lp;
	struct store_error	 err;
	enum store_status	 st;
	sigset_t		 all;

	/* Signals are the main thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	memset(&lp, 0, sizeof(lp));
	lp.prefix = s->prefix.data;
	store_error_clear(&err);
	st = store_list(s->conn, &lp, stream_push, NULL, s, &err);
	pthread_mutex_lock(&s->mtx);
	s->done = 1;
	s->status = s->nomem ? STORE_ENOMEM : st;
	s->err = err;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mtx);
	return NULL;
}

/*
 * Make s->cur the next entry. Returns 1 with an entry, 0 at the end of the
 * stream, -1 when the listing failed.
 */
static int
stream_next(struct stream *s)
{
	int	rc;

	if (s->has_cur) {
		free(s->cur.key);
		s->has_cur = 0;
	}
	pthread_mutex_lock(&s->mtx);
	while (s->count == 0 && !s->done)
		pthread_cond_wait(&s->cv, &s->mtx);
	if (s->count > 0) {
		s->cur = s->ring[s->head];
		s->head = (s->head + 1) % RING_SIZE;
		s->count--;
		s->has_cur = 1;
		pthread_cond_broadcast(&s->cv);
		rc = 1;
	} else
		rc = s->status == STORE_OK ? 0 : -1;
	pthread_mutex_unlock(&s->mtx);
	return rc;
}

static void
stream_stop(struct stream *s)
{
	pthread_mutex_lock(&s->mtx);
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mtx);
}

static void
stream_release(struct stream *s)
{
	size_t	i;

	for (i = 0; i < s->count; i++)
		free(s->ring[(s->head + i) % RING_SIZE].key);
	if (s->has_cur)
		free(s->cur.key);
	buf_release(&s->prefix);
	store_conn_free(s->conn);
	pthread_mutex_destroy(&s->mtx);
	pthread_cond_destroy(&s->cv);
}

static const char *
stream_rel(const struct stream *s)
{
	return s->cur.key + s->strip;
}

/* The entry of s when it is at rel, else NULL. */
static const struct diff_entry *
stream_at(const struct stream *s, const char *rel)
{
	return s->has_cur && strcmp(stream_rel(s), rel) == 0 ? &s->cur : NULL;
}

/*
 * Stream 0 is the source, stream 1 + i preset i's previews, stream
 * 1 + P + i its failure marks: its prefix, and how much of each key is
 * the prefix to cut.
 */
static int
stream_prefix(const struct diff_params *dp, size_t i, struct stream *s)
{
	int	rc;

	if (i == 0)
		rc = buf_addstr(&s->prefix, dp->source);
	else if (i <= dp->npresets)
		rc = key_preset_prefix(&s->prefix, dp->previews,
		    dp->presets[i - 1].name);
	else
		rc = key_failed_prefix(&s->prefix, dp->previews,
		    dp->presets[i - 1 - dp->npresets].name);
	s->strip = s->prefix.len;
	return rc != 0 ? -1 : buf_addstr(&s->prefix, dp->subpath);
}

enum store_status
diff_run(const struct diff_params *dp, diff_cb cb, void *arg,
    struct diff_result *res, struct store_error *err)
{
	struct stream			*ss;
	const struct diff_entry		**prev = NULL, **marks = NULL;
	enum pstate			*state = NULL;
	struct diff_item		 item;
	size_t				 np = dp->npresets, n = 2 * np + 1;
	size_t				 i, started = 0;
	enum store_status		 st = STORE_ENOMEM;
	const char			*min;
	int				 failed = -1;

	memset(res, 0, sizeof(*res));
	store_error_clear(err);
	if ((ss = calloc(n, sizeof(*ss))) == NULL)
		return STORE_ENOMEM;
	prev = calloc(np + 1, sizeof(*prev));
	marks = calloc(np + 1, sizeof(*marks));
	state = calloc(np + 1, sizeof(*state));
	for (i = 0; i < n; i++) {
		pthread_mutex_init(&ss[i].mtx, NULL);
		pthread_cond_init(&ss[i].cv, NULL);
		buf_init(&ss[i].prefix, BUF_NOMAX);
	}
	if (prev == NULL || marks == NULL || state == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		struct stream *s = &ss[i];

		s->cancel = dp->cancel;
		s->is_source = i == 0;
		s->exts = dp->extensions;
		s->nexts = dp->nextensions;
		if (stream_prefix(dp, i, s) != 0 ||
		    (s->conn = store_conn_new(dp->store)) == NULL)
			goto out;
		store_conn_set_cancel(s->conn, dp->cancel);
	}
	for (started = 0; started < n; started++)
		if (pthread_create(&ss[started].thread, NULL, stream_main,
		    &ss[started]) != 0)
			goto out;

	for (i = 0; i < n; i++) {
		if (stream_next(&ss[i]) < 0) {
			failed = (int)i;
			goto out;
		}
	}
	for (;;) {
		if (dp->cancel != NULL && *dp->cancel) {
			st = STORE_ECANCELLED;
			goto out;
		}
		min = NULL;
		for (i = 0; i < n; i++)
			if (ss[i].has_cur && (min == NULL ||
			    strcmp(stream_rel(&ss[i]), min) < 0))
				min = stream_rel(&ss[i]);
		if (min == NULL)
			break;
		item.rel = min;
		item.source = stream_at(&ss[0], min);
		for (i = 0; i < np; i++) {
			prev[i] = stream_at(&ss[1 + i], min);
			marks[i] = stream_at(&ss[1 + np + i], min);
			state[i] = diff_classify(item.source, prev[i],
			    marks[i], &dp->presets[i], dp->retry_failed);
			if (prev[i] != NULL)
				res->previews++;
			if (marks[i] != NULL)
				res->marks++;
		}
		if (item.source != NULL)
			res->originals++;
		item.previews = prev;
		item.marks = marks;
		item.state = state;
		if (cb(arg, &item) != 0) {
			st = STORE_ECANCELLED;
			goto out;
		}
		/* Advance every stream that was at min. */
		for (i = 0; i < n; i++) {
			int at = i == 0 ? item.source != NULL : i <= np ?
			    prev[i - 1] != NULL : marks[i - 1 - np] != NULL;

			if (at && stream_next(&ss[i]) < 0) {
				failed = (int)i;
				goto out;
			}
		}
	}
	st = STORE_OK;
out:
	if (failed >= 0) {
		st = ss[failed].status;
		*err = ss[failed].err;
		snprintf(res->failed_prefix, sizeof(res->failed_prefix), "%s",
		    ss[failed].prefix.data);
	}
	for (i = 0; i < started; i++)
		stream_stop(&ss[i]);
	for (i = 0; i < started; i++)
		pthread_join(ss[i].thread, NULL);
	res->ignored = ss[0].ignored;
	for (i = 0; i < n; i++) {
		if (ss[i].conn != NULL)
			store_conn_stats(ss[i].conn, &res->requests);
		stream_release(&ss[i]);
	}
	free(ss);
	free(prev);
	free(marks);
	free(state);
	return st;
}
