/*
 * hardening: issue 4's points 5 to 9, end to end with the real binary.
 *
 *   5. hostile listings: tests/s3-hostile-server answers ListObjectsV2 with
 *      an XXE body, billion laughs, a page of more than 64 MiB, a repeated
 *      continuation token or a truncated page without one. `plan` must
 *      refuse each with exit 3 and a message naming the problem, within
 *      30 s and 200 MB of peak RSS (wait4's rusage), printing nothing of
 *      /etc/passwd.
 *   6. signals: a `generate -j 2` over originals made here (PNG, which has
 *      no shrink-on-load, so each takes a while) is interrupted once some
 *      previews exist: exit 130 or 143, the summary on stdout, fewer
 *      previews than a full run, each one whole. SIGINT then SIGTERM exits
 *      at once: within 10 s and without the summary that the graceful
 *      path always prints. The folder backend leaves no ".prewctl-tmp*"
 *      file after one SIGTERM.
 *   7. overlap: two generate runs on one prefix at once both exit 0 and
 *      every preview is there and right; the man page shows flock.
 *   8. secrets: every output of plan, generate and purge at -v -v, with a
 *      session token and with a wrong secret, is searched for the secret
 *      keys and the token.
 *   9. purge safety: a mistyped source, a failed source listing (the
 *      fail-list mode of the same server, a proxy that refuses listings of
 *      one prefix), an unreachable endpoint and --max-delete each make
 *      purge refuse with exit 2 and nothing deleted (counted on the bucket
 *      directly); --force, or a larger --max-delete, then deletes.
 *
 * Expected sizes come from the man page's preset rules (inside a box of
 * the preset's width: the width is the preset's, the height in proportion,
 * +-1 for rounding), never from prewctl's own output.
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
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#include "helpers.h"

#define HOSTILE		"tests/s3-hostile-server"
#define HOSTILE_SECS	"300"
#define RSS_MAX_KB	(200L * 1024)
#define HOSTILE_LIMIT	30.0
#define RUN_LIMIT	300.0
#define MAX_LOGGED	10

/* What a test made and teardown undoes. */
static struct {
	struct s3_client	*c;
	char			 prefix[256];
	char			 tmp[64];	/* outputs, configs */
	char			 root[64];	/* folder backend */
	pid_t			 server;
	char			 paths[96][128];	/* under tmp */
	int			 npaths;
} H;

static void
pause_ms(long ms)
{
	struct timespec	ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* A fresh path under H.tmp, valid until teardown. */
static char *
tmp_path(const char *what)
{
	char	*p;

	cr_assert_lt(H.npaths, 96);
	p = H.paths[H.npaths];
	cr_assert((size_t)snprintf(p, sizeof(H.paths[0]), "%s/%s-%d", H.tmp,
	    what, H.npaths) < sizeof(H.paths[0]));
	H.npaths++;
	return p;
}

static char *
write_file(const char *what, const char *text)
{
	char	*path = tmp_path(what);
	FILE	*f;

	cr_assert_not_null(f = fopen(path, "w"), "%s: %s", path,
	    strerror(errno));
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
	return path;
}

/* ---- running prewctl ---------------------------------------------------- */

/* Runs to the end: th_run, with these deadlines. */
static const struct th_opts run_opts = { NULL, RUN_LIMIT, NULL };
static const struct th_opts hostile_opts = { NULL, HOSTILE_LIMIT, NULL };

#define RUN(r, ...) th_run((r), &run_opts,				\
	(const char *const []){ __VA_ARGS__, NULL })

/* A reaped run's status and what it wrote (free with th_run_release). */
static void
spawned_output(struct th_run *r, int status, const char *out,
    const char *err)
{
	memset(r, 0, sizeof(*r));
	r->status = status;
	buf_init(&r->out, BUF_NOMAX);
	buf_init(&r->err, BUF_NOMAX);
	th_read_file(out, &r->out);
	th_read_file(err, &r->err);
}

static void
expect_exit(const struct th_run *r, int code, const char *what)
{
	cr_expect_eq(r->status, code, "%s: exit %d, not %d\nstdout: %s\n"
	    "stderr: %s", what, r->status, code, r->out.data, r->err.data);
}

/* ---- the hostile server ------------------------------------------------- */

/* Start tests/s3-hostile-server with args; returns its port. */
static int
server_start(const char *const *args)
{
	char	*argv[8];
	size_t	 i;

	argv[0] = HOSTILE;
	for (i = 0; args[i] != NULL && i + 2 < 8; i++)
		argv[i + 1] = (char *)args[i];
	argv[i + 1] = NULL;
	return th_start_server(argv, &H.server);
}

static void
server_stop(void)
{
	th_stop_server(&H.server);
}

/* A port nothing listens on: the kernel's pick, closed again. */
static int
closed_port(void)
{
	struct sockaddr_in	sa;
	socklen_t		len = sizeof(sa);
	int			s, port;

	cr_assert((s = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	cr_assert(getsockname(s, (struct sockaddr *)&sa, &len) == 0);
	port = ntohs(sa.sin_port);
	close(s);
	return port;
}

/* ---- originals and configs --------------------------------------------- */

/*
 * A w x h RGB PNG: a pattern that compresses to a few hundred KB at these
 * sizes but still takes a full decode (PNG has no shrink-on-load).
 */
static void
make_png(int w, int h, int seed, struct buf *out)
{
	unsigned char	*pix;
	VipsImage	*img;
	void		*png = NULL;
	size_t		 len = 0;
	int		 x, y;

	cr_assert_not_null(pix = malloc((size_t)w * h * 3));
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++) {
			unsigned char *p = pix + ((size_t)y * w + x) * 3;

			p[0] = (unsigned char)((x ^ y) + seed);
			p[1] = (unsigned char)(((x / 8) * (y / 8)) >> 2);
			p[2] = (unsigned char)(x * 255 / w);
		}
	img = vips_image_new_from_memory(pix, (size_t)w * h * 3, w, h, 3,
	    VIPS_FORMAT_UCHAR);
	cr_assert_not_null(img);
	cr_assert(vips_pngsave_buffer(img, &png, &len, "compression", 1,
	    NULL) == 0, "pngsave: %s", vips_error_buffer());
	g_object_unref(img);
	free(pix);
	buf_init(out, BUF_NOMAX);
	cr_assert(buf_add(out, png, len) == 0);
	g_free(png);
}

static void
put_bytes(const char *key, const struct buf *b)
{
	struct s3_put_opts	po = { "image/png", NULL, NULL, NULL, 0 };
	struct s3_error		err;
	enum s3_status		st;
	char			msg[256];

	st = s3_put(H.c, key, b->data, b->len, &po, &err);
	cr_assert(st == S3_OK, "cannot put '%s': %s", key,
	    s3_error_text(st, &err, msg, sizeof(msg)));
}

/* n originals "<prefix>photo/o<i>.png", all w x h. */
static void
upload_originals(int n, int w, int h)
{
	struct buf	png;
	char		key[512];
	int		i;

	make_png(w, h, 7, &png);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%sphoto/o%03d.png", H.prefix, i);
		put_bytes(key, &png);
	}
	buf_release(&png);
}

static void
write_dir_originals(int n, int w, int h)
{
	struct buf	 png;
	char		 path[256];
	FILE		*f;
	int		 i;

	make_png(w, h, 7, &png);
	snprintf(path, sizeof(path), "%s/photo", H.root);
	cr_assert(mkdir(path, 0700) == 0);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/photo/o%03d.png", H.root, i);
		cr_assert_not_null(f = fopen(path, "wb"));
		cr_assert_eq(fwrite(png.data, 1, png.len, f), png.len);
		cr_assert_eq(fclose(f), 0);
	}
	buf_release(&png);
}

static const char presets2[] =
    "[preset small]\nwidth = 64\nformat = jpeg\n\n"
    "[preset mid]\nwidth = 200\nformat = jpeg\n";
static const int preset_w[2] = { 64, 200 };
static const char *const preset_name[2] = { "small", "mid" };

/* A config for the test bucket, or for another endpoint and source. */
static char *
s3_config(const char *endpoint, const char *source, int retries,
    const char *presets)
{
	const struct th_env	*e = th_env();
	struct buf		 b;
	char			*path;

	buf_init(&b, BUF_NOMAX);
	cr_assert(buf_addf(&b, "[storage]\nbucket = %s\nendpoint = %s\n"
	    "region = %s\npath_style = true\nsource = %s%s\n"
	    "previews = %sprew/\nretries = %d\ntimeout = 5\n\n%s",
	    e->bucket, endpoint != NULL ? endpoint : e->endpoint, e->region,
	    H.prefix, source != NULL ? source : "photo/", H.prefix, retries,
	    presets) == 0);
	path = write_file("config", b.data);
	buf_release(&b);
	return path;
}

static char *
dir_config(void)
{
	struct buf	 b;
	char		*path;

	buf_init(&b, BUF_NOMAX);
	cr_assert(buf_addf(&b, "[storage]\ndirectory = %s\nsource = photo/\n"
	    "previews = prew/\n\n%s", H.root, presets2) == 0);
	path = write_file("config", b.data);
	buf_release(&b);
	return path;
}

static char *
prew_prefix(const char *preset)
{
	static char	buf[2][512];
	static int	k;
	char		*p = buf[k++ % 2];

	snprintf(p, sizeof(buf[0]), "%sprew/%s/", H.prefix, preset);
	return p;
}

/* ---- checking previews --------------------------------------------------- */

struct keys {
	char	**v;
	size_t	  n;
};

static int
keys_cb(void *arg, const struct s3_object *o)
{
	struct keys	*k = arg;

	k->v = realloc(k->v, (k->n + 1) * sizeof(*k->v));
	cr_assert_not_null(k->v);
	cr_assert_not_null(k->v[k->n++] = strdup(o->key));
	return 0;
}

static void
keys_list(const char *prefix, struct keys *k)
{
	struct s3_list_params	lp = { .prefix = prefix };
	struct s3_error		err;

	memset(k, 0, sizeof(*k));
	cr_assert(s3_list(H.c, &lp, keys_cb, NULL, k, &err) == S3_OK);
}

static void
keys_free(struct keys *k)
{
	size_t	i;

	for (i = 0; i < k->n; i++)
		free(k->v[i]);
	free(k->v);
}

/*
 * Decode the whole of one preview and check its size against a box of
 * width w for an original of ow x oh; 0 when it is right.
 */
static int
image_ok(const char *what, const void *data, size_t len, int w, int ow,
    int oh)
{
	VipsImage	*img;
	double		 avg, eh = (double)w * oh / ow;
	int		 gw, gh, ok = 1;

	img = vips_image_new_from_buffer(data, len, "", "fail_on",
	    VIPS_FAIL_ON_TRUNCATED, NULL);
	if (img == NULL) {
		cr_log_error("%s: cannot decode: %s", what,
		    vips_error_buffer());
		vips_error_clear();
		return 0;
	}
	/* Every pixel, so a cut-off file cannot pass on its header. */
	if (vips_avg(img, &avg, NULL) != 0) {
		cr_log_error("%s: cannot decode all of it: %s", what,
		    vips_error_buffer());
		vips_error_clear();
		ok = 0;
	}
	gw = vips_image_get_width(img);
	gh = vips_image_get_height(img);
	if (gw != w || gh < eh - 1 || gh > eh + 1) {
		cr_log_error("%s: %dx%d, not %dx%.1f", what, gw, gh, w, eh);
		ok = 0;
	}
	g_object_unref(img);
	return ok;
}

/*
 * Check every preview of preset i under the test prefix; returns how many
 * there are, and fails the test if any is wrong.
 */
static size_t
check_s3_previews(int i, int ow, int oh)
{
	struct keys	 k;
	struct buf	 b;
	struct s3_error	 err;
	enum s3_status	 st;
	size_t		 j, bad = 0, n;
	char		 msg[256];

	keys_list(prew_prefix(preset_name[i]), &k);
	for (j = 0; j < k.n; j++) {
		buf_init(&b, 64 * 1024 * 1024);
		st = s3_get(H.c, k.v[j], 64 * 1024 * 1024, &b, NULL, &err);
		cr_assert(st == S3_OK, "cannot get '%s': %s", k.v[j],
		    s3_error_text(st, &err, msg, sizeof(msg)));
		if (!image_ok(k.v[j], b.data, b.len, preset_w[i], ow, oh))
			bad++;
		buf_release(&b);
	}
	n = k.n;
	keys_free(&k);
	cr_assert_eq(bad, 0, "%zu of %zu previews of '%s' are wrong (first "
	    "ones logged)", bad, n, preset_name[i]);
	return n;
}

/* ---- folder walks ------------------------------------------------------ */

static struct {
	size_t	tmp;		/* ".prewctl-tmp*" files */
	size_t	previews;	/* files under prew/<preset>/ */
	size_t	bad;
	int	check;
	int	ow, oh;
} W;

static int
walk_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	const char	*base = path + ftw->base;
	struct buf	 b;
	size_t		 i;

	(void)st;
	if (flag != FTW_F)
		return 0;
	if (strncmp(base, ".prewctl-tmp", 12) == 0) {
		W.tmp++;
		if (W.check)
			cr_log_info("temporary file left: %s", path);
		return 0;
	}
	for (i = 0; i < 2; i++) {
		char	 dir[256];

		snprintf(dir, sizeof(dir), "%s/prew/%s/", H.root,
		    preset_name[i]);
		if (strncmp(path, dir, strlen(dir)) != 0)
			continue;
		W.previews++;
		if (!W.check)
			break;
		buf_init(&b, BUF_NOMAX);
		th_read_file(path, &b);
		if (!image_ok(path, b.data, b.len, preset_w[i], W.ow, W.oh))
			W.bad++;
		buf_release(&b);
	}
	return 0;
}

static void
walk_root(int check, int ow, int oh)
{
	memset(&W, 0, sizeof(W));
	W.check = check;
	W.ow = ow;
	W.oh = oh;
	cr_assert(nftw(H.root, walk_one, 16, FTW_PHYS) == 0);
}

/* ---- setup ------------------------------------------------------------- */

/* H starts zeroed: every test runs in a process of its own. */
static void
setup(void)
{
	cr_assert(VIPS_INIT("prewctl-tests") == 0);
	vips_cache_set_max(0);
	H.c = th_client();
	snprintf(H.prefix, sizeof(H.prefix), "%s", th_prefix("hardening"));
	memcpy(H.tmp, "/tmp/prewctl-hardening-XXXXXX", 30);
	cr_assert_not_null(mkdtemp(H.tmp));
}

/* Criterion runs the suite's init (setup) and then this one. */
static void
setup_dir(void)
{
	memcpy(H.root, "/tmp/prewctl-hardening-dir-XXXXXX", 34);
	cr_assert_not_null(mkdtemp(H.root));
}

static void
teardown(void)
{
	server_stop();
	if (H.c != NULL) {
		th_delete_prefix(H.c, H.prefix);
		s3_client_free(H.c);
	}
	if (H.tmp[0] != '\0')
		th_rmtree(H.tmp);
	if (H.root[0] != '\0')
		th_rmtree(H.root);
}

TestSuite(hardening, .init = setup, .fini = teardown, .timeout = 600);

/* ---- 5. hostile listings ------------------------------------------------ */

/* Does hay hold needle, ignoring case? */
static int
has(const char *hay, const char *needle)
{
	return strcasestr(hay, needle) != NULL;
}

/* No line of /etc/passwd, nor an expanded laugh, in text. */
static void
expect_no_leak(const char *text, const char *what)
{
	struct buf	 pw;
	char		*line, *nl;

	buf_init(&pw, BUF_NOMAX);
	th_read_file("/etc/passwd", &pw);
	for (line = pw.data; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			nl = line + strlen(line);
		*nl = '\0';
		if (strlen(line) >= 8)
			cr_expect(strstr(text, line) == NULL, "%s shows a line "
			    "of /etc/passwd: %s", what, line);
		if (nl == pw.data + pw.len)
			break;
	}
	cr_expect(strstr(text, "root:x:") == NULL, "%s shows /etc/passwd",
	    what);
	cr_expect(strstr(text, "lollollol") == NULL, "%s shows an expanded "
	    "entity", what);
	buf_release(&pw);
}

/*
 * plan against a server in mode: exit 3, stderr names the problem (any of
 * the words in why), bounded time and memory, no leak.
 */
static void
hostile(const char *mode, const char *const *why)
{
	struct th_run	 r;
	char		 endpoint[64], *cfg;
	size_t		 i;
	int		 port, named = 0;

	port = server_start((const char *const []){ mode, HOSTILE_SECS,
	    NULL });
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
	cfg = s3_config(endpoint, NULL, 3, presets2);
	th_run(&r, &hostile_opts,
	    (const char *const []){ "-c", cfg, "plan", NULL });
	cr_log_info("%s: exit %d in %.1f s, peak RSS %ld KB: %s", mode,
	    r.status, r.secs, r.maxrss_kb, r.err.data);
	expect_exit(&r, 3, mode);
	for (i = 0; why[i] != NULL; i++)
		named |= has(r.err.data, why[i]);
	cr_expect(named, "%s: the message does not say what is wrong: %s",
	    mode, r.err.data);
	cr_expect(has(r.err.data, "prewctl: "), "%s: no error message: %s",
	    mode, r.err.data);
	cr_expect_lt(r.maxrss_kb, RSS_MAX_KB, "%s: peak RSS %ld KB", mode,
	    r.maxrss_kb);
	expect_no_leak(r.out.data, mode);
	expect_no_leak(r.err.data, mode);
	th_run_release(&r);
}

Test(hardening, listing_xxe)
{
	hostile("xxe", (const char *const []){ "DOCTYPE", "entity", NULL });
}

Test(hardening, listing_billion_laughs)
{
	hostile("laughs", (const char *const []){ "DOCTYPE", "entity", NULL });
}

Test(hardening, listing_huge_page)
{
	hostile("huge", (const char *const []){ "too large", "larger than",
	    "too big", NULL });
}

Test(hardening, listing_same_token)
{
	hostile("same-token", (const char *const []){ "repeated",
	    "same continuation token", "same token", NULL });
}

Test(hardening, listing_no_token)
{
	hostile("no-token", (const char *const []){ "without a continuation "
	    "token", "no continuation token", "without a token", NULL });
}

/* ---- 6. signals -------------------------------------------------------- */

#define SIG_N	24	/* originals */
#define SIG_W	2400
#define SIG_H	1800

/* Poll until prewctl made a few previews; fails if it ended first. */
static void
wait_for_previews(pid_t pid, size_t want, int folder)
{
	double	deadline = th_now() + 120;
	size_t	n;
	int	st;

	for (;;) {
		if (folder) {
			walk_root(0, 0, 0);
			n = W.previews;
		} else
			n = th_count(H.c, prew_prefix("small")) +
			    th_count(H.c, prew_prefix("mid"));
		if (n >= want)
			return;
		cr_assert(waitpid(pid, &st, WNOHANG) == 0, "generate ended "
		    "before it could be interrupted");
		if (th_now() > deadline) {
			kill(pid, SIGKILL);
			cr_assert_fail("no preview within 120 s");
		}
		pause_ms(10);
	}
}

/* generate -j 2, interrupted with sig1 (then sig2 unless 0). */
static void
interrupt(const char *cfg, int folder, int sig1, int sig2,
    struct th_run *r, double *after_last)
{
	const char	*out = tmp_path("out"), *err = tmp_path("err");
	double		 t;
	pid_t		 pid;
	int		 st;

	pid = th_spawn_prewctl((const char *const []){ "-c", cfg, "generate",
	    "-j", "2", NULL }, NULL, out, err);
	wait_for_previews(pid, 2, folder);
	cr_assert(kill(pid, sig1) == 0);
	if (sig2 != 0)
		cr_assert(kill(pid, sig2) == 0);
	t = th_now();
	st = th_reap(pid, RUN_LIMIT, "interrupted generate");
	*after_last = th_now() - t;
	spawned_output(r, st, out, err);
	cr_log_info("exit %d, %.2f s after the last signal\nstdout: %s\n"
	    "stderr: %s", r->status, *after_last, r->out.data, r->err.data);
}

static void
signal_once(int sig, int code)
{
	struct th_run	 r;
	char		*cfg;
	double		 secs;
	size_t		 n;

	upload_originals(SIG_N, SIG_W, SIG_H);
	cfg = s3_config(NULL, NULL, 3, presets2);
	interrupt(cfg, 0, sig, 0, &r, &secs);
	expect_exit(&r, code, "generate after one signal");
	/* The summary, as prewctl prints it at the end of any run. */
	cr_expect(has(r.out.data, "originals") &&
	    has(r.out.data, "requests:"), "no summary on stdout: %s",
	    r.out.data);
	cr_expect(has(r.err.data, "interrupted"), "stderr does not say it was "
	    "interrupted: %s", r.err.data);
	n = check_s3_previews(0, SIG_W, SIG_H) +
	    check_s3_previews(1, SIG_W, SIG_H);
	cr_expect_lt(n, (size_t)SIG_N * 2, "all %zu previews made: it did "
	    "not stop taking work", n);
	cr_expect_geq(n, 2);
	th_run_release(&r);

	/* What was stopped is finished by the next run. */
	RUN(&r, "-c", cfg, "generate", "-j", "2");
	expect_exit(&r, 0, "generate after the interrupted one");
	cr_expect_eq(check_s3_previews(0, SIG_W, SIG_H), SIG_N);
	cr_expect_eq(check_s3_previews(1, SIG_W, SIG_H), SIG_N);
	th_run_release(&r);
}

Test(hardening, sigint_stops_cleanly)
{
	signal_once(SIGINT, 130);
}

Test(hardening, sigterm_stops_cleanly)
{
	signal_once(SIGTERM, 143);
}

/*
 * Did it stop at once? The graceful path finishes what is in flight and
 * always prints the summary; exiting at once cannot. The exit code cannot
 * tell: with both signals pending, Linux stacks both handlers' frames and
 * the later one (SIGTERM) runs first, so either may count as the second.
 */
static void
expect_at_once(const struct th_run *r, double secs, const char *what)
{
	cr_expect(r->status == 130 || r->status == 143, "%s: exit %d\n"
	    "stderr: %s", what, r->status, r->err.data);
	cr_expect(!has(r->out.data, "requests:"), "%s: it printed the "
	    "summary, so it finished what was in flight: %s", what,
	    r->out.data);
	cr_expect_lt(secs, 10.0, "%s: it took %.1f s to exit after the "
	    "second signal", what, secs);
}

Test(hardening, second_signal_exits_at_once)
{
	struct th_run	 r;
	char		*cfg;
	double		 secs;

	upload_originals(SIG_N, SIG_W, SIG_H);
	cfg = s3_config(NULL, NULL, 3, presets2);
	interrupt(cfg, 0, SIGINT, SIGTERM, &r, &secs);
	expect_at_once(&r, secs, "generate after two signals");
	/* PUT is atomic: whatever is there is whole. */
	check_s3_previews(0, SIG_W, SIG_H);
	check_s3_previews(1, SIG_W, SIG_H);
	th_run_release(&r);
}

Test(hardening, folder_sigterm_leaves_no_temp_files, .init = setup_dir)
{
	struct th_run	 r;
	char		*cfg;
	double		 secs;

	write_dir_originals(SIG_N, SIG_W, SIG_H);
	cfg = dir_config();
	interrupt(cfg, 1, SIGTERM, 0, &r, &secs);
	expect_exit(&r, 143, "folder generate after SIGTERM");
	cr_expect(has(r.out.data, "originals") &&
	    has(r.out.data, "requests:"), "no summary on stdout: %s",
	    r.out.data);
	walk_root(1, SIG_W, SIG_H);
	cr_expect_eq(W.tmp, 0, "%zu temporary files left", W.tmp);
	cr_expect_eq(W.bad, 0, "%zu of %zu previews are wrong", W.bad,
	    W.previews);
	cr_expect_lt(W.previews, (size_t)SIG_N * 2, "all %zu previews made",
	    W.previews);
	th_run_release(&r);
}

/*
 * Two signals may leave a temporary file (the process exits at once, mid
 * write), but never a partial preview under its final name: the rename is
 * the commit.
 */
Test(hardening, folder_two_signals_leave_no_partial_preview,
    .init = setup_dir)
{
	struct th_run	 r;
	char		*cfg;
	double		 secs;

	write_dir_originals(SIG_N, SIG_W, SIG_H);
	cfg = dir_config();
	interrupt(cfg, 1, SIGINT, SIGTERM, &r, &secs);
	expect_at_once(&r, secs, "folder generate after two signals");
	walk_root(1, SIG_W, SIG_H);
	cr_log_info("two signals: %zu temporary files left, %zu previews",
	    W.tmp, W.previews);
	cr_expect_eq(W.bad, 0, "%zu of %zu previews are wrong", W.bad,
	    W.previews);
	th_run_release(&r);
}

/* ---- 7. overlap ---------------------------------------------------------- */

#define OV_N	16
#define OV_W	1200
#define OV_H	900

Test(hardening, overlapping_runs_both_finish)
{
	const char	*out[2], *err[2];
	char		*cfg;
	pid_t		 pid[2];
	int		 i, st[2];

	upload_originals(OV_N, OV_W, OV_H);
	cfg = s3_config(NULL, NULL, 3, presets2);
	for (i = 0; i < 2; i++) {
		out[i] = tmp_path("out");
		err[i] = tmp_path("err");
		pid[i] = th_spawn_prewctl((const char *const []){ "-c", cfg,
		    "generate", "-j", "2", NULL }, NULL, out[i], err[i]);
	}
	for (i = 0; i < 2; i++)
		st[i] = th_reap(pid[i], RUN_LIMIT, "overlapping generate");
	for (i = 0; i < 2; i++) {
		struct th_run	r;

		spawned_output(&r, st[i], out[i], err[i]);
		expect_exit(&r, 0, i == 0 ? "first run" : "second run");
		th_run_release(&r);
	}
	cr_expect_eq(check_s3_previews(0, OV_W, OV_H), OV_N);
	cr_expect_eq(check_s3_previews(1, OV_W, OV_H), OV_N);
}

Test(hardening, man_page_shows_flock)
{
	FILE	*p;
	char	 line[1024];
	int	 cron = 0, seealso = 0;

	p = popen("groff -mandoc -Tutf8 -P-cbou man/prewctl.1 2>&1", "r");
	cr_assert_not_null(p);
	while (fgets(line, sizeof(line), p) != NULL) {
		if (strstr(line, "flock -n ") != NULL &&
		    strstr(line, "prewctl") != NULL)
			cron = 1;
		if (strstr(line, "flock(1)") != NULL)
			seealso = 1;
	}
	cr_assert_eq(pclose(p), 0, "groff failed");
	cr_expect(cron, "no 'flock -n ... prewctl' line in the man page");
	cr_expect(seealso, "flock(1) is not in the man page");
}

/* ---- 8. secrets -------------------------------------------------------- */

#define TOKEN	"SeSsIoNtOkEn-9f3c1e7a-do-not-print-me-QWERTYUIOP"
#define WRONG	"WrOnGsEcReT-5b2d8c4e-never-print-this-ASDFGHJKL"

Test(hardening, verbose_output_has_no_secrets)
{
	static const char *const cmds[][4] = {
		{ "plan", NULL },
		{ "generate", "-j", "2", NULL },
		{ "purge", "-n", NULL },
		{ "purge", NULL },
	};
	const char	*const envs[][3] = {
		{ NULL },
		{ "AWS_SESSION_TOKEN=" TOKEN, NULL },
		{ "AWS_SECRET_ACCESS_KEY=" WRONG, NULL },
		{ "AWS_SECRET_ACCESS_KEY=" WRONG, "AWS_SESSION_TOKEN=" TOKEN,
		    NULL },
	};
	const char	*secret = th_env()->secret_key;
	struct th_opts	 o = run_opts;
	struct th_run	 r;
	char		*cfg, key[512], what[128];
	const char	*args[12];
	size_t		 e, c, i, n;
	int		 ok_runs = 0;

	upload_originals(3, 400, 300);
	cfg = s3_config(NULL, NULL, 1, presets2);
	for (e = 0; e < sizeof(envs) / sizeof(envs[0]); e++)
		for (c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
			/* Something for purge to delete, or refuse to. */
			if (c == 3) {
				snprintf(key, sizeof(key), "%sphoto/o000.png",
				    H.prefix);
				th_delete_prefix(H.c, key);
			}
			n = 0;
			args[n++] = "-v";
			args[n++] = "-v";
			args[n++] = "-c";
			args[n++] = cfg;
			for (i = 0; cmds[c][i] != NULL; i++)
				args[n++] = cmds[c][i];
			args[n] = NULL;
			o.env = envs[e][0] != NULL ? envs[e] : NULL;
			th_run(&r, &o, args);
			snprintf(what, sizeof(what), "%s (environment %zu, "
			    "exit %d)", cmds[c][0], e, r.status);
			cr_log_info("%s: %zu bytes of output", what,
			    r.out.len + r.err.len);
			if (e == 0) {
				expect_exit(&r, 0, what);
				ok_runs += r.status == 0;
				/* -vv logs each request. */
				cr_expect(has(r.err.data, "GET "), "%s: -vv "
				    "logged no request: %s", what, r.err.data);
			}
			if (e >= 2)
				cr_expect_neq(r.status, 0, "%s: a wrong "
				    "secret worked", what);
			th_expect_no_secret(r.out.data, secret, 0, what);
			th_expect_no_secret(r.err.data, secret, 0, what);
			th_expect_no_secret(r.out.data, TOKEN, 1, what);
			th_expect_no_secret(r.err.data, TOKEN, 1, what);
			th_expect_no_secret(r.out.data, WRONG, 1, what);
			th_expect_no_secret(r.err.data, WRONG, 1, what);
			th_run_release(&r);
			if (c == 3)
				upload_originals(3, 400, 300);
		}
	cr_expect_eq(ok_runs, 4);
}

/* ---- 9. purge safety --------------------------------------------------- */

/* n originals with previews of presets2 made for them. */
static char *
with_previews(int n)
{
	struct th_run	 r;
	char		*cfg;

	upload_originals(n, 400, 300);
	cfg = s3_config(NULL, NULL, 3, presets2);
	RUN(&r, "-c", cfg, "generate", "-j", "2");
	expect_exit(&r, 0, "generate");
	th_run_release(&r);
	cr_assert_eq(th_count(H.c, prew_prefix("small")), (size_t)n);
	cr_assert_eq(th_count(H.c, prew_prefix("mid")), (size_t)n);
	return cfg;
}

/*
 * purge with cfg and more arguments: exit code, stderr says why (and that it
 * refused, if refusing), and nothing under the previews is gone.
 */
static void
refused(const char *cfg, const char *why, int refusing, int code,
    const char *what, const char *const *more)
{
	struct th_run	 r;
	const char	*args[8];
	size_t		 before, n = 0, i;
	char		 prew[512];

	snprintf(prew, sizeof(prew), "%sprew/", H.prefix);
	before = th_count(H.c, prew);
	args[n++] = "-c";
	args[n++] = cfg;
	args[n++] = "purge";
	for (i = 0; more != NULL && more[i] != NULL; i++)
		args[n++] = more[i];
	args[n] = NULL;
	th_run(&r, &run_opts, args);
	cr_log_info("%s: exit %d: %s", what, r.status, r.err.data);
	expect_exit(&r, code, what);
	if (refusing)
		cr_expect(has(r.err.data, "refus"), "%s: stderr does not say "
		    "it refused: %s", what, r.err.data);
	if (why != NULL)
		cr_expect(has(r.err.data, why), "%s: stderr does not say '%s': "
		    "%s", what, why, r.err.data);
	cr_expect_eq(th_count(H.c, prew), before, "%s: previews were deleted",
	    what);
	th_run_release(&r);
}

Test(hardening, purge_refuses_empty_source)
{
	struct th_run	 r;
	char		*bad;

	with_previews(3);
	bad = s3_config(NULL, "phot0/", 3, presets2);
	/* The stamps name the source they were made from: caught first. */
	refused(bad, "is made from source", 1, 2, "purge with a mistyped source",
	    NULL);

	RUN(&r, "-c", bad, "purge", "--force");
	expect_exit(&r, 0, "purge --force with a mistyped source");
	th_run_release(&r);
	cr_expect_eq(th_count(H.c, prew_prefix("small")), 0);
	cr_expect_eq(th_count(H.c, prew_prefix("mid")), 0);
}

Test(hardening, purge_refuses_failed_source_listing)
{
	char	*cfg, endpoint[64], source[300];
	int	 port;

	/* A source listing taken as empty would make every preview go. */
	with_previews(3);
	snprintf(source, sizeof(source), "%sphoto/", H.prefix);
	port = server_start((const char *const []){ "fail-list",
	    th_env()->endpoint, source, HOSTILE_SECS, NULL });
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
	cfg = s3_config(endpoint, NULL, 3, presets2);
	/* Only the source listing fails: the message names it. */
	/* A storage failure: exit 3, and nothing deleted. */
	refused(cfg, "photo/': AccessDenied", 1, 3, "purge with a failed "
	    "source listing", NULL);
	refused(cfg, "AccessDenied", 1, 3, "purge -n with a failed source "
	    "listing",
	    (const char *const []){ "-n", NULL });
}

Test(hardening, purge_refuses_unreachable_endpoint)
{
	char	*cfg, endpoint[64];

	with_previews(2);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d",
	    closed_port());
	cfg = s3_config(endpoint, NULL, 1, presets2);
	/* It fails before it lists the source: "cannot list" says enough. */
	refused(cfg, "cannot list", 0, 3, "purge against a closed port",
	    NULL);
}

Test(hardening, purge_max_delete)
{
	struct th_run	 r;
	char		*cfg, key[512];
	int		 i;

	cfg = with_previews(4);
	for (i = 0; i < 2; i++) {
		snprintf(key, sizeof(key), "%sphoto/o%03d.png", H.prefix, i);
		cr_assert_eq(th_delete_prefix(H.c, key), 1);
	}
	/* Two originals gone: four orphans over two presets. */
	refused(cfg, "max-delete", 1, 2, "purge --max-delete 3",
	    (const char *const []){ "--max-delete", "3", NULL });
	RUN(&r, "-c", cfg, "purge", "--max-delete", "4");
	expect_exit(&r, 0, "purge --max-delete 4");
	th_run_release(&r);
	cr_expect_eq(th_count(H.c, prew_prefix("small")), 2);
	cr_expect_eq(th_count(H.c, prew_prefix("mid")), 2);
}

/*
 * A bad item is not a storage failure: originals whose preview keys are
 * too long (over S3's 1024 bytes, which the folder backend refuses too),
 * eleven presets each, are known from the listing: each is reported, none
 * is read or rendered, the good one is still made, and the run is not
 * stopped ("storage failed ten times in a row"). They fail every night
 * the same way, so they do not fail the run: exit 0.
 */
Test(hardening, bad_keys_in_a_row_do_not_stop_the_run)
{
	char		 root[] = "/tmp/prewctl-badkeys-XXXXXX";
	char		 name[1100], path[1300], *cfg, *p;
	const char	*args[4];
	struct buf	 img, text;
	struct th_run	 r;
	int		 i;
	FILE		*f;

	cr_assert_not_null(mkdtemp(root));
	buf_init(&img, BUF_NOMAX);
	th_read_file("tests/data/render/icc-a98-small.jpg", &img);
	snprintf(path, sizeof(path), "%s/photo", root);
	cr_assert(mkdir(path, 0755) == 0);
	/* photo/<1014 bytes> is a valid key; previews-.../s/<...> is not. */
	for (i = 0; i < 12; i++) {
		memset(name, 'a' + i, 1010);
		memcpy(name + 1010, ".jpg", 5);
		snprintf(path, sizeof(path), "%s/photo/%s", root, name);
		/* NAME_MAX is 255: split the name into folders. */
		for (size_t k = 250; k < 1010; k += 251)
			path[strlen(root) + 7 + k] = '/';
		for (char *s = strchr(path + strlen(root) + 7, '/'); s != NULL;
		    s = strchr(s + 1, '/')) {
			*s = '\0';
			mkdir(path, 0755);
			*s = '/';
		}
		cr_assert_not_null(f = fopen(path, "wb"), "%s", path);
		cr_assert_eq(fwrite(img.data, 1, img.len, f), img.len);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/photo/zz-good.jpg", root);
	cr_assert_not_null(f = fopen(path, "wb"));
	cr_assert_eq(fwrite(img.data, 1, img.len, f), img.len);
	fclose(f);

	buf_init(&text, BUF_NOMAX);
	cr_assert(buf_addf(&text, "[storage]\ndirectory = %s\nsource = photo/\n"
	    "previews = previews-under-a-long-name/\n[preset s]\nwidth = 32\n",
	    root) == 0);
	for (i = 1; i < 11; i++)
		cr_assert(buf_addf(&text, "[preset s%d]\nwidth = %d\n", i,
		    32 + i) == 0);
	cfg = th_write_temp(text.data);
	args[0] = "-c";
	args[1] = cfg;
	args[2] = "generate";
	args[3] = NULL;
	th_prewctl(&r, args, NULL);
	th_expect_exit(&r, 0, "generate over twelve bad keys and a good one");
	cr_assert_null(strstr(r.err.data, "in a row"), "%s", r.err.data);
	for (i = 0, p = r.err.data; (p = strstr(p, "longer than 1024 bytes")) !=
	    NULL; p++)
		i++;
	cr_assert_eq(i, 12 * 11, "%d too-long keys reported: %s", i,
	    r.err.data);
	/*
	 * Only the good original was read; the other GETs are the eleven
	 * stamps, whose folder ETags say nothing, read once by the check
	 * that no other run changed them.
	 */
	cr_assert_not_null(p = strstr(r.out.data, " get,"), "%s", r.out.data);
	while (p > r.out.data && p[-1] >= '0' && p[-1] <= '9')
		p--;
	cr_assert_eq(atoi(p), 1 + 11, "%s", r.out.data);
	snprintf(path, sizeof(path),
	    "%s/previews-under-a-long-name/s/zz-good.jpg", root);
	cr_assert(access(path, F_OK) == 0, "the good original got no preview");
	th_run_release(&r);
	buf_release(&img);
	buf_release(&text);
	unlink(cfg);
	free(cfg);
	th_rmtree(root);
}
