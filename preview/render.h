/*
 * render: every pixel goes through libvips here.
 *
 * One call turns one original (in memory) into the previews of several
 * presets. Limits are checked from the header before any pixel is decoded,
 * only trusted loaders run, and a truncated or corrupt image is an error,
 * never a preview.
 */
#ifndef PREWCTL_RENDER_H
#define PREWCTL_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "s3/buf.h"
#include "config.h"

struct render_limits {
	uint64_t	 max_pixels;	/* width * height * pages of the input */
	uint64_t	 max_bytes;	/* size of the encoded input */
	int		 timeout_s;	/* per image; 0: none */
};

enum render_status {
	RENDER_OK = 0,
	RENDER_EIMAGE,		/* cannot be made from this original, ever */
	RENDER_ETIMEOUT,	/* image_timeout ran out: may work another time */
	RENDER_ENOMEM,
};

struct render_out {
	struct buf		 data;		/* the encoded preview */
	enum format		 format;	/* never FMT_SAME */
	const char		*content_type;	/* "image/jpeg", ... (static) */
	int			 width;
	int			 height;
	enum render_status	 status;	/* of this preset */
	char			 error[256];	/* why, when not made */
};

void		 render_out_init(struct render_out *);
void		 render_out_release(struct render_out *);

/*
 * Call once in main before any thread starts: VIPS_INIT, the loader
 * allow-list, cache off, and libvips' own threads set to vips_threads.
 * Returns 0 or -1 with a message in err.
 */
int		 render_global_init(const char *argv0, int vips_threads,
		    char *err, size_t errlen);
void		 render_global_shutdown(void);
/* Each worker thread calls this before it exits. */
void		 render_thread_shutdown(void);

/*
 * Render in[0..len) for presets[0..n) into outs[0..n) (initialised by the
 * caller). Each preset succeeds or fails on its own: outs[i].status and
 * outs[i].error say how it went, and a failed one keeps no data. When the
 * original itself cannot be read every preset has its reason. Returns
 * RENDER_OK when all were made, else the first failure's status with its
 * reason in err (which names the problem, not the key).
 */
enum render_status render_image(const void *in, size_t len,
		    const struct preset *const *presets, size_t n,
		    const struct render_limits *, struct render_out *outs,
		    char *err, size_t errlen);

/* The largest AVIF preview made, in pixels: an AV1 encode is one call. */
#define RENDER_AVIF_MAX_PIXELS	(4096 * 4096)


/*
 * Whether an ICC profile is plain sRGB, so that converting to sRGB would
 * change nothing (after render_global_init).
 */
int		 render_profile_is_srgb(const void *icc, size_t len);

#endif
