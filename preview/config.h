/*
 * config: presets.ini, parsed with inih (what a preset is: preset.h).
 *
 * Every problem is an error naming file, line and key; nothing is ignored.
 * config_load fills a caller-owned struct config; config_release frees it.
 */
#ifndef PREWCTL_CONFIG_H
#define PREWCTL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "preset.h"

struct config {
	char		*path;		/* the file it came from */

	/* [storage] */
	char		*bucket;	/* S3 bucket, or NULL */
	char		*directory;	/* local folder, or NULL */
	char		*endpoint;	/* NULL: AWS */
	char		*region;	/* NULL: from the environment */
	int		 path_style;
	int		 tls_verify;
	char		*ca_bundle;
	char		*source;	/* "photo/" */
	char		*previews;	/* "prew/" */
	char		*acl;		/* NULL: none */
	char		*cache_control;	/* NULL: none */
	char	       **extensions;	/* lowercase, without dot */
	size_t		 nextensions;
	uint64_t	 max_pixels;
	uint64_t	 max_bytes;
	long		 timeout_ms;	/* connect timeout */
	long		 low_speed_time_s;
	int		 retries;
	int		 image_timeout_s;

	struct preset	*presets;	/* in file order */
	size_t		 npresets;
};

/* Debian's inih r55 reads lines into a 200-byte buffer. */
#define CONFIG_MAX_LINE 199
/* Presets a configuration may have: each job keeps them in a bit mask. */
#define CONFIG_MAX_PRESETS 64
/* A preset name: [A-Za-z0-9_-], not starting with '-'. */
#define PRESET_NAME_MAX 40

/*
 * Load path into cfg. On failure returns -1 and writes one message such as
 * "presets.ini:12: unknown key 'widht' in [preset small]" into err.
 */
int		 config_load(const char *path, struct config *cfg,
		    char *err, size_t errlen);
void		 config_release(struct config *);
const struct preset *config_preset(const struct config *, const char *name);

#endif
