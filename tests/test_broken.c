/*
 * broken: issue 4, points 3 (broken input) and 4 (bombs), end to end.
 *
 * The real prewctl runs against the real S3 server and against the folder
 * backend.  Every run is th_run's with a generous wall-clock deadline, so
 * a hang is a failed assertion rather than a stuck suite, and th_run
 * measures the child's peak RSS.
 *
 * Where the expectations come from:
 *   - which corpus file is damaged: tests/data/broken/SOURCES.md, measured
 *     outside this project with libvips 8.14.  A file whose thumbnail fails
 *     there, or whose strict decode (fail_on=warning) fails, is damaged: it
 *     must be reported and get no preview, since any preview of it would be
 *     made from a truncated or wrongly decoded body.  A file whose strict
 *     decode is clean is odd but valid: it may be reported, or previewed at
 *     the size its vipsheader column gives.  Exception: invalid-multiframe.gif
 *     is damaged in a later frame only ("GIF with an invalid later frame")
 *     and a preview is of the first frame, so it is odd, not damaged;
 *   - which keys are tried: the documented default extensions (man page,
 *     README: jpg jpeg png webp gif heic heif avif tif tiff);
 *   - preview sizes: the man page's "inside" rule without enlargement,
 *     computed here, +-1 pixel for rounding;
 *   - the bombs: built here byte by byte from the PNG (RFC 2083), zlib
 *     (RFC 1950), deflate (RFC 1951), GIF89a and JPEG (T.81) specs; their
 *     declared sizes and frame counts are what we wrote.  CRC-32 is checked
 *     against the standard check value first;
 *   - max_pixels: the documented default, 100000000.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "helpers.h"

#define DATA		"tests/data/broken/"
#define RUN_LIMIT_S	120		/* "did not hang", generously */
/*
 * make SAN=1 builds prewctl and the tests alike; ASan's shadow memory and
 * its 256 MB quarantine of freed blocks then count in the RSS, so the bound
 * is looser there (measured: 540 MB for a run that takes 40 MB without).
 */
#if defined(__SANITIZE_ADDRESS__)
#define BROKEN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BROKEN_ASAN 1
#endif
#endif
#ifdef BROKEN_ASAN
#define RSS_LIMIT_KB	(1500L * 1024)
#else
#define RSS_LIMIT_KB	(500L * 1024)
#endif
#define MAX_LOGGED	40

/* ---- the corpus ---------------------------------------------------------*/

enum kind {
	DAMAGED,	/* reported, never a preview */
	ODD,		/* a correct preview, or reported */
	GOOD,		/* a correct preview */
};

static const struct bfile {
	const char	*file;		/* under tests/data/broken/ */
	const char	*rel;		/* key under the source prefix */
	enum kind	 kind;
	int		 w, h;		/* ODD: vipsheader size */
	const char	*fmt;		/* what it is; NULL: no image */
} corpus[] = {
	{ "corrupt-header.jpg", "corrupt-header.jpg", DAMAGED, 0, 0, "jpeg" },
	{ "empty.jpg", "empty.jpg", DAMAGED, 0, 0, NULL },
	{ "exif-invalid-image01551.jpg", "exif-invalid-image01551.jpg", ODD,
	    61, 58, "jpeg" },
	{ "exif-invalid-image02206.jpg", "exif-invalid-image02206.jpg", ODD,
	    65, 65, "jpeg" },
	{ "gif-its-2b5bc31d.gif", "gif-its-2b5bc31d.gif",
	    DAMAGED, 0, 0, "gif" },
	{ "gif-its-6d939393.gif", "gif-its-6d939393.gif",
	    ODD, 160, 120, "gif" },
	{ "gif-its-adf6f850.gif", "gif-its-adf6f850.gif", ODD, 153, 55, "gif" },
	{ "gif-its-ce774930.gif", "gif-its-ce774930.gif",
	    DAMAGED, 0, 0, "gif" },
	{ "gif-its-e34116d6.gif", "gif-its-e34116d6.gif",
	    DAMAGED, 0, 0, "gif" },
	{ "gif-its-ea754e04.gif", "gif-its-ea754e04.gif", ODD, 76, 80, "gif" },
	{ "gif-its-ee6d1133.gif", "gif-its-ee6d1133.gif",
	    DAMAGED, 0, 0, "gif" },
	{ "gif-its-f88b6907.gif", "gif-its-f88b6907.gif", ODD, 79, 68, "gif" },
	{ "heif-fuzzed-illegalarg.heif", "heif-fuzzed-illegalarg.heif",
	    DAMAGED, 0, 0, "heif" },
	{ "heif-fuzzed-negarraysize.heif", "heif-fuzzed-negarraysize.heif",
	    DAMAGED, 0, 0, "heif" },
	{ "invalid-multiframe.gif", "invalid-multiframe.gif",
	    ODD, 10, 9, "gif" },
	{ "mislabeled-png.jpg", "mislabeled-png.jpg", ODD, 32, 32, "png" },
	{ "pngsuite-xc1n0g08.png", "pngsuite-xc1n0g08.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xc9n2c08.png", "pngsuite-xc9n2c08.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xcrn0g04.png", "pngsuite-xcrn0g04.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xcsn0g01.png", "pngsuite-xcsn0g01.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xd0n2c08.png", "pngsuite-xd0n2c08.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xd3n2c08.png", "pngsuite-xd3n2c08.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xd9n2c08.png", "pngsuite-xd9n2c08.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xdtn0g01.png", "pngsuite-xdtn0g01.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xhdn0g08.png", "pngsuite-xhdn0g08.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xlfn0g04.png", "pngsuite-xlfn0g04.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xs1n0g01.png", "pngsuite-xs1n0g01.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xs2n0g01.png", "pngsuite-xs2n0g01.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xs4n0g01.png", "pngsuite-xs4n0g01.png",
	    DAMAGED, 0, 0, "png" },
	{ "pngsuite-xs7n0g01.png", "pngsuite-xs7n0g01.png",
	    DAMAGED, 0, 0, "png" },
	{ "s3-error-xml.jpg", "s3-error-xml.jpg", DAMAGED, 0, 0, NULL },
	{ "text-named.jpg", "text-named.jpg", DAMAGED, 0, 0, NULL },
	{ "truncated-4k.heic", "truncated-4k.heic", DAMAGED, 0, 0, "heif" },
	{ "truncated-sharp.jpg", "truncated-sharp.jpg", DAMAGED, 0, 0, "jpeg" },
	{ "truncated-vips.jpg", "truncated-vips.jpg", DAMAGED, 0, 0, "jpeg" },
	{ "truncated.gif", "truncated.gif", DAMAGED, 0, 0, "gif" },
	{ "truncated.png", "truncated.png", DAMAGED, 0, 0, "png" },
	/* SVG under an image name: must neither hang nor render. */
	{ "truncated.svgz", "truncated-svgz.jpg", DAMAGED, 0, 0, NULL },
	{ "truncated.webp", "truncated.webp", DAMAGED, 0, 0, "webp" },
	/* Fuzzer inputs under a name of their real format. */
	{ "vips-fuzz-jpegsave_buffer_fuzzer-5658586599915520",
	    "fuzz/jpegsave-5658586599915520.tif", DAMAGED, 0, 0, "tiff" },
	{ "vips-fuzz-jpegsave_buffer_fuzzer-5673786296238080",
	    "fuzz/jpegsave-5673786296238080.jpg", DAMAGED, 0, 0, "jpeg" },
	{ "vips-fuzz-jpegsave_buffer_fuzzer-5759265708441600",
	    "fuzz/jpegsave-5759265708441600.jpg", DAMAGED, 0, 0, "jpeg" },
	{ "vips-fuzz-pngsave_buffer_fuzzer-5078454764044288",
	    "fuzz/pngsave-5078454764044288.png", DAMAGED, 0, 0, "png" },
	{ "vips-fuzz-sharpen_fuzzer-5203581631725568",
	    "fuzz/sharpen-5203581631725568.gif", DAMAGED, 0, 0, "gif" },
	{ "vips-fuzz-sharpen_fuzzer-5678720198639616",
	    "fuzz/sharpen-5678720198639616.tif", ODD, 32, 1, "tiff" },
	{ "vips-fuzz-sharpen_fuzzer-5691855517253632",
	    "fuzz/sharpen-5691855517253632.tif", DAMAGED, 0, 0, "tiff" },
	{ "vips-fuzz-smartcrop_fuzzer-5687924892368896",
	    "fuzz/smartcrop-5687924892368896.gif", DAMAGED, 0, 0, "gif" },
	/* Radiance: no listed extension is its own; .jpg so it is tried. */
	{ "vips-fuzz-thumbnail_fuzzer-5111890150424576",
	    "fuzz/thumbnail-5111890150424576.jpg", DAMAGED, 0, 0, NULL },
	{ "vips-fuzz-thumbnail_fuzzer-5676300823429120",
	    "fuzz/thumbnail-5676300823429120.tif", DAMAGED, 0, 0, "tiff" },
	{ "vips-fuzz-thumbnail_fuzzer-5718717719117824",
	    "fuzz/thumbnail-5718717719117824.tif", DAMAGED, 0, 0, "tiff" },
	{ "vips-fuzz-thumbnail_fuzzer-5741423734816768",
	    "fuzz/thumbnail-5741423734816768.tif", DAMAGED, 0, 0, "tiff" },
	{ "vips-fuzz-webpsave_buffer_fuzzer-5207224829345792",
	    "fuzz/webpsave-5207224829345792.webp", ODD, 31, 32, "webp" },
	{ "vips-fuzz-webpsave_buffer_fuzzer-5674696418263040",
	    "fuzz/webpsave-5674696418263040.jpg", DAMAGED, 0, 0, "jpeg" },
};
#define NCORPUS	(sizeof(corpus) / sizeof(corpus[0]))

/* Stored as well under names no listed extension matches: never tried. */
static const char *const ignored_files[] = {
	"vips-fuzz-jpegsave_buffer_fuzzer-5658586599915520",
	"vips-fuzz-jpegsave_buffer_fuzzer-5673786296238080",
	"vips-fuzz-jpegsave_buffer_fuzzer-5759265708441600",
	"vips-fuzz-pngsave_buffer_fuzzer-5078454764044288",
	"vips-fuzz-sharpen_fuzzer-5203581631725568",
	"vips-fuzz-sharpen_fuzzer-5678720198639616",
	"vips-fuzz-sharpen_fuzzer-5691855517253632",
	"vips-fuzz-smartcrop_fuzzer-5687924892368896",
	"vips-fuzz-thumbnail_fuzzer-5111890150424576",
	"vips-fuzz-thumbnail_fuzzer-5676300823429120",
	"vips-fuzz-thumbnail_fuzzer-5718717719117824",
	"vips-fuzz-thumbnail_fuzzer-5741423734816768",
	"vips-fuzz-webpsave_buffer_fuzzer-5207224829345792",	/* a WebP */
	"vips-fuzz-webpsave_buffer_fuzzer-5674696418263040",
	"truncated.svgz",
};
#define NIGNORED (sizeof(ignored_files) / sizeof(ignored_files[0]))

/* Presets: both JPEG, so every preview is 3-band sRGB. */
static const struct tpreset {
	const char	*name;
	int		 w, h;		/* the box; h 0: width only */
} presets[] = {
	{ "small", 48, 0 },
	{ "box", 120, 100 },
};
#define NPRESETS 2
#define PRESETS_INI \
	"[preset small]\nwidth = 48\nformat = jpeg\n\n" \
	"[preset box]\nwidth = 120\nheight = 100\nformat = jpeg\n"

/* ---- what each test shares ----------------------------------------------*/

struct strv {
	char	**v;
	size_t	  n;
};

/* An original made or read for a test. */
struct orig {
	char		*rel;
	enum kind	 kind;
	int		 w, h;		/* ODD and GOOD */
	/* Bombs: words the reason must hold, '|' between choices. */
	const char	*why;
	const char	*fmt;		/* its real format; NULL: none */
};

static struct {
	struct s3_client	*c;
	char			 prefix[256];
	char			 root[64];	/* folder backend */
	char			*cfg;
	struct orig		 o[96];
	size_t			 no;
} T;

struct checks {
	int	fails;
};

#define CHECK(cs, cond, ...) do {					\
	if (!(cond) && (cs)->fails++ < MAX_LOGGED)			\
		cr_log_error(__VA_ARGS__);				\
} while (0)

static void
strv_add(struct strv *s, const char *str)
{
	s->v = realloc(s->v, (s->n + 1) * sizeof(*s->v));
	cr_assert_not_null(s->v);
	cr_assert_not_null(s->v[s->n++] = strdup(str));
}

static int
strv_has(const struct strv *s, const char *str)
{
	size_t	i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i], str) == 0)
			return 1;
	return 0;
}

static void
strv_free(struct strv *s)
{
	size_t	i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* ---- running prewctl ------------------------------------------------------*/

static const struct th_opts run_opts = { NULL, RUN_LIMIT_S, NULL };

/* generate --json -j 2 with T.cfg, to the end or the deadline. */
static void
generate(struct th_run *r)
{
	th_run(r, &run_opts, (const char *const []){ "-c", T.cfg, "generate",
	    "--json", "-j", "2", NULL });
}

/* ---- reading --json -------------------------------------------------------*/

/* The "failures" array of generate --json; asserts it is well formed. */
static const struct th_json *
failures_of(const struct th_json *doc)
{
	const struct th_json	*fs = th_json_at(doc, "failures"), *f;
	size_t			 i;

	cr_assert(fs != NULL && th_json_type(fs) == TH_JSON_ARRAY,
	    "no failures array");
	for (i = 0; i < th_json_len(fs); i++) {
		f = th_json_item(fs, i);
		cr_assert(th_json_type(f) == TH_JSON_OBJECT,
		    "failures[%zu] is no object", i);
		cr_assert(th_json_str(f, "key") != NULL &&
		    th_json_str(f, "preset") != NULL &&
		    th_json_str(f, "error") != NULL,
		    "failure without key, preset or error");
	}
	return fs;
}

/* The reason key failed for preset, or NULL. */
static const char *
find_failure(const struct th_json *fs, const char *key, const char *preset)
{
	const struct th_json	*f;
	size_t			 i;

	for (i = 0; i < th_json_len(fs); i++) {
		f = th_json_item(fs, i);
		if (strcmp(th_json_str(f, "key"), key) == 0 &&
		    strcmp(th_json_str(f, "preset"), preset) == 0)
			return th_json_str(f, "error");
	}
	return NULL;
}

/* A top-level integer of the --json object, -1 when absent. */
static long long
jtop(const struct th_json *doc, const char *name)
{
	const struct th_json	*v = th_json_at(doc, name);

	return v != NULL && th_json_type(v) == TH_JSON_NUMBER ?
	    th_json_num(doc, name) : -1;
}

/* ---- the two backends ----------------------------------------------------*/

static void
setup(void)
{
	memset(&T, 0, sizeof(T));
	cr_assert(VIPS_INIT("prewctl-tests") == 0);
	vips_cache_set_max(0);
}

static void
setup_s3(void)
{
	setup();
	T.c = th_client();
	snprintf(T.prefix, sizeof(T.prefix), "%s", th_prefix("broken"));
	T.cfg = th_s3_config(T.prefix, PRESETS_INI);
}

static void
setup_dir(void)
{
	struct buf	b;

	setup();
	memcpy(T.root, "/tmp/prewctl-broken-XXXXXX", 27);
	cr_assert_not_null(mkdtemp(T.root));
	buf_init(&b, BUF_NOMAX);
	cr_assert(buf_addf(&b, "[storage]\ndirectory = %s\nsource = photo/\n"
	    "previews = prew/\n\n%s", T.root, PRESETS_INI) == 0);
	T.cfg = th_write_temp(b.data);
	buf_release(&b);
}

static void
teardown(void)
{
	size_t	i;

	if (T.c != NULL) {
		th_delete_prefix(T.c, T.prefix);
		s3_client_free(T.c);
	}
	if (T.root[0] != '\0')
		th_rmtree(T.root);
	if (T.cfg != NULL) {
		unlink(T.cfg);
		free(T.cfg);
	}
	for (i = 0; i < T.no; i++)
		free(T.o[i].rel);
}

TestSuite(broken, .fini = teardown, .timeout = 600);

/* The key an original has in the failures: the source prefix plus rel. */
static void
full_key(char *dst, size_t len, const char *rel)
{
	cr_assert((size_t)snprintf(dst, len, "%sphoto/%s",
	    T.root[0] != '\0' ? "" : T.prefix, rel) < len);
}

static void
put_original(const char *rel, const void *data, size_t len)
{
	char	path[1024], *slash;
	FILE	*f;

	if (T.root[0] == '\0') {
		struct s3_put_opts	po = { "application/octet-stream",
					    NULL, NULL, NULL, 0 };
		struct s3_error		err;
		enum s3_status		st;
		char			msg[256];

		full_key(path, sizeof(path), rel);
		st = s3_put(T.c, path, data, len, &po, &err);
		cr_assert(st == S3_OK, "cannot put '%s': %s", path,
		    s3_error_text(st, &err, msg, sizeof(msg)));
		return;
	}
	cr_assert((size_t)snprintf(path, sizeof(path), "%s/photo/%s", T.root,
	    rel) < sizeof(path));
	for (slash = strchr(path + strlen(T.root) + 1, '/'); slash != NULL;
	    slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		cr_assert(mkdir(path, 0700) == 0 || errno == EEXIST,
		    "mkdir %s: %s", path, strerror(errno));
		*slash = '/';
	}
	cr_assert_not_null(f = fopen(path, "wb"), "%s: %s", path,
	    strerror(errno));
	cr_assert(len == 0 || fwrite(data, 1, len, f) == len);
	cr_assert(fclose(f) == 0);
}

static void
put_file(const char *rel, const char *file)
{
	struct buf	b;
	char		path[512];

	cr_assert((size_t)snprintf(path, sizeof(path), DATA "%s", file) <
	    sizeof(path));
	buf_init(&b, BUF_NOMAX);
	th_read_file(path, &b);
	put_original(rel, b.data, b.len);
	buf_release(&b);
}

static void
add_orig(const char *rel, enum kind k, int w, int h, const char *why,
    const char *fmt)
{
	cr_assert(T.no < sizeof(T.o) / sizeof(T.o[0]));
	cr_assert_not_null(T.o[T.no].rel = strdup(rel));
	T.o[T.no].kind = k;
	T.o[T.no].w = w;
	T.o[T.no].h = h;
	T.o[T.no].why = why;
	T.o[T.no].fmt = fmt;
	T.no++;
}

/* Every preview that exists, as "<preset>/<rel>". */
static int
collect_s3(void *arg, const struct s3_object *o)
{
	struct strv	*s = arg;
	size_t		 skip = strlen(T.prefix) + strlen("prew/");

	if (strlen(o->key) > skip && strstr(o->key + skip, "/") != NULL)
		strv_add(s, o->key + skip);
	return 0;
}

static struct strv	*collect_to;
static size_t		 collect_skip;

static int
collect_dir(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_F && strlen(path) > collect_skip)
		strv_add(collect_to, path + collect_skip);
	return 0;
}

static void
list_previews(struct strv *out)
{
	char	path[512];

	memset(out, 0, sizeof(*out));
	if (T.root[0] == '\0') {
		struct s3_list_params	lp;
		struct s3_error		err;

		memset(&lp, 0, sizeof(lp));
		cr_assert((size_t)snprintf(path, sizeof(path), "%sprew/",
		    T.prefix) < sizeof(path));
		lp.prefix = path;
		cr_assert(s3_list(T.c, &lp, collect_s3, NULL, out, &err) ==
		    S3_OK);
		return;
	}
	cr_assert((size_t)snprintf(path, sizeof(path), "%s/prew/", T.root) <
	    sizeof(path));
	collect_to = out;
	collect_skip = strlen(path);
	if (access(path, F_OK) == 0)
		cr_assert(nftw(path, collect_dir, 16, FTW_PHYS) == 0);
}

static int
get_preview(const char *preset, const char *rel, struct buf *b)
{
	char	path[1024];

	if (T.root[0] == '\0') {
		struct s3_error	err;

		cr_assert((size_t)snprintf(path, sizeof(path), "%sprew/%s/%s",
		    T.prefix, preset, rel) < sizeof(path));
		return s3_get(T.c, path, 64 * 1024 * 1024, b, NULL, &err) ==
		    S3_OK ? 0 : -1;
	}
	cr_assert((size_t)snprintf(path, sizeof(path), "%s/prew/%s/%s", T.root,
	    preset, rel) < sizeof(path));
	if (access(path, R_OK) != 0)
		return -1;
	th_read_file(path, b);
	return 0;
}

/* ---- checking previews ----------------------------------------------------*/

static int
near(int got, double want)
{
	double	d = (double)got - want;

	return d >= -1.0 && d <= 1.0;
}

/*
 * Decode a preview completely (any libjpeg warning is a failure) and
 * check it is a 3-band sRGB JPEG of the size the preset's box gives.
 */
static void
check_preview(struct checks *cs, const struct tpreset *p, const char *rel,
    int w, int h, const struct buf *data)
{
	VipsImage	*im;
	const char	*loader = "";
	double		 s, avg;

	s = 1.0;
	if ((double)p->w / w < s)
		s = (double)p->w / w;
	if (p->h > 0 && (double)p->h / h < s)
		s = (double)p->h / h;
	im = vips_image_new_from_buffer(data->data, data->len, "",
	    "fail_on", VIPS_FAIL_ON_WARNING, NULL);
	if (im == NULL) {
		CHECK(cs, 0, "%s/%s: preview does not load: %s", p->name, rel,
		    vips_error_buffer());
		vips_error_clear();
		return;
	}
	if (vips_image_get_typeof(im, VIPS_META_LOADER) != 0)
		(void)vips_image_get_string(im, VIPS_META_LOADER, &loader);
	CHECK(cs, strncmp(loader, "jpegload", 8) == 0,
	    "%s/%s: preview is '%s', not a JPEG", p->name, rel, loader);
	CHECK(cs, near(im->Xsize, w * s) && near(im->Ysize, h * s),
	    "%s/%s: preview %dx%d, want %.0fx%.0f (+-1) from %dx%d",
	    p->name, rel, im->Xsize, im->Ysize, w * s, h * s, w, h);
	CHECK(cs, im->Bands == 3 && im->Type == VIPS_INTERPRETATION_sRGB &&
	    im->BandFmt == VIPS_FORMAT_UCHAR,
	    "%s/%s: preview has %d bands, interpretation %d, format %d",
	    p->name, rel, im->Bands, (int)im->Type, (int)im->BandFmt);
	if (vips_avg(im, &avg, NULL) != 0) {
		CHECK(cs, 0, "%s/%s: preview does not decode cleanly: %s",
		    p->name, rel, vips_error_buffer());
		vips_error_clear();
	}
	g_object_unref(im);
}

/*
 * What each decoder puts in its messages (case matters: "not a supported
 * image (jpeg, png, ...)" names none of them).
 */
static const struct {
	const char	*fmt;
	const char	*words[5];
} decoder_words[] = {
	{ "jpeg", { "VipsJpeg", NULL } },
	{ "png", { "vipspng", "libpng", "IHDR", "IEND", NULL } },
	{ "gif", { "gifload", NULL } },
	{ "tiff", { "TIFF", "tiff2vips", NULL } },
	{ "heif", { "heif:", NULL } },
	{ "webp", { "webp:", NULL } },
};

/*
 * A decoder word of another format in the reason of an original of format
 * fmt (NULL: not an image, so no decoder word at all): the text came from
 * another image, through libvips' error buffer that all threads share.
 */
static const char *
foreign_words(const char *err, const char *fmt)
{
	size_t	i, j;

	for (i = 0; i < sizeof(decoder_words) / sizeof(decoder_words[0]);
	    i++) {
		if (fmt != NULL && strcmp(fmt, decoder_words[i].fmt) == 0)
			continue;
		for (j = 0; decoder_words[i].words[j] != NULL; j++)
			if (strstr(err, decoder_words[i].words[j]) != NULL)
				return decoder_words[i].words[j];
	}
	return NULL;
}

/* Does the reason hold one of the '|'-separated words? */
static int
reason_matches(const char *err, const char *why)
{
	char	 word[64];
	size_t	 n;

	while (*why != '\0') {
		n = strcspn(why, "|");
		cr_assert(n < sizeof(word));
		memcpy(word, why, n);
		word[n] = '\0';
		if (strcasestr(err, word) != NULL)
			return 1;
		why += n;
		if (*why == '|')
			why++;
	}
	return 0;
}

/*
 * After a generate --json: every original checked against its kind, and
 * nothing else written or reported.
 */
static void
check_outcome(struct checks *cs, const struct th_run *r,
    const struct th_json *doc)
{
	const struct th_json	*fs = failures_of(doc), *f;
	struct strv		 have;
	struct buf		 pv;
	size_t			 i, j, k;
	char			 key[1024], pkey[1024];

	list_previews(&have);
	for (i = 0; i < T.no; i++) {
		const struct orig *o = &T.o[i];

		full_key(key, sizeof(key), o->rel);
		for (j = 0; j < NPRESETS; j++) {
			const struct tpreset	*p = &presets[j];
			const char		*ferr;
			int			 made;

			ferr = find_failure(fs, key, p->name);
			cr_assert((size_t)snprintf(pkey, sizeof(pkey), "%s/%s",
			    p->name, o->rel) < sizeof(pkey));
			made = strv_has(&have, pkey);
			CHECK(cs, !(made && ferr != NULL), "'%s' %s: both a "
			    "preview and a failure (%s)", key, p->name, ferr);
			switch (o->kind) {
			case DAMAGED:
				CHECK(cs, !made, "'%s': a preview '%s' was "
				    "made from a damaged original", key, pkey);
				CHECK(cs, ferr != NULL, "'%s' not reported for "
				    "preset %s", key, p->name);
				break;
			case ODD:
				CHECK(cs, made || ferr != NULL, "'%s' %s: "
				    "neither a preview nor a failure", key,
				    p->name);
				break;
			case GOOD:
				CHECK(cs, made && ferr == NULL, "'%s' %s: no "
				    "preview (%s)", key, p->name,
				    ferr != NULL ? ferr : "not reported");
				break;
			}
			if (ferr != NULL) {
				char	line[2048];

				cr_log_info("%s %s: %s", o->rel, p->name, ferr);

				CHECK(cs, ferr[0] != '\0', "'%s' %s: empty "
				    "reason", key, p->name);
				CHECK(cs, foreign_words(ferr, o->fmt) == NULL,
				    "'%s' %s (%s): reason '%s' names "
				    "another image's decoder ('%s')", key,
				    p->name, o->fmt != NULL ? o->fmt :
				    "no image", ferr,
				    foreign_words(ferr, o->fmt));
				CHECK(cs, o->why == NULL ||
				    reason_matches(ferr, o->why),
				    "'%s' %s: reason '%s' does not say '%s'",
				    key, p->name, ferr, o->why);
				/* stderr names the key and gives the reason. */
				snprintf(line, sizeof(line), "'%s': %s", key,
				    ferr);
				CHECK(cs, strstr(r->err.data, line) != NULL,
				    "stderr lacks \"%s\"", line);
			}
			if (made && o->kind != DAMAGED) {
				buf_init(&pv, BUF_NOMAX);
				CHECK(cs, get_preview(p->name, o->rel, &pv) ==
				    0, "cannot read preview '%s'", pkey);
				if (pv.len > 0)
					check_preview(cs, p, o->rel, o->w, o->h,
					    &pv);
				buf_release(&pv);
			}
		}
	}
	/* Nothing reported or written that is not one of ours. */
	for (k = 0; k < th_json_len(fs); k++) {
		int	ours = 0;

		f = th_json_item(fs, k);
		for (i = 0; i < T.no && !ours; i++) {
			full_key(key, sizeof(key), T.o[i].rel);
			ours = strcmp(th_json_str(f, "key"), key) == 0;
		}
		CHECK(cs, ours, "failure for a key that is not a tried "
		    "original: '%s' (%s)", th_json_str(f, "key"),
		    th_json_str(f, "error"));
	}
	for (k = 0; k < have.n; k++) {
		int	ours = 0;

		if (strchr(have.v[k], '/') == NULL)
			continue;	/* a stamp */
		for (i = 0; i < T.no && !ours; i++)
			for (j = 0; j < NPRESETS && !ours; j++) {
				snprintf(pkey, sizeof(pkey), "%s/%s",
				    presets[j].name, T.o[i].rel);
				ours = strcmp(have.v[k], pkey) == 0;
			}
		/* A failure mark, only for a preset that failed. */
		for (i = 0; i < T.no && !ours; i++)
			for (j = 0; j < NPRESETS && !ours; j++) {
				snprintf(pkey, sizeof(pkey),
				    ".prewctl-failed/%s/%s", presets[j].name,
				    T.o[i].rel);
				full_key(key, sizeof(key), T.o[i].rel);
				ours = strcmp(have.v[k], pkey) == 0 &&
				    find_failure(fs, key, presets[j].name) !=
				    NULL;
			}
		CHECK(cs, ours, "unexpected object under the previews: '%s'",
		    have.v[k]);
	}
	/* Every damaged original is marked, so the next run knows it. */
	for (i = 0; i < T.no; i++) {
		if (T.o[i].kind != DAMAGED)
			continue;
		for (j = 0; j < NPRESETS; j++) {
			snprintf(pkey, sizeof(pkey), ".prewctl-failed/%s/%s",
			    presets[j].name, T.o[i].rel);
			CHECK(cs, strv_has(&have, pkey), "damaged '%s' has no "
			    "failure mark for %s", T.o[i].rel,
			    presets[j].name);
		}
	}
	strv_free(&have);
}

/* An ASan report exits 1 too, and UBSan only prints: look for them. */
static void
check_sanitizers(struct checks *cs, const struct th_run *r)
{
	static const char *const marks[] = {
		"AddressSanitizer", "LeakSanitizer", "runtime error:",
	};
	size_t	i;

	for (i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
		CHECK(cs, strstr(r->err.data, marks[i]) == NULL,
		    "sanitizer report in stderr: %.3000s",
		    strstr(r->err.data, marks[i]));
}

/* ---- good originals, made here --------------------------------------------*/

/* A w x h sRGB image with texture, so the encoders have work to do. */
static VipsImage *
make_image(int w, int h, int alpha)
{
	VipsImage	*noise, *bands[4], *joined, *out;
	int		 i, n = alpha ? 4 : 3;

	for (i = 0; i < n; i++) {
		cr_assert(vips_gaussnoise(&noise, w, h, "mean", 128.0 + 20 * i,
		    "sigma", 40.0, NULL) == 0);
		cr_assert(vips_cast_uchar(noise, &bands[i], NULL) == 0);
		g_object_unref(noise);
	}
	cr_assert(vips_bandjoin(bands, &joined, n, NULL) == 0);
	for (i = 0; i < n; i++)
		g_object_unref(bands[i]);
	cr_assert(vips_copy(joined, &out, "interpretation",
	    VIPS_INTERPRETATION_sRGB, NULL) == 0);
	g_object_unref(joined);
	return out;
}

static void
put_good(const char *rel, const char *fmt, int w, int h)
{
	VipsImage	*im;
	void		*data = NULL;
	size_t		 len = 0;
	int		 rc;

	im = make_image(w, h, strcmp(fmt, "png") == 0);
	if (strcmp(fmt, "jpeg") == 0)
		rc = vips_jpegsave_buffer(im, &data, &len, NULL);
	else if (strcmp(fmt, "png") == 0)
		rc = vips_pngsave_buffer(im, &data, &len, NULL);
	else if (strcmp(fmt, "gif") == 0)
		rc = vips_gifsave_buffer(im, &data, &len, NULL);
	else
		rc = vips_webpsave_buffer(im, &data, &len, NULL);
	cr_assert(rc == 0, "cannot make %s: %s", rel, vips_error_buffer());
	put_original(rel, data, len);
	add_orig(rel, GOOD, w, h, NULL, fmt);
	g_free(data);
	g_object_unref(im);
}

static void
put_goods(void)
{
	put_good("good/photo.jpg", "jpeg", 300, 200);
	put_good("good/alpha.png", "png", 90, 120);
	put_good("good/anim.gif", "gif", 64, 48);
	put_good("good/pic.webp", "webp", 100, 100);
}

/*
 * The damage of camera-corrupted.jpg (kept out of tests/data: 1.9 MB) in
 * a small JPEG: restart markers after every MCU, the second half of them
 * renumbered and the entropy-coded bytes between them overwritten, so
 * libjpeg meets "found marker 0xdN instead of RSTm" again and again.
 */
static void
make_corrupt_jpeg(struct buf *out)
{
	VipsImage	*im;
	unsigned char	*d;
	void		*data = NULL;
	size_t		 len = 0, i, sos = 0, nrst = 0, seen = 0;

	im = make_image(256, 256, 0);
	cr_assert(vips_jpegsave_buffer(im, &data, &len, "restart_interval", 1,
	    "Q", 90, NULL) == 0, "%s", vips_error_buffer());
	g_object_unref(im);
	d = data;
	/* The scan starts after the SOS segment. */
	for (i = 2; i + 3 < len; ) {
		cr_assert(d[i] == 0xff, "bad JPEG made by libvips");
		if (d[i + 1] == 0xda) {
			sos = i + 2 + ((size_t)d[i + 2] << 8 | d[i + 3]);
			break;
		}
		i += 2 + ((size_t)d[i + 2] << 8 | d[i + 3]);
	}
	cr_assert(sos > 0);
	for (i = sos; i + 1 < len; i++)
		if (d[i] == 0xff && d[i + 1] >= 0xd0 && d[i + 1] <= 0xd7)
			nrst++;
	cr_assert(nrst > 200, "only %zu restart markers", nrst);
	for (i = sos; i + 1 < len; i++) {
		if (d[i] == 0xff && d[i + 1] >= 0xd0 && d[i + 1] <= 0xd7) {
			if (++seen > nrst / 2)
				d[i + 1] = 0xd0 + ((d[i + 1] - 0xd0 + 3) & 7);
			i++;
			continue;
		}
		if (seen > nrst / 2 && d[i] != 0xff && (i + 1 >= len ||
		    d[i + 1] != 0xff) && i % 3 == 0)
			d[i] = (unsigned char)(d[i] ^ 0x5a) == 0xff ? 0 :
			    (unsigned char)(d[i] ^ 0x5a);
	}
	buf_init(out, BUF_NOMAX);
	cr_assert(buf_add(out, data, len) == 0);
	g_free(data);
}

/* ---- point 3: the corpus --------------------------------------------------*/

static void
broken_scenario(void)
{
	struct checks	 cs = { 0 };
	struct th_run	 r;
	struct th_json	*doc;
	struct buf	 cj;
	size_t		 i, tried;

	for (i = 0; i < NCORPUS; i++) {
		put_file(corpus[i].rel, corpus[i].file);
		add_orig(corpus[i].rel, corpus[i].kind, corpus[i].w,
		    corpus[i].h, NULL, corpus[i].fmt);
	}
	for (i = 0; i < NIGNORED; i++)
		put_file(ignored_files[i], ignored_files[i]);
	make_corrupt_jpeg(&cj);
	put_original("camera-corrupted-synth.jpg", cj.data, cj.len);
	add_orig("camera-corrupted-synth.jpg", DAMAGED, 0, 0, NULL, "jpeg");
	buf_release(&cj);
	put_goods();
	tried = T.no;

	/* A hang fails in th_run, at the deadline. */
	generate(&r);
	cr_log_info("broken: generate took %.1f s, peak RSS %ld KB", r.secs,
	    r.maxrss_kb);
	cr_assert(r.status < 128, "generate died: status %d; stderr: %.2000s",
	    r.status, r.err.data);
	CHECK(&cs, r.status == 1, "exit %d, want 1; stderr: %.2000s",
	    r.status, r.err.data);
	check_sanitizers(&cs, &r);
	doc = th_json_parse(r.out.data, r.out.len);
	CHECK(&cs, jtop(doc, "exit") == r.status, "--json exit %lld, "
	    "status %d", jtop(doc, "exit"), r.status);
	CHECK(&cs, jtop(doc, "originals") == (long long)tried,
	    "originals %lld, want %zu", jtop(doc, "originals"), tried);
	/* Every name without a listed extension, and nothing else. */
	CHECK(&cs, jtop(doc, "ignored") == (long long)NIGNORED,
	    "ignored %lld, want %zu", jtop(doc, "ignored"), (size_t)NIGNORED);
	check_outcome(&cs, &r, doc);
	th_json_free(doc);
	th_run_release(&r);
	cr_assert_eq(cs.fails, 0, "%d check(s) failed (see the log)",
	    cs.fails);
}

Test(broken, s3_corpus_reported_and_no_bad_preview, .init = setup_s3)
{
	broken_scenario();
}

Test(broken, folder_corpus_reported_and_no_bad_preview, .init = setup_dir)
{
	broken_scenario();
}

/* ---- point 4: bombs, built here -------------------------------------------*/

static uint32_t
crc32_png(const unsigned char *p, size_t n, uint32_t crc)
{
	size_t	i;
	int	k;

	crc = ~crc;
	for (i = 0; i < n; i++) {
		crc ^= p[i];
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320U & (0U - (crc & 1)));
	}
	return ~crc;
}

static void
be32(struct buf *b, uint32_t v)
{
	unsigned char	c[4] = { v >> 24, v >> 16, v >> 8, v };

	cr_assert(buf_add(b, c, 4) == 0);
}

static void
le16(struct buf *b, unsigned v)
{
	unsigned char	c[2] = { v & 0xff, (v >> 8) & 0xff };

	cr_assert(buf_add(b, c, 2) == 0);
}

static void
png_chunk(struct buf *b, const char *type, const void *data, size_t len)
{
	uint32_t	crc;

	be32(b, (uint32_t)len);
	cr_assert(buf_add(b, type, 4) == 0);
	if (len > 0)
		cr_assert(buf_add(b, data, len) == 0);
	crc = crc32_png((const unsigned char *)type, 4, 0);
	crc = crc32_png(data, len, crc);
	be32(b, crc);
}

/* LSB-first bit writer for deflate (RFC 1951 3.1.1). */
struct bits {
	struct buf	*b;
	uint32_t	 acc;
	int		 n;
};

static void
bits_put(struct bits *w, uint32_t v, int n)
{
	w->acc |= v << w->n;
	w->n += n;
	while (w->n >= 8) {
		cr_assert(buf_addch(w->b, (char)(w->acc & 0xff)) == 0);
		w->acc >>= 8;
		w->n -= 8;
	}
}

/* A Huffman code goes most significant bit first. */
static void
bits_code(struct bits *w, uint32_t code, int n)
{
	uint32_t	r = 0;
	int		i;

	for (i = 0; i < n; i++)
		r |= ((code >> i) & 1) << (n - 1 - i);
	bits_put(w, r, n);
}

/* Fixed-Huffman literal (RFC 1951 3.2.6): 0..143 are 8 bits from 0x30. */
static void
lit(struct bits *w, unsigned char c)
{
	if (c < 144)
		bits_code(w, 0x30 + c, 8);
	else
		bits_code(w, 0x190 + (c - 144), 9);
}

/*
 * zlib (RFC 1950) of n bytes of c: one fixed-Huffman block, a literal and
 * then copies of 258 bytes at distance 1 (13 bits each).
 */
static void
zlib_repeat(struct buf *b, unsigned char c, size_t n)
{
	struct bits	w = { b, 0, 0 };
	uint32_t	a = 1, s = 0;
	size_t		i, left = n;

	for (i = 0; i < n; i++) {
		a = (a + c) % 65521;
		s = (s + a) % 65521;
	}
	cr_assert(buf_addch(b, 0x78) == 0 && buf_addch(b, 0x01) == 0);
	bits_put(&w, 1, 1);		/* BFINAL */
	bits_put(&w, 1, 2);		/* BTYPE 01: fixed Huffman */
	if (left > 0) {
		lit(&w, c);
		left--;
	}
	while (left >= 258) {
		bits_code(&w, 0xc0 + (285 - 280), 8);	/* length 258 */
		bits_code(&w, 0, 5);			/* distance 1 */
		left -= 258;
	}
	while (left-- > 0)
		lit(&w, c);
	bits_code(&w, 0, 7);		/* end of block (256) */
	if (w.n > 0)
		bits_put(&w, 0, 8 - w.n);
	be32(b, (s << 16) | a);
}

static void
png_ihdr(struct buf *b, uint32_t w, uint32_t h)
{
	struct buf	ih;

	cr_assert(buf_add(b, "\x89PNG\r\n\x1a\n", 8) == 0);
	buf_init(&ih, BUF_NOMAX);
	be32(&ih, w);
	be32(&ih, h);
	/* 8 bits, RGB, deflate, adaptive filters, no interlace. */
	cr_assert(buf_add(&ih, "\x08\x02\x00\x00\x00", 5) == 0);
	png_chunk(b, "IHDR", ih.data, ih.len);
	buf_release(&ih);
}

/* 60000 x 60000 RGB, but a few bytes of IDAT. */
static void
make_png_bomb(struct buf *b)
{
	struct buf	z;

	buf_init(b, BUF_NOMAX);
	png_ihdr(b, 60000, 60000);
	buf_init(&z, BUF_NOMAX);
	zlib_repeat(&z, 0, 1000);
	png_chunk(b, "IDAT", z.data, z.len);
	buf_release(&z);
	png_chunk(b, "IEND", NULL, 0);
}

/* 8 x 8 RGB whose zTXt chunks inflate to nchunks * each bytes of text. */
static void
make_png_meta_bomb(struct buf *b, int nchunks, size_t each)
{
	struct buf	z;
	int		i;

	buf_init(b, BUF_NOMAX);
	png_ihdr(b, 8, 8);
	for (i = 0; i < nchunks; i++) {
		buf_init(&z, BUF_NOMAX);
		cr_assert(buf_addf(&z, "Comment%d", i) == 0);
		/* The keyword's NUL, then method 0: deflate. */
		cr_assert(buf_add(&z, "\0\0", 2) == 0);
		zlib_repeat(&z, 'A', each);
		png_chunk(b, "zTXt", z.data, z.len);
		buf_release(&z);
	}
	buf_init(&z, BUF_NOMAX);
	zlib_repeat(&z, 0, 8 * (1 + 8 * 3));	/* 8 rows: filter + 24 */
	png_chunk(b, "IDAT", z.data, z.len);
	buf_release(&z);
	png_chunk(b, "IEND", NULL, 0);
}

/* A real 16 x 16 JPEG from libvips whose SOF says 60000 x 60000. */
static void
make_jpeg_bomb(struct buf *b)
{
	VipsImage	*im;
	unsigned char	*d;
	void		*data = NULL;
	size_t		 len = 0, i;
	int		 patched = 0;

	im = make_image(16, 16, 0);
	cr_assert(vips_jpegsave_buffer(im, &data, &len, NULL) == 0);
	g_object_unref(im);
	d = data;
	for (i = 2; i + 8 < len && d[i + 1] != 0xda; ) {
		cr_assert(d[i] == 0xff, "bad JPEG made by libvips");
		if (d[i + 1] >= 0xc0 && d[i + 1] <= 0xc2) {
			/* FF Cn, length(2), precision(1), height, width */
			d[i + 5] = 60000 >> 8;
			d[i + 6] = 60000 & 0xff;
			d[i + 7] = 60000 >> 8;
			d[i + 8] = 60000 & 0xff;
			patched = 1;
		}
		i += 2 + ((size_t)d[i + 2] << 8 | d[i + 3]);
	}
	cr_assert(patched, "no SOF in the JPEG libvips made");
	buf_init(b, BUF_NOMAX);
	cr_assert(buf_add(b, data, len) == 0);
	g_free(data);
}

/*
 * GIF89a: a 2000 x 2000 logical screen and nframes 1 x 1 images, each
 * an LZW stream of clear (4), index 0, end (5) in 3-bit codes: 0x44 0x01.
 */
static void
make_gif_bomb(struct buf *b, int nframes)
{
	static const unsigned char frame[] = {
		0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0,	/* descriptor */
		0x02, 0x02, 0x44, 0x01, 0x00,		/* LZW data */
	};
	int	i;

	buf_init(b, BUF_NOMAX);
	cr_assert(buf_add(b, "GIF89a", 6) == 0);
	le16(b, 2000);
	le16(b, 2000);
	/* Global colour table of 2 entries: black, white. */
	cr_assert(buf_add(b, "\x80\x00\x00" "\x00\x00\x00" "\xff\xff\xff",
	    9) == 0);
	for (i = 0; i < nframes; i++)
		cr_assert(buf_add(b, frame, sizeof(frame)) == 0);
	cr_assert(buf_addch(b, 0x3b) == 0);
}

Test(broken, crc32_and_adler32_check_values)
{
	static const char	 check[] = "123456789";
	struct buf		 z;
	const unsigned char	*d;

	/* The CRC-32 check value (ISO-HDLC, as PNG uses). */
	cr_assert_eq(crc32_png((const unsigned char *)check, 9, 0),
	    0xcbf43926U);
	/* A known IEND chunk: 00000000 49454E44 AE426082. */
	buf_init(&z, BUF_NOMAX);
	png_chunk(&z, "IEND", NULL, 0);
	cr_assert_eq(z.len, 12);
	cr_assert(memcmp(z.data + 8, "\xae\x42\x60\x82", 4) == 0);
	buf_release(&z);
	/* Adler-32 of 1000 zeros: s1 = 1, s2 = 1000 (RFC 1950 8.2). */
	buf_init(&z, BUF_NOMAX);
	zlib_repeat(&z, 0, 1000);
	d = (const unsigned char *)z.data + z.len - 4;
	cr_assert(d[0] == 0x03 && d[1] == 0xe8 && d[2] == 0 && d[3] == 1);
	buf_release(&z);
}

/* Our zlib writer, checked by an independent inflater: libpng's. */
Test(broken, crafted_png_decodes_in_libvips, .init = setup)
{
	struct buf	 b;
	VipsImage	*im;
	double		 avg;

	make_png_meta_bomb(&b, 1, 100000);
	im = vips_image_new_from_buffer(b.data, b.len, "", "fail_on",
	    VIPS_FAIL_ON_WARNING, NULL);
	cr_assert_not_null(im, "%s", vips_error_buffer());
	cr_assert_eq(im->Xsize, 8);
	cr_assert_eq(im->Ysize, 8);
	cr_assert(vips_avg(im, &avg, NULL) == 0, "%s", vips_error_buffer());
	cr_assert_float_eq(avg, 0.0, 1e-9);
	g_object_unref(im);
	buf_release(&b);

	make_png_bomb(&b);
	im = vips_image_new_from_buffer(b.data, b.len, "", NULL);
	cr_assert_not_null(im, "%s", vips_error_buffer());
	cr_assert_eq(im->Xsize, 60000);
	cr_assert_eq(im->Ysize, 60000);
	g_object_unref(im);
	buf_release(&b);

	make_jpeg_bomb(&b);
	im = vips_image_new_from_buffer(b.data, b.len, "", NULL);
	cr_assert_not_null(im, "%s", vips_error_buffer());
	cr_assert_eq(im->Xsize, 60000);
	cr_assert_eq(im->Ysize, 60000);
	g_object_unref(im);
	buf_release(&b);

	make_gif_bomb(&b, 10);
	im = vips_image_new_from_buffer(b.data, b.len, "", NULL);
	cr_assert_not_null(im, "%s", vips_error_buffer());
	cr_assert_eq(im->Xsize, 2000);
	cr_assert_eq(im->Ysize, 2000);
	cr_assert_eq(vips_image_get_n_pages(im), 10);
	g_object_unref(im);
	buf_release(&b);
}

static void
put_bomb(const char *rel, const struct buf *b, const char *why,
    const char *fmt)
{
	cr_log_info("broken: %s is %zu bytes", rel, b->len);
	put_original(rel, b->data, b->len);
	add_orig(rel, DAMAGED, 0, 0, why, fmt);
}

/* Generate with -j 2; the good one done, the bombs refused, RSS bounded. */
static void
bomb_run(void)
{
	struct checks	 cs = { 0 };
	struct th_run	 r;
	struct th_json	*doc;

	put_good("good/photo.jpg", "jpeg", 300, 200);
	generate(&r);
	cr_log_info("broken: bombs: %.1f s, peak RSS %ld KB", r.secs,
	    r.maxrss_kb);
	cr_assert(r.status < 128, "generate died: status %d; stderr: %.2000s",
	    r.status, r.err.data);
	CHECK(&cs, r.status == 1, "exit %d, want 1; stderr: %.2000s",
	    r.status, r.err.data);
	CHECK(&cs, r.maxrss_kb < RSS_LIMIT_KB, "peak RSS %ld KB >= %ld KB",
	    r.maxrss_kb, RSS_LIMIT_KB);
	check_sanitizers(&cs, &r);
	doc = th_json_parse(r.out.data, r.out.len);
	check_outcome(&cs, &r, doc);
	th_json_free(doc);
	th_run_release(&r);
	cr_assert_eq(cs.fails, 0, "%d check(s) failed (see the log)",
	    cs.fails);
}

static void
pixel_bombs(void)
{
	struct buf	b;

	/* 60000 * 60000 = 3.6e9 > 1e8. */
	make_png_bomb(&b);
	put_bomb("bomb/png-60000x60000.png", &b, "pixel", "png");
	buf_release(&b);
	make_jpeg_bomb(&b);
	put_bomb("bomb/jpeg-60000x60000.jpg", &b, "pixel", "jpeg");
	buf_release(&b);
	/* 2000 * 2000 * 10000 = 4e10 > 1e8; one frame alone is 4e6. */
	make_gif_bomb(&b, 10000);
	put_bomb("bomb/gif-10000-frames.gif", &b, "frame|page", "gif");
	buf_release(&b);
	bomb_run();
}

Test(broken, s3_pixel_and_frame_bombs_refused_from_header, .init = setup_s3)
{
	pixel_bombs();
}

Test(broken, folder_pixel_and_frame_bombs_refused_from_header,
    .init = setup_dir)
{
	pixel_bombs();
}

/*
 * 8 x 8 pixels and two zTXt chunks of 6,000,000 bytes each (under
 * libpng's 8 MB chunk cap, so the text is really inflated): 12 MB of
 * metadata in about 80 KB.
 */
Test(broken, s3_metadata_bomb_refused_from_header, .init = setup_s3)
{
	struct buf	b;

	make_png_meta_bomb(&b, 2, 6000000);
	put_bomb("bomb/png-12mb-ztxt.png", &b, "metadata", "png");
	buf_release(&b);
	bomb_run();
}
