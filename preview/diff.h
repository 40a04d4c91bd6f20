/*
 * diff: the streaming merge-join of the originals against each preset's
 * previews and failure marks.
 *
 * The source prefix, every preset's prefix and every preset's failure
 * marks' prefix are listed at the same time, each by its own thread into a small
 * bounded ring. With the prefixes stripped all the streams are in the
 * same byte order (keys.h), so one pass that always takes the smallest
 * head classifies every key, holding one entry per stream whatever the
 * size of the bucket.
 */
#ifndef PREWCTL_DIFF_H
#define PREWCTL_DIFF_H

#include <signal.h>
#include <stdint.h>

#include "store/store.h"

enum pstate {
	PS_NONE = 0,		/* neither original nor preview */
	PS_MISSING,		/* original, no preview */
	PS_STALE_ORIGINAL,	/* the preview is not newer than the original */
	PS_STALE_PRESET,	/* the preview is not newer than its stamp */
	PS_FRESH,
	PS_ORPHAN,		/* preview, no original */
	PS_KNOWN_FAILURE,	/* to make, but it failed and nothing changed */
};
#define PS_COUNT 7

const char	*pstate_name(enum pstate);
/* Whether generate makes a preview in this state (--force: fresh too). */
int		 pstate_todo(enum pstate, int force);

struct diff_entry {
	char		*key;		/* the full key, etag after it */
	const char	*etag;		/* into the same allocation */
	uint64_t	 size;
	int64_t		 mtime_ms;
};

struct diff_preset {
	const char	*name;
	int64_t		 stamp_ms;	/* previews up to this are stale */
	int		 changed;	/* every existing preview is stale */
};

/*
 * The state of one preset's preview from the original (src), the preview
 * (prev) and the preset's failure mark (mark), each NULL when absent. A mark counts
 * only when it is newer than both the original and the preset's stamp:
 * the original has not changed since it failed, nor has the preset.
 */
enum pstate	 diff_classify(const struct diff_entry *src,
		    const struct diff_entry *prev,
		    const struct diff_entry *mark, const struct diff_preset *,
		    int retry_failed);

struct diff_item {
	const char			*rel;	/* key without its prefix */
	const struct diff_entry		*source;	/* NULL: no original */
	const struct diff_entry *const	*previews;	/* [npresets], NULL: none */
	const struct diff_entry *const	*marks;		/* [npresets], NULL: none */
	const enum pstate		*state;		/* [npresets] */
};

/*
 * Ranges listed at once, more as these end; fewer with many presets, so
 * that no more than DIFF_SOCKETS listings are open at once.
 */
#define DIFF_PARALLEL	16
#define DIFF_SOCKETS	128

struct diff_params {
	struct store			*store;
	const char			*source;	/* "photo/" */
	const char			*previews;	/* "prew/" */
	const char			*subpath;	/* --prefix, "" for all */
	const struct diff_preset	*presets;
	size_t				 npresets;
	char *const			*extensions;	/* lowercase */
	size_t				 nextensions;
	int				 retry_failed;	/* marks count for nothing */
	int				 no_marks;	/* none exist: not listed */
	unsigned			 shard;		/* this shard of */
	unsigned			 nshards;	/* 0 or 1: all keys */
	int				 ranges;	/* 0: DIFF_PARALLEL */
	struct diff_lead		*lead;	/* a head start, or NULL */
	volatile sig_atomic_t		*cancel;
};

/*
 * A head start: the first page of the source's listing and of each
 * preset's previews (not the failure marks', which may not exist), read
 * in threads of their own from diff_lead_start on, while the caller does
 * other requests (engine_open: the stamps). diff_run takes each page as
 * the beginning of range 0's listing, on its connection (no key is listed
 * twice), and the source's as telling whether the source is worth
 * splitting. Only the store, source, previews, subpath, the presets'
 * names and cancel of the parameters are read. NULL with no memory.
 */
struct diff_lead;
struct diff_lead *diff_lead_start(const struct diff_params *);
void		 diff_lead_free(struct diff_lead *);

struct diff_result {
	uint64_t	 originals;
	uint64_t	 ignored;	/* under source, not an image */
	uint64_t	 previews;	/* preview objects seen */
	uint64_t	 marks;		/* failure marks seen */
	uint64_t	 other_shards;	/* keys left to the other shards */
	uint64_t	 ranges;	/* listed apart */
	uint64_t	 splits;	/* of a range merged */
	struct s3_stats	 requests;
	char		 failed_prefix[1100];	/* the listing that failed */
};

/*
 * Return nonzero to stop the diff (then STORE_ECANCELLED). Calls are
 * serialised, but come from the threads of the ranges: items are in
 * byte order within a range, and the ranges interleave.
 */
typedef int	(*diff_cb)(void *arg, const struct diff_item *);

/* The shard of a key, by the FNV-1a 64-bit hash of rel, modulo n. */
unsigned	 diff_shard(const char *rel, unsigned n);

enum store_status diff_run(const struct diff_params *, diff_cb, void *arg,
		    struct diff_result *, struct store_error *);

/* Whether key's extension is one of exts (case-insensitive). */
int		 diff_has_extension(const char *key, char *const *exts,
		    size_t n);

#endif
