/*
 * scale: beyond one machine (issue 11), end to end against the real S3
 * server: --shard, --metrics-file, --time-limit, and the command lines of
 * contrib/kubernetes' Indexed Job.
 *
 * The runs go through tests/s3-fault-proxy, which lists the key of every
 * PUT it forwards, so "each preview is written exactly once across all
 * shards" is counted on the wire, not taken from what prewctl says.
 *
 * Where the expectations come from:
 *   - which shard owns a key: the man page's SHARDS section, FNV-1a 64 of
 *     the key under the source, modulo N; FNV's offset basis and prime and
 *     the vector "a" -> 0xaf63dc4c8601ec8c are from the FNV reference
 *     (isthe.com/chongo/tech/comp/fnv), not from prewctl's code;
 *   - what N shards together do: what one unsharded run does (the plan and
 *     purge of the same bucket, run here);
 *   - the metrics file: Prometheus' text format as prometheus_client's own
 *     parser reads it (tests/prom-parse), the names the issue lists.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "helpers.h"

#define PIC		"tests/data/batch/progressive-orient6.jpg"
#define RUN_LIMIT	300.0		/* seconds, per run */
#define MAX_SHARDS	8

static const char *const folders[] = { "", "a/", "a/b/", "c/", "c/d/e/",
	"f-g/" };
#define NFOLDERS	(sizeof(folders) / sizeof(folders[0]))

#define PRESETS_SM \
	"[preset s]\nwidth = 48\n\n[preset m]\nwidth = 96\nformat = webp\n"
#define PRESETS_SM2 \
	"[preset s]\nwidth = 48\n\n[preset m]\nwidth = 80\nformat = webp\n"

static struct {
	struct s3_client	*c;
	char			 prefix[256];
	char			 tmp[64];
	char			 root[64];	/* the folder backend */
	struct th_proxy		 px;
	int			 nfiles;
} T;

/* ---- files and keys ---------------------------------------------------- */

static const char *
tmp_path(const char *what)
{
	static char	paths[64][128];

	cr_assert_lt(T.nfiles, 64);
	snprintf(paths[T.nfiles], sizeof(paths[0]), "%s/%s-%d", T.tmp, what,
	    T.nfiles);
	return paths[T.nfiles++];
}

static void
file_write(const char *path, const void *data, size_t len)
{
	FILE	*f = fopen(path, "wb");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert(len == 0 || fwrite(data, 1, len, f) == len);
	cr_assert(fclose(f) == 0);
}

/* The i-th original's key under the source. */
static const char *
rel_of(int i)
{
	static char	bufs[4][128];
	static int	k;
	char		*o = bufs[k++ % 4];

	snprintf(o, sizeof(bufs[0]), "%sp%03d.jpg", folders[i % NFOLDERS], i);
	return o;
}

static const char *
key(const char *part, const char *rel)
{
	static char	bufs[4][1024];
	static int	k;
	char		*o = bufs[k++ % 4];

	snprintf(o, sizeof(bufs[0]), "%s%s%s", T.prefix, part, rel);
	return o;
}

/* The path the proxy lists for a key of the test bucket. */
static const char *
wire(const char *part, const char *rel)
{
	static char	bufs[2][1100];
	static int	k;
	char		*o = bufs[k++ % 2];

	snprintf(o, sizeof(bufs[0]), "/%s/%s", th_env()->bucket,
	    key(part, rel));
	return o;
}

static void
put_originals(int from, int to)
{
	int	i;

	for (i = from; i < to; i++)
		th_put_file(T.c, key("photo/", rel_of(i)), PIC);
}

/* A config for the test bucket (through endpoint), or for T.root. */
static const char *
config(const char *endpoint, const char *presets)
{
	const struct th_env	*e = th_env();
	const char		*path = tmp_path("config");
	struct buf		 b;

	buf_init(&b, BUF_NOMAX);
	if (endpoint == NULL)
		buf_addf(&b, "[storage]\ndirectory = %s\nsource = photo/\n"
		    "previews = prew/\n\n%s", T.root, presets);
	else
		buf_addf(&b, "[storage]\nbucket = %s\nendpoint = %s\n"
		    "region = %s\npath_style = true\nsource = %sphoto/\n"
		    "previews = %sprew/\nretries = 2\ntimeout = 10\n\n%s",
		    e->bucket, endpoint, e->region, T.prefix, T.prefix,
		    presets);
	file_write(path, b.data, b.len);
	buf_release(&b);
	return path;
}

/* ---- runs --------------------------------------------------------------- */

static void
prewctl(struct th_run *r, const char *const *args)
{
	struct th_opts	o = { NULL, RUN_LIMIT, NULL };

	th_run(r, &o, args);
}

#define PREWCTL(r, ...) prewctl((r), (const char *const []){ __VA_ARGS__, NULL })

/*
 * Run "prewctl -c cfg CMD --shard i/n --json ARGS" for every i at once
 * and wait for all; each must exit 0. Their JSON objects into out[i].
 */
static void
shards(const char *cfg, const char *cmd, int n, const char *const *more,
    struct th_json **out)
{
	const char	*args[16], *outp[MAX_SHARDS], *errp[MAX_SHARDS];
	char		 shard[MAX_SHARDS][16];
	pid_t		 pid[MAX_SHARDS];
	int		 i, k, m, code[MAX_SHARDS];

	cr_assert_leq(n, MAX_SHARDS);
	for (i = 0; i < n; i++) {
		k = 0;
		args[k++] = "-c";
		args[k++] = cfg;
		args[k++] = cmd;
		snprintf(shard[i], sizeof(shard[i]), "%d/%d", i, n);
		args[k++] = "--shard";
		args[k++] = shard[i];
		args[k++] = "--json";
		for (m = 0; more != NULL && more[m] != NULL; m++) {
			cr_assert_lt(k, 15);
			args[k++] = more[m];
		}
		args[k] = NULL;
		outp[i] = tmp_path("out");
		errp[i] = tmp_path("err");
		pid[i] = th_spawn_prewctl(args, NULL, outp[i], errp[i]);
	}
	for (i = 0; i < n; i++)
		code[i] = th_reap(pid[i], RUN_LIMIT, cmd);
	for (i = 0; i < n; i++) {
		size_t	 len;
		char	*err = th_slurp(errp[i], NULL);
		char	*doc = th_slurp(outp[i], &len);

		cr_assert_eq(code[i], 0, "%s --shard %s exited %d: %s", cmd,
		    shard[i], code[i], err);
		out[i] = th_json_parse(doc, len);
		free(doc);
		free(err);
	}
}

static long long
sum(struct th_json **docs, int n, const char *path)
{
	long long	s = 0;
	int		i;

	for (i = 0; i < n; i++)
		s += th_json_num(docs[i], path);
	return s;
}

static void
free_all(struct th_json **docs, int n)
{
	int	i;

	for (i = 0; i < n; i++)
		th_json_free(docs[i]);
}

/* ---- setup -------------------------------------------------------------- */

static void
setup(void)
{
	T.c = th_client();
	snprintf(T.prefix, sizeof(T.prefix), "%s", th_prefix("scale"));
	memcpy(T.tmp, "/tmp/prewctl-scale-XXXXXX", 26);
	cr_assert_not_null(mkdtemp(T.tmp));
	cr_assert(VIPS_INIT("prewctl-tests") == 0);
}

/* After the suite's setup (Criterion runs both): the folder backend. */
static void
setup_dir(void)
{
	memcpy(T.root, "/tmp/prewctl-scale-dir-XXXXXX", 30);
	cr_assert_not_null(mkdtemp(T.root));
}

static void
teardown(void)
{
	th_proxy_stop(&T.px);
	if (T.c != NULL) {
		th_delete_prefix(T.c, T.prefix);
		s3_client_free(T.c);
	}
	th_rmtree(T.tmp);
	if (T.root[0] != '\0')
		th_rmtree(T.root);
}

TestSuite(scale, .init = setup, .fini = teardown, .timeout = 900);

/* ---- shards ------------------------------------------------------------- */

/* The width of the preview at key (via the server, not the proxy). */
static int
preview_width(const char *k)
{
	struct buf		 b;
	struct s3_error		 err;
	struct s3_head		 hd;
	VipsImage		*im;
	int			 w;

	buf_init(&b, BUF_NOMAX);
	s3_head_init(&hd);
	cr_assert_eq(s3_get(T.c, k, 64 << 20, &b, &hd, &err), S3_OK,
	    "cannot get %s", k);
	s3_head_release(&hd);
	im = vips_image_new_from_buffer(b.data, b.len, "", NULL);
	cr_assert_not_null(im, "%s is no image", k);
	w = vips_image_get_width(im);
	g_object_unref(im);
	buf_release(&b);
	return w;
}

/*
 * The proxy saw each of the n originals' s and m previews PUT s_puts and
 * m_puts times, and each preset's stamp as often.
 */
static void
puts_were(int n, long long s_puts, long long m_puts)
{
	int	i;

	for (i = 0; i < n; i++) {
		cr_assert_eq(th_proxy_paths(&T.px, "put_paths",
		    wire("prew/s/", rel_of(i))), s_puts, "s/%s", rel_of(i));
		cr_assert_eq(th_proxy_paths(&T.px, "put_paths",
		    wire("prew/m/", rel_of(i))), m_puts, "m/%s", rel_of(i));
	}
	cr_assert_eq(th_proxy_paths(&T.px, "put_paths",
	    wire("prew/.prewctl-stamp-s", "")), s_puts);
	cr_assert_eq(th_proxy_paths(&T.px, "put_paths",
	    wire("prew/.prewctl-stamp-m", "")), m_puts);
}

Test(scale, three_shards_write_each_preview_once_then_once_more_after_a_change)
{
	struct th_json	*d[3], *j;
	struct th_run	 r;
	const char	*cfg;
	int		 n = 24;

	put_originals(0, n);
	th_proxy_start(&T.px, NULL);

	cfg = config(T.px.endpoint, PRESETS_SM);
	shards(cfg, "generate", 3, NULL, d);
	cr_assert_eq(sum(d, 3, "originals"), n);
	cr_assert_eq(sum(d, 3, "presets.s.generated"), n);
	cr_assert_eq(sum(d, 3, "presets.m.generated"), n);
	free_all(d, 3);
	puts_were(n, 1, 1);
	j = th_proxy_stats(&T.px);
	cr_assert_eq(th_json_num(j, "requests.PUT"), 2 * n + 2,
	    "PUTs besides the previews and the stamps");
	th_json_free(j);

	/* m gets narrower: one sharded re-run makes each m preview again. */
	cfg = config(T.px.endpoint, PRESETS_SM2);
	shards(cfg, "generate", 3, NULL, d);
	cr_assert_eq(sum(d, 3, "presets.s.generated"), 0);
	cr_assert_eq(sum(d, 3, "presets.m.generated"), n, "%lld %lld %lld; "
	    "%lld %lld %lld", th_json_num(d[0], "presets.m.generated"),
	    th_json_num(d[1], "presets.m.generated"),
	    th_json_num(d[2], "presets.m.generated"),
	    th_json_num(d[0], "presets.m.fresh"),
	    th_json_num(d[1], "presets.m.fresh"),
	    th_json_num(d[2], "presets.m.fresh"));
	cr_assert_eq(sum(d, 3, "presets.m.stale-preset"), n);
	free_all(d, 3);
	puts_were(n, 1, 2);
	/* Progressive 308x231 turned by EXIF 6: 231 wide, 80 as preset. */
	cr_assert_eq(preview_width(key("prew/m/", rel_of(7))), 80);

	/* And the bucket agrees: everything fresh, one run to the next. */
	PREWCTL(&r, "-c", cfg, "plan", "--json");
	th_expect_exit(&r, 0, "plan");
	j = th_json_parse(r.out.data, r.out.len);
	cr_assert_eq(th_json_num(j, "presets.s.fresh"), n);
	cr_assert_eq(th_json_num(j, "presets.m.fresh"), n);
	th_json_free(j);
	th_run_release(&r);
}

static const char *const plan_states[] = { "missing", "stale-original",
	"stale-preset", "fresh", "orphan", "known-failure" };

Test(scale, sharded_plans_add_up_and_sharded_purges_delete_exactly_the_orphans)
{
	const char	*presets = "[preset s]\nwidth = 48\n";
	struct th_json	*d[3], *j;
	struct th_run	 r;
	struct s3_error	 err;
	struct s3_put_opts po = { "image/jpeg", NULL, NULL, NULL, 0 };
	const char	*cfg, *path;
	char		 rel[64], msg[256];
	enum s3_status	 st;
	size_t		 s;
	int		 i, n = 20, orphans = 0;

	put_originals(0, n);
	cfg = config(th_env()->endpoint, presets);
	PREWCTL(&r, "-c", cfg, "generate", "--json");
	th_expect_exit(&r, 0, "generate");
	th_run_release(&r);
	/* Orphans: originals gone, and previews that never had one. */
	for (i = 0; i < n; i += 5) {
		const char *gone = key("photo/", rel_of(i));

		cr_assert_eq(s3_delete(T.c, gone, &err), S3_OK);
		orphans++;
	}
	for (i = 0; i < 7; i++) {
		snprintf(rel, sizeof(rel), "%sgone-%d.jpg",
		    folders[(i * 5) % NFOLDERS], i);
		cr_assert_eq(s3_put(T.c, key("prew/s/", rel), "x", 1, &po,
		    &err), S3_OK);
		orphans++;
	}
	put_originals(n, n + 3);	/* and some missing */

	PREWCTL(&r, "-c", cfg, "plan", "--json");
	th_expect_exit(&r, 0, "plan");
	j = th_json_parse(r.out.data, r.out.len);
	th_run_release(&r);
	cr_assert_eq(th_json_num(j, "presets.s.orphan"), orphans);
	cr_assert_eq(th_json_num(j, "presets.s.missing"), 3);
	shards(cfg, "plan", 3, NULL, d);
	cr_assert_eq(sum(d, 3, "originals"), th_json_num(j, "originals"));
	for (s = 0; s < sizeof(plan_states) / sizeof(plan_states[0]); s++) {
		char	p[64];

		snprintf(p, sizeof(p), "presets.s.%s", plan_states[s]);
		cr_assert_eq(sum(d, 3, p), th_json_num(j, p), "%s", p);
	}
	free_all(d, 3);
	th_json_free(j);

	shards(cfg, "purge", 3, NULL, d);
	cr_assert_eq(sum(d, 3, "deleted"), orphans);
	cr_assert_eq(sum(d, 3, "failed"), 0);
	free_all(d, 3);
	/* What is left: the previews of the originals there, the stamp. */
	cr_assert_eq(th_count(T.c, key("prew/s/", "")), (size_t)(n - 4));
	for (i = 0; i < n; i++) {
		struct s3_head	hd;

		path = key("prew/s/", rel_of(i));
		s3_head_init(&hd);
		st = s3_head(T.c, path, &hd, &err);
		s3_head_release(&hd);
		cr_assert_eq(st, i % 5 == 0 ? S3_ENOTFOUND : S3_OK, "%s: %s",
		    path, s3_error_text(st, &err, msg, sizeof(msg)));
	}
	cr_assert_eq(th_count(T.c, key("prew/.prewctl-stamp-s", "")), 1);
}

Test(scale, shard_arguments_out_of_range_or_malformed_exit_2, .init = setup_dir)
{
	static const char *const bad[] = { "3/3", "0/0", "0/10001", "-1/3",
		"1/-3", "a/3", "1/", "/3", "1/3x", " 1/3", "1//3", "13",
		"99999999999999999999/3", "" };
	static const char *const cmds[] = { "generate", "plan", "purge" };
	const char	*cfg = config(NULL, "[preset s]\nwidth = 48\n");
	struct th_run	 r;
	size_t		 i, c;

	for (c = 0; c < 3; c++)
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			PREWCTL(&r, "-c", cfg, cmds[c], "--shard", bad[i]);
			cr_assert_eq(r.status, 2, "%s --shard '%s': exit %d",
			    cmds[c], bad[i], r.status);
			cr_assert(strstr(r.err.data, "--shard") != NULL,
			    "%s --shard '%s': %s", cmds[c], bad[i],
			    r.err.data);
			th_run_release(&r);
		}
	PREWCTL(&r, "-c", cfg, "plan", "--shard", "9999/10000");
	th_expect_exit(&r, 0, "plan --shard 9999/10000");
	th_run_release(&r);
}

/* FNV-1a, 64 bits, from the reference's constants. */
static uint64_t
fnv1a64(const char *s)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

Test(scale, a_key_belongs_to_the_shard_of_its_fnv1a_64_hash, .init = setup_dir)
{
	static const char *const names[] = { "a.jpg", "b.jpg", "x/y.jpg",
		"x/y/z.jpg", "\xc3\xa9t\xc3\xa9.jpg", "2024/01/img 1.jpg",
		"2024/01/img 2.jpg", "2024/02/IMG_0001.JPG", "q.jpg", "r.jpg",
		"s/t.jpg", "u v/w.jpg", "0.jpg", "1.jpg", "2.jpg", "3.jpg" };
	const size_t	 nn = sizeof(names) / sizeof(names[0]);
	const char	*cfg;
	struct th_run	 r;
	struct th_json	*j;
	char		 path[512], shard[16], *pic;
	size_t		 i, k, len, seen[sizeof(names) / sizeof(names[0])];
	int		 s, N = 7;

	cr_assert_eq(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
	cr_assert_eq(fnv1a64(""), 0xcbf29ce484222325ULL);
	pic = th_slurp(PIC, &len);
	for (i = 0; i < nn; i++) {
		char	*slash;

		snprintf(path, sizeof(path), "%s/photo/%s", T.root, names[i]);
		for (slash = strchr(path + strlen(T.root) + 1, '/');
		    slash != NULL; slash = strchr(slash + 1, '/')) {
			*slash = '\0';
			cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
			*slash = '/';
		}
		file_write(path, pic, len);
	}
	free(pic);
	cfg = config(NULL, "[preset s]\nwidth = 48\n");
	memset(seen, 0, sizeof(seen));
	for (s = 0; s < N; s++) {
		const struct th_json	*keys;

		snprintf(shard, sizeof(shard), "%d/%d", s, N);
		PREWCTL(&r, "-c", cfg, "plan", "--keys", "--json", "--shard",
		    shard);
		th_expect_exit(&r, 0, "plan --keys");
		j = th_json_parse(r.out.data, r.out.len);
		keys = th_json_at(j, "keys");
		cr_assert_not_null(keys);
		for (k = 0; k < th_json_len(keys); k++) {
			const char *orig = th_json_str(th_json_item(keys, k),
			    "original");

			cr_assert(strncmp(orig, "photo/", 6) == 0);
			for (i = 0; i < nn; i++)
				if (strcmp(orig + 6, names[i]) == 0)
					break;
			cr_assert_lt(i, nn, "an original never put: %s", orig);
			cr_assert_eq(fnv1a64(names[i]) % (uint64_t)N,
			    (uint64_t)s, "%s is on shard %d", names[i], s);
			seen[i]++;
		}
		th_json_free(j);
		th_run_release(&r);
	}
	for (i = 0; i < nn; i++)
		cr_assert_eq(seen[i], 1, "%s seen by %zu shards", names[i],
		    seen[i]);
}

/* ---- the Kubernetes Indexed Job ------------------------------------------ */

Test(scale, the_indexed_jobs_command_lines_make_each_preview_once)
{
	struct th_json	*j;
	const char	*cfg, *outp[MAX_SHARDS], *errp[MAX_SHARDS];
	const char	*args[MAX_SHARDS][24];
	char		 line[4096];
	pid_t		 pid[MAX_SHARDS];
	FILE		*p;
	size_t		 k, len;
	int		 i, n = 0, code, origs = 18;
	struct th_json	*docs[MAX_SHARDS];

	put_originals(0, origs);
	th_proxy_start(&T.px, NULL);
	cfg = config(T.px.endpoint, "[preset s]\nwidth = 48\n");
	/* /usr/bin/python3: python3-yaml is a Debian package. */
	p = popen("/usr/bin/python3 tests/k8s-commands", "r");
	cr_assert_not_null(p);
	while (fgets(line, sizeof(line), p) != NULL) {
		cr_assert_lt(n, MAX_SHARDS);
		docs[n] = j = th_json_parse(line, strlen(line));
		cr_assert_eq(th_json_type(j), TH_JSON_ARRAY);
		len = th_json_len(j);
		cr_assert(len >= 2 && len < 24);
		cr_assert_str_eq(th_json_str(th_json_item(j, 0), ""),
		    "/usr/bin/prewctl");
		/* Our binary, our config where the ConfigMap is mounted. */
		for (k = 1; k < len; k++) {
			const char *a = th_json_str(th_json_item(j, k), "");

			args[n][k - 1] = a;
			if (k > 1 && strcmp(args[n][k - 2], "-c") == 0)
				args[n][k - 1] = cfg;
		}
		args[n][len - 1] = NULL;
		n++;
	}
	cr_assert_eq(pclose(p), 0, "tests/k8s-commands failed");
	cr_assert_geq(n, 2, "an Indexed Job of one pod is no test");
	for (i = 0; i < n; i++) {
		outp[i] = tmp_path("out");
		errp[i] = tmp_path("err");
		pid[i] = th_spawn_prewctl(args[i], NULL, outp[i], errp[i]);
	}
	for (i = 0; i < n; i++) {
		code = th_reap(pid[i], RUN_LIMIT, "an indexed pod");
		cr_assert_eq(code, 0, "pod %d exited %d: %s", i, code,
		    th_slurp(errp[i], NULL));
	}
	for (i = 0; i < origs; i++)
		cr_assert_eq(th_proxy_paths(&T.px, "put_paths",
		    wire("prew/s/", rel_of(i))), 1, "s/%s", rel_of(i));
	for (i = 0; i < n; i++)
		th_json_free(docs[i]);
}

/* ---- --metrics-file ------------------------------------------------------ */

/* The file parsed by prometheus_client (tests/prom-parse). */
static struct th_json *
prom(const char *path)
{
	const char	*out = tmp_path("prom");
	char		 cmd[512];
	struct th_json	*j;
	size_t		 len;
	char		*doc;
	int		 st;

	snprintf(cmd, sizeof(cmd), "tests/prom-parse < '%s' > '%s'", path,
	    out);
	st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "prometheus_client cannot parse %s", path);
	doc = th_slurp(out, &len);
	j = th_json_parse(doc, len);
	free(doc);
	return j;
}

/* A sample by its whole name, labels sorted ("x{a=\"1\",b=\"2\"}"). */
static double
sample(const struct th_json *j, const char *name)
{
	const struct th_json	*all = th_json_at(j, "samples");
	size_t			 i;

	for (i = 0; i < th_json_len(all); i++)
		if (strcmp(th_json_name(all, i), name) == 0)
			return th_json_real(th_json_item(all, i), "");
	cr_assert_fail("no sample %s", name);
	return 0;
}

/* Nothing but the metrics file in its folder: no temporary left. */
static void
alone_in(const char *dir, const char *name)
{
	DIR		*d = opendir(dir);
	struct dirent	*e;
	int		 n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		cr_assert_str_eq(e->d_name, name, "left in %s", dir);
		n++;
	}
	closedir(d);
	cr_assert_eq(n, 1);
}

#define G "{command=\"generate\"}"
#define GS(preset, state) \
	"{command=\"generate\",preset=\"" preset "\",state=\"" state "\"}"

Test(scale, the_metrics_file_parses_after_a_good_run_and_a_failed_one)
{
	struct th_json	*j;
	struct th_run	 r;
	struct stat	 sb;
	struct s3_error	 err;
	struct s3_put_opts po = { "image/jpeg", NULL, NULL, NULL, 0 };
	const char	*cfg, *dir = tmp_path("metrics");
	char		 path[256];
	double		 good_start, t0;
	mode_t		 old;

	cr_assert(mkdir(dir, 0755) == 0);
	snprintf(path, sizeof(path), "%s/prewctl.prom", dir);
	put_originals(0, 3);
	cfg = config(th_env()->endpoint, "[preset s]\nwidth = 48\n");
	old = umask(022);
	t0 = (double)time(NULL);
	PREWCTL(&r, "-c", cfg, "generate", "--metrics-file", path);
	umask(old);
	th_expect_exit(&r, 0, "generate");
	th_run_release(&r);
	cr_assert(stat(path, &sb) == 0);
	cr_assert_eq(sb.st_mode & 07777, 0644, "mode %o: the collector, "
	    "another user, must read it", sb.st_mode & 07777);
	alone_in(dir, "prewctl.prom");
	j = prom(path);
	cr_assert_str_eq(th_json_str(j,
	    "families.prewctl_last_run_timestamp_seconds"), "gauge");
	good_start = sample(j, "prewctl_last_run_timestamp_seconds" G);
	cr_assert(good_start >= t0 - 1 && good_start <= (double)time(NULL));
	cr_assert_eq(sample(j, "prewctl_last_success_timestamp_seconds" G),
	    good_start);
	cr_assert_eq(sample(j, "prewctl_last_run_success" G), 1);
	cr_assert_eq(sample(j, "prewctl_last_run_exit_status" G), 0);
	cr_assert_gt(sample(j, "prewctl_run_duration_seconds" G), 0);
	cr_assert_eq(sample(j, "prewctl_run_originals" G), 3);
	cr_assert_eq(sample(j, "prewctl_run_previews" GS("s", "missing")), 3);
	cr_assert_eq(sample(j, "prewctl_run_previews" GS("s", "generated")), 3);
	cr_assert_eq(sample(j, "prewctl_run_previews" GS("s", "failed")), 0);
	cr_assert_eq(sample(j, "prewctl_run_requests"
	    "{command=\"generate\",kind=\"get\"}"), 3);
	cr_assert_eq(sample(j, "prewctl_run_requests"
	    "{command=\"generate\",kind=\"put\"}"), 4);	/* and the stamp */
	cr_assert_geq(sample(j, "prewctl_run_retries" G), 0);
	{
		const struct th_json	*all = th_json_at(j, "samples");
		size_t			 i;
		int			 info = 0;

		for (i = 0; i < th_json_len(all); i++)
			if (strncmp(th_json_name(all, i),
			    "prewctl_build_info{", 19) == 0) {
				cr_assert(strstr(th_json_name(all, i),
				    "vips=\"8.") != NULL, "%s",
				    th_json_name(all, i));
				cr_assert(strstr(th_json_name(all, i),
				    "version=\"") != NULL);
				info++;
			}
		cr_assert_eq(info, 1);
	}
	th_json_free(j);

	/* A broken original: exit 1, the last success carried over. */
	cr_assert_eq(s3_put(T.c, key("photo/", "zz-broken.jpg"),
	    "not an image", 12, &po, &err), S3_OK);
	PREWCTL(&r, "-c", cfg, "generate", "--metrics-file", path);
	th_expect_exit(&r, 1, "generate with a broken original");
	th_run_release(&r);
	alone_in(dir, "prewctl.prom");
	j = prom(path);
	cr_assert_eq(sample(j, "prewctl_last_run_success" G), 0);
	cr_assert_eq(sample(j, "prewctl_last_run_exit_status" G), 1);
	cr_assert_eq(sample(j, "prewctl_last_success_timestamp_seconds" G),
	    good_start);
	cr_assert_geq(sample(j, "prewctl_last_run_timestamp_seconds" G),
	    good_start);
	cr_assert_eq(sample(j, "prewctl_run_previews" GS("s", "failed")), 1);
	cr_assert_eq(sample(j, "prewctl_run_previews" GS("s", "fresh")), 3);
	th_json_free(j);

	/* A run that cannot even list (nothing listens) still reports. */
	{
		const char	*dead = config("http://127.0.0.1:9",
		    "[preset s]\nwidth = 48\n");

		PREWCTL(&r, "-c", dead, "plan", "--shard", "1/2",
		    "--metrics-file", path);
		cr_assert_eq(r.status, 3, "plan against nothing: %d: %s",
		    r.status, r.err.data);
		th_run_release(&r);
		j = prom(path);
		cr_assert_eq(sample(j, "prewctl_last_run_success"
		    "{command=\"plan\",shard=\"1/2\"}"), 0);
		cr_assert_eq(sample(j, "prewctl_last_run_exit_status"
		    "{command=\"plan\",shard=\"1/2\"}"), 3);
		th_json_free(j);
	}

	/* purge labels its own. */
	PREWCTL(&r, "-c", cfg, "purge", "--shard", "0/2", "--metrics-file",
	    path);
	th_expect_exit(&r, 0, "purge");
	th_run_release(&r);
	j = prom(path);
	cr_assert_eq(sample(j, "prewctl_last_run_success"
	    "{command=\"purge\",shard=\"0/2\"}"), 1);
	th_json_free(j);
}

/* ---- --time-limit ---------------------------------------------------------- */

/*
 * Until the proxy's stats count n or more of key, holding exactly held
 * requests then (any number when held < 0), while run pid goes on; why
 * says what it means when that never comes.
 */
static void
wait_stats(pid_t pid, const char *errp, const char *key, int n, int held,
    const char *why)
{
	struct th_json	*j;
	double		 deadline = th_now() + RUN_LIMIT;
	int		 got, now, status;

	for (;;) {
		j = th_proxy_stats(&T.px);
		got = (int)th_json_num(j, key);
		now = (int)th_json_num(j, "held");
		th_json_free(j);
		if (got >= n && (held < 0 || now == held))
			return;
		cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "the run ended "
		    "(status %#x) with %d of %d %s, %d held: %s", status, got,
		    n, key, now, th_slurp(errp, NULL));
		cr_assert_lt(th_now(), deadline, "%d of %d %s, %d held: %s",
		    got, n, key, now, why);
		th_pace();
	}
}

Test(scale, a_time_limit_stops_taking_originals_and_exits_75)
{
	struct th_json	*j;
	struct th_run	 r;
	const char	*cfg, *outp = tmp_path("out"), *errp = tmp_path("err");
	const char	*args[] = { "-c", NULL, "generate", "-j", "1",
		"--time-limit", "3s", "--json", NULL };
	double		 held_at;
	char		*doc;
	size_t		 len, made;
	pid_t		 pid;
	int		 n = 24, code;

	put_originals(0, n);
	/* Every preview's PUT waits until we let it go. */
	th_proxy_start(&T.px, (const char *const []){ "--hold-put", "/prew/s/",
	    NULL });
	cfg = config(T.px.endpoint, "[preset s]\nwidth = 48\n");
	args[1] = cfg;
	pid = th_spawn_prewctl(args, NULL, outp, errp);
	wait_stats(pid, errp, "held", 1, -1, "no PUT held");
	/*
	 * The run started before its PUT was held, so its 3 s are up 3 s
	 * after; the stamp and its second come first, hence not 1 s.
	 */
	held_at = th_now();
	while (th_now() < held_at + 3.1)
		th_pace();
	th_proxy_release(&T.px);
	code = th_reap(pid, RUN_LIMIT, "generate --time-limit");
	doc = th_slurp(outp, &len);
	cr_assert_eq(code, 75, "exit %d: %s %s", code, doc,
	    th_slurp(errp, NULL));
	j = th_json_parse(doc, len);
	cr_assert_eq(th_json_num(j, "exit"), 75);
	cr_assert(strstr(th_json_str(j, "error"), "time is up") != NULL,
	    "%s", th_json_str(j, "error"));
	th_json_free(j);
	free(doc);
	made = th_count(T.c, key("prew/s/", ""));
	cr_assert(made >= 1 && made < (size_t)n, "%zu of %d made", made, n);

	/* The next run does the rest, and only the rest. */
	PREWCTL(&r, "-c", cfg, "generate", "--json");
	th_expect_exit(&r, 0, "the next generate");
	j = th_json_parse(r.out.data, r.out.len);
	cr_assert_eq(th_json_num(j, "presets.s.generated"), n - (int)made);
	th_json_free(j);
	th_run_release(&r);
	cr_assert_eq(th_count(T.c, key("prew/s/", "")), (size_t)n);
}

Test(scale, bad_time_limits_exit_2, .init = setup_dir)
{
	static const char *const bad[] = { "0", "0s", "-5s", "10x", "", "s",
		"1.5h", "99999999999999999999" };
	const char	*cfg = config(NULL, "[preset s]\nwidth = 48\n");
	struct th_run	 r;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		PREWCTL(&r, "-c", cfg, "generate", "--time-limit", bad[i]);
		cr_assert_eq(r.status, 2, "--time-limit '%s': exit %d",
		    bad[i], r.status);
		th_run_release(&r);
	}
}

/* ---- far from S3 ----------------------------------------------------------- */

/*
 * With one renderer and every GET of an original slowed down, the next
 * originals are read while one is rendered: the proxy sees more than one
 * GET at once. A worker that fetched, then rendered, would show one.
 */
Test(scale, originals_download_while_one_renders)
{
	struct th_json	*j;
	struct th_run	 r;
	const char	*cfg;
	int		 n = 6;

	put_originals(0, n);
	th_proxy_start(&T.px, (const char *const []){ "--delay-get", "300",
	    NULL });
	cfg = config(T.px.endpoint, "[preset s]\nwidth = 48\n");
	PREWCTL(&r, "-c", cfg, "generate", "-j", "1", "--json");
	th_expect_exit(&r, 0, "generate -j 1");
	th_run_release(&r);
	j = th_proxy_stats(&T.px);
	cr_assert_eq(th_json_num(j, "requests.GET"), n);
	cr_assert_geq(th_json_num(j, "in_flight_max.GET"), 2,
	    "one renderer, and never two originals on their way at once");
	th_json_free(j);
	cr_assert_eq(th_count(T.c, key("prew/s/", "")), (size_t)n);
}

/*
 * The previews of one original are written at once, a round trip for
 * all of them rather than one each: with one renderer and every preview
 * PUT held at the proxy, the three presets' PUTs are all held together.
 * Uploads one after another would leave one held, and the run waiting.
 */
Test(scale, the_previews_of_one_original_are_written_at_once)
{
	const char	*cfg, *outp = tmp_path("out"), *errp = tmp_path("err");
	const char	*args[] = { "-c", NULL, "generate", "-j", "1", "--json",
		NULL };
	pid_t		 pid;
	int		 code;

	put_originals(0, 1);
	/* (Let a PUT go after a minute: uploads in a row then end the run.) */
	th_proxy_start(&T.px, (const char *const []){ "--hold-put", "/prew/a/",
	    "--hold-put", "/prew/b/", "--hold-put", "/prew/c/",
	    "--hold-seconds", "60", NULL });
	cfg = config(T.px.endpoint, "[preset a]\nwidth = 16\n"
	    "[preset b]\nwidth = 24\n[preset c]\nwidth = 32\n");
	args[1] = cfg;
	pid = th_spawn_prewctl(args, NULL, outp, errp);
	wait_stats(pid, errp, "held", 3, -1, "not 3 PUTs held at once");
	th_proxy_release(&T.px);
	code = th_reap(pid, RUN_LIMIT, "generate -j 1");
	cr_assert_eq(code, 0, "exit %d: %s", code, th_slurp(errp, NULL));
	cr_assert_eq(th_count(T.c, key("prew/", "")), 3 + 3,
	    "three previews and three stamps");
}

/*
 * The end of a run is one round trip after the last PUTs, not four: the
 * last check of the stamps is a HEAD of each, all at once (no listing),
 * made alongside the HEAD of the last original. With every request slowed
 * down, the proxy sees the four HEADs at once; checks made as before (a
 * LIST, then a HEAD per stamp, after the original's) would show one.
 */
Test(scale, the_last_check_of_the_stamps_is_one_round_trip)
{
	struct th_json	*j, *out;
	struct th_run	 r;
	const char	*cfg;

	put_originals(0, 1);
	th_proxy_start(&T.px, (const char *const []){ "--delay", "300",
	    NULL });
	cfg = config(T.px.endpoint, "[preset a]\nwidth = 16\n"
	    "[preset b]\nwidth = 24\n[preset c]\nwidth = 32\n");
	PREWCTL(&r, "-c", cfg, "generate", "-j", "1", "--json");
	th_expect_exit(&r, 0, "generate -j 1");
	out = th_json_parse(r.out.data, r.out.len);
	th_run_release(&r);
	j = th_proxy_stats(&T.px);
	cr_assert_eq(th_json_num(j, "requests.PUT"), 3 + 3,
	    "three stamps and three previews");
	/* The original's, and the last check's of each stamp. */
	cr_assert_eq(th_json_num(j, "requests.HEAD"), 1 + 3);
	cr_assert_eq(th_json_num(j, "in_flight_max.HEAD"), 1 + 3,
	    "the HEADs of the end one after another");
	/* The stamps, the source (whose page says: one range), the presets. */
	cr_assert_eq(th_json_num(j, "requests.LIST"), 1 + 1 + 3);
	cr_assert_eq(th_json_num(out, "requests.list"), 1 + 1 + 3,
	    "prewctl counts its requests as the proxy does");
	cr_assert_eq(th_json_num(out, "requests.head"), 1 + 3);
	th_json_free(out);
	th_json_free(j);
}

/*
 * The listings start while the stamps' listing is on its way, not after
 * it: with the stamps' listing (the one delimiter listing of a run over a
 * small source) held at the proxy, the source's and the preset's first
 * pages are asked for all the same.
 */
Test(scale, the_listings_start_alongside_the_stamps_listing)
{
	struct th_json	*j;
	const char	*cfg, *outp = tmp_path("out"), *errp = tmp_path("err");
	const char	*args[] = { "-c", NULL, "generate", "--json", NULL };
	pid_t		 pid;
	int		 code;

	put_originals(0, 2);
	th_proxy_start(&T.px, (const char *const []){ "--hold-list",
	    "delimiter=/", "--hold-seconds", "60", NULL });
	cfg = config(T.px.endpoint, "[preset s]\nwidth = 48\n");
	args[1] = cfg;
	pid = th_spawn_prewctl(args, NULL, outp, errp);
	wait_stats(pid, errp, "requests.LIST", 1 + 2, 1, "the listings wait "
	    "for the stamps'");
	/* (Not a retry of the one held: that would be held too.) */
	j = th_proxy_stats(&T.px);
	cr_assert_eq(th_json_num(j, "held_total"), 1);
	th_json_free(j);
	th_proxy_release(&T.px);
	code = th_reap(pid, RUN_LIMIT, "generate");
	cr_assert_eq(code, 0, "exit %d: %s", code, th_slurp(errp, NULL));
	cr_assert_eq(th_count(T.c, key("prew/s/", "")), 2);
	/* Pages read early are not read again. */
	j = th_proxy_stats(&T.px);
	cr_assert_eq(th_json_num(j, "requests.LIST"), 1 + 2);
	th_json_free(j);
}

/*
 * A range much larger than the rest is split while it is listed: with
 * four ranges (a, b, c and d), c holds 2000 keys, 1500 of them in c/00/
 * (not images: listed, not made), the rest in nine folders after it. Every
 * page of c's listing after its first is held at the proxy (RGW's
 * continuation token is the last key listed, in c/00/ for no other
 * listing), so c's merge cannot go on. The threads whose ranges ended cut
 * the rest of c at its folders, and every preview but c/00/'s is written
 * while the page is held. Each exactly once: no key is merged twice.
 */
Test(scale, a_large_range_is_split_while_it_is_listed)
{
	struct s3_put_opts po = { "text/plain", NULL, NULL, NULL, 0 };
	struct s3_error	 err;
	const char	*cfg, *outp = tmp_path("out"), *errp = tmp_path("err");
	const char	*args[] = { "-c", NULL, "generate", "--list-ranges",
	    "4", NULL };
	const char	*rels[13];
	char		 rel[64], text[1200];
	pid_t		 pid;
	int		 i, k, n = 0, code;

	rels[n++] = "a/p.jpg";
	rels[n++] = "b/p.jpg";
	rels[n++] = "d/p.jpg";
	for (i = 0; i < 10; i++) {
		snprintf(rel, sizeof(rel), "c/%02d/p.jpg", i);
		rels[n++] = strdup(rel);
		for (k = 0; k < (i == 0 ? 1500 : 50); k++) {
			snprintf(rel, sizeof(rel), "c/%02d/n%04d.txt", i, k);
			cr_assert_eq(s3_put(T.c, key("photo/", rel), "", 0,
			    &po, &err), S3_OK);
		}
	}
	for (i = 0; i < n; i++)
		th_put_file(T.c, key("photo/", rels[i]), PIC);
	snprintf(text, sizeof(text), "continuation-token=%s",
	    key("photo/", "c/00/"));
	th_proxy_start(&T.px, (const char *const []){ "--hold-list", text,
	    "--hold-seconds", "120", NULL });
	cfg = config(T.px.endpoint, "[preset s]\nwidth = 48\n");
	args[1] = cfg;
	pid = th_spawn_prewctl(args, NULL, outp, errp);
	/* The stamp and every preview but c/00/'s. */
	wait_stats(pid, errp, "requests.PUT", 1 + n - 1, 1, "the large range "
	    "was not split");
	th_proxy_release(&T.px);
	code = th_reap(pid, RUN_LIMIT, "generate");
	cr_assert_eq(code, 0, "exit %d: %s", code, th_slurp(errp, NULL));
	for (i = 0; i < n; i++)
		cr_assert_eq(th_proxy_paths(&T.px, "put_paths",
		    wire("prew/s/", rels[i])), 1, "%s", rels[i]);
	cr_assert_eq(th_count(T.c, key("prew/s/", "")), n);
	for (i = 3; i < n; i++)
		free((char *)rels[i]);
}

/*
 * A folder name XML cannot carry (a control byte, which S3 allows) is no
 * range boundary: RGW echoes a listing's start-after and prefix
 * unescaped, and its answer would not parse. A source over a page, so
 * that it is split at all.
 */
Test(scale, a_control_byte_in_a_folder_name_is_no_boundary)
{
	struct s3_put_opts po = { "text/plain", NULL, NULL, NULL, 0 };
	struct s3_error	 err;
	struct th_json	*j;
	struct th_run	 r;
	const char	*cfg;
	char		 rel[64];
	int		 i;

	th_put_file(T.c, key("photo/", "a/p.jpg"), PIC);
	th_put_file(T.c, key("photo/", "b\x1f" "c/q.jpg"), PIC);
	th_put_file(T.c, key("photo/", "d\x01/r.jpg"), PIC);
	th_put_file(T.c, key("photo/", "e/s.jpg"), PIC);
	for (i = 0; i < 1000; i++) {
		snprintf(rel, sizeof(rel), "f/n%04d.txt", i);
		cr_assert_eq(s3_put(T.c, key("photo/", rel), "", 0, &po, &err),
		    S3_OK);
	}
	cfg = config(th_env()->endpoint, "[preset s]\nwidth = 48\n");
	PREWCTL(&r, "-c", cfg, "plan", "--json");
	th_expect_exit(&r, 0, "plan over folders with control bytes");
	j = th_json_parse(r.out.data, r.out.len);
	cr_assert_eq(th_json_num(j, "originals"), 4);
	cr_assert_eq(th_json_num(j, "presets.s.missing"), 4);
	th_json_free(j);
	th_run_release(&r);
	PREWCTL(&r, "-c", cfg, "generate", "--json");
	th_expect_exit(&r, 0, "generate over folders with control bytes");
	th_run_release(&r);
	cr_assert_eq(th_count(T.c, key("prew/s/", "")), 4);
}
