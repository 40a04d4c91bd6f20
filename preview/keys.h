/*
 * keys: where each object prewctl reads or writes lives, in one place.
 *
 *   original        <source><rel>                  photo/2024/cat.jpg
 *   preview         <previews><preset>/<rel>       prew/small/2024/cat.jpg
 *   preset prefix   <previews><preset>/            prew/small/
 *   stamp           <previews>.prewctl-stamp-<preset>
 *   failure mark    <previews>.prewctl-failed/<preset>/<rel>
 *
 * <rel> is the original's key without <source>. With the prefixes cut off,
 * the originals, every preset's previews and the failure marks sort the
 * same way, which is what the merge-join relies on. A preset name holds
 * [A-Za-z0-9_-] only and never starts with '.' or '-', so no preset folder
 * can be taken for a stamp or for the failure marks.
 *
 * The key_* builders append to a buf and return 0, or -1 with no memory.
 */
#ifndef PREWCTL_KEYS_H
#define PREWCTL_KEYS_H

#include <stddef.h>

#include "s3/buf.h"

#define KEY_MAX		1024		/* S3's limit on a key, in bytes */
#define STAMP_NAME	".prewctl-stamp-"
#define FAILED_DIR	".prewctl-failed"

/* Whether s is a preset name: [A-Za-z0-9_-]+, not starting with '-'. */
int		 key_preset_name_ok(const char *s, size_t len);

int		 key_preset_prefix(struct buf *, const char *previews,
		    const char *preset);
int		 key_preview(struct buf *, const char *previews,
		    const char *preset, const char *rel);
int		 key_stamp(struct buf *, const char *previews,
		    const char *preset);
int		 key_failed_prefix(struct buf *, const char *previews,
		    const char *preset);
int		 key_failed(struct buf *, const char *previews,
		    const char *preset, const char *rel);

/* The preset a stamp key names, or NULL when key is no stamp. */
const char	*key_stamp_preset(const char *previews, const char *key);

/* What key_parse_preview found. */
enum key_verdict {
	KEY_OK = 0,
	KEY_OUTSIDE,		/* not under <previews>, or no <rel> */
	KEY_MALFORMED,		/* empty, ".", ".." segment, control byte,
				   too long, bad preset name */
};

/*
 * Split a preview key (as a URL path names it, already percent-decoded)
 * into its preset, written into preset[0..len), and its rel, pointing
 * into key. Only keys generate could have written pass.
 */
enum key_verdict key_parse_preview(const char *previews, const char *key,
		    char *preset, size_t len, const char **rel);

#endif
