/*
 * make: the previews of one original, in three steps.
 *
 *   make_fetch   GET the original once (its ETag is what the previews
 *                will say they were made from);
 *   make_render  every preset of the job from that one read (render.c);
 *   make_store_one  PUT one preview made, with its Content-Type,
 *                Cache-Control, ACL and metadata (the previews of a job
 *                may go at once, each from its own thread);
 *   make_store_end  once they are all written, the bookkeeping: a stale
 *                preview whose original is no longer an image is
 *                removed, a preset that failed is marked so that the next
 *                runs can tell it from the listing, and the original is
 *                read again (one HEAD) to make sure it is still the one
 *                the previews were made from.
 *
 * The pool (work.h) runs the steps in threads of their own so that
 * downloads, renders and uploads overlap, for generate and serve.
 * Each preset of a job ends with a result: made, failed (with its own
 * reason) or skipped. Nothing here prints.
 */
#ifndef PREWCTL_MAKE_H
#define PREWCTL_MAKE_H

#include <stdint.h>

#include "diff.h"
#include "guard.h"
#include "render.h"
#include "store/store.h"

#define MAKE_MAX_PRESETS CONFIG_MAX_PRESETS

/* What every job shares; read-only while jobs run. */
struct maker {
	struct store			*store;
	const struct preset *const	*presets;
	const char *const		*def_md5;	/* per preset */
	size_t				 npresets;
	const char			*source;
	const char			*previews;
	const char			*cache_control;
	const char			*acl;
	struct render_limits		 limits;
	struct guard			*guard;		/* NULL: unchecked */
	int				 no_marks;	/* serve: a failure is
							   answered, not
							   recorded */
};

enum make_result {
	MAKE_PENDING = 0,
	MAKE_MADE,		/* written */
	MAKE_FAILED,		/* not made: error says why */
	MAKE_SKIPPED,		/* not written, and that is no failure:
				   error says why */
	MAKE_VERIFIED,		/* --verify: fresh, and made from this
				   original */
};

/* Why a preset was not made, for those (serve) that must answer for it. */
enum make_why {
	WHY_NONE = 0,
	WHY_GONE,		/* no such original (any more) */
	WHY_IMAGE,		/* the original cannot be previewed */
	WHY_TIMEOUT,		/* image_timeout ran out */
	WHY_STORAGE,		/* the storage failed or refused */
	WHY_UNSTORED,		/* made, not kept: the stamp is not ours */
	WHY_CHANGED,		/* made, not kept: the original changed */
};

struct job_preset {
	size_t			 preset;	/* index into maker->presets */
	enum pstate		 state;		/* as the diff found it */
	int			 marked;	/* it has a failure mark */
	int			 verify;	/* fresh: HEAD it, remake when
						   made from another original */
	struct render_out	 out;
	struct buf		 key;		/* the preview's key */
	enum make_result	 result;
	enum make_why		 why;
	int			 storage;	/* a failure of the storage */
	int			 write;		/* ... when writing */
	int			 permanent;	/* the original's fault: marked */
	int			 mark_written;
	int			 removed;	/* the stale preview was removed */
	char			 error[600];
};

struct job {
	char			*key;		/* the original */
	const char		*rel;		/* into key */
	uint64_t		 size;		/* as listed; 0: unknown */
	char			 listed_etag[STORE_ETAG_MAX + 1];
	size_t			 n;
	struct job_preset	*p;		/* [n] */

	struct buf		 in;		/* the original, once read */
	char			 etag[STORE_ETAG_MAX + 1];	/* of in */
	int			 fetched;
	int			 changed;	/* replaced while made: undone */
	int			 marks_written;
	int			 marks_removed;
	void			*arg;		/* the caller's */

	/* The pool's (work.c), under its lock. */
	size_t			 next_put;	/* presets before: taken */
	int			 puts_busy;	/* being written */
};

/*
 * A job for the original key (under mk->source) and presets[0..n)
 * (indices into mk->presets), each PS_MISSING until the caller says
 * otherwise. NULL with no memory or a key outside the source.
 */
struct job	*job_new(const struct maker *, const char *key, uint64_t size,
		    const size_t *presets, size_t n);
void		 job_free(struct job *);
/* Whether every preset of the job has its result. */
int		 job_done(const struct job *);

void		 make_fetch(const struct maker *, struct store_conn *,
		    struct job *);
void		 make_render(const struct maker *, struct job *);
/* Preset i, when it waits to be written; one thread per preset. */
void		 make_store_one(const struct maker *, struct store_conn *,
		    struct job *, size_t i);
/* After every make_store_one of the job has returned. */
void		 make_store_end(const struct maker *, struct store_conn *,
		    struct job *);
/* Fail every preset still pending, for why (the run stopped, say). */
void		 job_fail_pending(struct job *, enum make_why, const char *why,
		    int storage);

#endif
