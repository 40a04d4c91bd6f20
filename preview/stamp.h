/*
 * stamp: one small object per preset holding its definition.
 *
 * A stamp lives directly under the previews root as
 * "<previews>.prewctl-stamp-<preset>" (keys.h), so one delimiter listing
 * of the root finds every stamp and every preset folder at once. Its body
 * is two lines: the canonical definition (preset_canonical) and
 * "source=<source>", the prefix of the originals its previews are made
 * from, which says which configuration owns the preset.
 *
 * A stamp whose ETag is the MD5 of the expected body is current; so is one
 * whose ETag is the MD5 of the definition alone (written before stamps
 * named their source: such a stamp is taken as ours). Any other ETag (as
 * with SSE-KMS) means the body is read and compared. When a definition
 * changes, generate rewrites the stamp before any preview; the stamp's
 * LastModified is then the moment the preset changed, and previews not
 * newer than it are stale.
 */
#ifndef PREWCTL_STAMP_H
#define PREWCTL_STAMP_H

#include "store/store.h"

#define STAMP_MAX 2048

struct stamp {
	const struct preset	*preset;
	char			 canonical[1024];	/* the definition */
	char			 body[STAMP_MAX];	/* what is written */
	char			 md5[33];	/* hex MD5 of body */
	char			 def_md5[33];	/* hex MD5 of canonical */
	char			 etag[STORE_ETAG_MAX + 1];	/* listed */
	int			 exists;
	int			 current;	/* exists and matches */
	int			 other_source;	/* made from another source: */
	char			 found_source[1024];	/* the stamp's */
	int64_t			 mtime_ms;
};

struct stamps {
	struct stamp	*v;		/* one per preset asked for */
	size_t		 n;
	char	       **dirs;		/* every folder name under the root */
	size_t		 ndirs;
	char	       **stamped;	/* every preset name with a stamp */
	size_t		 nstamped;
	uint64_t	 loose;		/* other objects directly in the root */
};

/*
 * Read the stamps of presets[0..n), made from source, and what else the
 * root holds: one LIST, and a GET only for a stamp whose ETag says
 * nothing.
 */
enum store_status	 stamps_read(struct store_conn *, const char *previews,
		    const char *source, const struct preset *const *presets,
		    size_t n, struct stamps *, struct store_error *);
/* Set s up for preset p made from source: its body and their MD5s. */
int		 stamp_init(struct stamp *s, const struct preset *p,
		    const char *source);
/*
 * Check s (set up by stamp_init) by its object alone, never a listing,
 * which can lag a PUT (RGW updates its index afterwards): a HEAD, and a
 * GET when the ETag says nothing and is not known's (what an earlier
 * check found of the same object holds; known may be NULL). Sets exists,
 * current, other_source and found_source, etag.
 */
enum store_status	 stamp_check(struct store_conn *, const char *previews,
		    const char *source, struct stamp *s,
		    const struct stamp *known, struct store_error *);
void		 stamps_release(struct stamps *);
/* Write the current definition of s->preset. */
enum store_status	 stamp_write(struct store_conn *, const char *previews,
		    const struct stamp *, struct store_error *);

/*
 * What the previews root holds besides the presets configured:
 *   removed: a preset with a stamp naming our source (or none: older
 *            stamps), no longer configured; purge --removed-presets
 *            deletes its folder and its stamp;
 *   theirs:  a preset whose stamp names another source: another
 *            configuration's, never touched;
 *   foreign: a folder without a stamp, which prewctl did not make (a
 *            name no preset can have, or no stamp): never touched.
 */
enum root_kind { ROOT_REMOVED, ROOT_THEIRS, ROOT_FOREIGN };

struct root_item {
	char		*name;		/* folder or preset name */
	enum root_kind	 kind;
	int		 has_dir;	/* "<previews><name>/" holds keys */
	int		 has_stamp;
};

/*
 * Sort what stamps_read found into items (a new array, free with
 * root_items_free): a GET for each stamp of a preset not configured.
 */
enum store_status	 root_classify(struct store_conn *, const char *previews,
		    const char *source, const struct config *,
		    const struct stamps *, struct root_item **, size_t *,
		    struct store_error *);
void		 root_items_free(struct root_item *, size_t);

#endif
