/*
 * stamp: one small object per preset holding its canonical definition.
 *
 * Stamps live directly under the previews root as
 * "<previews>.prewctl-stamp-<preset>", so one delimiter listing of the root
 * finds every stamp and every preset folder at once. A stamp whose ETag is
 * the MD5 of the configured definition is current (when the ETag is not an
 * MD5, as with SSE-KMS, its body is read and compared). When a definition
 * changes, generate rewrites the stamp before any preview; the stamp's
 * LastModified is then the moment the preset changed, and previews not
 * newer than it are stale.
 */
#ifndef PREWCTL_STAMP_H
#define PREWCTL_STAMP_H

#include "store.h"

#define STAMP_NAME ".prewctl-stamp-"
#define STAMP_MAX 1024

struct stamp {
	const struct preset	*preset;
	char			 canonical[STAMP_MAX];
	char			 md5[33];	/* hex MD5 of canonical */
	int			 exists;
	int			 current;	/* exists and matches */
	int64_t			 mtime_ms;
};

struct stamps {
	struct stamp	*v;		/* one per preset asked for */
	size_t		 n;
	char	       **dirs;		/* every "<name>" folder under the root */
	size_t		 ndirs;
	char	       **stamp_keys;	/* every stamp key under the root */
	size_t		 nstamp_keys;
};

/* Read the stamps of presets[0..n) and what else the root holds. */
enum s3_status	 stamps_read(struct store_conn *, const char *previews,
		    const struct preset *const *presets, size_t n,
		    struct stamps *, struct s3_error *);
void		 stamps_release(struct stamps *);
/* Write the current definition of s->preset. */
enum s3_status	 stamp_write(struct store_conn *, const char *previews,
		    const struct stamp *, struct s3_error *);
/* "<previews>.prewctl-stamp-<name>" into a new string; NULL on no memory. */
char		*stamp_key(const char *previews, const char *name);

#endif
