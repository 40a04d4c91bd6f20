/*
 * Tests for preview/config.c. Every input is written to a file named
 * presets.ini in a fresh temporary folder; expected messages are written
 * from the format's rules, with line numbers counted by hand in the input.
 * One test runs the binary: a folder backend whose source is a link.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "preview/config.h"

struct tmpini {
	char	 dir[64];
	char	 path[96];
};

static void
write_ini(struct tmpini *t, const char *data, size_t len)
{
	FILE	*fp;
	int	 n;

	n = snprintf(t->dir, sizeof(t->dir), "/tmp/test_config.XXXXXX");
	cr_assert(n > 0 && (size_t)n < sizeof(t->dir));
	cr_assert_not_null(mkdtemp(t->dir));
	n = snprintf(t->path, sizeof(t->path), "%s/presets.ini", t->dir);
	cr_assert(n > 0 && (size_t)n < sizeof(t->path));
	fp = fopen(t->path, "wb");
	cr_assert_not_null(fp);
	cr_assert_eq(fwrite(data, 1, len, fp), len);
	cr_assert_eq(fclose(fp), 0);
}

static void
remove_ini(struct tmpini *t)
{
	unlink(t->path);
	rmdir(t->dir);
}

/* Load len bytes of text; on success the caller releases cfg. */
static int
load_mem(const char *text, size_t len, struct config *cfg, char *err,
    size_t errlen, char *path, size_t pathlen)
{
	struct tmpini	 t;
	int		 rc;

	write_ini(&t, text, len);
	rc = config_load(t.path, cfg, err, errlen);
	if (path != NULL)
		cr_assert(snprintf(path, pathlen, "%s", t.path) <
		    (int)pathlen);
	remove_ini(&t);
	return rc;
}

static void
load_ok(const char *text, struct config *cfg)
{
	char	 err[512];
	int	 rc;

	rc = load_mem(text, strlen(text), cfg, err, sizeof(err), NULL, 0);
	cr_assert_eq(rc, 0, "config_load failed: %s", err);
}

/* The load fails with "<path><suffix>" and leaves cfg empty. */
static void
expect_error_mem(const char *text, size_t len, const char *suffix)
{
	struct config	 cfg;
	char		 err[512], want[512], path[96];
	int		 rc;

	memset(&cfg, 0xa5, sizeof(cfg));
	rc = load_mem(text, len, &cfg, err, sizeof(err), path, sizeof(path));
	cr_assert_eq(rc, -1, "loaded, expected '%s'", suffix);
	cr_assert(snprintf(want, sizeof(want), "%s%s", path, suffix) <
	    (int)sizeof(want));
	cr_assert_str_eq(err, want);
	cr_assert_null(cfg.bucket);
	cr_assert_null(cfg.presets);
	cr_assert_eq(cfg.npresets, 0);
	cr_assert_null(cfg.extensions);
}

static void
expect_error(const char *text, const char *suffix)
{
	expect_error_mem(text, strlen(text), suffix);
}

#define ERROR_CASE(name, text, suffix) \
	Test(config, name) { expect_error(text, suffix); }

/* Lines 1-4; a preset section that follows starts on line 5. */
#define STORAGE \
	"[storage]\n" \
	"bucket = b\n" \
	"source = photo/\n" \
	"previews = prew/\n"

#define SMALL "[preset small]\nwidth = 320\n"

static const char full[] =
    "; a full file\n"					/* 1 */
    "[storage]\n"					/* 2 */
    "bucket = photos.example.com      ; S3 bucket\n"	/* 3 */
    "endpoint = http://127.0.0.1:7480 ; absent: AWS\n"	/* 4 */
    "region = us-east-1\n"				/* 5 */
    "path_style = true\n"				/* 6 */
    "source = photo/\n"					/* 7 */
    "previews = prew/\n"				/* 8 */
    "acl = public-read                ; optional\n"	/* 9 */
    "cache_control = public, max-age=31536000\n"	/* 10 */
    "extensions = JPG, png  webp,heic\n"		/* 11 */
    "max_pixels = 50000000\n"				/* 12 */
    "max_bytes = 20M\n"					/* 13 */
    "tls_verify = false\n"				/* 14 */
    "ca_bundle = /path/ca.pem\n"			/* 15 */
    "timeout = 7\n"					/* 16 */
    "low_speed_time = 45\n"				/* 17 */
    "retries = 0\n"					/* 18 */
    "image_timeout = 120\n"				/* 19 */
    "\n"						/* 20 */
    "# a hash comment\n"				/* 21 */
    "[preset small]\n"					/* 22 */
    "width = 320                      ; required\n"	/* 23 */
    "height = 240\n"					/* 24 */
    "fit = cover\n"					/* 25 */
    "crop = attention\n"				/* 26 */
    "format = webp\n"					/* 27 */
    "quality = 75\n"					/* 28 */
    "enlarge = yes\n"					/* 29 */
    "background = #1a2B3c\n"				/* 30 */
    "\n"						/* 31 */
    "[preset big-2_x]\n"				/* 32 */
    "  width = 1440\n"					/* 33 */
    "\theight = 900\n"					/* 34 */
    "fit = fill\n"					/* 35 */
    "format = same\n"					/* 36 */
    "enlarge = off\n";					/* 37 */

static void
check_full(const struct config *cfg)
{
	const struct preset	*pr;

	cr_assert_str_eq(cfg->bucket, "photos.example.com");
	cr_assert_null(cfg->directory);
	cr_assert_str_eq(cfg->endpoint, "http://127.0.0.1:7480");
	cr_assert_str_eq(cfg->region, "us-east-1");
	cr_assert_eq(cfg->path_style, 1);
	cr_assert_str_eq(cfg->source, "photo/");
	cr_assert_str_eq(cfg->previews, "prew/");
	cr_assert_str_eq(cfg->acl, "public-read");
	cr_assert_str_eq(cfg->cache_control, "public, max-age=31536000");
	cr_assert_eq(cfg->nextensions, 4);
	cr_assert_str_eq(cfg->extensions[0], "jpg");
	cr_assert_str_eq(cfg->extensions[1], "png");
	cr_assert_str_eq(cfg->extensions[2], "webp");
	cr_assert_str_eq(cfg->extensions[3], "heic");
	cr_assert_eq(cfg->max_pixels, 50000000);
	cr_assert_eq(cfg->max_bytes, 20 * 1024 * 1024);
	cr_assert_eq(cfg->tls_verify, 0);
	cr_assert_str_eq(cfg->ca_bundle, "/path/ca.pem");
	cr_assert_eq(cfg->timeout_ms, 7000);
	cr_assert_eq(cfg->low_speed_time_s, 45);
	cr_assert_eq(cfg->retries, 0);
	cr_assert_eq(cfg->image_timeout_s, 120);

	cr_assert_eq(cfg->npresets, 2);
	pr = &cfg->presets[0];
	cr_assert_str_eq(pr->name, "small");
	cr_assert_eq(pr->line, 22);
	cr_assert_eq(pr->width, 320);
	cr_assert_eq(pr->height, 240);
	cr_assert_eq(pr->fit, FIT_COVER);
	cr_assert_eq(pr->crop, CROP_ATTENTION);
	cr_assert_eq(pr->format, FMT_WEBP);
	cr_assert_eq(pr->quality, 75);
	cr_assert_eq(pr->enlarge, 1);
	cr_assert_eq(pr->background[0], 0x1a);
	cr_assert_eq(pr->background[1], 0x2b);
	cr_assert_eq(pr->background[2], 0x3c);

	pr = &cfg->presets[1];
	cr_assert_str_eq(pr->name, "big-2_x");
	cr_assert_eq(pr->line, 32);
	cr_assert_eq(pr->width, 1440);
	cr_assert_eq(pr->height, 900);
	cr_assert_eq(pr->fit, FIT_FILL);
	cr_assert_eq(pr->crop, CROP_CENTRE);
	cr_assert_eq(pr->format, FMT_SAME);
	cr_assert_eq(pr->quality, 80);
	cr_assert_eq(pr->enlarge, 0);
}

Test(config, full_file)
{
	struct config	 cfg;
	char		 err[512], path[96];

	cr_assert_eq(load_mem(full, strlen(full), &cfg, err, sizeof(err),
	    path, sizeof(path)), 0, "%s", err);
	check_full(&cfg);
	cr_assert_str_eq(cfg.path, path);
	config_release(&cfg);
	cr_assert_null(cfg.bucket);
	cr_assert_null(cfg.presets);
	cr_assert_eq(cfg.npresets, 0);
	config_release(&cfg);
}

/* The same file with CR-LF line ends and a BOM parses the same. */
Test(config, crlf_and_bom)
{
	struct config	 cfg;
	char		*text;
	size_t		 i, n = 3;

	text = malloc(2 * sizeof(full) + 3);
	cr_assert_not_null(text);
	memcpy(text, "\xef\xbb\xbf", 3);
	for (i = 0; full[i] != '\0'; i++) {
		if (full[i] == '\n')
			text[n++] = '\r';
		text[n++] = full[i];
	}
	text[n] = '\0';
	load_ok(text, &cfg);
	check_full(&cfg);
	config_release(&cfg);
	free(text);
}

Test(config, bom_first_line_is_a_section)
{
	struct config	 cfg;

	load_ok("\xef\xbb\xbf" STORAGE SMALL, &cfg);
	cr_assert_str_eq(cfg.bucket, "b");
	cr_assert_eq(cfg.presets[0].line, 5);
	config_release(&cfg);
}

Test(config, bom_line_numbers)
{
	expect_error("\xef\xbb\xbf[storage]\nbukket = b\n",
	    ":2: unknown key 'bukket' in [storage]");
}

Test(config, crlf_line_numbers)
{
	expect_error("[storage]\r\nbucket = b\r\n\r\nretries = x\r\n",
	    ":4: bad number 'x' for 'retries' in [storage]");
}

Test(config, defaults)
{
	static const char *const ext[] = { "jpg", "jpeg", "png", "webp",
	    "gif", "heic", "heif", "avif", "tif", "tiff" };
	struct config	 cfg;
	const struct preset *pr;
	size_t		 i;

	load_ok(STORAGE SMALL, &cfg);
	cr_assert_eq(cfg.tls_verify, 1);
	cr_assert_eq(cfg.path_style, 0);
	cr_assert_null(cfg.region);
	cr_assert_null(cfg.endpoint);
	cr_assert_null(cfg.directory);
	cr_assert_null(cfg.acl);
	cr_assert_null(cfg.cache_control);
	cr_assert_null(cfg.ca_bundle);
	cr_assert_eq(cfg.retries, 5);
	cr_assert_eq(cfg.timeout_ms, 10000);
	cr_assert_eq(cfg.low_speed_time_s, 30);
	cr_assert_eq(cfg.image_timeout_s, 60);
	cr_assert_eq(cfg.max_pixels, 100000000);
	cr_assert_eq(cfg.max_bytes, 104857600);
	cr_assert_eq(cfg.nextensions, sizeof(ext) / sizeof(ext[0]));
	for (i = 0; i < cfg.nextensions; i++)
		cr_assert_str_eq(cfg.extensions[i], ext[i]);

	pr = &cfg.presets[0];
	cr_assert_eq(pr->width, 320);
	cr_assert_eq(pr->height, 0);
	cr_assert_eq(pr->fit, FIT_INSIDE);
	cr_assert_eq(pr->crop, CROP_CENTRE);
	cr_assert_eq(pr->format, FMT_JPEG);
	cr_assert_eq(pr->quality, 80);
	cr_assert_eq(pr->enlarge, 0);
	cr_assert_eq(pr->background[0], 0xff);
	cr_assert_eq(pr->background[1], 0xff);
	cr_assert_eq(pr->background[2], 0xff);
	config_release(&cfg);
}

Test(config, directory_instead_of_bucket)
{
	struct config	 cfg;

	load_ok("[storage]\ndirectory = /srv/photos\nsource = a/\n"
	    "previews = b/\n" SMALL, &cfg);
	cr_assert_null(cfg.bucket);
	cr_assert_str_eq(cfg.directory, "/srv/photos");
	config_release(&cfg);
}

/* '#' is no inline comment: background keeps it, and a '#' after a value
 * is part of the value. ';' after a blank is a comment. */
Test(config, hash_in_values)
{
	struct config	 cfg;

	load_ok(STORAGE SMALL "background = #000080 ; navy\n", &cfg);
	cr_assert_eq(cfg.presets[0].background[0], 0x00);
	cr_assert_eq(cfg.presets[0].background[1], 0x00);
	cr_assert_eq(cfg.presets[0].background[2], 0x80);
	config_release(&cfg);
	expect_error(STORAGE SMALL "background = #000080 # navy\n",
	    ":7: bad value '#000080 # navy' for 'background' in "
	    "[preset small] (want #rrggbb)");
}

Test(config, semicolon_without_blank_is_value)
{
	struct config	 cfg;

	load_ok(STORAGE "cache_control = no-cache;x=1\n" SMALL, &cfg);
	cr_assert_str_eq(cfg.cache_control, "no-cache;x=1");
	config_release(&cfg);
}

Test(config, max_bytes_suffixes)
{
	static const struct {
		const char	*text;
		uint64_t	 bytes;
	} cases[] = {
		{ "1", 1 },
		{ "104857600", 104857600 },
		{ "1K", 1024 },
		{ "3M", 3 * 1048576 },
		{ "2G", 2ULL * 1073741824 },
		{ "1024G", 1ULL << 40 },
	};
	struct config	 cfg;
	char		 text[256];
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert(snprintf(text, sizeof(text), STORAGE
		    "max_bytes = %s\n" SMALL, cases[i].text) <
		    (int)sizeof(text));
		load_ok(text, &cfg);
		cr_assert_eq(cfg.max_bytes, cases[i].bytes, "%s",
		    cases[i].text);
		config_release(&cfg);
	}
}

Test(config, booleans)
{
	static const struct {
		const char	*text;
		int		 value;
	} cases[] = {
		{ "true", 1 }, { "yes", 1 }, { "on", 1 }, { "1", 1 },
		{ "false", 0 }, { "no", 0 }, { "off", 0 }, { "0", 0 },
	};
	struct config	 cfg;
	char		 text[256];
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert(snprintf(text, sizeof(text), STORAGE
		    "path_style = %s\ntls_verify = %s\n" SMALL,
		    cases[i].text, cases[i].text) < (int)sizeof(text));
		load_ok(text, &cfg);
		cr_assert_eq(cfg.path_style, cases[i].value, "%s",
		    cases[i].text);
		cr_assert_eq(cfg.tls_verify, cases[i].value, "%s",
		    cases[i].text);
		config_release(&cfg);
	}
}

Test(config, center_is_centre)
{
	struct config	 cfg;
	char		 a[256], b[256];

	load_ok(STORAGE "[preset a]\nwidth = 9\nheight = 9\nfit = cover\n"
	    "crop = center\n[preset b]\nwidth = 9\nheight = 9\n"
	    "fit = cover\ncrop = centre\n", &cfg);
	cr_assert_eq(cfg.presets[0].crop, CROP_CENTRE);
	cr_assert_eq(preset_canonical(&cfg.presets[0], a, sizeof(a)), 0);
	cr_assert_eq(preset_canonical(&cfg.presets[1], b, sizeof(b)), 0);
	cr_assert_str_eq(a, b);
	config_release(&cfg);
}

/* Indented lines are keys of their own, not continuations. */
Test(config, indented_key)
{
	struct config	 cfg;

	load_ok(STORAGE SMALL "   height = 200\n", &cfg);
	cr_assert_eq(cfg.presets[0].width, 320);
	cr_assert_eq(cfg.presets[0].height, 200);
	config_release(&cfg);
}

Test(config, last_line_without_newline)
{
	struct config	 cfg;

	load_ok(STORAGE "[preset small]\nwidth = 321", &cfg);
	cr_assert_eq(cfg.presets[0].width, 321);
	config_release(&cfg);
}

Test(config, preset_lookup_and_names)
{
	struct config	 cfg;

	load_ok(STORAGE SMALL "[preset Big_1]\nwidth = 999\n", &cfg);
	cr_assert_eq(config_preset(&cfg, "small"), &cfg.presets[0]);
	cr_assert_eq(config_preset(&cfg, "Big_1"), &cfg.presets[1]);
	cr_assert_null(config_preset(&cfg, "big_1"));
	cr_assert_null(config_preset(&cfg, "medium"));
	config_release(&cfg);

	cr_assert_str_eq(format_name(FMT_JPEG), "jpeg");
	cr_assert_str_eq(format_name(FMT_WEBP), "webp");
	cr_assert_str_eq(format_name(FMT_AVIF), "avif");
	cr_assert_str_eq(format_name(FMT_PNG), "png");
	cr_assert_str_eq(format_name(FMT_SAME), "same");
	cr_assert_str_eq(fit_name(FIT_INSIDE), "inside");
	cr_assert_str_eq(fit_name(FIT_COVER), "cover");
	cr_assert_str_eq(fit_name(FIT_FILL), "fill");
}

Test(config, longest_preset_name)
{
	struct config	 cfg;

	/* 40 bytes */
	load_ok(STORAGE "[preset abcdefghij0123456789abcdefghij0123456789]\n"
	    "width = 1\n", &cfg);
	cr_assert_eq(strlen(cfg.presets[0].name), 40);
	config_release(&cfg);
}

/* Lines: the longest that fits, one byte more, and 250 bytes. */
static char *
line_of(const char *head, size_t len)
{
	char	*s;
	size_t	 n = strlen(head);

	cr_assert(len >= n);
	s = malloc(len + 1);
	cr_assert_not_null(s);
	memcpy(s, head, n);
	memset(s + n, 'x', len - n);
	s[len] = '\0';
	return s;
}

static char *
file_with_line(const char *before, const char *line, const char *eol,
    const char *after)
{
	char	*s;
	size_t	 n;

	n = strlen(before) + strlen(line) + strlen(eol) + strlen(after) + 1;
	s = malloc(n);
	cr_assert_not_null(s);
	cr_assert(snprintf(s, n, "%s%s%s%s", before, line, eol, after) ==
	    (int)n - 1);
	return s;
}

Test(config, line_199_bytes_fits)
{
	struct config	 cfg;
	char		*line, *text;

	cr_assert_eq(CONFIG_MAX_LINE, 199);
	line = line_of("cache_control = ", 199);
	text = file_with_line(STORAGE, line, "\n", SMALL);
	load_ok(text, &cfg);
	cr_assert_eq(strlen(cfg.cache_control),
	    199 - strlen("cache_control = "));
	config_release(&cfg);
	free(text);
	free(line);
}

/* The CR of CR-LF is no part of the length. */
Test(config, line_199_bytes_crlf_fits)
{
	struct config	 cfg;
	char		*line, *text;

	line = line_of("; ", 199);
	text = file_with_line("[storage]\r\n", line, "\r\n",
	    "bucket = b\r\nsource = a/\r\npreviews = b/\r\n" SMALL);
	load_ok(text, &cfg);
	cr_assert_str_eq(cfg.bucket, "b");
	config_release(&cfg);
	free(text);
	free(line);
}

Test(config, line_200_bytes)
{
	char	*line, *text;

	line = line_of("cache_control = ", 200);
	text = file_with_line(STORAGE, line, "\n", SMALL);
	expect_error(text, ":5: line too long (200 bytes, at most 199)");
	free(text);
	free(line);
}

Test(config, line_200_bytes_crlf)
{
	char	*line, *text;

	line = line_of("; ", 200);
	text = file_with_line("[storage]\r\n", line, "\r\n", "");
	expect_error(text, ":2: line too long (200 bytes, at most 199)");
	free(text);
	free(line);
}

Test(config, line_250_bytes_comment)
{
	char	*line, *text;

	line = line_of("; ", 250);
	text = file_with_line("[storage]\nbucket = b\n", line, "\n",
	    "source = a/\n");
	expect_error(text, ":3: line too long (250 bytes, at most 199)");
	free(text);
	free(line);
}

/* Split, its tail would be a line of its own; here it ends in "= 1". */
Test(config, line_250_bytes_value)
{
	char	*line, *text;

	line = line_of("cache_control = ", 250);
	memcpy(line + 247, "= 1", 3);
	text = file_with_line(STORAGE SMALL, line, "\n", "");
	expect_error(text, ":7: line too long (250 bytes, at most 199)");
	free(text);
	free(line);
}

/* The last line too, without a newline. */
Test(config, line_250_bytes_at_end)
{
	char	*line, *text;

	line = line_of("; ", 250);
	text = file_with_line(STORAGE SMALL, line, "", "");
	expect_error(text, ":7: line too long (250 bytes, at most 199)");
	free(text);
	free(line);
}

Test(config, nul_byte)
{
	static const char text[] = STORAGE SMALL "height = 1\0002\n";

	expect_error_mem(text, sizeof(text) - 1, ":7: NUL byte in line");
}

Test(config, missing_file)
{
	struct config	 cfg;
	char		 err[256];

	cr_assert_eq(config_load("/nonexistent/presets.ini", &cfg, err,
	    sizeof(err)), -1);
	cr_assert_str_eq(err, "cannot open '/nonexistent/presets.ini': "
	    "No such file or directory");
}

Test(config, directory_is_not_a_file)
{
	struct config	 cfg;
	char		 err[256];

	cr_assert_eq(config_load("/tmp", &cfg, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "cannot read '/tmp': Is a directory");
}

/* The message is cut to fit, never overrun. */
Test(config, small_error_buffer)
{
	struct config	 cfg;
	char		 err[8], path[96];

	memset(err, 'z', sizeof(err));
	cr_assert_eq(load_mem("[foo]\n", 6, &cfg, err, sizeof(err), path,
	    sizeof(path)), -1);
	cr_assert_eq(strlen(err), 7);
	cr_assert_eq(strncmp(err, path, 7), 0);
}

/* Syntax */
ERROR_CASE(no_equals, STORAGE "[preset small]\nwidth\nbogus = 1\n",
    ":6: expected 'key = value' or '[section]'")
ERROR_CASE(missing_bracket, STORAGE "[preset small\nwidth = 1\n",
    ":5: missing ']' in section header")
ERROR_CASE(junk_after_header, STORAGE "[preset small] x\nwidth = 1\n",
    ":5: junk after section header")
ERROR_CASE(key_outside_section, "; first\nbucket = b\n[storage]\n",
    ":2: key 'bucket' outside any section")
ERROR_CASE(empty_value, STORAGE SMALL "quality =\n",
    ":7: empty value for 'quality' in [preset small]")

/* Sections */
ERROR_CASE(unknown_section, STORAGE "[foo]\n" SMALL,
    ":5: unknown section [foo]")
ERROR_CASE(unknown_section_presets, STORAGE "[presets]\nwidth = 1\n",
    ":5: unknown section [presets]")
ERROR_CASE(unknown_section_spaced, "[ storage ]\n",
    ":1: unknown section [ storage ]")
ERROR_CASE(duplicate_storage, STORAGE SMALL "[storage]\n",
    ":7: duplicate section [storage]")
ERROR_CASE(duplicate_preset,
    STORAGE SMALL "[preset small]\nwidth = 640\n",
    ":7: duplicate preset 'small'")
ERROR_CASE(duplicate_empty_preset, STORAGE SMALL "[preset small]\n",
    ":7: duplicate preset 'small'")
ERROR_CASE(empty_preset_name, STORAGE "[preset ]\nwidth = 1\n",
    ":5: empty preset name")
ERROR_CASE(no_preset_name, STORAGE "[preset]\nwidth = 1\n",
    ":5: empty preset name")
ERROR_CASE(preset_name_slash, STORAGE "[preset a/b]\nwidth = 1\n",
    ":5: bad preset name 'a/b'")
ERROR_CASE(preset_name_dotdot, STORAGE "[preset ..]\nwidth = 1\n",
    ":5: bad preset name '..'")
ERROR_CASE(preset_name_dot, STORAGE "[preset .]\nwidth = 1\n",
    ":5: bad preset name '.'")
ERROR_CASE(preset_name_dash, STORAGE "[preset -x]\nwidth = 1\n",
    ":5: bad preset name '-x'")
ERROR_CASE(preset_name_space, STORAGE "[preset a b]\nwidth = 1\n",
    ":5: bad preset name 'a b'")
ERROR_CASE(preset_name_too_long,
    STORAGE "[preset abcdefghij0123456789abcdefghij0123456789z]\n",
    ":5: preset name 'abcdefghij0123456789abcdefghij0123456789z' too long "
    "(at most 40 bytes)")
ERROR_CASE(no_presets, STORAGE "; nothing else\n", ": no presets")
ERROR_CASE(no_storage, SMALL, ": no [storage] section")
ERROR_CASE(empty_file, "", ": no [storage] section")

/* Keys */
ERROR_CASE(unknown_key, STORAGE "[preset small]\nwidht = 320\n",
    ":6: unknown key 'widht' in [preset small]")
ERROR_CASE(unknown_storage_key, STORAGE "bukket = x\n" SMALL,
    ":5: unknown key 'bukket' in [storage]")
ERROR_CASE(duplicate_key, STORAGE SMALL "width = 640\n",
    ":7: duplicate key 'width' in [preset small]")
ERROR_CASE(duplicate_storage_key, "[storage]\nbucket = a\nbucket = b\n",
    ":3: duplicate key 'bucket' in [storage]")
ERROR_CASE(missing_width, STORAGE "[preset small]\nheight = 100\n"
    "[preset big]\nwidth = 1\n",
    ":5: missing 'width' in [preset small]")
ERROR_CASE(missing_width_empty_last, STORAGE SMALL "[preset big]\n",
    ":7: missing 'width' in [preset big]")

/* Numbers */
ERROR_CASE(bad_number, STORAGE "[preset small]\nwidth = abc\n",
    ":6: bad number 'abc' for 'width' in [preset small]")
ERROR_CASE(bad_number_unit, STORAGE "[preset small]\nwidth = 320px\n",
    ":6: bad number '320px' for 'width' in [preset small]")
ERROR_CASE(bad_number_hex, STORAGE "[preset small]\nwidth = 0x10\n",
    ":6: bad number '0x10' for 'width' in [preset small]")
ERROR_CASE(width_zero, STORAGE "[preset small]\nwidth = 0\n",
    ":6: bad number '0' for 'width' in [preset small] (1..16384)")
ERROR_CASE(width_too_big, STORAGE "[preset small]\nwidth = 16385\n",
    ":6: bad number '16385' for 'width' in [preset small] (1..16384)")
ERROR_CASE(width_overflow,
    STORAGE "[preset small]\nwidth = 99999999999999999999\n",
    ":6: bad number '99999999999999999999' for 'width' in [preset small] "
    "(1..16384)")
ERROR_CASE(height_negative, STORAGE SMALL "height = -5\n",
    ":7: bad number '-5' for 'height' in [preset small] (1..16384)")
ERROR_CASE(quality_101, STORAGE SMALL "quality = 101\n",
    ":7: bad number '101' for 'quality' in [preset small] (1..100)")
ERROR_CASE(quality_0, STORAGE SMALL "quality = 0\n",
    ":7: bad number '0' for 'quality' in [preset small] (1..100)")
ERROR_CASE(retries_21, "[storage]\nbucket = b\nretries = 21\n",
    ":3: bad number '21' for 'retries' in [storage] (0..20)")
ERROR_CASE(timeout_0, "[storage]\ntimeout = 0\n",
    ":2: bad number '0' for 'timeout' in [storage] (1..3600)")
ERROR_CASE(low_speed_time_bad, "[storage]\nlow_speed_time = 3O\n",
    ":2: bad number '3O' for 'low_speed_time' in [storage]")
ERROR_CASE(image_timeout_big, "[storage]\nimage_timeout = 86401\n",
    ":2: bad number '86401' for 'image_timeout' in [storage] (1..86400)")
ERROR_CASE(max_bytes_negative, "[storage]\nmax_bytes = -1\n",
    ":2: bad number '-1' for 'max_bytes' in [storage]")
ERROR_CASE(max_bytes_zero, "[storage]\nmax_bytes = 0\n",
    ":2: bad number '0' for 'max_bytes' in [storage] (1..1099511627776)")
ERROR_CASE(max_bytes_unit, "[storage]\nmax_bytes = 10T\n",
    ":2: bad number '10T' for 'max_bytes' in [storage]")
ERROR_CASE(max_bytes_unit_b, "[storage]\nmax_bytes = 10MB\n",
    ":2: bad number '10MB' for 'max_bytes' in [storage]")
ERROR_CASE(max_bytes_too_big, "[storage]\nmax_bytes = 1025G\n",
    ":2: bad number '1025G' for 'max_bytes' in [storage] "
    "(1..1099511627776)")
ERROR_CASE(max_pixels_no_suffix, "[storage]\nmax_pixels = 100M\n",
    ":2: bad number '100M' for 'max_pixels' in [storage]")

/* Booleans */
ERROR_CASE(bad_boolean, STORAGE SMALL "enlarge = maybe\n",
    ":7: bad boolean 'maybe' for 'enlarge' in [preset small]")
ERROR_CASE(bad_boolean_case, "[storage]\ntls_verify = True\n",
    ":2: bad boolean 'True' for 'tls_verify' in [storage]")
ERROR_CASE(bad_boolean_2, "[storage]\npath_style = 2\n",
    ":2: bad boolean '2' for 'path_style' in [storage]")

/* Values */
ERROR_CASE(bad_fit, STORAGE SMALL "fit = contain\n",
    ":7: bad value 'contain' for 'fit' in [preset small] "
    "(inside, cover or fill)")
ERROR_CASE(bad_crop, STORAGE SMALL "height = 1\nfit = cover\n"
    "crop = middle\n",
    ":9: bad value 'middle' for 'crop' in [preset small] "
    "(centre or attention)")
ERROR_CASE(bad_format, STORAGE SMALL "format = jpg\n",
    ":7: bad value 'jpg' for 'format' in [preset small] "
    "(jpeg, webp, avif, png or same)")
ERROR_CASE(bad_background_short, STORAGE SMALL "background = #fff\n",
    ":7: bad value '#fff' for 'background' in [preset small] "
    "(want #rrggbb)")
ERROR_CASE(bad_background_nohash, STORAGE SMALL "background = ffffff\n",
    ":7: bad value 'ffffff' for 'background' in [preset small] "
    "(want #rrggbb)")
ERROR_CASE(bad_background_hex, STORAGE SMALL "background = #12345g\n",
    ":7: bad value '#12345g' for 'background' in [preset small] "
    "(want #rrggbb)")
ERROR_CASE(cover_needs_height, STORAGE SMALL "fit = cover\n",
    ":7: 'fit = cover' needs 'height' in [preset small]")
ERROR_CASE(fill_needs_height, STORAGE SMALL "fit = fill\n",
    ":7: 'fit = fill' needs 'height' in [preset small]")
ERROR_CASE(crop_needs_cover, STORAGE SMALL "crop = attention\n",
    ":7: 'crop' needs 'fit = cover' in [preset small]")
ERROR_CASE(bad_extension_dot, "[storage]\nextensions = jpg .png\n",
    ":2: bad extension '.png' for 'extensions' in [storage]")
ERROR_CASE(bad_extension_hash, "[storage]\nextensions = jpg # png\n",
    ":2: bad extension '#' for 'extensions' in [storage]")
ERROR_CASE(duplicate_extension, "[storage]\nextensions = jpg png JPG\n",
    ":2: duplicate extension 'JPG' for 'extensions' in [storage]")
ERROR_CASE(no_extensions, "[storage]\nextensions = , ,\n",
    ":2: bad value ', ,' for 'extensions' in [storage] (no extensions)")
ERROR_CASE(bad_endpoint, "[storage]\nendpoint = 127.0.0.1:7480\n",
    ":2: bad value '127.0.0.1:7480' for 'endpoint' in [storage] "
    "(want http:// or https://)")
ERROR_CASE(bad_acl, "[storage]\nacl = public\n",
    ":2: bad value 'public' for 'acl' in [storage] "
    "(want a canned ACL such as private or public-read)")
ERROR_CASE(bad_region, "[storage]\nregion = us east\n",
    ":2: bad value 'us east' for 'region' in [storage] "
    "(lowercase letters, digits and '-')")
ERROR_CASE(bad_bucket, "[storage]\nbucket = a/b\n",
    ":2: bad value 'a/b' for 'bucket' in [storage] "
    "(letters, digits, '.', '-' and '_')")

/* Storage as a whole */
ERROR_CASE(bucket_and_directory,
    "[storage]\nbucket = b\ndirectory = /d\nsource = a/\npreviews = b/\n",
    ":3: both 'bucket' and 'directory' in [storage]")
ERROR_CASE(neither_bucket_nor_directory,
    "; x\n[storage]\nsource = a/\npreviews = b/\n" SMALL,
    ":2: missing 'bucket' or 'directory' in [storage]")
ERROR_CASE(missing_source, "[storage]\nbucket = b\npreviews = b/\n" SMALL,
    ":1: missing 'source' in [storage]")
ERROR_CASE(missing_previews, "[storage]\nbucket = b\nsource = a/\n" SMALL,
    ":1: missing 'previews' in [storage]")
ERROR_CASE(source_without_slash, "[storage]\nbucket = b\nsource = photo\n",
    ":3: bad value 'photo' for 'source' in [storage] (must end in '/')")
ERROR_CASE(previews_without_slash, "[storage]\npreviews = prew\n",
    ":2: bad value 'prew' for 'previews' in [storage] (must end in '/')")
ERROR_CASE(empty_source, "[storage]\nbucket = b\nsource =\n",
    ":3: empty value for 'source' in [storage]")
ERROR_CASE(empty_previews, "[storage]\nbucket = b\npreviews =\t\n",
    ":3: empty value for 'previews' in [storage]")
ERROR_CASE(comment_as_value, "[storage]\nbucket = b\npreviews = ; none\n",
    ":3: empty value for 'previews' in [storage]")
ERROR_CASE(previews_under_source,
    "[storage]\nbucket = b\nsource = photo/\npreviews = photo/prew/\n" SMALL,
    ":4: 'source' and 'previews' overlap in [storage]")
ERROR_CASE(source_under_previews,
    "[storage]\nbucket = b\nsource = prew/photo/\n\npreviews = prew/\n" SMALL,
    ":5: 'source' and 'previews' overlap in [storage]")
ERROR_CASE(source_is_previews,
    "[storage]\nbucket = b\npreviews = p/\nsource = p/\n" SMALL,
    ":4: 'source' and 'previews' overlap in [storage]")

/*
 * Prefixes that can never match what the user meant (S3 keeps "./photo/"
 * apart from "photo/"): each is an error naming the key, on its line.
 */
static const struct {
	const char	*key;
	const char	*value;
} never_match[] = {
	{ "source", "./photo/" },
	{ "source", "photo//" },
	{ "previews", "../prew/" },
	{ "source", "/photo/" },
	{ "source", "a/./b/" },
	{ "previews", "a/../b/" },
	{ "previews", "//" },
	{ "source", "photo/./" },
	{ "previews", "./" },
};

Test(config, prefixes_that_never_match)
{
	char	text[256], want[256];
	size_t	i;

	for (i = 0; i < sizeof(never_match) / sizeof(never_match[0]); i++) {
		int	src = strcmp(never_match[i].key, "source") == 0;

		/* Line 3 holds the prefix under test. */
		cr_assert(snprintf(text, sizeof(text), "[storage]\n"
		    "bucket = b\n%s = %s\n%s = %s\n" SMALL, never_match[i].key,
		    never_match[i].value, src ? "previews" : "source",
		    src ? "prew/" : "photo/") < (int)sizeof(text));
		cr_assert(snprintf(want, sizeof(want), ":3: bad value '%s' for "
		    "'%s' in [storage] (no leading '/', and no empty, '.' or "
		    "'..' segment)", never_match[i].value,
		    never_match[i].key) < (int)sizeof(want));
		expect_error(text, want);
	}
}

/* Dots inside a segment are a segment's own: these prefixes are fine. */
Test(config, prefixes_with_dots_in_segments)
{
	struct config	cfg;

	load_ok("[storage]\nbucket = b\nsource = .photo/a..b/c./\n"
	    "previews = ...prew/\n" SMALL, &cfg);
	cr_assert_str_eq(cfg.source, ".photo/a..b/c./");
	cr_assert_str_eq(cfg.previews, "...prew/");
	config_release(&cfg);
}

/* What only S3 reads is an error with a folder, naming the key's line. */
static const struct {
	const char	*key;
	const char	*value;
} s3_only[] = {
	{ "endpoint", "http://127.0.0.1:7480" },
	{ "region", "us-east-1" },
	{ "path_style", "true" },
	{ "tls_verify", "false" },
	{ "ca_bundle", "/etc/ssl/ca.pem" },
	{ "acl", "public-read" },
	{ "cache_control", "no-cache" },
};

Test(config, s3_keys_with_directory)
{
	char	text[256], want[256];
	size_t	i;

	for (i = 0; i < sizeof(s3_only) / sizeof(s3_only[0]); i++) {
		/* The key on line 5, after the folder and both prefixes. */
		cr_assert(snprintf(text, sizeof(text), "[storage]\n"
		    "directory = /srv/photos\nsource = a/\npreviews = b/\n"
		    "%s = %s\n" SMALL, s3_only[i].key, s3_only[i].value) <
		    (int)sizeof(text));
		cr_assert(snprintf(want, sizeof(want), ":5: '%s' has no meaning "
		    "with 'directory' in [storage]", s3_only[i].key) <
		    (int)sizeof(want));
		expect_error(text, want);
		/* Before the folder is named, too. */
		cr_assert(snprintf(text, sizeof(text), "[storage]\n%s = %s\n"
		    "directory = /srv/photos\nsource = a/\npreviews = b/\n"
		    SMALL, s3_only[i].key, s3_only[i].value) <
		    (int)sizeof(text));
		cr_assert(snprintf(want, sizeof(want), ":2: '%s' has no meaning "
		    "with 'directory' in [storage]", s3_only[i].key) <
		    (int)sizeof(want));
		expect_error(text, want);
	}
}

/* The bucket and key make the path: an endpoint has none of its own. */
static const char *const endpoint_bad[] = {
	"http://h:1/x",
	"http://h:1?x",
	"http://h:1/?x",
	"https://h/x/",
	"http://h:1#x",
	"http://h:1//",
};

static const char *const endpoint_ok[] = {
	"http://h:1/",
	"http://h:1",
	"https://s3.eu-west-1.amazonaws.com",
	"http://127.0.0.1:7480/",
};

Test(config, endpoint_with_a_path_or_query)
{
	struct config	cfg;
	char		text[256], want[256];
	size_t		i;

	for (i = 0; i < sizeof(endpoint_bad) / sizeof(endpoint_bad[0]); i++) {
		cr_assert(snprintf(text, sizeof(text), STORAGE
		    "endpoint = %s\n" SMALL, endpoint_bad[i]) <
		    (int)sizeof(text));
		cr_assert(snprintf(want, sizeof(want), ":5: bad value '%s' for "
		    "'endpoint' in [storage] (scheme, host and port only: no "
		    "path or query)", endpoint_bad[i]) < (int)sizeof(want));
		expect_error(text, want);
	}
	for (i = 0; i < sizeof(endpoint_ok) / sizeof(endpoint_ok[0]); i++) {
		cr_assert(snprintf(text, sizeof(text), STORAGE
		    "endpoint = %s\n" SMALL, endpoint_ok[i]) <
		    (int)sizeof(text));
		load_ok(text, &cfg);
		cr_assert_not_null(cfg.endpoint, "%s", endpoint_ok[i]);
		cr_assert_eq(strncmp(cfg.endpoint, endpoint_ok[i],
		    strlen(cfg.endpoint)), 0, "%s loaded as %s",
		    endpoint_ok[i], cfg.endpoint);
		config_release(&cfg);
	}
}

/* On case-insensitive storage they would share one folder. */
ERROR_CASE(preset_names_differ_only_in_case,
    STORAGE SMALL "[preset big]\nwidth = 9\n[preset SMALL]\nwidth = 640\n",
    ":9: preset 'SMALL' differs from 'small' only in case")
ERROR_CASE(preset_names_differ_only_in_case_mixed,
    STORAGE "[preset thumb_A]\nwidth = 1\n[preset Thumb_a]\nwidth = 2\n",
    ":7: preset 'Thumb_a' differs from 'thumb_A' only in case")

/* n presets p0..p<n-1>, each of two lines, after STORAGE (4 lines). */
static char *
many_presets(int n)
{
	struct buf	b;
	int		i;

	buf_init(&b, BUF_NOMAX);
	cr_assert(buf_addf(&b, "%s", STORAGE) == 0);
	for (i = 0; i < n; i++)
		cr_assert(buf_addf(&b, "[preset p%d]\nwidth = %d\n", i,
		    i + 1) == 0);
	return buf_detach(&b, NULL);
}

Test(config, sixty_four_presets_load)
{
	struct config	 cfg;
	char		*text = many_presets(64);
	int		 i;

	load_ok(text, &cfg);
	cr_assert_eq(cfg.npresets, 64);
	for (i = 0; i < 64; i++)
		cr_assert_eq(cfg.presets[i].width, i + 1);
	config_release(&cfg);
	free(text);
}

Test(config, sixty_five_presets_are_too_many)
{
	char	*text = many_presets(65);

	/* The 65th section starts on line 5 + 64 * 2. */
	expect_error(text, ":133: too many presets (at most 64)");
	free(text);
}

/*
 * A folder backend whose source folder is a link: the command says so
 * (links are never followed) and exits 3, rather than listing nothing and
 * reporting "0 originals" as if the folder were empty.
 */
static struct {
	char	 root[32], real[32];
	char	*cfg;
} L;

static void
link_fini(void)
{
	if (L.cfg != NULL) {
		unlink(L.cfg);
		free(L.cfg);
	}
	th_rmtree(L.root);
	th_rmtree(L.real);
}

Test(config, folder_source_that_is_a_symlink, .fini = link_fini)
{
	static const char *const cmds[][3] = {
		{ "plan", "--json", NULL },
		{ "generate", "--json", NULL },
	};
	char		 path[256], text[512], *cfg;
	struct th_run	 r;
	struct th_json	*j;
	size_t		 i;
	FILE		*f;

	snprintf(L.root, sizeof(L.root), "/tmp/prewctl-cfglink-XXXXXX");
	snprintf(L.real, sizeof(L.real), "/tmp/prewctl-cfgreal-XXXXXX");
	cr_assert_not_null(mkdtemp(L.root));
	cr_assert_not_null(mkdtemp(L.real));
	/* Were the link followed, this would be an original. */
	snprintf(path, sizeof(path), "%s/a.jpg", L.real);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fputs("not an image", f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
	snprintf(path, sizeof(path), "%s/photo", L.root);
	cr_assert_eq(symlink(L.real, path), 0);
	snprintf(text, sizeof(text), "[storage]\ndirectory = %s\n"
	    "source = photo/\npreviews = prew/\n" SMALL, L.root);
	cfg = L.cfg = th_write_temp(text);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *args[] = { "-c", cfg, cmds[i][0], cmds[i][1],
		    NULL };

		th_prewctl(&r, args, NULL);
		th_expect_exit(&r, 3, cmds[i][0]);
		cr_assert_not_null(strstr(r.err.data, "link"), "%s: stderr "
		    "does not name the link: %s", cmds[i][0], r.err.data);
		cr_assert_null(strstr(r.out.data, "0 originals"), "%s",
		    r.out.data);
		j = th_json_parse(r.out.data, r.out.len);
		cr_assert_eq(th_json_num(j, "exit"), 3);
		cr_assert_not_null(th_json_str(j, "error"));
		cr_assert_not_null(strstr(th_json_str(j, "error"), "link"),
		    "%s: error %s", cmds[i][0], th_json_str(j, "error"));
		th_json_free(j);
		th_run_release(&r);
	}
	/* In text too. */
	{
		const char *args[] = { "-c", cfg, "plan", NULL };

		th_prewctl(&r, args, NULL);
		th_expect_exit(&r, 3, "plan");
		cr_assert_not_null(strstr(r.err.data, "symbolic link"), "%s",
		    r.err.data);
		cr_assert_null(strstr(r.out.data, "0 originals"), "%s",
		    r.out.data);
		th_run_release(&r);
	}
}

/* The first error wins, whoever finds it. */
ERROR_CASE(first_error_wins_syntax,
    STORAGE "[preset small]\nwidth = 1\nnoequals\nwidht = 2\n",
    ":7: expected 'key = value' or '[section]'")
ERROR_CASE(first_error_wins_handler,
    STORAGE "[preset small]\nwidht = 1\nnoequals\n",
    ":6: unknown key 'widht' in [preset small]")

/* preset_canonical */
static struct preset
base_preset(void)
{
	struct preset	 pr;

	memset(&pr, 0, sizeof(pr));
	pr.name = "small";
	pr.width = 320;
	pr.height = 0;
	pr.fit = FIT_INSIDE;
	pr.crop = CROP_CENTRE;
	pr.format = FMT_JPEG;
	pr.quality = 80;
	pr.enlarge = 0;
	pr.background[0] = pr.background[1] = pr.background[2] = 0xff;
	return pr;
}

Test(config, canonical_text)
{
	struct preset	 pr = base_preset();
	char		 s[256];

	cr_assert_eq(preset_canonical(&pr, s, sizeof(s)), 0);
	cr_assert_str_eq(s, "v1 width=320 height=0 fit=inside crop=centre "
	    "format=jpeg quality=80 enlarge=0 background=#ffffff");

	pr.width = 150;
	pr.height = 100;
	pr.fit = FIT_COVER;
	pr.crop = CROP_ATTENTION;
	pr.format = FMT_AVIF;
	pr.quality = 55;
	pr.enlarge = 1;
	pr.background[0] = 0x0a;
	pr.background[1] = 0xbc;
	pr.background[2] = 0x00;
	cr_assert_eq(preset_canonical(&pr, s, sizeof(s)), 0);
	cr_assert_str_eq(s, "v1 width=150 height=100 fit=cover "
	    "crop=attention format=avif quality=55 enlarge=1 "
	    "background=#0abc00");
}

/* The name is no part of it: renaming a preset remakes nothing. */
Test(config, canonical_from_file)
{
	struct config	 cfg;
	char		 s[256];

	load_ok(STORAGE "[preset other]\nwidth = 320\n", &cfg);
	cr_assert_eq(preset_canonical(&cfg.presets[0], s, sizeof(s)), 0);
	cr_assert_str_eq(s, "v1 width=320 height=0 fit=inside crop=centre "
	    "format=jpeg quality=80 enlarge=0 background=#ffffff");
	config_release(&cfg);
}

Test(config, canonical_differs_in_every_field)
{
	struct preset	 v[12];
	char		 s[12][256];
	size_t		 i, j, n = 0;

	for (i = 0; i < 12; i++)
		v[i] = base_preset();
	n = 1;
	v[n++].width = 321;
	v[n++].height = 320;
	v[n++].fit = FIT_COVER;
	v[n++].fit = FIT_FILL;
	v[n++].crop = CROP_ATTENTION;
	v[n++].format = FMT_WEBP;
	v[n++].format = FMT_SAME;
	v[n++].quality = 81;
	v[n++].enlarge = 1;
	v[n++].background[0] = 0xfe;
	v[n++].background[2] = 0x00;
	cr_assert_eq(n, 12);
	for (i = 0; i < n; i++)
		cr_assert_eq(preset_canonical(&v[i], s[i], sizeof(s[i])), 0);
	for (i = 0; i < n; i++) {
		for (j = i + 1; j < n; j++)
			cr_assert_str_neq(s[i], s[j], "%zu and %zu", i, j);
	}
}

Test(config, canonical_does_not_fit)
{
	struct preset	 pr = base_preset();
	char		 s[256];
	size_t		 len;

	len = strlen("v1 width=320 height=0 fit=inside crop=centre "
	    "format=jpeg quality=80 enlarge=0 background=#ffffff");
	cr_assert_eq(preset_canonical(&pr, s, len + 1), 0);
	cr_assert_eq(preset_canonical(&pr, s, len), -1);
	cr_assert_eq(preset_canonical(&pr, s, 0), -1);
}

/* The documented example in the repository loads. */
Test(config, example_file)
{
	/* make check runs from the top of the tree; a build may be below. */
	static const char *const where[] = {
		"presets.ini", "../presets.ini", "../../presets.ini"
	};
	struct config	 cfg;
	const struct preset *pr;
	char		 err[512];
	size_t		 i;

	for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		if (access(where[i], R_OK) == 0)
			break;
	}
	cr_assert(i < sizeof(where) / sizeof(where[0]),
	    "cannot find presets.ini");
	cr_assert_eq(config_load(where[i], &cfg, err, sizeof(err)), 0, "%s",
	    err);
	cr_assert_str_eq(cfg.bucket, "photos.example.com");
	cr_assert_null(cfg.endpoint);
	cr_assert_str_eq(cfg.source, "photo/");
	cr_assert_str_eq(cfg.previews, "prew/");
	cr_assert_eq(cfg.npresets, 3);

	pr = config_preset(&cfg, "small");
	cr_assert_not_null(pr);
	cr_assert_eq(pr->width, 320);
	cr_assert_eq(pr->fit, FIT_INSIDE);
	cr_assert_eq(pr->format, FMT_JPEG);
	cr_assert_eq(pr->quality, 80);
	pr = config_preset(&cfg, "medium");
	cr_assert_not_null(pr);
	cr_assert_eq(pr->width, 640);
	cr_assert_eq(pr->fit, FIT_INSIDE);
	cr_assert_eq(pr->format, FMT_WEBP);
	cr_assert_eq(pr->quality, 80);
	pr = config_preset(&cfg, "large");
	cr_assert_not_null(pr);
	cr_assert_eq(pr->width, 1440);
	cr_assert_eq(pr->fit, FIT_INSIDE);
	cr_assert_eq(pr->format, FMT_JPEG);
	cr_assert_eq(pr->quality, 85);
	config_release(&cfg);
}
