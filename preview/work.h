/*
 * work: the worker pool that makes previews.
 *
 * The merge-join pushes jobs into a bounded queue; N workers each own a
 * storage connection, take a job, GET the original once, render every
 * preset the job needs, and PUT each preview. work_push blocks while the
 * queue is full, so listing never runs far ahead of the workers.
 * Results are reported through a callback called with the pool's report
 * lock held, so the caller's counters need no lock of their own.
 */
#ifndef PREWCTL_WORK_H
#define PREWCTL_WORK_H

#include <signal.h>
#include <stdint.h>

#include "render.h"
#include "store.h"

#define WORK_MAX_PRESETS 64

struct job {
	char		*key;		/* the original's full key */
	const char	*rel;		/* into key: without the source prefix */
	char		 etag[80];
	uint64_t	 size;
	uint64_t	 mask;		/* bit i: make preset i */
};

struct work_result {
	const char	*key;		/* the original */
	const char	*preview;	/* its preview's key, once known */
	size_t		 preset;	/* index, or SIZE_MAX for the whole job */
	int		 ok;
	int		 storage;	/* a storage failure, not the image */
	const char	*error;		/* when !ok */
	uint64_t	 bytes;		/* preview size when ok */
};

typedef void	(*work_report_fn)(void *arg, const struct work_result *);

struct work_params {
	struct store			*store;
	const struct preset *const	*presets;
	const char *const		*stamp_md5;	/* per preset */
	size_t				 npresets;
	const char			*previews;
	const char			*cache_control;
	const char			*acl;
	struct render_limits		 limits;
	int				 nworkers;
	int				 max_storage_errors;	/* in a row */
	volatile sig_atomic_t		*cancel;
	work_report_fn			 report;
	void				*report_arg;
};

struct work;

struct work	*work_start(const struct work_params *);
/* Takes ownership of job. Returns -1 (and frees it) once the pool stops. */
int		 work_push(struct work *, struct job *);
/* Whether the pool stopped taking work (cancel, or storage failing). */
int		 work_stopped(struct work *);
/* Close the queue, wait for the workers, add their requests into reqs. */
void		 work_finish(struct work *, struct s3_stats *reqs,
		    int *storage_failed);
void		 job_free(struct job *);

#endif
