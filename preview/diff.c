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

#define RING_SIZE 1024

struct stream {
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	struct diff_entry	 ring[RING_SIZE];
	size_t			 head, count;
	int			 done;
	int			 stop;
	enum s3_status		 status;
	struct s3_error		 err;

	/* Set before the thread starts, read-only after. */
	pthread_t		 thread;
	struct store_conn	*conn;
	char			*prefix;	/* full listing prefix */
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
	"none", "missing", "stale-original", "stale-preset", "fresh", "orphan"
};

const char *
pstate_name(enum pstate s)
{
	return (unsigned)s < PS_COUNT ? pstate_names[s] : "?";
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

static int
stream_push(void *arg, const struct s3_object *o)
{
	struct stream		*s = arg;
	struct diff_entry	*e;
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
		if ((e->key = strdup(o->key)) == NULL)
			stop = 1;
		else {
			e->size = o->size;
			e->mtime_ms = o->mtime_ms;
			snprintf(e->etag, sizeof(e->etag), "%s",
			    o->etag != NULL ? o->etag : "");
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
	struct s3_error		 err;
	enum s3_status		 st;
	sigset_t		 all;

	/* Signals are the main thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	memset(&lp, 0, sizeof(lp));
	lp.prefix = s->prefix;
	st = store_list(s->conn, &lp, stream_push, NULL, s, &err);
	pthread_mutex_lock(&s->mtx);
	s->done = 1;
	s->status = st;
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
		rc = s->status == S3_OK ? 0 : -1;
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
	free(s->prefix);
	store_conn_free(s->conn);
	pthread_mutex_destroy(&s->mtx);
	pthread_cond_destroy(&s->cv);
}

static const char *
stream_rel(const struct stream *s)
{
	return s->cur.key + s->strip;
}

static enum pstate
classify(const struct diff_entry *src, const struct diff_entry *prev,
    const struct diff_preset *p)
{
	if (prev == NULL)
		return PS_MISSING;
	/*
	 * A preview must be strictly newer than its original: S3 lists
	 * LastModified to the second, and an original replaced in the second
	 * its preview was written must not be missed.  The cost is one more
	 * render of a preview made in its original's second.
	 */
	if (src->mtime_ms >= prev->mtime_ms)
		return PS_STALE_ORIGINAL;
	if (p->changed || prev->mtime_ms <= p->stamp_ms)
		return PS_STALE_PRESET;
	return PS_FRESH;
}

static char *
join3(const char *a, const char *b, const char *c)
{
	size_t	 la = strlen(a), lb = strlen(b), lc = strlen(c);
	char	*p;

	if ((p = malloc(la + lb + lc + 1)) == NULL)
		return NULL;
	memcpy(p, a, la);
	memcpy(p + la, b, lb);
	memcpy(p + la + lb, c, lc + 1);
	return p;
}

enum s3_status
diff_run(const struct diff_params *dp, diff_cb cb, void *arg,
    struct diff_result *res, struct s3_error *err)
{
	struct stream			*ss;
	const struct diff_entry		**prev = NULL;
	enum pstate			*state = NULL;
	struct diff_item		 item;
	size_t				 n = dp->npresets + 1, i, started = 0;
	enum s3_status			 st = S3_ENOMEM;
	const char			*min;
	char				*pp;
	int				 rc, failed = -1;

	memset(res, 0, sizeof(*res));
	s3_error_clear(err);
	if ((ss = calloc(n, sizeof(*ss))) == NULL)
		return S3_ENOMEM;
	prev = calloc(dp->npresets + 1, sizeof(*prev));
	state = calloc(dp->npresets + 1, sizeof(*state));
	if (prev == NULL || state == NULL)
		goto out;

	for (i = 0; i < n; i++) {
		pthread_mutex_init(&ss[i].mtx, NULL);
		pthread_cond_init(&ss[i].cv, NULL);
	}
	/* Stream 0 is the source, stream i+1 preset i. */
	for (i = 0; i < n; i++) {
		struct stream *s = &ss[i];

		s->cancel = dp->cancel;
		s->is_source = i == 0;
		s->exts = dp->extensions;
		s->nexts = dp->nextensions;
		if (i == 0) {
			s->prefix = join3(dp->source, dp->subpath, "");
			s->strip = strlen(dp->source);
		} else {
			if ((pp = join3(dp->previews, dp->presets[i - 1].name,
			    "/")) == NULL)
				goto out;
			s->strip = strlen(pp);
			s->prefix = join3(pp, dp->subpath, "");
			free(pp);
		}
		if (s->prefix == NULL ||
		    (s->conn = store_conn_new(dp->store)) == NULL)
			goto out;
		store_conn_set_cancel(s->conn, dp->cancel);
	}
	for (started = 0; started < n; started++)
		if (pthread_create(&ss[started].thread, NULL, stream_main,
		    &ss[started]) != 0)
			goto out;

	for (i = 0; i < n; i++) {
		if ((rc = stream_next(&ss[i])) < 0) {
			failed = (int)i;
			goto out;
		}
	}
	for (;;) {
		if (dp->cancel != NULL && *dp->cancel) {
			st = S3_ECANCELLED;
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
		item.source = ss[0].has_cur && strcmp(stream_rel(&ss[0]), min)
		    == 0 ? &ss[0].cur : NULL;
		for (i = 0; i < dp->npresets; i++) {
			struct stream *s = &ss[i + 1];

			prev[i] = s->has_cur && strcmp(stream_rel(s), min) == 0 ?
			    &s->cur : NULL;
			if (item.source != NULL)
				state[i] = classify(item.source, prev[i],
				    &dp->presets[i]);
			else
				state[i] = prev[i] != NULL ? PS_ORPHAN : PS_NONE;
			if (prev[i] != NULL)
				res->previews++;
		}
		if (item.source != NULL)
			res->originals++;
		item.previews = prev;
		item.state = state;
		if (cb(arg, &item) != 0) {
			st = S3_ECANCELLED;
			goto out;
		}
		/* Advance every stream that was at min. */
		for (i = 0; i < n; i++) {
			int at = i == 0 ? item.source != NULL :
			    prev[i - 1] != NULL;

			if (at && stream_next(&ss[i]) < 0) {
				failed = (int)i;
				goto out;
			}
		}
	}
	st = S3_OK;
out:
	if (failed >= 0) {
		st = ss[failed].status;
		*err = ss[failed].err;
		snprintf(res->failed_prefix, sizeof(res->failed_prefix), "%s",
		    ss[failed].prefix);
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
	free(state);
	return st;
}
