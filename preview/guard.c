/*
 * guard: see guard.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guard.h"
#include "thread.h"

/* Check sooner than the interval once this many keys are suspect. */
#define SUSPECTS_MAX 10000
/* A check HEADs the stamps at once, on at most this many connections. */
#define CHECK_CONNS 8

struct guard {
	struct store			*store;
	/* The checks', used with check_mtx held (so one thread each). */
	struct store_conn		*conns[CHECK_CONNS];
	size_t				 nconns;
	const char			*previews;
	const char			*source;
	const struct preset *const	*presets;
	size_t				 n;
	struct guard_cbs		 cbs;

	pthread_mutex_t			 mtx;
	pthread_cond_t			 cv;
	int				*lost;		/* [n] */
	struct buf			*suspects;	/* [n], NUL-separated */
	uint64_t			 nsuspects;
	size_t				 nlost;
	struct stamp			*known;	/* [n]: the last check's
						   (check_mtx) */

	pthread_t			 thread;
	int				 running;
	int				 stopping;
	int				 last;		/* guard_last */
	long				 interval_ms;
	int				 follow;	/* serve */
	pthread_mutex_t			 check_mtx;	/* one check at a time */
};

struct guard *
guard_new(struct store *store, const char *previews, const char *source,
    const struct preset *const *presets, size_t n, const struct stamps *start,
    int follow, const struct guard_cbs *cbs)
{
	struct guard	*g;
	size_t		 i;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->store = store;
	g->previews = previews;
	g->source = source;
	g->presets = presets;
	g->n = n;
	if (cbs != NULL)
		g->cbs = *cbs;
	g->lost = calloc(n + 1, sizeof(*g->lost));
	g->suspects = calloc(n + 1, sizeof(*g->suspects));
	g->known = calloc(n + 1, sizeof(*g->known));
	if (g->lost == NULL || g->suspects == NULL || g->known == NULL)
		goto fail;
	g->nconns = n < CHECK_CONNS ? n : CHECK_CONNS;
	for (i = 0; i < g->nconns; i++)
		if ((g->conns[i] = store_conn_new(store)) == NULL)
			goto fail;
	for (i = 0; i < n; i++) {
		/* The definitions were read as stamps once: they fit. */
		if (stamp_init(&g->known[i], presets[i], source) != 0)
			goto fail;
		if (start == NULL || i >= start->n)
			continue;
		/* What a check compares: the stamp's ETag and its verdict. */
		memcpy(g->known[i].etag, start->v[i].etag,
		    sizeof(g->known[i].etag));
		memcpy(g->known[i].found_source, start->v[i].found_source,
		    sizeof(g->known[i].found_source));
		g->known[i].exists = start->v[i].exists;
		g->known[i].current = start->v[i].current;
		g->known[i].other_source = start->v[i].other_source;
		if (follow && (start->v[i].current != 1 ||
		    start->v[i].other_source)) {
			g->lost[i] = 1;
			g->nlost++;
		}
	}
	g->follow = follow;
	for (i = 0; i < n; i++)
		buf_init(&g->suspects[i], BUF_NOMAX);
	pthread_mutex_init(&g->mtx, NULL);
	pthread_mutex_init(&g->check_mtx, NULL);
	pthread_cond_init(&g->cv, NULL);
	return g;
fail:
	for (i = 0; i < g->nconns; i++)
		store_conn_free(g->conns[i]);
	free(g->lost);
	free(g->suspects);
	free(g->known);
	free(g);
	return NULL;
}

void
guard_free(struct guard *g)
{
	size_t	i;

	if (g == NULL)
		return;
	for (i = 0; i < g->n; i++)
		buf_release(&g->suspects[i]);
	free(g->suspects);
	free(g->lost);
	free(g->known);
	for (i = 0; i < g->nconns; i++)
		store_conn_free(g->conns[i]);
	pthread_mutex_destroy(&g->mtx);
	pthread_mutex_destroy(&g->check_mtx);
	pthread_cond_destroy(&g->cv);
	free(g);
}

int
guard_may_store(struct guard *g, size_t i)
{
	int	ok;

	pthread_mutex_lock(&g->mtx);
	ok = !g->lost[i];
	pthread_mutex_unlock(&g->mtx);
	return ok;
}

int
guard_stored(struct guard *g, size_t i, const char *key)
{
	int	rc = 0;

	pthread_mutex_lock(&g->mtx);
	if (g->lost[i])
		rc = -1;
	else if (buf_add(&g->suspects[i], key, strlen(key) + 1) == 0)
		g->nsuspects++;
	else
		/* Cannot keep it: treat it as written after a change. */
		rc = -1;
	if (g->nsuspects >= SUSPECTS_MAX)
		pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mtx);
	return rc;
}

struct removal {
	struct guard	*g;
	size_t		 preset;
	const char	**v;
	char		*failed;	/* [n]: not deleted */
	size_t		 n;
};

static void
remove_failed(void *arg, const char *key, enum store_status st,
    const struct store_error *err)
{
	struct removal	*r = arg;
	char		 why[600];
	size_t		 i;

	for (i = 0; i < r->n; i++)
		if (!r->failed[i] && strcmp(r->v[i], key) == 0) {
			r->failed[i] = 1;
			break;
		}
	store_error_text(st, err, why, sizeof(why));
	pthread_mutex_lock(&r->g->mtx);
	if (r->g->cbs.removed != NULL)
		r->g->cbs.removed(r->g->cbs.arg, r->preset, key, why);
	pthread_mutex_unlock(&r->g->mtx);
}

/* Delete the keys of one suspect list, telling cbs of each. */
static void
remove_keys(struct guard *g, size_t preset, const struct buf *keys)
{
	struct store_error	 err;
	struct removal		 r;
	const char		*v[S3_DELETE_MAX];
	char			 failed[S3_DELETE_MAX], why[600];
	enum store_status	 st;
	size_t			 off = 0, n, i;

	while (off < keys->len) {
		for (n = 0; n < S3_DELETE_MAX && off < keys->len; n++) {
			v[n] = keys->data + off;
			off += strlen(v[n]) + 1;
		}
		memset(failed, 0, n);
		r = (struct removal){ g, preset, v, failed, n };
		st = store_delete_many(g->conns[0], v, n, remove_failed, &r,
		    &err);
		if (st != STORE_OK && st != STORE_EPARTIAL)
			store_error_text(st, &err, why, sizeof(why));
		pthread_mutex_lock(&g->mtx);
		for (i = 0; i < n && g->cbs.removed != NULL; i++)
			if (!failed[i])
				g->cbs.removed(g->cbs.arg, preset, v[i],
				    st == STORE_OK || st == STORE_EPARTIAL ?
				    NULL : why);
		pthread_mutex_unlock(&g->mtx);
	}
}

/* One connection's share of a check: the stamps k, k + nconns, ... */
struct checker {
	struct guard		*g;
	size_t			 k;
	struct stamp		*now;	/* [n] */
	enum store_status	*st;	/* [n] */
	struct store_error	*err;	/* [n] */
	pthread_t		 thread;
	int			 started;
};

static void
checker_share(struct checker *ck)
{
	struct guard	*g = ck->g;
	size_t		 i;

	for (i = ck->k; i < g->n; i += g->nconns) {
		ck->now[i] = g->known[i];
		ck->st[i] = stamp_check(g->conns[ck->k], g->previews,
		    g->source, &ck->now[i], &g->known[i], &ck->err[i]);
	}
}

static void *
checker_main(void *arg)
{
	checker_share(arg);
	return NULL;
}

/*
 * HEAD every stamp at once (CHECK_CONNS at a time), a round trip: into
 * now[], with each one's status in sts[] and errs[].
 */
static void
check_stamps(struct guard *g, struct stamp *now, enum store_status *sts,
    struct store_error *errs)
{
	struct checker	ck[CHECK_CONNS];
	size_t		i;

	for (i = 0; i < g->nconns; i++) {
		ck[i] = (struct checker){ .g = g, .k = i, .now = now,
		    .st = sts, .err = errs };
		ck[i].started = i > 0 && thread_start(&ck[i].thread,
		    checker_main, &ck[i]) == 0;
	}
	/* The first share here, and any a thread could not take. */
	for (i = 0; i < g->nconns; i++)
		if (!ck[i].started)
			checker_share(&ck[i]);
	for (i = 0; i < g->nconns; i++)
		if (ck[i].started)
			pthread_join(ck[i].thread, NULL);
}

/* How many keys a suspect list holds. */
static uint64_t
nkeys(const struct buf *b)
{
	uint64_t	n = 0;
	size_t		i;

	for (i = 0; i < b->len; i++)
		n += b->data[i] == '\0';
	return n;
}

enum store_status
guard_check(struct guard *g, struct store_error *err)
{
	struct stamp		*now;
	struct buf		*taken;
	enum store_status	*sts, st = STORE_OK;
	struct store_error	*errs;
	uint64_t		 n;
	size_t			 i;
	int			 lose, ours;

	taken = calloc(g->n + 1, sizeof(*taken));
	now = calloc(g->n + 1, sizeof(*now));
	sts = calloc(g->n + 1, sizeof(*sts));
	errs = calloc(g->n + 1, sizeof(*errs));
	if (taken == NULL || now == NULL || sts == NULL || errs == NULL) {
		st = STORE_ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&g->check_mtx);
	/* What was written before this check's HEADs is what it covers. */
	pthread_mutex_lock(&g->mtx);
	for (i = 0; i < g->n; i++) {
		taken[i] = g->suspects[i];
		buf_init(&g->suspects[i], BUF_NOMAX);
	}
	g->nsuspects = 0;
	pthread_mutex_unlock(&g->mtx);

	check_stamps(g, now, sts, errs);
	for (i = 0; i < g->n; i++) {
		if (sts[i] != STORE_OK) {
			if (st == STORE_OK) {
				st = sts[i];
				*err = errs[i];
			}
			/* Unchecked: suspect still, for the next check. */
			n = nkeys(&taken[i]);
			pthread_mutex_lock(&g->mtx);
			if (buf_add(&taken[i], g->suspects[i].data,
			    g->suspects[i].len) == 0) {
				buf_release(&g->suspects[i]);
				g->suspects[i] = taken[i];
				buf_init(&taken[i], BUF_NOMAX);
				g->nsuspects += n;
			}
			pthread_mutex_unlock(&g->mtx);
			/* No memory to keep them: gone, as for a lost preset. */
			remove_keys(g, i, &taken[i]);
			buf_release(&taken[i]);
			continue;
		}
		/* What this check found is what the next one compares with. */
		g->known[i] = now[i];
		ours = now[i].current == 1 && !now[i].other_source;
		pthread_mutex_lock(&g->mtx);
		lose = !g->lost[i] && !ours;
		if (lose) {
			g->lost[i] = 1;
			g->nlost++;
			/* What was written during this check goes too. */
			if (buf_add(&taken[i], g->suspects[i].data,
			    g->suspects[i].len) == 0)
				buf_reset(&g->suspects[i]);
			if (g->cbs.lost != NULL)
				g->cbs.lost(g->cbs.arg, i, 1);
		} else if (g->follow && g->lost[i] && ours) {
			/* Ours again: what is written from now is newer. */
			g->lost[i] = 0;
			g->nlost--;
			if (g->cbs.lost != NULL)
				g->cbs.lost(g->cbs.arg, i, 0);
		}
		pthread_mutex_unlock(&g->mtx);
		if (lose || g->lost[i])
			remove_keys(g, i, &taken[i]);
		buf_release(&taken[i]);
	}
	pthread_mutex_unlock(&g->check_mtx);
out:
	free(taken);
	free(now);
	free(sts);
	free(errs);
	return st;
}

static void *
guard_main(void *arg)
{
	struct guard		*g = arg;
	struct store_error	 err;
	struct timespec		 until;

	pthread_mutex_lock(&g->mtx);
	while (!g->stopping) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += g->interval_ms / 1000;
		until.tv_nsec += (g->interval_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!g->stopping && !g->last &&
		    g->nsuspects < SUSPECTS_MAX &&
		    pthread_cond_timedwait(&g->cv, &g->mtx, &until) !=
		    ETIMEDOUT)
			;
		if (g->stopping)
			break;
		g->last = 0;
		/* Nothing written, nothing to check; unless following. */
		if (g->nsuspects == 0 && !g->follow)
			continue;
		pthread_mutex_unlock(&g->mtx);
		(void)guard_check(g, &err);
		pthread_mutex_lock(&g->mtx);
	}
	pthread_mutex_unlock(&g->mtx);
	return NULL;
}

int
guard_start(struct guard *g, long interval_ms)
{
	g->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	if (thread_start(&g->thread, guard_main, g) != 0)
		return -1;
	g->running = 1;
	return 0;
}

void
guard_last(struct guard *g)
{
	pthread_mutex_lock(&g->mtx);
	g->last = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mtx);
}

enum store_status
guard_stop(struct guard *g, struct store_error *err)
{
	uint64_t	n;

	if (g->running) {
		pthread_mutex_lock(&g->mtx);
		g->stopping = 1;
		pthread_cond_broadcast(&g->cv);
		pthread_mutex_unlock(&g->mtx);
		pthread_join(g->thread, NULL);
		g->running = 0;
	}
	pthread_mutex_lock(&g->mtx);
	n = g->nsuspects;
	pthread_mutex_unlock(&g->mtx);
	store_error_clear(err);
	return n > 0 ? guard_check(g, err) : STORE_OK;
}

void
guard_stats(struct guard *g, struct s3_stats *sum)
{
	size_t	i;

	for (i = 0; i < g->nconns; i++)
		store_conn_stats(g->conns[i], sum);
}

size_t
guard_nlost(struct guard *g)
{
	size_t	n;

	pthread_mutex_lock(&g->mtx);
	n = g->nlost;
	pthread_mutex_unlock(&g->mtx);
	return n;
}
