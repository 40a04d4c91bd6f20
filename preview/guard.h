/*
 * guard: no preview of a definition other than the one on storage.
 *
 * Two runs may overlap with different definitions of a preset (a cron
 * run still going with the old width while CI's run writes the new
 * stamp). A preview the old run writes after the new stamp would be newer
 * than it, and so fresh for good. A HEAD per object would catch it at a
 * price; instead the guard re-reads the stamps (a HEAD of each, up to 8
 * at once: a listing can lag a write) every interval and keeps the keys
 * written since the last check that found the stamps unchanged: the
 * suspects.
 *
 *   - A preview written before a check began is older than any stamp
 *     written after that check's HEADs: if the stamp changes later, the
 *     preview is stale by the stamp's time. Only suspects can be wrong.
 *   - When a check finds a preset's stamp no longer ours, that preset is
 *     lost: nothing more is written for it, its suspects are deleted, and
 *     a write that completes later is deleted by its writer
 *     (guard_stored says so). A deleted preview is missing: the run with
 *     the new definition, or the next one, makes it.
 *   - When writing stops, a last check covers what is still suspect.
 *
 * generate and serve both go through it; serve checks every 30 s.
 * Lock invariants: `mtx` guards lost[], the suspect lists, the counts,
 * `stopping` and `last`; `check_mtx` (one check at a time) guards what
 * the last check found and the checks' connections.
 */
#ifndef PREWCTL_GUARD_H
#define PREWCTL_GUARD_H

#include <stdint.h>

#include "stamp.h"

struct guard;

/*
 * Told (serialised) of a preset lost (or, when following, found again)
 * and of each suspect removed, or not removed (error says why: that
 * preview may now be wrong and fresh).
 */
struct guard_cbs {
	void	(*lost)(void *arg, size_t preset, int lost);
	void	(*removed)(void *arg, size_t preset, const char *key,
		    const char *error);
	void	*arg;
};

/*
 * Watch the stamps of presets[0..n) under previews. start is what
 * stamps_read found at the start (a stamp that is still the same object
 * keeps what was found of it, with no GET); the guard keeps its
 * own copy. A run that wrote its stamps starts with every preset ours; a
 * guard that follows (serve, which never rewrites a stamp) starts with
 * the presets whose stamp is not theirs lost, checks on every interval,
 * and finds a preset again when its stamp comes back to our definition.
 * NULL with no memory.
 */
struct guard	*guard_new(struct store *, const char *previews,
		    const char *source, const struct preset *const *presets,
		    size_t n, const struct stamps *start, int follow,
		    const struct guard_cbs *);
void		 guard_free(struct guard *);

/* Whether a preview of preset i may be written now. */
int		 guard_may_store(struct guard *, size_t i);
/*
 * After a preview of preset i was written under key: 0, or -1 when the
 * preset was lost meanwhile and the caller must delete what it wrote.
 */
int		 guard_stored(struct guard *, size_t i, const char *key);

/* Check now: on a lost preset, its suspects are deleted. */
enum store_status guard_check(struct guard *, struct store_error *);
/*
 * A thread that checks every interval_ms, or sooner when suspects pile
 * up, until guard_stop, which makes the last check when anything is
 * still suspect and returns its status.
 */
int		 guard_start(struct guard *, long interval_ms);
/*
 * Writing has ended: the thread makes the last check now, so that it
 * runs alongside what the caller still does; guard_stop waits for it
 * (and checks again only what it could not).
 */
void		 guard_last(struct guard *);
enum store_status guard_stop(struct guard *, struct store_error *);

/* The requests made, added into sum. */
void		 guard_stats(struct guard *, struct s3_stats *sum);
/* How many presets were lost. */
size_t		 guard_nlost(struct guard *);

#endif
