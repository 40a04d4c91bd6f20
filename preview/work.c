/*
 * work: see work.h.
 *
 * Three queues of jobs, all of the same shape: `in` (from work_push,
 * as long as the fetchers are many), `fetched` (WORK_PREFETCH * N) and
 * `rendered` (as long as the uploaders are many). A stage's thread takes
 * from its queue, runs its step, and puts the job on the next queue, or
 * hands it to `done` after the last step. Uploaders take a preset at a
 * time, so that a job's previews are written at once (a round trip each
 * to far storage); whichever ends the job's last write keeps its books.
 * A queue closes when every thread of the stage before it has ended, so
 * the stages drain in order.
 *
 * Lock invariants: `mtx` guards every queue, `closed`, `stop`, the thread
 * counts, the failure counts, `putting`, `puts_told` and the jobs'
 * next_put and puts_busy;
 * `report_mtx` serialises calls of done. A job belongs to one queue or
 * one thread at a time, but for the uploaders: each owns the preset it
 * took, and the job's books are the last one's.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thread.h"
#include "work.h"

struct queue {
	struct job	**v;
	size_t		 size, head, count;
	int		 closed;	/* nothing more will come */
};

enum stage { ST_FETCH, ST_RENDER, ST_STORE, ST_COUNT };

struct work {
	struct work_params	 p;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	struct queue		 q[ST_COUNT];	/* the input of each stage */
	int			 live[ST_COUNT];	/* threads running */
	enum work_stop		 stop;
	int			 read_errs, write_errs;	/* in a row */
	int			 putting;	/* PUTs under way */
	int			 puts_told;	/* puts_over was */
	pthread_mutex_t		 report_mtx;
	pthread_t		*threads;
	struct store_conn	**conns;	/* fetchers' then uploaders' */
	int			 nthreads;
	int			 nconns;
};

struct thread_arg {
	struct work		*w;
	enum stage		 stage;
	struct store_conn	*conn;
};

static int
queue_init(struct queue *q, size_t size)
{
	memset(q, 0, sizeof(*q));
	q->size = size;
	return (q->v = calloc(size, sizeof(*q->v))) != NULL ? 0 : -1;
}

/* The job at the head of q, taken off it. */
static struct job *
queue_pop(struct queue *q)
{
	struct job	*j = q->v[q->head];

	q->head = (q->head + 1) % q->size;
	q->count--;
	return j;
}

static int
cancelled(const struct work *w)
{
	return w->p.cancel != NULL && *w->p.cancel;
}

/* Called with mtx held. */
static void
halt(struct work *w, enum work_stop why)
{
	if (w->stop == WORK_RUNNING)
		w->stop = why;
	pthread_cond_broadcast(&w->cv);
}

/* Put j on q, waiting for room; -1 (j not taken) once the pool stops. */
static int
put(struct work *w, struct queue *q, struct job *j)
{
	pthread_mutex_lock(&w->mtx);
	while (q->count == q->size && w->stop == WORK_RUNNING &&
	    !cancelled(w))
		pthread_cond_wait(&w->cv, &w->mtx);
	if (cancelled(w))
		halt(w, WORK_CANCELLED);
	if (w->stop != WORK_RUNNING) {
		pthread_mutex_unlock(&w->mtx);
		return -1;
	}
	q->v[(q->head + q->count) % q->size] = j;
	q->count++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mtx);
	return 0;
}

#define NO_PRESET	((size_t)-1)

/* The first preset of j from `from` that waits to be written, or j->n. */
static size_t
next_put(const struct job *j, size_t from)
{
	while (from < j->n && j->p[from].result != MAKE_PENDING)
		from++;
	return from;
}

/*
 * An uploader's next preset to write, of the job at the head of q (with
 * mtx held): the presets of one job go to as many uploaders at once, and
 * the job leaves the queue with its last one. A job with none to write
 * is taken whole (*idx NO_PRESET), for its bookkeeping.
 */
static struct job *
take_put(struct queue *q, size_t *idx)
{
	struct job	*j = q->v[q->head];
	size_t		 i = next_put(j, j->next_put);

	*idx = i < j->n ? i : NO_PRESET;
	j->next_put = i < j->n ? i + 1 : j->n;
	j->puts_busy++;
	if (next_put(j, j->next_put) == j->n) {
		j->next_put = j->n;
		(void)queue_pop(q);
	}
	return j;
}

/*
 * The next job of stage s (for the uploaders, *idx says which preset),
 * or NULL when its queue is closed and empty. Once the pool stops,
 * fetchers and renderers take nothing more; the uploaders still finish
 * what was rendered, unless writes are what fails: then only the job
 * begun is written to its end.
 */
static struct job *
take(struct work *w, enum stage s, size_t *idx)
{
	struct queue	*q = &w->q[s];
	struct job	*j = NULL;

	pthread_mutex_lock(&w->mtx);
	for (;;) {
		if (cancelled(w))
			halt(w, WORK_CANCELLED);
		if (w->stop != WORK_RUNNING && s != ST_STORE)
			break;
		if (s == ST_STORE && w->stop == WORK_WRITES_FAILING &&
		    (q->count == 0 || q->v[q->head]->next_put == 0))
			break;
		if (q->count > 0) {
			j = s == ST_STORE ? take_put(q, idx) : queue_pop(q);
			if (s == ST_STORE && *idx != NO_PRESET)
				w->putting++;
			pthread_cond_broadcast(&w->cv);
			break;
		}
		if (q->closed)
			break;
		pthread_cond_wait(&w->cv, &w->mtx);
	}
	pthread_mutex_unlock(&w->mtx);
	return j;
}

/*
 * Count what a step says of the storage, right after it: the original's
 * read after the fetch, each write after it is made. Too many failures in
 * a row stop the pool before the other threads run through every job
 * left.
 */
static void
tally_locked(struct work *w, const struct job *j, size_t write)
{
	const struct job_preset	*p;
	size_t			 i;
	int			 stop;

	if (write == NO_PRESET) {
		if (j->fetched)
			w->read_errs = 0;
		for (i = 0; i < j->n; i++)
			if (j->p[i].result == MAKE_FAILED && j->p[i].storage &&
			    !j->p[i].write) {
				w->read_errs++;
				break;
			}
	} else if (write < j->n) {
		p = &j->p[write];
		if (p->result == MAKE_MADE)
			w->write_errs = 0;
		else if (p->result == MAKE_FAILED && p->storage && p->write)
			w->write_errs++;
	}
	stop = w->p.max_storage_errors > 0;
	if (stop && w->read_errs >= w->p.max_storage_errors)
		halt(w, WORK_READS_FAILING);
	if (stop && w->write_errs >= w->p.max_storage_errors)
		halt(w, WORK_WRITES_FAILING);
}

static void
tally_read(struct work *w, const struct job *j)
{
	pthread_mutex_lock(&w->mtx);
	tally_locked(w, j, NO_PRESET);
	pthread_mutex_unlock(&w->mtx);
}

/*
 * Whether every preview is written: nothing more comes to the uploaders
 * and no PUT is under way; puts_over is then to be told, once. Called
 * with mtx held.
 */
static int
puts_over_locked(struct work *w)
{
	struct queue	*q = &w->q[ST_STORE];

	if (w->puts_told || w->p.puts_over == NULL || !q->closed ||
	    q->count > 0 || w->putting > 0)
		return 0;
	w->puts_told = 1;
	return 1;
}

/*
 * Preset idx of j was written (or there was none to write): whether
 * the job's last write is over, and its bookkeeping this thread's.
 */
static int
put_ended(struct work *w, struct job *j, size_t idx)
{
	int	last, over;

	pthread_mutex_lock(&w->mtx);
	if (idx != NO_PRESET) {
		tally_locked(w, j, idx);
		w->putting--;
	}
	last = --j->puts_busy == 0 && j->next_put == j->n;
	over = puts_over_locked(w);
	pthread_mutex_unlock(&w->mtx);
	if (over)
		w->p.puts_over(w->p.done_arg);
	return last;
}

static void
finish_job(struct work *w, struct job *j)
{
	pthread_mutex_lock(&w->report_mtx);
	w->p.done(w->p.done_arg, j);
	pthread_mutex_unlock(&w->report_mtx);
}

/* The last thread of stage s closes the queue of the stage after it. */
static void
stage_ended(struct work *w, enum stage s)
{
	int	over = 0;

	pthread_mutex_lock(&w->mtx);
	if (--w->live[s] == 0 && s + 1 < ST_COUNT) {
		w->q[s + 1].closed = 1;
		pthread_cond_broadcast(&w->cv);
		over = puts_over_locked(w);
	}
	pthread_mutex_unlock(&w->mtx);
	if (over)
		w->p.puts_over(w->p.done_arg);
}

static void *
thread_main(void *arg)
{
	struct thread_arg	*ta = arg;
	struct work		*w = ta->w;
	const struct maker	*mk = w->p.maker;
	struct job		*j;
	size_t			 idx = NO_PRESET;

	while ((j = take(w, ta->stage, &idx)) != NULL) {
		switch (ta->stage) {
		case ST_FETCH:
			make_fetch(mk, ta->conn, j);
			tally_read(w, j);
			break;
		case ST_RENDER:
			make_render(mk, j);
			break;
		case ST_STORE:
			if (idx != NO_PRESET)
				make_store_one(mk, ta->conn, j, idx);
			if (put_ended(w, j, idx)) {
				make_store_end(mk, ta->conn, j);
				finish_job(w, j);
			}
			continue;
		case ST_COUNT:
			break;
		}
		/* A job the pool no longer takes was never finished: drop. */
		if (put(w, &w->q[ta->stage + 1], j) != 0)
			job_free(j);
	}
	if (ta->stage == ST_RENDER)
		render_thread_shutdown();
	stage_ended(w, ta->stage);
	free(ta);
	return NULL;
}

/* Start one thread of stage s; conn is its own, or NULL. */
static int
start_thread(struct work *w, enum stage s, struct store_conn *conn)
{
	struct thread_arg	*ta;

	if ((ta = calloc(1, sizeof(*ta))) == NULL)
		return -1;
	*ta = (struct thread_arg){ w, s, conn };
	pthread_mutex_lock(&w->mtx);
	w->live[s]++;
	pthread_mutex_unlock(&w->mtx);
	if (thread_start(&w->threads[w->nthreads], thread_main, ta) != 0) {
		stage_ended(w, s);
		free(ta);
		return -1;
	}
	w->nthreads++;
	return 0;
}

static void
drop_queued(struct queue *q)
{
	while (q->count > 0)
		job_free(queue_pop(q));
	free(q->v);
}

struct work *
work_start(const struct work_params *p)
{
	struct work	*w;
	int		 n = p->nworkers > 0 ? p->nworkers : 1, i, s;
	int		 count[ST_COUNT];

	count[ST_FETCH] = n * WORK_FETCHERS;
	count[ST_RENDER] = n;
	count[ST_STORE] = n * WORK_STORERS;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->p = *p;
	w->p.nworkers = n;
	pthread_mutex_init(&w->mtx, NULL);
	pthread_cond_init(&w->cv, NULL);
	pthread_mutex_init(&w->report_mtx, NULL);
	w->nconns = count[ST_FETCH] + count[ST_STORE];
	w->threads = calloc((size_t)(w->nconns + n), sizeof(*w->threads));
	w->conns = calloc((size_t)w->nconns, sizeof(*w->conns));
	if (w->threads == NULL || w->conns == NULL ||
	    queue_init(&w->q[ST_FETCH], (size_t)count[ST_FETCH]) != 0 ||
	    queue_init(&w->q[ST_RENDER], (size_t)n * WORK_PREFETCH) != 0 ||
	    queue_init(&w->q[ST_STORE], (size_t)count[ST_STORE]) != 0)
		goto fail;
	for (i = 0; i < w->nconns; i++) {
		if ((w->conns[i] = store_conn_new(p->maker->store)) == NULL)
			goto fail;
		store_conn_set_cancel(w->conns[i], p->cancel);
	}
	/* The last stage first, so that no job waits for a missing thread. */
	for (s = ST_STORE; s >= ST_FETCH; s--)
		for (i = 0; i < count[s]; i++)
			if (start_thread(w, (enum stage)s, s == ST_FETCH ?
			    w->conns[i] : s == ST_STORE ?
			    w->conns[count[ST_FETCH] + i] : NULL) != 0)
				goto fail;
	return w;
fail:
	pthread_mutex_lock(&w->mtx);
	halt(w, WORK_CANCELLED);
	pthread_mutex_unlock(&w->mtx);
	work_finish(w, NULL);
	return NULL;
}

int
work_push(struct work *w, struct job *j)
{
	return put(w, &w->q[ST_FETCH], j);
}

enum work_stop
work_stopped(struct work *w)
{
	enum work_stop	s;

	pthread_mutex_lock(&w->mtx);
	if (cancelled(w))
		halt(w, WORK_CANCELLED);
	s = w->stop;
	pthread_mutex_unlock(&w->mtx);
	return s;
}

enum work_stop
work_finish(struct work *w, struct s3_stats *reqs)
{
	enum work_stop	stop;
	int		i, s;

	pthread_mutex_lock(&w->mtx);
	w->q[ST_FETCH].closed = 1;
	/* A stage with no thread left closes what comes after it. */
	for (s = ST_FETCH; s < ST_COUNT; s++)
		if (w->live[s] == 0 && s + 1 < ST_COUNT)
			w->q[s + 1].closed = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mtx);
	for (i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	for (i = 0; w->conns != NULL && i < w->nconns; i++) {
		if (w->conns[i] != NULL && reqs != NULL)
			store_conn_stats(w->conns[i], reqs);
		store_conn_free(w->conns[i]);
	}
	for (s = 0; s < ST_COUNT; s++)
		drop_queued(&w->q[s]);
	stop = w->stop;
	pthread_mutex_destroy(&w->mtx);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->report_mtx);
	free(w->threads);
	free(w->conns);
	free(w);
	return stop;
}
