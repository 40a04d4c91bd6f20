/*
 * batch: issue 3's "Done when" list, end to end.
 *
 * The real prewctl runs against the real S3 server through
 * tests/s3-fault-proxy, which counts every request by kind, so "a second
 * generate only lists" is measured outside prewctl and checked against what
 * prewctl says of itself. Each test has its own prefix and its own proxy;
 * the bucket is read back directly (not through the proxy) to check what
 * was written.
 *
 * Where the expectations come from:
 *   - display sizes of the originals: tests/data/batch/SOURCES.md (the
 *     corpus' vipsheader column, with the EXIF rotation applied);
 *   - preview sizes: the preset rules of the man page (inside: within the
 *     box; cover: shrink to fill, then crop to the box; never enlarge),
 *     computed here in floating point, the free side allowed +-1 pixel
 *     for rounding;
 *   - orientation: images made here whose four quadrants have known
 *     colours as displayed, stored transposed, mirrored or rotated as the
 *     EXIF 2.3 Orientation table (TIFF tag 274) says for 1..8, so an
 *     upright preview shows the same quadrants whatever the tag.
 * The folder backend ([storage] directory) runs scenarios 1, 2, 3 and 6.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#include "helpers.h"

#define DATA		"tests/data/batch/"
#define PROXY		"tests/s3-fault-proxy"
#define MAX_LOGGED	15

/* ---- the originals ---------------------------------------------------- */

static const struct corpus_file {
	const char	*name;
	int		 w, h;		/* as displayed, after EXIF rotation */
	int		 light;		/* cheap: copied under many keys */
} corpus[] = {
	{ "fujifilm-finepix-s1pro-gps.jpg", 600, 400, 1 },
	{ "sanyo-vpcg250-exif-org.jpg", 640, 480, 0 },
	{ "sony-dsc-p12-progressive.jpg", 1536, 2048, 0 },
	{ "samsung-galaxy-s-orient6.jpg", 480, 640, 0 },  /* 640x480, 6 */
	{ "ricoh-rdc5300-exif-org.jpg", 896, 600, 0 },
	{ "progressive-orient6.jpg", 231, 308, 1 },	/* 308x231, 6 */
	{ "grayscale-noicc.jpg", 531, 373, 1 },
	{ "icc-a98-small.jpg", 290, 442, 1 },
	{ "png-rgba8.png", 32, 32, 1 },
	{ "png16-rgb.png", 32, 32, 1 },
	{ "png-palette-trns.png", 32, 32, 1 },
	{ "png16-flag.png", 900, 600, 1 },
	{ "gif-grey-plus-alpha.gif", 2, 1, 1 },
	{ "animated.webp", 80, 80, 1 },			/* 9 frames */
	{ "animated-loop3.gif", 370, 285, 1 },		/* 10 frames */
	{ "avif-small.avif", 800, 600, 0 },
	{ "heic-small.heic", 1440, 960, 0 },
	{ "static-lossy-alpha.webp", 300, 300, 1 },
	{ "tiff-1bit.tif", 256, 4, 1 },
	{ "cmyk-no-profile.jpg", 500, 333, 1 },
};
#define NCORPUS (sizeof(corpus) / sizeof(corpus[0]))
#define SANYO	1

/* Folders and names that S3 allows and a naive client or merge gets wrong. */
static const char *const hostile_dirs[] = {
	"", "d/", "d x/", "d-x/", "d.x/", "d/sub/", "d!/", "\xc3\xa9t\xc3\xa9/",
	"d+/", "%41/",
};
static const char *const hostile_names[] = {
	"space here", "plus+sign", "per%cent", "pct%2Fslash", "hash#tag",
	"q?mark", "amp&and", "eq=ual", "semi;colon", "co:lon", "at@sign",
	"bang!", "dollar$", "apos'", "quote\"", "paren(1)", "brack[0]",
	"brace{x}", "com,ma", "tilde~", "star*", "caret^", "back`tick",
	"pipe|", "lt<gt>", "back\\slash", "\xc3\xa9-accent",
	"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "emoji-\xf0\x9f\x98\x80",
	"tab\there", "del\x7f", "multi..dots", "-dash", "_under",
	"UPPER", "ends-in-space ", "nbsp\xc2\xa0", "zw\xe2\x80\x8bsp",
	"x", "~", "dots/../up", "dot/./here", "slash//double",
};
#define NDIRS	(sizeof(hostile_dirs) / sizeof(hostile_dirs[0]))
#define NNAMES	(sizeof(hostile_names) / sizeof(hostile_names[0]))

struct orig {
	char	 rel[512];	/* the key under the source prefix */
	int	 src;		/* corpus index, or -1: an orientation image */
	int	 orient;	/* 0..8 for orientation images */
	int	 landscape;
	int	 w, h;		/* as displayed */
};

struct origs {
	struct orig	*v;
	size_t		 n;
};

/* Quadrant colours as displayed: [row][column]. */
static const unsigned char quad_rgb[2][2][3] = {
	{ { 255, 0, 0 }, { 0, 255, 0 } },
	{ { 0, 0, 255 }, { 255, 255, 255 } },
};

/* ---- presets ------------------------------------------------------------ */

struct tpreset {
	const char	*name;
	int		 w, h;		/* h 0: the width only */
	int		 cover;
	const char	*format;
	const char	*ctype;
	const char	*loader;	/* how vips-loader starts */
};

static const struct tpreset P3[] = {
	{ "small", 64, 64, 0, "jpeg", "image/jpeg", "jpegload" },
	{ "medium", 160, 0, 0, "webp", "image/webp", "webpload" },
	{ "sq", 100, 100, 1, "png", "image/png", "pngload" },
};
#define NP3 3

/* ---- what each test shares ----------------------------------------------- */

struct proxy {
	pid_t	 pid;
	int	 port;
	char	 endpoint[64];
};

struct counts {
	long long	 list, get, put, head, del, other, total;
	struct strv {
		char	**v;
		size_t	  n;
	}		 put_paths;	/* one entry per PUT, URL path */
};

static struct {
	struct s3_client	*c;
	struct proxy		 px;
	char			 prefix[256];
	char			*cfg;
	char			 root[64];	/* folder backend */
	struct buf		 data[NCORPUS];
	int			 loaded[NCORPUS];
	struct buf		 orient[2][9];
	int			 orient_made[2][9];
} B;

struct checks {
	int	 fails;
	int	 done;
};

#define CHECK(cs, cond, ...) do {					\
	if (!(cond) && (cs)->fails++ < MAX_LOGGED)			\
		cr_log_error(__VA_ARGS__);				\
} while (0)

/* Printable form of a hostile key, for messages (4 rotating buffers). */
static const char *
vis(const char *s)
{
	static char	 bufs[4][1200];
	static int	 k;
	char		*o = bufs[k++ % 4];
	size_t		 n = 0;

	for (; *s != '\0' && n + 5 < sizeof(bufs[0]); s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			n += (size_t)snprintf(o + n, 5, "\\x%02x", ch);
		else
			o[n++] = (char)ch;
	}
	o[n] = '\0';
	return o;
}

/* ---- string vectors --------------------------------------------------- */

static void
strv_add(struct strv *v, const char *s)
{
	v->v = realloc(v->v, (v->n + 1) * sizeof(*v->v));
	cr_assert_not_null(v->v);
	cr_assert_not_null(v->v[v->n++] = strdup(s));
}

static int
strv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
strv_sort(struct strv *v)
{
	if (v->n > 0)
		qsort(v->v, v->n, sizeof(*v->v), strv_cmp);
}

static int
strv_has(const struct strv *v, const char *s)
{
	return v->n > 0 && bsearch(&s, v->v, v->n, sizeof(*v->v),
	    strv_cmp) != NULL;
}

static void
strv_free(struct strv *v)
{
	size_t	i;

	for (i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

/* Compare two sets (sorted here); logs differences, returns how many. */
static int
strv_diff(struct strv *got, struct strv *want, const char *what)
{
	size_t	i = 0, j = 0;
	int	bad = 0, c;

	strv_sort(got);
	strv_sort(want);
	while (i < got->n || j < want->n) {
		c = i == got->n ? 1 : j == want->n ? -1 :
		    strcmp(got->v[i], want->v[j]);
		if (c == 0) {
			i++;
			j++;
			continue;
		}
		if (bad++ < MAX_LOGGED)
			cr_log_error("%s: %s '%s'", what, c < 0 ?
			    "unexpected" : "missing",
			    vis(c < 0 ? got->v[i] : want->v[j]));
		if (c < 0)
			i++;
		else
			j++;
	}
	return bad;
}

/* ---- reading JSON ------------------------------------------------------ */

/* The strings of the array at path, added to out. */
static void
jstrings(const struct th_json *doc, const char *path, struct strv *out)
{
	const struct th_json	*a = th_json_at(doc, path);
	size_t			 i;

	cr_assert_not_null(a, "no '%s' in the JSON output", path);
	cr_assert_eq(th_json_type(a), TH_JSON_ARRAY, "'%s' is not an array",
	    path);
	for (i = 0; i < th_json_len(a); i++) {
		cr_assert_eq(th_json_type(th_json_item(a, i)), TH_JSON_STRING,
		    "'%s[%zu]' is not a string", path, i);
		strv_add(out, th_json_str(th_json_item(a, i), ""));
	}
}

/* ---- the counting proxy ------------------------------------------------- */

static void
proxy_start(struct proxy *px)
{
	char	*argv[] = { PROXY, "--max-seconds", "1200",
	    (char *)th_env()->endpoint, NULL };

	px->port = th_start_server(argv, &px->pid);
	snprintf(px->endpoint, sizeof(px->endpoint), "http://127.0.0.1:%d",
	    px->port);
}

static void
proxy_stop(struct proxy *px)
{
	th_stop_server(&px->pid);
}

/* Read the proxy's counts (and zero them when reset). */
static void
proxy_counts(struct proxy *px, int reset, struct counts *c)
{
	struct sockaddr_in	 sa;
	struct buf		 resp;
	struct th_json		*doc;
	const struct th_json	*pp;
	const char		*body;
	char			 req[128], chunk[8192];
	int			 fd, n;
	ssize_t			 r;
	struct pollfd		 pf;
	size_t			 i;
	long long		 k;

	memset(c, 0, sizeof(*c));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)px->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	    "cannot reach the proxy: %s", strerror(errno));
	n = snprintf(req, sizeof(req), "GET /__counts%s HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nConnection: close\r\n\r\n",
	    reset ? "?reset=1" : "");
	cr_assert(n > 0 && (size_t)n < sizeof(req));
	cr_assert(write(fd, req, (size_t)n) == n);
	buf_init(&resp, 64 * 1024 * 1024);
	pf.fd = fd;
	pf.events = POLLIN;
	for (;;) {
		cr_assert(poll(&pf, 1, 20000) > 0, "the proxy did not answer");
		if ((r = read(fd, chunk, sizeof(chunk))) <= 0)
			break;
		cr_assert(buf_add(&resp, chunk, (size_t)r) == 0);
	}
	close(fd);
	cr_assert(strncmp(resp.data, "HTTP/1.1 200", 12) == 0,
	    "proxy: %.200s", resp.data);
	body = strstr(resp.data, "\r\n\r\n");
	cr_assert_not_null(body);
	body += 4;
	doc = th_json_parse(body, resp.len - (size_t)(body - resp.data));
	c->list = th_json_num(doc, "LIST");
	c->get = th_json_num(doc, "GET");
	c->put = th_json_num(doc, "PUT");
	/* HEADs of objects; the guard's of the stamps are its own. */
	pp = th_json_at(doc, "head_paths");
	cr_assert(pp != NULL && th_json_type(pp) == TH_JSON_OBJECT,
	    "the proxy's counts have no head_paths object");
	for (c->head = 0, i = 0; i < th_json_len(pp); i++)
		if (strstr(th_json_name(pp, i), "/.prewctl-stamp-") == NULL)
			c->head += th_json_num(th_json_item(pp, i), "");
	c->del = th_json_num(doc, "DELETE");
	c->other = th_json_num(doc, "OTHER");
	c->total = th_json_num(doc, "total");
	/* { "<path>": <how many PUTs>, ... } */
	pp = th_json_at(doc, "put_paths");
	cr_assert(pp != NULL && th_json_type(pp) == TH_JSON_OBJECT,
	    "the proxy's counts have no put_paths object");
	for (i = 0; i < th_json_len(pp); i++)
		for (k = th_json_num(th_json_item(pp, i), ""); k > 0; k--)
			strv_add(&c->put_paths, th_json_name(pp, i));
	strv_sort(&c->put_paths);
	th_json_free(doc);
	buf_release(&resp);
}

static void
counts_release(struct counts *c)
{
	strv_free(&c->put_paths);
}

/* ---- originals, uploads, configs -------------------------------------- */

static const struct buf *
corpus_data(int i)
{
	char	path[256];

	if (!B.loaded[i]) {
		snprintf(path, sizeof(path), DATA "%s", corpus[i].name);
		buf_init(&B.data[i], BUF_NOMAX);
		th_read_file(path, &B.data[i]);
		B.loaded[i] = 1;
	}
	return &B.data[i];
}

/*
 * Where the displayed pixel (u, v) is stored, for a stored image of w x h
 * and EXIF orientation n (EXIF 2.3, tag 274): 2 "0th row top, 0th column
 * right", 3 "bottom, right", 4 "bottom, left", 5 "left, top", 6 "right,
 * top", 7 "right, bottom", 8 "left, bottom".
 */
static void
stored_at(int n, int u, int v, int w, int h, int *x, int *y)
{
	switch (n) {
	case 2: *x = w - 1 - u; *y = v; break;
	case 3: *x = w - 1 - u; *y = h - 1 - v; break;
	case 4: *x = u; *y = h - 1 - v; break;
	case 5: *x = v; *y = u; break;
	case 6: *x = v; *y = h - 1 - u; break;
	case 7: *x = w - 1 - v; *y = h - 1 - u; break;
	case 8: *x = w - 1 - v; *y = u; break;
	default: *x = u; *y = v; break;
	}
}

/* A 90x60 (or 60x90) JPEG showing quad_rgb upright with orientation n. */
static const struct buf *
orient_data(int landscape, int n)
{
	struct buf	*b = &B.orient[landscape][n];
	VipsImage	*mem, *img, *back;
	unsigned char	*pix;
	void		*jpg = NULL;
	size_t		 len;
	int		 dw = landscape ? 90 : 60, dh = landscape ? 60 : 90;
	int		 sw = n >= 5 ? dh : dw, sh = n >= 5 ? dw : dh;
	int		 u, v, x, y, got;

	if (B.orient_made[landscape][n])
		return b;
	pix = calloc((size_t)sw * sh * 3, 1);
	cr_assert_not_null(pix);
	for (v = 0; v < dh; v++)
		for (u = 0; u < dw; u++) {
			stored_at(n, u, v, sw, sh, &x, &y);
			cr_assert(x >= 0 && x < sw && y >= 0 && y < sh);
			memcpy(pix + ((size_t)y * sw + x) * 3,
			    quad_rgb[v >= dh / 2][u >= dw / 2], 3);
		}
	mem = vips_image_new_from_memory_copy(pix, (size_t)sw * sh * 3, sw, sh,
	    3, VIPS_FORMAT_UCHAR);
	free(pix);
	cr_assert_not_null(mem, "%s", vips_error_buffer());
	cr_assert(vips_copy(mem, &img, "interpretation",
	    VIPS_INTERPRETATION_sRGB, NULL) == 0, "%s", vips_error_buffer());
	g_object_unref(mem);
	if (n > 0)
		vips_image_set_int(img, "orientation", n);
	cr_assert(vips_jpegsave_buffer(img, &jpg, &len, "Q", 95, NULL) == 0,
	    "%s", vips_error_buffer());
	g_object_unref(img);

	/* The fixture itself: stored size and the tag as asked. */
	back = vips_image_new_from_buffer(jpg, len, "", NULL);
	cr_assert_not_null(back, "%s", vips_error_buffer());
	cr_assert(back->Xsize == sw && back->Ysize == sh);
	if (vips_image_get_typeof(back, "orientation") != 0) {
		cr_assert(vips_image_get_int(back, "orientation", &got) == 0);
		cr_assert_eq(got, n > 0 ? n : 1, "orientation %d saved as %d",
		    n, got);
	} else
		cr_assert_eq(n, 0, "orientation %d was not saved", n);
	g_object_unref(back);

	buf_init(b, BUF_NOMAX);
	cr_assert(buf_add(b, jpg, len) == 0);
	g_free(jpg);
	B.orient_made[landscape][n] = 1;
	return b;
}

static const struct buf *
orig_data(const struct orig *o)
{
	return o->src >= 0 ? corpus_data(o->src) :
	    orient_data(o->landscape, o->orient);
}

static void
origs_add(struct origs *os, const char *rel, int src, int landscape,
    int orient)
{
	struct orig	*o;

	os->v = realloc(os->v, (os->n + 1) * sizeof(*os->v));
	cr_assert_not_null(os->v);
	o = &os->v[os->n++];
	memset(o, 0, sizeof(*o));
	cr_assert((size_t)snprintf(o->rel, sizeof(o->rel), "%s", rel) <
	    sizeof(o->rel));
	o->src = src;
	o->landscape = landscape;
	o->orient = orient;
	if (src >= 0) {
		o->w = corpus[src].w;
		o->h = corpus[src].h;
	} else {
		o->w = landscape ? 90 : 60;
		o->h = landscape ? 60 : 90;
	}
}

enum { SET_CORPUS = 1, SET_ORIENT = 2, SET_HEAVY = 4 };

/*
 * The originals of a test: the corpus files under "corpus/", the 18
 * orientation images under "orientation/", and nhostile copies under
 * hostile keys (of the light corpus files, or with SET_HEAVY of the big
 * ones, so that a run takes long enough to be interrupted).
 */
static void
origs_make(struct origs *os, int flags, size_t nhostile)
{
	int	 pool[NCORPUS], npool = 0, src, land, n;
	size_t	 i, k;
	char	 rel[512], ext[16];
	const char *dot;

	memset(os, 0, sizeof(*os));
	for (i = 0; i < NCORPUS; i++) {
		if (!!corpus[i].light != !!(flags & SET_HEAVY))
			pool[npool++] = (int)i;
		if (flags & SET_CORPUS) {
			snprintf(rel, sizeof(rel), "corpus/%s", corpus[i].name);
			origs_add(os, rel, (int)i, 0, 0);
		}
	}
	if (flags & SET_ORIENT)
		for (land = 1; land >= 0; land--)
			for (n = 0; n <= 8; n++) {
				snprintf(rel, sizeof(rel), "orientation/%s_%d.jpg",
				    land ? "Landscape" : "Portrait", n);
				origs_add(os, rel, -1, land, n);
			}
	for (i = 0; i < nhostile; i++) {
		src = pool[i % (size_t)npool];
		dot = strrchr(corpus[src].name, '.');
		snprintf(ext, sizeof(ext), "%s", dot + 1);
		/* Extensions are matched without regard to case. */
		if (i % 4 == 1)
			for (k = 0; ext[k] != '\0'; k++)
				ext[k] = (char)(ext[k] - 'a' + 'A');
		cr_assert((size_t)snprintf(rel, sizeof(rel), "%s%s-%zu.%s",
		    hostile_dirs[i % NDIRS], hostile_names[i % NNAMES], i,
		    ext) < sizeof(rel));
		origs_add(os, rel, src, 0, 0);
	}
}

static void
origs_free(struct origs *os)
{
	free(os->v);
	memset(os, 0, sizeof(*os));
}

static char *
s3_key(const char *area, const char *rel)
{
	struct buf	b;

	buf_init(&b, BUF_NOMAX);
	cr_assert(buf_addf(&b, "%s%s%s", B.prefix, area, rel) == 0);
	return buf_detach(&b, NULL);
}

static void
put_bytes(const char *key, const struct buf *data)
{
	struct s3_put_opts	po = { "application/octet-stream", NULL, NULL,
				    NULL, 0 };
	struct s3_error		err;
	enum s3_status		st;
	char			msg[256];

	st = s3_put(B.c, key, data->data, data->len, &po, &err);
	cr_assert(st == S3_OK, "cannot put '%s': %s", vis(key),
	    s3_error_text(st, &err, msg, sizeof(msg)));
}

static void
upload(const struct origs *os)
{
	size_t	 i;
	char	*key;

	for (i = 0; i < os->n; i++) {
		key = s3_key("photo/", os->v[i].rel);
		put_bytes(key, orig_data(&os->v[i]));
		free(key);
	}
}

static void
presets_ini(struct buf *b, const struct tpreset *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		cr_assert(buf_addf(b, "[preset %s]\nwidth = %d\n", v[i].name,
		    v[i].w) == 0);
		if (v[i].h > 0)
			cr_assert(buf_addf(b, "height = %d\n", v[i].h) == 0);
		cr_assert(buf_addf(b, "fit = %s\nformat = %s\n\n",
		    v[i].cover ? "cover" : "inside", v[i].format) == 0);
	}
}

/* A config for the test bucket, reached through the proxy. */
static void
write_s3_config(const struct tpreset *v, size_t n)
{
	const struct th_env	*e = th_env();
	struct buf		 b;

	buf_init(&b, BUF_NOMAX);
	cr_assert(buf_addf(&b, "[storage]\nbucket = %s\nendpoint = %s\n"
	    "region = %s\npath_style = true\nsource = %sphoto/\n"
	    "previews = %sprew/\ncache_control = public, max-age=60\n"
	    "retries = 3\ntimeout = 10\n\n", e->bucket, B.px.endpoint,
	    e->region, B.prefix, B.prefix) == 0);
	presets_ini(&b, v, n);
	if (B.cfg != NULL) {
		unlink(B.cfg);
		free(B.cfg);
	}
	B.cfg = th_write_temp(b.data);
	buf_release(&b);
}

static void
write_dir_config(const struct tpreset *v, size_t n)
{
	struct buf	b;

	buf_init(&b, BUF_NOMAX);
	cr_assert(buf_addf(&b, "[storage]\ndirectory = %s\nsource = photo/\n"
	    "previews = prew/\n\n", B.root) == 0);
	presets_ini(&b, v, n);
	if (B.cfg != NULL) {
		unlink(B.cfg);
		free(B.cfg);
	}
	B.cfg = th_write_temp(b.data);
	buf_release(&b);
}

/* Run prewctl with the test's config; args NULL-terminated. */
static void
run(struct th_run *r, ...)
{
	const char	*args[32];
	size_t		 n = 0;
	va_list		 ap;

	args[n++] = "-c";
	args[n++] = B.cfg;
	va_start(ap, r);
	while ((args[n] = va_arg(ap, const char *)) != NULL) {
		n++;
		cr_assert(n < 31);
	}
	va_end(ap);
	th_prewctl(r, args, NULL);
}

/* ---- listings --------------------------------------------------------- */

struct obj {
	char	*key;
	char	 etag[80];
	int64_t	 mtime_ms;
};

struct objv {
	struct obj	*v;
	size_t		 n;
};

static int
list_cb(void *arg, const struct s3_object *o)
{
	struct objv	*ov = arg;
	struct obj	*x;

	ov->v = realloc(ov->v, (ov->n + 1) * sizeof(*ov->v));
	cr_assert_not_null(ov->v);
	x = &ov->v[ov->n++];
	x->key = strdup(o->key);
	snprintf(x->etag, sizeof(x->etag), "%s", o->etag);
	x->mtime_ms = o->mtime_ms;
	return 0;
}

static int
obj_cmp(const void *a, const void *b)
{
	return strcmp(((const struct obj *)a)->key,
	    ((const struct obj *)b)->key);
}

/* Every object under the test prefix + area, straight from the server. */
static void
list_all(const char *area, struct objv *ov)
{
	struct s3_list_params	 lp;
	struct s3_error		 err;
	enum s3_status		 st;
	char			*prefix = s3_key(area, ""), msg[256];

	memset(ov, 0, sizeof(*ov));
	memset(&lp, 0, sizeof(lp));
	lp.prefix = prefix;
	st = s3_list(B.c, &lp, list_cb, NULL, ov, &err);
	cr_assert(st == S3_OK, "cannot list '%s': %s", prefix,
	    s3_error_text(st, &err, msg, sizeof(msg)));
	/* Checked, not assumed: S3 order is byte order. */
	if (ov->n > 1)
		qsort(ov->v, ov->n, sizeof(*ov->v), obj_cmp);
	free(prefix);
}

static const struct obj *
objv_find(const struct objv *ov, const char *key)
{
	struct obj	k = { (char *)key, "", 0 };

	return ov->n == 0 ? NULL : bsearch(&k, ov->v, ov->n, sizeof(*ov->v),
	    obj_cmp);
}

static void
objv_free(struct objv *ov)
{
	size_t	i;

	for (i = 0; i < ov->n; i++)
		free(ov->v[i].key);
	free(ov->v);
	memset(ov, 0, sizeof(*ov));
}

typedef int	(*key_pred)(const char *key, const void *arg);

/*
 * Same keys before and after. changed() says what became of each: 0 kept
 * (the very same ETag and LastModified), 1 rewritten (a later
 * LastModified; the bytes may be the same, e.g. an original smaller than
 * both the old and the new width), 2 rewritten with new content (a new
 * ETag too). Returns how many were rewritten.
 */
static size_t
compare_snap(const struct objv *before, const struct objv *after,
    key_pred changed, const void *arg)
{
	struct checks	 cs = { 0, 0 };
	const struct obj *a;
	size_t		 i, nchanged = 0;

	CHECK(&cs, before->n == after->n, "%zu objects before, %zu after",
	    before->n, after->n);
	for (i = 0; i < before->n; i++) {
		const struct obj *b = &before->v[i];
		int want = changed(b->key, arg);

		if ((a = objv_find(after, b->key)) == NULL) {
			CHECK(&cs, 0, "'%s' is gone", vis(b->key));
			continue;
		}
		if (want) {
			nchanged++;
			CHECK(&cs, a->mtime_ms > b->mtime_ms, "'%s' was not "
			    "rewritten (LastModified %lld -> %lld)",
			    vis(b->key), (long long)b->mtime_ms,
			    (long long)a->mtime_ms);
			CHECK(&cs, want == 1 || strcmp(a->etag, b->etag) != 0,
			    "'%s' has the same ETag %s, but its size changed",
			    vis(b->key), a->etag);
		} else
			CHECK(&cs, strcmp(a->etag, b->etag) == 0 &&
			    a->mtime_ms == b->mtime_ms, "'%s' was rewritten "
			    "(ETag %s -> %s, LastModified %lld -> %lld)",
			    vis(b->key), b->etag, a->etag,
			    (long long)b->mtime_ms, (long long)a->mtime_ms);
	}
	cr_assert_eq(cs.fails, 0, "%d objects differ from what was expected "
	    "(first ones logged)", cs.fails);
	return nchanged;
}

static int
pred_prefix(const char *key, const void *arg)
{
	const char *const *v = arg;	/* NULL-terminated prefixes */

	for (; *v != NULL; v++)
		if (strncmp(key, *v, strlen(*v)) == 0)
			return 1;
	return 0;
}

static int
pred_in(const char *key, const void *arg)
{
	return strv_has(arg, key) ? 2 : 0;
}

/* ---- checking previews ------------------------------------------------ */

/* The expected side: exact when the preset fixes it, else +-1. */
static void
expect_size(const struct tpreset *p, const struct orig *o, double *ew,
    double *eh)
{
	double	sw = (double)p->w / o->w;
	double	sh = p->h > 0 ? (double)p->h / o->h : INFINITY;
	double	s = p->cover ? fmax(sw, sh) : fmin(sw, sh);

	if (s >= 1) {
		*ew = o->w;
		*eh = o->h;
	} else if (p->cover ? sw >= sh : sw <= sh) {
		*ew = p->w;
		*eh = o->h * s;
	} else {
		*eh = p->h;
		*ew = o->w * s;
	}
	if (p->cover) {
		*ew = fmin(*ew, p->w);
		*eh = fmin(*eh, p->h);
	}
}

static int
size_ok(int got, double want)
{
	if (fabs(want - rint(want)) < 1e-6)
		return got == (int)rint(want);
	return fabs(got - want) <= 1.0;
}

/*
 * Which quadrant colour px is nearest to (as qy * 2 + qx). Nearest, not
 * equal: this checks where the quadrants went, not colour fidelity, which
 * untagged_colours_are_kept checks on its own.
 */
static int
nearest_quad(const double *px)
{
	double	d, best = INFINITY;
	int	q, k, at = -1;

	for (q = 0; q < 4; q++) {
		for (d = 0, k = 0; k < 3; k++)
			d += (px[k] - quad_rgb[q / 2][q % 2][k]) *
			    (px[k] - quad_rgb[q / 2][q % 2][k]);
		if (d < best) {
			best = d;
			at = q;
		}
	}
	return at;
}

/* Decode one preview and check it against preset p and original o. */
static void
check_image(struct checks *cs, const char *what, const void *data,
    size_t len, const struct tpreset *p, const struct orig *o)
{
	VipsImage	*img;
	const char	*loader = "";
	double		 ew, eh, *px;
	int		 qx, qy, n, k;

	cs->done++;
	if ((img = vips_image_new_from_buffer(data, len, "", NULL)) == NULL) {
		CHECK(cs, 0, "%s: cannot decode: %s", what,
		    vips_error_buffer());
		vips_error_clear();
		return;
	}
	if (vips_image_get_typeof(img, "vips-loader") != 0)
		vips_image_get_string(img, "vips-loader", &loader);
	CHECK(cs, strncmp(loader, p->loader, strlen(p->loader)) == 0,
	    "%s: loader %s, expected %s", what, loader, p->loader);
	expect_size(p, o, &ew, &eh);
	CHECK(cs, size_ok(img->Xsize, ew) && size_ok(img->Ysize, eh),
	    "%s: %dx%d, expected %.1fx%.1f (original %dx%d)", what,
	    img->Xsize, img->Ysize, ew, eh, o->w, o->h);
	CHECK(cs, vips_image_get_n_pages(img) == 1, "%s: %d pages, expected "
	    "the first frame only", what, vips_image_get_n_pages(img));
	if (o->src < 0 && img->Bands >= 3)
		for (qy = 0; qy < 2; qy++)
			for (qx = 0; qx < 2; qx++) {
				if (vips_getpoint(img, &px, &n,
				    img->Xsize * (2 * qx + 1) / 4,
				    img->Ysize * (2 * qy + 1) / 4, NULL) != 0) {
					CHECK(cs, 0, "%s: getpoint: %s", what,
					    vips_error_buffer());
					vips_error_clear();
					continue;
				}
				k = nearest_quad(px);
				CHECK(cs, k == qy * 2 + qx, "%s: quadrant "
				    "(%d,%d) is %.0f,%.0f,%.0f, nearest to the "
				    "colour of (%d,%d): not upright", what, qx,
				    qy, px[0], px[1], px[2], k % 2, k / 2);
				g_free(px);
			}
	else
		CHECK(cs, o->src >= 0, "%s: %d bands", what, img->Bands);
	g_object_unref(img);
}

static void
check_s3_preview(struct checks *cs, const struct tpreset *p,
    const struct orig *o)
{
	struct s3_head	 hd;
	struct s3_error	 err;
	struct buf	 body, area;
	enum s3_status	 st;
	char		*key, what[1400], msg[256];

	buf_init(&area, BUF_NOMAX);
	buf_addf(&area, "prew/%s/", p->name);
	key = s3_key(area.data, o->rel);
	snprintf(what, sizeof(what), "'%s'", vis(key));
	buf_init(&body, 64 * 1024 * 1024);
	s3_head_init(&hd);
	st = s3_get(B.c, key, 64 * 1024 * 1024, &body, &hd, &err);
	if (st != S3_OK) {
		cs->done++;
		CHECK(cs, 0, "%s: cannot get: %s", what,
		    s3_error_text(st, &err, msg, sizeof(msg)));
	} else {
		CHECK(cs, strcmp(hd.content_type, p->ctype) == 0,
		    "%s: Content-Type '%s', expected '%s'", what,
		    hd.content_type, p->ctype);
		CHECK(cs, strcmp(hd.cache_control, "public, max-age=60") == 0,
		    "%s: Cache-Control '%s'", what, hd.cache_control);
		check_image(cs, what, body.data, body.len, p, o);
	}
	s3_head_release(&hd);
	buf_release(&body);
	buf_release(&area);
	free(key);
}

static void
check_all_s3(const struct origs *os, const struct tpreset *v, size_t np)
{
	struct checks	cs = { 0, 0 };
	size_t		i, j;

	for (i = 0; i < os->n; i++)
		for (j = 0; j < np; j++)
			check_s3_preview(&cs, &v[j], &os->v[i]);
	cr_assert_eq(cs.fails, 0, "%d of %d preview checks failed (first "
	    "ones logged)", cs.fails, cs.done);
	cr_assert_eq((size_t)cs.done, os->n * np);
}

/* The keys of the previews of os under presets v. */
static void
preview_keys(const struct origs *os, const struct tpreset *v, size_t np,
    int full, struct strv *out)
{
	struct buf	b;
	size_t		i, j;

	buf_init(&b, BUF_NOMAX);
	for (i = 0; i < os->n; i++)
		for (j = 0; j < np; j++) {
			buf_reset(&b);
			cr_assert(buf_addf(&b, "%sprew/%s/%s", full ?
			    B.prefix : "", v[j].name, os->v[i].rel) == 0);
			strv_add(out, b.data);
		}
	buf_release(&b);
}

/* ---- setup ------------------------------------------------------------ */

static void
setup(void)
{
	memset(&B, 0, sizeof(B));
	cr_assert(VIPS_INIT("prewctl-tests") == 0);
	vips_cache_set_max(0);
	B.c = th_client();
	snprintf(B.prefix, sizeof(B.prefix), "%s", th_prefix("batch"));
}

static void
setup_s3(void)
{
	setup();
	proxy_start(&B.px);
}

static void
teardown(void)
{
	size_t	i;
	int	l, n;

	proxy_stop(&B.px);
	if (B.c != NULL) {
		if (B.root[0] == '\0')
			th_delete_prefix(B.c, B.prefix);
		s3_client_free(B.c);
	}
	if (B.root[0] != '\0')
		th_rmtree(B.root);
	if (B.cfg != NULL) {
		unlink(B.cfg);
		free(B.cfg);
	}
	for (i = 0; i < NCORPUS; i++)
		if (B.loaded[i])
			buf_release(&B.data[i]);
	for (l = 0; l < 2; l++)
		for (n = 0; n < 9; n++)
			if (B.orient_made[l][n])
				buf_release(&B.orient[l][n]);
}

TestSuite(batch, .fini = teardown, .timeout = 900);

/* Upload os, generate with v, and check it all went. */
static void
generate_base(const struct origs *os, const struct tpreset *v, size_t np)
{
	struct th_run	r;
	struct th_json	*doc;
	size_t		j;
	char		path[64];

	upload(os);
	write_s3_config(v, np);
	run(&r, "generate", "--json", NULL);
	th_expect_exit(&r, 0, "generate");
	doc = th_json_parse(r.out.data, r.out.len);
	for (j = 0; j < np; j++) {
		snprintf(path, sizeof(path), "presets.%s.generated", v[j].name);
		cr_assert_eq(th_json_num(doc, path), (long long)os->n,
		    "%s: %s", path, r.out.data);
	}
	th_json_free(doc);
	th_run_release(&r);
}

/* ---- 1. every preview, right size, upright, right type ---------------- */

Test(batch, generate_makes_every_preview, .init = setup_s3)
{
	struct origs	 os;
	struct th_run	 r;
	struct th_json	*doc;
	struct counts	 c;
	struct buf	 ign;
	struct objv	 prev;
	char		*key, path[64];
	size_t		 j;

	origs_make(&os, SET_CORPUS | SET_ORIENT, 200 - NCORPUS - 18);
	cr_assert_eq(os.n, 200);
	upload(&os);
	/* Not originals: counted as ignored, never touched. */
	buf_init(&ign, BUF_NOMAX);
	buf_addstr(&ign, "not an image");
	key = s3_key("photo/", "readme.txt");
	put_bytes(key, &ign);
	free(key);
	key = s3_key("photo/", "d/notes.jpg.json");
	put_bytes(key, &ign);
	free(key);
	buf_release(&ign);
	write_s3_config(P3, NP3);

	run(&r, "generate", "--json", NULL);
	th_expect_exit(&r, 0, "generate");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_assert_eq(th_json_num(doc, "originals"), 200);
	cr_assert_eq(th_json_num(doc, "ignored"), 2);
	for (j = 0; j < NP3; j++) {
		snprintf(path, sizeof(path), "presets.%s.generated", P3[j].name);
		cr_expect_eq(th_json_num(doc, path), 200, "%s", path);
		snprintf(path, sizeof(path), "presets.%s.failed", P3[j].name);
		cr_expect_eq(th_json_num(doc, path), 0, "%s", path);
	}
	proxy_counts(&B.px, 0, &c);
	/*
	 * One GET per original, one PUT per preview and stamp, and one HEAD
	 * per original made: it is still the one its previews came from.
	 */
	cr_expect_eq(c.get, 200, "GET %lld", c.get);
	cr_expect_eq(c.put, 600 + NP3, "PUT %lld", c.put);
	cr_expect_eq(c.head, 200, "HEAD %lld", c.head);
	cr_expect_eq(c.put, th_json_num(doc, "requests.put"));
	cr_expect_eq(c.get, th_json_num(doc, "requests.get"));
	counts_release(&c);
	th_json_free(doc);
	th_run_release(&r);

	/* Exactly the previews and the stamps, nothing for the ignored. */
	{
		struct strv got = { NULL, 0 }, want = { NULL, 0 };
		size_t i;

		list_all("prew/", &prev);
		for (i = 0; i < prev.n; i++)
			strv_add(&got, prev.v[i].key);
		preview_keys(&os, P3, NP3, 1, &want);
		for (j = 0; j < NP3; j++) {
			key = s3_key("prew/.prewctl-stamp-", P3[j].name);
			strv_add(&want, key);
			free(key);
		}
		cr_assert_eq(strv_diff(&got, &want, "previews"), 0);
		strv_free(&got);
		strv_free(&want);
		objv_free(&prev);
	}
	check_all_s3(&os, P3, NP3);
	origs_free(&os);
}

/* ---- 2. a second run only lists -------------------------------------- */

Test(batch, second_generate_only_lists, .init = setup_s3)
{
	struct origs	 os;
	struct th_run	 r;
	struct th_json	*doc;
	struct counts	 c;
	size_t		 j;
	char		 path[64];

	origs_make(&os, SET_CORPUS, 10);
	generate_base(&os, P3, NP3);
	proxy_counts(&B.px, 1, &c);
	counts_release(&c);

	run(&r, "generate", "--json", NULL);
	th_expect_exit(&r, 0, "second generate");
	doc = th_json_parse(r.out.data, r.out.len);
	proxy_counts(&B.px, 0, &c);
	cr_expect_eq(c.get, 0, "GET %lld", c.get);
	cr_expect_eq(c.put, 0, "PUT %lld", c.put);
	cr_expect_eq(c.head, 0, "HEAD %lld", c.head);
	cr_expect_eq(c.del, 0, "DELETE %lld", c.del);
	cr_expect_eq(c.other, 0, "OTHER %lld", c.other);
	cr_expect_geq(c.list, 1 + NP3, "LIST %lld", c.list);
	cr_expect_eq(c.total, c.list);
	/* And prewctl says the same of itself. */
	cr_expect_eq(th_json_num(doc, "requests.list"), c.list);
	cr_expect_eq(th_json_num(doc, "requests.get"), 0);
	cr_expect_eq(th_json_num(doc, "requests.put"), 0);
	cr_expect_eq(th_json_num(doc, "requests.head"), 0);
	cr_expect_eq(th_json_num(doc, "requests.delete"), 0);
	for (j = 0; j < NP3; j++) {
		snprintf(path, sizeof(path), "presets.%s.generated", P3[j].name);
		cr_expect_eq(th_json_num(doc, path), 0, "%s", path);
		snprintf(path, sizeof(path), "presets.%s.fresh", P3[j].name);
		cr_expect_eq(th_json_num(doc, path), (long long)os.n, "%s",
		    path);
	}
	counts_release(&c);
	th_json_free(doc);
	th_run_release(&r);
	origs_free(&os);
}

/* ---- 3. a preset's width changed -------------------------------------- */

/* Count the PUT paths under the test's "prew/<name>/" and the others. */
static void
puts_by_preset(const struct counts *c, const char *name, size_t *in,
    size_t *stamp, size_t *other)
{
	const struct th_env	*e = th_env();
	char			 dir[512], st[512];
	size_t			 i;

	snprintf(dir, sizeof(dir), "/%s/%sprew/%s/", e->bucket, B.prefix, name);
	snprintf(st, sizeof(st), "/%s/%sprew/.prewctl-stamp-%s", e->bucket,
	    B.prefix, name);
	*in = *stamp = *other = 0;
	for (i = 0; i < c->put_paths.n; i++) {
		const char *p = c->put_paths.v[i];

		if (strncmp(p, dir, strlen(dir)) == 0)
			(*in)++;
		else if (strcmp(p, st) == 0)
			(*stamp)++;
		else {
			(*other)++;
			cr_log_error("unexpected PUT %s", vis(p));
		}
	}
}

/* Scenario 3: which previews a width change of one preset rewrites. */
struct width_change {
	const struct origs	*os;
	const struct tpreset	*was, *now;
	const char		*dir;		/* "<prefix>prew/<name>/" */
	const char		*stamp;
};

static int
pred_width(const char *key, const void *arg)
{
	const struct width_change	*wc = arg;
	size_t				 i, len = strlen(wc->dir);
	double				 w0, h0, w1, h1;

	if (strcmp(key, wc->stamp) == 0)
		return 2;
	if (strncmp(key, wc->dir, len) != 0)
		return 0;
	for (i = 0; i < wc->os->n; i++)
		if (strcmp(key + len, wc->os->v[i].rel) == 0)
			break;
	cr_assert(i < wc->os->n, "no original for '%s'", vis(key));
	expect_size(wc->was, &wc->os->v[i], &w0, &h0);
	expect_size(wc->now, &wc->os->v[i], &w1, &h1);
	/* Same size, same bytes: only the date says it was rewritten. */
	return w0 == w1 && h0 == h1 ? 1 : 2;
}

Test(batch, preset_change_rewrites_that_preset_only, .init = setup_s3)
{
	struct tpreset	 v[NP3];
	struct origs	 os;
	struct objv	 before, after;
	struct th_run	 r;
	struct th_json	*doc;
	struct counts	 c;
	struct checks	 cs = { 0, 0 };
	size_t		 i, in, stamp, other;
	char		*med = s3_key("prew/medium/", "");
	char		*medstamp = s3_key("prew/.prewctl-stamp-medium", "");
	struct width_change wc = { &os, &P3[1], &v[1], med, medstamp };

	origs_make(&os, SET_CORPUS, 10);
	generate_base(&os, P3, NP3);
	list_all("prew/", &before);
	memcpy(v, P3, sizeof(v));
	v[1].w = 120;
	write_s3_config(v, NP3);
	proxy_counts(&B.px, 1, &c);
	counts_release(&c);

	run(&r, "generate", "--json", NULL);
	th_expect_exit(&r, 0, "generate after a width change");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_expect_eq(th_json_num(doc, "presets.medium.generated"),
	    (long long)os.n);
	cr_expect_eq(th_json_num(doc, "presets.small.generated"), 0);
	cr_expect_eq(th_json_num(doc, "presets.sq.generated"), 0);
	cr_expect_eq(th_json_num(doc, "presets.small.fresh"), (long long)os.n);
	th_json_free(doc);
	th_run_release(&r);
	list_all("prew/", &after);
	cr_assert_eq(compare_snap(&before, &after, pred_width, &wc),
	    os.n + 1);

	proxy_counts(&B.px, 0, &c);
	puts_by_preset(&c, "medium", &in, &stamp, &other);
	cr_expect_eq(in, os.n, "%zu PUTs of medium previews", in);
	cr_expect_eq(stamp, 1, "%zu PUTs of the medium stamp", stamp);
	cr_expect_eq(other, 0, "%zu other PUTs", other);
	/* Each original once, and the changed stamp may be read. */
	cr_expect(c.get == (long long)os.n || c.get == (long long)os.n + 1,
	    "GET %lld for %zu originals", c.get, os.n);
	cr_expect_eq(c.head, (long long)os.n, "HEAD %lld", c.head);
	counts_release(&c);
	for (i = 0; i < os.n; i++)
		check_s3_preview(&cs, &v[1], &os.v[i]);
	cr_assert_eq(cs.fails, 0, "%d medium previews are wrong", cs.fails);

	objv_free(&before);
	objv_free(&after);
	origs_free(&os);
	free(med);
	free(medstamp);
}

/* ---- 4. SIGTERM halfway, then again ---------------------------------- */

Test(batch, sigterm_then_resume_makes_nothing_twice, .init = setup_s3)
{
	struct tpreset	 v[NP3];
	struct origs	 os;
	struct th_run	 r;
	struct th_json	*doc;
	struct counts	 c;
	struct checks	 cs = { 0, 0 };
	struct buf	 text;
	const char	*args[8];
	char		 outp[] = "/tmp/prewctl-batch-out-XXXXXX";
	char		 errp[] = "/tmp/prewctl-batch-err-XXXXXX";
	size_t		 i, in, stamp, other, distinct, needed;
	long long	 put1 = 0, gen2;
	double		 deadline;
	int		 st, fd, status = -1, exited = 0;
	pid_t		 pid;
	const int	 jobs = 2;

	origs_make(&os, SET_HEAVY, 80);
	generate_base(&os, P3, NP3);
	needed = os.n;		/* every small preview, after the change */
	memcpy(v, P3, sizeof(v));
	v[0].w = v[0].h = 48;
	write_s3_config(v, NP3);
	proxy_counts(&B.px, 1, &c);
	counts_release(&c);

	cr_assert((fd = mkstemp(outp)) >= 0);
	close(fd);
	cr_assert((fd = mkstemp(errp)) >= 0);
	close(fd);
	args[0] = "-c";
	args[1] = B.cfg;
	args[2] = "generate";
	args[3] = "-j";
	args[4] = "2";
	args[5] = "--json";
	args[6] = NULL;
	pid = th_spawn_prewctl(args, NULL, outp, errp);

	/* The stamp and half the previews are up: stop it. */
	deadline = th_now() + 120;
	for (;;) {
		proxy_counts(&B.px, 0, &c);
		put1 = c.put;
		counts_release(&c);
		if (put1 >= 1 + (long long)needed / 2)
			break;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			exited = 1;
			break;
		}
		if (th_now() >= deadline) {
			/* Not left writing while the teardown deletes. */
			kill(pid, SIGKILL);
			(void)waitpid(pid, &st, 0);
			cr_assert_fail("%lld PUTs in 120 s", put1);
		}
		/*
		 * Poll again soon, but not so often that the proxy, which
		 * carries the uploads too, is kept busy answering.
		 */
		nanosleep(&(struct timespec){ 0, 10 * 1000000L }, NULL);
	}
	if (exited) {
		buf_init(&text, BUF_NOMAX);
		th_read_file(errp, &text);
		cr_assert_fail("generate ended (status 0x%x, %lld PUTs) before "
		    "it could be interrupted: %.2000s", st, put1,
		    text.data);
	}
	cr_assert(kill(pid, SIGTERM) == 0);
	while (waitpid(pid, &st, 0) < 0)
		cr_assert(errno == EINTR);
	status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	buf_init(&text, BUF_NOMAX);
	th_read_file(errp, &text);
	cr_expect_eq(status, 143, "interrupted generate: exit %d: %s", status,
	    text.data);
	buf_release(&text);
	/* Its --json output is JSON too, summary and all. */
	buf_init(&text, BUF_NOMAX);
	th_read_file(outp, &text);
	th_json_free(th_json_parse(text.data, text.len));
	buf_release(&text);
	unlink(outp);
	unlink(errp);
	proxy_counts(&B.px, 0, &c);
	put1 = c.put;
	counts_release(&c);
	cr_expect_lt(put1, (long long)needed + 1, "the run was not stopped "
	    "halfway: %lld PUTs", put1);

	run(&r, "generate", "-j", "2", "--json", NULL);
	th_expect_exit(&r, 0, "generate after SIGTERM");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_expect_eq(th_json_num(doc, "presets.medium.generated"), 0);
	cr_expect_eq(th_json_num(doc, "presets.sq.generated"), 0);
	/* Nothing made twice but what was in flight when it stopped. */
	gen2 = th_json_num(doc, "presets.small.generated");
	cr_log_info("sigterm: %lld PUTs before exit 143, %lld previews "
	    "after, %zu needed", put1, gen2, needed);
	cr_expect_geq(gen2 + put1 - 1, (long long)needed, "the second run "
	    "made %lld small previews after %lld PUTs in the first", gen2,
	    put1);
	cr_expect_leq(gen2 + put1 - 1, (long long)needed + jobs * NP3,
	    "the second run made %lld small previews after %lld PUTs in the "
	    "first", gen2, put1);
	th_json_free(doc);
	th_run_release(&r);

	proxy_counts(&B.px, 0, &c);
	puts_by_preset(&c, "small", &in, &stamp, &other);
	for (distinct = 0, i = 0; i < c.put_paths.n; i++)
		if (i == 0 || strcmp(c.put_paths.v[i],
		    c.put_paths.v[i - 1]) != 0)
			distinct++;
	cr_expect_eq(stamp, 1, "the stamp was written %zu times", stamp);
	cr_expect_eq(other, 0);
	cr_expect_eq(distinct, needed + 1, "%zu distinct keys written",
	    distinct);
	cr_expect_leq((size_t)c.put, needed + 1 + (size_t)jobs * NP3,
	    "%lld PUTs in both runs for %zu previews and a stamp", c.put,
	    needed);
	counts_release(&c);

	for (i = 0; i < os.n; i++)
		check_s3_preview(&cs, &v[0], &os.v[i]);
	cr_assert_eq(cs.fails, 0, "%d small previews are wrong", cs.fails);
	origs_free(&os);
}

/* ---- 5. one original replaced ----------------------------------------- */

/* The newest LastModified among keys. */
static int64_t
newest(const struct objv *ov, const struct strv *keys)
{
	int64_t	m = INT64_MIN;
	size_t	i;

	for (i = 0; i < ov->n; i++)
		if (strv_has(keys, ov->v[i].key) && ov->v[i].mtime_ms > m)
			m = ov->v[i].mtime_ms;
	return m;
}

/*
 * Put new bytes under the original's key until the server dates it after
 * every preview of it (LastModified has a coarse clock on some servers).
 */
static void
replace_original(const struct orig *o, const struct buf *data,
    const struct strv *its_previews)
{
	struct objv	 prev, src;
	const struct obj *x;
	char		*key = s3_key("photo/", o->rel);
	double		 deadline = th_now() + 10;
	int64_t		 limit;

	list_all("prew/", &prev);
	limit = newest(&prev, its_previews);
	objv_free(&prev);
	cr_assert(limit != INT64_MIN);
	for (;;) {
		put_bytes(key, data);
		list_all("photo/", &src);
		x = objv_find(&src, key);
		cr_assert_not_null(x);
		if (x->mtime_ms > limit) {
			objv_free(&src);
			break;
		}
		objv_free(&src);
		cr_assert(th_now() < deadline, "the server's clock did not "
		    "move past %lld in 10 s", (long long)limit);
		nanosleep(&(struct timespec){ 0, 50 * 1000000L }, NULL);
	}
	free(key);
}

Test(batch, replaced_original_rewrites_its_previews_only, .init = setup_s3)
{
	struct origs	 os;
	struct objv	 before, after;
	struct strv	 mine = { NULL, 0 };
	struct th_run	 r;
	struct th_json	*doc;
	struct counts	 c;
	struct checks	 cs = { 0, 0 };
	struct orig	 now;
	size_t		 j, k = 0;
	char		*key;

	origs_make(&os, SET_CORPUS, 10);
	generate_base(&os, P3, NP3);
	cr_assert_eq(os.v[k].src, 0);	/* fujifilm 600x400 */
	for (j = 0; j < NP3; j++) {
		struct buf area;

		buf_init(&area, BUF_NOMAX);
		buf_addf(&area, "prew/%s/", P3[j].name);
		key = s3_key(area.data, os.v[k].rel);
		strv_add(&mine, key);
		free(key);
		buf_release(&area);
	}
	strv_sort(&mine);
	list_all("prew/", &before);
	replace_original(&os.v[k], corpus_data(SANYO), &mine);
	proxy_counts(&B.px, 1, &c);
	counts_release(&c);

	run(&r, "generate", "--json", NULL);
	th_expect_exit(&r, 0, "generate after a replacement");
	doc = th_json_parse(r.out.data, r.out.len);
	for (j = 0; j < NP3; j++) {
		char path[64];

		snprintf(path, sizeof(path), "presets.%s.generated", P3[j].name);
		cr_expect_eq(th_json_num(doc, path), 1, "%s", path);
	}
	th_json_free(doc);
	th_run_release(&r);
	list_all("prew/", &after);
	cr_assert_eq(compare_snap(&before, &after, pred_in, &mine), NP3);
	proxy_counts(&B.px, 0, &c);
	cr_expect_eq(c.get, 1, "GET %lld", c.get);
	cr_expect_eq(c.put, NP3, "PUT %lld", c.put);
	cr_expect_eq(c.head, 1, "HEAD %lld", c.head);
	counts_release(&c);

	/* The new previews show the new original (640x480). */
	now = os.v[k];
	now.src = SANYO;
	now.w = corpus[SANYO].w;
	now.h = corpus[SANYO].h;
	for (j = 0; j < NP3; j++)
		check_s3_preview(&cs, &P3[j], &now);
	cr_assert_eq(cs.fails, 0);

	strv_free(&mine);
	objv_free(&before);
	objv_free(&after);
	origs_free(&os);
}

/* ---- 6. ten originals deleted ----------------------------------------- */

static void
delete_keys(const struct strv *keys)
{
	struct s3_error	err;
	enum s3_status	st;
	char		msg[256];

	st = s3_delete_many(B.c, (const char *const *)keys->v, keys->n, NULL,
	    NULL, &err);
	cr_assert(st == S3_OK, "cannot delete: %s",
	    s3_error_text(st, &err, msg, sizeof(msg)));
}

/* Pick ten originals spread over os (hostile keys among them). */
static void
pick_ten(const struct origs *os, struct origs *gone, struct strv *keys)
{
	size_t	i;
	char	*key;

	memset(gone, 0, sizeof(*gone));
	for (i = 0; i < 10; i++) {
		const struct orig *o = &os->v[(i * 3 + 1) % os->n];

		gone->v = realloc(gone->v, (gone->n + 1) * sizeof(*gone->v));
		cr_assert_not_null(gone->v);
		gone->v[gone->n++] = *o;
		if (keys != NULL) {
			key = s3_key("photo/", o->rel);
			strv_add(keys, key);
			free(key);
		}
	}
}

Test(batch, purge_deletes_exactly_the_orphans, .init = setup_s3)
{
	struct origs	 os, gone;
	struct strv	 keys = { NULL, 0 }, want = { NULL, 0 };
	struct strv	 got = { NULL, 0 };
	struct objv	 before, after;
	struct th_run	 r;
	struct th_json	*doc;
	struct counts	 c;
	size_t		 i;
	char		*key;

	origs_make(&os, SET_CORPUS, 13);
	generate_base(&os, P3, NP3);
	pick_ten(&os, &gone, &keys);
	delete_keys(&keys);
	preview_keys(&gone, P3, NP3, 1, &want);
	cr_assert_eq(want.n, 30);
	list_all("prew/", &before);
	proxy_counts(&B.px, 1, &c);
	counts_release(&c);

	run(&r, "purge", "--dry-run", "--json", NULL);
	th_expect_exit(&r, 0, "purge --dry-run");
	doc = th_json_parse(r.out.data, r.out.len);
	jstrings(doc, "keys", &got);
	cr_assert_eq(strv_diff(&got, &want, "purge --dry-run"), 0);
	cr_expect_eq(th_json_num(doc, "would_delete"), 30);
	th_json_free(doc);
	th_run_release(&r);
	proxy_counts(&B.px, 0, &c);
	cr_expect_eq(c.del, 0, "DELETE %lld in a dry run", c.del);
	cr_expect_eq(c.put, 0, "PUT %lld in a dry run", c.put);
	counts_release(&c);
	list_all("prew/", &after);
	cr_assert_eq(after.n, before.n, "the dry run deleted something");
	objv_free(&after);

	run(&r, "purge", "--json", NULL);
	th_expect_exit(&r, 0, "purge");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_expect_eq(th_json_num(doc, "deleted"), 30);
	cr_expect_eq(th_json_num(doc, "failed"), 0);
	th_json_free(doc);
	th_run_release(&r);
	proxy_counts(&B.px, 0, &c);
	cr_expect_geq(c.del, 1);
	cr_expect_eq(c.put, 0);
	counts_release(&c);

	list_all("prew/", &after);
	strv_free(&got);
	for (i = 0; i < after.n; i++)
		strv_add(&got, after.v[i].key);
	strv_free(&keys);
	for (i = 0; i < before.n; i++)
		if (!strv_has(&want, before.v[i].key))
			strv_add(&keys, before.v[i].key);
	cr_assert_eq(strv_diff(&got, &keys, "after purge"), 0);
	key = s3_key("photo/", "");
	cr_assert_eq(th_count(B.c, key), os.n - 10);
	free(key);

	strv_free(&keys);
	strv_free(&want);
	strv_free(&got);
	objv_free(&before);
	objv_free(&after);
	origs_free(&gone);
	origs_free(&os);
}

/* ---- 7. a preset removed ---------------------------------------------- */

Test(batch, purge_removed_presets_empties_that_prefix, .init = setup_s3)
{
	struct origs	 os;
	struct objv	 before, after;
	struct strv	 got = { NULL, 0 }, want = { NULL, 0 };
	struct th_run	 r;
	struct th_json	*doc;
	struct counts	 c;
	char		*sq = s3_key("prew/sq/", "");
	char		*sqstamp = s3_key("prew/.prewctl-stamp-sq", "");
	char		*key;
	size_t		 i;

	origs_make(&os, SET_CORPUS, 10);
	generate_base(&os, P3, NP3);
	list_all("prew/", &before);
	for (i = 0; i < before.n; i++)
		if (strncmp(before.v[i].key, sq, strlen(sq)) == 0 ||
		    strcmp(before.v[i].key, sqstamp) == 0)
			strv_add(&want, before.v[i].key);
	cr_assert_eq(want.n, os.n + 1);
	write_s3_config(P3, 2);		/* small and medium */
	proxy_counts(&B.px, 1, &c);
	counts_release(&c);

	run(&r, "purge", "--removed-presets", "--dry-run", "--json", NULL);
	th_expect_exit(&r, 0, "purge --removed-presets --dry-run");
	doc = th_json_parse(r.out.data, r.out.len);
	jstrings(doc, "keys", &got);
	cr_assert_eq(strv_diff(&got, &want, "purge --removed-presets "
	    "--dry-run"), 0);
	th_json_free(doc);
	th_run_release(&r);

	run(&r, "purge", "--removed-presets", "--json", NULL);
	th_expect_exit(&r, 0, "purge --removed-presets");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_expect_eq(th_json_num(doc, "deleted"), (long long)os.n + 1);
	th_json_free(doc);
	th_run_release(&r);
	proxy_counts(&B.px, 0, &c);
	cr_expect_eq(c.put, 0);
	/* The removed preset's stamp, read by each run to see whose it is. */
	cr_expect_eq(c.get, 2);
	counts_release(&c);

	list_all("prew/", &after);
	cr_assert_eq(th_count(B.c, sq), 0, "'%s' is not empty", sq);
	cr_assert_null(objv_find(&after, sqstamp), "the stamp of sq is left");
	/* Everything else is as it was. */
	strv_sort(&want);
	for (i = 0; i < before.n; i++) {
		const struct obj *b = &before.v[i], *a;

		if (strv_has(&want, b->key))
			continue;
		a = objv_find(&after, b->key);
		cr_assert_not_null(a, "'%s' was deleted", vis(b->key));
		cr_assert(strcmp(a->etag, b->etag) == 0 &&
		    a->mtime_ms == b->mtime_ms, "'%s' changed", vis(b->key));
	}
	cr_assert_eq(after.n, before.n - want.n);
	key = s3_key("photo/", "");
	cr_assert_eq(th_count(B.c, key), os.n);
	free(key);

	strv_free(&got);
	strv_free(&want);
	objv_free(&before);
	objv_free(&after);
	origs_free(&os);
	free(sq);
	free(sqstamp);
}

/* ---- 8. plan agrees with generate ------------------------------------- */

Test(batch, plan_agrees_with_generate, .init = setup_s3)
{
	struct tpreset	 v[NP3];
	struct origs	 os, more;
	struct strv	 del = { NULL, 0 }, mine = { NULL, 0 };
	struct th_run	 r;
	struct th_json	*doc;
	struct counts	 c;
	char		 path[96], *key;
	long long	 plan[NP3][5], total = 0;
	static const char *const states[] = { "missing", "stale-original",
	    "stale-preset", "fresh", "orphan" };
	size_t		 i, j;

	origs_make(&os, SET_CORPUS, 10);
	generate_base(&os, P3, NP3);
	/* 4 new originals (missing), 2 deleted (orphans)... */
	origs_make(&more, 0, 14);
	memmove(more.v, more.v + 10, 4 * sizeof(*more.v));
	more.n = 4;
	for (i = 0; i < 4; i++) {
		char rel[sizeof(more.v[i].rel)];

		cr_assert((size_t)snprintf(rel, sizeof(rel), "new/%s",
		    more.v[i].rel) < sizeof(rel));
		memcpy(more.v[i].rel, rel, sizeof(rel));
	}
	upload(&more);
	for (i = 0; i < 2; i++) {
		key = s3_key("photo/", os.v[5 + i].rel);
		strv_add(&del, key);
		free(key);
	}
	delete_keys(&del);
	/* ...one replaced (stale), and sq's width changed. */
	for (j = 0; j < NP3; j++) {
		struct buf area;

		buf_init(&area, BUF_NOMAX);
		buf_addf(&area, "prew/%s/", P3[j].name);
		key = s3_key(area.data, os.v[0].rel);
		strv_add(&mine, key);
		free(key);
		buf_release(&area);
	}
	strv_sort(&mine);
	replace_original(&os.v[0], corpus_data(SANYO), &mine);
	memcpy(v, P3, sizeof(v));
	v[2].w = 90;
	write_s3_config(v, NP3);
	proxy_counts(&B.px, 1, &c);
	counts_release(&c);

	run(&r, "plan", "--json", NULL);
	th_expect_exit(&r, 0, "plan");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_expect_eq(th_json_num(doc, "originals"), (long long)os.n + 4 - 2);
	for (j = 0; j < NP3; j++)
		for (i = 0; i < 5; i++) {
			snprintf(path, sizeof(path), "presets.%s.%s",
			    v[j].name, states[i]);
			plan[j][i] = th_json_num(doc, path);
		}
	th_json_free(doc);
	th_run_release(&r);
	proxy_counts(&B.px, 0, &c);
	cr_expect_eq(c.put + c.del + c.head, 0, "plan: %lld PUT, %lld "
	    "DELETE, %lld HEAD", c.put, c.del, c.head);
	/* At most the stamp of the changed preset is read, no original. */
	cr_expect_leq(c.get, 1, "plan: %lld GET", c.get);
	counts_release(&c);

	/* What was done to the bucket, independently of prewctl. */
	for (j = 0; j < NP3; j++) {
		cr_expect_eq(plan[j][0], 4, "%s missing", v[j].name);
		cr_expect_eq(plan[j][4], 2, "%s orphan", v[j].name);
		cr_expect_eq(plan[j][0] + plan[j][1] + plan[j][2] + plan[j][3],
		    (long long)os.n + 2, "%s: every original once", v[j].name);
	}
	for (j = 0; j < 2; j++) {
		cr_expect_eq(plan[j][1], 1, "%s stale-original", v[j].name);
		cr_expect_eq(plan[j][2], 0, "%s stale-preset", v[j].name);
	}
	cr_expect_eq(plan[2][1] + plan[2][2], (long long)os.n - 2,
	    "sq: every existing preview is stale");
	cr_expect_eq(plan[2][3], 0, "sq fresh");

	run(&r, "generate", "--json", NULL);
	th_expect_exit(&r, 0, "generate after plan");
	doc = th_json_parse(r.out.data, r.out.len);
	for (j = 0; j < NP3; j++) {
		long long gen;

		snprintf(path, sizeof(path), "presets.%s.generated", v[j].name);
		gen = th_json_num(doc, path);
		cr_expect_eq(gen, plan[j][0] + plan[j][1] + plan[j][2],
		    "%s: generated %lld, plan said %lld+%lld+%lld", v[j].name,
		    gen, plan[j][0], plan[j][1], plan[j][2]);
		total += gen;
		snprintf(path, sizeof(path), "presets.%s.fresh", v[j].name);
		cr_expect_eq(th_json_num(doc, path), plan[j][3], "%s fresh",
		    v[j].name);
	}
	th_json_free(doc);
	th_run_release(&r);
	proxy_counts(&B.px, 0, &c);
	/* Plus the one stamp of the changed preset. */
	cr_expect_eq(c.put, total + 1, "PUT %lld, generated %lld", c.put,
	    total);
	counts_release(&c);

	strv_free(&del);
	strv_free(&mine);
	origs_free(&more);
	origs_free(&os);
}

/* ---- the folder backend ----------------------------------------------- */

static void
setup_dir(void)
{
	setup();
	memcpy(B.root, "/tmp/prewctl-batch-XXXXXX", 26);
	cr_assert_not_null(mkdtemp(B.root));
}

static void
dir_write(const char *rel, const struct buf *data)
{
	char	path[1024], *slash;
	FILE	*f;

	cr_assert((size_t)snprintf(path, sizeof(path), "%s/photo/%s", B.root,
	    rel) < sizeof(path));
	for (slash = strchr(path + strlen(B.root) + 1, '/'); slash != NULL;
	    slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		cr_assert(mkdir(path, 0700) == 0 || errno == EEXIST,
		    "mkdir %s: %s", path, strerror(errno));
		*slash = '/';
	}
	cr_assert_not_null(f = fopen(path, "wb"), "%s", path);
	cr_assert_eq(fwrite(data->data, 1, data->len, f), data->len);
	cr_assert_eq(fclose(f), 0);
}

/* A few originals, folder-safe hostile names included. */
static void
dir_origs(struct origs *os)
{
	static const char *const names[] = {
		"space here.jpg", "plus+per%cent#hash.png",
		"\xc3\xa9t\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.gif", "d x/a.JPG",
		"d/a.jpg", "d-x/a.webp",
	};
	static const int srcs[] = { 0, 8, 12, 5, 6, 13 };
	size_t	i;

	memset(os, 0, sizeof(*os));
	for (i = 0; i < 6; i++)
		origs_add(os, names[i], srcs[i], 0, 0);
	origs_add(os, "corpus/heic-small.heic", 16, 0, 0);
	origs_add(os, "corpus/samsung-galaxy-s-orient6.jpg", 3, 0, 0);
	origs_add(os, "corpus/cmyk-no-profile.jpg", 19, 0, 0);
	origs_add(os, "corpus/animated-loop3.gif", 14, 0, 0);
	origs_add(os, "orientation/Landscape_6.jpg", -1, 1, 6);
	origs_add(os, "orientation/Portrait_8.jpg", -1, 0, 8);
	origs_add(os, "orientation/Landscape_3.jpg", -1, 1, 3);
	origs_add(os, "orientation/Portrait_5.jpg", -1, 0, 5);
}

static void
dir_generate_base(const struct origs *os, const struct tpreset *v,
    size_t np)
{
	struct th_run	r;
	struct th_json	*doc;
	size_t		i;

	for (i = 0; i < os->n; i++)
		dir_write(os->v[i].rel, orig_data(&os->v[i]));
	write_dir_config(v, np);
	run(&r, "generate", "--json", NULL);
	th_expect_exit(&r, 0, "generate (folder)");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_assert_eq(th_json_num(doc, "presets.small.generated"),
	    (long long)os->n);
	th_json_free(doc);
	th_run_release(&r);
}

struct fstate {
	char		*rel;
	ino_t		 ino;
	struct timespec	 mtime;
	off_t		 size;
};

static struct {
	struct fstate	*v;
	size_t		 n;
	size_t		 rootlen;
} snap;

static int
snap_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	struct fstate	*f;

	(void)ftw;
	if (flag != FTW_F)
		return 0;
	snap.v = realloc(snap.v, (snap.n + 1) * sizeof(*snap.v));
	cr_assert_not_null(snap.v);
	f = &snap.v[snap.n++];
	f->rel = strdup(path + snap.rootlen);
	f->ino = st->st_ino;
	f->mtime = st->st_mtim;
	f->size = st->st_size;
	return 0;
}

static int
fstate_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fstate *)a)->rel,
	    ((const struct fstate *)b)->rel);
}

/* Every file under ROOT/prew, as "prew/..." with inode and mtime. */
static void
dir_snapshot(struct fstate **v, size_t *n)
{
	char	path[128];

	snap.v = NULL;
	snap.n = 0;
	snap.rootlen = strlen(B.root) + 1;
	snprintf(path, sizeof(path), "%s/prew", B.root);
	cr_assert(nftw(path, snap_one, 16, FTW_PHYS) == 0);
	if (snap.n > 1)
		qsort(snap.v, snap.n, sizeof(*snap.v), fstate_cmp);
	*v = snap.v;
	*n = snap.n;
}

static void
dir_snapshot_free(struct fstate *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i].rel);
	free(v);
}

/* Same files; those under one of the prefixes replaced, the rest not. */
static size_t
dir_compare(const struct fstate *b, size_t nb, const struct fstate *a,
    size_t na, const char *const *changed)
{
	struct checks	cs = { 0, 0 };
	size_t		i, nchanged = 0;

	cr_assert_eq(na, nb, "%zu files before, %zu after", nb, na);
	for (i = 0; i < nb; i++) {
		int want = changed != NULL && pred_prefix(b[i].rel, changed);
		int same = b[i].ino == a[i].ino &&
		    b[i].mtime.tv_sec == a[i].mtime.tv_sec &&
		    b[i].mtime.tv_nsec == a[i].mtime.tv_nsec &&
		    b[i].size == a[i].size;

		CHECK(&cs, strcmp(a[i].rel, b[i].rel) == 0, "'%s' became '%s'",
		    vis(b[i].rel), vis(a[i].rel));
		CHECK(&cs, want != same, "'%s' %s", vis(b[i].rel), want ?
		    "was not rewritten" : "was rewritten");
		nchanged += want;
	}
	cr_assert_eq(cs.fails, 0, "%d files differ from what was expected",
	    cs.fails);
	return nchanged;
}

static void
dir_check_all(const struct origs *os, const struct tpreset *v, size_t np)
{
	struct checks	cs = { 0, 0 };
	struct buf	b;
	char		path[1024];
	size_t		i, j;

	for (i = 0; i < os->n; i++)
		for (j = 0; j < np; j++) {
			snprintf(path, sizeof(path), "%s/prew/%s/%s", B.root,
			    v[j].name, os->v[i].rel);
			if (access(path, F_OK) != 0) {
				cs.done++;
				CHECK(&cs, 0, "'%s' is missing", vis(path));
				continue;
			}
			buf_init(&b, BUF_NOMAX);
			th_read_file(path, &b);
			check_image(&cs, vis(path), b.data, b.len, &v[j],
			    &os->v[i]);
			buf_release(&b);
		}
	cr_assert_eq(cs.fails, 0, "%d of %d preview checks failed (first "
	    "ones logged)", cs.fails, cs.done);
}

Test(batch, folder_generate_makes_every_preview, .init = setup_dir)
{
	struct origs	 os;
	struct fstate	*fv;
	size_t		 n, i;

	dir_origs(&os);
	dir_generate_base(&os, P3, NP3);
	dir_check_all(&os, P3, NP3);
	/* The previews and the stamps; no temporary file left over. */
	dir_snapshot(&fv, &n);
	cr_expect_eq(n, os.n * NP3 + NP3, "%zu files under prew/", n);
	for (i = 0; i < n; i++)
		cr_expect(strstr(fv[i].rel, ".prewctl-tmp") == NULL,
		    "left over: %s", fv[i].rel);
	dir_snapshot_free(fv, n);
	origs_free(&os);
}

Test(batch, folder_second_generate_writes_nothing, .init = setup_dir)
{
	struct origs	 os;
	struct fstate	*b, *a;
	struct th_run	 r;
	struct th_json	*doc;
	size_t		 nb, na;

	dir_origs(&os);
	dir_generate_base(&os, P3, NP3);
	dir_snapshot(&b, &nb);
	run(&r, "generate", "--json", NULL);
	th_expect_exit(&r, 0, "second generate (folder)");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_expect_eq(th_json_num(doc, "requests.put"), 0);
	/* A file's ETag is no MD5: the stamps are read, nothing else. */
	cr_expect_leq(th_json_num(doc, "requests.get"), NP3);
	cr_expect_eq(th_json_num(doc, "presets.sq.fresh"), (long long)os.n);
	th_json_free(doc);
	th_run_release(&r);
	dir_snapshot(&a, &na);
	dir_compare(b, nb, a, na, NULL);
	dir_snapshot_free(b, nb);
	dir_snapshot_free(a, na);
	origs_free(&os);
}

Test(batch, folder_preset_change_rewrites_that_preset_only,
    .init = setup_dir)
{
	struct tpreset	 v[NP3];
	struct origs	 os;
	struct fstate	*b, *a;
	struct th_run	 r;
	struct th_json	*doc;
	size_t		 nb, na;
	const char	*changed[] = { "prew/sq/", "prew/.prewctl-stamp-sq",
			    NULL };

	dir_origs(&os);
	dir_generate_base(&os, P3, NP3);
	dir_snapshot(&b, &nb);
	memcpy(v, P3, sizeof(v));
	v[2].w = v[2].h = 50;
	write_dir_config(v, NP3);
	run(&r, "generate", "--json", NULL);
	th_expect_exit(&r, 0, "generate after a width change (folder)");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_expect_eq(th_json_num(doc, "presets.sq.generated"),
	    (long long)os.n);
	cr_expect_eq(th_json_num(doc, "presets.small.generated"), 0);
	cr_expect_eq(th_json_num(doc, "presets.medium.generated"), 0);
	th_json_free(doc);
	th_run_release(&r);
	dir_snapshot(&a, &na);
	cr_assert_eq(dir_compare(b, nb, a, na, changed), os.n + 1);
	dir_check_all(&os, v + 2, 1);
	dir_snapshot_free(b, nb);
	dir_snapshot_free(a, na);
	origs_free(&os);
}

Test(batch, folder_purge_deletes_exactly_the_orphans, .init = setup_dir)
{
	struct origs	 os, gone;
	struct strv	 got = { NULL, 0 }, want = { NULL, 0 };
	struct strv	 left = { NULL, 0 };
	struct fstate	*b, *a;
	struct th_run	 r;
	struct th_json	*doc;
	char		 path[1024];
	size_t		 nb, na, i;

	dir_origs(&os);
	dir_generate_base(&os, P3, NP3);
	pick_ten(&os, &gone, NULL);
	for (i = 0; i < gone.n; i++) {
		snprintf(path, sizeof(path), "%s/photo/%s", B.root,
		    gone.v[i].rel);
		cr_assert(unlink(path) == 0, "unlink %s", path);
	}
	preview_keys(&gone, P3, NP3, 0, &want);
	cr_assert_eq(want.n, 30);
	dir_snapshot(&b, &nb);

	run(&r, "purge", "--dry-run", "--json", NULL);
	th_expect_exit(&r, 0, "purge --dry-run (folder)");
	doc = th_json_parse(r.out.data, r.out.len);
	jstrings(doc, "keys", &got);
	cr_assert_eq(strv_diff(&got, &want, "purge --dry-run (folder)"), 0);
	th_json_free(doc);
	th_run_release(&r);
	dir_snapshot(&a, &na);
	dir_compare(b, nb, a, na, NULL);
	dir_snapshot_free(a, na);

	run(&r, "purge", "--json", NULL);
	th_expect_exit(&r, 0, "purge (folder)");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_expect_eq(th_json_num(doc, "deleted"), 30);
	th_json_free(doc);
	th_run_release(&r);
	dir_snapshot(&a, &na);
	strv_free(&got);
	for (i = 0; i < na; i++)
		strv_add(&got, a[i].rel);
	for (i = 0; i < nb; i++)
		if (!strv_has(&want, b[i].rel))
			strv_add(&left, b[i].rel);
	cr_assert_eq(strv_diff(&got, &left, "after purge (folder)"), 0);

	dir_snapshot_free(b, nb);
	dir_snapshot_free(a, na);
	strv_free(&got);
	strv_free(&want);
	strv_free(&left);
	origs_free(&gone);
	origs_free(&os);
}

/*
 * Not in the list, but in the issue ("convert to sRGB"): an original with
 * no ICC profile is sRGB already, so its preview keeps its colours. Made
 * losslessly (PNG in, PNG out, no resize) so any shift is the conversion's.
 */
Test(batch, untagged_colours_are_kept, .init = setup_dir)
{
	struct origs	 os;
	struct buf	 png, b;
	VipsImage	*mem, *img;
	unsigned char	 pix[90 * 60 * 3];
	void		*out;
	size_t		 len;
	double		*px;
	char		 path[1024];
	int		 u, v, q, k, n;

	for (v = 0; v < 60; v++)
		for (u = 0; u < 90; u++)
			memcpy(pix + (v * 90 + u) * 3,
			    quad_rgb[v >= 30][u >= 45], 3);
	mem = vips_image_new_from_memory_copy(pix, sizeof(pix), 90, 60, 3,
	    VIPS_FORMAT_UCHAR);
	cr_assert_not_null(mem);
	cr_assert(vips_copy(mem, &img, "interpretation",
	    VIPS_INTERPRETATION_sRGB, NULL) == 0);
	g_object_unref(mem);
	cr_assert(vips_pngsave_buffer(img, &out, &len, NULL) == 0);
	g_object_unref(img);
	buf_init(&png, BUF_NOMAX);
	cr_assert(buf_add(&png, out, len) == 0);
	g_free(out);

	memset(&os, 0, sizeof(os));
	origs_add(&os, "quad.png", 8, 0, 0);
	os.v[0].w = 90;
	os.v[0].h = 60;
	dir_write("quad.png", &png);
	write_dir_config(P3 + 2, 1);
	{
		struct th_run r;

		run(&r, "generate", NULL);
		th_expect_exit(&r, 0, "generate (untagged colours)");
		th_run_release(&r);
	}
	snprintf(path, sizeof(path), "%s/prew/sq/quad.png", B.root);
	buf_init(&b, BUF_NOMAX);
	th_read_file(path, &b);
	img = vips_image_new_from_buffer(b.data, b.len, "", NULL);
	cr_assert_not_null(img);
	cr_assert(img->Xsize == 90 && img->Ysize == 60);
	for (q = 0; q < 4; q++) {
		cr_assert(vips_getpoint(img, &px, &n, 22 + 45 * (q % 2),
		    15 + 30 * (q / 2), NULL) == 0);
		for (k = 0; k < 3; k++)
			if (fabs(px[k] - quad_rgb[q / 2][q % 2][k]) > 4)
				break;
		cr_expect(k == 3, "quadrant %d: %.0f,%.0f,%.0f, the original has "
			    "%d,%d,%d", q, px[0], px[1], px[2],
			    quad_rgb[q / 2][q % 2][0], quad_rgb[q / 2][q % 2][1],
			    quad_rgb[q / 2][q % 2][2]);
		g_free(px);
	}
	g_object_unref(img);
	buf_release(&b);
	buf_release(&png);
	origs_free(&os);
}

/*
 * Also not in the list: S3 allows any UTF-8 in a key, control characters
 * included, but DeleteObjects is XML 1.0, which cannot carry U+0001; such
 * an orphan has to go with a plain DELETE. (While this fails, the key is
 * left in the bucket: the test client cannot delete it either.)
 */
Test(batch, purge_deletes_a_control_character_orphan, .init = setup_s3)
{
	struct origs	 os;
	struct strv	 got = { NULL, 0 }, want = { NULL, 0 };
	struct th_run	 r;
	struct th_json	*doc;
	struct counts	 c;
	struct objv	 left;
	char		*key, *plain;

	origs_make(&os, 0, 1);
	upload(&os);
	/* A plain orphan too: it must not share the other's fate. */
	plain = s3_key("prew/small/", "plain.png");
	put_bytes(plain, corpus_data(8));
	strv_add(&want, plain);
	key = s3_key("prew/small/", "ctl\x01x.png");
	put_bytes(key, corpus_data(8));
	strv_add(&want, key);
	write_s3_config(P3, 1);

	run(&r, "purge", "--dry-run", "--json", NULL);
	th_expect_exit(&r, 0, "purge --dry-run");
	doc = th_json_parse(r.out.data, r.out.len);
	jstrings(doc, "keys", &got);
	cr_assert_eq(strv_diff(&got, &want, "purge --dry-run"), 0);
	th_json_free(doc);
	th_run_release(&r);

	proxy_counts(&B.px, 1, &c);
	counts_release(&c);
	run(&r, "purge", "--json", NULL);
	list_all("prew/small/", &left);
	cr_expect_null(objv_find(&left, plain), "'%s' is still there",
	    vis(plain));
	cr_expect_null(objv_find(&left, key), "'%s' is still there",
	    vis(key));
	cr_expect_eq(left.n, 0);
	objv_free(&left);
	th_expect_exit(&r, 0, "purge");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_expect_eq(th_json_num(doc, "deleted"), 2);
	th_json_free(doc);
	th_run_release(&r);

	free(key);
	free(plain);
	strv_free(&got);
	strv_free(&want);
	origs_free(&os);
}
