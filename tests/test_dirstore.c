/*
 * Tests for the local-folder store. Each test gets a fresh mkdtemp folder
 * under /tmp (removed by the fini hook, even when an assertion fails).
 * Expected listings are the key sets sorted here with strcmp: S3's
 * ListObjectsV2 order is ascending UTF-8 byte order, which is strcmp's.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "helpers.h"

static char	 root[64];
static char	 outside[64];

static void
setup(void)
{
	memcpy(root, "/tmp/dirstore-test-XXXXXX", 26);
	cr_assert_not_null(mkdtemp(root));
	memcpy(outside, "/tmp/dirstore-out-XXXXXX", 25);
	cr_assert_not_null(mkdtemp(outside));
}

static void
teardown(void)
{
	/* A test may have made its folders read-only. */
	chmod(root, 0755);
	th_rmtree(root);
	th_rmtree(outside);
}

TestSuite(dirstore, .init = setup, .fini = teardown);

/* base/rel, built with a bounds check. */
static void
join(char *dst, size_t len, const char *base, const char *rel)
{
	int	n;

	n = snprintf(dst, len, "%s/%s", base, rel);
	cr_assert(n > 0 && (size_t)n < len, "path too long: %s", rel);
}

/* Writes base/rel with its parents, without the code under test. */
static void
mkfile_in(const char *base, const char *rel, const char *content)
{
	char	 path[4096], *p;
	FILE	*f;

	join(path, sizeof(path), base, rel);
	for (p = path + strlen(base) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST,
		    "mkdir %s: %s", path, strerror(errno));
		*p = '/';
	}
	cr_assert_not_null(f = fopen(path, "w"), "fopen %s", path);
	cr_assert_eq(fputs(content, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
}

static void
mkfile(const char *rel, const char *content)
{
	mkfile_in(root, rel, content);
}

static void
mkdir_in(const char *rel)
{
	char	path[4096];

	join(path, sizeof(path), root, rel);
	cr_assert_eq(mkdir(path, 0755), 0, "mkdir %s", path);
}

static int
lexists(const char *rel)
{
	char		path[4096];
	struct stat	st;

	join(path, sizeof(path), root, rel);
	return lstat(path, &st) == 0;
}

/* Reads base/rel whole, independently of dirstore_get. */
static char *
slurp(const char *base, const char *rel)
{
	char	 path[4096];
	char	*s;
	long	 n;
	FILE	*f;

	join(path, sizeof(path), base, rel);
	cr_assert_not_null(f = fopen(path, "r"), "fopen %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	s = calloc(1, (size_t)n + 1);
	cr_assert_not_null(s);
	cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return s;
}

/* How many names in base/rel (a directory) start with the temp prefix. */
static int
count_tmp(const char *rel)
{
	char		 path[4096];
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	join(path, sizeof(path), root, rel);
	cr_assert_not_null(d = opendir(path), "opendir %s", path);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, ".prewctl-tmp", 12) == 0)
			n++;
	closedir(d);
	return n;
}

static struct dirstore *
open_store(void)
{
	struct store_error	 err;
	struct dirstore	*ds;

	ds = dirstore_new(root, &err);
	cr_assert_not_null(ds, "dirstore_new: %s", err.message);
	return ds;
}

/* What a listing gave: "K:key" for objects, "P:prefix" for prefixes. */
struct coll {
	char	**items;
	size_t	  n;
	size_t	  cap;
	size_t	  stop_at;	/* 0: never stop */
};

static int
coll_add(struct coll *c, const char *tag, const char *s)
{
	size_t	len = strlen(s);

	if (c->n == c->cap) {
		c->cap = c->cap == 0 ? 16 : c->cap * 2;
		c->items = realloc(c->items, c->cap * sizeof(*c->items));
		cr_assert_not_null(c->items);
	}
	c->items[c->n] = malloc(len + 3);
	cr_assert_not_null(c->items[c->n]);
	memcpy(c->items[c->n], tag, 2);
	memcpy(c->items[c->n] + 2, s, len + 1);
	c->n++;
	return c->stop_at != 0 && c->n >= c->stop_at;
}

static int
on_obj(void *arg, const struct s3_object *o)
{
	return coll_add(arg, "K:", o->key);
}

static int
on_pfx(void *arg, const char *p)
{
	return coll_add(arg, "P:", p);
}

static void
coll_free(struct coll *c)
{
	size_t	i;

	for (i = 0; i < c->n; i++)
		free(c->items[i]);
	free(c->items);
	memset(c, 0, sizeof(*c));
}

static enum store_status
list(struct dirstore *ds, const char *prefix, const char *delim,
    const char *start_after, struct coll *c)
{
	struct s3_list_params	p;
	struct store_error		err;

	memset(&p, 0, sizeof(p));
	p.prefix = prefix;
	p.delimiter = delim;
	p.start_after = start_after;
	return dirstore_list(ds, &p, on_obj, on_pfx, c, &err);
}

static void
expect(const struct coll *c, const char *const *want, size_t n)
{
	size_t	i;

	for (i = 0; i < c->n && i < n; i++)
		cr_assert_str_eq(c->items[i], want[i], "item %zu", i);
	cr_assert_eq(c->n, n, "got %zu items, want %zu", c->n, n);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expected "K:" items: keys after start_after (NULL: all), strcmp-sorted. */
static size_t
sorted_keys(const char *const *keys, size_t n, const char *start_after,
    char **out)
{
	size_t	i, m = 0;
	char	*s;

	for (i = 0; i < n; i++) {
		if (start_after != NULL && strcmp(keys[i], start_after) <= 0)
			continue;
		s = malloc(strlen(keys[i]) + 3);
		cr_assert_not_null(s);
		memcpy(s, "K:", 2);
		memcpy(s + 2, keys[i], strlen(keys[i]) + 1);
		out[m++] = s;
	}
	qsort(out, m, sizeof(*out), cmp_str);
	return m;
}

static void
free_strs(char **v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i]);
}

static const char *const tricky[] = {
	"a.jpg", "a/b.jpg", "a0.jpg", "a b.jpg", "a+b", "A.jpg",
	"\xd1\x84\xd0\xbe\xd1\x82\xd0\xbe/\xd1\x91\xd0\xb6.jpg",	/* фото/ёж.jpg */
	"\xd1\x84\xd0\xbe\xd1\x82\xd0\xbe/z.jpg",
	"x~y.jpg", "x#y.jpg", "tab\there.jpg", "a/b/c.jpg", "a-b/c",
	"a/-x", "Z/..x", "z/.hidden", "~tilde", "#hash/a",
	"caf\xc3\xa9.jpg", "cafe.jpg", "cafe/x",
};
#define NTRICKY (sizeof(tricky) / sizeof(tricky[0]))

Test(dirstore, byte_order_of_tricky_names)
{
	struct dirstore	*ds = open_store();
	struct coll	 c = { 0 };
	char		*want[NTRICKY];
	size_t		 i, n;

	for (i = 0; i < NTRICKY; i++)
		mkfile(tricky[i], tricky[i]);
	n = sorted_keys(tricky, NTRICKY, NULL, want);
	cr_assert_eq(list(ds, "", NULL, NULL, &c), STORE_OK);
	expect(&c, (const char *const *)want, n);
	/* The three from the brief, by hand: '.' < '/' < '0'. */
	cr_assert_str_eq(want[5], "K:a-b/c");
	cr_assert_str_eq(want[6], "K:a.jpg");
	cr_assert_str_eq(want[7], "K:a/-x");
	cr_assert_str_eq(want[8], "K:a/b.jpg");
	cr_assert_str_eq(want[9], "K:a/b/c.jpg");
	cr_assert_str_eq(want[10], "K:a0.jpg");
	free_strs(want, n);
	coll_free(&c);
	dirstore_free(ds);
}

static int
check_obj(void *arg, const struct s3_object *o)
{
	struct stat	st;
	char		path[4096];
	int		*seen = arg;

	join(path, sizeof(path), root, o->key);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(o->size, (uint64_t)st.st_size);
	cr_assert_eq(o->mtime_ms, (int64_t)st.st_mtim.tv_sec * 1000 +
	    st.st_mtim.tv_nsec / 1000000);
	cr_assert_not_null(o->etag);
	cr_assert_neq(o->etag[0], '\0');
	(*seen)++;
	return 0;
}

Test(dirstore, object_fields)
{
	struct dirstore		*ds = open_store();
	struct s3_list_params	 p = { 0 };
	struct store_error		 err;
	int			 seen = 0;

	mkfile("one.txt", "hello");
	mkfile("d/two.txt", "");
	cr_assert_eq(dirstore_list(ds, &p, check_obj, NULL, &seen, &err),
	    STORE_OK);
	cr_assert_eq(seen, 2);
	seen = 0;
	p.prefix = "one";
	cr_assert_eq(dirstore_list(ds, &p, check_obj, NULL, &seen, &err),
	    STORE_OK);
	cr_assert_eq(seen, 1);
	dirstore_free(ds);
}

static int
mtime_is(void *arg, const struct s3_object *o)
{
	*(int64_t *)arg = o->mtime_ms;
	return 0;
}

Test(dirstore, mtime_in_ms)
{
	struct dirstore		*ds = open_store();
	struct s3_list_params	 p = { .prefix = "m" };
	struct store_error		 err;
	struct timespec		 ts[2] = {
		{ .tv_sec = 4000000000, .tv_nsec = 123456789 },
		{ .tv_sec = 4000000000, .tv_nsec = 123456789 },
	};
	char			 path[4096];
	int64_t			 ms = 0;

	mkfile("m", "x");
	join(path, sizeof(path), root, "m");
	cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	cr_assert_eq(dirstore_list(ds, &p, mtime_is, NULL, &ms, &err), STORE_OK);
	/*
	 * 4000000000.123456789 s is 4000000000123 ms: a time to come, later
	 * than the file's change time, so the mtime is what shows.
	 */
	cr_assert_eq(ms, INT64_C(4000000000123));
	dirstore_free(ds);
}

struct identity {
	int64_t	 ms;
	char	 etag[64];
};

static int
identity_of(void *arg, const struct s3_object *o)
{
	struct identity	*id = arg;

	id->ms = o->mtime_ms;
	snprintf(id->etag, sizeof(id->etag), "%s", o->etag);
	return 0;
}

/*
 * cp -p, rsync -a, mv and tar x replace a file with one that keeps an
 * older mtime: LastModified must still move forward, or the new original
 * would never get its previews.
 */
Test(dirstore, replaced_by_an_older_file_is_newer)
{
	struct dirstore		*ds = open_store();
	struct s3_list_params	 p = { .prefix = "r.jpg" };
	struct store_error	 err;
	struct timespec		 old[2] = { { .tv_sec = 1000000000 },
				    { .tv_sec = 1000000000 } };
	struct identity		 before, after;
	char			 path[4096], tmp[4096];

	mkfile("r.jpg", "first");
	cr_assert_eq(dirstore_list(ds, &p, identity_of, NULL, &before, &err),
	    STORE_OK);
	/* The replacement, written aside with an old mtime, moved in. */
	mkfile("r.tmp", "second, older");
	join(tmp, sizeof(tmp), root, "r.tmp");
	join(path, sizeof(path), root, "r.jpg");
	cr_assert_eq(utimensat(AT_FDCWD, tmp, old, 0), 0);
	cr_assert_eq(rename(tmp, path), 0);
	cr_assert_eq(dirstore_list(ds, &p, identity_of, NULL, &after, &err),
	    STORE_OK);
	cr_assert_geq(after.ms, before.ms, "LastModified went back: %lld < "
	    "%lld", (long long)after.ms, (long long)before.ms);
	cr_assert_str_neq(after.etag, before.etag);
	dirstore_free(ds);
}

Test(dirstore, prefix_not_at_a_directory_boundary)
{
	struct dirstore		*ds = open_store();
	struct coll		 c = { 0 };
	static const char *const a[] = {
		"K:photo/a", "K:photo/a.jpg", "K:photo/ab/c.jpg",
	};
	static const char *const photo[] = {
		"K:photo.jpg", "K:photo/a", "K:photo/a.jpg", "K:photo/ab/c.jpg",
		"K:photo/b.jpg", "K:photoX.jpg",
	};
	static const char *const ab[] = { "K:photo/ab/c.jpg" };

	mkfile("photo/a.jpg", "1");
	mkfile("photo/ab/c.jpg", "2");
	mkfile("photo/b.jpg", "3");
	mkfile("photo/a", "4");
	mkfile("photoX.jpg", "5");
	mkfile("photo.jpg", "6");
	mkfile("ph/x", "7");

	cr_assert_eq(list(ds, "photo/a", NULL, NULL, &c), STORE_OK);
	expect(&c, a, 3);
	coll_free(&c);
	cr_assert_eq(list(ds, "photo", NULL, NULL, &c), STORE_OK);
	expect(&c, photo, 6);
	coll_free(&c);
	cr_assert_eq(list(ds, "photo/ab/", NULL, NULL, &c), STORE_OK);
	expect(&c, ab, 1);
	coll_free(&c);
	cr_assert_eq(list(ds, "photo/ab/c.jpg", NULL, NULL, &c), STORE_OK);
	expect(&c, ab, 1);
	coll_free(&c);
	/* Prefixes nothing can match: no error, nothing listed. */
	cr_assert_eq(list(ds, "nope/", NULL, NULL, &c), STORE_OK);
	cr_assert_eq(list(ds, "photo/a.jpg/", NULL, NULL, &c), STORE_OK);
	cr_assert_eq(list(ds, "photo//", NULL, NULL, &c), STORE_OK);
	cr_assert_eq(list(ds, "../", NULL, NULL, &c), STORE_OK);
	cr_assert_eq(list(ds, "/photo", NULL, NULL, &c), STORE_OK);
	cr_assert_eq(list(ds, "photo/zzz", NULL, NULL, &c), STORE_OK);
	cr_assert_eq(c.n, 0);
	dirstore_free(ds);
}

Test(dirstore, start_after)
{
	static const char *const after[] = {
		"", "a", "a.jpg", "a/", "a/b", "a/b.jpg", "a/b/c.jpg",
		"a0", "a0.jpg", "cafe", "cafe/", "x", "\xff", "#", " ",
	};
	struct dirstore	*ds = open_store();
	struct coll	 c = { 0 };
	char		*want[NTRICKY];
	size_t		 i, n;

	for (i = 0; i < NTRICKY; i++)
		mkfile(tricky[i], "x");
	for (i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
		n = sorted_keys(tricky, NTRICKY, after[i], want);
		cr_assert_eq(list(ds, "", NULL, after[i], &c), STORE_OK);
		expect(&c, (const char *const *)want, n);
		free_strs(want, n);
		coll_free(&c);
	}
	dirstore_free(ds);
}

Test(dirstore, delimiter_rollup)
{
	static const char *const top[] = {
		"K:a.jpg", "P:a/", "K:a0.jpg", "P:b/", "K:b0",
	};
	static const char *const in_a[] = { "K:a/b.jpg", "P:a/c/" };
	static const char *const partial[] = { "K:a.jpg", "P:a/", "K:a0.jpg" };
	static const char *const after_a[] = { "P:a/", "K:a0.jpg", "P:b/", "K:b0" };
	static const char *const after_a0[] = { "P:b/", "K:b0" };
	struct dirstore		*ds = open_store();
	struct coll		 c = { 0 };
	struct s3_list_params	 p = { .delimiter = "|" };
	struct store_error		 err;
	char			 path[4096];

	mkfile("a.jpg", "1");
	mkfile("a/b.jpg", "2");
	mkfile("a/c/d.jpg", "3");
	mkfile("a/c/e.jpg", "3");
	mkfile("a0.jpg", "4");
	mkfile("b/x", "5");
	mkfile("b0", "5");
	/* Folders holding no key show no common prefix. */
	mkfile("c/.prewctl-tmp-abcdef", "6");
	mkdir_in("e");
	mkdir_in("f");
	join(path, sizeof(path), root, "f/link");
	cr_assert_eq(symlink("../a.jpg", path), 0);

	cr_assert_eq(list(ds, "", "/", NULL, &c), STORE_OK);
	expect(&c, top, 5);
	coll_free(&c);
	cr_assert_eq(list(ds, "a/", "/", NULL, &c), STORE_OK);
	expect(&c, in_a, 2);
	coll_free(&c);
	cr_assert_eq(list(ds, "a", "/", NULL, &c), STORE_OK);
	expect(&c, partial, 3);
	coll_free(&c);
	cr_assert_eq(list(ds, "", "/", "a.jpg", &c), STORE_OK);
	expect(&c, after_a, 4);
	coll_free(&c);
	cr_assert_eq(list(ds, "", "/", "a0.jpg", &c), STORE_OK);
	expect(&c, after_a0, 2);
	coll_free(&c);
	cr_assert_eq(dirstore_list(ds, &p, on_obj, on_pfx, &c, &err),
	    STORE_EINVAL);
	cr_assert_neq(err.message[0], '\0');
	cr_assert_eq(c.n, 0);
	dirstore_free(ds);
}

Test(dirstore, callback_stops_the_walk)
{
	struct dirstore	*ds = open_store();
	struct coll	 c = { .stop_at = 2 };
	int		 i;
	char		 key[32];

	for (i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "d%d/k", i);
		mkfile(key, "x");
	}
	cr_assert_eq(list(ds, "", NULL, NULL, &c), STORE_ECANCELLED);
	cr_assert_eq(c.n, 2);
	coll_free(&c);
	c.stop_at = 1;
	cr_assert_eq(list(ds, "", "/", NULL, &c), STORE_ECANCELLED);
	cr_assert_eq(c.n, 1);
	coll_free(&c);
	dirstore_free(ds);
}

Test(dirstore, temp_files_symlinks_and_fifos_are_not_objects)
{
	static const char *const want[] = { "K:d/real.jpg", "K:real.jpg" };
	struct dirstore	*ds = open_store();
	struct coll	 c = { 0 };
	struct store_error	 err;
	struct buf	 b;
	char		 path[4096];

	mkfile("real.jpg", "r");
	mkfile("d/real.jpg", "r");
	mkfile(".prewctl-tmp-123456", "t");
	mkfile("d/.prewctl-tmp-x", "t");
	mkfile(".prewctl-tmpdir/k", "t");
	join(path, sizeof(path), root, "l.jpg");
	cr_assert_eq(symlink("real.jpg", path), 0);
	join(path, sizeof(path), root, "ld");
	cr_assert_eq(symlink("d", path), 0);
	join(path, sizeof(path), root, "fifo");
	cr_assert_eq(mkfifo(path, 0644), 0);

	cr_assert_eq(list(ds, "", NULL, NULL, &c), STORE_OK);
	expect(&c, want, 2);
	coll_free(&c);

	buf_init(&b, BUF_NOMAX);
	cr_assert_eq(dirstore_get(ds, "l.jpg", 100, &b, NULL, &err), STORE_ENOTFOUND);
	cr_assert_eq(dirstore_get(ds, "ld/real.jpg", 100, &b, NULL, &err),
	    STORE_ENOTFOUND);
	cr_assert_eq(dirstore_get(ds, "fifo", 100, &b, NULL, &err), STORE_ENOTFOUND);
	cr_assert_eq(dirstore_get(ds, "d", 100, &b, NULL, &err), STORE_ENOTFOUND);
	cr_assert_eq(dirstore_get(ds, "real.jpg", 100, &b, NULL, &err), STORE_OK);
	cr_assert_str_eq(b.data, "r");
	buf_release(&b);
	dirstore_free(ds);
}

Test(dirstore, symlinks_never_lead_outside)
{
	struct dirstore	*ds = open_store();
	struct store_error	 err;
	struct buf	 b;
	struct stat	 st;
	char		 path[4096], target[4096], *s;
	enum store_status	 rc;

	mkfile_in(outside, "secret.txt", "secret");
	join(path, sizeof(path), root, "evil");
	cr_assert_eq(symlink(outside, path), 0);
	join(path, sizeof(path), root, "sl.txt");
	join(target, sizeof(target), outside, "secret.txt");
	cr_assert_eq(symlink(target, path), 0);

	buf_init(&b, BUF_NOMAX);
	cr_assert_eq(dirstore_get(ds, "evil/secret.txt", 100, &b, NULL, &err),
	    STORE_ENOTFOUND);
	cr_assert_eq(dirstore_get(ds, "sl.txt", 100, &b, NULL, &err), STORE_ENOTFOUND);
	cr_assert_eq(b.len, 0);

	rc = dirstore_put(ds, "evil/new.txt", "x", 1, NULL, &err);
	cr_assert_neq(rc, STORE_OK);
	cr_assert_eq(rc, STORE_EIO);
	cr_assert_str_eq(err.code, "");
	/* Linux says ENOTDIR for a link opened as a folder, some ELOOP. */
	cr_assert(err.errnum == ENOTDIR || err.errnum == ELOOP, "%d",
	    err.errnum);
	join(path, sizeof(path), outside, "new.txt");
	cr_assert_neq(lstat(path, &st), 0);
	rc = dirstore_put(ds, "evil/sub/new.txt", "x", 1, NULL, &err);
	cr_assert_neq(rc, STORE_OK);
	join(path, sizeof(path), outside, "sub");
	cr_assert_neq(lstat(path, &st), 0);

	/* A put over a symlink replaces the link, not its target. */
	cr_assert_eq(dirstore_put(ds, "sl.txt", "new", 3, NULL, &err), STORE_OK);
	s = slurp(outside, "secret.txt");
	cr_assert_str_eq(s, "secret");
	free(s);
	join(path, sizeof(path), root, "sl.txt");
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	s = slurp(root, "sl.txt");
	cr_assert_str_eq(s, "new");
	free(s);

	/* And a delete through the link removes nothing outside. */
	{
		const char *const keys[] = { "evil/secret.txt" };

		cr_assert_eq(dirstore_delete_many(ds, keys, 1, NULL, NULL,
		    &err), STORE_OK);
	}
	join(path, sizeof(path), outside, "secret.txt");
	cr_assert_eq(lstat(path, &st), 0);
	buf_release(&b);
	dirstore_free(ds);
}

struct etag_arg {
	char	*dst;
	size_t	 len;
	int	 n;
};

static int
save_etag(void *arg, const struct s3_object *o)
{
	struct etag_arg	*a = arg;

	snprintf(a->dst, a->len, "%s", o->etag);
	a->n++;
	return 0;
}

/* The ETag the listing gives for key; returns how many keys matched. */
static int
etag_of(struct dirstore *ds, const char *key, char *dst, size_t len)
{
	struct s3_list_params	p = { .prefix = key };
	struct store_error		err;
	struct etag_arg		a = { dst, len, 0 };

	cr_assert_eq(dirstore_list(ds, &p, save_etag, NULL, &a, &err), STORE_OK);
	return a.n;
}

Test(dirstore, put_writes_whole_files_atomically)
{
	struct dirstore	*ds = open_store();
	struct store_error	 err;
	struct stat	 st;
	char		 path[4096], old[8] = { 0 };
	char		 etag1[128], etag2[128];
	char		*s;
	int		 fd;

	cr_assert_eq(dirstore_put(ds, "p/q/r.jpg", "first", 5, NULL, &err), STORE_OK);
	s = slurp(root, "p/q/r.jpg");
	cr_assert_str_eq(s, "first");
	free(s);
	join(path, sizeof(path), root, "p/q/r.jpg");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0644);

	cr_assert_eq(etag_of(ds, "p/q/r.jpg", etag1, sizeof(etag1)), 1);

	/* A reader of the old file keeps the old bytes: it was replaced. */
	cr_assert_geq(fd = open(path, O_RDONLY), 0);
	cr_assert_eq(dirstore_put(ds, "p/q/r.jpg", "second!", 7, NULL, &err), STORE_OK);
	cr_assert_eq(read(fd, old, sizeof(old) - 1), 5);
	cr_assert_str_eq(old, "first");
	close(fd);
	s = slurp(root, "p/q/r.jpg");
	cr_assert_str_eq(s, "second!");
	free(s);
	cr_assert_eq(count_tmp("p/q"), 0);
	cr_assert_eq(etag_of(ds, "p/q/r.jpg", etag2, sizeof(etag2)), 1);
	cr_assert_str_neq(etag1, etag2);

	/* An empty object is an empty file. */
	cr_assert_eq(dirstore_put(ds, "empty", NULL, 0, NULL, &err), STORE_OK);
	join(path, sizeof(path), root, "empty");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 0);
	dirstore_free(ds);
}

Test(dirstore, failed_put_leaves_no_temp_file)
{
	struct dirstore	*ds = open_store();
	struct store_error	 err;
	enum store_status	 rc;

	mkdir_in("d");
	mkdir_in("d/x.jpg");
	rc = dirstore_put(ds, "d/x.jpg", "data", 4, NULL, &err);
	cr_assert_eq(rc, STORE_EIO);
	cr_assert_str_eq(err.code, "");
	cr_assert_neq(err.errnum, 0);
	cr_assert(strstr(err.message, "d/x.jpg") != NULL, "%s", err.message);
	cr_assert_eq(count_tmp("d"), 0);
	cr_assert_eq(count_tmp("d/x.jpg"), 0);

	/* A file where a folder should be. */
	mkfile("f", "file");
	rc = dirstore_put(ds, "f/x.jpg", "data", 4, NULL, &err);
	cr_assert_eq(rc, STORE_EIO);
	cr_assert_eq(count_tmp(""), 0);
	dirstore_free(ds);
}

Test(dirstore, get_respects_max_bytes)
{
	struct dirstore	*ds = open_store();
	struct store_error	 err;
	struct buf	 b, small;
	char		 data[1001];

	memset(data, 'q', 1000);
	data[1000] = '\0';
	mkfile("big", data);
	mkfile("zero", "");
	buf_init(&b, BUF_NOMAX);
	cr_assert_eq(buf_addstr(&b, "stale"), 0);
	cr_assert_eq(dirstore_get(ds, "big", 1000, &b, NULL, &err), STORE_OK);
	cr_assert_eq(b.len, 1000);
	cr_assert_eq(memcmp(b.data, data, 1000), 0);
	cr_assert_eq(b.data[1000], '\0');
	cr_assert_eq(dirstore_get(ds, "big", 999, &b, NULL, &err), STORE_ETOOBIG);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(dirstore_get(ds, "zero", 0, &b, NULL, &err), STORE_OK);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(dirstore_get(ds, "big", 0, &b, NULL, &err), STORE_ETOOBIG);
	cr_assert_eq(dirstore_get(ds, "missing", 10, &b, NULL, &err), STORE_ENOTFOUND);
	cr_assert_eq(err.errnum, ENOENT);
	cr_assert_eq(dirstore_get(ds, "no/such/dir", 10, &b, NULL, &err),
	    STORE_ENOTFOUND);
	cr_assert_eq(dirstore_get(ds, "big/x", 10, &b, NULL, &err), STORE_ENOTFOUND);
	buf_release(&b);

	/* A buffer with a smaller maximum of its own: too big as well. */
	buf_init(&small, 100);
	cr_assert_eq(dirstore_get(ds, "big", 5000, &small, NULL, &err),
	    STORE_ETOOBIG);
	buf_release(&small);
	buf_init(&small, 1000);
	cr_assert_eq(dirstore_get(ds, "big", 5000, &small, NULL, &err),
	    STORE_OK);
	cr_assert_eq(small.len, 1000);
	buf_release(&small);
	dirstore_free(ds);
}

struct failures {
	int			n;
	char			key[64];
	enum store_status	st;
	int			errnum;
};

static void
on_fail(void *arg, const char *key, enum store_status st,
    const struct store_error *err)
{
	struct failures	*f = arg;

	cr_assert_neq(err->message[0], '\0');
	f->n++;
	snprintf(f->key, sizeof(f->key), "%s", key);
	f->st = st;
	f->errnum = err->errnum;
}

Test(dirstore, delete_many_and_empty_folder_cleanup)
{
	const char *const first[] = {
		"a/b/c.jpg", "missing.jpg", "a/b/nope/z", "a/b/d.jpg",
		"top.jpg/x", "a/b",
	};
	const char *const second[] = { "a/x.jpg", "top.jpg" };
	const char *const bad[] = { "keep.jpg", "../keep.jpg", "a//b" };
	struct dirstore		*ds = open_store();
	struct failures		 f = { 0 };
	struct store_error		 err;

	mkfile("a/b/c.jpg", "1");
	mkfile("a/b/d.jpg", "2");
	mkfile("a/x.jpg", "3");
	mkfile("top.jpg", "4");
	mkfile("keep.jpg", "5");

	cr_assert_eq(dirstore_delete_many(ds, first, 6, on_fail, &f, &err),
	    STORE_OK);
	cr_assert_eq(f.n, 0);
	cr_assert(!lexists("a/b/c.jpg"));
	cr_assert(!lexists("a/b/d.jpg"));
	cr_assert(!lexists("a/b"), "empty folder a/b left behind");
	cr_assert(lexists("a/x.jpg"));
	cr_assert(lexists("top.jpg"));

	cr_assert_eq(dirstore_delete_many(ds, second, 2, on_fail, &f, &err),
	    STORE_OK);
	cr_assert(!lexists("a"));
	cr_assert(!lexists("top.jpg"));
	cr_assert(lexists(""), "the root itself was removed");

	/* A hostile key is reported, the others still deleted. */
	cr_assert_eq(dirstore_delete_many(ds, bad + 1, 2, on_fail, &f, &err),
	    STORE_EPARTIAL);
	cr_assert_eq(f.n, 2);
	cr_assert_str_eq(f.key, "a//b");
	cr_assert(lexists("keep.jpg"));
	cr_assert_eq(dirstore_delete_many(ds, bad, 3, on_fail, &f, &err),
	    STORE_EPARTIAL);
	cr_assert(!lexists("keep.jpg"));

	/* Without root's power, a read-only folder is an I/O failure. */
	if (geteuid() != 0) {
		const char *const ro[] = { "ro/k" };
		char path[4096];

		mkfile("ro/k", "x");
		join(path, sizeof(path), root, "ro");
		cr_assert_eq(chmod(path, 0555), 0);
		f.n = 0;
		cr_assert_eq(dirstore_delete_many(ds, ro, 1, on_fail, &f,
		    &err), STORE_EPARTIAL);
		cr_assert_eq(f.n, 1);
		cr_assert_eq(f.st, STORE_EDENIED);
		cr_assert_eq(f.errnum, EACCES);
		cr_assert_eq(chmod(path, 0755), 0);
	}
	dirstore_free(ds);
}

static const char *
long_key(char *dst, size_t len, size_t n, char fill)
{
	cr_assert(n < len);
	memset(dst, fill, n);
	dst[n] = '\0';
	return dst;
}

Test(dirstore, hostile_keys_are_refused)
{
	static const char *const bad[] = {
		"", "/abs", "/", "a//b", "a/", "./a", "a/./b", ".", "..",
		"../x", "a/..", "a/../../etc/passwd", "../../../../tmp/x",
		".prewctl-tmp-abc", "a/.prewctl-tmp", "a/.prewctl-tmpX/b",
	};
	static const char *const good[] = {
		"..a", "a..", ".hidden", "...", "a/.b", ".prewctl-tm",
		"x.prewctl-tmp",
	};
	struct dirstore	*ds = open_store();
	struct store_error	 err;
	struct buf	 b;
	struct coll	 c = { 0 };
	char		 big[1100], seg[300];
	size_t		 i;

	buf_init(&b, BUF_NOMAX);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		cr_assert_eq(dirstore_put(ds, bad[i], "x", 1, NULL, &err), STORE_EINVAL,
		    "put '%s'", bad[i]);
		cr_assert_neq(err.message[0], '\0');
		cr_assert_eq(dirstore_get(ds, bad[i], 10, &b, NULL, &err), STORE_EINVAL,
		    "get '%s'", bad[i]);
	}
	cr_assert_eq(dirstore_put(ds, NULL, "x", 1, NULL, &err), STORE_EINVAL);
	cr_assert_eq(dirstore_put(ds, long_key(big, sizeof(big), 1025, 'k'),
	    "x", 1, NULL, &err), STORE_EINVAL);
	cr_assert_eq(dirstore_put(ds, long_key(seg, sizeof(seg), 256, 's'),
	    "x", 1, NULL, &err), STORE_EINVAL);
	cr_assert_eq(list(ds, "", NULL, NULL, &c), STORE_OK);
	cr_assert_eq(c.n, 0, "a refused put left a file");
	cr_assert_eq(count_tmp(""), 0);

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(dirstore_put(ds, good[i], "x", 1, NULL, &err), STORE_OK,
		    "put '%s': %s", good[i], err.message);
	cr_assert_eq(dirstore_put(ds, long_key(big, sizeof(big), 255, 'k'),
	    "x", 1, NULL, &err), STORE_OK);
	cr_assert_eq(list(ds, "", NULL, NULL, &c), STORE_OK);
	cr_assert_eq(c.n, sizeof(good) / sizeof(good[0]) + 1);
	coll_free(&c);
	buf_release(&b);
	dirstore_free(ds);
}

Test(dirstore, new_needs_a_directory)
{
	struct store_error	 err;
	char		 path[4096];

	memset(&err, 0, sizeof(err));
	cr_assert_null(dirstore_new("/nonexistent/dirstore/xyz", &err));
	cr_assert_neq(err.message[0], '\0');
	mkfile("plain", "x");
	join(path, sizeof(path), root, "plain");
	memset(&err, 0, sizeof(err));
	cr_assert_null(dirstore_new(path, &err));
	cr_assert_neq(err.message[0], '\0');
	cr_assert_null(dirstore_new("", &err));
}

#define NMANY 5000

Test(dirstore, five_thousand_files_in_order)
{
	static const char *const dirs[] = {
		"d", "d/e", "d.e", "d0", "d-e/f", "D", "photo/2024",
	};
	static const char *const suffix[] = { ".jpg", "-x.png", "/z" };
	struct dirstore	*ds = open_store();
	struct coll	 c = { 0 };
	char		**keys, *want[NMANY];
	size_t		 i, n;
	int		 r;

	keys = calloc(NMANY, sizeof(*keys));
	cr_assert_not_null(keys);
	for (i = 0; i < NMANY; i++) {
		keys[i] = malloc(64);
		cr_assert_not_null(keys[i]);
		r = snprintf(keys[i], 64, "%s/%zx%s", dirs[i % 7], i,
		    suffix[i % 3]);
		cr_assert(r > 0 && r < 64);
		mkfile(keys[i], "");
	}
	n = sorted_keys((const char *const *)keys, NMANY, NULL, want);
	cr_assert_eq(n, NMANY);
	cr_assert_eq(list(ds, "", NULL, NULL, &c), STORE_OK);
	expect(&c, (const char *const *)want, n);
	for (i = 1; i < c.n; i++)
		cr_assert_lt(strcmp(c.items[i - 1], c.items[i]), 0);
	coll_free(&c);
	free_strs(want, n);
	free_strs(keys, NMANY);
	free(keys);
	dirstore_free(ds);
}

#define NTHREADS 4
#define NROUNDS 200

struct racer {
	struct dirstore	*ds;
	int		 id;
	int		 fails;
	char		 msg[256];
};

static void *
race(void *arg)
{
	struct racer	*r = arg;
	struct store_error	 err;
	char		 key[64];
	const char	*keys[1] = { key };
	int		 i;

	for (i = 0; i < NROUNDS; i++) {
		snprintf(key, sizeof(key), "c/d/e/t%d-%d", r->id, i);
		if (dirstore_put(r->ds, key, "x", 1, NULL, &err) != STORE_OK) {
			r->fails++;
			memcpy(r->msg, err.message, sizeof(r->msg));
		}
		if (dirstore_delete_many(r->ds, keys, 1, NULL, NULL,
		    &err) != STORE_OK)
			r->fails++;
	}
	return NULL;
}

static int
count_files(void *arg, const struct s3_object *o)
{
	(void)o;
	(*(int *)arg)++;
	return 0;
}

Test(dirstore, threads_put_and_delete_in_the_same_folders)
{
	struct dirstore		*ds = open_store();
	struct racer		 r[NTHREADS];
	pthread_t		 t[NTHREADS];
	struct s3_list_params	 p = { 0 };
	struct store_error		 err;
	int			 i, files = 0;

	for (i = 0; i < NTHREADS; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].ds = ds;
		r[i].id = i;
		cr_assert_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < NTHREADS; i++)
		cr_assert_eq(r[i].fails, 0, "thread %d: %s", i, r[i].msg);
	cr_assert_eq(dirstore_list(ds, &p, count_files, NULL, &files, &err),
	    STORE_OK);
	cr_assert_eq(files, 0);
	if (lexists("c/d/e"))
		cr_assert_eq(count_tmp("c/d/e"), 0);
	dirstore_free(ds);
}
