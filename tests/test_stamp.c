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
read_stamps(struct stamps *ss, const struct stamps *known)
{
	struct store_error	err;

	cr_assert_eq(stamps_read(conn, "prew/", "photo/", both(), 2, known, ss,
	    &err), STORE_OK, "%s", err.message);
}

Test(stamp, none_then_written_then_current)
{
	struct stamps		 ss, again;
	struct store_error	 err;
	struct s3_stats		 before, after;

	read_stamps(&ss, NULL);
	cr_expect(!ss.v[0].exists && ss.v[0].current == 0);
	cr_expect(!ss.v[1].exists && ss.v[1].current == 0);
	cr_assert_eq(stamp_write(conn, "prew/", &ss.v[0], &err), STORE_OK);
	stamps_release(&ss);

	read_stamps(&ss, NULL);
	cr_expect(ss.v[0].exists && ss.v[0].current == 1);
	cr_expect(!ss.v[1].exists);
	cr_expect_str_eq(ss.v[0].body, "v1 width=64 height=0 fit=inside "
	    "crop=centre format=jpeg quality=80 enlarge=0 background=#ffffff\n"
	    "source=photo/\n");
	/*
	 * A folder's ETag says nothing of the body, so it was read; a second
	 * read that knows the first needs no GET for the same object.
	 */
	memset(&before, 0, sizeof(before));
	store_conn_stats(conn, &before);
	read_stamps(&again, &ss);
	memset(&after, 0, sizeof(after));
	store_conn_stats(conn, &after);
	cr_expect_eq(after.get, before.get, "GET %llu -> %llu",
	    (unsigned long long)before.get, (unsigned long long)after.get);
	cr_expect_eq(again.v[0].current, 1);
	stamps_release(&again);
	stamps_release(&ss);
}

/* Written before stamps named their source: current, and ours. */
Test(stamp, older_stamps_without_a_source)
{
	struct stamps	ss;

	put("prew/.prewctl-stamp-small", "v1 width=64 height=0 fit=inside "
	    "crop=centre format=jpeg quality=80 enlarge=0 background=#ffffff");
	read_stamps(&ss, NULL);
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
	read_stamps(&ss, NULL);
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
	read_stamps(&ss, NULL);
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
