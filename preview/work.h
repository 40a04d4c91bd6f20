/*
 * work: the pool that makes previews, for generate and for serve.
 *
 * Jobs (make.h) go through three stages: fetchers read originals, N
 * renderers make the previews, uploaders write them (the previews of one
 * original at once) and do the bookkeeping. Bounded queues link the
 * stages, so the next originals are on their way while the current ones
 * decode, and the uploads of one image overlap the decoding of the next; work_push blocks while the first queue
 * is full, so listing never runs far ahead of the workers. A storage far
 * away (S3: tens of milliseconds a request) is why there are more fetchers
 * and uploaders than renderers: a renderer never waits for a round trip.
 *
 * Memory: an original is held from its fetch to the end of its render: at
 * most WORK_FETCHERS * N being fetched, WORK_PREFETCH * N waiting, and N
 * being rendered, each at most max_bytes. Uploaders hold previews only.
 *
 * Each finished job is handed to the done callback (under the pool's
 * report lock, so the caller's counters need no lock of their own), which
 * owns it from then on. Failures of the storage as a whole are counted in
 * a row, reads and writes apart: max_storage_errors of either stops the
 * pool; a success of the same kind starts the count again. Writes failing
 * end the uploads begun, and no other.
 */
#ifndef PREWCTL_WORK_H
#define PREWCTL_WORK_H

#include <signal.h>
#include <stdint.h>

#include "make.h"

/* Per worker (renderer), chosen by measurement (README, Performance). */
#define WORK_FETCHERS	2	/* originals being read */
#define WORK_PREFETCH	1	/* read, waiting for a renderer */
#define WORK_STORERS	8	/* previews being written */

typedef void	(*work_done_fn)(void *arg, struct job *);

struct work_params {
	const struct maker	*maker;
	int			 nworkers;
	int			 max_storage_errors;	/* in a row; 0: never */
	volatile sig_atomic_t	*cancel;
	work_done_fn		 done;
	void			*done_arg;
	/*
	 * Told once (NULL: not), with done_arg, from whichever thread sees
	 * it, as soon as the uploaders will write nothing more: their queue
	 * is closed and empty and no PUT is under way. That is after
	 * work_finish, or sooner when the pool stops on its own (or fails
	 * to start); never when writes failing left jobs queued.
	 */
	void			(*puts_over)(void *arg);
};

/* Why a pool stopped taking work. */
enum work_stop {
	WORK_RUNNING = 0,
	WORK_CANCELLED,		/* the cancel flag */
	WORK_READS_FAILING,	/* max_storage_errors reads in a row */
	WORK_WRITES_FAILING,	/* ... writes */
};

struct work;

struct work	*work_start(const struct work_params *);
/*
 * Queue a job (the pool owns it from here). -1 once the pool stopped;
 * the job is then the caller's still.
 */
int		 work_push(struct work *, struct job *);
enum work_stop	 work_stopped(struct work *);
/*
 * Close the queue, wait for every job taken to finish, drop the others
 * (freed, never reported), add the requests made into reqs.
 */
enum work_stop	 work_finish(struct work *, struct s3_stats *reqs);

#endif
