/*
 * The merge-join, over the folder backend: files with chosen modification
 * times stand for objects with chosen LastModified.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "preview/diff.h"
#include "helpers.h"

/*
 * Seconds: the originals' time. A file's LastModified is the later of its
 * mtime and ctime (which is now): times in the future stand for chosen
 * ones.
 */
static time_t	T0;

struct seen {
	char		 rel[64][128];
	enum pstate	 state[64][2];
	int		 has_source[64];
	size_t		 n;
};

static char	root[] = "/tmp/prewctl-diff-XXXXXX";

static void
mkfile(const char *key, time_t mtime)
{
	char		 path[1024], *slash;
	struct timespec	 ts[2];
	int		 fd;

	snprintf(path, sizeof(path), "%s/%s", root, key);
	for (slash = strchr(path + strlen(root) + 1, '/'); slash != NULL;
	    slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0, "cannot create %s", path);
	cr_assert(write(fd, "x", 1) == 1);
	close(fd);
	ts[0].tv_sec = ts[1].tv_sec = mtime;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	cr_assert(utimensat(AT_FDCWD, path, ts, 0) == 0);
}

static int
record(void *arg, const struct diff_item *it)
{
	struct seen	*s = arg;

	cr_assert(s->n < 64);
	snprintf(s->rel[s->n], sizeof(s->rel[0]), "%s", it->rel);
	s->state[s->n][0] = it->state[0];
	s->state[s->n][1] = it->state[1];
	s->has_source[s->n] = it->source != NULL;
	s->n++;
	return 0;
}

static void
cleanup(void)
{
	th_rmtree(root);
}

static void
setup(void)
{
	T0 = time(NULL) + 1000000;
	cr_assert(mkdtemp(root) != NULL);
}

static enum store_status
run_ranges(struct diff_preset *presets, const char *subpath, int ranges,
    int lead, struct seen *s, struct diff_result *res)
{
	static char	*exts[] = { "jpg", "png" };
	struct config	 cfg;
	struct store	*st;
	struct store_error err;
	struct diff_params dp;
	enum store_status rc;
	char		 path[512];

	memset(&cfg, 0, sizeof(cfg));
	snprintf(path, sizeof(path), "%s/presets.ini", root);
	cfg.path = path;
	cfg.directory = root;
	st = store_new(&cfg, &rc, &err);
	cr_assert(st != NULL);
	memset(&dp, 0, sizeof(dp));
	dp.store = st;
	dp.source = "photo/";
	dp.previews = "prew/";
	dp.subpath = subpath;
	dp.presets = presets;
	dp.npresets = 2;
	dp.extensions = exts;
	dp.nextensions = 2;
	dp.ranges = ranges;
	memset(s, 0, sizeof(*s));
	/* A head start: the first pages read before diff_run asks. */
	if (lead)
		cr_assert_not_null(dp.lead = diff_lead_start(&dp));
	rc = diff_run(&dp, record, s, res, &err);
	diff_lead_free(dp.lead);
	store_free(st);
	return rc;
}

/* One listing of each stream: items in byte order. */
static enum store_status
run(struct diff_preset *presets, const char *subpath, struct seen *s,
    struct diff_result *res)
{
	return run_ranges(presets, subpath, 1, 0, s, res);
}

static size_t
find(const struct seen *s, const char *rel)
{
	size_t	i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->rel[i], rel) == 0)
			return i;
	cr_assert_fail("'%s' was not reported", rel);
	return 0;
}

TestSuite(diff, .init = setup, .fini = cleanup);

Test(diff, classifies_every_state)
{
	struct diff_preset	 p[2] = {
		{ "a", (int64_t)(T0 + 50) * 1000, 0 },
		{ "b", 0, 0 },
	};
	struct diff_result	 res;
	struct seen		 s;
	size_t			 i;

	mkfile("photo/missing.jpg", T0);
	mkfile("photo/fresh.jpg", T0);
	mkfile("prew/a/fresh.jpg", T0 + 100);	/* newer than the stamp */
	mkfile("prew/b/fresh.jpg", T0 + 100);
	mkfile("photo/newer.jpg", T0 + 200);	/* replaced after its previews */
	mkfile("prew/a/newer.jpg", T0 + 100);
	mkfile("prew/b/newer.jpg", T0 + 100);
	/* In its preview's second: it may have been replaced after it. */
	mkfile("photo/same.jpg", T0 + 100);
	mkfile("prew/a/same.jpg", T0 + 100);
	mkfile("prew/b/same.jpg", T0 + 100);
	mkfile("photo/old-preset.jpg", T0);
	mkfile("prew/a/old-preset.jpg", T0 + 50);	/* = stamp: stale */
	mkfile("prew/b/old-preset.jpg", T0 + 50);	/* no stamp time */
	mkfile("prew/a/gone.jpg", T0);
	mkfile("photo/readme.txt", T0);		/* not an image */
	mkfile("photo/UPPER.JPG", T0);		/* case-insensitive */

	cr_assert_eq(run(p, "", &s, &res), STORE_OK);
	cr_assert_eq(res.originals, 6);
	cr_assert_eq(res.ignored, 1);

	i = find(&s, "missing.jpg");
	cr_assert_eq(s.state[i][0], PS_MISSING);
	cr_assert_eq(s.state[i][1], PS_MISSING);
	i = find(&s, "fresh.jpg");
	cr_assert_eq(s.state[i][0], PS_FRESH);
	cr_assert_eq(s.state[i][1], PS_FRESH);
	i = find(&s, "newer.jpg");
	cr_assert_eq(s.state[i][0], PS_STALE_ORIGINAL);
	cr_assert_eq(s.state[i][1], PS_STALE_ORIGINAL);
	i = find(&s, "same.jpg");
	cr_assert_eq(s.state[i][0], PS_STALE_ORIGINAL);
	cr_assert_eq(s.state[i][1], PS_STALE_ORIGINAL);
	i = find(&s, "old-preset.jpg");
	cr_assert_eq(s.state[i][0], PS_STALE_PRESET);
	cr_assert_eq(s.state[i][1], PS_FRESH);
	i = find(&s, "gone.jpg");
	cr_assert(!s.has_source[i]);
	cr_assert_eq(s.state[i][0], PS_ORPHAN);
	cr_assert_eq(s.state[i][1], PS_NONE);
	i = find(&s, "UPPER.JPG");
	cr_assert_eq(s.state[i][0], PS_MISSING);
}

Test(diff, changed_preset_makes_every_preview_stale)
{
	struct diff_preset	 p[2] = { { "a", 0, 1 }, { "b", 0, 0 } };
	struct diff_result	 res;
	struct seen		 s;
	size_t			 i;

	mkfile("photo/x.jpg", T0);
	mkfile("prew/a/x.jpg", T0 + 100);
	mkfile("prew/b/x.jpg", T0 + 100);
	cr_assert_eq(run(p, "", &s, &res), STORE_OK);
	i = find(&s, "x.jpg");
	cr_assert_eq(s.state[i][0], PS_STALE_PRESET);
	cr_assert_eq(s.state[i][1], PS_FRESH);
}

/* The items come in S3's byte order, each once, whatever stream has it. */
Test(diff, byte_order_across_streams)
{
	static const char *const want[] = {
		"a b.jpg", "a+b.jpg", "a.jpg", "a/b.jpg", "a0.jpg", "z.jpg",
		"\xd1\x84\xd0\xbe\xd1\x82\xd0\xbe/x.jpg",
	};
	struct diff_preset	 p[2] = { { "a", 0, 0 }, { "b", 0, 0 } };
	struct diff_result	 res;
	struct seen		 s;
	size_t			 i;

	/* Spread over the streams: some only as originals, some orphans. */
	mkfile("photo/a.jpg", T0);
	mkfile("prew/a/a b.jpg", T0);
	mkfile("photo/a/b.jpg", T0);
	mkfile("prew/b/a+b.jpg", T0);
	mkfile("photo/a0.jpg", T0);
	mkfile("prew/a/a0.jpg", T0 + 1);
	mkfile("prew/b/z.jpg", T0);
	mkfile("photo/\xd1\x84\xd0\xbe\xd1\x82\xd0\xbe/x.jpg", T0);
	cr_assert_eq(run(p, "", &s, &res), STORE_OK);
	cr_assert_eq(s.n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < s.n; i++)
		cr_assert_str_eq(s.rel[i], want[i], "item %zu", i);
	i = find(&s, "a0.jpg");
	cr_assert_eq(s.state[i][0], PS_FRESH);
	cr_assert_eq(s.state[i][1], PS_MISSING);
}

Test(diff, subpath_limits_every_stream)
{
	struct diff_preset	 p[2] = { { "a", 0, 0 }, { "b", 0, 0 } };
	struct diff_result	 res;
	struct seen		 s;

	mkfile("photo/2024/x.jpg", T0);
	mkfile("photo/2023/y.jpg", T0);
	mkfile("prew/a/2023/gone.jpg", T0);
	mkfile("prew/a/2024/gone.jpg", T0);
	cr_assert_eq(run(p, "2024/", &s, &res), STORE_OK);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.rel[0], "2024/gone.jpg");
	cr_assert_str_eq(s.rel[1], "2024/x.jpg");
	cr_assert_eq(res.originals, 1);
}

Test(diff, extension_match)
{
	static char	*exts[] = { "jpg", "heic" };

	cr_assert(diff_has_extension("a/b.JPG", exts, 2));
	cr_assert(diff_has_extension("a/b.c.heic", exts, 2));
	cr_assert(!diff_has_extension("a.jpg/b", exts, 2));
	cr_assert(!diff_has_extension("a/b.", exts, 2));
	cr_assert(!diff_has_extension("a/jpg", exts, 2));
	cr_assert(!diff_has_extension("a/b.jpgx", exts, 2));
}

/* diff_classify alone: every state from the three entries and the stamp. */
static const struct {
	int		 src, prev, mark;	/* -1: absent, else mtime in s */
	int64_t		 stamp;
	int		 changed, retry;
	enum pstate	 want;
} classes[] = {
	{ -1, -1, -1, 0, 0, 0, PS_NONE },
	{ -1, 10, -1, 0, 0, 0, PS_ORPHAN },
	{ -1, 10, 20, 0, 0, 0, PS_ORPHAN },
	{ 10, -1, -1, 0, 0, 0, PS_MISSING },
	{ 10, 20, -1, 0, 0, 0, PS_FRESH },
	{ 10, 10, -1, 0, 0, 0, PS_STALE_ORIGINAL },	/* same second */
	{ 20, 10, -1, 0, 0, 0, PS_STALE_ORIGINAL },
	{ 10, 20, -1, 20, 0, 0, PS_STALE_PRESET },	/* = the stamp */
	{ 10, 20, -1, 15, 0, 0, PS_FRESH },
	{ 10, 20, -1, 0, 1, 0, PS_STALE_PRESET },
	/* A mark newer than the original and the stamp: known. */
	{ 10, -1, 30, 5, 0, 0, PS_KNOWN_FAILURE },
	{ 30, 10, 40, 5, 0, 0, PS_KNOWN_FAILURE },
	{ 10, -1, 30, 5, 0, 1, PS_MISSING },		/* --retry-failed */
	{ 40, -1, 30, 5, 0, 0, PS_MISSING },		/* changed since */
	{ 30, -1, 30, 5, 0, 0, PS_MISSING },		/* its second */
	{ 10, -1, 30, 35, 0, 0, PS_MISSING },		/* preset since */
	{ 10, -1, 30, 0, 1, 0, PS_MISSING },		/* preset changing */
	{ 10, 20, 30, 5, 0, 0, PS_FRESH },		/* made after all */
};

Test(diff, classify_table)
{
	struct diff_entry	 src, prev, mark;
	struct diff_preset	 p;
	size_t			 i;

	for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		src.mtime_ms = (int64_t)classes[i].src * 1000;
		prev.mtime_ms = (int64_t)classes[i].prev * 1000;
		mark.mtime_ms = (int64_t)classes[i].mark * 1000;
		p = (struct diff_preset){ "p", classes[i].stamp * 1000,
		    classes[i].changed };
		cr_expect_eq(diff_classify(classes[i].src < 0 ? NULL : &src,
		    classes[i].prev < 0 ? NULL : &prev,
		    classes[i].mark < 0 ? NULL : &mark, &p, classes[i].retry),
		    classes[i].want, "row %zu: %s", i,
		    pstate_name(classes[i].want));
	}
}

/*
 * A stamp's time may come from a GET's Last-Modified (whole seconds) while
 * the previews' come from a listing (RGW's have milliseconds): anything in
 * the stamp's second, before or after it, is no newer than the stamp.
 */
Test(diff, classify_against_the_stamp_in_whole_seconds)
{
	struct diff_entry	src = { .mtime_ms = 10000 };
	struct diff_entry	prev = { .mtime_ms = 20400 };
	struct diff_entry	mark = { .mtime_ms = 20900 };
	struct diff_preset	p = { "p", 20000, 0 };

	cr_expect_eq(diff_classify(&src, &prev, NULL, &p, 0),
	    PS_STALE_PRESET);
	p.stamp_ms = 20600;
	cr_expect_eq(diff_classify(&src, &prev, NULL, &p, 0),
	    PS_STALE_PRESET);
	prev.mtime_ms = 21000;
	cr_expect_eq(diff_classify(&src, &prev, NULL, &p, 0), PS_FRESH);
	/* A mark in the stamp's second is no verdict on this definition. */
	cr_expect_eq(diff_classify(&src, NULL, &mark, &p, 0), PS_MISSING);
	mark.mtime_ms = 21000;
	cr_expect_eq(diff_classify(&src, NULL, &mark, &p, 0),
	    PS_KNOWN_FAILURE);
}

/*
 * Split into ranges at folder boundaries, the same items come out, each
 * once, whatever range it falls in; a key equal to a boundary included.
 * A source of a page or less is one range: a thousand more keys (not
 * images: ignored, but listed) make it worth splitting.
 */
Test(diff, ranges_cover_every_key_once)
{
	static const char *const keys[] = {
		"a.jpg", "a/x.jpg", "a0/y.jpg", "b/c/d.jpg", "b/c/e.jpg",
		"b/d/f.jpg", "b.jpg", "c/g.jpg", "c/h/i.jpg", "d/j.jpg",
		"e/k.jpg", "f/l.jpg", "g/m.jpg", "z.jpg",
	};
	struct diff_preset	 p[2] = { { "a", 0, 0 }, { "b", 0, 0 } };
	struct diff_result	 res;
	struct seen		 one, many;
	char			 key[128];
	size_t			 i, j;
	int			 lead;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(key, sizeof(key), "photo/%s", keys[i]);
		mkfile(key, T0);
		if (i % 3 == 0) {
			snprintf(key, sizeof(key), "prew/a/%s", keys[i]);
			mkfile(key, T0 + 10);
		}
	}
	mkfile("prew/b/c/orphan.jpg", T0);
	for (lead = 0; lead <= 1; lead++) {
		cr_assert_eq(run_ranges(p, "", 16, lead, &many, &res),
		    STORE_OK);
		cr_assert_eq(res.ranges, 1, "a source of one page in ranges");
	}
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "photo/e/n%04zu.txt", i);
		mkfile(key, T0);
	}
	cr_assert_eq(run(p, "", &one, &res), STORE_OK);
	cr_assert_eq(res.ranges, 1);
	/* With a head start, range 0 goes on after its first 1000 keys. */
	for (i = 1; i <= 16; i *= 2)
		for (lead = 0; lead <= 1; lead++) {
			cr_assert_eq(run_ranges(p, "", (int)i, lead, &many,
			    &res), STORE_OK);
			if (i > 1)
				cr_expect_gt(res.ranges, 1, "%zu ranges "
				    "asked", i);
			cr_assert_eq(many.n, one.n, "%zu ranges (head start "
			    "%d): %zu items, not %zu", i, lead, many.n,
			    one.n);
			for (j = 0; j < one.n; j++) {
				size_t k = find(&many, one.rel[j]);

				cr_expect_eq(many.state[k][0],
				    one.state[j][0]);
				cr_expect_eq(many.state[k][1],
				    one.state[j][1]);
			}
		}
}

/*
 * One range much larger than the rest: a thread whose range ended splits
 * it at its folders while it is merged (diff.c's split_range). Whether
 * and where it is split, the same items come out, each once. (Whether it
 * is split depends on timing here: scale's
 * a_large_range_is_split_while_it_is_listed makes sure of it.)
 */
Test(diff, a_range_split_while_merged_covers_its_keys_once)
{
	struct diff_preset	 p[2] = { { "a", 0, 0 }, { "b", 0, 0 } };
	struct diff_result	 res;
	struct seen		 one, many;
	char			 key[128];
	size_t			 i, j;
	int			 round;

	mkfile("photo/a/x.jpg", T0);
	mkfile("photo/b/y.jpg", T0);
	mkfile("photo/d/z.jpg", T0);
	mkfile("prew/b/c/17/orphan.jpg", T0);
	for (i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "photo/c/%02zu/p.jpg", i);
		mkfile(key, T0);
		if (i % 2 == 0) {
			snprintf(key, sizeof(key), "prew/a/c/%02zu/p.jpg", i);
			mkfile(key, T0 + 10);
		}
		/* Listed, not images: a range of many keys, few items. */
		for (j = 0; j < 100; j++) {
			snprintf(key, sizeof(key), "photo/c/%02zu/n%03zu.txt",
			    i, j);
			mkfile(key, T0);
		}
	}
	cr_assert_eq(run(p, "", &one, &res), STORE_OK);
	cr_assert_eq(one.n, 3 + 40 + 1);
	for (round = 0; round < 20; round++) {
		cr_assert_eq(run_ranges(p, "", 4, round % 2, &many, &res),
		    STORE_OK);
		cr_assert_eq(many.n, one.n, "round %d (%zu splits): %zu items, "
		    "not %zu", round, (size_t)res.splits, many.n, one.n);
		for (j = 0; j < one.n; j++) {
			size_t k = find(&many, one.rel[j]);

			cr_expect_eq(many.state[k][0], one.state[j][0]);
			cr_expect_eq(many.state[k][1], one.state[j][1]);
		}
	}
}

/* The shards of a key space share it out, every key to exactly one. */
Test(diff, shards_partition_the_keys)
{
	unsigned		 seen[64];
	char			 key[64];
	size_t			 i;
	unsigned		 k, n = 3, total = 0;

	memset(seen, 0, sizeof(seen));
	for (i = 0; i < 64; i++) {
		snprintf(key, sizeof(key), "2024/%03zu.jpg", i);
		k = diff_shard(key, n);
		cr_assert_lt(k, n);
		seen[k]++;
	}
	for (k = 0; k < n; k++) {
		cr_expect_gt(seen[k], 0, "shard %u got nothing", k);
		total += seen[k];
	}
	cr_expect_eq(total, 64);
	/* FNV-1a 64 of "" is its offset basis; of "a", a known value. */
	cr_expect_eq(diff_shard("", 1u << 31), (unsigned)(
	    UINT64_C(14695981039346656037) % (1u << 31)));
	cr_expect_eq(diff_shard("a", 1000),
	    (unsigned)(UINT64_C(0xaf63dc4c8601ec8c) % 1000));
	cr_expect_eq(diff_shard("anything", 1), 0);
}
