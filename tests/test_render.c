/*
 * render: previews through libvips.
 *
 * Inputs are either fixtures from the shared corpus (tests/data/render,
 * see its SOURCES.md) or made here with libvips, so the expected values
 * come from how the input was built: sizes from the preset arithmetic,
 * orientation from the EXIF specification's table, colours from what was
 * painted.  Outputs are decoded again with libvips to check what they are.
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <lcms2.h>
#include <vips/vips.h>

#include "preview/render.h"

#define DATA	"tests/data/render/"

static const struct render_limits render_default_limits = {
	100000000, 50000000, 0
};

static void
render_setup(void)
{
	char	 err[256];

	cr_assert_eq(render_global_init("prewctl-tests", 2, err,
	    sizeof(err)), 0, "%s", err);
}

static void
render_teardown(void)
{
	render_thread_shutdown();
}

TestSuite(render, .init = render_setup, .fini = render_teardown,
    .timeout = 120);

static struct preset
render_preset(int width, int height, enum fit fit, enum format format)
{
	struct preset	 p;

	memset(&p, 0, sizeof(p));
	p.name = "test";
	p.width = width;
	p.height = height;
	p.fit = fit;
	p.crop = CROP_CENTRE;
	p.format = format;
	p.quality = 80;
	p.enlarge = 0;
	p.background[0] = p.background[1] = p.background[2] = 255;
	return p;
}

static char *
render_fixture(const char *name, size_t *len)
{
	char	 path[256];
	gchar	*data;
	gsize	 n;

	cr_assert_lt((size_t)snprintf(path, sizeof(path), DATA "%s", name),
	    sizeof(path));
	cr_assert(g_file_get_contents(path, &data, &n, NULL), "read %s",
	    path);
	*len = n;
	return data;
}

/* Encode img as suffix (".png", ".jpg[Q=90]", ...); g_free the result. */
static void *
render_encode(VipsImage *img, const char *suffix, size_t *len)
{
	void	*buf;

	cr_assert_eq(vips_image_write_to_buffer(img, suffix, &buf, len, NULL),
	    0, "encode %s: %s", suffix, vips_error_buffer());
	return buf;
}

/* A w x h image of one colour (3 or 4 bands). */
static VipsImage *
render_flat(int w, int h, const double *ink, int bands)
{
	VipsImage	*black, *out;

	cr_assert_eq(vips_black(&black, w, h, "bands", bands, NULL), 0);
	cr_assert_eq(vips_copy(black, &out, "interpretation",
	    VIPS_INTERPRETATION_sRGB, NULL), 0);
	g_object_unref(black);
	cr_assert_eq(vips_draw_rect(out, (double *)ink, bands, 0, 0, w, h,
	    "fill", TRUE, NULL), 0);
	return out;
}

/* A flat sRGB w x h image, encoded. */
static void *
render_make(int w, int h, const char *suffix, size_t *len)
{
	static const double	 grey[3] = { 128, 128, 128 };
	VipsImage		*img;
	void			*buf;

	img = render_flat(w, h, grey, 3);
	buf = render_encode(img, suffix, len);
	g_object_unref(img);
	return buf;
}

static int
render1(const void *in, size_t len, const struct preset *p,
    const struct render_limits *lim, struct render_out *o, char *err,
    size_t errlen)
{
	const struct preset	*ps[1] = { p };

	render_out_init(o);
	err[0] = '\0';
	return render_image(in, len, ps, 1, lim, o, err, errlen);
}

/* Render that must succeed. */
static void
render_ok(const void *in, size_t len, const struct preset *p,
    struct render_out *o)
{
	char	 err[512];

	cr_assert_eq(render1(in, len, p, &render_default_limits, o, err,
	    sizeof(err)), 0, "render: %s", err);
	cr_assert_gt(o->data.len, 0);
}

static VipsImage *
render_decode(const struct render_out *o)
{
	VipsImage	*img;

	img = vips_image_new_from_buffer(o->data.data, o->data.len, "",
	    NULL);
	cr_assert_not_null(img, "decode: %s", vips_error_buffer());
	return img;
}

static const char *
render_loader(VipsImage *img)
{
	const char	*s;

	cr_assert_eq(vips_image_get_string(img, VIPS_META_LOADER, &s), 0);
	return s;
}

static void
render_pixel(VipsImage *img, int x, int y, double *v, int n)
{
	double	*vec;
	int	 got, i;

	cr_assert_eq(vips_getpoint(img, &vec, &got, x, y, NULL), 0, "%s",
	    vips_error_buffer());
	cr_assert_geq(got, n);
	for (i = 0; i < n; i++)
		v[i] = vec[i];
	g_free(vec);
}

static double
render_now(void)
{
	struct timespec	 t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Expect an error; returns nothing, checks that no output is kept. */
static void
render_fails(const void *in, size_t len, const struct preset *p,
    const struct render_limits *lim, char *err, size_t errlen)
{
	struct render_out	 o;

	cr_assert_neq(render1(in, len, p, lim, &o, err, errlen), 0,
	    "rendered %dx%d", o.width, o.height);
	cr_assert_neq(err[0], '\0', "no message");
	cr_assert_null(strchr(err, '\n'), "message on several lines: %s",
	    err);
	cr_assert_eq(o.data.len, 0, "output kept after an error");
	render_out_release(&o);
}

/* ---- sizes -------------------------------------------------------- */

struct render_size_case {
	int		 w, h;		/* preset */
	enum fit	 fit;
	int		 enlarge;
	int		 want_w, want_h;
};

/* On a 400x300 original (4:3). */
static const struct render_size_case render_sizes[] = {
	{ 100, 0, FIT_INSIDE, 0, 100, 75 },	/* width only */
	{ 100, 100, FIT_INSIDE, 0, 100, 75 },	/* 4:3 inside a square */
	{ 200, 50, FIT_INSIDE, 0, 67, 50 },	/* height limits: 400*50/300 */
	{ 100, 100, FIT_COVER, 0, 100, 100 },
	{ 50, 200, FIT_COVER, 0, 50, 200 },
	{ 100, 50, FIT_FILL, 0, 100, 50 },	/* aspect ignored */
	{ 100, 0, FIT_FILL, 0, 100, 75 },	/* fill without height: inside */
	{ 1000, 0, FIT_INSIDE, 0, 400, 300 },	/* never upscale */
	{ 1000, 0, FIT_INSIDE, 1, 1000, 750 },	/* unless enlarge */
	{ 800, 800, FIT_COVER, 0, 400, 300 },	/* cover, no upscale: crop */
};

Test(render, fit_sizes)
{
	struct render_out	 o;
	struct preset		 p;
	VipsImage		*img;
	void			*in;
	size_t			 len, i;

	in = render_make(400, 300, ".png", &len);
	for (i = 0; i < sizeof(render_sizes) / sizeof(render_sizes[0]); i++) {
		const struct render_size_case *c = &render_sizes[i];

		p = render_preset(c->w, c->h, c->fit, FMT_PNG);
		p.enlarge = c->enlarge;
		render_ok(in, len, &p, &o);
		cr_expect(o.width == c->want_w && o.height == c->want_h,
		    "case %zu: %dx%d fit %d: got %dx%d, want %dx%d", i,
		    c->w, c->h, c->fit, o.width, o.height, c->want_w,
		    c->want_h);
		img = render_decode(&o);
		cr_expect(img->Xsize == o.width && img->Ysize == o.height,
		    "case %zu: encoded %dx%d, reported %dx%d", i,
		    img->Xsize, img->Ysize, o.width, o.height);
		g_object_unref(img);
		render_out_release(&o);
	}
	g_free(in);
}

Test(render, cover_attention)
{
	struct render_out	 o;
	struct preset		 p;
	void			*in;
	size_t			 len;

	in = render_make(400, 300, ".jpg", &len);
	p = render_preset(120, 120, FIT_COVER, FMT_JPEG);
	p.crop = CROP_ATTENTION;
	render_ok(in, len, &p, &o);
	cr_assert_eq(o.width, 120);
	cr_assert_eq(o.height, 120);
	render_out_release(&o);
	g_free(in);
}

/* Cover keeps the middle: a 300x100 image, left and right thirds red. */
Test(render, cover_centre_crop)
{
	static const double	 red[3] = { 255, 0, 0 }, blue[3] = { 0, 0, 255 };
	struct render_out	 o;
	struct preset		 p;
	VipsImage		*img, *dec;
	double			 v[3];
	void			*in;
	size_t			 len;

	img = render_flat(300, 100, red, 3);
	cr_assert_eq(vips_draw_rect(img, (double *)blue, 3, 100, 0, 100, 100,
	    "fill", TRUE, NULL), 0);
	in = render_encode(img, ".png", &len);
	g_object_unref(img);

	p = render_preset(50, 50, FIT_COVER, FMT_PNG);
	render_ok(in, len, &p, &o);
	cr_assert_eq(o.width, 50);
	cr_assert_eq(o.height, 50);
	dec = render_decode(&o);
	/* Shrunk to 150x50, the crop is x 50..99: all blue.  Sample clear
	 * of the edges, where the resampling kernel reaches the red. */
	render_pixel(dec, 8, 25, v, 3);
	cr_expect(v[2] > 200 && v[0] < 50, "left side %g,%g,%g", v[0], v[1],
	    v[2]);
	render_pixel(dec, 41, 25, v, 3);
	cr_expect(v[2] > 200 && v[0] < 50, "right side %g,%g,%g", v[0], v[1],
	    v[2]);
	g_object_unref(dec);
	render_out_release(&o);
	g_free(in);
}

/* ---- formats ------------------------------------------------------ */

struct render_format_case {
	enum format	 format;
	const char	*content_type;
	const char	*loader;	/* prefix of the decoder's name */
};

static const struct render_format_case render_formats[] = {
	{ FMT_JPEG, "image/jpeg", "jpegload" },
	{ FMT_WEBP, "image/webp", "webpload" },
	{ FMT_AVIF, "image/avif", "heifload" },
	{ FMT_PNG, "image/png", "pngload" },
};

Test(render, output_formats)
{
	struct render_out	 o;
	struct preset		 p;
	VipsImage		*img;
	const char		*comp;
	void			*in;
	size_t			 len, i;

	in = render_make(400, 300, ".jpg", &len);
	for (i = 0; i < sizeof(render_formats) / sizeof(render_formats[0]);
	    i++) {
		const struct render_format_case *c = &render_formats[i];

		p = render_preset(200, 0, FIT_INSIDE, c->format);
		render_ok(in, len, &p, &o);
		cr_expect_eq(o.format, c->format, "case %zu", i);
		cr_expect_str_eq(o.content_type, c->content_type);
		cr_expect_str_eq(format_content_type(c->format),
		    c->content_type);
		img = render_decode(&o);
		cr_expect(strncmp(render_loader(img), c->loader,
		    strlen(c->loader)) == 0, "%s decoded by %s",
		    c->content_type, render_loader(img));
		cr_expect_eq(img->Xsize, 200);
		cr_expect_eq(img->Ysize, 150);
		if (c->format == FMT_AVIF) {
			cr_assert_eq(vips_image_get_string(img,
			    "heif-compression", &comp), 0);
			cr_expect_str_eq(comp, "av1");
		}
		g_object_unref(img);
		render_out_release(&o);
	}
	g_free(in);
}

/*
 * avif-small.avif carries EXIF naming its Software ("paint.net 5.0.11");
 * icc-a98-small.jpg an ICC profile and XMP.  None of it may reach a
 * preview.  (8.14's webpsave writes a minimal EXIF of its own, with
 * resolution and size only, so the check is for the original's tags.)
 */
Test(render, metadata_stripped)
{
	static const char *const files[] = {
		"avif-small.avif", "icc-a98-small.jpg",
	};
	struct render_out	 o;
	struct preset		 p;
	VipsImage		*img, *orig;
	void			*in;
	size_t			 len, i, f;

	for (f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		in = render_fixture(files[f], &len);
		orig = vips_image_new_from_buffer(in, len, "", NULL);
		cr_assert_not_null(orig);
		if (f == 0)
			cr_assert_neq(vips_image_get_typeof(orig,
			    "exif-ifd0-Software"), 0, "fixture changed");
		else
			cr_assert_neq(vips_image_get_typeof(orig,
			    VIPS_META_ICC_NAME), 0, "fixture changed");
		g_object_unref(orig);
		for (i = 0; i < sizeof(render_formats) /
		    sizeof(render_formats[0]); i++) {
			p = render_preset(100, 0, FIT_INSIDE,
			    render_formats[i].format);
			render_ok(in, len, &p, &o);
			img = render_decode(&o);
			cr_expect_eq(vips_image_get_typeof(img,
			    "exif-ifd0-Software"), 0, "%s from %s: Software",
			    o.content_type, files[f]);
			cr_expect_eq(vips_image_get_typeof(img,
			    VIPS_META_ICC_NAME), 0, "%s from %s: ICC",
			    o.content_type, files[f]);
			cr_expect_eq(vips_image_get_typeof(img,
			    VIPS_META_XMP_NAME), 0, "%s from %s: XMP",
			    o.content_type, files[f]);
			g_object_unref(img);
			render_out_release(&o);
		}
		g_free(in);
	}
}

struct render_same_case {
	const char	*suffix;	/* made here; NULL: fixture */
	const char	*fixture;
	enum format	 want;
};

/* The mapping for format=same (documented in render.c). */
static const struct render_same_case render_same[] = {
	{ ".jpg", NULL, FMT_JPEG },
	{ ".png", NULL, FMT_PNG },
	{ ".webp", NULL, FMT_WEBP },
	{ ".gif", NULL, FMT_PNG },
	{ ".tif", NULL, FMT_JPEG },
	{ NULL, "avif-small.avif", FMT_AVIF },
	{ NULL, "heic-small.heic", FMT_JPEG },
};

Test(render, format_same)
{
	struct render_out	 o;
	struct preset		 p;
	void			*in;
	size_t			 len, i;

	p = render_preset(64, 0, FIT_INSIDE, FMT_SAME);
	for (i = 0; i < sizeof(render_same) / sizeof(render_same[0]); i++) {
		const struct render_same_case *c = &render_same[i];

		if (c->suffix != NULL)
			in = render_make(100, 80, c->suffix, &len);
		else
			in = render_fixture(c->fixture, &len);
		render_ok(in, len, &p, &o);
		cr_expect_eq(o.format, c->want, "%s: got format %d, want %d",
		    c->suffix != NULL ? c->suffix : c->fixture, o.format,
		    c->want);
		cr_expect_str_eq(o.content_type, format_content_type(c->want));
		render_out_release(&o);
		g_free(in);
	}
}

Test(render, content_types)
{
	cr_expect_str_eq(format_content_type(FMT_JPEG), "image/jpeg");
	cr_expect_str_eq(format_content_type(FMT_WEBP), "image/webp");
	cr_expect_str_eq(format_content_type(FMT_AVIF), "image/avif");
	cr_expect_str_eq(format_content_type(FMT_PNG), "image/png");
}

Test(render, quality)
{
	VipsImage		*noise, *img;
	struct render_out	 lo, hi;
	struct preset		 p;
	void			*in;
	size_t			 len;
	enum format		 f[2] = { FMT_JPEG, FMT_WEBP };
	int			 i;

	/* Detail for the encoder to spend bits on. */
	cr_assert_eq(vips_gaussnoise(&noise, 400, 300, "sigma", 40.0, NULL),
	    0);
	cr_assert_eq(vips_bandjoin_const1(noise, &img, 0, NULL), 0);
	g_object_unref(noise);
	noise = img;
	cr_assert_eq(vips_bandjoin_const1(noise, &img, 0, NULL), 0);
	g_object_unref(noise);
	in = render_encode(img, ".png", &len);
	g_object_unref(img);

	for (i = 0; i < 2; i++) {
		p = render_preset(400, 0, FIT_INSIDE, f[i]);
		p.quality = 30;
		render_ok(in, len, &p, &lo);
		p.quality = 95;
		render_ok(in, len, &p, &hi);
		cr_expect_lt(lo.data.len, hi.data.len,
		    "format %d: q30 %zu bytes, q95 %zu bytes", f[i],
		    lo.data.len, hi.data.len);
		render_out_release(&lo);
		render_out_release(&hi);
	}
	g_free(in);
}

/* ---- alpha -------------------------------------------------------- */

Test(render, alpha_flattened)
{
	static const double	 clear[4] = { 0, 0, 0, 0 };
	struct render_out	 o;
	struct preset		 p;
	VipsImage		*img;
	double			 v[4];
	void			*in;
	size_t			 len;

	/* Black, fully transparent: what shows is the background. */
	img = render_flat(40, 30, clear, 4);
	in = render_encode(img, ".png", &len);
	g_object_unref(img);

	p = render_preset(40, 0, FIT_INSIDE, FMT_JPEG);
	render_ok(in, len, &p, &o);
	img = render_decode(&o);
	cr_expect_eq(img->Bands, 3);
	render_pixel(img, 20, 15, v, 3);
	cr_expect(v[0] >= 250 && v[1] >= 250 && v[2] >= 250,
	    "white background: %g,%g,%g", v[0], v[1], v[2]);
	g_object_unref(img);
	render_out_release(&o);

	p.background[0] = 10;
	p.background[1] = 200;
	p.background[2] = 30;
	render_ok(in, len, &p, &o);
	img = render_decode(&o);
	render_pixel(img, 20, 15, v, 3);
	cr_expect(fabs(v[0] - 10) <= 8 && fabs(v[1] - 200) <= 8 &&
	    fabs(v[2] - 30) <= 8, "custom background: %g,%g,%g", v[0], v[1],
	    v[2]);
	g_object_unref(img);
	render_out_release(&o);

	/* PNG has alpha: it stays. */
	p.format = FMT_PNG;
	render_ok(in, len, &p, &o);
	img = render_decode(&o);
	cr_expect_eq(img->Bands, 4);
	render_pixel(img, 20, 15, v, 4);
	cr_expect_eq(v[3], 0, "alpha %g", v[3]);
	g_object_unref(img);
	render_out_release(&o);
	g_free(in);
}

/* ---- orientation -------------------------------------------------- */

enum render_edge { EDGE_TOP, EDGE_BOTTOM, EDGE_LEFT, EDGE_RIGHT };

/*
 * EXIF 2.32, tag 0x0112 Orientation: where the stored 0th row and 0th
 * column are shown.  1 "top, left side", 2 "top, right side", 3 "bottom,
 * right side", 4 "bottom, left side", 5 "left side, top", 6 "right side,
 * top", 7 "right side, bottom", 8 "left side, bottom".
 */
static const enum render_edge render_exif[9][2] = {
	{ 0, 0 },
	{ EDGE_TOP, EDGE_LEFT },
	{ EDGE_TOP, EDGE_RIGHT },
	{ EDGE_BOTTOM, EDGE_RIGHT },
	{ EDGE_BOTTOM, EDGE_LEFT },
	{ EDGE_LEFT, EDGE_TOP },
	{ EDGE_RIGHT, EDGE_TOP },
	{ EDGE_RIGHT, EDGE_BOTTOM },
	{ EDGE_LEFT, EDGE_BOTTOM },
};

static enum render_edge
render_opposite(enum render_edge e)
{
	switch (e) {
	case EDGE_TOP:
		return EDGE_BOTTOM;
	case EDGE_BOTTOM:
		return EDGE_TOP;
	case EDGE_LEFT:
		return EDGE_RIGHT;
	case EDGE_RIGHT:
		break;
	}
	return EDGE_LEFT;
}

/* The display corner where two edges meet: x (0 left, 1 right), y. */
static void
render_corner(enum render_edge a, enum render_edge b, int *x, int *y)
{
	*x = (a == EDGE_RIGHT || b == EDGE_RIGHT) ? 1 : 0;
	*y = (a == EDGE_BOTTOM || b == EDGE_BOTTOM) ? 1 : 0;
}

/* Which marker shows in a display quadrant: 'r', 'g' or 'b'. */
static char
render_colour(VipsImage *img, int qx, int qy)
{
	double	 v[3];

	render_pixel(img, img->Xsize * (2 * qx + 1) / 4,
	    img->Ysize * (2 * qy + 1) / 4, v, 3);
	if (v[0] > 180 && v[1] < 90 && v[2] < 90)
		return 'r';
	if (v[1] > 180 && v[0] < 90 && v[2] < 90)
		return 'g';
	if (v[2] > 180 && v[0] < 90 && v[1] < 90)
		return 'b';
	return '?';
}

Test(render, exif_orientation)
{
	static const double	 red[3] = { 255, 0, 0 }, green[3] = { 0, 255, 0 },
				 blue[3] = { 0, 0, 255 };
	struct render_out	 o;
	struct preset		 p;
	VipsImage		*base, *img, *hdr;
	void			*in;
	size_t			 len;
	int			 orient, got, rx, ry, gx, gy, qx, qy;
	char			 want, have;

	/* 60x40 stored: top-left quadrant red, top-right green, rest blue. */
	base = render_flat(60, 40, blue, 3);
	cr_assert_eq(vips_draw_rect(base, (double *)red, 3, 0, 0, 30, 20,
	    "fill", TRUE, NULL), 0);
	cr_assert_eq(vips_draw_rect(base, (double *)green, 3, 30, 0, 30, 20,
	    "fill", TRUE, NULL), 0);

	p = render_preset(60, 0, FIT_INSIDE, FMT_PNG);
	for (orient = 1; orient <= 8; orient++) {
		cr_assert_eq(vips_copy(base, &img, NULL), 0);
		vips_image_set_int(img, VIPS_META_ORIENTATION, orient);
		in = render_encode(img, ".jpg[Q=95]", &len);
		g_object_unref(img);

		/* The tag really is in the file. */
		hdr = vips_image_new_from_buffer(in, len, "", NULL);
		cr_assert_not_null(hdr);
		cr_assert_eq(vips_image_get_int(hdr, VIPS_META_ORIENTATION,
		    &got), 0);
		cr_assert_eq(got, orient);
		g_object_unref(hdr);

		render_ok(in, len, &p, &o);
		if (orient >= 5) {
			cr_expect(o.width == 40 && o.height == 60,
			    "orientation %d: %dx%d, want 40x60", orient,
			    o.width, o.height);
		} else {
			cr_expect(o.width == 60 && o.height == 40,
			    "orientation %d: %dx%d, want 60x40", orient,
			    o.width, o.height);
		}

		/* Stored (row 0, col 0) is red, (row 0, last col) green. */
		render_corner(render_exif[orient][0], render_exif[orient][1],
		    &rx, &ry);
		render_corner(render_exif[orient][0],
		    render_opposite(render_exif[orient][1]), &gx, &gy);
		img = render_decode(&o);
		for (qy = 0; qy < 2; qy++)
			for (qx = 0; qx < 2; qx++) {
				want = (qx == rx && qy == ry) ? 'r' :
				    (qx == gx && qy == gy) ? 'g' : 'b';
				have = render_colour(img, qx, qy);
				cr_expect_eq(have, want, "orientation %d, "
				    "quadrant %d,%d: %c, want %c", orient,
				    qx, qy, have, want);
			}
		g_object_unref(img);
		render_out_release(&o);
		g_free(in);
	}
	g_object_unref(base);
}

/* ---- colour ------------------------------------------------------- */

/* Mean of each band of img. */
static void
render_means(VipsImage *img, double *m, int n)
{
	VipsImage	*st;
	int		 b;

	cr_assert_eq(vips_stats(img, &st, NULL), 0);
	for (b = 0; b < n; b++)
		m[b] = *VIPS_MATRIX(st, 4, b + 1);
	g_object_unref(st);
}

/*
 * A fixture of w x h made into a PNG preview at full size, decoded, next to
 * the original as libvips' own ICC transform makes it sRGB.
 */
static void
preview_and_transform(const char *name, int w, int h, VipsImage **img,
    VipsImage **orig, VipsImage **srgb)
{
	struct render_out	 o;
	struct preset		 p;
	VipsImage		*loaded;
	void			*in;
	size_t			 len;

	in = render_fixture(name, &len);
	p = render_preset(1000, 0, FIT_INSIDE, FMT_PNG);
	render_ok(in, len, &p, &o);
	cr_assert_eq(o.width, w);
	cr_assert_eq(o.height, h);
	/* Both decoded into memory: a loader reads its bytes lazily. */
	loaded = render_decode(&o);
	*img = vips_image_copy_memory(loaded);
	cr_assert_not_null(*img, "%s", vips_error_buffer());
	g_object_unref(loaded);
	cr_expect_eq((*img)->Bands, 3);
	cr_expect_eq(vips_image_get_typeof(*img, VIPS_META_ICC_NAME), 0,
	    "profile kept");
	loaded = vips_image_new_from_buffer(in, len, "", NULL);
	cr_assert_not_null(loaded);
	*orig = vips_image_copy_memory(loaded);
	cr_assert_not_null(*orig, "%s", vips_error_buffer());
	g_object_unref(loaded);
	cr_assert_eq(vips_icc_transform(*orig, srgb, "srgb", "embedded", TRUE,
	    NULL), 0, "%s", vips_error_buffer());
	render_out_release(&o);
	g_free(in);
}

/*
 * An A98 (Adobe RGB) JPEG: the preview is 3-band sRGB, matching libvips'
 * own ICC transform of the original, not its untransformed numbers.
 */
Test(render, adobe_rgb_to_srgb)
{
	VipsImage		*orig, *srgb, *img;
	double			 mo[3], mr[3], mw[3];
	int			 b;

	preview_and_transform("icc-a98-small.jpg", 290, 442, &img, &orig,
	    &srgb);
	render_means(img, mo, 3);
	render_means(srgb, mr, 3);
	render_means(orig, mw, 3);
	for (b = 0; b < 3; b++) {
		cr_expect_lt(fabs(mo[b] - mr[b]), 1.5, "band %d: %g, sRGB %g",
		    b, mo[b], mr[b]);
	}
	/* The check means something: the profile moves the numbers. */
	cr_expect_gt(fabs(mw[0] - mr[0]) + fabs(mw[1] - mr[1]) +
	    fabs(mw[2] - mr[2]), 3.0);
	g_object_unref(srgb);
	g_object_unref(orig);
	g_object_unref(img);
}

/* A profile made with lcms2, in memory; the caller frees it. */
static void *
lcms_bytes(cmsHPROFILE h, size_t *len)
{
	cmsUInt32Number	 n = 0;
	void		*p;

	cr_assert_not_null(h);
	cr_assert(cmsSaveProfileToMem(h, NULL, &n) && n > 0);
	cr_assert_not_null(p = malloc(n));
	cr_assert(cmsSaveProfileToMem(h, p, &n));
	cmsCloseProfile(h);
	*len = n;
	return p;
}

/* An RGB matrix-shaper with the given primaries, white and curve. */
static void *
lcms_rgb(double rx, double ry, double gx, double gy, double bx, double by,
    cmsToneCurve *curve, size_t *len)
{
	cmsCIExyY		 white = { 0.3127, 0.3290, 1.0 };
	cmsCIExyYTRIPLE		 prim = {
		{ rx, ry, 1.0 }, { gx, gy, 1.0 }, { bx, by, 1.0 }
	};
	cmsToneCurve		*c3[3] = { curve, curve, curve };
	void			*p;

	cr_assert_not_null(curve);
	p = lcms_bytes(cmsCreateRGBProfile(&white, &prim, c3), len);
	cmsFreeToneCurve(curve);
	return p;
}

/* The ICC profile embedded in a fixture; the caller frees it. */
static void *
fixture_profile(const char *name, size_t *len)
{
	VipsImage	*im;
	const void	*blob;
	void		*in, *p;
	size_t		 inlen;

	in = render_fixture(name, &inlen);
	im = vips_image_new_from_buffer(in, inlen, "", NULL);
	cr_assert_not_null(im);
	cr_assert_eq(vips_image_get_blob(im, VIPS_META_ICC_NAME, &blob, len),
	    0, "%s has no profile", name);
	cr_assert_not_null(p = malloc(*len));
	memcpy(p, blob, *len);
	g_object_unref(im);
	g_free(in);
	return p;
}

/*
 * Which profiles count as sRGB, so that the transform is skipped: the
 * sRGB profile cameras embed and lcms2's own; not Adobe RGB, Display P3,
 * sRGB's primaries with another curve, grey, or a damaged profile.
 */
Test(render, srgb_profile_recognised)
{
	/* The sRGB curve as ICC's parametric type 4 holds it. */
	static const cmsFloat64Number srgb_curve[5] = {
		2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045
	};
	void		*p;
	size_t		 len;

	p = fixture_profile("srgb-hp-tiny.jpg", &len);
	cr_expect_eq(len, 3144);
	cr_expect(render_profile_is_srgb(p, len), "HP's sRGB IEC61966-2.1");
	/* Cut short, it is no profile at all. */
	cr_expect(!render_profile_is_srgb(p, 200));
	memset((char *)p + 128, 0xff, 64);
	cr_expect(!render_profile_is_srgb(p, len), "a damaged tag table");
	free(p);

	p = lcms_bytes(cmsCreate_sRGBProfile(), &len);
	cr_expect(render_profile_is_srgb(p, len), "lcms2's sRGB");
	free(p);

	p = fixture_profile("icc-a98-small.jpg", &len);
	cr_expect(!render_profile_is_srgb(p, len), "Adobe RGB (A98)");
	free(p);

	/* Display P3: sRGB's curve and white, wider primaries. */
	p = lcms_rgb(0.680, 0.320, 0.265, 0.690, 0.150, 0.060,
	    cmsBuildParametricToneCurve(NULL, 4, srgb_curve), &len);
	cr_expect(!render_profile_is_srgb(p, len), "Display P3");
	free(p);

	/* sRGB's primaries with gamma 2.2, and linear. */
	p = lcms_rgb(0.64, 0.33, 0.30, 0.60, 0.15, 0.06,
	    cmsBuildGamma(NULL, 2.2), &len);
	cr_expect(!render_profile_is_srgb(p, len), "gamma 2.2");
	free(p);
	p = lcms_rgb(0.64, 0.33, 0.30, 0.60, 0.15, 0.06,
	    cmsBuildGamma(NULL, 1.0), &len);
	cr_expect(!render_profile_is_srgb(p, len), "linear");
	free(p);
	/* The check is not too strict: the same built by hand passes. */
	p = lcms_rgb(0.64, 0.33, 0.30, 0.60, 0.15, 0.06,
	    cmsBuildParametricToneCurve(NULL, 4, srgb_curve), &len);
	cr_expect(render_profile_is_srgb(p, len), "sRGB built by hand");
	free(p);

	{
		cmsToneCurve	*g = cmsBuildGamma(NULL, 2.2);

		p = lcms_bytes(cmsCreateGrayProfile(cmsD50_xyY(), g), &len);
		cmsFreeToneCurve(g);
		cr_expect(!render_profile_is_srgb(p, len), "grey");
		free(p);
	}
	cr_expect(!render_profile_is_srgb("not a profile", 13));
}

/*
 * Skipping the transform for an sRGB profile changes nothing: the preview
 * of a camera JPEG matches libvips' own transform of it to sRGB.
 */
Test(render, srgb_profile_same_as_transformed)
{
	VipsImage		*orig, *srgb, *img, *d, *a;
	double			 mx;

	preview_and_transform("srgb-hp-tiny.jpg", 48, 32, &img, &orig, &srgb);
	cr_assert_eq(vips_subtract(img, srgb, &d, NULL), 0);
	cr_assert_eq(vips_abs(d, &a, NULL), 0);
	cr_assert_eq(vips_max(a, &mx, NULL), 0);
	cr_expect_leq(mx, 1.0, "a pixel differs by %g", mx);
	g_object_unref(a);
	g_object_unref(d);
	g_object_unref(srgb);
	g_object_unref(orig);
	g_object_unref(img);
}

Test(render, cmyk_to_srgb)
{
	struct render_out	 o;
	struct preset		 p;
	VipsImage		*img;
	double			 m[3];
	void			*in;
	size_t			 len;
	enum format		 f[2] = { FMT_JPEG, FMT_WEBP };
	int			 i;

	in = render_fixture("cmyk-no-profile.jpg", &len);
	for (i = 0; i < 2; i++) {
		p = render_preset(250, 0, FIT_INSIDE, f[i]);
		render_ok(in, len, &p, &o);
		/* 500x333 halved */
		cr_expect_eq(o.width, 250);
		cr_expect_eq(o.height, 167);
		img = render_decode(&o);
		cr_expect_eq(img->Bands, 3, "format %d: %d bands", f[i],
		    img->Bands);
		cr_expect_eq(img->Type, VIPS_INTERPRETATION_sRGB);
		render_means(img, m, 3);
		/* a photo, not a black or white page */
		cr_expect(m[0] > 20 && m[0] < 235, "mean %g", m[0]);
		g_object_unref(img);
		render_out_release(&o);
	}
	g_free(in);
}

/* ---- animation ---------------------------------------------------- */

Test(render, animated_gif_first_frame)
{
	struct render_out	 o;
	struct preset		 p;
	void			*in;
	size_t			 len;

	/* 370x285, 10 frames (corpus SOURCES.md) */
	in = render_fixture("animated-loop3.gif", &len);
	p = render_preset(1000, 0, FIT_INSIDE, FMT_PNG);
	render_ok(in, len, &p, &o);
	cr_expect_eq(o.width, 370);
	cr_expect_eq(o.height, 285, "height %d: not one frame", o.height);
	render_out_release(&o);
	g_free(in);
}

/* Frames red, green, blue (a strip with page-height): red comes out. */
static void *
render_frames(int w, int h, int frames, size_t *len)
{
	static const double	 ink[3][3] = {
		{ 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 }
	};
	VipsImage		*img;
	void			*buf;
	int			 i;

	img = render_flat(w, h * frames, ink[2], 3);
	for (i = 0; i < frames && i < 2; i++)
		cr_assert_eq(vips_draw_rect(img, (double *)ink[i], 3, 0, i * h,
		    w, h, "fill", TRUE, NULL), 0);
	vips_image_set_int(img, VIPS_META_PAGE_HEIGHT, h);
	buf = render_encode(img, ".gif", len);
	g_object_unref(img);
	return buf;
}

Test(render, animated_first_frame_colour)
{
	struct render_out	 o;
	struct preset		 p;
	VipsImage		*img;
	double			 v[3];
	void			*in;
	size_t			 len;

	in = render_frames(30, 20, 3, &len);
	p = render_preset(100, 0, FIT_INSIDE, FMT_JPEG);
	render_ok(in, len, &p, &o);
	cr_expect_eq(o.width, 30);
	cr_expect_eq(o.height, 20);
	img = render_decode(&o);
	render_pixel(img, 15, 10, v, 3);
	cr_expect(v[0] > 200 && v[1] < 60 && v[2] < 60,
	    "first frame is red: %g,%g,%g", v[0], v[1], v[2]);
	g_object_unref(img);
	render_out_release(&o);
	g_free(in);
}

/* ---- refusals ----------------------------------------------------- */

Test(render, truncated_inputs)
{
	static const char *const files[] = {
		"truncated-vips.jpg", "truncated.png", "truncated.gif",
	};
	struct preset		 p;
	char			 err[512];
	void			*in;
	size_t			 len, i;

	p = render_preset(100, 0, FIT_INSIDE, FMT_JPEG);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		in = render_fixture(files[i], &len);
		render_fails(in, len, &p, &render_default_limits, err,
		    sizeof(err));
		g_free(in);
	}
}

/* A truncated JPEG made here: the error is libjpeg's. */
Test(render, truncated_jpeg_message)
{
	VipsImage		*noise;
	struct preset		 p;
	char			 err[512];
	void			*in;
	size_t			 len;

	cr_assert_eq(vips_gaussnoise(&noise, 300, 300, NULL), 0);
	in = render_encode(noise, ".jpg", &len);
	g_object_unref(noise);
	p = render_preset(100, 0, FIT_INSIDE, FMT_PNG);
	render_fails(in, len / 2, &p, &render_default_limits, err,
	    sizeof(err));
	cr_expect(strstr(err, "Premature end") != NULL, "%s", err);
	g_free(in);
}

Test(render, not_images)
{
	static const char *const files[] = {
		"svg-check.svg", "s3-error-xml.jpg", "text-named.jpg",
	};
	static const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" "
	    "width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\"/>"
	    "</svg>";
	struct preset		 p;
	char			 err[512];
	void			*in;
	size_t			 len, i;

	p = render_preset(100, 0, FIT_INSIDE, FMT_JPEG);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		in = render_fixture(files[i], &len);
		render_fails(in, len, &p, &render_default_limits, err,
		    sizeof(err));
		g_free(in);
	}
	render_fails(svg, sizeof(svg) - 1, &p, &render_default_limits, err,
	    sizeof(err));
	render_fails("", 0, &p, &render_default_limits, err, sizeof(err));
}

/*
 * The loader allow-list itself, past render_image's own sniffing: after
 * render_global_init, libvips refuses SVG, ImageMagick, matrix and its
 * own format, and still loads JPEG.
 */
Test(render, untrusted_loaders_blocked)
{
	static const char matrix[] = "2 2\n1 2\n3 4\n";
	VipsSource	*src;
	VipsImage	*img, *small;
	gchar		*path;
	void		*in;
	size_t		 len;
	const char	*e;
	int		 i, fd;

	in = render_fixture("svg-check.svg", &len);
	img = vips_image_new_from_buffer(in, len, "", NULL);
	cr_expect_null(img, "svg loaded");
	e = vips_error_buffer();
	cr_expect(strstr(e, "blocked") != NULL ||
	    strstr(e, "not a known") != NULL, "%s", e);
	vips_error_clear();
	g_free(in);

	in = render_fixture("s3-error-xml.jpg", &len);
	img = vips_image_new_from_buffer(in, len, "", NULL);
	cr_expect_null(img, "xml loaded");
	vips_error_clear();
	g_free(in);

	src = vips_source_new_from_memory(matrix, sizeof(matrix) - 1);
	cr_assert_not_null(src);
	img = vips_image_new_from_source(src, "", NULL);
	cr_expect_null(img, "matrix loaded");
	vips_error_clear();
	g_object_unref(src);

	/* libvips' own .v format and CSV, from files */
	small = render_flat(4, 4, (const double[3]){ 1, 2, 3 }, 3);
	for (i = 0; i < 2; i++) {
		fd = g_file_open_tmp(i == 0 ? "render-XXXXXX.v" :
		    "render-XXXXXX.csv", &path, NULL);
		cr_assert_geq(fd, 0);
		close(fd);
		cr_assert_eq(vips_image_write_to_file(small, path, NULL), 0,
		    "%s", vips_error_buffer());
		img = vips_image_new_from_file(path, NULL);
		cr_expect_null(img, "%s loaded", path);
		if (img != NULL)
			g_object_unref(img);
		vips_error_clear();
		unlink(path);
		g_free(path);
	}
	g_object_unref(small);

	in = render_fixture("icc-a98-small.jpg", &len);
	img = vips_image_new_from_buffer(in, len, "", NULL);
	cr_expect_not_null(img, "jpeg refused: %s", vips_error_buffer());
	if (img != NULL)
		g_object_unref(img);
	g_free(in);
}

Test(render, max_bytes)
{
	struct render_limits	 lim = render_default_limits;
	struct preset		 p;
	char			 err[512];
	void			*in;
	size_t			 len;

	in = render_make(100, 100, ".png", &len);
	p = render_preset(50, 0, FIT_INSIDE, FMT_JPEG);
	lim.max_bytes = len - 1;
	render_fails(in, len, &p, &lim, err, sizeof(err));
	cr_expect(strstr(err, "max_bytes") != NULL, "%s", err);
	lim.max_bytes = len;
	{
		struct render_out	 o;

		cr_expect_eq(render1(in, len, &p, &lim, &o, err, sizeof(err)),
		    0, "exactly max_bytes: %s", err);
		render_out_release(&o);
	}
	g_free(in);
}

/* CRC-32 of PNG chunks (ISO 3309, reflected 0xedb88320), bit by bit. */
static uint32_t
render_crc32(const unsigned char *p, size_t n)
{
	uint32_t	 c = 0xffffffffu;
	size_t		 i;
	int		 k;

	for (i = 0; i < n; i++) {
		c ^= p[i];
		for (k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
	}
	return c ^ 0xffffffffu;
}

static void
render_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* Append one chunk (type + data) with its length and CRC. */
static size_t
render_chunk(unsigned char *out, const char *type, const void *data,
    size_t n)
{
	render_be32(out, (uint32_t)n);
	memcpy(out + 4, type, 4);
	memcpy(out + 8, data, n);
	render_be32(out + 8 + n, render_crc32(out + 4, n + 4));
	return n + 12;
}

/* A PNG whose IHDR declares w x h RGB; the pixels are not there. */
static size_t
render_png_bomb(unsigned char *out, uint32_t w, uint32_t h)
{
	/* zlib stream of one empty stored block */
	static const unsigned char idat[] = {
		0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01
	};
	unsigned char	 ihdr[13];
	size_t		 n = 0;

	memcpy(out, "\x89PNG\r\n\x1a\n", 8);
	n = 8;
	render_be32(ihdr, w);
	render_be32(ihdr + 4, h);
	ihdr[8] = 8;		/* bit depth */
	ihdr[9] = 2;		/* RGB */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;
	n += render_chunk(out + n, "IHDR", ihdr, sizeof(ihdr));
	n += render_chunk(out + n, "IDAT", idat, sizeof(idat));
	n += render_chunk(out + n, "IEND", "", 0);
	return n;
}

Test(render, crc32_vector)
{
	/* the standard check value of CRC-32 */
	cr_assert_eq(render_crc32((const unsigned char *)"123456789", 9),
	    0xcbf43926u);
}

Test(render, max_pixels_from_header)
{
	struct render_limits	 lim = render_default_limits;
	struct preset		 p;
	unsigned char		 png[128];
	VipsImage		*hdr;
	char			 err[512];
	double			 t0, dt;
	size_t			 len;

	len = render_png_bomb(png, 60000, 60000);

	/* libvips reads this header: the refusal below is ours. */
	hdr = vips_image_new_from_buffer(png, len, "", NULL);
	cr_assert_not_null(hdr, "%s", vips_error_buffer());
	cr_assert_eq(hdr->Xsize, 60000);
	cr_assert_eq(hdr->Ysize, 60000);
	g_object_unref(hdr);

	p = render_preset(100, 0, FIT_INSIDE, FMT_JPEG);
	t0 = render_now();
	render_fails(png, len, &p, &lim, err, sizeof(err));
	dt = render_now() - t0;
	cr_expect(strstr(err, "max_pixels") != NULL, "%s", err);
	cr_expect(strstr(err, "60000x60000") != NULL, "%s", err);
	cr_expect_lt(dt, 1.0, "took %.2f s: decoded?", dt);
}

/* 200 frames of 50x50 = 500,000 pixels; the first alone is 2,500. */
Test(render, max_pixels_counts_frames)
{
	struct render_limits	 lim = render_default_limits;
	struct render_out	 o;
	struct preset		 p;
	char			 err[512];
	void			*in;
	size_t			 len;

	in = render_frames(50, 50, 200, &len);
	p = render_preset(20, 0, FIT_INSIDE, FMT_JPEG);
	lim.max_pixels = 499999;
	render_fails(in, len, &p, &lim, err, sizeof(err));
	cr_expect(strstr(err, "200 page") != NULL, "%s", err);
	lim.max_pixels = 500000;
	cr_expect_eq(render1(in, len, &p, &lim, &o, err, sizeof(err)), 0,
	    "at the limit: %s", err);
	render_out_release(&o);
	g_free(in);
}

/*
 * A 10-pixel PNG enlarged to 20000x15000 PNG takes far more than a
 * second to encode: the 1 s limit stops it.
 */
Test(render, timeout)
{
	struct render_limits	 lim = render_default_limits;
	struct preset		 p;
	char			 err[512];
	double			 t0, dt;
	void			*in;
	size_t			 len;

	in = render_make(4, 3, ".png", &len);
	p = render_preset(20000, 0, FIT_INSIDE, FMT_PNG);
	p.enlarge = 1;
	lim.timeout_s = 1;
	/* 300 MP: past the output check, for the time limit to stop it. */
	lim.max_pixels = 1000 * 1000 * 1000;
	t0 = render_now();
	render_fails(in, len, &p, &lim, err, sizeof(err));
	dt = render_now() - t0;
	cr_expect_str_eq(err, "timed out after 1 s");
	cr_expect_lt(dt, 4.0, "stopped after %.2f s", dt);
	g_free(in);
}

/* ---- what each preset may be ----------------------------------------- */

/* enlarge = true on a sliver: the output is checked before it is made. */
Test(render, output_over_max_pixels_refused_before_rendering)
{
	struct preset	 p;
	char		 err[512];
	void		*in;
	size_t		 len;
	double		 t0;

	in = render_make(1, 2000, ".png", &len);
	p = render_preset(1440, 0, FIT_INSIDE, FMT_JPEG);
	p.enlarge = 1;
	t0 = render_now();
	render_fails(in, len, &p, &render_default_limits, err, sizeof(err));
	cr_expect(strstr(err, "1440x2880000") != NULL &&
	    strstr(err, "max_pixels") != NULL, "%s", err);
	/* Refused, not worked on: well inside image_timeout. */
	cr_expect_lt(render_now() - t0, 5.0);
	g_free(in);
}

Test(render, fill_without_enlarge_never_grows)
{
	struct render_out	 o;
	struct preset		 p;
	void			*in;
	size_t			 len;

	in = render_make(2, 1, ".gif", &len);
	p = render_preset(100, 100, FIT_FILL, FMT_PNG);
	render_ok(in, len, &p, &o);
	cr_expect_eq(o.width, 2);
	cr_expect_eq(o.height, 1);
	render_out_release(&o);
	/* Each side shrinks to the box on its own, none grows. */
	g_free(in);
	in = render_make(400, 50, ".png", &len);
	render_ok(in, len, &p, &o);
	cr_expect_eq(o.width, 100);
	cr_expect_eq(o.height, 50);
	render_out_release(&o);
	p.enlarge = 1;
	render_ok(in, len, &p, &o);
	cr_expect_eq(o.width, 100);
	cr_expect_eq(o.height, 100);
	render_out_release(&o);
	g_free(in);
}

/* One preset that cannot be made does not take the others with it. */
Test(render, each_preset_fails_on_its_own)
{
	struct render_out	 o[3];
	struct preset		 p[3];
	const struct preset	*ps[3] = { &p[0], &p[1], &p[2] };
	char			 err[512];
	void			*in;
	size_t			 len, i;

	in = render_make(200, 10, ".png", &len);
	p[0] = render_preset(64, 0, FIT_INSIDE, FMT_JPEG);
	/* WebP holds at most 16383 pixels a side (16384x819 here). */
	p[1] = render_preset(16384, 0, FIT_INSIDE, FMT_WEBP);
	p[1].enlarge = 1;
	p[2] = render_preset(8, 8, FIT_COVER, FMT_PNG);
	for (i = 0; i < 3; i++)
		render_out_init(&o[i]);
	cr_expect_neq(render_image(in, len, ps, 3, &render_default_limits, o,
	    err, sizeof(err)), RENDER_OK);
	cr_expect_eq(o[0].status, RENDER_OK, "%s", o[0].error);
	cr_expect_gt(o[0].data.len, 0);
	cr_expect_eq(o[1].status, RENDER_EIMAGE);
	cr_expect(strstr(o[1].error, "WebP") != NULL, "%s", o[1].error);
	cr_expect_eq(o[1].data.len, 0);
	cr_expect_eq(o[2].status, RENDER_OK, "%s", o[2].error);
	cr_expect_eq(o[2].width, 8);
	/* The call's own reason is the failed preset's. */
	cr_expect_str_eq(err, o[1].error);
	for (i = 0; i < 3; i++)
		render_out_release(&o[i]);
	g_free(in);
}

/* An AV1 encode is one call image_timeout cannot stop: its size is bound. */
Test(render, avif_over_its_limit_refused_up_front)
{
	struct preset	 p;
	char		 err[512];
	void		*in;
	size_t		 len;

	in = render_make(64, 64, ".png", &len);
	p = render_preset(4200, 4200, FIT_FILL, FMT_AVIF);
	p.enlarge = 1;
	render_fails(in, len, &p, &render_default_limits, err, sizeof(err));
	cr_expect(strstr(err, "AVIF") != NULL, "%s", err);
	g_free(in);
}

/* The RIFF chunks of a WebP file, one four-character name after another. */
static void
webp_chunks(const struct render_out *o, char *dst, size_t len)
{
	const unsigned char	*d = (const unsigned char *)o->data.data;
	size_t			 i, n, k = 0;

	cr_assert_gt(o->data.len, 12);
	cr_assert(memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0);
	cr_assert_eq((size_t)d[4] | (size_t)d[5] << 8 | (size_t)d[6] << 16 |
	    (size_t)d[7] << 24, o->data.len - 8, "RIFF size");
	for (i = 12; i + 8 <= o->data.len; i += 8 + n + (n & 1)) {
		n = (size_t)d[i + 4] | (size_t)d[i + 5] << 8 |
		    (size_t)d[i + 6] << 16 | (size_t)d[i + 7] << 24;
		cr_assert_lt(k + 5, len);
		memcpy(dst + k, d + i, 4);
		dst[k + 4] = ' ';
		k += 5;
	}
	cr_assert_eq(i, o->data.len, "chunks end where the file does");
	dst[k] = '\0';
}

/* libvips 8.14 writes an EXIF chunk of its own into WebP: none may stay. */
Test(render, webp_carries_no_metadata)
{
	struct render_out	 o;
	struct preset		 p;
	VipsImage		*img;
	char			 chunks[256];
	void			*in;
	size_t			 len;

	in = render_fixture("icc-a98-small.jpg", &len);
	p = render_preset(64, 0, FIT_INSIDE, FMT_WEBP);
	render_ok(in, len, &p, &o);
	webp_chunks(&o, chunks, sizeof(chunks));
	cr_expect(strstr(chunks, "EXIF") == NULL && strstr(chunks, "XMP") ==
	    NULL && strstr(chunks, "ICCP") == NULL, "chunks: %s", chunks);
	img = render_decode(&o);
	cr_expect_eq(vips_image_get_typeof(img, "exif-data"), 0);
	cr_expect_eq(img->Xsize, 64);
	g_object_unref(img);
	render_out_release(&o);
	g_free(in);
}

/* ---- threads ------------------------------------------------------ */

struct render_job {
	const void	*in;
	size_t		 len;
	int		 width;
	int		 ok;
	int		 got_w;
};

static void *
render_thread(void *arg)
{
	struct render_job	*j = arg;
	struct render_out	 o[2];
	struct preset		 p[2];
	const struct preset	*ps[2] = { &p[0], &p[1] };
	char			 err[512];
	int			 k;

	p[0] = render_preset(j->width, 0, FIT_INSIDE, FMT_JPEG);
	p[1] = render_preset(j->width, j->width, FIT_COVER, FMT_WEBP);
	for (k = 0; k < 2; k++)
		render_out_init(&o[k]);
	j->ok = render_image(j->in, j->len, ps, 2, &render_default_limits,
	    o, err, sizeof(err)) == 0 && o[1].width == j->width &&
	    o[1].height == j->width;
	j->got_w = o[0].width;
	for (k = 0; k < 2; k++)
		render_out_release(&o[k]);
	render_thread_shutdown();
	return NULL;
}

Test(render, concurrent)
{
	struct render_job	 jobs[4];
	pthread_t		 t[4];
	void			*in;
	size_t			 len;
	int			 i;

	in = render_make(800, 600, ".jpg", &len);
	for (i = 0; i < 4; i++) {
		jobs[i] = (struct render_job){ in, len, 100 + 50 * i, 0, 0 };
		cr_assert_eq(pthread_create(&t[i], NULL, render_thread,
		    &jobs[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect(jobs[i].ok, "thread %d failed", i);
		cr_expect_eq(jobs[i].got_w, 100 + 50 * i);
	}
	g_free(in);
}

/*
 * libvips compiles and frees Orc code through render.c's definitions,
 * which take a lock around liborc's (Orc 0.4.33 has none there): the
 * process-wide lookup that binds libvips' calls must find ours, in this
 * executable, and not liborc's.
 */
Test(render, orc_code_is_compiled_and_freed_under_our_lock)
{
	static const char *const names[] = { "orc_program_compile",
		"orc_program_free" };
	Dl_info	 self, found;
	size_t	 i;
	void	*f, *orc, *real;

	cr_assert(dladdr((void *)render_image, &self) != 0);
	/* libvips loaded liborc: ours forward to its definitions. */
	orc = dlopen("liborc-0.4.so.0", RTLD_LAZY | RTLD_NOLOAD);
	cr_assert_not_null(orc, "liborc is not loaded");
	for (i = 0; i < 2; i++) {
		f = dlsym(RTLD_DEFAULT, names[i]);
		cr_assert_not_null(f, "%s not found", names[i]);
		cr_assert(dladdr(f, &found) != 0);
		cr_assert_str_eq(found.dli_fname, self.dli_fname, "%s binds to "
		    "%s", names[i], found.dli_fname);
		real = dlsym(RTLD_NEXT, names[i]);
		cr_assert(real != NULL && real == dlsym(orc, names[i]),
		    "%s: the next definition is not liborc's", names[i]);
	}
	dlclose(orc);
}
