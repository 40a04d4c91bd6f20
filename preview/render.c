/*
 * render: one original in memory, the previews of several presets out.
 *
 * For each image:
 *   1. the byte limit and a look at the first bytes, before libvips sees
 *      anything (see render_sniff);
 *   2. a header-only open (sequential, no pixel decoded) that gives the
 *      loader, the size, the EXIF orientation, the ICC profile and
 *      "n-pages": the pixel limit is width * height * pages, so a
 *      10,000-frame GIF is refused here although only its first frame
 *      would be rendered;
 *   3. one vips_thumbnail_buffer: shrink-on-load (JPEG DCT scaling,
 *      WebP/HEIF scaled decode) to the largest size any preset needs,
 *      EXIF auto-rotate, first page only, sRGB, and fail_on=truncated so
 *      that a cut-off JPEG, PNG or GIF is an error instead of a
 *      grey-bottomed preview.  With several presets that is decoded into
 *      memory once and each preset is resized from it (render_base):
 *      decoding at full size and thumbnailing from there was 3 times
 *      slower, one shrink-on-load per preset repeats the entropy decoding
 *      and the colour transform, and this is about 20 % less CPU than the
 *      latter on 12 MP JPEGs with 3 presets;
 *   4. the cover crop, 8 bits a sample, flattening onto the preset's
 *      background when the output has no alpha, and a save with all
 *      metadata stripped.
 *
 * Only trusted loaders run: render_global_init blocks every loader and
 * unblocks JPEG, PNG, WebP, GIF, HEIF/AVIF and TIFF.  SVG, PDF,
 * ImageMagick, matrix, CSV, vips and the rest fail with "is not a known
 * file format" or "operation is blocked".
 *
 * Timeout: the decode and the thumbnail of each preset get libvips
 * progress reporting.
 * Every image computed from it (crop, flatten, saver) reports "eval" to it
 * after each tile, and the handler kills it once the deadline has passed;
 * the next tile then fails and the save returns an error, which we turn
 * into "timed out after N s".  A single long call inside a decoder or an
 * encoder (one libheif decode, one AV1 encode) is not interrupted; the
 * deadline is checked again before each preset.
 *
 * Errors: libvips keeps one error buffer for all threads, so its text is
 * copied right where a call fails, on one line.  With the operation cache
 * off (vips_cache_set_max(0)) nothing outlives a call, and render_image
 * can run in several threads at once (but for Orc: see orc_program_compile
 * below).
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lcms2.h>
#include <orc/orc.h>
#include <vips/vips.h>

#include "render.h"

/* Passed as height when only the width constrains. */
#define RENDER_HUGE	VIPS_MAX_COORD

struct header {
	const char	*loader;	/* "jpegload_buffer", ... */
	int		 heif_av1;	/* heifload: AV1 (avif), not HEVC */
	int		 icc;		/* has a profile that is not sRGB */
	int		 width;		/* as displayed, after EXIF rotation */
	int		 height;
};

struct watch {
	struct timespec	 start;
	int		 timeout_s;
	atomic_int	 fired;
};

/* The loaders allowed to see untrusted bytes (class names in 8.14). */
static const char *const render_loaders[] = {
	"VipsForeignLoadJpeg",
	"VipsForeignLoadPng",		/* libpng build */
	"VipsForeignLoadPngSpng",	/* spng build; ignored if absent */
	"VipsForeignLoadWebp",
	"VipsForeignLoadNsgif",
	"VipsForeignLoadHeif",
	"VipsForeignLoadTiff",
};

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Messages are best effort: a truncated one is still the right one. */
static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * The last libvips warning seen by this thread.  Some loaders only warn
 * (libpng: "Invalid IHDR data") and then fail with no error text.
 */
static _Thread_local char render_warning[256];

/*
 * The image families this thread is working with: the input's and the
 * output's ("jpeg", "png", ...). libvips keeps one error buffer for every
 * thread, so another worker's failure can land in ours; a line whose
 * domain names some other family is not about this image and is dropped.
 */
static const char *const render_families[] = {
	"jpeg", "png", "gif", "webp", "heif", "tiff"
};
static _Thread_local const char *render_family_in, *render_family_out;

static int
foreign_line(const char *line)
{
	const char	*colon = strchr(line, ':');
	char		 domain[64];
	size_t		 i, n;

	if (colon == NULL || (n = (size_t)(colon - line)) >= sizeof(domain))
		return 0;
	for (i = 0; i < n; i++)
		domain[i] = (char)g_ascii_tolower(line[i]);
	domain[n] = '\0';
	for (i = 0; i < sizeof(render_families) / sizeof(render_families[0]);
	    i++) {
		const char *f = render_families[i];

		if (strstr(domain, f) != NULL && f != render_family_in &&
		    f != render_family_out)
			return 1;
	}
	return 0;
}

/*
 * Append line to err (o bytes so far), after "; ", unless an earlier line
 * of msg is the same: fuzzed files repeat one warning a hundred times.
 * 0 once err is full.
 */
static int
join_one(const char *msg, const char *line, char *err, size_t errlen,
    size_t *o)
{
	const char	*seen;
	size_t		 n = strlen(line);

	for (seen = msg; seen < line; seen += strlen(seen) + 1)
		if (strcmp(seen, line) == 0)
			return 1;
	if (*o > 0) {
		if (*o + 3 >= errlen)
			return 0;
		memcpy(err + *o, "; ", 2);
		*o += 2;
	}
	if (n > errlen - 1 - *o)
		n = errlen - 1 - *o;
	memcpy(err + *o, line, n);
	*o += n;
	err[*o] = '\0';
	return *o + 1 < errlen;
}

/*
 * Join the lines of msg (which is cut up in place) into err: each distinct
 * line once, separated by "; ", without the lines about another image.
 * libvips' lines are "domain: message"; a line without a colon is a piece
 * of another thread's line written into the shared buffer at the same
 * moment, and is dropped too unless nothing else is left. Returns the
 * length written.
 */
static size_t
join_lines(char *msg, char *err, size_t errlen)
{
	char	*line, *end = msg + strlen(msg), *nl;
	size_t	 o = 0;
	int	 pass;

	err[0] = '\0';
	for (line = msg; (nl = strchr(line, '\n')) != NULL; line = nl + 1)
		*nl = '\0';
	for (pass = 0; pass < 2 && o == 0; pass++)
		for (line = msg; line < end; line += strlen(line) + 1) {
			if (*line == '\0' || foreign_line(line) ||
			    (pass == 0 && strchr(line, ':') == NULL))
				continue;
			if (!join_one(msg, line, err, errlen, &o))
				return o;
		}
	return o;
}

/*
 * Take libvips' error text (and clear it) as one line.  Without text
 * (another thread may have taken it) fall back to this thread's last
 * warning, then to what names the step.
 */
static void
vipserr(char *err, size_t errlen, const char *what)
{
	char	*msg;

	msg = vips_error_buffer_copy();
	if (err == NULL || errlen == 0)
		goto out;
	if (join_lines(msg, err, errlen) > 0)
		goto out;
	if (render_warning[0] != '\0')
		seterr(err, errlen, "%s", render_warning);
	else
		seterr(err, errlen, "%s failed", what);
out:
	g_free(msg);
}

static void
render_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
    gpointer arg)
{
	char	*copy, line[sizeof(render_warning)];
	size_t	 n;

	(void)domain;
	(void)arg;
	if ((level & G_LOG_LEVEL_WARNING) == 0 || msg == NULL)
		return;
	/*
	 * libvips warns with the whole shared error buffer at times: keep
	 * only the lines about this image.
	 */
	copy = g_strdup(msg);
	if ((n = join_lines(copy, line, sizeof(line))) > 0)
		memcpy(render_warning, line, n + 1);
	g_free(copy);
}

/*
 * The formats we accept, by their first bytes.  libvips sniffs too, but
 * it asks every loader, blocked or not, and svgload's sniffer spins
 * forever on a truncated gzip stream: only these reach libvips.
 */
static const char *
render_sniff(const unsigned char *p, size_t len)
{
	if (len >= 3 && memcmp(p, "\xff\xd8\xff", 3) == 0)
		return render_families[0];
	if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
		return render_families[1];
	if (len >= 6 && (memcmp(p, "GIF87a", 6) == 0 ||
	    memcmp(p, "GIF89a", 6) == 0))
		return render_families[2];
	if (len >= 12 && memcmp(p, "RIFF", 4) == 0 &&
	    memcmp(p + 8, "WEBP", 4) == 0)
		return render_families[3];
	/* ISO base media (HEIF, AVIF): the loader checks the brand. */
	if (len >= 12 && memcmp(p + 4, "ftyp", 4) == 0)
		return render_families[4];
	/* TIFF and BigTIFF, both byte orders. */
	if (len >= 4 && (memcmp(p, "II*\0", 4) == 0 ||
	    memcmp(p, "MM\0*", 4) == 0 || memcmp(p, "II+\0", 4) == 0 ||
	    memcmp(p, "MM\0+", 4) == 0))
		return render_families[5];
	return NULL;
}

void
render_out_init(struct render_out *o)
{
	buf_init(&o->data, BUF_NOMAX);
	o->format = FMT_JPEG;
	o->content_type = format_content_type(FMT_JPEG);
	o->width = 0;
	o->height = 0;
	o->status = RENDER_OK;
	o->error[0] = '\0';
}

void
render_out_release(struct render_out *o)
{
	buf_release(&o->data);
	o->width = 0;
	o->height = 0;
}

/* A context of our own: lcms2 must not report through libvips' handler. */
static cmsContext render_lcms;
/* Whether render_global_init ran, so that shutting down has a meaning. */
static int render_started;

static void
render_lcms_quiet(cmsContext ctx, cmsUInt32Number code, const char *text)
{
	(void)ctx; (void)code; (void)text;
}

/*
 * Orc 0.4.33, Debian 12's, hands out and takes back the memory of
 * compiled code without a lock (0.4.34 takes one). libvips compiles an
 * Orc program when it builds some operations (reducev, integer
 * convolutions) and frees it when they go, so two renders at once could
 * corrupt that memory: generate -j 2 crashed in orc_code_free about once
 * in 150 runs of 40 images. These definitions come before liborc's for
 * every caller in the process (libvips reaches liborc through its PLT)
 * and call liborc's under one lock: only compiling and freeing wait, never
 * running a program. (Locking whole pipeline builds instead cost 12 % of
 * the wall time at -j 2, and would cost more with more workers.)
 */
static pthread_mutex_t	orc_mtx = PTHREAD_MUTEX_INITIALIZER;

OrcCompileResult
orc_program_compile(OrcProgram *p)
{
	static OrcCompileResult	(*real)(OrcProgram *);
	OrcCompileResult	 r = ORC_COMPILE_RESULT_UNKNOWN_COMPILE;

	pthread_mutex_lock(&orc_mtx);
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "orc_program_compile");
	/* Not compiled, libvips runs its C code instead. */
	if (real != NULL)
		r = real(p);
	pthread_mutex_unlock(&orc_mtx);
	return r;
}

void
orc_program_free(OrcProgram *p)
{
	static void	(*real)(OrcProgram *);

	pthread_mutex_lock(&orc_mtx);
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "orc_program_free");
	if (real != NULL)
		real(p);
	pthread_mutex_unlock(&orc_mtx);
}

int
render_global_init(const char *argv0, int vips_threads, char *err,
    size_t errlen)
{
	size_t	 i;

	if (VIPS_INIT(argv0 != NULL ? argv0 : "prewctl") != 0) {
		vipserr(err, errlen, "libvips initialisation");
		return -1;
	}
	render_started = 1;
	if ((render_lcms = cmsCreateContext(NULL, NULL)) != NULL)
		cmsSetLogErrorHandlerTHR(render_lcms, render_lcms_quiet);
	/* Each image is processed once: a cache only holds memory. */
	vips_cache_set_max(0);
	if (vips_threads > 0)
		vips_concurrency_set(vips_threads);

	/* An allow-list: block every loader, then open the trusted ones. */
	vips_block_untrusted_set(TRUE);
	vips_operation_block_set("VipsForeignLoad", TRUE);
	for (i = 0; i < sizeof(render_loaders) / sizeof(render_loaders[0]); i++)
		vips_operation_block_set(render_loaders[i], FALSE);

	/*
	 * A library does not print: libvips' warnings ("error in tile",
	 * "ignoring nclx profile") would go to stderr.  Errors reach the
	 * caller through err; the last warning is kept for when a loader
	 * fails without saying why.
	 */
	g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
	    G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG, render_log, NULL);
	return 0;
}

void
render_global_shutdown(void)
{
	if (!render_started)
		return;
	render_started = 0;
	if (render_lcms != NULL)
		cmsDeleteContext(render_lcms);
	render_lcms = NULL;
	vips_shutdown();
}

void
render_thread_shutdown(void)
{
	vips_thread_shutdown();
}

static double
watch_elapsed(const struct watch *w)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - w->start.tv_sec) +
	    (double)(now.tv_nsec - w->start.tv_nsec) / 1e9;
}

static int
watch_expired(struct watch *w)
{
	if (w->timeout_s <= 0)
		return 0;
	if (atomic_load(&w->fired))
		return 1;
	if (watch_elapsed(w) < (double)w->timeout_s)
		return 0;
	atomic_store(&w->fired, 1);
	return 1;
}

/* "eval", from whichever thread is computing: may run concurrently. */
static void
render_eval(VipsImage *image, VipsProgress *progress, void *arg)
{
	struct watch	*w = arg;

	(void)progress;
	if (watch_expired(w))
		vips_image_set_kill(image, TRUE);
}

/*
 * Metadata a header carries: EXIF is at most 64 KiB, an ICC profile or XMP
 * packet a few hundred; megabytes are a bomb (a zTXt chunk inflating to
 * megabytes, say), refused before any pixel is decoded.
 */
#define RENDER_MAX_METADATA	(4 * 1024 * 1024)

static uint64_t
metadata_bytes(VipsImage *im)
{
	gchar		**fields;
	const void	 *blob;
	const char	 *str;
	size_t		  len;
	uint64_t	  sum = 0;
	GValue		  v = G_VALUE_INIT;
	int		  i;

	fields = vips_image_get_fields(im);
	for (i = 0; fields[i] != NULL; i++) {
		GType t = vips_image_get_typeof(im, fields[i]);

		if (t == VIPS_TYPE_BLOB &&
		    vips_image_get_blob(im, fields[i], &blob, &len) == 0)
			sum += len;
		else if ((t == G_TYPE_STRING || t == VIPS_TYPE_REF_STRING) &&
		    vips_image_get(im, fields[i], &v) == 0) {
			str = t == G_TYPE_STRING ? g_value_get_string(&v) :
			    vips_value_get_ref_string(&v, &len);
			if (str != NULL)
				sum += strlen(str);
			g_value_unset(&v);
		}
	}
	g_strfreev(fields);
	return sum;
}

/*
 * Whether an embedded profile is plain sRGB, so that converting to sRGB
 * would be an identity: an RGB matrix-shaper (no LUT for lcms2 to prefer)
 * with sRGB's colorants and tone curve.  Most camera JPEGs that are not
 * Display P3 carry one (HP's 3144-byte "sRGB IEC61966-2.1"), and the
 * transform was about 6 % of the CPU of a 12 MP JPEG made into one
 * preview.  Primaries within 0.003 tell sRGB from Display P3 (red X 0.515
 * against 0.436) or Adobe RGB; the curve, sampled at 128 points within
 * 0.0005 + 0.5 %, from gamma 2.2 (0.0036 off at 0.5).  A NaN fails.
 */
int
render_profile_is_srgb(const void *data, size_t len)
{
	static const cmsTagSignature colorants[3] = {
		cmsSigRedColorantTag, cmsSigGreenColorantTag,
		cmsSigBlueColorantTag
	};
	static const cmsTagSignature curves[3] = {
		cmsSigRedTRCTag, cmsSigGreenTRCTag, cmsSigBlueTRCTag
	};
	static const cmsTagSignature luts[] = {
		cmsSigAToB0Tag, cmsSigAToB1Tag, cmsSigAToB2Tag,
		cmsSigDToB0Tag, cmsSigDToB1Tag, cmsSigDToB2Tag
	};
	/* sRGB's primaries adapted to D50, as ICC profiles hold them. */
	static const double want[3][3] = {
		{ 0.4361, 0.2225, 0.0139 },
		{ 0.3851, 0.7169, 0.0971 },
		{ 0.1431, 0.0606, 0.7141 },
	};
	cmsHPROFILE	 prof;
	cmsCIEXYZ	*c;
	cmsToneCurve	*t;
	cmsProfileClassSignature cls;
	double		 x, y;
	size_t		 i;
	int		 k, ok = 0;

	if (render_lcms == NULL || len > UINT32_MAX ||
	    (prof = cmsOpenProfileFromMemTHR(render_lcms, data,
	    (cmsUInt32Number)len)) == NULL)
		return 0;
	cls = cmsGetDeviceClass(prof);
	if ((cls != cmsSigDisplayClass && cls != cmsSigInputClass &&
	    cls != cmsSigColorSpaceClass) ||
	    cmsGetColorSpace(prof) != cmsSigRgbData ||
	    cmsGetPCS(prof) != cmsSigXYZData || !cmsIsMatrixShaper(prof))
		goto out;
	for (i = 0; i < sizeof(luts) / sizeof(luts[0]); i++)
		if (cmsIsTag(prof, luts[i]))
			goto out;
	for (i = 0; i < 3; i++) {
		if ((c = cmsReadTag(prof, colorants[i])) == NULL ||
		    !(fabs(c->X - want[i][0]) <= 0.003) ||
		    !(fabs(c->Y - want[i][1]) <= 0.003) ||
		    !(fabs(c->Z - want[i][2]) <= 0.003))
			goto out;
		if ((t = cmsReadTag(prof, curves[i])) == NULL)
			goto out;
		for (k = 1; k <= 128; k++) {
			x = k / 128.0;
			y = x <= 0.04045 ? x / 12.92 :
			    pow((x + 0.055) / 1.055, 2.4);
			if (!(fabs(cmsEvalToneCurveFloat(t, (cmsFloat32Number)x) -
			    y) <= 0.0005 + 0.005 * y))
				goto out;
		}
	}
	ok = 1;
out:
	cmsCloseProfile(prof);
	return ok;
}

/*
 * Open the header only and check the pixel and metadata limits; nothing is
 * decoded.
 */
static int
render_header(const void *in, size_t len, const struct render_limits *lim,
    struct header *h, char *err, size_t errlen)
{
	VipsImage	*im;
	const char	*loader, *compression;
	uint64_t	 pixels, meta;
	int		 pages, rc = -1;

	im = vips_image_new_from_buffer(in, len, "",
	    "access", VIPS_ACCESS_SEQUENTIAL, NULL);
	if (im == NULL) {
		vipserr(err, errlen, "reading the header");
		return -1;
	}

	pages = 1;
	if (vips_image_get_typeof(im, "n-pages") != 0 &&
	    vips_image_get_int(im, "n-pages", &pages) == 0 && pages < 1)
		pages = 1;
	/* Sizes are at most VIPS_MAX_COORD, so width * height fits. */
	pixels = (uint64_t)im->Xsize * (uint64_t)im->Ysize;
	if (lim->max_pixels != 0 && (pixels > lim->max_pixels ||
	    (uint64_t)pages > lim->max_pixels / pixels)) {
		seterr(err, errlen, "image too large: %dx%d pixels x %d "
		    "page(s) exceeds max_pixels %llu", im->Xsize, im->Ysize,
		    pages, (unsigned long long)lim->max_pixels);
		goto out;
	}
	if ((meta = metadata_bytes(im)) > RENDER_MAX_METADATA) {
		seterr(err, errlen, "too much metadata: %llu bytes, at most %d",
		    (unsigned long long)meta, RENDER_MAX_METADATA);
		goto out;
	}

	/* Static names: the loader's nickname is the class's. */
	h->loader = "";
	if (vips_image_get_typeof(im, VIPS_META_LOADER) != 0 &&
	    vips_image_get_string(im, VIPS_META_LOADER, &loader) == 0) {
		GType		 t;

		t = vips_type_find("VipsOperation", loader);
		if (t != 0)
			h->loader = VIPS_OBJECT_CLASS(
			    g_type_class_peek(t))->nickname;
	}
	h->heif_av1 = 0;
	if (vips_image_get_typeof(im, "heif-compression") != 0 &&
	    vips_image_get_string(im, "heif-compression", &compression) == 0)
		h->heif_av1 = strcmp(compression, "av1") == 0;
	/*
	 * An sRGB profile on 8- or 16-bit RGB is left alone, as no profile
	 * is; float RGB (scRGB to libvips) is read through its profile.
	 */
	h->icc = 0;
	if (vips_image_get_typeof(im, VIPS_META_ICC_NAME) != 0) {
		const void	*icc;
		size_t		 icclen;
		int		 plain;

		plain = im->Bands >= 3 && (im->BandFmt == VIPS_FORMAT_UCHAR ||
		    im->BandFmt == VIPS_FORMAT_USHORT) &&
		    (im->Type == VIPS_INTERPRETATION_sRGB ||
		    im->Type == VIPS_INTERPRETATION_RGB16);
		h->icc = !plain || vips_image_get_blob(im, VIPS_META_ICC_NAME,
		    &icc, &icclen) != 0 || !render_profile_is_srgb(icc, icclen);
	}
	h->width = im->Xsize;
	h->height = im->Ysize;
	if (vips_image_get_orientation_swap(im)) {
		h->width = im->Ysize;
		h->height = im->Xsize;
	}
	rc = 0;
out:
	g_object_unref(im);
	return rc;
}

/*
 * FMT_SAME: keep the input's format when browsers show it and it suits a
 * single still frame; otherwise the closest that does.
 *   jpeg -> jpeg, png -> png, webp -> webp, avif -> avif,
 *   gif -> png (one frame, lossless, alpha kept),
 *   heic/heif (HEVC) -> jpeg (few browsers show HEIC),
 *   tiff -> jpeg (browsers do not show TIFF).
 */
static enum format
render_same(const struct header *h)
{
	if (strncmp(h->loader, "pngload", 7) == 0 ||
	    strncmp(h->loader, "gifload", 7) == 0)
		return FMT_PNG;
	if (strncmp(h->loader, "webpload", 8) == 0)
		return FMT_WEBP;
	if (strncmp(h->loader, "heifload", 8) == 0 && h->heif_av1)
		return FMT_AVIF;
	return FMT_JPEG;
}

/* Replace *img by out, which holds its own reference to what it needs. */
static void
swap_image(VipsImage **img, VipsImage *out)
{
	g_object_unref(*img);
	*img = out;
}

/* A copy of in without metadata: no EXIF, XMP, IPTC or ICC profile. */
static int
render_strip(VipsImage *in, VipsImage **out)
{
	gchar	**fields;
	int	 i;

	if (vips_copy(in, out, NULL) != 0)
		return -1;
	fields = vips_image_get_fields(*out);
	/* The core fields (width, ...) cannot be removed and stay. */
	for (i = 0; fields[i] != NULL; i++)
		(void)vips_image_remove(*out, fields[i]);
	g_strfreev(fields);
	return 0;
}

/*
 * Shrink-on-load from the encoded bytes: upright, first frame, sRGB.
 *
 * Colour: a profiled image (Adobe RGB, Display P3, ...) goes to sRGB
 * through export_profile; CMYK is always converted, with libvips' CMYK
 * profile when it has none.  An untagged RGB image is taken as sRGB, like
 * browsers do: export_profile would send it through 8.14's built-in
 * profile and shift saturated colours (pure blue comes out 85,15,253), so
 * it is left alone.  The NULL ends the argument list early when there is
 * no profile.
 */
static int
render_thumbnail(const void *in, size_t len, const struct header *h, int tw,
    int th, VipsSize size, VipsImage **out)
{
	return vips_thumbnail_buffer((void *)in, len, out, tw,
	    "height", th,
	    "size", size,
	    /*
	     * 8.14 ignores fail_on here; the loader option works. A GIF
	     * with bad LZW data only warns, and its frame comes out black:
	     * for GIF a warning is an error.
	     */
	    "option_string", strncmp(h->loader, "gifload", 7) == 0 ?
	    "[fail_on=warning]" : "[fail_on=truncated]",
	    "fail_on", VIPS_FAIL_ON_TRUNCATED,
	    h->icc ? "export_profile" : NULL, "srgb",
	    NULL);
}

/*
 * The scale of the original that preset p needs at most (1: full size;
 * an enlargement is made from the full size too).
 */
static double
render_scale(const struct preset *p, const struct header *h)
{
	double	sx = (double)p->width / h->width;
	double	sy = p->height > 0 ? (double)p->height / h->height : sx;
	double	sc;

	if (p->height > 0 && (p->fit == FIT_COVER || p->fit == FIT_FILL))
		sc = sx > sy ? sx : sy;
	else
		sc = sx < sy ? sx : sy;
	return sc > 1 ? 1 : sc;
}

/*
 * Several presets from one decode: shrink-on-load once to the largest
 * size any preset needs, keep that in memory, and make each preset from
 * it. A JPEG's entropy decoding, a PNG's inflate and the colour transform
 * are then done once per image instead of once per preset. NULL (and no
 * error) when the base would be too large to be worth keeping.
 */
#define RENDER_BASE_MAX_PIXELS	(24 * 1000 * 1000)

static int
render_base(const void *in, size_t len, const struct preset *const *presets,
    size_t n, const struct header *h, struct watch *w, VipsImage **base,
    char *err, size_t errlen)
{
	VipsImage	*thumb = NULL, *mem;
	double		 sc = 0, s;
	gulong		 sig = 0;
	size_t		 i;
	int		 bw;

	*base = NULL;
	for (i = 0; i < n; i++)
		if ((s = render_scale(presets[i], h)) > sc)
			sc = s;
	bw = (int)ceil(h->width * sc);
	if (bw < 1)
		bw = 1;
	if ((double)bw * (h->height * sc) > RENDER_BASE_MAX_PIXELS)
		return 0;
	if (render_thumbnail(in, len, h, bw, RENDER_HUGE, VIPS_SIZE_DOWN,
	    &thumb) != 0) {
		vipserr(err, errlen, "thumbnail");
		return -1;
	}
	if (w->timeout_s > 0) {
		vips_image_set_progress(thumb, TRUE);
		sig = g_signal_connect(thumb, "eval",
		    G_CALLBACK(render_eval), w);
	}
	mem = vips_image_copy_memory(thumb);
	if (sig != 0)
		g_signal_handler_disconnect(thumb, sig);
	g_object_unref(thumb);
	if (mem == NULL) {
		if (atomic_load(&w->fired))
			seterr(err, errlen, "timed out after %d s",
			    w->timeout_s);
		else
			vipserr(err, errlen, "decode");
		return -1;
	}
	/* Upright and converted: nothing left for the second pass to do. */
	(void)vips_image_remove(mem, VIPS_META_ORIENTATION);
	(void)vips_image_remove(mem, VIPS_META_ICC_NAME);
	*base = mem;
	return 0;
}

/* Little- and big-endian 32-bit fields of the containers below. */
static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/*
 * Nothing but pixels and what the format needs. 8.14's webpsave writes an
 * EXIF chunk it makes up (resolution, "ColorSpace: Uncalibrated") whatever
 * strip says, and pngsave a pHYs chunk: drop the WebP chunks ICCP, EXIF
 * and "XMP " (clearing their VP8X flags) and the PNG chunks that carry
 * metadata. The chunks kept are copied as they are. -1 when the encoder's
 * output is not the container it should be.
 */
static int
strip_webp(const unsigned char *in, size_t len, struct buf *out)
{
	size_t		 i, n, whole;
	unsigned char	 hdr[8];

	if (len < 12 || memcmp(in, "RIFF", 4) != 0 ||
	    memcmp(in + 8, "WEBP", 4) != 0 || le32(in + 4) != len - 8)
		return -1;
	buf_reset(out);
	if (buf_add(out, in, 12) != 0)
		return -1;
	for (i = 12; i < len; i += whole) {
		if (len - i < 8)
			return -1;
		n = le32(in + i + 4);
		/* A chunk of odd size is padded to an even one. */
		if (n > len - i - 8 || (n & 1 && n + 1 > len - i - 8))
			return -1;
		whole = 8 + n + (n & 1);
		if (memcmp(in + i, "ICCP", 4) == 0 ||
		    memcmp(in + i, "EXIF", 4) == 0 ||
		    memcmp(in + i, "XMP ", 4) == 0)
			continue;
		if (buf_add(out, in + i, whole) != 0)
			return -1;
		/* VP8X flags: ICC 0x20, EXIF 0x08, XMP 0x04. */
		if (memcmp(in + i, "VP8X", 4) == 0 && n >= 1)
			out->data[out->len - whole + 8] &= ~0x2c;
	}
	n = out->len - 8;
	memcpy(hdr, "RIFF", 4);
	hdr[4] = (unsigned char)n;
	hdr[5] = (unsigned char)(n >> 8);
	hdr[6] = (unsigned char)(n >> 16);
	hdr[7] = (unsigned char)(n >> 24);
	memcpy(out->data, hdr, 8);
	return 0;
}

static int
strip_png(const unsigned char *in, size_t len, struct buf *out)
{
	static const char *const drop[] = {
		"pHYs", "tEXt", "zTXt", "iTXt", "eXIf", "tIME", "iCCP"
	};
	size_t	i, n, k;
	int	keep;

	if (len < 8 || memcmp(in, "\x89PNG\r\n\x1a\n", 8) != 0)
		return -1;
	buf_reset(out);
	if (buf_add(out, in, 8) != 0)
		return -1;
	for (i = 8; i < len; i += 12 + n) {
		if (len - i < 12)
			return -1;
		n = be32(in + i);
		if (n > len - i - 12)
			return -1;
		keep = 1;
		for (k = 0; k < sizeof(drop) / sizeof(drop[0]); k++)
			if (memcmp(in + i + 4, drop[k], 4) == 0)
				keep = 0;
		if (keep && buf_add(out, in + i, 12 + n) != 0)
			return -1;
	}
	return 0;
}

/*
 * The size of preset p's preview of an image h, before it is made, for
 * the limits: what fit, the box and enlarge give, as libvips computes it
 * within a pixel.
 */
static void
render_out_size(const struct preset *p, const struct header *h, double *ow,
    double *oh)
{
	double	W = h->width, H = h->height, sx, sy, sc;

	sx = p->width / W;
	sy = p->height > 0 ? p->height / H : sx;
	if (p->fit == FIT_FILL && p->height > 0) {
		*ow = p->enlarge || p->width < W ? p->width : W;
		*oh = p->enlarge || p->height < H ? p->height : H;
		return;
	}
	if (p->fit == FIT_COVER && p->height > 0) {
		sc = sx > sy ? sx : sy;
		if (!p->enlarge && sc > 1)
			sc = 1;
		*ow = W * sc < p->width ? W * sc : p->width;
		*oh = H * sc < p->height ? H * sc : p->height;
		return;
	}
	sc = sx < sy ? sx : sy;
	if (!p->enlarge && sc > 1)
		sc = 1;
	*ow = W * sc;
	*oh = H * sc;
}

/* Whether a preview of ow x oh in fmt may be made; why not into err. */
static int
render_size_ok(const struct preset *p, enum format fmt, double ow, double oh,
    const struct render_limits *lim, char *err, size_t errlen)
{
	double	px = ceil(ow) * ceil(oh);

	if (lim->max_pixels != 0 && px > (double)lim->max_pixels) {
		seterr(err, errlen, "the preview would be %.0fx%.0f pixels, "
		    "over max_pixels %llu", ceil(ow), ceil(oh),
		    (unsigned long long)lim->max_pixels);
		return 0;
	}
	if (fmt == FMT_WEBP && (ow > 16383 || oh > 16383)) {
		seterr(err, errlen, "the preview would be %.0fx%.0f pixels; "
		    "WebP allows at most 16383 a side", ceil(ow), ceil(oh));
		return 0;
	}
	if (fmt == FMT_JPEG && (ow > 65500 || oh > 65500)) {
		seterr(err, errlen, "the preview would be %.0fx%.0f pixels; "
		    "JPEG allows at most 65500 a side", ceil(ow), ceil(oh));
		return 0;
	}
	if (fmt == FMT_AVIF && px > RENDER_AVIF_MAX_PIXELS) {
		seterr(err, errlen, "the preview would be %.0fx%.0f pixels; "
		    "AVIF previews are at most %d pixels (an AV1 encode cannot "
		    "be stopped by image_timeout)", ceil(ow), ceil(oh),
		    RENDER_AVIF_MAX_PIXELS);
		return 0;
	}
	(void)p;
	return 1;
}

static int
render_one(const void *in, size_t len, VipsImage *base,
    const struct preset *p, const struct header *h,
    const struct render_limits *lim, struct watch *w, struct render_out *o,
    char *err, size_t errlen)
{
	double		 ow, oh;
	VipsImage	*thumb = NULL, *img = NULL, *t = NULL;
	VipsArrayDouble	*bg = NULL;
	VipsInteresting	 interesting;
	enum format	 fmt;
	gulong		 sig = 0;
	void		*obuf = NULL;
	size_t		 olen = 0;
	double		 bgv[3];
	int		 tw, th, cover, rc = -1, sr;
	VipsSize	 size;

	fmt = p->format == FMT_SAME ? render_same(h) : p->format;
	if (fmt == FMT_AVIF &&
	    vips_type_find("VipsOperation", "heifsave_buffer") == 0) {
		seterr(err, errlen, "cannot write avif: this libvips has no "
		    "heifsave");
		goto out;
	}
	render_out_size(p, h, &ow, &oh);
	if (!render_size_ok(p, fmt, ow, oh, lim, err, errlen))
		goto out;

	/*
	 * The box.  A cover is a shrink that fills the box, then a crop:
	 * the shrink is asked for as "inside" with the other side free, so
	 * that the crop (and the memory copy attention needs) runs under
	 * our timeout.  Height 0 constrains the width only.
	 */
	cover = p->fit == FIT_COVER && p->height > 0;
	tw = p->width;
	th = p->height > 0 ? p->height : RENDER_HUGE;
	size = p->enlarge ? VIPS_SIZE_BOTH : VIPS_SIZE_DOWN;
	/* Stretched to the box, each side no larger than it was unless asked. */
	if (p->fit == FIT_FILL && p->height > 0) {
		size = VIPS_SIZE_FORCE;
		tw = (int)lround(ow);
		th = (int)lround(oh);
	}
	if (cover) {
		/* Shrink by the smaller factor: the limiting side fits. */
		if ((double)h->width / p->width <=
		    (double)h->height / p->height)
			th = RENDER_HUGE;
		else
			tw = RENDER_HUGE;
	}

	if (base != NULL) {
		/* Decoded, upright and sRGB already: only resize. */
		if (vips_thumbnail_image(base, &thumb, tw, "height", th,
		    "size", size, NULL) != 0) {
			vipserr(err, errlen, "thumbnail");
			goto out;
		}
	} else if (render_thumbnail(in, len, h, tw, th, size, &thumb) != 0) {
		vipserr(err, errlen, "thumbnail");
		goto out;
	}
	if (w->timeout_s > 0) {
		vips_image_set_progress(thumb, TRUE);
		sig = g_signal_connect(thumb, "eval",
		    G_CALLBACK(render_eval), w);
	}
	g_object_ref(thumb);
	img = thumb;

	if (cover) {
		interesting = p->crop == CROP_ATTENTION ?
		    VIPS_INTERESTING_ATTENTION : VIPS_INTERESTING_CENTRE;
		/* Attention reads the image several times: keep it. */
		if (interesting == VIPS_INTERESTING_ATTENTION) {
			if ((t = vips_image_copy_memory(img)) == NULL) {
				vipserr(err, errlen, "decode");
				goto out;
			}
			swap_image(&img, t);
		}
		if (vips_smartcrop(img, &t, VIPS_MIN(img->Xsize, p->width),
		    VIPS_MIN(img->Ysize, p->height),
		    "interesting", interesting, NULL) != 0) {
			vipserr(err, errlen, "crop");
			goto out;
		}
		swap_image(&img, t);
	}

	/* 8 bits a sample, in sRGB or grey (16-bit PNG/TIFF, Lab, ...). */
	if (img->BandFmt != VIPS_FORMAT_UCHAR ||
	    (img->Type != VIPS_INTERPRETATION_sRGB &&
	    img->Type != VIPS_INTERPRETATION_B_W)) {
		VipsInterpretation	 to;

		to = img->Type == VIPS_INTERPRETATION_GREY16 ||
		    img->Type == VIPS_INTERPRETATION_B_W ?
		    VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB;
		if (vips_colourspace(img, &t, to, NULL) != 0) {
			vipserr(err, errlen, "colour conversion");
			goto out;
		}
		swap_image(&img, t);
		if (img->BandFmt != VIPS_FORMAT_UCHAR) {
			if (vips_cast_uchar(img, &t, NULL) != 0) {
				vipserr(err, errlen, "colour conversion");
				goto out;
			}
			swap_image(&img, t);
		}
	}

	if (fmt == FMT_JPEG && vips_image_hasalpha(img)) {
		/* Grey with alpha: to sRGB first, the background is RGB. */
		if (img->Bands < 3) {
			if (vips_colourspace(img, &t,
			    VIPS_INTERPRETATION_sRGB, NULL) != 0) {
				vipserr(err, errlen, "colour conversion");
				goto out;
			}
			swap_image(&img, t);
		}
		bgv[0] = p->background[0];
		bgv[1] = p->background[1];
		bgv[2] = p->background[2];
		bg = vips_array_double_new(bgv, 3);
		if (vips_flatten(img, &t, "background", bg, NULL) != 0) {
			vipserr(err, errlen, "flatten");
			goto out;
		}
		swap_image(&img, t);
	}

	/*
	 * strip=TRUE is not enough: 8.14's webpsave writes the original's
	 * EXIF anyway.  Drop every metadata field first.
	 */
	if (render_strip(img, &t) != 0) {
		vipserr(err, errlen, "strip");
		goto out;
	}
	swap_image(&img, t);

	if (watch_expired(w))
		goto out;
	/*
	 * The encoder's lines are ours only from here on: before, a line
	 * naming the output's family (say "VipsJpeg" for a TIFF made into a
	 * JPEG) can only be another thread's decoder.
	 */
	render_family_out = fmt == FMT_PNG ? render_families[1] :
	    fmt == FMT_WEBP ? render_families[3] :
	    fmt == FMT_AVIF ? render_families[4] : render_families[0];
	switch (fmt) {
	case FMT_WEBP:
		sr = vips_webpsave_buffer(img, &obuf, &olen,
		    "Q", p->quality, "strip", TRUE, NULL);
		break;
	case FMT_AVIF:
		/*
		 * Effort 2, not libvips' 4: 16 MP in about 1 s instead of 8
		 * on one core here, for files no larger. The encode is one
		 * call that image_timeout cannot stop, so its size is
		 * bounded instead (RENDER_AVIF_MAX_PIXELS).
		 */
		sr = vips_heifsave_buffer(img, &obuf, &olen,
		    "Q", p->quality, "bitdepth", 8,
		    "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
		    "effort", 2, "strip", TRUE, NULL);
		break;
	case FMT_PNG:
		sr = vips_pngsave_buffer(img, &obuf, &olen,
		    "strip", TRUE, NULL);
		break;
	case FMT_JPEG:
	case FMT_SAME:
	default:
		fmt = FMT_JPEG;
		sr = vips_jpegsave_buffer(img, &obuf, &olen,
		    "Q", p->quality, "optimize_coding", TRUE,
		    "interlace", FALSE, "strip", TRUE, NULL);
		break;
	}
	if (sr != 0) {
		if (atomic_load(&w->fired))
			vips_error_clear();
		else
			vipserr(err, errlen, "save");
	}
	render_family_out = NULL;
	if (sr != 0)
		goto out;
	if (watch_expired(w))
		goto out;

	buf_reset(&o->data);
	if (fmt == FMT_WEBP)
		sr = strip_webp(obuf, olen, &o->data);
	else if (fmt == FMT_PNG)
		sr = strip_png(obuf, olen, &o->data);
	else
		sr = buf_add(&o->data, obuf, olen);
	if (sr != 0) {
		seterr(err, errlen, "cannot keep a %zu-byte %s preview", olen,
		    format_name(fmt));
		goto out;
	}
	o->format = fmt;
	o->content_type = format_content_type(fmt);
	o->width = img->Xsize;
	o->height = img->Ysize;
	rc = 0;
out:
	if (rc != 0 && atomic_load(&w->fired))
		seterr(err, errlen, "timed out after %d s", w->timeout_s);
	g_free(obuf);
	if (bg != NULL)
		vips_area_unref(VIPS_AREA(bg));
	if (img != NULL)
		g_object_unref(img);
	if (thumb != NULL) {
		if (sig != 0)
			g_signal_handler_disconnect(thumb, sig);
		g_object_unref(thumb);
	}
	return rc;
}

/* Every preset not made yet fails for the same reason. */
static void
fail_rest(struct render_out *outs, size_t from, size_t n,
    enum render_status st, const char *why)
{
	size_t	i;

	for (i = from; i < n; i++) {
		render_out_release(&outs[i]);
		outs[i].status = st;
		seterr(outs[i].error, sizeof(outs[i].error), "%s", why);
	}
}

enum render_status
render_image(const void *in, size_t len, const struct preset *const *presets,
    size_t n, const struct render_limits *lim, struct render_out *outs,
    char *err, size_t errlen)
{
	struct header		 h;
	struct watch		 w;
	VipsImage		*base = NULL;
	enum render_status	 st, first = RENDER_OK;
	char			 why[256];
	size_t			 i;

	memset(&h, 0, sizeof(h));
	clock_gettime(CLOCK_MONOTONIC, &w.start);
	w.timeout_s = lim->timeout_s;
	atomic_init(&w.fired, 0);
	for (i = 0; i < n; i++)
		outs[i].status = RENDER_OK;

	/* What is wrong with the original is wrong for every preset. */
	why[0] = '\0';
	if (len == 0)
		seterr(why, sizeof(why), "empty input");
	else if (lim->max_bytes != 0 && (uint64_t)len > lim->max_bytes)
		seterr(why, sizeof(why), "input too large: %zu bytes exceeds "
		    "max_bytes %llu", len, (unsigned long long)lim->max_bytes);
	else {
		render_family_out = NULL;
		if ((render_family_in = render_sniff(in, len)) == NULL)
			seterr(why, sizeof(why), "not a supported image (jpeg, "
			    "png, gif, webp, heif, avif, tiff)");
	}
	if (why[0] == '\0') {
		render_warning[0] = '\0';
		if (render_header(in, len, lim, &h, why, sizeof(why)) == 0 &&
		    n > 1)
			(void)render_base(in, len, presets, n, &h, &w, &base,
			    why, sizeof(why));
	}
	if (why[0] != '\0') {
		st = atomic_load(&w.fired) ? RENDER_ETIMEOUT : RENDER_EIMAGE;
		fail_rest(outs, 0, n, st, why);
		seterr(err, errlen, "%s", why);
		return st;
	}

	for (i = 0; i < n; i++) {
		if (watch_expired(&w)) {
			seterr(why, sizeof(why), "timed out after %d s",
			    w.timeout_s);
			fail_rest(outs, i, n, RENDER_ETIMEOUT, why);
			if (first == RENDER_OK) {
				first = RENDER_ETIMEOUT;
				seterr(err, errlen, "%s", why);
			}
			break;
		}
		if (render_one(in, len, base, presets[i], &h, lim, &w, &outs[i],
		    outs[i].error, sizeof(outs[i].error)) == 0)
			continue;
		render_out_release(&outs[i]);
		outs[i].status = atomic_load(&w.fired) ? RENDER_ETIMEOUT :
		    RENDER_EIMAGE;
		if (first == RENDER_OK) {
			first = outs[i].status;
			seterr(err, errlen, "%s", outs[i].error);
		}
	}
	if (base != NULL)
		g_object_unref(base);
	return first;
}
