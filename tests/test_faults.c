/*
 * faults: issue 4, points 1 (faults) and 2 (outage), end to end.
 *
 * The real prewctl runs against the real S3 server through
 * tests/s3-fault-proxy, which answers some requests with 503 SlowDown or
 * 500 InternalError, resets connections, cuts GET bodies off halfway, holds
 * requests past the client's low-speed time, or goes down altogether, and
 * counts what it did. What prewctl wrote is read back straight from the
 * server, not through the proxy.
 *
 * Where the expectations come from:
 *   - the right previews: a fault-free run of the same prewctl, through a
 *     proxy that injects nothing, over the same originals under another
 *     prefix; libvips' encoders are deterministic, so a faulty run must
 *     write byte-identical previews, and a preview made from a cut body
 *     (a truncated JPEG decodes to a grey-filled image) would differ;
 *   - the number of retries: the proxy's own count of the faults it
 *     injected. Every 503, 500, cut body and stall costs prewctl one retry.
 *     A reset costs one retry when it hits the first request of a
 *     connection; on a reused connection libcurl resends the request by
 *     itself (it treats a reused connection that died before answering as
 *     stale), so the proxy sees one request more than prewctl counts.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#include "helpers.h"

#define FPROXY		"tests/s3-fault-proxy"
#define NORIG		30
#define NPRESET		3
#define RETRIES		8
#define MAX_STORAGE_ERRORS 10	/* cmd/generate.c, wp.max_storage_errors */

static const struct fpreset {
	const char	*name;
	const char	*ini;
} presets[NPRESET] = {
	{ "small", "width = 64\nheight = 64\nformat = jpeg\n" },
	{ "medium", "width = 160\nformat = webp\n" },
	{ "sq", "width = 100\nheight = 100\nfit = cover\nformat = png\n" },
};

struct fproxy {
	pid_t	 pid;
	char	 endpoint[64];
	char	*stats;		/* its --stats file */
};

struct pstats {
	long long	 req_list, req_get, req_put, req_head, req_del;
	long long	 req_other, req_total;
	long long	 slowdown, internal, reset, reset_fresh, cut, stall;
	long long	 refused, faults;
	int		 down, listening;
	char		**put_paths;
	size_t		 nput_paths;
};

/* What prewctl --json said. */
struct gen_json {
	long long	 exit_code;
	long long	 generated;	/* over all presets */
	long long	 failed;
	long long	 list, get, put, head, del, retries;
	int		 no_failures;	/* "failures":[] */
};

#define MAX_PROXIES	2
#define MAX_CFGS	4

static struct {
	struct s3_client	*c;
	struct fproxy		 px[MAX_PROXIES];
	char			 pfx[3][256];
	int			 npfx;
	char			*cfgs[MAX_CFGS];
	int			 ncfgs;
	struct buf		 orig[NORIG];
	struct buf		 ref[NORIG][NPRESET];	/* fault-free */
} F;

/* ---- the originals ------------------------------------------------------- */

static const char *
orig_name(int i)
{
	static char	name[4][32];
	static int	k;
	char		*o = name[k++ % 4];

	/* Every third one a PNG: a cut PNG fails, a cut JPEG decodes grey. */
	snprintf(o, sizeof(name[0]), "img-%02d.%s", i, i % 3 == 2 ? "png" :
	    "jpg");
	return o;
}

/* Small images whose colours and sizes differ with i. */
static void
make_original(int i, struct buf *out)
{
	VipsImage	*black, *rgb, *img;
	double		 bg[3], fg[3], dot[3];
	void		*data = NULL;
	size_t		 len = 0;
	int		 w = 96 + 9 * i, h = 72 + 5 * i, k;

	for (k = 0; k < 3; k++) {
		bg[k] = (double)((i * (37 + 24 * k) + 11 * k) % 256);
		fg[k] = 255.0 - bg[k];
		dot[k] = (double)((i * 67 + 101 * k) % 256);
	}
	cr_assert(vips_black(&black, w, h, "bands", 3, NULL) == 0, "%s",
	    vips_error_buffer());
	cr_assert(vips_copy(black, &rgb, "interpretation",
	    VIPS_INTERPRETATION_sRGB, NULL) == 0, "%s", vips_error_buffer());
	img = vips_image_copy_memory(rgb);
	cr_assert_not_null(img, "%s", vips_error_buffer());
	cr_assert(vips_draw_rect(img, bg, 3, 0, 0, w, h, "fill", TRUE,
	    NULL) == 0, "%s", vips_error_buffer());
	cr_assert(vips_draw_rect(img, fg, 3, w / 5 + i % 7, h / 4,
	    w / 2 - i % 5, h / 2, "fill", TRUE, NULL) == 0);
	cr_assert(vips_draw_rect(img, dot, 3, w / 2, h / 3 + i % 4, w / 6 + 2,
	    h / 5 + 2, "fill", TRUE, NULL) == 0);
	if (i % 3 == 2)
		cr_assert(vips_pngsave_buffer(img, &data, &len, NULL) == 0,
		    "%s", vips_error_buffer());
	else
		cr_assert(vips_jpegsave_buffer(img, &data, &len, "Q", 90,
		    NULL) == 0, "%s", vips_error_buffer());
	buf_init(out, BUF_NOMAX);
	cr_assert(buf_add(out, data, len) == 0);
	g_free(data);
	g_object_unref(img);
	g_object_unref(rgb);
	g_object_unref(black);
}

static const char *
key_of(const char *prefix, const char *area, const char *preset, int i)
{
	static char	key[4][512];
	static int	k;
	char		*o = key[k++ % 4];
	int		 n;

	if (preset != NULL)
		n = snprintf(o, sizeof(key[0]), "%s%s%s/%s", prefix, area,
		    preset, orig_name(i));
	else
		n = snprintf(o, sizeof(key[0]), "%s%s%s", prefix, area,
		    orig_name(i));
	cr_assert(n > 0 && (size_t)n < sizeof(key[0]));
	return o;
}

static void
upload(const char *prefix, int n)
{
	struct s3_put_opts	 po = { NULL, NULL, NULL, NULL, 0 };
	struct s3_error		 err;
	enum s3_status		 st;
	char			 msg[256];
	int			 i;

	for (i = 0; i < n; i++) {
		po.content_type = i % 3 == 2 ? "image/png" : "image/jpeg";
		st = s3_put(F.c, key_of(prefix, "photo/", NULL, i),
		    F.orig[i].data, F.orig[i].len, &po, &err);
		cr_assert(st == S3_OK, "cannot upload original %d: %s", i,
		    s3_error_text(st, &err, msg, sizeof(msg)));
	}
}

/* GET key straight from the server; returns 0, or -1 when not found. */
static int
fetch(const char *key, struct buf *out)
{
	struct s3_error	 err;
	enum s3_status	 st;
	char		 msg[256];

	buf_reset(out);
	st = s3_get(F.c, key, 64 * 1024 * 1024, out, NULL, &err);
	if (st == S3_ENOTFOUND)
		return -1;
	cr_assert(st == S3_OK, "cannot read '%s': %s", key,
	    s3_error_text(st, &err, msg, sizeof(msg)));
	return 0;
}

/* A preview decodes to the last pixel, with errors fatal. */
static int
decodes_fully(const struct buf *b)
{
	VipsImage	*img;
	double		 avg;
	int		 ok;

	img = vips_image_new_from_buffer(b->data, b->len, "", "fail_on",
	    VIPS_FAIL_ON_WARNING, NULL);
	if (img == NULL) {
		vips_error_clear();
		return 0;
	}
	ok = vips_avg(img, &avg, NULL) == 0;
	if (!ok)
		vips_error_clear();
	g_object_unref(img);
	return ok;
}

/* ---- the fault proxy ----------------------------------------------------- */

/* Start a proxy with the given options (NULL-terminated, may be NULL). */
static struct fproxy *
fproxy_start(const char *const *opts)
{
	const struct th_env		*e = th_env();
	struct fproxy			*px = NULL;
	char				*argv[32];
	char				 tmpl[] = "/tmp/prewctl-faults-XXXXXX";
	size_t				 a = 0;
	int				 port, fd, i;

	for (i = 0; i < MAX_PROXIES && px == NULL; i++)
		if (F.px[i].pid == 0)
			px = &F.px[i];
	cr_assert_not_null(px);
	cr_assert((fd = mkstemp(tmpl)) >= 0);
	close(fd);
	px->stats = strdup(tmpl);
	argv[a++] = FPROXY;
	argv[a++] = "--stats";
	argv[a++] = px->stats;
	argv[a++] = "--max-seconds";
	argv[a++] = "1200";
	for (i = 0; opts != NULL && opts[i] != NULL; i++) {
		cr_assert(a < sizeof(argv) / sizeof(argv[0]) - 2);
		argv[a++] = (char *)opts[i];
	}
	argv[a++] = (char *)e->endpoint;
	argv[a] = NULL;

	port = th_start_server(argv, &px->pid);
	snprintf(px->endpoint, sizeof(px->endpoint), "http://127.0.0.1:%d",
	    port);
	return px;
}

static void
fproxy_stop(struct fproxy *px)
{
	th_stop_server(&px->pid);
	if (px->stats != NULL) {
		unlink(px->stats);
		free(px->stats);
		px->stats = NULL;
	}
}

static void
pstats_release(struct pstats *s)
{
	size_t	i;

	for (i = 0; i < s->nput_paths; i++)
		free(s->put_paths[i]);
	free(s->put_paths);
	memset(s, 0, sizeof(*s));
}

/* The proxy's counters, from its --stats file. */
static void
pstats_read(const struct fproxy *px, struct pstats *s)
{
	struct buf		 b;
	struct th_json		*doc;
	const struct th_json	*pp;
	size_t			 i;

	memset(s, 0, sizeof(*s));
	buf_init(&b, BUF_NOMAX);
	th_read_file(px->stats, &b);
	doc = th_json_parse(b.data, b.len);
	s->down = th_json_bool(doc, "down");
	s->listening = th_json_bool(doc, "listening");
	s->req_list = th_json_num(doc, "requests.LIST");
	s->req_get = th_json_num(doc, "requests.GET");
	s->req_put = th_json_num(doc, "requests.PUT");
	s->req_head = th_json_num(doc, "requests.HEAD");
	s->req_del = th_json_num(doc, "requests.DELETE");
	s->req_other = th_json_num(doc, "requests.OTHER");
	s->req_total = th_json_num(doc, "requests.total");
	s->slowdown = th_json_num(doc, "faults.slowdown");
	s->internal = th_json_num(doc, "faults.internal");
	s->reset = th_json_num(doc, "faults.reset");
	s->reset_fresh = th_json_num(doc, "faults.reset_fresh");
	s->cut = th_json_num(doc, "faults.cut");
	s->stall = th_json_num(doc, "faults.stall");
	s->refused = th_json_num(doc, "faults.refused");
	s->faults = th_json_num(doc, "faults.total");
	pp = th_json_at(doc, "put_paths");
	cr_assert(pp != NULL && th_json_type(pp) == TH_JSON_ARRAY,
	    "bad stats from the proxy: %.300s", b.data);
	s->nput_paths = th_json_len(pp);
	if (s->nput_paths > 0)
		cr_assert_not_null(s->put_paths = calloc(s->nput_paths,
		    sizeof(*s->put_paths)));
	for (i = 0; i < s->nput_paths; i++) {
		cr_assert_eq(th_json_type(th_json_item(pp, i)), TH_JSON_STRING,
		    "bad put_paths[%zu] from the proxy", i);
		cr_assert_not_null(s->put_paths[i] =
		    strdup(th_json_str(th_json_item(pp, i), "")));
	}
	th_json_free(doc);
	buf_release(&b);
}

/* A fresh prefix, deleted at teardown. */
static const char *
new_prefix(const char *name)
{
	char	*p;

	cr_assert(F.npfx < 3);
	p = F.pfx[F.npfx++];
	snprintf(p, sizeof(F.pfx[0]), "%s", th_prefix(name));
	return p;
}

/* ---- running prewctl ----------------------------------------------------- */

static char *
write_cfg(const char *prefix, const char *endpoint, int retries,
    const char *extra)
{
	const struct th_env	*e = th_env();
	struct buf		 b;
	char			*path;
	size_t			 i;

	buf_init(&b, BUF_NOMAX);
	cr_assert(buf_addf(&b, "[storage]\nbucket = %s\nendpoint = %s\n"
	    "region = %s\npath_style = true\nsource = %sphoto/\n"
	    "previews = %sprew/\nretries = %d\ntimeout = 2\n%s\n", e->bucket,
	    endpoint, e->region, prefix, prefix, retries,
	    extra != NULL ? extra : "") == 0);
	for (i = 0; i < NPRESET; i++)
		cr_assert(buf_addf(&b, "[preset %s]\n%s\n", presets[i].name,
		    presets[i].ini) == 0);
	path = th_write_temp(b.data);
	buf_release(&b);
	cr_assert(F.ncfgs < MAX_CFGS);
	F.cfgs[F.ncfgs++] = path;
	return path;
}

/* generate -j 2 --json; returns how long it took. */
static double
generate(const char *cfg, struct th_run *r, struct gen_json *j)
{
	const char		*args[] = { "-c", cfg, "generate", "-j", "2",
				    "--json", NULL };
	const struct th_json	*ps, *fs;
	struct th_json		*doc;
	size_t			 i;

	th_prewctl(r, args, NULL);
	memset(j, 0, sizeof(*j));
	cr_assert(r->out.len > 0 && r->out.data[0] == '{',
	    "no JSON on stdout (exit %d); stderr: %.2000s", r->status,
	    r->err.data);
	doc = th_json_parse(r->out.data, r->out.len);
	j->exit_code = th_json_num(doc, "exit");
	/* Over all presets. */
	ps = th_json_at(doc, "presets");
	cr_assert(ps != NULL && th_json_type(ps) == TH_JSON_OBJECT,
	    "no presets object in the JSON");
	for (i = 0; i < th_json_len(ps); i++) {
		j->generated += th_json_num(th_json_item(ps, i), "generated");
		j->failed += th_json_num(th_json_item(ps, i), "failed");
	}
	j->list = th_json_num(doc, "requests.list");
	j->get = th_json_num(doc, "requests.get");
	j->put = th_json_num(doc, "requests.put");
	j->head = th_json_num(doc, "requests.head");
	j->del = th_json_num(doc, "requests.delete");
	j->retries = th_json_num(doc, "retries");
	fs = th_json_at(doc, "failures");
	j->no_failures = fs != NULL && th_json_type(fs) == TH_JSON_ARRAY &&
	    th_json_len(fs) == 0;
	th_json_free(doc);
	cr_assert_eq(j->exit_code, r->status, "--json says exit %lld, the "
	    "process exited %d", j->exit_code, r->status);
	return r->secs;
}

/*
 * The fault-free reference: n originals under a fresh prefix, previews
 * made through a proxy that injects nothing, kept in F.ref.
 */
static void
make_reference(int n)
{
	const char	*prefix;
	struct fproxy	*px;
	struct pstats	 ps;
	struct gen_json	 j;
	struct th_run	 r;
	char		*cfg;
	int		 i, k;

	prefix = new_prefix("faults-ref");
	upload(prefix, n);
	px = fproxy_start(NULL);
	cfg = write_cfg(prefix, px->endpoint, RETRIES, NULL);
	generate(cfg, &r, &j);
	th_expect_exit(&r, 0, "fault-free generate");
	cr_assert_eq(j.generated, (long long)n * NPRESET);
	pstats_read(px, &ps);
	cr_assert_eq(ps.faults, 0, "the fault-free proxy injected %lld "
	    "faults", ps.faults);
	cr_assert_eq(j.retries, 0, "a fault-free run retried %lld times",
	    j.retries);
	cr_assert_eq(ps.req_total, j.list + j.get + j.put + j.head + j.del,
	    "the proxy saw %lld requests, prewctl counts %lld", ps.req_total,
	    j.list + j.get + j.put + j.head + j.del);
	pstats_release(&ps);
	th_run_release(&r);
	fproxy_stop(px);
	for (i = 0; i < n; i++)
		for (k = 0; k < NPRESET; k++) {
			buf_init(&F.ref[i][k], BUF_NOMAX);
			cr_assert(fetch(key_of(prefix, "prew/", presets[k].name,
			    i), &F.ref[i][k]) == 0, "fault-free run: no "
			    "preview %s of %s", presets[k].name, orig_name(i));
			cr_assert(decodes_fully(&F.ref[i][k]));
		}
}

/* The width and height of an encoded image; 0 when it does not open. */
static int
dims_of(const struct buf *b, int *w, int *h)
{
	VipsImage	*img;

	img = vips_image_new_from_buffer(b->data, b->len, "", NULL);
	if (img == NULL) {
		vips_error_clear();
		return 0;
	}
	*w = img->Xsize;
	*h = img->Ysize;
	g_object_unref(img);
	return 1;
}

/*
 * Every preview of the n originals under prefix: when present, it must be
 * the reference one. Returns how many are present; sets missing[i][k].
 *
 * alone (NULL: none) names the previews made without all of the
 * original's presets (their job was cut short by an outage, and the next
 * run made the rest). Presets made together share one decode sized for
 * the largest of them (README, Images): made without the largest, their
 * bytes may differ from the reference's; they must have its size and
 * decode whole.
 */
static int
check_previews(const char *prefix, int n, int missing[NORIG][NPRESET],
    int alone[NORIG][NPRESET])
{
	struct buf	b;
	int		i, k, present = 0, bad = 0, w, h, rw, rh;

	buf_init(&b, BUF_NOMAX);
	for (i = 0; i < n; i++)
		for (k = 0; k < NPRESET; k++) {
			const char *key = key_of(prefix, "prew/",
			    presets[k].name, i);

			missing[i][k] = fetch(key, &b) != 0;
			if (missing[i][k])
				continue;
			present++;
			if (alone != NULL && alone[i][k]) {
				if (!dims_of(&b, &w, &h) ||
				    !dims_of(&F.ref[i][k], &rw, &rh) ||
				    w != rw || h != rh || !decodes_fully(&b)) {
					cr_log_error("preview %s of %s, made "
					    "apart: not the reference's size "
					    "or does not decode",
					    presets[k].name, orig_name(i));
					bad++;
				}
				continue;
			}
			if (b.len != F.ref[i][k].len ||
			    memcmp(b.data, F.ref[i][k].data, b.len) != 0) {
				cr_log_error("preview %s of %s: %zu bytes, "
				    "not the fault-free one (%zu bytes)%s",
				    presets[k].name, orig_name(i), b.len,
				    F.ref[i][k].len, decodes_fully(&b) ?
				    "" : ", and does not decode");
				bad++;
			}
		}
	buf_release(&b);
	cr_assert_eq(bad, 0, "%d previews differ from the fault-free run",
	    bad);
	return present;
}

/* Poll the proxy's stats until it listens (or not), with a deadline. */
static void
wait_listening(const struct fproxy *px, int want)
{
	struct timespec	 ts = { 0, 20 * 1000000L };
	struct pstats	 ps;
	double		 deadline = th_now() + 20;

	for (;;) {
		pstats_read(px, &ps);
		if (ps.listening == want && ps.down == !want) {
			pstats_release(&ps);
			return;
		}
		pstats_release(&ps);
		cr_assert(th_now() < deadline, "the proxy did not go %s in "
		    "20 s", want ? "up" : "down");
		nanosleep(&ts, NULL);
	}
}

/* ---- setup --------------------------------------------------------------- */

static void
setup(void)
{
	int	i;

	memset(&F, 0, sizeof(F));
	cr_assert(VIPS_INIT("prewctl-tests") == 0);
	vips_cache_set_max(0);
	F.c = th_client();
	for (i = 0; i < NORIG; i++)
		make_original(i, &F.orig[i]);
}

static void
teardown(void)
{
	int	i, k;

	for (i = 0; i < MAX_PROXIES; i++)
		fproxy_stop(&F.px[i]);
	for (i = 0; i < F.npfx; i++)
		th_delete_prefix(F.c, F.pfx[i]);
	for (i = 0; i < F.ncfgs; i++) {
		unlink(F.cfgs[i]);
		free(F.cfgs[i]);
	}
	for (i = 0; i < NORIG; i++) {
		buf_release(&F.orig[i]);
		for (k = 0; k < NPRESET; k++)
			if (F.ref[i][k].data != NULL)
				buf_release(&F.ref[i][k]);
	}
	if (F.c != NULL)
		s3_client_free(F.c);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 600);

/* ---- 1. faults ----------------------------------------------------------- */

/*
 * Run generate over n originals through a proxy with the given faults and
 * check what the issue asks: exit 0, every preview the fault-free one,
 * retries counted and matching the faults injected. Leaves the proxy's
 * stats in ps.
 */
static void
faulty_run(int n, const char *const *opts, const char *cfg_extra,
    struct pstats *ps, struct gen_json *j)
{
	const char	*prefix;
	struct fproxy	*px;
	struct th_run	 r;
	char		*cfg;
	int		 missing[NORIG][NPRESET];
	long long	 attempts, expect_retries;
	double		 secs;

	make_reference(n);
	prefix = new_prefix("faults");
	upload(prefix, n);
	px = fproxy_start(opts);
	cfg = write_cfg(prefix, px->endpoint, RETRIES, cfg_extra);
	secs = generate(cfg, &r, j);
	pstats_read(px, ps);
	cr_log_info("%.1f s; proxy: %lld requests (%lld list, %lld get, %lld "
	    "put), %lld faults: %lld 503, %lld 500, %lld resets (%lld on a "
	    "fresh connection), %lld cut, %lld stalls; prewctl: %lld retries",
	    secs, ps->req_total, ps->req_list, ps->req_get, ps->req_put,
	    ps->faults, ps->slowdown, ps->internal, ps->reset,
	    ps->reset_fresh, ps->cut, ps->stall, j->retries);
	th_expect_exit(&r, 0, "generate through the faults");
	cr_assert(j->no_failures, "failures reported: %.2000s", r.out.data);
	cr_assert_eq(j->generated, (long long)n * NPRESET);
	/*
	 * A cut body that reached the decoder fails (fail_on=truncated) or
	 * makes a grey-filled preview: the first shows here, the second in
	 * check_previews.
	 */
	cr_assert_null(strstr(r.err.data, "cannot make preview"),
	    "stderr: %.2000s", r.err.data);
	cr_assert_null(strstr(r.err.data, "Premature end"), "stderr: %.2000s",
	    r.err.data);
	cr_assert_null(strstr(r.err.data, "truncated"), "stderr: %.2000s",
	    r.err.data);
	cr_assert_eq(check_previews(prefix, n, missing, NULL), n * NPRESET);

	attempts = j->list + j->get + j->put + j->head + j->del;
	expect_retries = ps->slowdown + ps->internal + ps->cut + ps->stall +
	    ps->reset_fresh;
	cr_assert_gt(j->retries, 0);
	cr_assert_eq(j->retries, expect_retries, "prewctl counts %lld "
	    "retries; the proxy injected %lld faults it must have seen",
	    j->retries, expect_retries);
	cr_assert_leq(j->retries, ps->faults);
	/* Each request retried at most RETRIES times. */
	cr_assert_leq(j->retries, (long long)RETRIES * (attempts -
	    j->retries));
	/* Every attempt reached the proxy, plus libcurl's own resends. */
	cr_assert_eq(ps->req_total, attempts + (ps->reset - ps->reset_fresh),
	    "the proxy saw %lld requests, prewctl made %lld attempts",
	    ps->req_total, attempts);
	th_run_release(&r);
}

/*
 * Issue 4, point 1: 10 % 503 + 5 % 500 + 2 % resets + 2 % cut bodies over
 * 30 originals x 3 presets. The seed is one whose draws (one PRNG per
 * request kind, so the same whatever the interleaving of -j 2) include at
 * least one fault of each kind.
 */
Test(faults, mixed_faults_give_identical_previews)
{
	static const char *const opts[] = { "--seed", "9", "--p503", "0.10",
		"--p500", "0.05", "--preset", "0.02", "--pcut", "0.02", NULL };
	struct pstats	ps;
	struct gen_json	j;

	faulty_run(NORIG, opts, NULL, &ps, &j);
	cr_expect_gt(ps.slowdown, 0);
	cr_expect_gt(ps.internal, 0);
	cr_expect_gt(ps.reset, 0);
	cr_expect_gt(ps.cut, 0);
	pstats_release(&ps);
}

/* Many cut bodies: each is retried, none is decoded. */
Test(faults, cut_bodies_are_never_decoded)
{
	static const char *const opts[] = { "--seed", "3", "--pcut", "0.4",
		NULL };
	struct pstats	ps;
	struct gen_json	j;

	faulty_run(12, opts, NULL, &ps, &j);
	cr_assert_geq(ps.cut, 3, "only %lld bodies cut", ps.cut);
	pstats_release(&ps);
}

/*
 * Resets on connections of their own (the proxy closes each after one
 * answer): libcurl cannot resend them as stale, prewctl's retries must.
 */
Test(faults, resets_are_retried)
{
	static const char *const opts[] = { "--seed", "6", "--preset", "0.2",
		"--no-keepalive", NULL };
	struct pstats	ps;
	struct gen_json	j;

	faulty_run(12, opts, NULL, &ps, &j);
	cr_assert_geq(ps.reset_fresh, 3, "only %lld resets", ps.reset_fresh);
	cr_assert_eq(ps.reset_fresh, ps.reset);
	pstats_release(&ps);
}

/*
 * A request held past low_speed_time times out and is retried. (A held
 * PUT takes some seconds more: libcurl averages the speed over the last
 * five seconds, and the body just sent keeps it above the limit.)
 */
Test(faults, stalls_time_out_and_are_retried)
{
	static const char *const opts[] = { "--seed", "5", "--pstall", "0.1",
		"--stall-seconds", "60", "--p503", "0.05", NULL };
	struct pstats	ps;
	struct gen_json	j;

	faulty_run(12, opts, "low_speed_time = 2\n", &ps, &j);
	cr_assert_geq(ps.stall, 1, "no request stalled");
	pstats_release(&ps);
}

/* ---- 2. outage ----------------------------------------------------------- */

Test(faults, outage_stops_with_exit_3_and_next_run_completes)
{
	/*
	 * Before the first job: a listing of the previews for the stamps,
	 * three stamp PUTs, the two listings of the merge; then a GET and
	 * three PUTs per original. 40 lets about eight originals through.
	 */
	static const char *const opts[] = { "--down-after", "40", NULL };
	const char	*prefix;
	struct fproxy	*px;
	struct pstats	 ps;
	struct gen_json	 j;
	struct th_run	 r;
	char		*cfg;
	int		 missing[NORIG][NPRESET], again[NORIG][NPRESET];
	int		 alone[NORIG][NPRESET];
	int		 present, nmissing, i, k;
	size_t		 puts_before, m, bad = 0;
	double		 secs;

	make_reference(NORIG);
	prefix = new_prefix("faults-down");
	upload(prefix, NORIG);
	px = fproxy_start(opts);
	/* Few retries: ten failures in a row must come quickly. */
	cfg = write_cfg(prefix, px->endpoint, 2, NULL);

	secs = generate(cfg, &r, &j);
	pstats_read(px, &ps);
	cr_log_info("outage run: exit %d in %.1f s, %lld previews, %lld "
	    "retries; proxy: %lld requests, %lld refused", r.status, secs,
	    j.generated, j.retries, ps.req_total, ps.refused);
	th_expect_exit(&r, 3, "generate while the endpoint dies");
	/* Generous: it must not hang, nor retry for ever. */
	cr_assert_lt(secs, 120.0, "the outage run took %.0f s", secs);
	cr_assert(strstr(r.err.data, "storage failed") != NULL ||
	    strstr(r.err.data, "cannot list") != NULL,
	    "stderr does not say why it stopped: %.2000s", r.err.data);
	cr_assert(ps.down, "the proxy never went down");
	cr_assert_geq(j.failed, MAX_STORAGE_ERRORS / 2);
	/* It stopped taking work: not every preview left was tried. */
	cr_assert_lt(j.generated + j.failed, NORIG * NPRESET, "%lld made, "
	    "%lld failed: the run went on after the outage", j.generated,
	    j.failed);
	/* retries = 2: at most two retries per request. */
	cr_assert_leq(j.retries, 2 * (j.list + j.get + j.put + j.head +
	    j.del - j.retries));
	th_run_release(&r);
	pstats_release(&ps);

	/* Nothing half-written: what is there is whole and right. */
	present = check_previews(prefix, NORIG, missing, NULL);
	cr_assert_eq(present, (int)j.generated, "%d previews in the bucket, "
	    "the run says it made %lld", present, j.generated);
	cr_assert_gt(present, 0, "the endpoint died before any preview");
	cr_assert_lt(present, NORIG * NPRESET, "the endpoint never died");
	nmissing = NORIG * NPRESET - present;

	/* Back up: the next run makes exactly what is missing. */
	pstats_read(px, &ps);
	puts_before = ps.nput_paths;
	pstats_release(&ps);
	kill(px->pid, SIGUSR1);
	wait_listening(px, 1);
	generate(cfg, &r, &j);
	th_expect_exit(&r, 0, "generate after the outage");
	cr_assert(j.no_failures);
	cr_assert_eq(j.generated, nmissing, "the second run made %lld "
	    "previews; %d were missing", j.generated, nmissing);
	/* Missing beside one made: the next run made it without that one. */
	for (i = 0; i < NORIG; i++) {
		for (k = 0, m = 0; k < NPRESET; k++)
			m += (size_t)!missing[i][k];
		for (k = 0; k < NPRESET; k++)
			alone[i][k] = missing[i][k] && m > 0;
	}
	cr_assert_eq(check_previews(prefix, NORIG, again, alone),
	    NORIG * NPRESET);
	pstats_read(px, &ps);
	cr_assert_eq(ps.nput_paths - puts_before, (size_t)nmissing,
	    "the second run made %zu PUTs for %d missing previews",
	    ps.nput_paths - puts_before, nmissing);
	/* Each PUT is for a missing preview, and each missing one once. */
	for (m = puts_before; m < ps.nput_paths; m++) {
		int found = 0;

		for (i = 0; i < NORIG && !found; i++)
			for (k = 0; k < NPRESET && !found; k++) {
				const struct th_env *e = th_env();
				char path[600];

				snprintf(path, sizeof(path), "/%s/%s",
				    e->bucket, key_of(prefix, "prew/",
				    presets[k].name, i));
				if (strcmp(path, ps.put_paths[m]) != 0)
					continue;
				found = 1;
				if (!missing[i][k]) {
					cr_log_error("remade %s", path);
					bad++;
				}
				missing[i][k] = 0;
			}
		if (!found) {
			cr_log_error("unexpected PUT %s", ps.put_paths[m]);
			bad++;
		}
	}
	cr_assert_eq(bad, 0, "%zu PUTs of the second run were not for a "
	    "missing preview", bad);
	pstats_release(&ps);
	th_run_release(&r);
}

/* ---- purge: a delete refused as a whole ---------------------------------- */

/*
 * A key that may list but not delete (S3 answers DeleteObjects 403
 * AccessDenied as a whole): purge deletes nothing, reports every key it
 * tried, says how many it did not try, and exits 3.
 */
Test(faults, purge_with_deletes_denied_exits_3_and_deletes_nothing)
{
	static const char *const opts[] = { "--deny", "DELETE", NULL };
	enum { NORPHAN = 1200 };	/* two DeleteObjects requests */
	struct s3_put_opts	 po = { NULL, NULL, NULL, NULL, 0 };
	const char	*prefix, *args[8];
	struct fproxy	*px;
	struct pstats	 ps;
	struct th_run	 r;
	struct th_json	*doc;
	struct s3_error	 err;
	char		*cfg, key[512], area[300], line[128];
	const char	*p;
	long long	 failed, not_tried, reported = 0;
	int		 i;

	prefix = new_prefix("faults-purge");
	upload(prefix, 1);
	snprintf(area, sizeof(area), "%sprew/%s/", prefix, presets[0].name);
	for (i = 0; i < NORPHAN; i++) {
		snprintf(key, sizeof(key), "%sgone-%04d.jpg", area, i);
		cr_assert(s3_put(F.c, key, "x", 1, &po, &err) == S3_OK);
	}
	px = fproxy_start(opts);
	cfg = write_cfg(prefix, px->endpoint, 2, NULL);
	args[0] = "-c";
	args[1] = cfg;
	args[2] = "purge";
	args[3] = "--json";
	/* All of them are orphans: past the guard on a preset's share. */
	args[4] = "--force";
	args[5] = NULL;
	th_prewctl(&r, args, NULL);
	pstats_read(px, &ps);
	cr_log_info("denied purge: exit %d, %lld DeleteObjects requests",
	    r.status, ps.req_del);
	th_expect_exit(&r, 3, "purge with deletes denied");
	doc = th_json_parse(r.out.data, r.out.len);
	cr_assert_eq(th_json_num(doc, "deleted"), 0, "%s", r.out.data);
	cr_assert_eq(th_json_num(doc, "would_delete"), NORPHAN);
	failed = th_json_num(doc, "failed");
	th_json_free(doc);
	/* Each key tried is reported by name, with the server's reason. */
	for (i = 0; i < NORPHAN; i++) {
		snprintf(line, sizeof(line), "gone-%04d.jpg': ", i);
		if ((p = strstr(r.err.data, line)) == NULL)
			continue;
		reported++;
		p += strlen(line);
		cr_assert(strncmp(p, "AccessDenied", 12) == 0,
		    "no reason for %s: %.300s", line, p);
	}
	cr_assert_eq(reported, failed, "%lld keys reported, %lld failed",
	    reported, failed);
	/* "prewctl: N keys were not tried" */
	p = strstr(r.err.data, " keys were not tried");
	cr_assert_not_null(p, "stderr does not say what was left: %.2000s",
	    r.err.data);
	while (p > r.err.data && p[-1] >= '0' && p[-1] <= '9')
		p--;
	not_tried = strtoll(p, NULL, 10);
	cr_assert_eq(failed + not_tried, NORPHAN, "%lld failed and %lld not "
	    "tried of %d", failed, not_tried, NORPHAN);
	/* 403 is not retried: one request per batch tried. */
	cr_assert_eq(ps.req_del, (failed + 999) / 1000, "%lld DeleteObjects "
	    "requests for %lld keys", ps.req_del, failed);
	cr_assert_eq(th_count(F.c, area), NORPHAN, "keys were deleted");
	pstats_release(&ps);
	th_run_release(&r);
}
