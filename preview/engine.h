/*
 * engine: what plan, generate, purge and serve share, behind one API.
 *
 * engine_open chooses the presets, opens the storage, reads the stamps
 * and builds the diff's parameters; engine_write_stamps records changed
 * definitions (and owns the rule that makes every preview written after
 * a stamp strictly newer than it); engine_maker describes how previews are
 * made, for the pool and for serve. The command layer only turns what
 * comes back into messages and exit codes.
 *
 * Errors: an enum eng_status says what kind of failure it was, and a
 * struct eng_error says what exactly (the storage's own error, the key).
 */
#ifndef PREWCTL_ENGINE_H
#define PREWCTL_ENGINE_H

#include <signal.h>

#include "diff.h"
#include "guard.h"
#include "make.h"
#include "stamp.h"

enum eng_status {
	ENG_OK = 0,		/* 0 */
	ENG_ENOMEM,		/* 1 out of memory */
	ENG_CONFIG,		/* 2 the configuration cannot work as it is */
	ENG_STORAGE,		/* 3 the storage failed (see st and err) */
	ENG_INTERRUPTED,	/* 4 the cancel flag was raised */
};

struct eng_error {
	enum store_status	 st;	/* for ENG_STORAGE */
	struct store_error	 err;
	char			 what[64];	/* "cannot list", ... */
	char			 subject[1100];	/* the key or prefix */
	char			 text[600];	/* ENG_CONFIG, ENG_ENOMEM, and
					   ENG_STORAGE when what is "" */
	int			 setup;	/* the storage cannot be opened as
					   configured: no folder, no
					   credentials */
};

/* One line: "cannot list 'photo/': AccessDenied (HTTP 403)". */
const char	*eng_error_text(enum eng_status, const struct eng_error *,
		    char *, size_t);

struct eng_params {
	const struct config	*cfg;
	char *const		*names;		/* --preset; none: all */
	size_t			 nnames;
	const char		*subpath;	/* --prefix, "" for all */
	int			 retry_failed;
	int			 any_source;	/* a stamp naming another
						   source is no error */
	unsigned		 shard, nshards;	/* --shard I/N; 0/0: all */
	int			 ranges;	/* --list-ranges; 0: auto */
	int			 lists;		/* diff_run follows: its first
						   pages come with the stamps */
	volatile sig_atomic_t	*cancel;
	s3_log_fn		 log;		/* -vv, or NULL */
	void			*log_arg;
};

struct engine {
	const struct config	 *cfg;
	struct store		 *store;
	struct store_conn	 *conn;		/* stamps and odd requests */
	const struct preset	**presets;	/* chosen, in file order */
	size_t			  npresets;
	const char		**def_md5;	/* per preset */
	struct stamps		  stamps;
	struct diff_preset	 *dp;
	struct diff_params	  params;
	struct buf		  subpath;	/* normalised: "" or "a/b/" */
	unsigned		  shard, nshards;
	volatile sig_atomic_t	 *cancel;
};

enum eng_status	 engine_open(struct engine *, const struct eng_params *,
		    struct eng_error *);
void		 engine_close(struct engine *);

/* Told of each stamp written: whether the preset existed before. */
typedef void	(*eng_stamp_fn)(void *arg, const struct preset *, int existed);

/*
 * Write the stamp of every chosen preset whose definition changed (with
 * missing_only, as serve does, only of those that have none), then wait
 * out the current second. A shard other than 0 writes nothing: it waits
 * (at most wait_s seconds) for shard 0's stamps to be its definitions,
 * then out their second, and works against them. Either way: S3's
 * LastModified has one-second resolution, and diff_classify takes a
 * preview in its stamp's second as stale, so every preview written from
 * here on is strictly newer.
 */
enum eng_status	 engine_write_stamps(struct engine *, int missing_only,
		    long wait_s, eng_stamp_fn, void *, struct eng_error *);
/* How many changed stamps engine_write_stamps will wait for (a shard). */
size_t		 engine_stamps_awaited(const struct engine *);

/* How previews are made: fills mk from the engine (which must outlive it). */
void		 engine_maker(const struct engine *, struct guard *,
		    struct maker *);

/*
 * A guard over the chosen presets (guard.h), following when the caller
 * never rewrites stamps (serve); NULL with no memory.
 */
struct guard	*engine_guard(const struct engine *, int follow,
		    const struct guard_cbs *);

/* What the previews root holds besides the presets (stamp.h). */
enum eng_status	 engine_root(struct engine *, struct root_item **, size_t *,
		    struct eng_error *);

#endif
