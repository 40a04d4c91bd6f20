/*
 * diff: the streaming merge-join of the originals against each preset's
 * previews.
 *
 * The source prefix and every preset's prefix are listed at the same time,
 * each by its own thread into a small bounded ring. With the prefixes
 * stripped all P+1 streams are in the same byte order, so one pass that
 * always takes the smallest head classifies every key, holding one entry
 * per stream whatever the size of the bucket.
 */
#ifndef PREWCTL_DIFF_H
#define PREWCTL_DIFF_H

#include <signal.h>
#include <stdint.h>

#include "store.h"

enum pstate {
	PS_NONE = 0,		/* neither original nor preview */
	PS_MISSING,		/* original, no preview */
	PS_STALE_ORIGINAL,	/* original newer than the preview */
	PS_STALE_PRESET,	/* preview older than the preset's stamp */
	PS_FRESH,
	PS_ORPHAN,		/* preview, no original */
};
#define PS_COUNT 6

const char	*pstate_name(enum pstate);

struct diff_entry {
	char		*key;		/* the full key */
	uint64_t	 size;
	int64_t		 mtime_ms;
	char		 etag[80];
};

struct diff_item {
	const char			*rel;	/* key without its prefix */
	const struct diff_entry		*source;	/* NULL: no original */
	const struct diff_entry *const	*previews;	/* [npresets], NULL: none */
	const enum pstate		*state;		/* [npresets] */
};

struct diff_preset {
	const char	*name;
	int64_t		 stamp_ms;	/* previews up to this are stale */
	int		 changed;	/* every existing preview is stale */
};

struct diff_params {
	struct store			*store;
	const char			*source;	/* "photo/" */
	const char			*previews;	/* "prew/" */
	const char			*subpath;	/* --prefix, "" for all */
	const struct diff_preset	*presets;
	size_t				 npresets;
	char *const			*extensions;	/* lowercase */
	size_t				 nextensions;
	volatile sig_atomic_t		*cancel;
};

struct diff_result {
	uint64_t	 originals;
	uint64_t	 ignored;	/* under source, not an image */
	uint64_t	 previews;	/* preview objects seen */
	struct s3_stats	 requests;
	char		 failed_prefix[1024];	/* the listing that failed */
};

/* Return nonzero to stop the diff (then S3_ECANCELLED). */
typedef int	(*diff_cb)(void *arg, const struct diff_item *);

enum s3_status	 diff_run(const struct diff_params *, diff_cb, void *arg,
		    struct diff_result *, struct s3_error *);

/* Whether key's extension is one of exts (case-insensitive). */
int		 diff_has_extension(const char *key, char *const *exts,
		    size_t n);

#endif
