/*
 * work: see work.h.
 *
 * Each worker is two threads with a one-slot mailbox between them: the
 * renderer takes a job, GETs the original and renders its presets; the
 * uploader PUTs them. So the uploads of one image overlap the download
 * and decoding of the next, and each thread keeps its own connection.
 *
 * Lock invariants: `mtx` guards the queue (q, qhead, qcount), `closed`,
 * `stopped`, `storage_errs` and `storage_failed`; `report_mtx` serialises
 * calls of the report callback; a worker's `mtx` guards its `slot` and
 * `done`. A job belongs to the queue until a renderer takes it, then to
 * that renderer, then with its previews (a struct rendered) to the
 * mailbox and the uploader, which frees it.
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
	struct worker		*workers;
	int			 started;	/* workers running */
};

/* A job with its previews, from a renderer to its uploader. */
struct rendered {
	struct job		*job;
	size_t			 n;
	size_t			 idx[WORK_MAX_PRESETS];	/* preset index */
	struct render_out	 outs[WORK_MAX_PRESETS];
};

struct worker {
	struct work		*w;
	pthread_t		 render_t, upload_t;
	struct store_conn	*get_conn, *put_conn;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	struct rendered		*slot;	/* waiting for the uploader */
	int			 done;	/* the renderer has finished */
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

/*
 * Whether a failed request says the storage is failing (unreachable,
 * refusing us, erring) rather than this one object being bad: only those
 * count towards stopping the run.
 */
static int
storage_fault(enum s3_status st, const struct s3_error *err)
{
	switch (st) {
	case S3_ECONNECT:
	case S3_ETIMEOUT:
	case S3_ENETWORK:
	case S3_ETLS:
	case S3_ESHORT:
	case S3_ECREDS:
		return 1;
	case S3_ESERVER:
		return err->http_status == 0 || err->http_status >= 500 ||
		    err->http_status == 401 || err->http_status == 403;
	default:
		return 0;
	}
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
rendered_free(struct rendered *r)
{
	size_t	i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++)
		render_out_release(&r->outs[i]);
	job_free(r->job);
	free(r);
}

/*
 * GET the original and render what the job needs. NULL when that failed
 * (reported here, job freed) or there is no memory.
 */
static struct rendered *
render_job(struct work *w, struct store_conn *conn, struct job *j,
    struct buf *in)
{
	const struct preset	*ps[WORK_MAX_PRESETS];
	struct rendered		*r;
	struct s3_error		 err;
	enum s3_status		 st;
	char			 msg[512];
	size_t			 i;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		fail_job(w, j, "out of memory", 0);
		job_free(j);
		return NULL;
	}
	r->job = j;
	for (i = 0; i < w->p.npresets; i++)
		if (j->mask & (UINT64_C(1) << i)) {
			ps[r->n] = w->p.presets[i];
			r->idx[r->n] = i;
			render_out_init(&r->outs[r->n++]);
		}

	buf_reset(in);
	if (j->size > w->p.limits.max_bytes) {
		snprintf(msg, sizeof(msg), "original of %llu bytes is over "
		    "max_bytes (%llu)", (unsigned long long)j->size,
		    (unsigned long long)w->p.limits.max_bytes);
		fail_job(w, j, msg, 0);
		goto fail;
	}
	st = store_get(conn, j->key, w->p.limits.max_bytes, in, &err);
	note_storage(w, st != S3_OK && storage_fault(st, &err));
	if (st != S3_OK) {
		s3_error_text(st, &err, msg, sizeof(msg));
		fail_job(w, j, msg, storage_fault(st, &err));
		goto fail;
	}
	if (render_image(in->data, in->len, ps, r->n, &w->p.limits, r->outs,
	    msg, sizeof(msg)) != 0) {
		fail_job(w, j, msg, 0);
		goto fail;
	}
	return r;
fail:
	rendered_free(r);
	return NULL;
}

/* PUT every preview of r, each with its Content-Type and metadata. */
static void
upload(struct work *w, struct store_conn *conn, struct rendered *r)
{
	const struct job	*j = r->job;
	struct s3_error		 err;
	struct s3_put_opts	 po;
	struct s3_meta		 meta[2];
	struct work_result	 res;
	struct buf		 key;
	enum s3_status		 st;
	char			 msg[512], etag[80];
	size_t			 i, p;

	buf_init(&key, BUF_NOMAX);
	clean_etag(j->etag, etag, sizeof(etag));
	for (i = 0; i < r->n; i++) {
		p = r->idx[i];
		memset(&res, 0, sizeof(res));
		res.key = j->key;
		res.preset = p;
		buf_reset(&key);
		if (buf_addf(&key, "%s%s/%s", w->p.previews,
		    w->p.presets[p]->name, j->rel) != 0) {
			res.error = "out of memory";
			report(w, &res);
			continue;
		}
		res.preview = key.data;
		if (work_stopped(w)) {
			res.storage = 1;
			res.error = "not written: the run stopped";
			report(w, &res);
			continue;
		}
		meta[0] = (struct s3_meta){ "prewctl-source-etag", etag };
		meta[1] = (struct s3_meta){ "prewctl-preset",
		    w->p.stamp_md5[p] };
		po = (struct s3_put_opts){ r->outs[i].content_type,
		    w->p.cache_control, w->p.acl, meta, 2 };
		st = store_put(conn, key.data, r->outs[i].data.data,
		    r->outs[i].data.len, &po, &err);
		res.storage = st != S3_OK && storage_fault(st, &err);
		note_storage(w, res.storage);
		res.ok = st == S3_OK;
		res.bytes = r->outs[i].data.len;
		if (st != S3_OK) {
			s3_error_text(st, &err, msg, sizeof(msg));
			res.error = msg;
		}
		report(w, &res);
	}
	buf_release(&key);
}

static void
block_signals(void)
{
	sigset_t	all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static void *
uploader_main(void *arg)
{
	struct worker	*wk = arg;
	struct rendered	*r;

	block_signals();
	for (;;) {
		pthread_mutex_lock(&wk->mtx);
		while (wk->slot == NULL && !wk->done)
			pthread_cond_wait(&wk->cv, &wk->mtx);
		r = wk->slot;
		wk->slot = NULL;
		pthread_cond_broadcast(&wk->cv);
		pthread_mutex_unlock(&wk->mtx);
		if (r == NULL)
			break;
		/* In flight once rendered: finished even when cancelled. */
		upload(wk->w, wk->put_conn, r);
		rendered_free(r);
	}
	return NULL;
}

static struct job *
take_job(struct work *w)
{
	struct job	*j = NULL;

	pthread_mutex_lock(&w->mtx);
	while (w->qcount == 0 && !w->closed && !w->stopped)
		pthread_cond_wait(&w->cv, &w->mtx);
	if (w->qcount > 0 && !w->stopped) {
		j = w->q[w->qhead];
		w->qhead = (w->qhead + 1) % w->qsize;
		w->qcount--;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mtx);
	return j;
}

static void *
renderer_main(void *arg)
{
	struct worker	*wk = arg;
	struct work	*w = wk->w;
	struct rendered	*r;
	struct job	*j;
	struct buf	 in;

	block_signals();
	buf_init(&in, BUF_NOMAX);
	while ((j = take_job(w)) != NULL) {
		if (w->p.cancel != NULL && *w->p.cancel) {
			job_free(j);
			continue;
		}
		if ((r = render_job(w, wk->get_conn, j, &in)) == NULL)
			continue;
		pthread_mutex_lock(&wk->mtx);
		while (wk->slot != NULL)
			pthread_cond_wait(&wk->cv, &wk->mtx);
		wk->slot = r;
		pthread_cond_broadcast(&wk->cv);
		pthread_mutex_unlock(&wk->mtx);
	}
	buf_release(&in);
	pthread_mutex_lock(&wk->mtx);
	wk->done = 1;
	pthread_cond_broadcast(&wk->cv);
	pthread_mutex_unlock(&wk->mtx);
	render_thread_shutdown();
	return NULL;
}

static void
worker_release(struct worker *wk, struct s3_stats *reqs)
{
	if (reqs != NULL) {
		if (wk->get_conn != NULL)
			store_conn_stats(wk->get_conn, reqs);
		if (wk->put_conn != NULL)
			store_conn_stats(wk->put_conn, reqs);
	}
	store_conn_free(wk->get_conn);
	store_conn_free(wk->put_conn);
	pthread_mutex_destroy(&wk->mtx);
	pthread_cond_destroy(&wk->cv);
}

/* Start worker i: its connections and its two threads. */
static int
worker_start(struct work *w, int i)
{
	struct worker	*wk = &w->workers[i];

	wk->w = w;
	pthread_mutex_init(&wk->mtx, NULL);
	pthread_cond_init(&wk->cv, NULL);
	wk->get_conn = store_conn_new(w->p.store);
	wk->put_conn = store_conn_new(w->p.store);
	if (wk->get_conn == NULL || wk->put_conn == NULL)
		goto fail;
	store_conn_set_cancel(wk->get_conn, w->p.cancel);
	store_conn_set_cancel(wk->put_conn, w->p.cancel);
	if (pthread_create(&wk->upload_t, NULL, uploader_main, wk) != 0)
		goto fail;
	if (pthread_create(&wk->render_t, NULL, renderer_main, wk) != 0) {
		pthread_mutex_lock(&wk->mtx);
		wk->done = 1;
		pthread_cond_broadcast(&wk->cv);
		pthread_mutex_unlock(&wk->mtx);
		pthread_join(wk->upload_t, NULL);
		goto fail;
	}
	return 0;
fail:
	worker_release(wk, NULL);
	return -1;
}

struct work *
work_start(const struct work_params *p)
{
	struct work	*w;
	int		 n = p->nworkers > 0 ? p->nworkers : 1;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->p = *p;
	w->p.nworkers = n;
	w->qsize = (size_t)n * QUEUE_PER_WORKER;
	pthread_mutex_init(&w->mtx, NULL);
	pthread_cond_init(&w->cv, NULL);
	pthread_mutex_init(&w->report_mtx, NULL);
	w->q = calloc(w->qsize, sizeof(*w->q));
	w->workers = calloc((size_t)n, sizeof(*w->workers));
	if (w->q == NULL || w->workers == NULL) {
		work_finish(w, NULL, NULL);
		return NULL;
	}
	for (w->started = 0; w->started < n; w->started++)
		if (worker_start(w, w->started) != 0) {
			pthread_mutex_lock(&w->mtx);
			w->stopped = 1;
			pthread_mutex_unlock(&w->mtx);
			work_finish(w, NULL, NULL);
			return NULL;
		}
	return w;
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
	int	i;

	pthread_mutex_lock(&w->mtx);
	w->closed = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mtx);
	/* A renderer ends its uploader: join in that order. */
	for (i = 0; i < w->started; i++) {
		pthread_join(w->workers[i].render_t, NULL);
		pthread_join(w->workers[i].upload_t, NULL);
		worker_release(&w->workers[i], reqs);
	}
	/* Jobs left when the pool stopped early are dropped. */
	while (w->qcount > 0) {
		job_free(w->q[w->qhead]);
		w->qhead = (w->qhead + 1) % w->qsize;
		w->qcount--;
	}
	if (storage_failed != NULL)
		*storage_failed = w->storage_failed;
	pthread_mutex_destroy(&w->mtx);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->report_mtx);
	free(w->q);
	free(w->workers);
	free(w);
}
