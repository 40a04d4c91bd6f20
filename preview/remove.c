/*
 * remove: see remove.h. Lock invariant: `mtx` guards the spool's read
 * position, the result counters, and calls of the error callback.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "remove.h"
#include "thread.h"

int
spool_add(FILE *f, const char *key)
{
	size_t	len = strlen(key) + 1;

	return fwrite(key, 1, len, f) == len ? 0 : -1;
}

int
spool_next(FILE *f, struct buf *b)
{
	int	ch;

	buf_reset(b);
	while ((ch = getc(f)) != EOF && ch != '\0')
		if (buf_addch(b, (char)ch) != 0)
			return -1;
	if (ch == EOF)
		return ferror(f) ? -1 : (b->len > 0 ? -1 : 0);
	return 1;
}

struct remover {
	pthread_mutex_t		 mtx;
	struct store		*store;
	FILE			*spool;
	int			 eof;
	volatile sig_atomic_t	*cancel;
	const struct remove_cbs	*cbs;
	struct remove_result	*res;
};

/*
 * One thread's batch: the keys, and which of them failed, so that the
 * others can be reported deleted.
 */
struct batch {
	struct remover		*r;
	const char		**v;
	size_t			 n;
	char			 failed[S3_DELETE_MAX];
	uint64_t		 nfailed;
};

static void
report_failed(struct remover *r, const char *key, enum store_status st,
    const char *why)
{
	r->res->failed++;
	if (st == STORE_EDENIED || st == STORE_EAUTH)
		r->res->refused++;
	if (r->cbs->failed != NULL)
		r->cbs->failed(r->cbs->arg, key, st, why);
}

static void
key_failed(void *arg, const char *key, enum store_status st,
    const struct store_error *err)
{
	struct batch	*b = arg;
	struct remover	*r = b->r;
	char		 why[600];
	size_t		 i;

	if (err->code[0] != '\0')
		snprintf(why, sizeof(why), "%s%s%s", err->code,
		    *err->message != '\0' ? ": " : "", err->message);
	else
		snprintf(why, sizeof(why), "%s", err->message);
	/* Failures are few: a look through the batch is cheap. */
	for (i = 0; i < b->n; i++)
		if (!b->failed[i] && strcmp(b->v[i], key) == 0) {
			b->failed[i] = 1;
			break;
		}
	b->nfailed++;
	pthread_mutex_lock(&r->mtx);
	report_failed(r, key, st, why);
	pthread_mutex_unlock(&r->mtx);
}

/* The first whole failure stops every thread; called with mtx held. */
static void
stop(struct remover *r, enum store_status st, const char *why)
{
	if (r->res->status != STORE_OK)
		return;
	r->res->status = st;
	snprintf(r->res->err.message, sizeof(r->res->err.message), "%s", why);
}

static void *
remover_main(void *arg)
{
	struct remover		*r = arg;
	struct batch		*b;
	struct store_conn	*conn;
	struct buf		 keys;	/* NUL-separated batch */
	struct buf		 one;
	const char		*v[S3_DELETE_MAX];
	struct store_error	 err;
	enum store_status	 st;
	size_t			 n, i, off;
	char			 why[512];

	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (conn = store_conn_new(r->store)) == NULL) {
		free(b);
		pthread_mutex_lock(&r->mtx);
		stop(r, STORE_ENOMEM, "cannot open a connection");
		pthread_mutex_unlock(&r->mtx);
		return NULL;
	}
	b->r = r;
	b->v = v;
	store_conn_set_cancel(conn, r->cancel);
	buf_init(&keys, BUF_NOMAX);
	buf_init(&one, BUF_NOMAX);
	for (;;) {
		buf_reset(&keys);
		n = 0;
		pthread_mutex_lock(&r->mtx);
		while (n < S3_DELETE_MAX && !r->eof &&
		    (r->cancel == NULL || !*r->cancel) &&
		    r->res->status == STORE_OK) {
			int rc = spool_next(r->spool, &one);

			if (rc <= 0) {
				r->eof = 1;
				if (rc < 0)
					stop(r, STORE_ENOMEM, "cannot read the "
					    "spool of keys to delete");
				break;
			}
			if (buf_add(&keys, one.data, one.len + 1) != 0) {
				stop(r, STORE_ENOMEM, "out of memory");
				break;
			}
			n++;
		}
		pthread_mutex_unlock(&r->mtx);
		if (n == 0)
			break;
		for (i = 0, off = 0; i < n; i++) {
			v[i] = keys.data + off;
			off += strlen(v[i]) + 1;
		}
		b->n = n;
		b->nfailed = 0;
		memset(b->failed, 0, n);
		st = store_delete_many(conn, v, n, key_failed, b, &err);
		pthread_mutex_lock(&r->mtx);
		if (st == STORE_OK || st == STORE_EPARTIAL) {
			/*
			 * key_failed counted the failures of this batch, never
			 * more than its keys (s3_parse_delete_result).
			 */
			r->res->deleted += n - b->nfailed;
			for (i = 0; i < n && r->cbs->deleted != NULL; i++)
				if (!b->failed[i])
					r->cbs->deleted(r->cbs->arg, v[i]);
		} else {
			/* No key of the batch was reported: all failed. */
			store_error_text(st, &err, why, sizeof(why));
			for (i = 0; i < n; i++)
				report_failed(r, v[i], st, why);
			if (r->res->status == STORE_OK) {
				r->res->status = st;
				r->res->err = err;
			}
		}
		pthread_mutex_unlock(&r->mtx);
	}
	pthread_mutex_lock(&r->mtx);
	store_conn_stats(conn, &r->res->requests);
	pthread_mutex_unlock(&r->mtx);
	store_conn_free(conn);
	free(b);
	buf_release(&keys);
	buf_release(&one);
	return NULL;
}

void
remove_spool(struct store *store, FILE *spool, int nthreads,
    volatile sig_atomic_t *cancel, const struct remove_cbs *cbs,
    struct remove_result *res)
{
	struct remover	 r;
	pthread_t	*t;
	int		 i, started = 0;

	memset(res, 0, sizeof(*res));
	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.mtx, NULL);
	r.store = store;
	r.spool = spool;
	r.cancel = cancel;
	r.cbs = cbs;
	r.res = res;
	rewind(spool);
	if (nthreads < 1)
		nthreads = 1;
	if ((t = calloc((size_t)nthreads, sizeof(*t))) != NULL)
		for (i = 0; i < nthreads; i++)
			if (thread_start(&t[started], remover_main, &r) == 0)
				started++;
	if (started == 0) {
		res->status = STORE_ENOMEM;
		snprintf(res->err.message, sizeof(res->err.message),
		    "cannot start threads");
	}
	for (i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	free(t);
	pthread_mutex_destroy(&r.mtx);
}
