/*
 * fuzz_config: presets.ini text fed to config_load.
 *
 * config_load takes a path, so the input goes into a memfd and is loaded
 * through /proc/self/fd/N: no temporary file, nothing left behind. What
 * must hold whatever the text: no crash; a refusal says why and names the
 * file; an accepted config honours every bound the sample presets.ini
 * documents (one of bucket and directory, source and previews ending in '/'
 * and not nested, presets with valid unique names and values in range, a
 * canonical definition that fits a stamp); loading twice gives the same.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preview/config.h"
#include "preview/stamp.h"
#include "tests/fuzz/fuzz.h"

#define CFF_LIMIT_MAX	(1ULL << 40)

static void
cff_check(const struct config *c, const char *path)
{
	const struct preset	*p;
	char			 canon[STAMP_MAX];
	size_t			 i, j, n, ls, lv;

	FUZZ_CHECK(c->path != NULL && strcmp(c->path, path) == 0,
	    "path '%s'", c->path != NULL ? c->path : "(null)");
	FUZZ_CHECK((c->bucket == NULL) != (c->directory == NULL),
	    "bucket and directory: not exactly one");
	FUZZ_CHECK(c->source != NULL && c->previews != NULL,
	    "no source or previews");
	ls = strlen(c->source);
	lv = strlen(c->previews);
	FUZZ_CHECK(ls > 0 && c->source[ls - 1] == '/' && lv > 0 &&
	    c->previews[lv - 1] == '/', "source '%s' or previews '%s' without "
	    "a final '/'", c->source, c->previews);
	FUZZ_CHECK(strncmp(c->source, c->previews, ls < lv ? ls : lv) != 0,
	    "source '%s' and previews '%s' overlap", c->source, c->previews);
	FUZZ_CHECK(c->nextensions > 0 && c->extensions != NULL,
	    "no extensions");
	for (i = 0; i < c->nextensions; i++) {
		const char *e = c->extensions[i];

		FUZZ_CHECK(e != NULL && *e != '\0', "empty extension");
		for (; *e != '\0'; e++)
			FUZZ_CHECK(*e != '.' && !isupper((unsigned char)*e) &&
			    !isspace((unsigned char)*e) && *e != ',',
			    "extension '%s'", c->extensions[i]);
	}
	FUZZ_CHECK(c->max_pixels >= 1 && c->max_pixels <= CFF_LIMIT_MAX,
	    "max_pixels %llu", (unsigned long long)c->max_pixels);
	FUZZ_CHECK(c->max_bytes >= 1 && c->max_bytes <= CFF_LIMIT_MAX,
	    "max_bytes %llu", (unsigned long long)c->max_bytes);
	FUZZ_CHECK(c->timeout_ms >= 1000 && c->timeout_ms <= 3600000,
	    "timeout %ld ms", c->timeout_ms);
	FUZZ_CHECK(c->low_speed_time_s >= 1 && c->low_speed_time_s <= 3600,
	    "low_speed_time %ld", c->low_speed_time_s);
	FUZZ_CHECK(c->retries >= 0 && c->retries <= 20, "retries %d",
	    c->retries);
	FUZZ_CHECK(c->image_timeout_s >= 1 && c->image_timeout_s <= 86400,
	    "image_timeout %d", c->image_timeout_s);
	FUZZ_CHECK(c->tls_verify == 0 || c->tls_verify == 1, "tls_verify %d",
	    c->tls_verify);

	FUZZ_CHECK(c->npresets > 0 && c->presets != NULL, "no presets");
	for (i = 0; i < c->npresets; i++) {
		p = &c->presets[i];
		n = p->name != NULL ? strlen(p->name) : 0;
		FUZZ_CHECK(n >= 1 && n <= PRESET_NAME_MAX && p->name[0] != '-',
		    "preset name of %zu bytes", n);
		for (j = 0; j < n; j++)
			FUZZ_CHECK(isalnum((unsigned char)p->name[j]) ||
			    p->name[j] == '_' || p->name[j] == '-',
			    "preset name '%s'", p->name);
		FUZZ_CHECK(config_preset(c, p->name) == p,
		    "preset '%s' twice", p->name);
		FUZZ_CHECK(p->width >= 1 && p->width <= 16384,
		    "width %d", p->width);
		FUZZ_CHECK(p->height >= 0 && p->height <= 16384,
		    "height %d", p->height);
		FUZZ_CHECK(p->quality >= 1 && p->quality <= 100,
		    "quality %d", p->quality);
		FUZZ_CHECK(p->fit == FIT_INSIDE || p->fit == FIT_COVER ||
		    p->fit == FIT_FILL, "fit %d", (int)p->fit);
		FUZZ_CHECK(p->fit == FIT_INSIDE || p->height > 0,
		    "fit %s without a height", fit_name(p->fit));
		FUZZ_CHECK(p->crop == CROP_CENTRE || p->crop == CROP_ATTENTION,
		    "crop %d", (int)p->crop);
		FUZZ_CHECK(p->format >= FMT_SAME && p->format <= FMT_PNG,
		    "format %d", (int)p->format);
		FUZZ_CHECK(format_name(p->format) != NULL &&
		    fit_name(p->fit) != NULL, "an enum without a name");
		FUZZ_CHECK(p->line >= 1, "preset '%s' on line %d", p->name,
		    p->line);
		FUZZ_CHECK(preset_canonical(p, canon, sizeof(canon)) == 0,
		    "preset '%s' has no canonical form", p->name);
	}
}

static void
config_one(const uint8_t *data, size_t size)
{
	struct config	 a, b;
	char		 path[64], err[512], err2[512];
	char		 ca[STAMP_MAX], cb[STAMP_MAX];
	int		 fd, ra, rb;
	size_t		 i, off;
	ssize_t		 n;

	if ((fd = memfd_create("presets.ini", 0)) == -1)
		return;
	for (off = 0; off < size; off += (size_t)n)
		if ((n = write(fd, data + off, size - off)) <= 0)
			goto out;
	if (snprintf(path, sizeof(path), "/proc/self/fd/%d", fd) >=
	    (int)sizeof(path))
		goto out;

	memset(err, 0x5a, sizeof(err));
	ra = config_load(path, &a, err, sizeof(err));
	FUZZ_CHECK(ra == 0 || ra == -1, "config_load returned %d", ra);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL,
	    "error message not terminated");
	if (ra == 0) {
		FUZZ_CHECK(err[0] == '\0', "accepted with message '%s'", err);
		cff_check(&a, path);
	} else {
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0 &&
		    err[strlen(path)] == ':', "message '%s' does not name the "
		    "file", err);
		FUZZ_CHECK(a.presets == NULL && a.npresets == 0 &&
		    a.source == NULL, "a refused config kept its fields");
	}

	/* The parse keeps no state: twice, the same answer. */
	rb = config_load(path, &b, err2, sizeof(err2));
	FUZZ_CHECK(ra == rb, "second load returned %d, first %d", rb, ra);
	if (ra != 0)
		FUZZ_CHECK(strcmp(err, err2) == 0, "messages '%s' then '%s'",
		    err, err2);
	else {
		FUZZ_CHECK(a.npresets == b.npresets, "preset count differs");
		for (i = 0; i < a.npresets; i++) {
			FUZZ_CHECK(preset_canonical(&a.presets[i], ca,
			    sizeof(ca)) == 0 && preset_canonical(&b.presets[i],
			    cb, sizeof(cb)) == 0 && strcmp(ca, cb) == 0 &&
			    strcmp(a.presets[i].name, b.presets[i].name) == 0,
			    "preset %zu differs between loads", i);
		}
		config_release(&b);
	}
	if (ra == 0)
		config_release(&a);
	/* Released means empty: a second release is harmless. */
	config_release(&a);
out:
	close(fd);
}

#ifndef FUZZ_REGRESS
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	config_one(data, size);
	return 0;
}
#endif
