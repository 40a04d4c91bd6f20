/*
 * stamp: reading, writing and sorting the stamps, on the folder backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "preview/stamp.h"
#include "helpers.h"

static char		 root[] = "/tmp/prewctl-stamp-XXXXXX";
static struct config	 cfg;
static struct store	*st;
static struct store_conn *conn;

static void
put(const char *key, const char *body)
{
	struct store_error	err;

	cr_assert_eq(store_put(conn, key, body, strlen(body), NULL, &err),
	    STORE_OK, "%s", err.message);
}

static void
setup(void)
{
	struct store_error	err;
	enum store_status	rc;
	char			text[512], *path;

	cr_assert_not_null(mkdtemp(root));
	snprintf(text, sizeof(text), "[storage]\ndirectory = %s\nsource = "
	    "photo/\npreviews = prew/\n[preset small]\nwidth = 64\n"
	    "[preset big]\nwidth = 640\nformat = webp\n", root);
	path = th_write_temp(text);
	cr_assert_eq(config_load(path, &cfg, text, sizeof(text)), 0, "%s",
	    text);
	unlink(path);
	free(path);
	cr_assert_not_null(st = store_new(&cfg, &rc, &err));
	cr_assert_not_null(conn = store_conn_new(st));
}

static void
teardown(void)
{
	store_conn_free(conn);
	store_free(st);
	config_release(&cfg);
	th_rmtree(root);
}

TestSuite(stamp, .init = setup, .fini = teardown);

static const struct preset *const *
both(void)
{
	static const struct preset	*v[2];

	v[0] = &cfg.presets[0];
	v[1] = &cfg.presets[1];
	return v;
}

static void
read_stamps(struct stamps *ss)
{
	struct store_error	err;

	cr_assert_eq(stamps_read(conn, "prew/", "photo/", both(), 2, ss, &err),
	    STORE_OK, "%s", err.message);
}

/* The GETs conn made so far. */
static uint64_t
gets(void)
{
	struct s3_stats	n;

	memset(&n, 0, sizeof(n));
	store_conn_stats(conn, &n);
	return n.get;
}

Test(stamp, none_then_written_then_current)
{
	struct stamps		 ss;
	struct stamp		 s;
	struct store_error	 err;
	uint64_t		 n;

	read_stamps(&ss);
	cr_expect(!ss.v[0].exists && ss.v[0].current == 0);
	cr_expect(!ss.v[1].exists && ss.v[1].current == 0);
	cr_assert_eq(stamp_write(conn, "prew/", &ss.v[0], &err), STORE_OK);
	stamps_release(&ss);

	read_stamps(&ss);
	cr_expect(ss.v[0].exists && ss.v[0].current == 1);
	cr_expect(!ss.v[1].exists);
	cr_expect_str_eq(ss.v[0].body, "v1 width=64 height=0 fit=inside "
	    "crop=centre format=jpeg quality=80 enlarge=0 background=#ffffff\n"
	    "source=photo/\n");
	/*
	 * A folder's ETag says nothing of the body, so it was read; a check
	 * that knows the read needs no GET for the same object.
	 */
	n = gets();
	s = ss.v[0];
	cr_assert_eq(stamp_check(conn, "prew/", "photo/", &s, &ss.v[0], &err),
	    STORE_OK);
	cr_expect_eq(gets(), n, "a GET for the object known");
	cr_expect(s.exists && s.current == 1 && !s.other_source);
	/* Knowing nothing, it reads the body. */
	s = ss.v[0];
	cr_assert_eq(stamp_check(conn, "prew/", "photo/", &s, NULL, &err),
	    STORE_OK);
	cr_expect_eq(gets(), n + 1);
	cr_expect(s.exists && s.current == 1);
	/* The other stamp: none. */
	s = ss.v[1];
	cr_assert_eq(stamp_check(conn, "prew/", "photo/", &s, &ss.v[1], &err),
	    STORE_OK);
	cr_expect(!s.exists && s.current == 0 && s.etag[0] == '\0');
	stamps_release(&ss);
}

/*
 * What was found of an object holds for it, all of it: a stamp of our
 * definition made from another source stays another's (a check that
 * took it for ours would let serve write into another configuration's
 * preset), and none is read again.
 */
Test(stamp, a_check_keeps_what_was_found_of_the_same_object)
{
	struct store_error	 err;
	struct stamps		 ss;
	struct stamp		 s;
	uint64_t		 n;

	put("prew/.prewctl-stamp-small", "v1 width=64 height=0 fit=inside "
	    "crop=centre format=jpeg quality=80 enlarge=0 background=#ffffff\n"
	    "source=avatars/\n");
	read_stamps(&ss);
	cr_assert(ss.v[0].current == 1 && ss.v[0].other_source);
	n = gets();
	s = ss.v[0];
	cr_assert_eq(stamp_check(conn, "prew/", "photo/", &s, &ss.v[0], &err),
	    STORE_OK);
	cr_expect_eq(gets(), n);
	cr_expect(s.current == 1 && s.other_source, "taken for ours");
	cr_expect_str_eq(s.found_source, "avatars/");
	stamps_release(&ss);
}

/* Written before stamps named their source: current, and ours. */
Test(stamp, older_stamps_without_a_source)
{
	struct stamps	ss;

	put("prew/.prewctl-stamp-small", "v1 width=64 height=0 fit=inside "
	    "crop=centre format=jpeg quality=80 enlarge=0 background=#ffffff");
	read_stamps(&ss);
	cr_expect_eq(ss.v[0].current, 1);
	cr_expect(!ss.v[0].other_source);
	stamps_release(&ss);
}

Test(stamp, changed_definition_and_other_source)
{
	struct stamps	ss;

	put("prew/.prewctl-stamp-small", "v1 width=32 height=0 fit=inside "
	    "crop=centre format=jpeg quality=80 enlarge=0 background=#ffffff\n"
	    "source=photo/\n");
	put("prew/.prewctl-stamp-big", "v1 width=640 height=0 fit=inside "
	    "crop=centre format=webp quality=80 enlarge=0 background=#ffffff\n"
	    "source=avatars/\n");
	read_stamps(&ss);
	cr_expect_eq(ss.v[0].current, 0);
	cr_expect(!ss.v[0].other_source);
	cr_expect(ss.v[1].other_source);
	cr_expect_str_eq(ss.v[1].found_source, "avatars/");
	stamps_release(&ss);
}

/* What the root holds besides the presets configured. */
Test(stamp, root_sorted_into_removed_theirs_foreign)
{
	struct root_item	*v = NULL;
	struct store_error	 err;
	struct stamps		 ss;
	size_t			 n = 0, i;
	int			 seen = 0;

	put("prew/small/a.jpg", "x");
	put("prew/old/a.jpg", "x");
	put("prew/.prewctl-stamp-old", "v1 width=1\nsource=photo/\n");
	put("prew/gone/.keep", "x");
	put("prew/.prewctl-stamp-gone", "v1 width=1\n");
	put("prew/mine/a.jpg", "x");
	put("prew/.prewctl-stamp-mine", "v1 width=1\nsource=avatars/\n");
	put("prew/My Docs/tax.pdf", "x");
	put("prew/.git/HEAD", "x");
	put("prew/other/keep.txt", "x");
	put("prew/.prewctl-failed/a.jpg", "etag=x\n");
	put("prew/README", "x");
	read_stamps(&ss);
	cr_expect_eq(ss.loose, 1, "README is a loose object");
	cr_assert_eq(root_classify(conn, "prew/", "photo/", &cfg, &ss, &v, &n,
	    &err), STORE_OK);
	for (i = 0; i < n; i++) {
		if (strcmp(v[i].name, "old") == 0 ||
		    strcmp(v[i].name, "gone") == 0) {
			cr_expect_eq(v[i].kind, ROOT_REMOVED, "%s", v[i].name);
			cr_expect(v[i].has_stamp && v[i].has_dir);
		} else if (strcmp(v[i].name, "mine") == 0)
			cr_expect_eq(v[i].kind, ROOT_THEIRS);
		else {
			cr_expect(strcmp(v[i].name, "My Docs") == 0 ||
			    strcmp(v[i].name, ".git") == 0 ||
			    strcmp(v[i].name, "other") == 0, "%s", v[i].name);
			cr_expect_eq(v[i].kind, ROOT_FOREIGN, "%s", v[i].name);
			cr_expect(!v[i].has_stamp);
		}
		seen++;
	}
	/* small is configured, the marks are ours: neither is listed. */
	cr_expect_eq(seen, 6);
	root_items_free(v, n);
	stamps_release(&ss);
}
