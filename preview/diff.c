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
 * A thread that finds no range left splits one being merged that turned
 * out much larger than those that ended (split_range): the range's end
 * moves back to a folder after where its listings are, and the rest is
 * cut into ranges for the threads waiting. Its merge stops at the new end
 * and its producers there; a page a producer reads past it is listed
 * again by the next range.
 *
 * Lock invariants: a stream's ring fields, `done`, `status`, `stop`,
 * `end` and `at` are read and written only with the stream's mutex
 * held; the run's `mtx` guards the range queue and counts, each range's
 * `hi`, `ss`, `pos` and flags, `stop`, the first failure, the result, and
 * serialises the caller's callback. Lock order: the run's, then a range's
 * streams' in order. A range's `listed` and `wake_at` are atomic: its
 * producers count every key without the run's lock, and the one that
 * reaches `wake_at` tells the run (range_grew) with its own lock let go.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "diff.h"
#include "keys.h"
#include "thread.h"

#define RING_SIZE 1024

/* More than a page of S3 holds, so that a page is read to its end. */
#define LEAD_MAX	1001

/*
 * Splitting a range merged now (split_range): only one whose listings
 * (all its prefixes together) listed SPLIT_MIN keys or more; SPLIT_RANGES
 * times as many ranges as wanted at most, in all.
 */
#define SPLIT_MIN	500
#define SPLIT_RANGES	4

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

struct run;
struct range;
static int	range_count(struct range *);
static void	range_grew(struct run *, struct range *);

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
	struct buf		 end;		/* stop past this key, or "";
						   a split moves it back */
	struct buf		 at;		/* the last rel listed */
	int			 at_lost;	/* no memory to say it */
	struct run		*run;		/* told as the range grows */
	struct range		*range;

	/* Set before the thread starts, read-only after. */
	pthread_t		 thread;
	struct store_conn	*conn;
	struct buf		 prefix;	/* full listing prefix */
	size_t			 strip;		/* bytes to strip from keys */
	struct buf		 after;		/* start after this key, or "" */
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
	int			 stop, grew = 0;

	pthread_mutex_lock(&s->mtx);
	while (s->count == RING_SIZE && !s->stop &&
	    (s->cancel == NULL || !*s->cancel))
		pthread_cond_wait(&s->cv, &s->mtx);
	stop = s->stop || (s->cancel != NULL && *s->cancel);
	/* Past the range: the next range lists it. */
	if (!stop && s->end.len > 0 && strcmp(o->key, s->end.data) > 0) {
		s->past_end = 1;
		stop = 1;
	}
	if (!stop) {
		grew = range_count(s->range);
		buf_reset(&s->at);
		if (buf_addstr(&s->at, o->key + s->strip) != 0)
			s->at_lost = 1;
		if (s->is_source && !diff_has_extension(o->key + s->strip,
		    s->exts, s->nexts))
			s->ignored++;
		else if (entry_set(&s->ring[(s->head + s->count) % RING_SIZE],
		    o) != 0) {
			s->nomem = 1;
			stop = 1;
		} else {
			s->count++;
			pthread_cond_broadcast(&s->cv);
		}
	}
	pthread_mutex_unlock(&s->mtx);
	if (grew)
		range_grew(s->run, s->range);
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
	buf_release(&s->at);
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
		    thread_start(&pg->thread, lead_main, pg) != 0)
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

/*
 * A range of rels, (lo, hi]: "" for no bound. While it is merged, a split
 * (split_range) may move hi back: the rest becomes ranges of their own.
 */
struct range {
	char		*lo;
	char		*hi;
	/* Under the run's mtx. */
	struct stream	*ss;		/* its streams while merged, or NULL */
	size_t		 nss;
	struct buf	 pos;		/* the last rel merged */
	int		 splitting;	/* a thread looks for where */
	int		 nosplit;	/* there is nowhere: nor will be */
	atomic_uint_fast64_t listed;	/* keys its streams listed */
	atomic_uint_fast64_t wake_at;	/* tell the run at this many */
};

struct run {
	const struct diff_params	*dp;
	diff_cb				 cb;
	void				*arg;
	pthread_mutex_t			 mtx;
	pthread_cond_t			 cv;	/* a range ended or grew */
	struct range			**ranges;	/* [cap] */
	size_t				 nranges, cap, next;
	size_t				 running;	/* ranges merged now */
	size_t				 idle;		/* threads waiting */
	uint64_t			 ended;		/* ranges merged */
	uint64_t			 ended_most;	/* keys the largest
							   of them listed */
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

/* Count a key rg listed; whether the run is to be told now. */
static int
range_count(struct range *rg)
{
	uint_fast64_t	n = atomic_fetch_add(&rg->listed, 1) + 1;

	return n == atomic_load(&rg->wake_at);
}

/*
 * The size of rg when it is worth splitting, else 0: merged now, SPLIT_MIN
 * keys or more, and much larger than the ranges that ended (more than
 * twice the largest: the mean would make every range large next to many
 * tiny ones). Its count goes on from before a split of it: a range that
 * was large stays worth splitting while it has folders left (then
 * nosplit), which the cap on ranges bounds. Called with the run's mtx
 * held.
 */
static uint64_t
split_worth(const struct run *r, const struct range *rg)
{
	uint64_t	n;

	if (rg->ss == NULL || rg->splitting || rg->nosplit ||
	    r->ended == 0 || r->nranges >= r->cap)
		return 0;
	n = atomic_load(&rg->listed);
	return n >= SPLIT_MIN && n > 2 * r->ended_most ? n : 0;
}

/*
 * Tell a thread waiting for work that rg has grown worth splitting.
 * Called by the producer whose key reached rg's wake_at, with no lock
 * held.
 */
static void
range_grew(struct run *r, struct range *rg)
{
	pthread_mutex_lock(&r->mtx);
	if (r->idle > 0 && split_worth(r, rg) > 0)
		pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mtx);
}

/*
 * Item of rg, under the run's lock: 1 to stop (the run stops, or the
 * caller's callback says so), -1 when it is past the range's end (a
 * split moved it back), 0 to go on.
 */
static int
merge_step(struct run *r, struct range *rg, const struct diff_item *item,
    int mine)
{
	int	rc = 0;

	pthread_mutex_lock(&r->mtx);
	if (r->stop || (r->dp->cancel != NULL && *r->dp->cancel))
		rc = 1;
	else if (*rg->hi != '\0' && strcmp(item->rel, rg->hi) > 0)
		rc = -1;
	else if (mine && r->cb(r->arg, item) != 0)
		rc = 1;
	else {
		/* Where a split may start. Not known: then nowhere. */
		buf_reset(&rg->pos);
		if (buf_addstr(&rg->pos, item->rel) != 0)
			rg->nosplit = 1;
	}
	if (rc > 0)
		r->stop = 1;
	pthread_mutex_unlock(&r->mtx);
	return rc;
}

/* One range's merge-join; what it found goes into r->res. */
static void
merge_range(struct run *r, struct range *rg)
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
		buf_init(&ss[i].at, BUF_NOMAX);
	}
	if (prev == NULL || marks == NULL || state == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		struct stream *s = &ss[i];

		s->cancel = dp->cancel;
		s->run = r;
		s->range = rg;
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
	pthread_mutex_lock(&r->mtx);
	rg->ss = ss;
	rg->nss = n;
	buf_reset(&rg->pos);
	if (buf_addstr(&rg->pos, rg->lo) != 0)
		rg->nosplit = 1;
	/* Waiting threads: this one may grow worth splitting. */
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mtx);
	for (started = 0; started < n; started++)
		if (thread_start(&ss[started].thread, stream_main,
		    &ss[started]) != 0)
			goto out;

	for (i = 0; i < n; i++) {
		if (stream_next(&ss[i]) < 0) {
			failed = (int)i;
			goto out;
		}
	}
	for (;;) {
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
		if ((stop = merge_step(r, rg, &item, mine)) > 0) {
			st = STORE_ECANCELLED;
			goto out;
		}
		if (stop < 0)
			break;
		if (mine) {
			for (i = 0; i < np; i++) {
				res.previews += prev[i] != NULL;
				res.marks += marks[i] != NULL;
			}
			res.originals += item.source != NULL;
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
	/* Ended: no split now. */
	pthread_mutex_lock(&r->mtx);
	rg->ss = NULL;
	pthread_mutex_unlock(&r->mtx);
	for (i = 0; i < started; i++)
		stream_stop(&ss[i]);
	for (i = 0; i < started; i++)
		pthread_join(ss[i].thread, NULL);
	if (ss != NULL)
		res.ignored = ss[0].ignored;
	pthread_mutex_lock(&r->mtx);
	r->ended++;
	if (r->ended_most < atomic_load(&rg->listed))
		r->ended_most = atomic_load(&rg->listed);
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

/*
 * Append the subfolders of folder rel (under the source) to out, the
 * first page of them, or of those after rel after when not NULL.
 */
static enum store_status
list_folders(struct store_conn *c, const struct diff_params *dp,
    const char *rel, const char *after, struct folders *out,
    struct store_error *err)
{
	struct s3_list_params	lp;
	struct buf		prefix, start;
	enum store_status	st = STORE_ENOMEM;

	buf_init(&prefix, BUF_NOMAX);
	buf_init(&start, BUF_NOMAX);
	if (buf_addf(&prefix, "%s%s", dp->source, rel) != 0 ||
	    (after != NULL && buf_addf(&start, "%s%s", dp->source,
	    after) != 0))
		goto out;
	memset(&lp, 0, sizeof(lp));
	lp.prefix = prefix.data;
	lp.start_after = after != NULL ? start.data : NULL;
	lp.delimiter = "/";
	/* A page: the first 1000 names are boundaries enough. */
	lp.max_pages = 1;
	out->strip = strlen(dp->source);
	st = store_list(c, &lp, NULL, folder_cb, out, err);
out:
	buf_release(&prefix);
	buf_release(&start);
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

/* A range (lo, hi]; NULL with no memory. */
static struct range *
range_new(const char *lo, const char *hi)
{
	struct range	*rg;

	if ((rg = calloc(1, sizeof(*rg))) == NULL)
		return NULL;
	buf_init(&rg->pos, BUF_NOMAX);
	rg->lo = strdup(lo);
	rg->hi = strdup(hi);
	if (rg->lo == NULL || rg->hi == NULL) {
		free(rg->lo);
		free(rg->hi);
		free(rg);
		return NULL;
	}
	return rg;
}

static void
range_free(struct range *rg)
{
	if (rg == NULL)
		return;
	free(rg->lo);
	free(rg->hi);
	buf_release(&rg->pos);
	free(rg);
}

/*
 * Split the source into at most want ranges at folder boundaries, into
 * r->ranges (room for SPLIT_RANGES times want). A source that fits in one
 * page is one range (one_page tells). Otherwise delimiter listings of one
 * page each: the first level of folders under source+subpath, then, while
 * they are fewer than want, the next level (three at most; a level that
 * finds no deeper folder ends it). Any sorted subset of the folders is a
 * partition, so a page is enough and memory stays bounded. Folders are
 * grouped in order, as many to each range; a range (lo, hi] ends at the
 * folder prefix where the next one starts, so that every key falls in
 * exactly one range. How many keys each holds is not known: split_range
 * splits the one that turns out much larger than the rest.
 */
static enum store_status
plan_ranges(struct run *r, int want, struct store_error *err)
{
	const struct diff_params *dp = r->dp;
	struct store_conn	*c;
	struct folders		 cur, next;
	enum store_status	 st = STORE_OK;
	size_t			 i, k, nr;
	int			 depth, small = 0, flat = 0;

	memset(&cur, 0, sizeof(cur));
	memset(&next, 0, sizeof(next));
	if ((c = store_conn_new(dp->store)) == NULL)
		return STORE_ENOMEM;
	store_conn_set_cancel(c, dp->cancel);
	if (want > 1 && (st = one_page(c, dp, &small, err)) == STORE_OK &&
	    small)
		want = 1;
	if (st == STORE_OK && want > 1)
		st = list_folders(c, dp, dp->subpath, NULL, &cur, err);
	for (depth = 1; st == STORE_OK && want > 1 && depth < 3 &&
	    cur.n > 0 && cur.n < (size_t)want && !flat; depth++) {
		for (i = 0; i < cur.n && st == STORE_OK; i++) {
			k = next.n;
			st = list_folders(c, dp, cur.v[i], NULL, &next, err);
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
	store_conn_stats(c, &r->res->requests);
	store_conn_free(c);
	nr = cur.n < (size_t)want ? cur.n : (size_t)want;
	if (nr < 1)
		nr = 1;
	r->cap = (size_t)want * SPLIT_RANGES;
	if (st == STORE_OK &&
	    (r->ranges = calloc(r->cap, sizeof(*r->ranges))) == NULL)
		st = STORE_ENOMEM;
	for (i = 0; st == STORE_OK && i < nr; i++, r->nranges++) {
		/* Range i ends where range i + 1's first folder starts. */
		r->ranges[i] = range_new(i == 0 ? "" : cur.v[i * cur.n / nr],
		    i + 1 == nr ? "" : cur.v[(i + 1) * cur.n / nr]);
		if (r->ranges[i] == NULL)
			st = STORE_ENOMEM;
	}
	folders_free(&cur);
	folders_free(&next);
	return st;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Where the rest of a range, (pos, hi], may be split: its folders, sorted.
 * Delimiter listings of a page each after pos: under the subpath, then
 * under each folder of pos below it, three levels at most, until want
 * are found. The deeper ones are inside the folder being merged, which
 * is often the large one; the next split of it looks there.
 */
static enum store_status
split_points(struct store_conn *c, const struct diff_params *dp,
    const char *pos, const char *hi, size_t want, struct folders *out,
    struct store_error *err)
{
	struct folders		 f;
	enum store_status	 st = STORE_OK;
	const char		*slash;
	char			*level;
	size_t			 len = strlen(dp->subpath), i;
	int			 depth;

	/* (A range's keys are all under the subpath.) */
	if (strncmp(pos, dp->subpath, len) != 0)
		return STORE_OK;
	for (depth = 0; st == STORE_OK && depth < 3 && out->n < want;
	    depth++) {
		memset(&f, 0, sizeof(f));
		if ((level = strndup(pos, len)) == NULL)
			return STORE_ENOMEM;
		st = list_folders(c, dp, level, pos, &f, err);
		free(level);
		for (i = 0; st == STORE_OK && i < f.n; i++)
			if (strcmp(f.v[i], pos) > 0 &&
			    (*hi == '\0' || strcmp(f.v[i], hi) < 0) &&
			    folder_add(out, f.v[i]) != 0)
				st = STORE_ENOMEM;
		folders_free(&f);
		if ((slash = strchr(pos + len, '/')) == NULL)
			break;
		len = (size_t)(slash - pos) + 1;
	}
	if (st == STORE_OK && out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), cmp_str);
	return st;
}

/* Lock or unlock every stream of rg, in order (after the run's mtx). */
static void
range_lock(const struct range *rg, int lock)
{
	size_t	i;

	for (i = 0; i < rg->nss; i++)
		if (lock)
			pthread_mutex_lock(&rg->ss[i].mtx);
		else
			pthread_mutex_unlock(&rg->ss[i].mtx);
}

/*
 * Where a split of rg may start: past what its merge took and what each
 * of its streams listed (ignored keys too), so that no range lists again
 * what this one did. NULL when not known. Called with the run's mtx and
 * rg's streams' held.
 */
static const char *
range_start(const struct range *rg)
{
	const char	*far = rg->pos.data;
	size_t		 i;

	for (i = 0; i < rg->nss; i++) {
		if (rg->ss[i].at_lost)
			return NULL;
		if (strcmp(rg->ss[i].at.data, far) > 0)
			far = rg->ss[i].at.data;
	}
	return far;
}

/*
 * Cut rg, merged now, at folders of u after where it is (range_start): it
 * keeps the first piece, the others join the queue, one for each thread
 * waiting and one for this one. Its streams are held from where it is
 * to their new end, so that none lists past it meanwhile. Called with
 * the run's mtx held; -1 when it cannot be cut.
 */
static int
split_apply(struct run *r, struct range *rg, const struct folders *u)
{
	struct range	*nv[DIFF_PARALLEL];
	struct buf	*ends = NULL, tmp;
	char *const	*v = u->v;
	const char	*start;
	char		*hi = NULL;
	size_t		 n = u->n, m, j, i;
	int		 rc = -1;

	if (r->stop || rg->ss == NULL)
		return -1;
	memset(nv, 0, sizeof(nv));
	m = 0;
	range_lock(rg, 1);
	if ((start = range_start(rg)) == NULL)
		goto out;
	while (n > 0 && strcmp(*v, start) <= 0) {
		v++;
		n--;
	}
	m = r->idle + 1;
	if (m > n)
		m = n;
	if (m > r->cap - r->nranges)
		m = r->cap - r->nranges;
	if (m > DIFF_PARALLEL)
		m = DIFF_PARALLEL;
	if (m == 0)
		goto out;
	/* Piece j of m + 1 starts at folder j * n / (m + 1). */
	for (j = 1; j <= m; j++)
		if ((nv[j - 1] = range_new(v[j * n / (m + 1)], j == m ?
		    rg->hi : v[(j + 1) * n / (m + 1)])) == NULL)
			goto out;
	if ((hi = strdup(v[n / (m + 1)])) == NULL ||
	    (ends = calloc(rg->nss, sizeof(*ends))) == NULL)
		goto out;
	for (i = 0; i < rg->nss; i++) {
		buf_init(&ends[i], BUF_NOMAX);
		if (buf_add(&ends[i], rg->ss[i].prefix.data,
		    rg->ss[i].strip) != 0 || buf_addstr(&ends[i], hi) != 0)
			goto out;
	}
	for (i = 0; i < rg->nss; i++) {
		tmp = rg->ss[i].end;
		rg->ss[i].end = ends[i];
		ends[i] = tmp;
	}
	free(rg->hi);
	rg->hi = hi;
	hi = NULL;
	for (j = 0; j < m; j++) {
		r->ranges[r->nranges++] = nv[j];
		nv[j] = NULL;
	}
	r->res->splits++;
	pthread_cond_broadcast(&r->cv);
	rc = 0;
out:
	range_lock(rg, 0);
	for (i = 0; ends != NULL && i < rg->nss; i++)
		buf_release(&ends[i]);
	free(ends);
	free(hi);
	for (j = 0; j < m; j++)
		range_free(nv[j]);
	return rc;
}

/*
 * Split rg, which another thread merges, where the rest of it has
 * folders (split_points, read on a connection of its own with the lock
 * let go). Called with the run's mtx held. A range that cannot be split
 * is not tried again: its rest only shrinks.
 */
static void
split_range(struct run *r, struct range *rg)
{
	struct store_conn	*c;
	struct folders		 u;
	struct store_error	 err;
	const char		*start;
	char			*pos, *hi;
	size_t			 want = r->idle + 1;
	int			 ok;

	rg->splitting = 1;
	range_lock(rg, 1);
	pos = (start = range_start(rg)) != NULL ? strdup(start) : NULL;
	range_lock(rg, 0);
	hi = strdup(rg->hi);
	pthread_mutex_unlock(&r->mtx);
	memset(&u, 0, sizeof(u));
	if ((c = store_conn_new(r->dp->store)) != NULL)
		store_conn_set_cancel(c, r->dp->cancel);
	/* A failed listing only loses the split: the range lists on. */
	ok = pos != NULL && hi != NULL && c != NULL &&
	    split_points(c, r->dp, pos, hi, want, &u, &err) == STORE_OK;
	free(pos);
	free(hi);
	pthread_mutex_lock(&r->mtx);
	if (c != NULL)
		store_conn_stats(c, &r->res->requests);
	store_conn_free(c);
	rg->splitting = 0;
	if (!ok || split_apply(r, rg, &u) != 0)
		rg->nosplit = 1;
	folders_free(&u);
}

/*
 * The range most worth splitting (split_worth), or NULL. With wait, set
 * when each range merged now is to wake this thread first: a producer
 * may count past it meanwhile, so look again after. Under mtx.
 */
static struct range *
split_victim(struct run *r, int wait)
{
	struct range	*best = NULL, *rg;
	uint64_t	 n, most = 0;
	size_t		 i;

	for (i = 0; i < r->nranges; i++) {
		rg = r->ranges[i];
		if (wait && rg->ss != NULL && r->ended > 0)
			atomic_store(&rg->wake_at, SPLIT_MIN >
			    2 * r->ended_most + 1 ? SPLIT_MIN :
			    2 * r->ended_most + 1);
		if ((n = split_worth(r, rg)) > most) {
			most = n;
			best = rg;
		}
	}
	return best;
}

/*
 * Take ranges and merge them until none is left (or the run stops). A
 * thread that finds none left splits the range most worth it, or waits
 * for one to be, while any is merged.
 */
static void *
range_main(void *arg)
{
	struct run		*r = arg;
	struct range		*rg;

	pthread_mutex_lock(&r->mtx);
	while (!r->stop && (r->dp->cancel == NULL || !*r->dp->cancel)) {
		if (r->next < r->nranges) {
			rg = r->ranges[r->next++];
			r->running++;
			pthread_mutex_unlock(&r->mtx);
			merge_range(r, rg);
			pthread_mutex_lock(&r->mtx);
			r->running--;
			pthread_cond_broadcast(&r->cv);
		} else if (r->running == 0)
			break;
		else if ((rg = split_victim(r, 0)) != NULL ||
		    (rg = split_victim(r, 1)) != NULL)
			split_range(r, rg);
		else {
			r->idle++;
			pthread_cond_wait(&r->cv, &r->mtx);
			r->idle--;
		}
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mtx);
	return NULL;
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
	pthread_cond_init(&r.cv, NULL);
	if ((r.st = plan_ranges(&r, want, err)) != STORE_OK) {
		snprintf(res->failed_prefix, sizeof(res->failed_prefix),
		    "%s%s", dp->source, dp->subpath);
		goto out;
	}
	/*
	 * A thread for each range wanted, not only those planned: a range
	 * split gives them work. Each holds a connection per stream:
	 * bounded sockets.
	 */
	streams = dp->no_marks ? dp->npresets + 1 : 2 * dp->npresets + 1;
	nt = DIFF_SOCKETS / streams > 0 ? DIFF_SOCKETS / streams : 1;
	if (nt > DIFF_PARALLEL)
		nt = DIFF_PARALLEL;
	if (nt > (size_t)want)
		nt = (size_t)want;
	if (r.nranges == 1)
		nt = 1;
	if (nt == 1)
		range_main(&r);
	else if ((t = calloc(nt, sizeof(*t))) == NULL)
		r.st = STORE_ENOMEM;
	else {
		for (started = 0; started < nt; started++)
			if (thread_start(&t[started], range_main, &r) != 0)
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
	res->ranges = r.nranges;
	/* The pages no range took: their requests count all the same. */
	for (i = 0; dp->lead != NULL && i < dp->lead->n; i++)
		if ((pg = lead_page(dp, i)) != NULL) {
			store_conn_stats(pg->conn, &res->requests);
			store_conn_free(pg->conn);
			pg->conn = NULL;
		}
	for (i = 0; i < r.nranges; i++)
		range_free(r.ranges[i]);
	free(r.ranges);
	free(t);
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.mtx);
	return r.st;
}
