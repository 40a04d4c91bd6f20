/*
 * store: the vocabulary every backend speaks, and the folder's metadata.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "store/store.h"
#include "helpers.h"

static struct store_error
err_of(long http, const char *code, int errnum)
{
	struct store_error	e;

	memset(&e, 0, sizeof(e));
	e.http_status = http;
	snprintf(e.code, sizeof(e.code), "%s", code);
	e.errnum = errnum;
	return e;
}

/* About one key, or about the storage: what stops a run. */
static const struct {
	enum store_status	 st;
	long			 http;
	int			 write;
	int			 failing;
} verdicts[] = {
	{ STORE_ENETWORK, 0, 0, 1 },
	{ STORE_EAUTH, 403, 0, 1 },
	{ STORE_EAUTH, 403, 1, 1 },
	{ STORE_EPROTO, 200, 0, 1 },
	{ STORE_ESERVER, 500, 0, 1 },
	{ STORE_ESERVER, 503, 1, 1 },
	{ STORE_ESERVER, 400, 0, 0 },
	{ STORE_ESERVER, 400, 1, 1 },	/* a write refused for every key */
	{ STORE_EDENIED, 403, 0, 0 },	/* a private object: that key's */
	{ STORE_EDENIED, 403, 1, 1 },	/* read-only credentials */
	{ STORE_EIO, 0, 0, 0 },
	{ STORE_EIO, 0, 1, 1 },		/* a full disk */
	{ STORE_ENOTFOUND, 404, 0, 0 },
	{ STORE_ETOOBIG, 0, 0, 0 },
	{ STORE_EINVAL, 400, 1, 0 },	/* a key too long: that key's */
};

Test(store, failing_or_one_key)
{
	struct store_error	e;
	size_t			i;

	for (i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
		e = err_of(verdicts[i].http, "", 0);
		cr_expect_eq(store_failing(verdicts[i].st, &e, verdicts[i].write),
		    verdicts[i].failing, "row %zu: %s, HTTP %ld, %s", i,
		    store_strerror(verdicts[i].st), verdicts[i].http,
		    verdicts[i].write ? "write" : "read");
	}
}

Test(store, error_text)
{
	struct store_error	e;
	char			buf[256];

	e = err_of(403, "AccessDenied", 0);
	cr_expect_str_eq(store_error_text(STORE_EDENIED, &e, buf, sizeof(buf)),
	    "AccessDenied (HTTP 403)");
	/* A folder's error says what failed, never an S3 code. */
	e = err_of(0, "", ENOSPC);
	snprintf(e.message, sizeof(e.message), "cannot write 'p/x.jpg': %s",
	    strerror(ENOSPC));
	cr_expect_str_eq(store_error_text(STORE_EIO, &e, buf, sizeof(buf)),
	    "cannot write 'p/x.jpg': No space left on device");
	e = err_of(0, "", 0);
	cr_expect_str_eq(store_error_text(STORE_ENETWORK, &e, buf,
	    sizeof(buf)), "network error");
	/* Control bytes from a server never break the line. */
	snprintf(e.message, sizeof(e.message), "a\nb\tc");
	cr_expect_str_eq(store_error_text(STORE_ESERVER, &e, buf, sizeof(buf)),
	    "a b c");
}

/* The folder keeps Content-Type and metadata in extended attributes. */
Test(store, folder_metadata_round_trip)
{
	char			 root[] = "/tmp/prewctl-store-XXXXXX";
	struct s3_meta		 meta[2] = {
		{ "prewctl-source-etag", "abc-123" },
		{ "prewctl-preset", "0123456789abcdef" },
	};
	struct s3_put_opts	 po = { "image/webp", "max-age=1", NULL, meta,
				    2 };
	struct store_head	 hd, got;
	struct store_error	 err;
	struct store		*s;
	struct store_conn	*c;
	struct config		 cfg;
	struct buf		 body;
	enum store_status	 rc;
	char			 v[64], path[600];

	cr_assert_not_null(mkdtemp(root));
	memset(&cfg, 0, sizeof(cfg));
	snprintf(path, sizeof(path), "%s/presets.ini", root);
	cfg.path = path;
	cfg.directory = root;
	cr_assert_not_null(s = store_new(&cfg, &rc, &err));
	cr_assert_not_null(c = store_conn_new(s));
	cr_assert_eq(store_put(c, "p/x.webp", "data", 4, &po, &err), STORE_OK,
	    "%s", err.message);
	store_head_init(&hd);
	cr_assert_eq(store_head(c, "p/x.webp", &hd, &err), STORE_OK);
	cr_expect_eq(hd.size, 4);
	cr_expect_neq(hd.etag[0], '\0');
	cr_assert_eq(store_head_meta(&hd, "prewctl-source-etag", v, sizeof(v)),
	    0, "meta: %s", hd.meta.data);
	cr_expect_str_eq(v, "abc-123");
	cr_assert_eq(store_head_meta(&hd, "prewctl-preset", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "0123456789abcdef");
	cr_expect_eq(store_head_meta(&hd, "nope", v, sizeof(v)), -1);
	/* Too small a room is no value. */
	cr_expect_eq(store_head_meta(&hd, "prewctl-preset", v, 4), -1);
	/* A GET says the same of what it read. */
	buf_init(&body, BUF_NOMAX);
	store_head_init(&got);
	cr_assert_eq(store_get(c, "p/x.webp", 100, &body, &got, &err),
	    STORE_OK);
	cr_expect_str_eq(body.data, "data");
	cr_expect_str_eq(got.etag, hd.etag);
	cr_expect_eq(got.mtime_ms, hd.mtime_ms);
	store_head_release(&got);
	store_head_release(&hd);
	buf_release(&body);
	store_conn_free(c);
	store_free(s);
	th_rmtree(root);
}
