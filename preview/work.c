/*
 * work: see work.h.
 *
 * Lock invariants: `mtx` guards the queue (q, qhead, qcount), `closed`,
 * `stopped`, `storage_errs` and `storage_failed`; `report_mtx` serialises
 * calls of the report callback. A job belongs to the queue until a worker
 * takes it, then to that worker, which frees it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "work.h"

#define QUEUE_PER_WORKER 2

struct work {
	struct work_params	 p;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	struct job		**q;
	size_t			 qsize, qhead, qcount;
	int			 closed;
	int			 stopped;
	int			 storage_errs;	/* in a row */
	int			 storage_failed;
	pthread_mutex_t		 report_mtx;
	pthread_t		*threads;
	struct store_conn	**conns;
	int			 nthreads;
};

void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->key);
	free(j);
}

static void
report(struct work *w, const struct work_result *r)
{
	pthread_mutex_lock(&w->report_mtx);
	w->p.report(w->p.report_arg, r);
	pthread_mutex_unlock(&w->report_mtx);
}

/* Count storage failures in a row; too many stops the pool. */
static void
note_storage(struct work *w, int failed)
{
	pthread_mutex_lock(&w->mtx);
	if (!failed)
		w->storage_errs = 0;
	else if (++w->storage_errs >= w->p.max_storage_errors &&
	    w->p.max_storage_errors > 0) {
		w->storage_failed = 1;
		w->stopped = 1;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mtx);
}

static void
fail_job(struct work *w, const struct job *j, const char *why, int storage)
{
	struct work_result	r;
	size_t			i;

	for (i = 0; i < w->p.npresets; i++) {
		if (!(j->mask & (UINT64_C(1) << i)))
			continue;
		memset(&r, 0, sizeof(r));
		r.key = j->key;
		r.preset = i;
		r.storage = storage;
		r.error = why;
		report(w, &r);
	}
}

/* Header-safe copy of an ETag: hex digits and '-' only. */
static void
clean_etag(const char *in, char *out, size_t len)
{
	size_t	n = 0;

	for (; *in != '\0' && n + 1 < len; in++)
		if ((*in >= '0' && *in <= '9') || (*in >= 'a' && *in <= 'f') ||
		    (*in >= 'A' && *in <= 'F') || *in == '-')
			out[n++] = *in;
	out[n] = '\0';
}

static void
do_job(struct work *w, struct store_conn *conn, struct job *j,
    struct buf *in)
{
	const struct preset	*ps[WORK_MAX_PRESETS];
	size_t			 idx[WORK_MAX_PRESETS];
	struct render_out	 outs[WORK_MAX_PRESETS];
	struct s3_error		 err;
	struct s3_put_opts	 po;
	struct s3_meta		 meta[2];
	struct work_result	 r;
	struct buf		 key;
	enum s3_status		 st;
	char			 msg[512], etag[80];
	size_t			 n = 0, i;

	for (i = 0; i < w->p.npresets; i++)
		if (j->mask & (UINT64_C(1) << i)) {
			ps[n] = w->p.presets[i];
			idx[n++] = i;
		}
	for (i = 0; i < n; i++)
		render_out_init(&outs[i]);
	buf_init(&key, BUF_NOMAX);

	buf_reset(in);
	if (j->size > w->p.limits.max_bytes) {
		snprintf(msg, sizeof(msg), "original of %llu bytes is over "
		    "max_bytes (%llu)", (unsigned long long)j->size,
		    (unsigned long long)w->p.limits.max_bytes);
		fail_job(w, j, msg, 0);
		goto out;
	}
	st = store_get(conn, j->key, w->p.limits.max_bytes, in, &err);
	note_storage(w, st != S3_OK && st != S3_ETOOBIG &&
	    st != S3_ENOTFOUND);
	if (st != S3_OK) {
		s3_error_text(st, &err, msg, sizeof(msg));
		fail_job(w, j, msg, st != S3_ETOOBIG && st != S3_ENOTFOUND);
		goto out;
	}
	if (render_image(in->data, in->len, ps, n, &w->p.limits, outs, msg,
	    sizeof(msg)) != 0) {
		fail_job(w, j, msg, 0);
		goto out;
	}
	clean_etag(j->etag, etag, sizeof(etag));
	for (i = 0; i < n; i++) {
		if (work_stopped(w))
			break;
		buf_reset(&key);
		if (buf_addf(&key, "%s%s/%s", w->p.previews, ps[i]->name,
		    j->rel) != 0) {
			fail_job(w, j, "out of memory", 0);
			goto out;
		}
		meta[0] = (struct s3_meta){ "prewctl-source-etag", etag };
		meta[1] = (struct s3_meta){ "prewctl-preset",
		    w->p.stamp_md5[idx[i]] };
		po = (struct s3_put_opts){ outs[i].content_type,
		    w->p.cache_control, w->p.acl, meta, 2 };
		st = store_put(conn, key.data, outs[i].data.data,
		    outs[i].data.len, &po, &err);
		note_storage(w, st != S3_OK);
		memset(&r, 0, sizeof(r));
		r.key = j->key;
		r.preview = key.data;
		r.preset = idx[i];
		r.ok = st == S3_OK;
		r.storage = st != S3_OK;
		r.bytes = outs[i].data.len;
		if (st != S3_OK) {
			s3_error_text(st, &err, msg, sizeof(msg));
			r.error = msg;
		}
		report(w, &r);
	}
out:
	for (i = 0; i < n; i++)
		render_out_release(&outs[i]);
	buf_release(&key);
}

static void *
worker_main(void *arg)
{
	struct work		*w = arg;
	struct store_conn	*conn;
	struct job		*j;
	struct buf		 in;
	sigset_t		 all;
	int			 me;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&w->mtx);
	me = w->nthreads++;
	conn = w->conns[me];
	pthread_mutex_unlock(&w->mtx);
	buf_init(&in, BUF_NOMAX);
	for (;;) {
		pthread_mutex_lock(&w->mtx);
		while (w->qcount == 0 && !w->closed && !w->stopped)
			pthread_cond_wait(&w->cv, &w->mtx);
		if (w->qcount == 0 || w->stopped) {
			pthread_mutex_unlock(&w->mtx);
			break;
		}
		j = w->q[w->qhead];
		w->qhead = (w->qhead + 1) % w->qsize;
		w->qcount--;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mtx);

		if (w->p.cancel == NULL || !*w->p.cancel)
			do_job(w, conn, j, &in);
		job_free(j);
	}
	buf_release(&in);
	render_thread_shutdown();
	return NULL;
}

struct work *
work_start(const struct work_params *p)
{
	struct work	*w;
	int		 i, n = p->nworkers > 0 ? p->nworkers : 1;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->p = *p;
	w->p.nworkers = n;
	w->qsize = (size_t)n * QUEUE_PER_WORKER;
	pthread_mutex_init(&w->mtx, NULL);
	pthread_cond_init(&w->cv, NULL);
	pthread_mutex_init(&w->report_mtx, NULL);
	w->q = calloc(w->qsize, sizeof(*w->q));
	w->threads = calloc((size_t)n, sizeof(*w->threads));
	w->conns = calloc((size_t)n, sizeof(*w->conns));
	if (w->q == NULL || w->threads == NULL || w->conns == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		if ((w->conns[i] = store_conn_new(p->store)) == NULL)
			goto fail;
		store_conn_set_cancel(w->conns[i], p->cancel);
	}
	for (i = 0; i < n; i++)
		if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0)
			goto fail_threads;
	return w;
fail_threads:
	/* Stop those that started; work_finish joins exactly i threads. */
	w->p.nworkers = i;
	w->stopped = 1;
	work_finish(w, NULL, NULL);
	return NULL;
fail:
	for (i = 0; i < n && w->conns != NULL; i++)
		store_conn_free(w->conns[i]);
	free(w->q);
	free(w->threads);
	free(w->conns);
	free(w);
	return NULL;
}

int
work_push(struct work *w, struct job *j)
{
	pthread_mutex_lock(&w->mtx);
	while (w->qcount == w->qsize && !w->stopped &&
	    (w->p.cancel == NULL || !*w->p.cancel))
		pthread_cond_wait(&w->cv, &w->mtx);
	if (w->stopped || (w->p.cancel != NULL && *w->p.cancel)) {
		pthread_mutex_unlock(&w->mtx);
		job_free(j);
		return -1;
	}
	w->q[(w->qhead + w->qcount) % w->qsize] = j;
	w->qcount++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mtx);
	return 0;
}

int
work_stopped(struct work *w)
{
	int	stopped;

	pthread_mutex_lock(&w->mtx);
	stopped = w->stopped;
	pthread_mutex_unlock(&w->mtx);
	return stopped;
}

void
work_finish(struct work *w, struct s3_stats *reqs, int *storage_failed)
{
	int	i, total;

	pthread_mutex_lock(&w->mtx);
	w->closed = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mtx);
	for (i = 0; i < w->p.nworkers; i++)
		pthread_join(w->threads[i], NULL);
	/* Jobs left when the pool stopped early are dropped. */
	while (w->qcount > 0) {
		job_free(w->q[w->qhead]);
		w->qhead = (w->qhead + 1) % w->qsize;
		w->qcount--;
	}
	if (storage_failed != NULL)
		*storage_failed = w->storage_failed;
	total = (int)w->qsize / QUEUE_PER_WORKER;
	for (i = 0; i < total; i++) {
		if (w->conns[i] == NULL)
			continue;
		if (reqs != NULL)
			store_conn_stats(w->conns[i], reqs);
		store_conn_free(w->conns[i]);
	}
	pthread_mutex_destroy(&w->mtx);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->report_mtx);
	free(w->q);
	free(w->threads);
	free(w->conns);
	free(w);
}
