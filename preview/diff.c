/*
 * diff: see diff.h for the model.
 *
 * diff_run plans the ranges (plan_ranges), then range threads each take
 * a range and merge it (merge_range): per stream a producer thread runs
 * one listing, from after the range's first key to its end, pushing
 * entries into a ring of RING_SIZE that the merge pops. A full ring
 * blocks its producer, so a listing never runs far ahead of the consumer;
 * when the merge stops early it sets `stop` and wakes every producer,
 * whose callback then returns nonzero and ends its listing.
 *
 * Lock invariants: a stream's ring fields, `done`, `status` and `stop`
 * are read and written only with the stream's mutex held; the run's
 * `mtx` guards the range queue, `stop`, the first failure, the result, and
 * serialises the caller's callback.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "diff.h"
#include "keys.h"

#define RING_SIZE 1024

/* More than a page of S3 holds, so that a page is read to its end. */
#define LEAD_MAX	1001

/*
 * A head start (diff.h): the first page of one stream of range 0, read by
 * a thread of its own on the connection the stream then goes on with.
 * Everything but `thread` is the lead thread's until it is joined, then
 * the joiner's.
 */

struct lead_page {
	pthread_t		 thread;
	int			 running;	/* not joined yet */
	struct store_conn	*conn;		/* until a stream takes it */
	struct buf		 prefix;
	struct diff_entry	*v;		/* [LEAD_MAX], as listed; the
						   stream frees all it pushes
						   but the last */
	size_t			 n;
	int			 more;		/* keys after v[n - 1] */
	int			 nomem;
	enum store_status	 status;
	struct store_error	 err;
};

struct diff_lead {
	struct lead_page	*pages;		/* the source, each preset */
	size_t			 n;
};

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
	struct buf		 after;		/* start after this key, or "" */
	struct buf		 end;		/* stop past this key, or "" */
	int			 past_end;	/* producer: it did */
	int			 is_source;
	struct lead_page	*lead;		/* its first page, or NULL */
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

/* The second a time in milliseconds falls in (times before 1970: none). */
#define SECOND(ms)	((ms) / 1000)

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
	/*
	 * Against the stamp, whole seconds: its time may come from a GET's
	 * Last-Modified (stamp.c), which has no milliseconds.
	 */
	else if (p->changed || SECOND(prev->mtime_ms) <= SECOND(p->stamp_ms))
		s = PS_STALE_PRESET;
	else
		return PS_FRESH;
	/* The same strictness for the mark: it must postdate both. */
	if (mark != NULL && !retry_failed && !p->changed &&
	    mark->mtime_ms > src->mtime_ms &&
	    SECOND(mark->mtime_ms) > SECOND(p->stamp_ms))
		return PS_KNOWN_FAILURE;
	return s;
}

unsigned
diff_shard(const char *rel, unsigned n)
{
	uint64_t	h = UINT64_C(14695981039346656037);

	for (; *rel != '\0'; rel++) {
		h ^= (unsigned char)*rel;
		h *= UINT64_C(1099511628211);
	}
	return n > 1 ? (unsigned)(h % n) : 0;
}

/* A copy of o in e: the key and its ETag in one allocation, neither cut. */
static int
entry_set(struct diff_entry *e, const struct s3_object *o)
{
	const char	*etag = o->etag != NULL ? o->etag : "";
	size_t		 klen = strlen(o->key), elen = strlen(etag);

	if ((e->key = malloc(klen + elen + 2)) == NULL)
		return -1;
	memcpy(e->key, o->key, klen + 1);
	memcpy(e->key + klen + 1, etag, elen + 1);
	e->etag = e->key + klen + 1;
	e->size = o->size;
	e->mtime_ms = o->mtime_ms;
	return 0;
}

static int
stream_push(void *arg, const struct s3_object *o)
{
	struct stream		*s = arg;
	int			 stop;

	/* Past the range: the next range lists it. */
	if (s->end.len > 0 && strcmp(o->key, s->end.data) > 0) {
		s->past_end = 1;
		return 1;
	}
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
		if (entry_set(&s->ring[(s->head + s->count) % RING_SIZE],
		    o) != 0) {
			s->nomem = 1;
			stop = 1;
		} else {
			s->count++;
			pthread_cond_broadcast(&s->cv);
		}
	}
	pthread_mutex_unlock(&s->mtx);
	return stop;
}

/*
 * The listing of a stream that has its first page (the range starts
 * where the page does): that page, then the rest after its last key.
 */
static enum store_status
stream_lead(struct stream *s, struct s3_list_params *lp,
    struct store_error *err)
{
	struct lead_page	*pg = s->lead;
	struct s3_object	 o;
	struct diff_entry	*e;
	size_t			 i;

	if (pg->status != STORE_OK) {
		*err = pg->err;
		return pg->status;
	}
	for (i = 0; i < pg->n; i++) {
		e = &pg->v[i];
		memset(&o, 0, sizeof(o));
		o.key = e->key;
		o.etag = e->etag;
		o.size = e->size;
		o.mtime_ms = e->mtime_ms;
		if (stream_push(s, &o) != 0)
			return STORE_ECANCELLED;
		/* The last one says where the listing goes on. */
		if (i + 1 < pg->n) {
			free(e->key);
			e->key = NULL;
		}
	}
	if (!pg->more)
		return STORE_OK;
	/* (A page may be empty and yet go on: then from the start.) */
	if (pg->n > 0)
		lp->start_after = pg->v[pg->n - 1].key;
	return store_list(s->conn, lp, stream_push, NULL, s, err);
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
	if (s->after.len > 0)
		lp.start_after = s->after.data;
	store_error_clear(&err);
	if (s->lead != NULL)
		st = stream_lead(s, &lp, &err);
	else
		st = store_list(s->conn, &lp, stream_push, NULL, s, &err);
	if (st == STORE_ECANCELLED && s->past_end)
		st = STORE_OK;
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
	buf_release(&s->after);
	buf_release(&s->end);
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
stream_prefix(const struct diff_params *dp, size_t i, struct buf *prefix,
    size_t *strip)
{
	int	rc;

	if (i == 0)
		rc = buf_addstr(prefix, dp->source);
	else if (i <= dp->npresets)
		rc = key_preset_prefix(prefix, dp->previews,
		    dp->presets[i - 1].name);
	else
		rc = key_failed_prefix(prefix, dp->previews,
		    dp->presets[i - 1 - dp->npresets].name);
	*strip = prefix->len;
	return rc != 0 ? -1 : buf_addstr(prefix, dp->subpath);
}

static int
lead_push(void *arg, const struct s3_object *o)
{
	struct lead_page	*pg = arg;

	if (entry_set(&pg->v[pg->n], o) != 0) {
		pg->nomem = 1;
		return 1;
	}
	/* A folder lists on: a page's worth and one is enough. */
	if (++pg->n == LEAD_MAX) {
		pg->more = 1;
		return 1;
	}
	return 0;
}

/* Read page pg. */
static void
lead_read(struct lead_page *pg)
{
	struct s3_list_params	 lp;
	int			 more = 0;

	memset(&lp, 0, sizeof(lp));
	lp.prefix = pg->prefix.data;
	lp.max_pages = 1;
	lp.more = &more;
	pg->status = store_list(pg->conn, &lp, lead_push, NULL, pg, &pg->err);
	if (pg->nomem)
		pg->status = STORE_ENOMEM;
	else if (pg->status == STORE_ECANCELLED && pg->n == LEAD_MAX)
		pg->status = STORE_OK;
	pg->more |= more;
}

static void *
lead_main(void *arg)
{
	sigset_t	all;

	/* Signals are the main thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	lead_read(arg);
	return NULL;
}

/* Set pg up to read the first page of stream i on conn (taken). */
static int
lead_page_init(struct lead_page *pg, const struct diff_params *dp, size_t i,
    struct store_conn *conn)
{
	size_t	strip;

	memset(pg, 0, sizeof(*pg));
	buf_init(&pg->prefix, BUF_NOMAX);
	pg->conn = conn;
	if (conn == NULL || stream_prefix(dp, i, &pg->prefix, &strip) != 0 ||
	    (pg->v = calloc(LEAD_MAX, sizeof(*pg->v))) == NULL)
		return -1;
	store_conn_set_cancel(conn, dp->cancel);
	return 0;
}

struct diff_lead *
diff_lead_start(const struct diff_params *dp)
{
	struct diff_lead	*ld;
	struct lead_page	*pg;
	size_t			 i;

	if ((ld = calloc(1, sizeof(*ld))) == NULL ||
	    (ld->pages = calloc(dp->npresets + 1, sizeof(*ld->pages))) ==
	    NULL) {
		free(ld);
		return NULL;
	}
	for (i = 0; i < dp->npresets + 1; i++, ld->n++) {
		pg = &ld->pages[i];
		if (lead_page_init(pg, dp, i, store_conn_new(dp->store)) != 0 ||
		    pthread_create(&pg->thread, NULL, lead_main, pg) != 0)
			break;
		pg->running = 1;
	}
	if (ld->n < dp->npresets + 1) {
		ld->n++;
		diff_lead_free(ld);
		return NULL;
	}
	return ld;
}

/*
 * Page i of the head start, once read; NULL when there is none, or a
 * stream took it already (a second diff_run lists as if there were none).
 */
static struct lead_page *
lead_page(const struct diff_params *dp, size_t i)
{
	struct lead_page	*pg;

	if (dp->lead == NULL || i >= dp->lead->n)
		return NULL;
	pg = &dp->lead->pages[i];
	if (pg->running) {
		pthread_join(pg->thread, NULL);
		pg->running = 0;
	}
	return pg->conn != NULL ? pg : NULL;
}

static void
lead_page_release(struct lead_page *pg)
{
	size_t	k;

	if (pg->running)
		pthread_join(pg->thread, NULL);
	for (k = 0; pg->v != NULL && k < pg->n; k++)
		free(pg->v[k].key);
	free(pg->v);
	store_conn_free(pg->conn);
	buf_release(&pg->prefix);
}

void
diff_lead_free(struct diff_lead *ld)
{
	size_t	i;

	if (ld == NULL)
		return;
	for (i = 0; i < ld->n; i++)
		lead_page_release(&ld->pages[i]);
	free(ld->pages);
	free(ld);
}

/* A range of rels, (lo, hi]: "" for no bound. */
struct range {
	char	*lo;
	char	*hi;
};

struct run {
	const struct diff_params	*dp;
	diff_cb				 cb;
	void				*arg;
	pthread_mutex_t			 mtx;
	struct range			*ranges;
	size_t				 nranges, next;
	int				 stop;
	enum store_status		 st;	/* the first failure */
	struct store_error		*err;
	struct diff_result		*res;
};

/* Stop every range; keep the first failure. Called with mtx held. */
static void
run_fail(struct run *r, enum store_status st, const struct store_error *err,
    const char *prefix)
{
	r->stop = 1;
	if (r->st != STORE_OK)
		return;
	r->st = st;
	if (err != NULL)
		*r->err = *err;
	if (prefix != NULL)
		snprintf(r->res->failed_prefix, sizeof(r->res->failed_prefix),
		    "%s", prefix);
}

static int
run_stopped(struct run *r)
{
	int	stop;

	pthread_mutex_lock(&r->mtx);
	stop = r->stop;
	pthread_mutex_unlock(&r->mtx);
	return stop || (r->dp->cancel != NULL && *r->dp->cancel);
}

/* One range's merge-join; what it found goes into r->res. */
static void
merge_range(struct run *r, const struct range *rg)
{
	const struct diff_params	*dp = r->dp;
	struct stream			*ss;
	const struct diff_entry		**prev = NULL, **marks = NULL;
	enum pstate			*state = NULL;
	struct diff_item		 item;
	struct diff_result		 res;
	size_t				 np = dp->npresets;
	size_t				 n = dp->no_marks ? np + 1 : 2 * np + 1;
	size_t				 i, started = 0;
	enum store_status		 st = STORE_ENOMEM;
	const char			*min;
	int				 failed = -1, mine, stop;

	memset(&res, 0, sizeof(res));
	if ((ss = calloc(n, sizeof(*ss))) == NULL)
		goto nomem;
	prev = calloc(np + 1, sizeof(*prev));
	marks = calloc(np + 1, sizeof(*marks));
	state = calloc(np + 1, sizeof(*state));
	for (i = 0; i < n; i++) {
		pthread_mutex_init(&ss[i].mtx, NULL);
		pthread_cond_init(&ss[i].cv, NULL);
		buf_init(&ss[i].prefix, BUF_NOMAX);
		buf_init(&ss[i].after, BUF_NOMAX);
		buf_init(&ss[i].end, BUF_NOMAX);
	}
	if (prev == NULL || marks == NULL || state == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		struct stream *s = &ss[i];

		s->cancel = dp->cancel;
		s->is_source = i == 0;
		s->exts = dp->extensions;
		s->nexts = dp->nextensions;
		if (stream_prefix(dp, i, &s->prefix, &s->strip) != 0)
			goto out;
		/* The range's bounds, under this stream's prefix. */
		if (*rg->lo != '\0' && (buf_add(&s->after, s->prefix.data,
		    s->strip) != 0 || buf_addstr(&s->after, rg->lo) != 0))
			goto out;
		if (*rg->hi != '\0' && (buf_add(&s->end, s->prefix.data,
		    s->strip) != 0 || buf_addstr(&s->end, rg->hi) != 0))
			goto out;
		/* Range 0 goes on from the head start: its connection too. */
		if (*rg->lo == '\0' && i <= np &&
		    (s->lead = lead_page(dp, i)) != NULL) {
			s->conn = s->lead->conn;
			s->lead->conn = NULL;
		} else if ((s->conn = store_conn_new(dp->store)) == NULL)
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
		if (run_stopped(r)) {
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
			marks[i] = dp->no_marks ? NULL :
			    stream_at(&ss[1 + np + i], min);
			state[i] = diff_classify(item.source, prev[i],
			    marks[i], &dp->presets[i], dp->retry_failed);
		}
		item.previews = prev;
		item.marks = marks;
		item.state = state;
		/* Another shard's: its presets and orphans go with it. */
		mine = dp->nshards <= 1 ||
		    diff_shard(min, dp->nshards) == dp->shard;
		if (mine) {
			for (i = 0; i < np; i++) {
				res.previews += prev[i] != NULL;
				res.marks += marks[i] != NULL;
			}
			res.originals += item.source != NULL;
			pthread_mutex_lock(&r->mtx);
			stop = r->stop || r->cb(r->arg, &item) != 0;
			if (stop)
				r->stop = 1;
			pthread_mutex_unlock(&r->mtx);
			if (stop) {
				st = STORE_ECANCELLED;
				goto out;
			}
		} else
			res.other_shards++;
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
	for (i = 0; i < started; i++)
		stream_stop(&ss[i]);
	for (i = 0; i < started; i++)
		pthread_join(ss[i].thread, NULL);
	if (ss != NULL)
		res.ignored = ss[0].ignored;
	pthread_mutex_lock(&r->mtx);
	if (failed >= 0)
		run_fail(r, ss[failed].status, &ss[failed].err,
		    ss[failed].prefix.data);
	else if (st == STORE_ENOMEM)
		run_fail(r, st, NULL, NULL);
	r->res->originals += res.originals;
	r->res->ignored += res.ignored;
	r->res->previews += res.previews;
	r->res->marks += res.marks;
	r->res->other_shards += res.other_shards;
	for (i = 0; ss != NULL && i < n; i++)
		if (ss[i].conn != NULL)
			store_conn_stats(ss[i].conn, &r->res->requests);
	pthread_mutex_unlock(&r->mtx);
	for (i = 0; ss != NULL && i < n; i++)
		stream_release(&ss[i]);
	free(ss);
	free(prev);
	free(marks);
	free(state);
	return;
nomem:
	pthread_mutex_lock(&r->mtx);
	run_fail(r, STORE_ENOMEM, NULL, NULL);
	pthread_mutex_unlock(&r->mtx);
}

/* Take ranges and merge them, until none is left (or the run stops). */
static void *
range_main(void *arg)
{
	struct run	*r = arg;
	struct range	*rg;

	for (;;) {
		pthread_mutex_lock(&r->mtx);
		rg = r->next < r->nranges && !r->stop ?
		    &r->ranges[r->next++] : NULL;
		pthread_mutex_unlock(&r->mtx);
		if (rg == NULL)
			break;
		merge_range(r, rg);
	}
	return NULL;
}

/* The same in a thread of its own: signals are the main thread's. */
static void *
range_thread(void *arg)
{
	sigset_t	all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	return range_main(arg);
}

/* The folders one delimiter listing finds under prefix. */
struct folders {
	char	**v;
	size_t	  n;
	size_t	  strip;	/* of the prefix: they are rels */
	int	  nomem;
};

static int
folder_add(struct folders *f, const char *rel)
{
	char	**nv, *p;

	if ((p = strdup(rel)) == NULL ||
	    (nv = reallocarray(f->v, f->n + 1, sizeof(*nv))) == NULL) {
		free(p);
		f->nomem = 1;
		return 1;
	}
	nv[f->n++] = p;
	f->v = nv;
	return 0;
}

static int
folder_cb(void *arg, const char *prefix)
{
	struct folders		*f = arg;
	const unsigned char	*c;

	/*
	 * No boundary where XML 1.0 cannot go: servers echo a listing's
	 * prefix and start-after unescaped, and such an answer would not
	 * parse. The folder joins its neighbour's range.
	 */
	for (c = (const unsigned char *)prefix; *c != '\0'; c++)
		if (*c < 0x20)
			return 0;
	return folder_add(f, prefix + f->strip);
}

static void
folders_free(struct folders *f)
{
	size_t	i;

	for (i = 0; i < f->n; i++)
		free(f->v[i]);
	free(f->v);
	memset(f, 0, sizeof(*f));
}

/* Append the subfolders of folder rel (under the source) to out. */
static enum store_status
list_folders(struct store_conn *c, const struct diff_params *dp,
    const char *rel, struct folders *out, struct store_error *err)
{
	struct s3_list_params	lp;
	struct buf		prefix;
	enum store_status	st;

	buf_init(&prefix, BUF_NOMAX);
	if (buf_addf(&prefix, "%s%s", dp->source, rel) != 0) {
		buf_release(&prefix);
		return STORE_ENOMEM;
	}
	memset(&lp, 0, sizeof(lp));
	lp.prefix = prefix.data;
	lp.delimiter = "/";
	/* A page: the first 1000 names are boundaries enough. */
	lp.max_pages = 1;
	out->strip = strlen(dp->source);
	st = store_list(c, &lp, NULL, folder_cb, out, err);
	buf_release(&prefix);
	return out->nomem ? STORE_ENOMEM : st;
}

/*
 * Whether the source holds fewer keys than a page: then one range. The
 * head start's first page of the source says it, or one read now on c.
 */
static enum store_status
one_page(struct store_conn *c, const struct diff_params *dp, int *small,
    struct store_error *err)
{
	struct lead_page	 now, *pg;
	enum store_status	 st;

	if ((pg = lead_page(dp, 0)) == NULL) {
		pg = &now;
		if (lead_page_init(&now, dp, 0, c) != 0)
			now.status = STORE_ENOMEM;
		else
			lead_read(&now);
	}
	*small = !pg->more;
	if ((st = pg->status) != STORE_OK)
		*err = pg->err;
	if (pg == &now) {
		now.conn = NULL;
		lead_page_release(&now);
	}
	return st;
}

/*
 * Split the source into at most want ranges at folder boundaries. A source
 * that fits in one page is one range (one_page tells). Otherwise delimiter
 * listings of one page each: the first level of folders under
 * source+subpath, then, while they are fewer than want, the next level
 * (three at most; a level that finds no deeper folder ends it). Any
 * sorted subset of the folders is a partition, so a page is enough and
 * memory stays bounded. Folders are grouped in order, as many to each
 * range; a range (lo, hi] ends at the folder prefix where the next one
 * starts, so that every key falls in exactly one range.
 */
static enum store_status
plan_ranges(const struct diff_params *dp, int want, struct range **rangesp,
    size_t *np, struct s3_stats *reqs, struct store_error *err)
{
	struct store_conn	*c;
	struct folders		 cur, next;
	struct range		*v;
	enum store_status	 st = STORE_OK;
	size_t			 i, k, nr;
	int			 depth, small = 0, flat = 0;

	*rangesp = NULL;
	*np = 0;
	memset(&cur, 0, sizeof(cur));
	memset(&next, 0, sizeof(next));
	if ((c = store_conn_new(dp->store)) == NULL)
		return STORE_ENOMEM;
	store_conn_set_cancel(c, dp->cancel);
	if (want > 1 && (st = one_page(c, dp, &small, err)) == STORE_OK &&
	    small)
		want = 1;
	if (st == STORE_OK && want > 1)
		st = list_folders(c, dp, dp->subpath, &cur, err);
	for (depth = 1; st == STORE_OK && want > 1 && depth < 3 &&
	    cur.n > 0 && cur.n < (size_t)want && !flat; depth++) {
		for (i = 0; i < cur.n && st == STORE_OK; i++) {
			k = next.n;
			st = list_folders(c, dp, cur.v[i], &next, err);
			/* A folder with no folders in it stays whole. */
			if (st == STORE_OK && next.n == k &&
			    folder_add(&next, cur.v[i]) != 0)
				st = STORE_ENOMEM;
		}
		/* Nothing deeper: listing the same again gains nothing. */
		flat = next.n == cur.n;
		folders_free(&cur);
		cur = next;
		memset(&next, 0, sizeof(next));
	}
	store_conn_stats(c, reqs);
	store_conn_free(c);
	if (st != STORE_OK) {
		folders_free(&cur);
		folders_free(&next);
		return st;
	}
	nr = cur.n < (size_t)want ? cur.n : (size_t)want;
	if (nr < 1)
		nr = 1;
	if ((v = calloc(nr, sizeof(*v))) == NULL) {
		folders_free(&cur);
		return STORE_ENOMEM;
	}
	for (i = 0; i < nr; i++) {
		/* Range i ends where range i + 1's first folder starts. */
		v[i].lo = strdup(i == 0 ? "" : cur.v[i * cur.n / nr]);
		v[i].hi = strdup(i + 1 == nr ? "" : cur.v[(i + 1) * cur.n / nr]);
		if (v[i].lo == NULL || v[i].hi == NULL)
			st = STORE_ENOMEM;
	}
	folders_free(&cur);
	*rangesp = v;
	*np = nr;
	return st;
}

enum store_status
diff_run(const struct diff_params *dp, diff_cb cb, void *arg,
    struct diff_result *res, struct store_error *err)
{
	struct run		 r;
	struct lead_page	*pg;
	pthread_t		*t = NULL;
	size_t			 i, nt, streams, started = 0;
	int			 want = dp->ranges > 0 ? dp->ranges :
				    DIFF_PARALLEL;

	memset(res, 0, sizeof(*res));
	store_error_clear(err);
	memset(&r, 0, sizeof(r));
	r.dp = dp;
	r.cb = cb;
	r.arg = arg;
	r.err = err;
	r.res = res;
	pthread_mutex_init(&r.mtx, NULL);
	r.st = plan_ranges(dp, want, &r.ranges, &r.nranges, &res->requests,
	    err);
	if (r.st != STORE_OK) {
		snprintf(res->failed_prefix, sizeof(res->failed_prefix),
		    "%s%s", dp->source, dp->subpath);
		goto out;
	}
	res->ranges = r.nranges;
	/* Each range holds a connection per stream: bounded sockets. */
	streams = dp->no_marks ? dp->npresets + 1 : 2 * dp->npresets + 1;
	nt = DIFF_SOCKETS / streams > 0 ? DIFF_SOCKETS / streams : 1;
	if (nt > DIFF_PARALLEL)
		nt = DIFF_PARALLEL;
	if (nt > r.nranges)
		nt = r.nranges;
	if (nt == 1)
		range_main(&r);
	else if ((t = calloc(nt, sizeof(*t))) == NULL)
		r.st = STORE_ENOMEM;
	else {
		for (started = 0; started < nt; started++)
			if (pthread_create(&t[started], NULL, range_thread,
			    &r) != 0)
				break;
		if (started == 0)
			range_main(&r);
		for (i = 0; i < started; i++)
			pthread_join(t[i], NULL);
	}
	if (r.st == STORE_OK && (r.stop || (dp->cancel != NULL &&
	    *dp->cancel)))
		r.st = STORE_ECANCELLED;
out:
	/* The pages no range took: their requests count all the same. */
	for (i = 0; dp->lead != NULL && i < dp->lead->n; i++)
		if ((pg = lead_page(dp, i)) != NULL) {
			store_conn_stats(pg->conn, &res->requests);
			store_conn_free(pg->conn);
			pg->conn = NULL;
		}
	for (i = 0; i < r.nranges; i++) {
		free(r.ranges[i].lo);
		free(r.ranges[i].hi);
	}
	free(r.ranges);
	free(t);
	pthread_mutex_destroy(&r.mtx);
	return r.st;
}
