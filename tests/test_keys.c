/*
 * keys: the one home of the key rules, as tables.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "preview/keys.h"

static const struct {
	const char	*previews, *preset, *rel;
	const char	*preview, *prefix, *stamp, *mark;
} built[] = {
	{ "prew/", "small", "2024/a b.jpg", "prew/small/2024/a b.jpg",
	    "prew/small/", "prew/.prewctl-stamp-small",
	    "prew/.prewctl-failed/small/2024/a b.jpg" },
	{ "a/b/", "x-1_Y", "k", "a/b/x-1_Y/k", "a/b/x-1_Y/",
	    "a/b/.prewctl-stamp-x-1_Y", "a/b/.prewctl-failed/x-1_Y/k" },
};

Test(keys, built_from_their_parts)
{
	struct buf	b;
	size_t		i;

	buf_init(&b, BUF_NOMAX);
	for (i = 0; i < sizeof(built) / sizeof(built[0]); i++) {
		buf_reset(&b);
		cr_assert_eq(key_preview(&b, built[i].previews, built[i].preset,
		    built[i].rel), 0);
		cr_expect_str_eq(b.data, built[i].preview);
		buf_reset(&b);
		cr_assert_eq(key_preset_prefix(&b, built[i].previews,
		    built[i].preset), 0);
		cr_expect_str_eq(b.data, built[i].prefix);
		buf_reset(&b);
		cr_assert_eq(key_stamp(&b, built[i].previews, built[i].preset),
		    0);
		cr_expect_str_eq(b.data, built[i].stamp);
		cr_expect_str_eq(key_stamp_preset(built[i].previews, b.data),
		    built[i].preset);
		buf_reset(&b);
		cr_assert_eq(key_failed(&b, built[i].previews, built[i].preset,
		    built[i].rel), 0);
		cr_expect_str_eq(b.data, built[i].mark);
	}
	buf_release(&b);
}

Test(keys, stamp_names)
{
	cr_expect_null(key_stamp_preset("prew/", "prew/small/x.jpg"));
	cr_expect_null(key_stamp_preset("prew/", "other/.prewctl-stamp-a"));
	/* Not a name a preset can have: not a stamp of ours. */
	cr_expect_null(key_stamp_preset("prew/", "prew/.prewctl-stamp-"));
	cr_expect_null(key_stamp_preset("prew/", "prew/.prewctl-stamp-a b"));
	cr_expect_null(key_stamp_preset("prew/", "prew/.prewctl-stamp--x"));
	cr_expect_str_eq(key_stamp_preset("prew/", "prew/.prewctl-stamp-a_b"),
	    "a_b");
}

Test(keys, preset_names)
{
	cr_expect(key_preset_name_ok("small", 5));
	cr_expect(key_preset_name_ok("Sq-2_x", 6));
	cr_expect(!key_preset_name_ok("", 0));
	cr_expect(!key_preset_name_ok("-x", 2));
	cr_expect(!key_preset_name_ok(".prewctl-failed", 15));
	cr_expect(!key_preset_name_ok("My Docs", 7));
	cr_expect(!key_preset_name_ok("caf\xc3\xa9", 5));
}

/* What serve takes from a URL path, already decoded. */
static const struct {
	const char		*key;
	enum key_verdict	 want;
	const char		*preset, *rel;
} parsed[] = {
	{ "prew/small/2024/a b.jpg", KEY_OK, "small", "2024/a b.jpg" },
	{ "prew/small/x", KEY_OK, "small", "x" },
	{ "prew/small/", KEY_MALFORMED, NULL, NULL },	/* an empty segment */
	{ "prew/small", KEY_OUTSIDE, NULL, NULL },
	{ "photo/small/x.jpg", KEY_OUTSIDE, NULL, NULL },
	{ "prewx/small/x.jpg", KEY_OUTSIDE, NULL, NULL },
	{ "prew/sm all/x.jpg", KEY_MALFORMED, NULL, NULL },
	{ "prew/.prewctl-failed/x.jpg", KEY_MALFORMED, NULL, NULL },
	{ "prew/small/../../photo/x.jpg", KEY_MALFORMED, NULL, NULL },
	{ "prew/small/./x.jpg", KEY_MALFORMED, NULL, NULL },
	{ "prew/small//x.jpg", KEY_MALFORMED, NULL, NULL },
	{ "prew/small/x\x01.jpg", KEY_MALFORMED, NULL, NULL },
	{ "prew/small/x\x7f.jpg", KEY_MALFORMED, NULL, NULL },
	{ "prew/small/x.jpg/", KEY_MALFORMED, NULL, NULL },
	{ "", KEY_MALFORMED, NULL, NULL },
};

Test(keys, preview_keys_parsed_back)
{
	char		 preset[64], big[1100];
	const char	*rel;
	size_t		 i;

	for (i = 0; i < sizeof(parsed) / sizeof(parsed[0]); i++) {
		rel = NULL;
		cr_expect_eq(key_parse_preview("prew/", parsed[i].key, preset,
		    sizeof(preset), &rel), parsed[i].want, "'%s'",
		    parsed[i].key);
		if (parsed[i].want != KEY_OK)
			continue;
		cr_expect_str_eq(preset, parsed[i].preset);
		cr_expect_str_eq(rel, parsed[i].rel);
	}
	/* Past S3's 1024 bytes. */
	memcpy(big, "prew/small/", 11);
	memset(big + 11, 'a', 1014);
	big[1025] = '\0';
	cr_expect_eq(key_parse_preview("prew/", big, preset, sizeof(preset),
	    &rel), KEY_MALFORMED);
	big[1024] = '\0';
	cr_expect_eq(key_parse_preview("prew/", big, preset, sizeof(preset),
	    &rel), KEY_OK);
	/* A preset name that does not fit the caller's room. */
	cr_expect_eq(key_parse_preview("prew/", "prew/small/x", preset, 5,
	    &rel), KEY_MALFORMED);
}
