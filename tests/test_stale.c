/*
 * stale: no preview stays fresh that was made from a picture, or with a
 * definition, that is no longer the current one (man page: generate,
 * FAILURES, CAVEATS, EXIT STATUS), end to end with the real binary.
 *
 *   1. Two overlapping runs with different definitions of one preset: the
 *      old one's previews that land after the new stamp are removed again
 *      and it exits 1; every fresh preview afterwards is the new width.
 *   2. Folder backend: an original replaced by a copy with an older mtime
 *      (cp -p, rsync -a) is remade.
 *   3. An original replaced by a zero-byte file or a text: its stale
 *      previews are removed, the run says so and exits 1; also those of
 *      the other presets when a run of one preset saw it first.
 *   4. An original replaced after prewctl read it and before its previews
 *      were written: they are removed again, the next run makes them from
 *      the new picture; one HEAD of the original per original made.
 *   5. A versioned bucket rolled back: plan shows the newer version's
 *      preview as fresh (the man page's CAVEAT); generate --verify remakes
 *      it, one HEAD per fresh preview.
 *   6. Known failures: marked, not read again, counted; --retry-failed
 *      tries again; a good replacement is made and the mark goes.
 *
 * Interleavings (1, 4) are driven, not slept into: tests/s3-fault-proxy
 * holds the preview PUTs (--hold-put) until the test creates a file, and
 * the test waits for the proxy to say it holds one, with a deadline. The
 * proxy also counts requests per key (GET and HEAD paths). Which picture
 * a preview was made from is told by its shape: the originals are one
 * landscape and one portrait photo, whose previews differ in height.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <vips/vips.h>

#include "helpers.h"

extern char **environ;

#define FPROXY		"tests/s3-fault-proxy"
#define PIC_L		"tests/data/batch/fujifilm-finepix-s1pro-gps.jpg"
#define PIC_P		"tests/data/batch/icc-a98-small.jpg"
#define TEXT_JPG	"tests/data/broken/text-named.jpg"
#define RUN_LIMIT	120.0
#define WAIT_LIMIT	60.0

/* Display sizes (tests/data/batch/SOURCES.md). */
#define PIC_L_W		600
#define PIC_L_H		400
#define PIC_P_W		290
#define PIC_P_H		442

/* More landscape originals, all wider than 96 (640x480 to 896x600). */
static const char *const extra_pics[] = {
	"tests/data/batch/sanyo-vpcg250-exif-org.jpg",
	"tests/data/batch/grayscale-noicc.jpg",
	"tests/data/batch/ricoh-rdc5300-exif-org.jpg",
	"tests/data/batch/fujifilm-finepix-s1pro-gps.jpg",
};

/* What a test made; teardown undoes it. Every test is a process. */
static struct {
	struct s3_client	*main;		/* the test bucket */
	char			 main_prefix[256];
	struct s3_client	*c;		/* where objects go now */
	const char		*prefix;	/* their prefix there */
	const char		*bucket;	/* NULL: the test bucket */
	char			 vbucket[64];	/* our own bucket */
	char			 tmp[64];
	char			 root[64];	/* the folder backend */
	struct th_proxy		 px;
	int			 nfiles;
} S;

/* ---- objects in the bucket ------------------------------------------- */

static const char *
key(const char *rel)
{
	static char	bufs[4][1024];
	static int	k;
	char		*o = bufs[k++ % 4];

	cr_assert((size_t)snprintf(o, sizeof(bufs[0]), "%s%s", S.prefix,
	    rel) < sizeof(bufs[0]));
	return o;
}

static void
put(const char *rel, const void *data, size_t len)
{
	struct s3_put_opts	po = { "image/jpeg", NULL, NULL, NULL, 0 };
	struct s3_error		err;
	enum s3_status		st;
	char			msg[256];

	st = s3_put(S.c, key(rel), data, len, &po, &err);
	cr_assert(st == S3_OK, "cannot put '%s': %s", key(rel),
	    s3_error_text(st, &err, msg, sizeof(msg)));
}

static void
put_fixture(const char *rel, const char *path)
{
	struct buf	b;

	buf_init(&b, BUF_NOMAX);
	th_read_file(path, &b);
	put(rel, b.data, b.len);
	buf_release(&b);
}

/* GET rel into b (and its head into hd); 0, or -1 when it is not there. */
static int
get(const char *rel, struct buf *b, struct s3_head *hd)
{
	struct s3_error	 err;
	enum s3_status	 st;
	char		 msg[256];

	buf_reset(b);
	st = s3_get(S.c, key(rel), 64 * 1024 * 1024, b, hd, &err);
	if (st == S3_ENOTFOUND)
		return -1;
	cr_assert(st == S3_OK, "cannot get '%s': %s", key(rel),
	    s3_error_text(st, &err, msg, sizeof(msg)));
	return 0;
}

static int
exists(const char *rel)
{
	struct s3_head	 hd;
	struct s3_error	 err;
	enum s3_status	 st;

	s3_head_init(&hd);
	st = s3_head(S.c, key(rel), &hd, &err);
	s3_head_release(&hd);
	cr_assert(st == S3_OK || st == S3_ENOTFOUND);
	return st == S3_OK;
}

/* The ETag of rel, without quotes, into out. */
static void
etag_of(const char *rel, char *out, size_t len)
{
	struct s3_head	 hd;
	struct s3_error	 err;

	s3_head_init(&hd);
	cr_assert(s3_head(S.c, key(rel), &hd, &err) == S3_OK, "no '%s'",
	    key(rel));
	snprintf(out, len, "%s", hd.etag);
	s3_head_release(&hd);
}

/* The x-amz-meta-<name> of a head ("" when absent), into out. */
static void
meta(const struct s3_head *hd, const char *name, char *out, size_t len)
{
	const char	*p = hd->meta.data;
	size_t		 n = strlen(name), l;

	*out = '\0';
	while (p != NULL && *p != '\0') {
		l = strcspn(p, "\n");
		if (l > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			snprintf(out, len, "%.*s", (int)(l - n - 1), p + n + 1);
			return;
		}
		p += l + (p[l] == '\n');
	}
}

/* ---- images ------------------------------------------------------------ */

/* Decode all of it; its size into *w, *h. */
static void
image_size(const char *what, const struct buf *b, int *w, int *h)
{
	VipsImage	*img;
	double		 avg;

	img = vips_image_new_from_buffer(b->data, b->len, "", "fail_on",
	    VIPS_FAIL_ON_TRUNCATED, NULL);
	cr_assert_not_null(img, "%s: cannot decode: %s", what,
	    vips_error_buffer());
	cr_assert(vips_avg(img, &avg, NULL) == 0, "%s: cannot decode all of "
	    "it: %s", what, vips_error_buffer());
	*w = vips_image_get_width(img);
	*h = vips_image_get_height(img);
	g_object_unref(img);
}

/* The size of a box-width preview of an ow x oh picture: w x h +-1? */
static int
is_preview_of(int w, int h, int box, int ow, int oh)
{
	double	eh = (double)box * oh / ow;

	return w == box && h >= eh - 1 && h <= eh + 1;
}

/* ---- files, configs, runs --------------------------------------------- */

static char *
tmp_path(const char *what)
{
	static char	paths[64][128];

	cr_assert_lt(S.nfiles, 64);
	snprintf(paths[S.nfiles], sizeof(paths[0]), "%s/%s-%d", S.tmp, what,
	    S.nfiles);
	return paths[S.nfiles++];
}

static void
file_write(const char *path, const void *data, size_t len)
{
	char	 dir[1024], *s;
	int	 fd;

	snprintf(dir, sizeof(dir), "%s", path);
	for (s = strchr(dir + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
		*s = '\0';
		cr_assert(mkdir(dir, 0755) == 0 || errno == EEXIST,
		    "mkdir %s: %s", dir, strerror(errno));
		*s = '/';
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
	cr_assert(len == 0 || write(fd, data, len) == (ssize_t)len);
	cr_assert(close(fd) == 0);
}

/* A config for the bucket now in use (source photo/, previews prew/). */
static const char *
config(const char *endpoint, const char *presets)
{
	const struct th_env	*e = th_env();
	struct buf		 b;
	char			*path = tmp_path("config");

	buf_init(&b, BUF_NOMAX);
	if (S.root[0] != '\0')
		buf_addf(&b, "[storage]\ndirectory = %s\nsource = photo/\n"
		    "previews = prew/\n\n%s", S.root, presets);
	else
		buf_addf(&b, "[storage]\nbucket = %s\nendpoint = %s\n"
		    "region = %s\npath_style = true\nsource = %sphoto/\n"
		    "previews = %sprew/\nretries = 2\ntimeout = 5\n\n%s",
		    S.bucket != NULL ? S.bucket : e->bucket, endpoint != NULL ?
		    endpoint : e->endpoint, e->region, S.prefix, S.prefix,
		    presets);
	file_write(path, b.data, b.len);
	buf_release(&b);
	return path;
}

static void
prewctl(struct th_run *r, const char *cfg, const char *const *args)
{
	const char	*argv[24];
	struct th_opts	 o = { NULL, RUN_LIMIT, NULL };
	size_t		 n = 0, i;

	argv[n++] = "-c";
	argv[n++] = cfg;
	for (i = 0; args[i] != NULL; i++) {
		cr_assert_lt(n, sizeof(argv) / sizeof(argv[0]) - 1);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	th_run(r, &o, argv);
}

#define PREWCTL(r, cfg, ...) prewctl((r), (cfg),			\
	(const char *const []){ __VA_ARGS__, NULL })

static struct th_json *
json_of(const struct th_run *r)
{
	return th_json_parse(r->out.data, r->out.len);
}

static int
has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

static int
count_of(const char *hay, const char *needle)
{
	int	n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay++;
	}
	return n;
}

/* ---- the fault proxy ---------------------------------------------------- */

static void
proxy_start(const char *const *opts)
{
	th_proxy_start(&S.px, opts);
}

static void
proxy_release(void)
{
	th_proxy_release(&S.px);
}

static struct th_json *
proxy_stats(void)
{
	return th_proxy_stats(&S.px);
}

static long long
proxy_count(const char *kind)
{
	struct th_json	*j = proxy_stats();
	char		 path[64];
	long long	 n;

	snprintf(path, sizeof(path), "requests.%s", kind);
	n = th_json_num(j, path);
	th_json_free(j);
	return n;
}

/* HEADs of objects, not of stamps (the guard's checks). */
static long long
heads(void)
{
	struct th_json		*j = proxy_stats();
	const struct th_json	*a = th_json_at(j, "head_paths");
	long long		 n = 0;
	size_t			 i;

	cr_assert_not_null(a);
	for (i = 0; i < th_json_len(a); i++)
		n += strstr(th_json_str(th_json_item(a, i), ""),
		    "/.prewctl-stamp-") == NULL;
	th_json_free(j);
	return n;
}

/* How often the proxy saw the key rel in its list ("head_paths"). */
static long long
proxy_paths(const char *list, const char *rel)
{
	char	path[1100];

	snprintf(path, sizeof(path), "/%s/%s", S.bucket != NULL ? S.bucket :
	    th_env()->bucket, key(rel));
	return th_proxy_paths(&S.px, list, path);
}

/* Wait until the proxy holds at least n PUTs, while pid still runs. */
static void
wait_held(long long n, pid_t pid)
{
	struct th_json	*j;
	double		 deadline = th_now() + WAIT_LIMIT;
	long long	 held;
	int		 st;

	for (;;) {
		j = proxy_stats();
		held = th_json_num(j, "held");
		th_json_free(j);
		if (held >= n)
			return;
		cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "the run ended "
		    "before the proxy held %lld of its PUTs", n);
		cr_assert(th_now() < deadline, "the proxy held no PUT of the "
		    "run within %.0f s", WAIT_LIMIT);
		th_pace();
	}
}

/* ---- setup -------------------------------------------------------------- */

static void
setup(void)
{
	cr_assert(VIPS_INIT("prewctl-tests") == 0);
	vips_cache_set_max(0);
	S.main = S.c = th_client();
	snprintf(S.main_prefix, sizeof(S.main_prefix), "%s",
	    th_prefix("stale"));
	S.prefix = S.main_prefix;
	memcpy(S.tmp, "/tmp/prewctl-stale-XXXXXX", 26);
	cr_assert_not_null(mkdtemp(S.tmp));
}

static void	vbucket_drop(void);

static void
teardown(void)
{
	th_proxy_stop(&S.px);
	if (S.vbucket[0] != '\0')
		vbucket_drop();
	if (S.c != NULL && S.c != S.main)
		s3_client_free(S.c);
	if (S.main != NULL) {
		th_delete_prefix(S.main, S.main_prefix);
		s3_client_free(S.main);
	}
	if (S.root[0] != '\0')
		th_rmtree(S.root);
	if (S.tmp[0] != '\0')
		th_rmtree(S.tmp);
}

TestSuite(stale, .init = setup, .fini = teardown, .timeout = 300);

/* ---- 1. overlapping runs with different definitions ---------------------- */

#define OV_SUB	3	/* under photo/sub/: the old run's */
#define OV_TOP	3	/* under photo/top/: only the new run's */

/* MD5 (hex) of the definition line of the stamp of preset name. */
static void
stamp_def_md5(const char *name, char out[33])
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 len, i;
	struct buf	 b;
	char		 rel[128];
	size_t		 n;

	buf_init(&b, BUF_NOMAX);
	snprintf(rel, sizeof(rel), "prew/.prewctl-stamp-%s", name);
	cr_assert(get(rel, &b, NULL) == 0, "no stamp of '%s'", name);
	n = strcspn(b.data, "\n");
	cr_assert(EVP_Digest(b.data, n, md, &len, EVP_md5(), NULL) == 1);
	for (i = 0; i < len && i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[32] = '\0';
	buf_release(&b);
}

/*
 * Every preview plan --keys calls fresh is the width of the definition
 * now in force, and says so in its metadata; returns how many are fresh.
 */
static size_t
check_fresh(const char *cfg, int width, const char *def_md5)
{
	const struct th_json	*keys, *k;
	struct th_run		 r;
	struct th_json		*j;
	struct s3_head		 hd;
	struct buf		 b;
	char			 had[64];
	size_t			 i, fresh = 0;
	int			 w, h;

	PREWCTL(&r, cfg, "plan", "--keys", "--json");
	th_expect_exit(&r, 0, "plan --keys --json");
	j = json_of(&r);
	keys = th_json_at(j, "keys");
	cr_assert_not_null(keys);
	buf_init(&b, BUF_NOMAX);
	for (i = 0; i < th_json_len(keys); i++) {
		const char *pk;

		k = th_json_item(keys, i);
		if (strcmp(th_json_str(k, "state"), "fresh") != 0)
			continue;
		fresh++;
		pk = th_json_str(k, "key");
		cr_assert(strncmp(pk, S.prefix, strlen(S.prefix)) == 0);
		s3_head_init(&hd);
		cr_assert(get(pk + strlen(S.prefix), &b, &hd) == 0,
		    "fresh '%s' is not there", pk);
		image_size(pk, &b, &w, &h);
		meta(&hd, "prewctl-preset", had, sizeof(had));
		s3_head_release(&hd);
		cr_expect_eq(w, width, "'%s' is fresh but %d wide, not %d: "
		    "made with the old definition", pk, w, width);
		cr_expect_str_eq(had, def_md5, "'%s' is fresh but its "
		    "prewctl-preset is '%s', not the definition in force "
		    "('%s')", pk, had, def_md5);
	}
	buf_release(&b);
	th_json_free(j);
	th_run_release(&r);
	return fresh;
}

Test(stale, overlapping_runs_with_different_definitions)
{
	const char	*cfg_old, *cfg_new, *out, *err;
	struct th_run	 r;
	struct th_json	*j;
	struct buf	 o, e;
	char		 rel[64], def_new[33];
	pid_t		 pid;
	int		 i, code;

	for (i = 0; i < OV_SUB; i++) {
		snprintf(rel, sizeof(rel), "photo/sub/%d.jpg", i);
		put_fixture(rel, extra_pics[i]);
	}
	for (i = 0; i < OV_TOP; i++) {
		snprintf(rel, sizeof(rel), "photo/top/%d.jpg", i);
		put_fixture(rel, extra_pics[i + 1]);
	}
	/* The old run's preview PUTs wait at the proxy; its stamp does not. */
	proxy_start((const char *const []){ "--hold-put", "/prew/small/",
	    NULL });
	cfg_old = config(S.px.endpoint, "[preset small]\nwidth = 64\n");
	cfg_new = config(NULL, "[preset small]\nwidth = 96\n");

	out = tmp_path("out");
	err = tmp_path("err");
	pid = th_spawn_prewctl((const char *const []){ "-c", cfg_old,
	    "generate", "-j", "2", "--prefix", "sub", NULL }, NULL, out, err);
	/* The old run has made a preview and is writing it. */
	wait_held(1, pid);

	/* Meanwhile the new definition: stamp, previews, done. */
	PREWCTL(&r, cfg_new, "generate", "-j", "2");
	th_expect_exit(&r, 0, "the run with the new definition");
	th_run_release(&r);
	stamp_def_md5("small", def_new);

	/* The old run's previews now land, after the new stamp. */
	proxy_release();
	code = th_reap(pid, RUN_LIMIT, "the run with the old definition");
	buf_init(&o, BUF_NOMAX);
	buf_init(&e, BUF_NOMAX);
	th_read_file(out, &o);
	th_read_file(err, &e);
	cr_log_info("old run: exit %d\nstdout: %s\nstderr: %s", code, o.data,
	    e.data);
	cr_expect(has(e.data, "changed on storage by another run"), "the old "
	    "run does not say its preset was changed by another run: %s",
	    e.data);
	cr_expect_eq(code, 1, "the old run exits %d, not 1, though its preset "
	    "was changed by another run while it wrote (man page, EXIT "
	    "STATUS 1)\nstderr: %s", code, e.data);
	buf_release(&o);
	buf_release(&e);
	j = proxy_stats();
	cr_expect_geq(th_json_num(j, "held_total"), 1);
	cr_log_info("the old run wrote %zu previews, %lld of them held while "
	    "the new run ran", th_json_len(th_json_at(j, "put_paths")) - 1,
	    th_json_num(j, "held_total"));
	th_json_free(j);

	/* No preview of width 64 is fresh; those the old run never touched
	 * are still the new run's. */
	cr_expect_geq(check_fresh(cfg_new, 96, def_new), OV_TOP);

	/* The next run with the new definition makes what was removed. */
	PREWCTL(&r, cfg_new, "generate", "-j", "2");
	th_expect_exit(&r, 0, "the next run");
	th_run_release(&r);
	cr_expect_eq(check_fresh(cfg_new, 96, def_new), OV_SUB + OV_TOP);
}

/* ---- 2. folder: replaced by an older copy ------------------------------ */

Test(stale, folder_original_replaced_by_older_copy_is_remade)
{
	struct timespec	 old[2] = { { 978307200, 0 }, { 978307200, 0 } };
	struct th_run	 r;
	struct th_json	*j;
	struct buf	 b;
	const char	*cfg;
	char		 orig[128], aside[128], prev[128];
	int		 w, h;

	memcpy(S.root, "/tmp/prewctl-stale-dir-XXXXXX", 30);
	cr_assert_not_null(mkdtemp(S.root));
	snprintf(orig, sizeof(orig), "%s/photo/a.jpg", S.root);
	snprintf(aside, sizeof(aside), "%s/aside.jpg", S.root);
	snprintf(prev, sizeof(prev), "%s/prew/small/a.jpg", S.root);
	buf_init(&b, BUF_NOMAX);
	th_read_file(PIC_L, &b);
	file_write(orig, b.data, b.len);
	cfg = config(NULL, "[preset small]\nwidth = 64\n");
	PREWCTL(&r, cfg, "generate");
	th_expect_exit(&r, 0, "generate");
	th_run_release(&r);
	buf_reset(&b);
	th_read_file(prev, &b);
	image_size(prev, &b, &w, &h);
	cr_assert(is_preview_of(w, h, 64, PIC_L_W, PIC_L_H), "%dx%d", w, h);

	/* As cp -p and rsync -a do: written aside, dated 2001, renamed over. */
	buf_reset(&b);
	th_read_file(PIC_P, &b);
	file_write(aside, b.data, b.len);
	cr_assert(utimensat(AT_FDCWD, aside, old, 0) == 0);
	cr_assert(rename(aside, orig) == 0);

	PREWCTL(&r, cfg, "generate", "--json");
	th_expect_exit(&r, 0, "generate after the older copy");
	j = json_of(&r);
	cr_expect_eq(th_json_num(j, "presets.small.generated"), 1, "the "
	    "original replaced by an older copy was not remade");
	th_json_free(j);
	th_run_release(&r);
	buf_reset(&b);
	th_read_file(prev, &b);
	image_size(prev, &b, &w, &h);
	cr_expect(is_preview_of(w, h, 64, PIC_P_W, PIC_P_H), "the preview is "
	    "%dx%d: still the old picture's", w, h);
	buf_release(&b);
}

/* ---- 3. replaced by a zero-byte file and by a text -------------------- */

static const char presets2[] =
    "[preset small]\nwidth = 64\n\n[preset tiny]\nwidth = 32\nformat = png\n";
static const char *const names2[] = { "small", "tiny" };

Test(stale, original_replaced_by_non_image_loses_its_previews)
{
	static const char *const gone[] = { "zero.jpg", "text.jpg" };
	struct th_run	 r;
	struct th_json	*j;
	struct buf	 b;
	const char	*cfg;
	char		 rel[128], path[64], msg[256];
	size_t		 g, p;

	put_fixture("photo/zero.jpg", PIC_L);
	put_fixture("photo/text.jpg", PIC_P);
	put_fixture("photo/kept.jpg", PIC_L);
	cfg = config(NULL, presets2);
	PREWCTL(&r, cfg, "generate", "-j", "2");
	th_expect_exit(&r, 0, "generate");
	th_run_release(&r);
	for (g = 0; g < 2; g++)
		for (p = 0; p < 2; p++) {
			snprintf(rel, sizeof(rel), "prew/%s/%s", names2[p],
			    gone[g]);
			cr_assert(exists(rel));
		}

	/* A takedown: the pictures become a zero-byte file and a text. */
	put("photo/zero.jpg", "", 0);
	buf_init(&b, BUF_NOMAX);
	th_read_file(TEXT_JPG, &b);
	put("photo/text.jpg", b.data, b.len);
	buf_release(&b);

	PREWCTL(&r, cfg, "generate", "-j", "2", "--json");
	cr_log_info("generate: exit %d: %s", r.status, r.err.data);
	th_expect_exit(&r, 1, "generate after the takedown");
	j = json_of(&r);
	for (p = 0; p < 2; p++) {
		snprintf(path, sizeof(path), "presets.%s.removed", names2[p]);
		cr_expect_eq(th_json_num(j, path), 2, "%s", path);
	}
	th_json_free(j);
	cr_expect_eq(count_of(r.err.data, "its stale preview was removed"), 4,
	    "stderr does not say each stale preview was removed: %s",
	    r.err.data);
	for (g = 0; g < 2; g++)
		for (p = 0; p < 2; p++) {
			snprintf(rel, sizeof(rel), "photo/%s", gone[g]);
			snprintf(msg, sizeof(msg), "preview '%s' of '%s'",
			    names2[p], key(rel));
			cr_expect(has(r.err.data, msg), "stderr does not name "
			    "%s: %s", msg, r.err.data);
			snprintf(rel, sizeof(rel), "prew/%s/%s", names2[p],
			    gone[g]);
			cr_expect(!exists(rel), "'%s' is still there: the "
			    "taken down picture's preview", rel);
			snprintf(rel, sizeof(rel), "prew/%s/kept.jpg",
			    names2[p]);
			cr_expect(exists(rel));
		}
	th_run_release(&r);

	PREWCTL(&r, cfg, "plan", "--json");
	th_expect_exit(&r, 0, "plan after the takedown");
	j = json_of(&r);
	for (p = 0; p < 2; p++) {
		long long	 n[4];
		static const char *const st[] = { "missing", "known-failure",
		    "fresh", "stale-original" };
		size_t		 s;

		for (s = 0; s < 4; s++) {
			snprintf(path, sizeof(path), "presets.%s.%s",
			    names2[p], st[s]);
			n[s] = th_json_num(j, path);
		}
		cr_expect_eq(n[0] + n[1], 2, "%s: %lld missing + %lld known "
		    "failures, not 2", names2[p], n[0], n[1]);
		cr_expect_eq(n[2], 1, "%s: %lld fresh, only kept.jpg is",
		    names2[p], n[2]);
		cr_expect_eq(n[3], 0, "%s: %lld stale", names2[p], n[3]);
	}
	th_json_free(j);
	th_run_release(&r);
}

/*
 * The same takedown seen first by a run of one preset: that run removes
 * its own stale preview and marks the original as failed. The next full
 * run must still remove the other preset's preview of the taken-down
 * picture (man page, FAILURES: "a picture taken down is not left public
 * under its preview's key"), not take it for a known failure and keep it.
 */
Test(stale, takedown_seen_by_one_preset_leaves_no_other_preview)
{
	struct th_run	 r;
	struct th_json	*j;
	const char	*cfg;

	put_fixture("photo/z.jpg", PIC_L);
	cfg = config(NULL, presets2);
	PREWCTL(&r, cfg, "generate");
	th_expect_exit(&r, 0, "generate");
	th_run_release(&r);
	cr_assert(exists("prew/small/z.jpg") && exists("prew/tiny/z.jpg"));

	put("photo/z.jpg", "", 0);
	PREWCTL(&r, cfg, "generate", "--preset", "small");
	th_expect_exit(&r, 1, "generate --preset small after the takedown");
	th_run_release(&r);
	cr_expect(!exists("prew/small/z.jpg"));

	PREWCTL(&r, cfg, "generate", "--json");
	cr_log_info("generate: exit %d: %s\n%s", r.status, r.err.data,
	    r.out.data);
	j = json_of(&r);
	cr_expect_eq(th_json_num(j, "presets.tiny.known-failure"), 0, "the "
	    "stale preview of 'tiny' is taken for a known failure and kept");
	th_json_free(j);
	th_run_release(&r);
	cr_expect(!exists("prew/tiny/z.jpg"), "'tiny' still shows the taken "
	    "down picture after a full generate");
}

/* ---- 4. replaced between prewctl's GET and its PUT --------------------- */

static const char *const others[] = { "a.jpg", "b.jpg" };

Test(stale, original_replaced_while_its_previews_are_made)
{
	const char	*cfg, *out, *err;
	struct th_run	 r;
	struct th_json	*j;
	struct s3_head	 hd;
	struct buf	 b, e;
	char		 rel[128], newtag[300], had[300], path[64];
	long long	 head0, put0;
	size_t		 p, i;
	pid_t		 pid;
	int		 code, w, h;

	put_fixture("photo/victim.jpg", PIC_L);
	for (i = 0; i < 2; i++) {
		snprintf(rel, sizeof(rel), "photo/%s", others[i]);
		put_fixture(rel, extra_pics[i]);
	}
	proxy_start((const char *const []){ "--hold-put", "/victim.jpg",
	    NULL });
	cfg = config(S.px.endpoint, presets2);
	out = tmp_path("out");
	err = tmp_path("err");
	pid = th_spawn_prewctl((const char *const []){ "-c", cfg, "generate",
	    "-j", "2", NULL }, NULL, out, err);
	/* prewctl has read victim.jpg and made its previews: replace it. */
	wait_held(1, pid);
	put_fixture("photo/victim.jpg", PIC_P);
	etag_of("photo/victim.jpg", newtag, sizeof(newtag));
	proxy_release();
	code = th_reap(pid, RUN_LIMIT, "generate");
	buf_init(&e, BUF_NOMAX);
	th_read_file(err, &e);
	cr_log_info("generate: exit %d: %s", code, e.data);
	cr_expect_eq(code, 0, "generate: exit %d: %s", code, e.data);
	cr_expect(has(e.data, "changed while its previews were made"),
	    "stderr does not say the original changed: %s", e.data);
	buf_release(&e);

	/* The old picture's previews did not stay. */
	buf_init(&b, BUF_NOMAX);
	for (p = 0; p < 2; p++) {
		snprintf(rel, sizeof(rel), "prew/%s/victim.jpg", names2[p]);
		s3_head_init(&hd);
		if (get(rel, &b, &hd) == 0) {
			image_size(rel, &b, &w, &h);
			meta(&hd, "prewctl-source-etag", had, sizeof(had));
			cr_expect(is_preview_of(w, h, p == 0 ? 64 : 32,
			    PIC_P_W, PIC_P_H), "'%s' is %dx%d: made from the "
			    "replaced picture", rel, w, h);
			cr_expect_str_eq(had, newtag, "'%s' was made from "
			    "'%s', not the current original", rel, had);
		}
		s3_head_release(&hd);
	}
	/* One HEAD of each original made, after its previews. */
	cr_expect_eq(heads(), 3, "%lld HEADs for 3 originals",
	    heads());
	cr_expect_eq(proxy_paths("head_paths", "photo/victim.jpg"), 1);
	for (i = 0; i < 2; i++) {
		snprintf(rel, sizeof(rel), "photo/%s", others[i]);
		cr_expect_eq(proxy_paths("head_paths", rel), 1, "HEADs of %s",
		    rel);
	}

	/* The next run makes them from the new picture: one HEAD. */
	head0 = heads();
	PREWCTL(&r, cfg, "generate", "--json");
	th_expect_exit(&r, 0, "the next generate");
	j = json_of(&r);
	for (p = 0; p < 2; p++) {
		snprintf(path, sizeof(path), "presets.%s.generated", names2[p]);
		cr_expect_eq(th_json_num(j, path), 1, "%s", path);
	}
	th_json_free(j);
	th_run_release(&r);
	cr_expect_eq(heads() - head0, 1);
	for (p = 0; p < 2; p++) {
		snprintf(rel, sizeof(rel), "prew/%s/victim.jpg", names2[p]);
		s3_head_init(&hd);
		cr_assert(get(rel, &b, &hd) == 0, "the next run did not make "
		    "'%s'", rel);
		image_size(rel, &b, &w, &h);
		meta(&hd, "prewctl-source-etag", had, sizeof(had));
		s3_head_release(&hd);
		cr_expect(is_preview_of(w, h, p == 0 ? 64 : 32, PIC_P_W,
		    PIC_P_H), "'%s' is %dx%d", rel, w, h);
		cr_expect_str_eq(had, newtag);
	}
	buf_release(&b);

	/* Nothing to do: no HEAD, no PUT. */
	head0 = heads();
	put0 = proxy_count("PUT");
	PREWCTL(&r, cfg, "generate");
	th_expect_exit(&r, 0, "a generate with nothing to do");
	th_run_release(&r);
	cr_expect_eq(heads() - head0, 0);
	cr_expect_eq(proxy_count("PUT") - put0, 0);
}

/* ---- 5. a versioned bucket rolled back --------------------------------- */

/*
 * curl signs what the project's client cannot express (a bucket, its
 * versioning, one version). The status code, and the response headers
 * into hdrs when not NULL.
 */
static long
curl_s3(const char *method, const char *path, const char *body_file,
    struct buf *hdrs, struct buf *body)
{
	const struct th_env	*e = th_env();
	char			 sigv4[64], user[512], url[1200];
	char			 hfile[128], bfile[128], cfile[128];
	const char		*argv[32];
	posix_spawn_file_actions_t fa;
	struct buf		 code;
	size_t			 n = 0;
	pid_t			 pid;
	long			 status;
	int			 st;

	/* Rewritten by each call. */
	snprintf(hfile, sizeof(hfile), "%s/curl-headers", S.tmp);
	snprintf(bfile, sizeof(bfile), "%s/curl-body", S.tmp);
	snprintf(cfile, sizeof(cfile), "%s/curl-code", S.tmp);
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", e->region);
	snprintf(user, sizeof(user), "%s:%s", e->access_key, e->secret_key);
	snprintf(url, sizeof(url), "%s%s", e->endpoint, path);
	argv[n++] = "curl";
	argv[n++] = "-sS";
	argv[n++] = "--noproxy";
	argv[n++] = "*";
	argv[n++] = "--max-time";
	argv[n++] = "30";
	argv[n++] = "--aws-sigv4";
	argv[n++] = sigv4;
	argv[n++] = "--user";
	argv[n++] = user;
	argv[n++] = "-H";
	argv[n++] = "x-amz-content-sha256: UNSIGNED-PAYLOAD";
	argv[n++] = "-X";
	argv[n++] = method;
	argv[n++] = "-D";
	argv[n++] = hfile;
	argv[n++] = "-o";
	argv[n++] = bfile;
	argv[n++] = "-w";
	argv[n++] = "%{http_code}";
	if (body_file != NULL) {
		static char	data[200];

		snprintf(data, sizeof(data), "@%s", body_file);
		argv[n++] = "--data-binary";
		argv[n++] = data;
		argv[n++] = "-H";
		argv[n++] = "Content-Type: application/octet-stream";
	}
	argv[n++] = url;
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, cfile, O_WRONLY | O_CREAT |
	    O_TRUNC, 0600);
	cr_assert(posix_spawnp(&pid, "curl", &fa, NULL, (char *const *)argv,
	    environ) == 0, "cannot run curl");
	posix_spawn_file_actions_destroy(&fa);
	st = th_reap(pid, 60, "curl");
	cr_assert_eq(st, 0, "curl %s %s: exit %d", method, path, st);
	buf_init(&code, BUF_NOMAX);
	th_read_file(cfile, &code);
	status = strtol(code.data, NULL, 10);
	buf_release(&code);
	if (hdrs != NULL)
		th_read_file(hfile, hdrs);
	if (body != NULL)
		th_read_file(bfile, body);
	return status;
}

/* A response header's value (case-insensitive name) into out. */
static void
header(const struct buf *hdrs, const char *name, char *out, size_t len)
{
	const char	*p = hdrs->data;
	size_t		 n = strlen(name), l;

	*out = '\0';
	while (*p != '\0') {
		l = strcspn(p, "\r\n");
		if (l > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1;

			while (*v == ' ')
				v++;
			snprintf(out, len, "%.*s", (int)(l - (size_t)(v - p)),
			    v);
		}
		p += l;
		while (*p == '\r' || *p == '\n')
			p++;
	}
}

/* PUT a local file as a version of key; its version id and ETag. */
static void
put_version(const char *k, const char *file, char *vid, size_t vlen,
    char *etag, size_t elen)
{
	struct buf	h;
	char		path[600], raw[300];

	buf_init(&h, BUF_NOMAX);
	snprintf(path, sizeof(path), "/%s/%s", S.vbucket, k);
	cr_assert_eq(curl_s3("PUT", path, file, &h, NULL), 200, "PUT %s: %s",
	    path, h.data);
	header(&h, "x-amz-version-id", vid, vlen);
	header(&h, "ETag", raw, sizeof(raw));
	cr_assert(vid[0] != '\0', "no version id: is the bucket versioned? %s",
	    h.data);
	/* Without its quotes, as listings and prewctl's metadata have it. */
	snprintf(etag, elen, "%.*s", (int)strcspn(raw + (raw[0] == '"'), "\""),
	    raw + (raw[0] == '"'));
	buf_release(&h);
}

/* Every version and delete marker of our bucket, then the bucket. */
static void
vbucket_drop(void)
{
	struct buf	 body;
	const char	*p, *kp, *ke, *vp, *ve;
	char		 path[1400];
	int		 round;

	buf_init(&body, BUF_NOMAX);
	for (round = 0; round < 5; round++) {
		buf_reset(&body);
		snprintf(path, sizeof(path), "/%s?versions=", S.vbucket);
		if (curl_s3("GET", path, NULL, NULL, &body) != 200)
			break;
		if (strstr(body.data, "<Key>") == NULL)
			break;
		for (p = body.data; (kp = strstr(p, "<Key>")) != NULL;
		    p = ve) {
			kp += 5;
			ke = strstr(kp, "</Key>");
			vp = strstr(kp, "<VersionId>");
			if (ke == NULL || vp == NULL)
				break;
			vp += 11;
			if ((ve = strstr(vp, "</VersionId>")) == NULL)
				break;
			snprintf(path, sizeof(path), "/%s/%.*s?versionId=%.*s",
			    S.vbucket, (int)(ke - kp), kp, (int)(ve - vp), vp);
			(void)curl_s3("DELETE", path, NULL, NULL, NULL);
		}
	}
	snprintf(path, sizeof(path), "/%s", S.vbucket);
	(void)curl_s3("DELETE", path, NULL, NULL, NULL);
	buf_release(&body);
	S.vbucket[0] = '\0';
}

/* A versioned bucket of our own, and a client on it. */
static void
vbucket_make(void)
{
	static const char	 versioning[] = "<VersioningConfiguration "
	    "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	    "<Status>Enabled</Status></VersioningConfiguration>";
	char			 path[128], *vfile;
	struct timespec		 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(S.vbucket, sizeof(S.vbucket), "prewctl-ver-%ld-%lld",
	    (long)getpid(), (long long)ts.tv_nsec);
	snprintf(path, sizeof(path), "/%s", S.vbucket);
	cr_assert_eq(curl_s3("PUT", path, NULL, NULL, NULL), 200,
	    "cannot make the bucket %s", S.vbucket);
	vfile = tmp_path("versioning");
	file_write(vfile, versioning, strlen(versioning));
	/* "versioning=": curl signs an empty value as S3 wants it. */
	snprintf(path, sizeof(path), "/%s?versioning=", S.vbucket);
	cr_assert_eq(curl_s3("PUT", path, vfile, NULL, NULL), 200,
	    "cannot turn versioning on");

	S.c = th_client_for(S.vbucket);
	S.prefix = "";
	S.bucket = S.vbucket;
}

Test(stale, verify_finds_a_rolled_back_version)
{
	static const char *const plain[] = { "s1.jpg", "s2.jpg" };
	struct th_run	 r;
	struct th_json	*j;
	struct s3_head	 hd;
	struct buf	 b;
	const char	*cfg;
	char		 v1[200], e1[100], v2[200], e2[100], path[600];
	char		 rel[128], had[300];
	long long	 head0, put0, rhead0;
	size_t		 p, i;
	int		 w, h;

	vbucket_make();
	put_version("photo/r.jpg", PIC_L, v1, sizeof(v1), e1, sizeof(e1));
	put_version("photo/r.jpg", PIC_P, v2, sizeof(v2), e2, sizeof(e2));
	cr_assert_str_neq(v1, v2);
	for (i = 0; i < 2; i++) {
		snprintf(rel, sizeof(rel), "photo/%s", plain[i]);
		put_fixture(rel, extra_pics[i]);
	}
	proxy_start(NULL);
	cfg = config(S.px.endpoint, presets2);
	/*
	 * New presets: generate writes their stamps and waits out that
	 * second, so every preview is in a later second than both versions.
	 */
	PREWCTL(&r, cfg, "generate", "-j", "2");
	th_expect_exit(&r, 0, "generate over v2");
	th_run_release(&r);

	/* Roll back: v2 deleted, v1 (older LastModified) current again. */
	snprintf(path, sizeof(path), "/%s/photo/r.jpg?versionId=%s", S.vbucket,
	    v2);
	cr_assert_eq(curl_s3("DELETE", path, NULL, NULL, NULL), 204);
	etag_of("photo/r.jpg", had, sizeof(had));
	cr_assert_str_eq(had, e1, "v1 is not current after the rollback");

	/*
	 * The CAVEAT of the man page: a listing cannot tell. The preview of
	 * v2 is newer than v1, so plan calls it fresh, and generate alone
	 * makes nothing.
	 */
	PREWCTL(&r, cfg, "plan", "--json");
	th_expect_exit(&r, 0, "plan after the rollback");
	j = json_of(&r);
	for (p = 0; p < 2; p++) {
		snprintf(path, sizeof(path), "presets.%s.fresh", names2[p]);
		cr_expect_eq(th_json_num(j, path), 3, "%s", path);
	}
	th_json_free(j);
	th_run_release(&r);
	put0 = proxy_count("PUT");
	PREWCTL(&r, cfg, "generate", "--json");
	th_expect_exit(&r, 0, "generate after the rollback");
	j = json_of(&r);
	for (p = 0; p < 2; p++) {
		snprintf(path, sizeof(path), "presets.%s.generated", names2[p]);
		cr_expect_eq(th_json_num(j, path), 0, "%s", path);
	}
	th_json_free(j);
	th_run_release(&r);
	cr_expect_eq(proxy_count("PUT") - put0, 0);

	/* --verify: one HEAD per fresh preview finds it. */
	rhead0 = proxy_paths("head_paths", "photo/r.jpg");
	for (p = 0; p < 2; p++)
		for (i = 0; i < 2; i++) {
			snprintf(rel, sizeof(rel), "prew/%s/%s", names2[p],
			    plain[i]);
			cr_assert_eq(proxy_paths("head_paths", rel), 0);
		}
	head0 = heads();
	put0 = proxy_count("PUT");
	PREWCTL(&r, cfg, "generate", "--verify", "--json");
	th_expect_exit(&r, 0, "generate --verify");
	j = json_of(&r);
	for (p = 0; p < 2; p++) {
		snprintf(path, sizeof(path), "presets.%s.generated", names2[p]);
		cr_expect_eq(th_json_num(j, path), 1, "%s", path);
		snprintf(path, sizeof(path), "presets.%s.verified", names2[p]);
		cr_expect_eq(th_json_num(j, path), 2, "%s", path);
	}
	th_json_free(j);
	th_run_release(&r);
	/* Six fresh previews, and the original of the one remade. */
	cr_expect_eq(heads() - head0, 6 + 1, "%lld HEADs",
	    heads() - head0);
	cr_expect_eq(proxy_count("PUT") - put0, 2, "%lld PUTs",
	    proxy_count("PUT") - put0);
	cr_expect_eq(proxy_paths("head_paths", "photo/r.jpg") - rhead0, 1);
	for (p = 0; p < 2; p++)
		for (i = 0; i < 2; i++) {
			snprintf(rel, sizeof(rel), "prew/%s/%s", names2[p],
			    plain[i]);
			cr_expect_eq(proxy_paths("head_paths", rel), 1,
			    "HEADs of %s", rel);
		}

	buf_init(&b, BUF_NOMAX);
	for (p = 0; p < 2; p++) {
		snprintf(rel, sizeof(rel), "prew/%s/r.jpg", names2[p]);
		s3_head_init(&hd);
		cr_assert(get(rel, &b, &hd) == 0);
		image_size(rel, &b, &w, &h);
		meta(&hd, "prewctl-source-etag", had, sizeof(had));
		s3_head_release(&hd);
		cr_expect(is_preview_of(w, h, p == 0 ? 64 : 32, PIC_L_W,
		    PIC_L_H), "'%s' is %dx%d: still v2's picture", rel, w, h);
		cr_expect_str_eq(had, e1, "'%s' says it was made from '%s', "
		    "not v1 '%s'", rel, had, e1);
	}
	buf_release(&b);
	(void)e2;
}

/* ---- 6. known failures ----------------------------------------------- */

Test(stale, known_failure_is_not_read_again)
{
	struct th_run	 r;
	struct th_json	*j;
	const char	*cfg;
	long long	 get0, put0;

	put("photo/zero.jpg", "", 0);
	put_fixture("photo/ok.jpg", PIC_L);
	proxy_start(NULL);
	cfg = config(S.px.endpoint, "[preset small]\nwidth = 64\n");

	PREWCTL(&r, cfg, "generate", "--json");
	th_expect_exit(&r, 1, "first generate over a zero-byte original");
	j = json_of(&r);
	cr_expect_eq(th_json_num(j, "presets.small.failed"), 1);
	cr_expect_str_eq(th_json_str(j, "failures[0].key"),
	    key("photo/zero.jpg"));
	th_json_free(j);
	th_run_release(&r);
	cr_assert(exists("prew/.prewctl-failed/small/zero.jpg"), "no failure mark");
	cr_expect(exists("prew/small/ok.jpg"));

	/* Known: listed and counted, not read, not failing. */
	get0 = proxy_count("GET");
	put0 = proxy_count("PUT");
	PREWCTL(&r, cfg, "generate", "--json");
	th_expect_exit(&r, 0, "second generate");
	j = json_of(&r);
	cr_expect_eq(th_json_num(j, "presets.small.known-failure"), 1);
	cr_expect_eq(th_json_num(j, "presets.small.failed"), 0);
	cr_expect_eq(th_json_num(j, "presets.small.generated"), 0);
	th_json_free(j);
	th_run_release(&r);
	cr_expect_eq(proxy_count("GET") - get0, 0, "the known failure was "
	    "read again");
	cr_expect_eq(proxy_count("PUT") - put0, 0);
	cr_expect_eq(proxy_paths("get_paths", "photo/zero.jpg"), 1, "zero.jpg "
	    "was read more than by the first run");

	PREWCTL(&r, cfg, "generate", "--retry-failed", "--json");
	th_expect_exit(&r, 1, "generate --retry-failed");
	j = json_of(&r);
	cr_expect_eq(th_json_num(j, "presets.small.failed"), 1);
	th_json_free(j);
	th_run_release(&r);
	cr_expect_eq(proxy_paths("get_paths", "photo/zero.jpg"), 2);
	cr_expect(exists("prew/.prewctl-failed/small/zero.jpg"));

	/* Fixed: made, and the mark goes. */
	put_fixture("photo/zero.jpg", PIC_P);
	PREWCTL(&r, cfg, "generate", "--json");
	th_expect_exit(&r, 0, "generate after the fix");
	j = json_of(&r);
	cr_expect_eq(th_json_num(j, "presets.small.generated"), 1);
	cr_expect_eq(th_json_num(j, "presets.small.known-failure"), 0);
	th_json_free(j);
	th_run_release(&r);
	cr_expect(exists("prew/small/zero.jpg"), "the fixed original has no "
	    "preview");
	cr_expect(!exists("prew/.prewctl-failed/small/zero.jpg"), "the mark of the "
	    "fixed original is still there");
}
