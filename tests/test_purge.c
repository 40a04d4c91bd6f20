/*
 * purge: what `prewctl purge` deletes and, above all, what it leaves, end to
 * end with the real binary (man page: COMMANDS purge and plan, FAILURES,
 * EXIT STATUS).
 *
 *   1. --removed-presets deletes a preset removed from the configuration
 *      (its stamp names our source) and nothing else: folders without a
 *      stamp stay byte for byte, and plan lists each as removed or foreign.
 *      On RGW and on the folder backend.
 *   2. Two configurations sharing one previews prefix with different
 *      sources: neither's purge --removed-presets touches the other's
 *      previews or stamps ("theirs"); a configuration that reuses the
 *      other's preset name is refused (exit 2) by plan, generate and purge,
 *      deleting and writing nothing.
 *   3. The guards: more than half of a preset's previews (and more than 10)
 *      refused, at and under 10 not; --max-delete (default 10000, on the
 *      folder backend with tiny files) refused even with --force.
 *   4. --prefix SUBPATH deletes the orphans under <source>SUBPATH/ only, not
 *      under SUBPATHx/; with --removed-presets it is a usage error.
 *   5. Storage errors exit 3 deleting nothing; -v names every key deleted;
 *      --json names every key it could not delete; -n --json lists the keys;
 *      the failure marks of originals that are gone go too.
 *
 * Where purge only reads listings (3, 4, 5) the previews are put in place
 * directly, as small objects: purge must decide from keys alone. Where a
 * stamp matters (1, 2, marks) generate makes them. What is left is read
 * back from the bucket or the folder, never from prewctl's own output.
 */
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "helpers.h"

#define FPROXY		"tests/s3-fault-proxy"
#define PIC_A		"tests/data/batch/fujifilm-finepix-s1pro-gps.jpg"
#define PIC_B		"tests/data/batch/icc-a98-small.jpg"
#define PIC_TINY	"tests/data/batch/png-rgba8.png"
#define TEXT_JPG	"tests/data/broken/text-named.jpg"
#define MAX_LOGGED	15
#define RUN_LIMIT	120.0

/* What a test made; teardown undoes it. Every test is a process. */
static struct {
	struct s3_client	*c;
	char			 prefix[256];	/* in the bucket */
	char			 tmp[64];	/* configs, stats */
	char			 root[64];	/* the folder backend */
	int			 folder;	/* files under root */
	struct th_proxy		 px;
	int			 nfiles;
} P;

/* ---- string sets ----------------------------------------------------- */

struct strv {
	char	**v;
	size_t	  n;
};

static void
strv_add(struct strv *s, const char *str)
{
	s->v = realloc(s->v, (s->n + 1) * sizeof(*s->v));
	cr_assert_not_null(s->v);
	cr_assert_not_null(s->v[s->n++] = strdup(str));
}

static int
strv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
strv_sort(struct strv *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), strv_cmp);
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

/* Compare as sets; logs each difference, returns how many. */
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
			    "unexpected" : "missing", c < 0 ? got->v[i] :
			    want->v[j]);
		if (c < 0)
			i++;
		else
			j++;
	}
	return bad;
}

/* ---- objects: keys in the test bucket, or files under the root ------- */

/*
 * A test names its objects relative to its own place ("photo/a.jpg"):
 * <prefix>photo/a.jpg in the bucket, or <root>/photo/a.jpg.
 */
static const char *
full(const char *rel)
{
	static char	bufs[4][1024];
	static int	k;
	char		*o = bufs[k++ % 4];

	cr_assert((size_t)snprintf(o, sizeof(bufs[0]), "%s%s%s", P.folder ?
	    P.root : P.prefix, P.folder ? "/" : "", rel) < sizeof(bufs[0]));
	return o;
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

static void
obj_put(const char *rel, const void *data, size_t len)
{
	struct s3_put_opts	po = { "application/octet-stream", NULL, NULL,
				    NULL, 0 };
	struct s3_error		err;
	enum s3_status		st;
	char			msg[256];

	if (P.folder) {
		file_write(full(rel), data, len);
		return;
	}
	st = s3_put(P.c, full(rel), data, len, &po, &err);
	cr_assert(st == S3_OK, "cannot put '%s': %s", full(rel),
	    s3_error_text(st, &err, msg, sizeof(msg)));
}

static void
obj_put_str(const char *rel, const char *text)
{
	obj_put(rel, text, strlen(text));
}

static void
obj_put_fixture(const char *rel, const char *path)
{
	struct buf	b;

	buf_init(&b, BUF_NOMAX);
	th_read_file(path, &b);
	obj_put(rel, b.data, b.len);
	buf_release(&b);
}

/* Read rel into b; 0, or -1 when there is no such object. */
static int
obj_get(const char *rel, struct buf *b)
{
	struct s3_error	 err;
	enum s3_status	 st;
	char		 msg[256];

	buf_reset(b);
	if (P.folder) {
		if (access(full(rel), F_OK) != 0)
			return -1;
		th_read_file(full(rel), b);
		return 0;
	}
	st = s3_get(P.c, full(rel), 64 * 1024 * 1024, b, NULL, &err);
	if (st == S3_ENOTFOUND)
		return -1;
	cr_assert(st == S3_OK, "cannot get '%s': %s", full(rel),
	    s3_error_text(st, &err, msg, sizeof(msg)));
	return 0;
}

static int
obj_exists(const char *rel)
{
	struct buf	b;
	int		rc;

	buf_init(&b, BUF_NOMAX);
	rc = obj_get(rel, &b);
	buf_release(&b);
	return rc == 0;
}

static void
obj_del(const char *rel)
{
	struct s3_error	 err;

	if (P.folder) {
		cr_assert(unlink(full(rel)) == 0, "unlink %s: %s", full(rel),
		    strerror(errno));
		return;
	}
	cr_assert(s3_delete(P.c, full(rel), &err) == S3_OK);
}

static struct {
	struct strv	*out;
	const char	*under;
	size_t		 strip;
} walk;

static int
walk_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	const char	*rel = path + walk.strip;

	(void)st;
	(void)ftw;
	if (flag == FTW_F && strncmp(rel, walk.under, strlen(walk.under)) == 0)
		strv_add(walk.out, rel);
	return 0;
}

static int
list_cb(void *arg, const struct s3_object *o)
{
	strv_add(arg, o->key + strlen(P.prefix));
	return 0;
}

/* Every object under rel prefix under, by its relative name. */
static void
obj_list(const char *under, struct strv *out)
{
	struct s3_list_params	 lp;
	struct s3_error		 err;
	char			 pfx[1024];

	memset(out, 0, sizeof(*out));
	if (P.folder) {
		walk.out = out;
		walk.under = under;
		walk.strip = strlen(P.root) + 1;
		cr_assert(nftw(P.root, walk_one, 32, FTW_PHYS) == 0);
	} else {
		snprintf(pfx, sizeof(pfx), "%s%s", P.prefix, under);
		memset(&lp, 0, sizeof(lp));
		lp.prefix = pfx;
		cr_assert(s3_list(P.c, &lp, list_cb, NULL, out, &err) == S3_OK);
	}
	strv_sort(out);
}

/* "rel md5-of-contents" for every object under `under`: byte for byte. */
static void
snapshot(const char *under, struct strv *out)
{
	struct strv	 keys;
	struct buf	 b, line;
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen, i;
	size_t		 k;

	obj_list(under, &keys);
	memset(out, 0, sizeof(*out));
	buf_init(&b, BUF_NOMAX);
	buf_init(&line, BUF_NOMAX);
	for (k = 0; k < keys.n; k++) {
		cr_assert(obj_get(keys.v[k], &b) == 0, "'%s' went while being "
		    "read", keys.v[k]);
		cr_assert(EVP_Digest(b.data, b.len, md, &mdlen, EVP_md5(),
		    NULL) == 1);
		buf_reset(&line);
		buf_addf(&line, "%s ", keys.v[k]);
		for (i = 0; i < mdlen; i++)
			buf_addf(&line, "%02x", md[i]);
		strv_add(out, line.data);
	}
	buf_release(&b);
	buf_release(&line);
	strv_free(&keys);
}

/* Same entries in a and b, minus those whose key starts with a gone[]. */
static void
expect_snapshot_minus(struct strv *before, struct strv *after,
    const char *const *gone, const char *what)
{
	struct strv	want = { NULL, 0 };
	size_t		i, g;
	int		drop;

	for (i = 0; i < before->n; i++) {
		for (drop = 0, g = 0; gone != NULL && gone[g] != NULL; g++)
			drop |= strncmp(before->v[i], gone[g],
			    strlen(gone[g])) == 0;
		if (!drop)
			strv_add(&want, before->v[i]);
	}
	cr_expect_eq(strv_diff(after, &want, what), 0, "%s: not what was "
	    "expected (differences logged)", what);
	strv_free(&want);
}

/* ---- configs and runs ------------------------------------------------- */

static char *
tmp_path(const char *what)
{
	static char	paths[64][128];

	cr_assert_lt(P.nfiles, 64);
	snprintf(paths[P.nfiles], sizeof(paths[0]), "%s/%s-%d", P.tmp, what,
	    P.nfiles);
	return paths[P.nfiles++];
}

/*
 * A configuration: source and previews relative to the test's place;
 * endpoint NULL for the test server (ignored on the folder backend).
 */
static const char *
config(const char *endpoint, const char *source, const char *previews,
    const char *presets)
{
	const struct th_env	*e = th_env();
	struct buf		 b;
	char			*path = tmp_path("config");

	buf_init(&b, BUF_NOMAX);
	if (P.folder)
		buf_addf(&b, "[storage]\ndirectory = %s\nsource = %s\n"
		    "previews = %s\n\n%s", P.root, source, previews, presets);
	else
		buf_addf(&b, "[storage]\nbucket = %s\nendpoint = %s\n"
		    "region = %s\npath_style = true\nsource = %s%s\n"
		    "previews = %s%s\nretries = 2\ntimeout = 5\n\n%s",
		    e->bucket, endpoint != NULL ? endpoint : e->endpoint,
		    e->region, P.prefix, source, P.prefix, previews, presets);
	file_write(path, b.data, b.len);
	buf_release(&b);
	return path;
}

static void
prewctl(struct th_run *r, const char *const *env, const char *cfg,
    const char *const *args)
{
	const char	*argv[24];
	struct th_opts	 o = { env, RUN_LIMIT, NULL };
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

#define PREWCTL(r, cfg, ...) prewctl((r), NULL, (cfg),			\
	(const char *const []){ __VA_ARGS__, NULL })
#define PREWCTL_ENV(r, env, cfg, ...) prewctl((r), (env), (cfg),	\
	(const char *const []){ __VA_ARGS__, NULL })

static struct th_json *
json_of(const struct th_run *r)
{
	return th_json_parse(r->out.data, r->out.len);
}

/* The strings of the array at path (or each element's field), added. */
static void
json_strings(const struct th_json *j, const char *path, const char *field,
    struct strv *out)
{
	const struct th_json	*a = th_json_at(j, path);
	size_t			 i;

	cr_assert_not_null(a, "no '%s' in the JSON", path);
	cr_assert_eq(th_json_type(a), TH_JSON_ARRAY, "'%s' is no array", path);
	for (i = 0; i < th_json_len(a); i++)
		strv_add(out, th_json_str(th_json_item(a, i), field != NULL ?
		    field : ""));
}

/* Does the text hold needle? For messages on stderr. */
static int
has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

/* ---- the fault proxy ---------------------------------------------------- */

static void
proxy_start(const char *const *opts)
{
	th_proxy_start(&P.px, opts);
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

/* ---- setup -------------------------------------------------------------- */

static void
setup(void)
{
	P.c = th_client();
	snprintf(P.prefix, sizeof(P.prefix), "%s", th_prefix("purge"));
	memcpy(P.tmp, "/tmp/prewctl-purge-XXXXXX", 26);
	cr_assert_not_null(mkdtemp(P.tmp));
}

/* After setup: the folder backend. */
static void
setup_dir(void)
{
	memcpy(P.root, "/tmp/prewctl-purge-dir-XXXXXX", 30);
	cr_assert_not_null(mkdtemp(P.root));
	P.folder = 1;
}

static void
teardown(void)
{
	th_proxy_stop(&P.px);
	if (P.c != NULL) {
		th_delete_prefix(P.c, P.prefix);
		s3_client_free(P.c);
	}
	if (P.root[0] != '\0')
		th_rmtree(P.root);
	if (P.tmp[0] != '\0')
		th_rmtree(P.tmp);
}

TestSuite(purge, .init = setup, .fini = teardown, .timeout = 300);

/* ---- 1. --removed-presets deletes only what prewctl made ----------------- */

static const char presets_keep_gone[] =
    "[preset keep]\nwidth = 64\n\n[preset gone]\nwidth = 48\nformat = png\n";
static const char presets_keep[] = "[preset keep]\nwidth = 64\n";

static const struct {
	const char	*rel;
	const char	*body;
	const char	*dir;		/* as plan names it */
} foreign[] = {
	{ "prew/My Docs/tax.pdf", "%PDF-1.4\n% not a preview\n", "My Docs" },
	{ "prew/.git/HEAD", "ref: refs/heads/main\n", ".git" },
	{ "prew/other/keep.txt", "not made by prewctl\n", "other" },
};
#define NFOREIGN (sizeof(foreign) / sizeof(foreign[0]))

struct root_want {
	const char	*name;
	const char	*kind;
};

/* plan --json's "root": exactly these entries, in any order. */
static void
expect_root(const struct th_json *j, const struct root_want *want, size_t n,
    const char *what)
{
	const struct th_json	*root = th_json_at(j, "root");
	struct strv		 got = { NULL, 0 }, exp = { NULL, 0 };
	struct buf		 line;
	size_t			 i;

	cr_assert_not_null(root, "%s: no 'root' in plan --json", what);
	buf_init(&line, BUF_NOMAX);
	for (i = 0; i < th_json_len(root); i++) {
		buf_reset(&line);
		buf_addf(&line, "%s: %s", th_json_str(th_json_item(root, i),
		    "name"), th_json_str(th_json_item(root, i), "kind"));
		strv_add(&got, line.data);
	}
	for (i = 0; i < n; i++) {
		buf_reset(&line);
		buf_addf(&line, "%s: %s", want[i].name, want[i].kind);
		strv_add(&exp, line.data);
	}
	cr_expect_eq(strv_diff(&got, &exp, what), 0, "%s: plan's root is not "
	    "what the bucket holds (differences logged)", what);
	buf_release(&line);
	strv_free(&got);
	strv_free(&exp);
}

static void
removed_presets_only(void)
{
	static const struct root_want before[] = {
		{ "gone", "removed" }, { "My Docs", "foreign" },
		{ ".git", "foreign" }, { "other", "foreign" },
	};
	static const char *const gone[] = {
		"prew/gone/", "prew/.prewctl-stamp-gone ", NULL
	};
	const char	*cfg1, *cfg2;
	struct strv	 snap0, snap1, removed = { NULL, 0 };
	struct th_run	 r;
	struct th_json	*j;
	struct buf	 line;
	size_t		 i;

	obj_put_fixture("photo/a.jpg", PIC_A);
	obj_put_fixture("photo/sub dir/b.jpg", PIC_B);
	obj_put_fixture("photo/c.png", PIC_TINY);
	cfg1 = config(NULL, "photo/", "prew/", presets_keep_gone);
	PREWCTL(&r, cfg1, "generate", "-j", "2");
	th_expect_exit(&r, 0, "generate with keep and gone");
	th_run_release(&r);
	for (i = 0; i < NFOREIGN; i++)
		obj_put_str(foreign[i].rel, foreign[i].body);
	obj_list("prew/gone/", &removed);
	cr_assert_eq(removed.n, 3, "generate made %zu previews of 'gone'",
	    removed.n);
	cr_assert(obj_exists("prew/.prewctl-stamp-gone"));
	snapshot("", &snap0);

	/* 'gone' is no longer configured. */
	cfg2 = config(NULL, "photo/", "prew/", presets_keep);
	PREWCTL(&r, cfg2, "plan");
	th_expect_exit(&r, 0, "plan");
	buf_init(&line, BUF_NOMAX);
	buf_addf(&line, "removed\t%sgone/\t", P.folder ? "prew/" :
	    full("prew/"));
	cr_expect(has(r.out.data, line.data), "plan does not list 'gone' as "
	    "removed: %s", r.out.data);
	for (i = 0; i < NFOREIGN; i++) {
		buf_reset(&line);
		buf_addf(&line, "foreign\t%s%s/\t", P.folder ? "prew/" :
		    full("prew/"), foreign[i].dir);
		cr_expect(has(r.out.data, line.data), "plan does not list "
		    "'%s' as foreign: %s", foreign[i].dir, r.out.data);
	}
	buf_release(&line);
	th_run_release(&r);
	PREWCTL(&r, cfg2, "plan", "--json");
	th_expect_exit(&r, 0, "plan --json");
	j = json_of(&r);
	expect_root(j, before, 4, "plan --json before purge");
	th_json_free(j);
	th_run_release(&r);

	PREWCTL(&r, cfg2, "purge", "--removed-presets", "--json");
	th_expect_exit(&r, 0, "purge --removed-presets");
	j = json_of(&r);
	cr_expect_eq(th_json_num(j, "deleted"), 4, "deleted: 3 previews and "
	    "the stamp");
	cr_expect_eq(th_json_num(j, "failed"), 0);
	th_json_free(j);
	th_run_release(&r);

	/* Exactly the removed preset went; everything else byte for byte. */
	snapshot("", &snap1);
	expect_snapshot_minus(&snap0, &snap1, gone, "after purge "
	    "--removed-presets");
	for (i = 0; i < NFOREIGN; i++) {
		struct buf b;

		buf_init(&b, BUF_NOMAX);
		cr_assert(obj_get(foreign[i].rel, &b) == 0, "'%s' was deleted",
		    foreign[i].rel);
		cr_expect(b.len == strlen(foreign[i].body) &&
		    memcmp(b.data, foreign[i].body, b.len) == 0,
		    "'%s' changed", foreign[i].rel);
		buf_release(&b);
	}
	cr_expect(!obj_exists("prew/.prewctl-stamp-gone"));
	cr_expect(obj_exists("prew/.prewctl-stamp-keep"));

	PREWCTL(&r, cfg2, "plan", "--json");
	th_expect_exit(&r, 0, "plan --json after purge");
	j = json_of(&r);
	expect_root(j, before + 1, 3, "plan --json after purge");
	cr_expect_eq(th_json_num(j, "presets.keep.fresh"), 3);
	th_json_free(j);
	th_run_release(&r);
	strv_free(&snap0);
	strv_free(&snap1);
	strv_free(&removed);
}

Test(purge, removed_presets_deletes_only_what_prewctl_made)
{
	removed_presets_only();
}

Test(purge, folder_removed_presets_deletes_only_what_prewctl_made,
    .init = setup_dir)
{
	removed_presets_only();
}

/* ---- 2. two configurations, one previews prefix ---------------------- */

/*
 * A and B share prew/; A's originals are under a-photo/, B's under
 * b-photo/. Each generate leaves stamps naming its own source.
 */
static const char presets_a[] =
    "[preset a1]\nwidth = 64\n\n[preset a2]\nwidth = 40\n";
static const char presets_a1[] = "[preset a1]\nwidth = 64\n";
static const char presets_b[] =
    "[preset b1]\nwidth = 56\n\n[preset b2]\nwidth = 32\n";
static const char presets_b2[] = "[preset b2]\nwidth = 32\n";

static void
two_configs(const char **cfg_a, const char **cfg_b)
{
	struct th_run	r;

	obj_put_fixture("a-photo/x.jpg", PIC_A);
	obj_put_fixture("a-photo/y.jpg", PIC_B);
	obj_put_fixture("b-photo/x.jpg", PIC_B);
	obj_put_fixture("b-photo/z.png", PIC_TINY);
	*cfg_a = config(NULL, "a-photo/", "prew/", presets_a);
	*cfg_b = config(NULL, "b-photo/", "prew/", presets_b);
	PREWCTL(&r, *cfg_a, "generate", "-j", "2");
	th_expect_exit(&r, 0, "generate A");
	th_run_release(&r);
	PREWCTL(&r, *cfg_b, "generate", "-j", "2");
	th_expect_exit(&r, 0, "generate B");
	th_run_release(&r);
}

Test(purge, two_configs_never_purge_each_other)
{
	static const struct root_want root_a[] = {
		{ "a2", "removed" }, { "b1", "theirs" }, { "b2", "theirs" },
	};
	static const struct root_want root_b[] = {
		{ "b1", "removed" }, { "a1", "theirs" },
	};
	static const char *const gone_a[] = {
		"prew/a2/", "prew/.prewctl-stamp-a2 ", NULL
	};
	static const char *const gone_b[] = {
		"prew/b1/", "prew/.prewctl-stamp-b1 ", NULL
	};
	const char	*cfg_a, *cfg_b, *cfg;
	struct strv	 s0, s1;
	struct th_run	 r;
	struct th_json	*j;

	two_configs(&cfg_a, &cfg_b);
	snapshot("prew/", &s0);
	cr_assert_eq(s0.n, 2 * 2 + 2 * 2 + 4, "%zu objects under prew/",
	    s0.n);

	/* A drops a2: its purge deletes a2, never B's presets. */
	cfg = config(NULL, "a-photo/", "prew/", presets_a1);
	PREWCTL(&r, cfg, "plan", "--json");
	th_expect_exit(&r, 0, "plan of A without a2");
	j = json_of(&r);
	expect_root(j, root_a, 3, "plan of A");
	th_json_free(j);
	th_run_release(&r);
	PREWCTL(&r, cfg, "purge", "--removed-presets");
	th_expect_exit(&r, 0, "purge --removed-presets of A");
	th_run_release(&r);
	snapshot("prew/", &s1);
	expect_snapshot_minus(&s0, &s1, gone_a, "after A's purge");
	strv_free(&s0);

	/* B drops b1: its purge deletes b1, never A's a1. */
	s0 = s1;
	cfg = config(NULL, "b-photo/", "prew/", presets_b2);
	PREWCTL(&r, cfg, "plan", "--json");
	th_expect_exit(&r, 0, "plan of B without b1");
	j = json_of(&r);
	expect_root(j, root_b, 2, "plan of B");
	th_json_free(j);
	th_run_release(&r);
	PREWCTL(&r, cfg, "purge", "--removed-presets");
	th_expect_exit(&r, 0, "purge --removed-presets of B");
	th_run_release(&r);
	snapshot("prew/", &s1);
	expect_snapshot_minus(&s0, &s1, gone_b, "after B's purge");
	cr_expect(obj_exists("prew/.prewctl-stamp-a1"));
	cr_expect(obj_exists("prew/a1/x.jpg") && obj_exists("prew/a1/y.jpg"));
	cr_expect(obj_exists("prew/.prewctl-stamp-b2"));
	strv_free(&s0);
	strv_free(&s1);
	(void)cfg_b;
}

Test(purge, same_preset_name_as_another_source_is_refused)
{
	static const struct {
		const char	*args[4];
	} cmds[] = {
		{ { "plan", NULL } },
		{ { "plan", "--json", NULL } },
		{ { "generate", NULL } },
		{ { "generate", "--force", NULL } },
		{ { "purge", NULL } },
		{ { "purge", "--removed-presets", NULL } },
	};
	const char	*cfg_a, *cfg_b, *cfg;
	struct strv	 s0, s1;
	struct th_run	 r;
	size_t		 i;

	two_configs(&cfg_a, &cfg_b);
	/*
	 * A's source, B's preset name b1: b1's stamp names b-photo/. (purge
	 * --force goes on even so, as the man page says, and would delete
	 * B's b1 previews of originals A does not have: not tried here.)
	 */
	cfg = config(NULL, "a-photo/", "prew/",
	    "[preset b1]\nwidth = 56\n\n[preset a1]\nwidth = 64\n");
	snapshot("", &s0);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char	*argv[8] = { "-c", cfg };
		size_t		 n = 2, k;

		for (k = 0; cmds[i].args[k] != NULL; k++)
			argv[n++] = cmds[i].args[k];
		argv[n] = NULL;
		th_prewctl(&r, argv, NULL);
		cr_log_info("%s %s: exit %d: %s", cmds[i].args[0],
		    cmds[i].args[1] != NULL ? cmds[i].args[1] : "", r.status,
		    r.err.data);
		cr_expect_eq(r.status, 2, "%s %s: exit %d, not 2; stderr: %s",
		    cmds[i].args[0], cmds[i].args[1] != NULL ?
		    cmds[i].args[1] : "", r.status, r.err.data);
		cr_expect(has(r.err.data, "b-photo/"), "%s: the message does "
		    "not name the other source: %s", cmds[i].args[0],
		    r.err.data);
		th_run_release(&r);
	}
	/* Nothing deleted, nothing written. */
	snapshot("", &s1);
	cr_expect_eq(strv_diff(&s1, &s0, "after the refused runs"), 0,
	    "the refused runs changed the bucket");
	strv_free(&s0);
	strv_free(&s1);
	(void)cfg_a;
	(void)cfg_b;
}

/*
 * The failure marks live under <previews>.prewctl-failed/<preset>/, for
 * every configuration sharing the previews. B's mark of its broken
 * b-photo/bad.jpg is B's: A has no bad.jpg, so to A that mark's original
 * is gone, but it is not A's to delete (B would read and fail its broken
 * original again after each purge of A). And A's mark of its broken x.jpg
 * must not make B's good x.jpg, added meanwhile, a known failure.
 */
Test(purge, two_configs_keep_their_own_failure_marks)
{
	const char	*cfg_a, *cfg_b;
	struct th_run	 r;
	struct th_json	*j;

	obj_put_fixture("b-photo/ok.jpg", PIC_B);
	obj_put_fixture("b-photo/bad.jpg", TEXT_JPG);
	obj_put_fixture("a-photo/ok.jpg", PIC_B);
	cfg_a = config(NULL, "a-photo/", "prew/", presets_a1);
	cfg_b = config(NULL, "b-photo/", "prew/", presets_b2);
	PREWCTL(&r, cfg_b, "generate");
	th_expect_exit(&r, 1, "generate B (its bad.jpg is broken)");
	th_run_release(&r);
	cr_assert(obj_exists("prew/.prewctl-failed/b2/bad.jpg"), "B left no mark "
	    "for its broken bad.jpg");

	/* Both get an x.jpg: A's is broken, B's is good. */
	obj_put_fixture("a-photo/x.jpg", TEXT_JPG);
	obj_put_fixture("b-photo/x.jpg", PIC_A);
	/* A's new stamp makes it wait out the second: its mark is newer. */
	PREWCTL(&r, cfg_a, "generate");
	th_expect_exit(&r, 1, "generate A (its x.jpg is broken)");
	th_run_release(&r);
	cr_assert(obj_exists("prew/.prewctl-failed/a1/x.jpg"), "A left no mark "
	    "for its broken x.jpg");

	PREWCTL(&r, cfg_b, "generate", "--json");
	cr_log_info("generate B: exit %d: %s\n%s", r.status, r.err.data,
	    r.out.data);
	j = json_of(&r);
	/* bad.jpg is B's known failure; x.jpg is not. */
	cr_expect_eq(th_json_num(j, "presets.b2.known-failure"), 1, "B's "
	    "known failures: %lld, not 1 (bad.jpg): its good x.jpg is taken "
	    "for one because of A's mark",
	    th_json_num(j, "presets.b2.known-failure"));
	th_json_free(j);
	th_run_release(&r);
	cr_expect(obj_exists("prew/b2/x.jpg"), "B made no preview of its good "
	    "x.jpg: A's failure mark of a-photo/x.jpg stopped it");

	PREWCTL(&r, cfg_a, "purge");
	th_expect_exit(&r, 0, "purge A");
	th_run_release(&r);
	cr_expect(obj_exists("prew/.prewctl-failed/b2/bad.jpg"), "A's purge "
	    "deleted B's failure mark of b-photo/bad.jpg");
}

/* ---- 3. the guards ------------------------------------------------------ */

static const char presets_p1p2[] =
    "[preset p1]\nwidth = 64\n\n[preset p2]\nwidth = 32\nformat = png\n";

/* n originals photo/o<i>.png with their previews made by generate. */
static const char *
generated(int n)
{
	struct th_run	 r;
	const char	*cfg;
	char		 rel[64];
	int		 i;

	for (i = 0; i < n; i++) {
		snprintf(rel, sizeof(rel), "photo/o%02d.png", i);
		obj_put_fixture(rel, PIC_TINY);
	}
	cfg = config(NULL, "photo/", "prew/", presets_p1p2);
	PREWCTL(&r, cfg, "generate", "-j", "2");
	th_expect_exit(&r, 0, "generate");
	th_run_release(&r);
	return cfg;
}

Test(purge, more_than_half_is_refused_then_forced)
{
	const char	*cfg;
	struct strv	 s0, s1, left;
	struct th_run	 r;
	struct buf	 b;
	char		 rel[64];
	int		 i;

	cfg = generated(12);
	/* The source was renamed: one stray original stayed behind. */
	buf_init(&b, BUF_NOMAX);
	for (i = 1; i < 12; i++) {
		snprintf(rel, sizeof(rel), "photo/o%02d.png", i);
		cr_assert(obj_get(rel, &b) == 0);
		snprintf(rel, sizeof(rel), "photos/o%02d.png", i);
		obj_put(rel, b.data, b.len);
		snprintf(rel, sizeof(rel), "photo/o%02d.png", i);
		obj_del(rel);
	}
	buf_release(&b);
	snapshot("prew/", &s0);
	cr_assert_eq(s0.n, 2 * 12 + 2);

	PREWCTL(&r, cfg, "purge");
	th_expect_exit(&r, 2, "purge of 11 of 12");
	cr_expect(has(r.err.data, "more than half"), "stderr does not say more "
	    "than half would go: %s", r.err.data);
	th_run_release(&r);
	snapshot("prew/", &s1);
	cr_expect_eq(strv_diff(&s1, &s0, "after the refused purge"), 0,
	    "the refused purge deleted something");
	strv_free(&s1);

	PREWCTL(&r, cfg, "purge", "--force");
	th_expect_exit(&r, 0, "purge --force");
	th_run_release(&r);
	obj_list("prew/", &left);
	cr_expect_eq(left.n, 2 + 2, "%zu objects left under prew/", left.n);
	cr_expect(strv_has(&left, "prew/p1/o00.png") &&
	    strv_has(&left, "prew/p2/o00.png"), "the stray original's "
	    "previews went too");
	strv_free(&left);
	strv_free(&s0);
}

/* Orphans of a preset with `previews` previews: the share guard's limit. */
static const struct share_case {
	int	 previews;
	int	 orphans;
	int	 code;
} share_cases[] = {
	{ 11, 10, 0 },	/* more than half, but 10: not refused */
	{ 4, 3, 0 },	/* under 10 */
	{ 22, 11, 0 },	/* half, not more */
	{ 12, 11, 2 },	/* more than half and more than 10 */
};

Test(purge, share_guard_only_above_ten_keys)
{
	struct strv	 left;
	struct th_run	 r;
	const char	*cfg;
	char		 rel[64], pfx[64];
	size_t		 c;
	int		 i;

	cfg = config(NULL, "photo/", "prew/", "[preset p]\nwidth = 32\n");
	for (c = 0; c < sizeof(share_cases) / sizeof(share_cases[0]); c++) {
		const struct share_case *sc = &share_cases[c];

		for (i = 0; i < sc->previews; i++) {
			snprintf(rel, sizeof(rel), "prew/p/c%zu/%02d.jpg", c,
			    i);
			obj_put_str(rel, "preview");
			if (i >= sc->orphans) {
				snprintf(rel, sizeof(rel),
				    "photo/c%zu/%02d.jpg", c, i);
				obj_put_str(rel, "original");
			}
		}
		/* One case at a time: --prefix keeps the others out. */
		snprintf(pfx, sizeof(pfx), "c%zu", c);
		PREWCTL(&r, cfg, "purge", "--prefix", pfx);
		cr_log_info("%d orphans of %d: exit %d: %s", sc->orphans,
		    sc->previews, r.status, r.err.data);
		th_expect_exit(&r, sc->code, "purge");
		th_run_release(&r);
		snprintf(rel, sizeof(rel), "prew/p/c%zu/", c);
		obj_list(rel, &left);
		cr_expect_eq(left.n, (size_t)(sc->code == 0 ? sc->previews -
		    sc->orphans : sc->previews), "%d orphans of %d previews: "
		    "%zu left", sc->orphans, sc->previews, left.n);
		strv_free(&left);
	}
}

/* Count the files under root/dir. */
static size_t
count_files(const char *dir)
{
	struct strv	v;
	size_t		n;

	obj_list(dir, &v);
	n = v.n;
	strv_free(&v);
	return n;
}

#define MAXDEL_KEEP	10002
#define MAXDEL_ORPHANS	10001

Test(purge, folder_max_delete_default_is_ten_thousand, .init = setup_dir)
{
	struct th_run	 r;
	struct th_json	*j;
	const char	*cfg;
	char		 path[256];
	int		 i;

	/*
	 * Tiny files: purge reads no original. As many previews with their
	 * originals as without, so that the share guard (more than half)
	 * stays out of it and only --max-delete decides.
	 */
	for (i = 0; i < MAXDEL_KEEP; i++) {
		snprintf(path, sizeof(path), "%s/photo/k/%05d.jpg", P.root, i);
		file_write(path, "o", 1);
		snprintf(path, sizeof(path), "%s/prew/p/k/%05d.jpg", P.root, i);
		file_write(path, "p", 1);
	}
	for (i = 0; i < MAXDEL_ORPHANS; i++) {
		snprintf(path, sizeof(path), "%s/prew/p/gone/%05d.jpg", P.root,
		    i);
		file_write(path, "p", 1);
	}
	cfg = config(NULL, "photo/", "prew/", "[preset p]\nwidth = 32\n");

	PREWCTL(&r, cfg, "purge");
	th_expect_exit(&r, 2, "purge of 10001 orphans");
	cr_expect(has(r.err.data, "max-delete"), "%s", r.err.data);
	th_run_release(&r);
	cr_expect_eq(count_files("prew/p/gone/"), MAXDEL_ORPHANS);

	PREWCTL(&r, cfg, "purge", "--force");
	th_expect_exit(&r, 2, "purge --force of 10001 orphans");
	cr_expect(has(r.err.data, "max-delete"), "%s", r.err.data);
	th_run_release(&r);
	cr_expect_eq(count_files("prew/p/gone/"), MAXDEL_ORPHANS);

	PREWCTL(&r, cfg, "purge", "--max-delete", "20000", "--json");
	th_expect_exit(&r, 0, "purge --max-delete 20000");
	j = json_of(&r);
	cr_expect_eq(th_json_num(j, "deleted"), MAXDEL_ORPHANS);
	th_json_free(j);
	th_run_release(&r);
	cr_expect_eq(count_files("prew/p/gone/"), 0);
	cr_expect_eq(count_files("prew/p/k/"), MAXDEL_KEEP);
	cr_expect_eq(count_files("photo/"), MAXDEL_KEEP);
}

/* ---- 4. --prefix ------------------------------------------------------ */

static const char *const prefix_folders[] = { "2024", "2024x", "z" };

/*
 * In each folder three previews per preset of p1 and p2, and the
 * originals of all but the first: one orphan per folder and preset.
 */
static const char *
prefix_layout(void)
{
	char	rel[128];
	size_t	f;
	int	i, p;

	for (f = 0; f < 3; f++)
		for (i = 0; i < 3; i++) {
			for (p = 1; p <= 2; p++) {
				snprintf(rel, sizeof(rel), "prew/p%d/%s/%d.jpg",
				    p, prefix_folders[f], i);
				obj_put_str(rel, "preview");
			}
			if (i == 0)
				continue;
			snprintf(rel, sizeof(rel), "photo/%s/%d.jpg",
			    prefix_folders[f], i);
			obj_put_str(rel, "original");
		}
	return config(NULL, "photo/", "prew/", presets_p1p2);
}

Test(purge, prefix_deletes_only_under_that_folder)
{
	static const char *const gone[] = {
		"prew/p1/2024/0.jpg ", "prew/p2/2024/0.jpg ", NULL
	};
	static const char *const spellings[] = { "2024", "2024/" };
	struct strv	 s0, s1, keys = { NULL, 0 }, want = { NULL, 0 };
	struct th_run	 r;
	struct th_json	*j;
	const char	*cfg;
	size_t		 i;

	cfg = prefix_layout();
	snapshot("prew/", &s0);
	strv_add(&want, full("prew/p1/2024/0.jpg"));
	strv_add(&want, full("prew/p2/2024/0.jpg"));
	for (i = 0; i < 2; i++) {
		PREWCTL(&r, cfg, "purge", "-n", "--json", "--prefix",
		    spellings[i]);
		th_expect_exit(&r, 0, "purge -n --prefix");
		j = json_of(&r);
		json_strings(j, "keys", NULL, &keys);
		cr_expect_eq(strv_diff(&keys, &want, spellings[i]), 0,
		    "purge -n --prefix %s: not the orphans of 2024/ "
		    "(differences logged)", spellings[i]);
		th_json_free(j);
		th_run_release(&r);
		strv_free(&keys);
	}
	snapshot("prew/", &s1);
	cr_expect_eq(strv_diff(&s1, &s0, "after -n"), 0, "-n deleted");
	strv_free(&s1);

	PREWCTL(&r, cfg, "purge", "--prefix", "2024", "--removed-presets");
	th_expect_exit(&r, 2, "purge --prefix --removed-presets");
	th_run_release(&r);
	snapshot("prew/", &s1);
	cr_expect_eq(strv_diff(&s1, &s0, "after the usage error"), 0,
	    "a usage error deleted");
	strv_free(&s1);

	PREWCTL(&r, cfg, "purge", "--prefix", "2024");
	th_expect_exit(&r, 0, "purge --prefix 2024");
	th_run_release(&r);
	snapshot("prew/", &s1);
	expect_snapshot_minus(&s0, &s1, gone, "after purge --prefix 2024");
	strv_free(&s0);
	strv_free(&s1);
	strv_free(&want);
}

/* ---- 5. errors, -v, --json, marks ------------------------------------- */

/* One orphan per preset of p1 and p2 (o.jpg) beside a kept original. */
static void
two_orphans(struct strv *orphans)
{
	obj_put_str("photo/kept.jpg", "original");
	obj_put_str("prew/p1/kept.jpg", "preview");
	obj_put_str("prew/p2/kept.jpg", "preview");
	obj_put_str("prew/p1/o.jpg", "preview");
	obj_put_str("prew/p2/o d+%.jpg", "preview");
	memset(orphans, 0, sizeof(*orphans));
	strv_add(orphans, full("prew/p1/o.jpg"));
	strv_add(orphans, full("prew/p2/o d+%.jpg"));
}

Test(purge, storage_errors_exit_3_deleting_nothing)
{
	char		 ep[64];
	const char	*wrong[] = {
		"AWS_SECRET_ACCESS_KEY=wrong-secret-0000", NULL
	};
	const char	*cfg;
	struct strv	 orphans, s0, s1;
	struct th_run	 r;

	two_orphans(&orphans);
	snapshot("", &s0);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", closed_port());
	cfg = config(ep, "photo/", "prew/", presets_p1p2);
	PREWCTL(&r, cfg, "purge");
	th_expect_exit(&r, 3, "purge against a closed port");
	th_run_release(&r);

	cfg = config(NULL, "photo/", "prew/", presets_p1p2);
	PREWCTL_ENV(&r, wrong, cfg, "purge");
	th_expect_exit(&r, 3, "purge with a wrong secret");
	th_run_release(&r);
	PREWCTL_ENV(&r, wrong, cfg, "purge", "--force");
	th_expect_exit(&r, 3, "purge --force with a wrong secret");
	th_run_release(&r);

	snapshot("", &s1);
	cr_expect_eq(strv_diff(&s1, &s0, "after the failed purges"), 0,
	    "a failed purge deleted something");
	strv_free(&s0);
	strv_free(&s1);
	strv_free(&orphans);
}

Test(purge, verbose_names_every_key_deleted)
{
	struct strv	 orphans, left;
	struct th_run	 r;
	struct buf	 quoted;
	const char	*cfg;
	size_t		 i;

	two_orphans(&orphans);
	cfg = config(NULL, "photo/", "prew/", presets_p1p2);
	PREWCTL(&r, cfg, "-v", "purge");
	th_expect_exit(&r, 0, "purge -v");
	buf_init(&quoted, BUF_NOMAX);
	for (i = 0; i < orphans.n; i++) {
		buf_reset(&quoted);
		buf_addf(&quoted, "'%s'", orphans.v[i]);
		cr_expect(has(r.err.data, quoted.data), "purge -v does not "
		    "name %s: %s", quoted.data, r.err.data);
	}
	buf_reset(&quoted);
	buf_addf(&quoted, "'%s'", full("prew/p1/kept.jpg"));
	cr_expect(!has(r.err.data, quoted.data), "purge -v names a key it "
	    "kept: %s", r.err.data);
	buf_release(&quoted);
	th_run_release(&r);
	obj_list("prew/", &left);
	cr_expect_eq(left.n, 2, "%zu left under prew/", left.n);
	strv_free(&left);
	strv_free(&orphans);
}

Test(purge, json_lists_keys_and_failures)
{
	const char	*cfg;
	struct strv	 orphans, got = { NULL, 0 }, s0, s1;
	struct th_run	 r;
	struct th_json	*j;
	size_t		 i;

	two_orphans(&orphans);
	snapshot("", &s0);
	cfg = config(NULL, "photo/", "prew/", presets_p1p2);
	PREWCTL(&r, cfg, "purge", "-n", "--json");
	th_expect_exit(&r, 0, "purge -n --json");
	j = json_of(&r);
	json_strings(j, "keys", NULL, &got);
	cr_expect_eq(strv_diff(&got, &orphans, "purge -n --json"), 0,
	    "purge -n --json: not the orphans (differences logged)");
	cr_expect_eq(th_json_num(j, "deleted"), 0);
	th_json_free(j);
	th_run_release(&r);
	strv_free(&got);

	/* Every DeleteObjects refused: each key under failures, exit 3. */
	proxy_start((const char *const []){ "--deny", "DELETE", NULL });
	cfg = config(P.px.endpoint, "photo/", "prew/", presets_p1p2);
	PREWCTL(&r, cfg, "purge", "--json");
	th_expect_exit(&r, 3, "purge --json with deletes refused");
	j = json_of(&r);
	json_strings(j, "failures", "key", &got);
	cr_expect_eq(strv_diff(&got, &orphans, "failures"), 0, "failures: not "
	    "the orphans (differences logged)");
	for (i = 0; i < th_json_len(th_json_at(j, "failures")); i++) {
		const char *e = th_json_str(th_json_item(th_json_at(j,
		    "failures"), i), "error");

		cr_expect(e != NULL && has(e, "AccessDenied"), "failure %zu: "
		    "error '%s'", i, e != NULL ? e : "(null)");
	}
	cr_expect_eq(th_json_num(j, "exit"), 3);
	cr_expect_eq(th_json_num(j, "deleted"), 0);
	th_json_free(j);
	th_run_release(&r);
	snapshot("", &s1);
	cr_expect_eq(strv_diff(&s1, &s0, "after the refused deletes"), 0);
	strv_free(&got);
	strv_free(&s0);
	strv_free(&s1);
	strv_free(&orphans);
}

Test(purge, marks_of_gone_originals_are_deleted)
{
	struct th_run	 r;
	struct th_json	*j;
	const char	*cfg;

	obj_put_fixture("photo/good.jpg", PIC_A);
	obj_put_fixture("photo/bad.jpg", TEXT_JPG);
	obj_put("photo/sub/empty.jpg", "", 0);
	cfg = config(NULL, "photo/", "prew/", presets_keep);
	PREWCTL(&r, cfg, "generate");
	th_expect_exit(&r, 1, "generate with two broken originals");
	th_run_release(&r);
	cr_assert(obj_exists("prew/.prewctl-failed/keep/bad.jpg"));
	cr_assert(obj_exists("prew/.prewctl-failed/keep/sub/empty.jpg"));

	/* One broken original goes; its mark is bookkeeping of nothing. */
	obj_del("photo/sub/empty.jpg");
	PREWCTL(&r, cfg, "purge", "-n", "--json");
	th_expect_exit(&r, 0, "purge -n");
	j = json_of(&r);
	cr_expect_eq(th_json_len(th_json_at(j, "keys")), 1);
	cr_expect_str_eq(th_json_str(j, "keys[0]"),
	    full("prew/.prewctl-failed/keep/sub/empty.jpg"));
	th_json_free(j);
	th_run_release(&r);
	PREWCTL(&r, cfg, "purge", "--json");
	th_expect_exit(&r, 0, "purge");
	j = json_of(&r);
	cr_expect_eq(th_json_num(j, "marks"), 1);
	cr_expect_eq(th_json_num(j, "deleted"), 1);
	th_json_free(j);
	th_run_release(&r);
	cr_expect(!obj_exists("prew/.prewctl-failed/keep/sub/empty.jpg"),
	    "the mark of a gone original is still there");
	cr_expect(obj_exists("prew/.prewctl-failed/keep/bad.jpg"), "the mark of a "
	    "broken original still there was deleted");
	cr_expect(obj_exists("prew/keep/good.jpg"));
}
