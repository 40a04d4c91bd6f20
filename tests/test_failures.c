/*
 * failures: what generate does when some things fail, end to end with
 * the real binary on the test server (one on a folder backend).
 *
 *   - One preset that cannot be made from an original (a WebP wider than
 *     16383) fails alone: the other preset is made, exit 1.
 *   - Reads refused per object (403 on GET) are each that object's
 *     failure: twelve in a row do not stop the run. The refusal is a
 *     bucket policy that denies s3:GetObject on some keys under the
 *     test's prefix, which RGW enforces for the bucket's owner too; the
 *     fault proxy's --deny GET would deny every read, the good ones too.
 *   - Writes refused as a whole (the fault proxy's --deny PUT) stop the
 *     run with exit 3 after ten failures in a row, well before the end.
 *   - A folder backend's errors keep their strerror text.
 *   - An original stored with Content-Encoding: gzip (put with curl,
 *     which can sign; struct s3_put_opts has no such header) is decoded
 *     first: its preview is the one of the plain original.
 *   - A key whose preview key would pass S3's 1024 bytes is reported from
 *     the listing and never read (tests/s3-fault-proxy counts the GETs).
 *
 * Each test has its own prefix or folder, removed by teardown.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "helpers.h"

extern char **environ;

#define FPROXY		"tests/s3-fault-proxy"
#define MAX_CFGS	4
#define MAX_STORAGE_ERRORS 10	/* the man page's "ten ... in a row" */

static struct {
	struct s3_client	*c;
	char			 prefix[256];
	char			 root[64];	/* folder backend */
	char			 tmp[64];	/* files for curl, the proxy */
	char			*cfgs[MAX_CFGS];
	int			 ncfgs;
	pid_t			 proxy;
	int			 proxy_port;
	int			 policy;	/* a bucket policy was set */
} F;

/* ---- files and tools ----------------------------------------------------- */

static const char *
tmp_file(const char *name)
{
	static char	path[4][128];
	static int	k;
	char		*p = path[k++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", F.tmp, name);
	return p;
}

static void
write_bytes(const char *path, const void *data, size_t len)
{
	FILE	*f = fopen(path, "wb");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/*
 * Run a tool (argv[0] looked up in PATH) with stdout to out (or
 * /dev/null) and stdin from /dev/null; returns its exit status. A missing
 * tool fails the test.
 */
static int
tool(char *const *argv, const char *out)
{
	posix_spawn_file_actions_t	fa;
	pid_t				pid;
	int				st;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out != NULL ? out :
	    "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), 0,
	    "cannot run %s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	while (waitpid(pid, &st, 0) < 0)
		cr_assert_eq(errno, EINTR);
	cr_assert(WIFEXITED(st), "%s was killed", argv[0]);
	return WEXITSTATUS(st);
}

/*
 * A request to the test server signed by curl (--aws-sigv4): method on
 * path_query ("/bucket/key" or "/bucket?policy="), with one extra header
 * or NULL, the body from the file upload or NULL. Returns the HTTP status.
 */
static long
curl_s3(const char *method, const char *path_query, const char *header,
    const char *upload)
{
	const struct th_env	*e = th_env();
	char			 sig[128], user[256], url[2048], *argv[32];
	const char		*codes = tmp_file("curl-code");
	struct buf		 b;
	long			 code;
	int			 a = 0, rc;

	snprintf(sig, sizeof(sig), "aws:amz:%s:s3", e->region);
	snprintf(user, sizeof(user), "%s:%s", e->access_key, e->secret_key);
	cr_assert((size_t)snprintf(url, sizeof(url), "%s%s", e->endpoint,
	    path_query) < sizeof(url));
	argv[a++] = "curl";
	argv[a++] = "-sS";
	argv[a++] = "--noproxy";
	argv[a++] = "*";
	argv[a++] = "--max-time";
	argv[a++] = "60";
	argv[a++] = "-o";
	argv[a++] = "/dev/null";
	argv[a++] = "-w";
	argv[a++] = "%{http_code}";
	argv[a++] = "--aws-sigv4";
	argv[a++] = sig;
	argv[a++] = "--user";
	argv[a++] = user;
	argv[a++] = "-H";
	argv[a++] = "x-amz-content-sha256: UNSIGNED-PAYLOAD";
	if (header != NULL) {
		argv[a++] = "-H";
		argv[a++] = (char *)header;
	}
	argv[a++] = "-X";
	argv[a++] = (char *)method;
	if (upload != NULL) {
		argv[a++] = "--data-binary";
		argv[a++] = strdup(upload);	/* "@file" */
	}
	argv[a++] = url;
	argv[a] = NULL;
	rc = tool(argv, codes);
	cr_assert_eq(rc, 0, "curl %s %s exited %d", method, path_query, rc);
	buf_init(&b, BUF_NOMAX);
	th_read_file(codes, &b);
	code = strtol(b.data, NULL, 10);
	buf_release(&b);
	if (upload != NULL)
		free(argv[a - 2]);
	return code;
}

/* A w x h JPEG of a gradient, as bytes in out. */
static void
make_jpeg(int w, int h, struct buf *out)
{
	VipsImage	*x, *img;
	void		*data = NULL;
	size_t		 len = 0;

	cr_assert(vips_xyz(&x, w, h, NULL) == 0, "%s", vips_error_buffer());
	cr_assert(vips_cast(x, &img, VIPS_FORMAT_UCHAR, NULL) == 0, "%s",
	    vips_error_buffer());
	cr_assert(vips_jpegsave_buffer(img, &data, &len, "Q", 90, NULL) == 0,
	    "%s", vips_error_buffer());
	buf_init(out, BUF_NOMAX);
	cr_assert(buf_add(out, data, len) == 0);
	g_free(data);
	g_object_unref(img);
	g_object_unref(x);
}

static void
put_bytes(const char *key, const struct buf *b, const char *type)
{
	struct s3_put_opts	 po = { type, NULL, NULL, NULL, 0 };
	struct s3_error		 err;
	enum s3_status		 st;
	char			 msg[256];

	st = s3_put(F.c, key, b->data, b->len, &po, &err);
	cr_assert(st == S3_OK, "cannot put '%s': %s", key,
	    s3_error_text(st, &err, msg, sizeof(msg)));
}

/* GET key straight from the server: 0, or -1 when it is not there. */
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

/* The size of an image, decoded to the last pixel. */
static void
image_size(const struct buf *b, int *w, int *h)
{
	VipsImage	*img;
	double		 avg;

	img = vips_image_new_from_buffer(b->data, b->len, "", "fail_on",
	    VIPS_FAIL_ON_WARNING, NULL);
	cr_assert_not_null(img, "does not decode: %s", vips_error_buffer());
	cr_assert(vips_avg(img, &avg, NULL) == 0, "does not decode: %s",
	    vips_error_buffer());
	*w = vips_image_get_width(img);
	*h = vips_image_get_height(img);
	g_object_unref(img);
}

static char *
keep_cfg(char *path)
{
	cr_assert_lt(F.ncfgs, MAX_CFGS);
	F.cfgs[F.ncfgs++] = path;
	return path;
}

/* An S3 configuration of F.prefix through endpoint (NULL: the server). */
static char *
s3_cfg(const char *endpoint, int retries, const char *presets)
{
	const struct th_env	*e = th_env();
	char			 text[4096];

	cr_assert((size_t)snprintf(text, sizeof(text), "[storage]\n"
	    "bucket = %s\nendpoint = %s\nregion = %s\npath_style = true\n"
	    "source = %sphoto/\npreviews = %sprew/\nretries = %d\n"
	    "timeout = 5\n\n%s", e->bucket, endpoint != NULL ? endpoint :
	    e->endpoint, e->region, F.prefix, F.prefix, retries, presets) <
	    sizeof(text));
	return keep_cfg(th_write_temp(text));
}

static const char *
key(const char *area, const char *rel)
{
	static char	k[4][1200];
	static int	n;
	char		*p = k[n++ % 4];

	cr_assert((size_t)snprintf(p, sizeof(k[0]), "%s%s%s", F.prefix, area,
	    rel) < sizeof(k[0]));
	return p;
}

/* generate with args after "-c cfg generate"; its stdout parsed. */
static struct th_json *
generate(const char *cfg, const char *const *more, struct th_run *r)
{
	const char	*args[16] = { "-c", cfg, "generate", "--json" };
	struct th_json	*j;
	size_t		 n = 4, i;

	for (i = 0; more != NULL && more[i] != NULL; i++) {
		cr_assert_lt(n, 15);
		args[n++] = more[i];
	}
	args[n] = NULL;
	th_prewctl(r, args, NULL);
	j = th_json_parse(r->out.data, r->out.len);
	cr_assert_eq(th_json_num(j, "exit"), r->status, "\"exit\" is %lld, "
	    "the status %d", th_json_num(j, "exit"), r->status);
	return j;
}

static int
count_of(const char *hay, const char *needle)
{
	const char	*p;
	int		 n = 0;

	for (p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* ---- setup --------------------------------------------------------------- */

static void
setup(void)
{
	memset(&F, 0, sizeof(F));
	cr_assert(VIPS_INIT("prewctl-tests") == 0);
	vips_cache_set_max(0);
	F.c = th_client();
	snprintf(F.prefix, sizeof(F.prefix), "%s", th_prefix("failures"));
	snprintf(F.tmp, sizeof(F.tmp), "/tmp/prewctl-failures-XXXXXX");
	cr_assert_not_null(mkdtemp(F.tmp));
}

static void
teardown(void)
{
	const struct th_env	*e = th_env();
	char			 pq[512];
	int			 i;

	th_stop_server(&F.proxy);
	if (F.policy) {
		snprintf(pq, sizeof(pq), "/%s?policy=", e->bucket);
		curl_s3("DELETE", pq, NULL, NULL);
	}
	if (F.c != NULL) {
		th_delete_prefix(F.c, F.prefix);
		s3_client_free(F.c);
	}
	if (F.root[0] != '\0')
		th_rmtree(F.root);
	th_rmtree(F.tmp);
	for (i = 0; i < F.ncfgs; i++) {
		unlink(F.cfgs[i]);
		free(F.cfgs[i]);
	}
}

TestSuite(failures, .init = setup, .fini = teardown, .timeout = 120);

/* ---- 1. one failing preset ----------------------------------------------- */

/*
 * A 200x10 original: thumb (JPEG, 64 wide) is made; huge (WebP, 16384
 * wide, enlarged) cannot be, WebP allowing at most 16383 a side. Only
 * huge is the failure, with a reason naming WebP; exit 1.
 */
Test(failures, one_failing_preset_does_not_fail_the_others)
{
	struct th_run		 r;
	struct th_json		*j;
	const struct th_json	*fl;
	struct buf		 img, prev;
	char			*cfg;
	const char		*err;
	int			 w, h;

	make_jpeg(200, 10, &img);
	put_bytes(key("photo/", "wide.jpg"), &img, "image/jpeg");
	cfg = s3_cfg(NULL, 3, "[preset thumb]\nwidth = 64\nformat = jpeg\n"
	    "[preset huge]\nwidth = 16384\nenlarge = true\nformat = webp\n");
	j = generate(cfg, NULL, &r);
	th_expect_exit(&r, 1, "generate with one preset failing");
	fl = th_json_at(j, "failures");
	cr_assert_not_null(fl);
	cr_assert_eq(th_json_len(fl), 1, "%s", r.out.data);
	cr_assert_str_eq(th_json_str(j, "failures[0].preset"), "huge");
	cr_assert_str_eq(th_json_str(j, "failures[0].key"),
	    key("photo/", "wide.jpg"));
	err = th_json_str(j, "failures[0].error");
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, "WebP"), "the reason does not name "
	    "WebP: %s", err);
	cr_assert_eq(th_json_num(j, "presets.thumb.generated"), 1);
	cr_assert_eq(th_json_num(j, "presets.thumb.failed"), 0);
	cr_assert_eq(th_json_num(j, "presets.huge.generated"), 0);
	cr_assert_eq(th_json_num(j, "presets.huge.failed"), 1);
	/* On stderr: the key, the preset and the reason. */
	cr_assert_not_null(strstr(r.err.data, "'huge'"), "%s", r.err.data);
	cr_assert_not_null(strstr(r.err.data, "WebP"), "%s", r.err.data);
	cr_assert_null(strstr(r.err.data, "'thumb'"), "thumb reported as "
	    "failed: %s", r.err.data);
	th_json_free(j);
	th_run_release(&r);

	buf_init(&prev, BUF_NOMAX);
	cr_assert_eq(fetch(key("prew/", "thumb/wide.jpg"), &prev), 0,
	    "no thumb preview");
	image_size(&prev, &w, &h);
	cr_assert_eq(w, 64);
	cr_assert(h >= 3 && h <= 4, "thumb is %dx%d", w, h);
	cr_assert_eq(fetch(key("prew/", "huge/wide.jpg"), &prev), -1,
	    "a huge preview was written");
	buf_release(&prev);
	buf_release(&img);
}

/* ---- 2. reads refused per object ----------------------------------------- */

/*
 * Twelve originals the key may not read (403 AccessDenied on GET, as a
 * bucket policy says), then three it may: the twelve are the objects'
 * own failures, not the storage's, so the run goes on (ten reads failing
 * in a row would stop it), reports each, makes the good ones, exits 1.
 */
Test(failures, per_object_read_refusals_do_not_stop_the_run)
{
	enum { NDENY = 12, NGOOD = 3 };
	const struct th_env	*e = th_env();
	struct th_run		 r;
	struct th_json		*j;
	const struct th_json	*fl;
	struct s3_error		 serr;
	struct buf		 img, b;
	char			 rel[64], pq[512], policy[1024], *cfg;
	int			 i, w, h, seen[NDENY];
	size_t			 k;
	long			 code;

	make_jpeg(120, 80, &img);
	for (i = 0; i < NDENY; i++) {
		snprintf(rel, sizeof(rel), "a-deny-%02d.jpg", i);
		put_bytes(key("photo/", rel), &img, "image/jpeg");
	}
	for (i = 0; i < NGOOD; i++) {
		snprintf(rel, sizeof(rel), "z-good-%d.jpg", i);
		put_bytes(key("photo/", rel), &img, "image/jpeg");
	}
	/* Deny reads of the a-deny-* originals, to everyone. */
	snprintf(policy, sizeof(policy), "{\"Version\":\"2012-10-17\","
	    "\"Statement\":[{\"Effect\":\"Deny\",\"Principal\":\"*\","
	    "\"Action\":\"s3:GetObject\",\"Resource\":"
	    "\"arn:aws:s3:::%s/%sphoto/a-deny-*\"}]}", e->bucket, F.prefix);
	write_bytes(tmp_file("policy.json"), policy, strlen(policy));
	snprintf(pq, sizeof(pq), "/%s?policy=", e->bucket);
	F.policy = 1;
	snprintf(rel, sizeof(rel), "@%s", tmp_file("policy.json"));
	code = curl_s3("PUT", pq, NULL, rel);
	cr_assert(code == 200 || code == 204, "PutBucketPolicy: HTTP %ld",
	    code);
	/* The premise: the server refuses those reads, and only those. */
	buf_init(&b, BUF_NOMAX);
	cr_assert_eq(s3_get(F.c, key("photo/", "a-deny-00.jpg"), 1 << 20, &b,
	    NULL, &serr), S3_ESERVER, "the policy does not deny the read");
	cr_assert_eq(serr.http_status, 403);
	cr_assert_eq(fetch(key("photo/", "z-good-0.jpg"), &b), 0);

	cfg = s3_cfg(NULL, 2, "[preset s]\nwidth = 32\n");
	j = generate(cfg, (const char *const []){ "-j", "2", NULL }, &r);
	th_expect_exit(&r, 1, "generate over twelve refused reads");
	cr_assert_null(strstr(r.err.data, "in a row"), "the run was stopped: "
	    "%.2000s", r.err.data);
	cr_assert_eq(th_json_num(j, "presets.s.generated"), NGOOD, "%s",
	    r.out.data);
	cr_assert_eq(th_json_num(j, "presets.s.failed"), NDENY, "%s",
	    r.out.data);
	fl = th_json_at(j, "failures");
	cr_assert_eq(th_json_len(fl), NDENY, "%s", r.out.data);
	memset(seen, 0, sizeof(seen));
	for (k = 0; k < NDENY; k++) {
		const struct th_json *f = th_json_item(fl, k);

		for (i = 0; i < NDENY; i++) {
			snprintf(rel, sizeof(rel), "a-deny-%02d.jpg", i);
			if (strcmp(th_json_str(f, "key"), key("photo/", rel)) ==
			    0)
				seen[i]++;
		}
		cr_assert_not_null(strstr(th_json_str(f, "error"),
		    "AccessDenied"), "%s", th_json_str(f, "error"));
	}
	for (i = 0; i < NDENY; i++) {
		snprintf(rel, sizeof(rel), "a-deny-%02d.jpg'", i);
		cr_assert_eq(seen[i], 1, "%s in failures %d times", rel,
		    seen[i]);
		cr_assert_eq(count_of(r.err.data, rel), 1, "%s not reported "
		    "once on stderr: %.2000s", rel, r.err.data);
	}
	th_json_free(j);
	th_run_release(&r);
	for (i = 0; i < NGOOD; i++) {
		char prel[64];

		snprintf(prel, sizeof(prel), "s/z-good-%d.jpg", i);
		cr_assert_eq(fetch(key("prew/", prel), &b), 0, "no preview "
		    "%s", prel);
		image_size(&b, &w, &h);
		cr_assert_eq(w, 32);
	}
	buf_release(&b);
	buf_release(&img);
}

/* ---- 3. writes refused as a whole ---------------------------------------- */

struct fstats {
	long long	 get, put, denied;
};

/* The fault proxy's counters, from its --stats file. */
static void
fstats_read(const char *path, struct fstats *s)
{
	struct th_json	*j;
	struct buf	 b;

	buf_init(&b, BUF_NOMAX);
	th_read_file(path, &b);
	j = th_json_parse(b.data, b.len);
	s->get = th_json_num(j, "requests.GET");
	s->put = th_json_num(j, "requests.PUT");
	s->denied = th_json_num(j, "faults.denied");
	th_json_free(j);
	buf_release(&b);
}

/* The fault proxy with opts (NULL-terminated); returns its endpoint. */
static const char *
fproxy_start(const char *const *opts, const char *stats)
{
	static char	 endpoint[64];
	char		*argv[16];
	int		 a = 0, i;

	argv[a++] = FPROXY;
	argv[a++] = "--stats";
	argv[a++] = (char *)stats;
	argv[a++] = "--max-seconds";
	argv[a++] = "300";
	for (i = 0; opts[i] != NULL; i++)
		argv[a++] = (char *)opts[i];
	argv[a++] = (char *)th_env()->endpoint;
	argv[a] = NULL;
	F.proxy_port = th_start_server(argv, &F.proxy);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d",
	    F.proxy_port);
	return endpoint;
}

#define NPUTORIG	40
#define PUT_PRESETS	"[preset a]\nwidth = 16\n[preset b]\nwidth = 24\n" \
			"[preset c]\nwidth = 32\nformat = png\n"
#define NPUTPRESETS	3
/* README, The pool: with -j 1, 2 fetchers, 1 renderer, 8 uploaders. */
#define FETCHERS_J1	2
#define UPLOADERS_J1	8

/*
 * Stamps written first, straight to the server (else the first refused
 * write would be a stamp's), then NPUTORIG originals, then generate -j 1
 * through a proxy that refuses every PUT with 403. Fills s and j.
 */
static void
refused_writes_run(struct th_run *r, struct th_json **j, struct fstats *s)
{
	struct buf	 img;
	const char	*endpoint, *stats = tmp_file("stats.json");
	char		 rel[64], *cfg;
	int		 i;

	cfg = s3_cfg(NULL, 1, PUT_PRESETS);
	*j = generate(cfg, NULL, r);
	th_expect_exit(r, 0, "generate over nothing (writes the stamps)");
	th_json_free(*j);
	th_run_release(r);
	make_jpeg(64, 48, &img);
	for (i = 0; i < NPUTORIG; i++) {
		snprintf(rel, sizeof(rel), "img-%02d.jpg", i);
		put_bytes(key("photo/", rel), &img, "image/jpeg");
	}
	buf_release(&img);
	endpoint = fproxy_start((const char *const []){ "--deny", "PUT",
	    NULL }, stats);
	cfg = s3_cfg(endpoint, 1, PUT_PRESETS);
	*j = generate(cfg, (const char *const []){ "-j", "1", NULL }, r);
	fstats_read(stats, s);
}

Test(failures, refused_writes_stop_the_run)
{
	struct th_run	 r;
	struct th_json	*j;
	struct fstats	 s;
	const char	*err;
	long long	 jobs;

	refused_writes_run(&r, &j, &s);
	th_expect_exit(&r, 3, "generate with every PUT refused");
	err = th_json_str(j, "error");
	cr_assert_not_null(err, "%s", r.out.data);
	cr_assert_not_null(strstr(err, "in a row"), "error: %s", err);
	cr_assert_not_null(strstr(err, "write"), "error: %s", err);
	cr_assert_not_null(strstr(r.err.data, err), "%.2000s", r.err.data);
	cr_assert_eq(s.denied, s.put, "PUTs got through the proxy");
	cr_assert_geq(s.put, MAX_STORAGE_ERRORS);
	/* It stopped well before the end: far fewer originals tried. */
	jobs = (s.put + NPUTPRESETS - 1) / NPUTPRESETS;
	cr_assert_leq(jobs, NPUTORIG / 2, "%lld PUTs: %lld of %d originals "
	    "tried", s.put, jobs, NPUTORIG);
	cr_assert_lt(s.get, NPUTORIG / 2, "%lld originals read of %d", s.get,
	    NPUTORIG);
	/*
	 * No original read again: each GET is one original, those tried
	 * and the ones read ahead and dropped when the run stopped: being
	 * fetched, one waiting for the renderer, one being rendered, and
	 * one rendered for each uploader. 403 is not retried.
	 */
	cr_assert_leq(s.get, jobs + FETCHERS_J1 + 2 + UPLOADERS_J1,
	    "%lld GETs for %lld originals tried", s.get, jobs);
	cr_assert_eq(th_json_num(j, "requests.get"), s.get, "prewctl counts "
	    "%lld GETs, the proxy saw %lld", th_json_num(j, "requests.get"),
	    s.get);
	cr_assert_eq(th_json_num(j, "retries"), 0);
	th_json_free(j);
	th_run_release(&r);
}

/*
 * The man page: generate stops "after ten ... writes ... failed in a
 * row". Then the writes under way beside the tenth end (seven more
 * uploaders, one write each), and the original begun gets its other
 * previews written (two more at most, of three presets); nothing else.
 */
Test(failures, refused_writes_stop_after_ten_writes)
{
	struct th_run	 r;
	struct th_json	*j;
	struct fstats	 s;
	long long	 bound = MAX_STORAGE_ERRORS + (UPLOADERS_J1 - 1) +
	    (NPUTPRESETS - 1);

	refused_writes_run(&r, &j, &s);
	th_expect_exit(&r, 3, "generate with every PUT refused");
	cr_assert_leq(s.denied, bound, "%lld writes refused before it "
	    "stopped: ten in a row, and at most %lld in flight, were to stop "
	    "it", s.denied, bound - MAX_STORAGE_ERRORS);
	th_json_free(j);
	th_run_release(&r);
}

/* ---- 4. a folder's errors keep their reason ------------------------------ */

/*
 * A regular file where preset s's folder should be: each preview of s
 * fails with the strerror text ("Not a directory"), on stderr and in
 * --json, and preset m is made.
 */
Test(failures, folder_errors_keep_their_reason)
{
	struct th_run		 r;
	struct th_json		*j;
	const struct th_json	*fl;
	struct buf		 img;
	char			 path[256], *cfg, text[512];
	size_t			 k;
	int			 i;

	snprintf(F.root, sizeof(F.root), "/tmp/prewctl-ffold-XXXXXX");
	cr_assert_not_null(mkdtemp(F.root));
	make_jpeg(64, 48, &img);
	snprintf(path, sizeof(path), "%s/photo", F.root);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/prew", F.root);
	cr_assert_eq(mkdir(path, 0755), 0);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/photo/p%d.jpg", F.root, i);
		write_bytes(path, img.data, img.len);
	}
	snprintf(path, sizeof(path), "%s/prew/s", F.root);
	write_bytes(path, "a file", 6);
	snprintf(text, sizeof(text), "[storage]\ndirectory = %s\n"
	    "source = photo/\npreviews = prew/\n[preset s]\nwidth = 16\n"
	    "[preset m]\nwidth = 24\n", F.root);
	cfg = keep_cfg(th_write_temp(text));
	j = generate(cfg, NULL, &r);
	th_expect_exit(&r, 1, "generate with prew/s a file");
	fl = th_json_at(j, "failures");
	cr_assert_eq(th_json_len(fl), 3, "%s", r.out.data);
	for (k = 0; k < 3; k++) {
		const struct th_json *f = th_json_item(fl, k);

		cr_assert_str_eq(th_json_str(f, "preset"), "s");
		cr_assert_not_null(strstr(th_json_str(f, "error"),
		    "Not a directory"), "failures[%zu].error: %s", k,
		    th_json_str(f, "error"));
	}
	cr_assert_eq(count_of(r.err.data, "Not a directory"), 3, "%.2000s",
	    r.err.data);
	cr_assert_eq(th_json_num(j, "presets.m.generated"), 3);
	th_json_free(j);
	th_run_release(&r);
	buf_release(&img);
}

/* ---- 5. Content-Encoding: gzip ------------------------------------------- */

Test(failures, gzip_encoded_original_gets_a_right_preview)
{
	const struct th_env	*e = th_env();
	struct th_run		 r;
	struct th_json		*j;
	struct buf		 img, gz, plain, fromgz;
	char			 pq[1200], up[256], *cfg;
	int			 w, h;
	long			 code;

	make_jpeg(160, 120, &img);
	put_bytes(key("photo/", "plain.jpg"), &img, "image/jpeg");
	write_bytes(tmp_file("orig.jpg"), img.data, img.len);
	cr_assert_eq(tool((char *const []){ "gzip", "-9", "-n", "-c",
	    (char *)tmp_file("orig.jpg"), NULL }, tmp_file("orig.jpg.gz")), 0);
	buf_init(&gz, BUF_NOMAX);
	th_read_file(tmp_file("orig.jpg.gz"), &gz);
	cr_assert(gz.len > 2 && (unsigned char)gz.data[0] == 0x1f &&
	    (unsigned char)gz.data[1] == 0x8b, "not gzip");
	snprintf(pq, sizeof(pq), "/%s/%s", e->bucket, key("photo/",
	    "gz.jpg"));
	snprintf(up, sizeof(up), "@%s", tmp_file("orig.jpg.gz"));
	code = curl_s3("PUT", pq, "Content-Encoding: gzip", up);
	cr_assert_eq(code, 200, "PUT with Content-Encoding: HTTP %ld", code);
	/* The server keeps the gzip bytes as they are (HEAD's size). */
	buf_init(&plain, BUF_NOMAX);
	buf_init(&fromgz, BUF_NOMAX);
	{
		struct s3_head	hd;
		struct s3_error	err;

		s3_head_init(&hd);
		cr_assert_eq(s3_head(F.c, key("photo/", "gz.jpg"), &hd, &err),
		    S3_OK);
		cr_assert_eq(hd.size, gz.len, "stored %llu bytes, sent %zu",
		    (unsigned long long)hd.size, gz.len);
		s3_head_release(&hd);
	}

	cfg = s3_cfg(NULL, 2, "[preset s]\nwidth = 64\n");
	j = generate(cfg, NULL, &r);
	th_expect_exit(&r, 0, "generate over a gzip-encoded original");
	cr_assert_eq(th_json_num(j, "presets.s.generated"), 2, "%s",
	    r.out.data);
	th_json_free(j);
	th_run_release(&r);
	cr_assert_eq(fetch(key("prew/", "s/plain.jpg"), &plain), 0);
	cr_assert_eq(fetch(key("prew/", "s/gz.jpg"), &fromgz), 0);
	image_size(&fromgz, &w, &h);
	cr_assert(w == 64 && h == 48, "the preview is %dx%d", w, h);
	/* libvips is deterministic: the same pixels make the same file. */
	cr_assert(plain.len == fromgz.len && memcmp(plain.data, fromgz.data,
	    plain.len) == 0, "the gzip original's preview differs from the "
	    "plain one's");
	buf_release(&plain);
	buf_release(&fromgz);
	buf_release(&gz);
	buf_release(&img);
}

/* ---- 6. a preview key longer than S3's 1024 bytes ------------------------ */

/* The proxy's counts (GET /__counts, reset when asked). */
static struct th_json *
counts(int reset)
{
	struct sockaddr_in	 sa;
	struct th_json		*j;
	struct buf		 resp;
	const char		*body;
	char			 req[128], chunk[8192];
	ssize_t			 n;
	int			 fd, len;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)F.proxy_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
	    "cannot reach the proxy: %s", strerror(errno));
	len = snprintf(req, sizeof(req), "GET /__counts%s HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nConnection: close\r\n\r\n",
	    reset ? "?reset=1" : "");
	cr_assert_eq(write(fd, req, (size_t)len), len);
	buf_init(&resp, BUF_NOMAX);
	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };

		cr_assert_gt(poll(&pf, 1, 20000), 0, "the proxy did not answer");
		if ((n = read(fd, chunk, sizeof(chunk))) <= 0)
			break;
		cr_assert(buf_add(&resp, chunk, (size_t)n) == 0);
	}
	close(fd);
	cr_assert(strncmp(resp.data, "HTTP/1.1 200", 12) == 0, "%.200s",
	    resp.data);
	cr_assert_not_null(body = strstr(resp.data, "\r\n\r\n"));
	body += 4;
	j = th_json_parse(body, resp.len - (size_t)(body - resp.data));
	buf_release(&resp);
	return j;
}

/*
 * An original whose key fits (1020 bytes) but whose preview's would not
 * (1025: "prew/thumb/" is five bytes longer than "photo/"): reported from
 * the listing, never read, exit 0. The stamps and a good original's
 * preview are made first, so that the second run has nothing else to
 * read or write.
 */
Test(failures, preview_key_too_long_is_never_read)
{
	struct th_run	 r;
	struct th_json	*j, *c;
	struct buf	 img;
	char		 rel[1100], endpoint[64], *argv[5], *cfg;
	size_t		 base;
	const char	*k;

	make_jpeg(64, 48, &img);
	put_bytes(key("photo/", "good.jpg"), &img, "image/jpeg");
	argv[0] = FPROXY;
	argv[1] = "--max-seconds";
	argv[2] = "300";
	argv[3] = (char *)th_env()->endpoint;
	argv[4] = NULL;
	F.proxy_port = th_start_server(argv, &F.proxy);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d",
	    F.proxy_port);
	cfg = s3_cfg(endpoint, 2, "[preset thumb]\nwidth = 32\n");
	j = generate(cfg, NULL, &r);
	th_expect_exit(&r, 0, "generate over the good original");
	cr_assert_eq(th_json_num(j, "presets.thumb.generated"), 1);
	th_json_free(j);
	th_run_release(&r);

	base = strlen(key("photo/", ""));
	cr_assert_lt(base, 1000);
	memset(rel, 'x', sizeof(rel));
	memcpy(rel, "long-", 5);
	memcpy(rel + (1020 - base) - 4, ".jpg", 5);
	k = key("photo/", rel);
	cr_assert_eq(strlen(k), 1020);
	cr_assert_eq(strlen(key("prew/thumb/", rel)), 1025);
	put_bytes(k, &img, "image/jpeg");

	th_json_free(counts(1));
	j = generate(cfg, NULL, &r);
	c = counts(0);
	th_expect_exit(&r, 0, "generate over a too-long preview key");
	cr_assert_eq(count_of(r.err.data, "longer than 1024 bytes"), 1,
	    "%.3000s", r.err.data);
	cr_assert_not_null(strstr(r.err.data, "long-xxxxxxxxxx"), "the key is "
	    "not named: %.3000s", r.err.data);
	cr_assert_eq(th_json_num(c, "GET"), 0, "%lld GETs: it was read",
	    th_json_num(c, "GET"));
	cr_assert_eq(th_json_num(c, "PUT"), 0, "%lld PUTs",
	    th_json_num(c, "PUT"));
	cr_assert_eq(th_json_num(j, "presets.thumb.generated"), 0);
	cr_assert_eq(th_json_num(j, "presets.thumb.failed"), 0);
	th_json_free(c);
	th_json_free(j);
	th_run_release(&r);
	buf_release(&img);
}
