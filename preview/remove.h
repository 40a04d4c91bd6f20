/*
 * remove: delete a spool of keys with DeleteObjects, 1000 keys a request,
 * several requests in flight.
 *
 * purge never deletes while it lists: it spools every key to delete into a
 * temporary file (NUL-separated, since keys may hold newlines), checks its
 * refusals, and only then hands the spool to remove_spool. Memory holds
 * one batch per thread, whatever the number of keys.
 */
#ifndef PREWCTL_REMOVE_H
#define PREWCTL_REMOVE_H

#include <signal.h>
#include <stdio.h>

#include "store/store.h"

int		 spool_add(FILE *, const char *key);
/* The next key into b; 1 with a key, 0 at the end, -1 on error. */
int		 spool_next(FILE *, struct buf *b);

/*
 * After a whole-request failure (status) no more batches are sent: keys
 * neither deleted nor failed were not tried.
 */
struct remove_result {
	uint64_t		 deleted;
	uint64_t		 failed;
	uint64_t		 refused;	/* of failed: access denied */
	struct s3_stats		 requests;
	enum store_status	 status;	/* first whole-request failure */
	struct store_error	 err;
};

/* Called, serialised, for each key deleted and each key not deleted. */
struct remove_cbs {
	void	(*deleted)(void *arg, const char *key);
	void	(*failed)(void *arg, const char *key, enum store_status,
		    const char *why);
	void	*arg;
};

void		 remove_spool(struct store *, FILE *spool, int nthreads,
		    volatile sig_atomic_t *cancel, const struct remove_cbs *,
		    struct remove_result *);

#endif
