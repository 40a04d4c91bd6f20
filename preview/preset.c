/*
 * preset: see preset.h.
 */
#include <stdio.h>
#include <string.h>

#include "preset.h"

void
preset_init(struct preset *pr)
{
	memset(pr, 0, sizeof(*pr));
	pr->fit = FIT_INSIDE;
	pr->crop = CROP_CENTRE;
	pr->format = FMT_JPEG;
	pr->quality = 80;
	pr->background[0] = pr->background[1] = pr->background[2] = 0xff;
}

const char *
crop_name(enum crop c)
{
	switch (c) {
	case CROP_CENTRE:
		return "centre";
	case CROP_ATTENTION:
		return "attention";
	}
	return "unknown";
}

const char *
format_name(enum format f)
{
	switch (f) {
	case FMT_SAME:
		return "same";
	case FMT_JPEG:
		return "jpeg";
	case FMT_WEBP:
		return "webp";
	case FMT_AVIF:
		return "avif";
	case FMT_PNG:
		return "png";
	}
	return "unknown";
}

const char *
fit_name(enum fit f)
{
	switch (f) {
	case FIT_INSIDE:
		return "inside";
	case FIT_COVER:
		return "cover";
	case FIT_FILL:
		return "fill";
	}
	return "unknown";
}

int
format_parse(const char *s, enum format *f)
{
	static const enum format all[] = {
		FMT_JPEG, FMT_WEBP, FMT_AVIF, FMT_PNG, FMT_SAME
	};
	size_t	i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(s, format_name(all[i])) == 0) {
			*f = all[i];
			return 0;
		}
	return -1;
}

int
fit_parse(const char *s, enum fit *f)
{
	static const enum fit all[] = { FIT_INSIDE, FIT_COVER, FIT_FILL };
	size_t	i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(s, fit_name(all[i])) == 0) {
			*f = all[i];
			return 0;
		}
	return -1;
}

int
crop_parse(const char *s, enum crop *c)
{
	/* Both spellings; the canonical form says "centre". */
	if (strcmp(s, "centre") == 0 || strcmp(s, "center") == 0)
		*c = CROP_CENTRE;
	else if (strcmp(s, "attention") == 0)
		*c = CROP_ATTENTION;
	else
		return -1;
	return 0;
}

const char *
format_content_type(enum format f)
{
	switch (f) {
	case FMT_JPEG:
		return "image/jpeg";
	case FMT_WEBP:
		return "image/webp";
	case FMT_AVIF:
		return "image/avif";
	case FMT_PNG:
		return "image/png";
	case FMT_SAME:
		break;
	}
	return "application/octet-stream";
}

int
preset_canonical(const struct preset *pr, char *dst, size_t len)
{
	int	 n;

	n = snprintf(dst, len, "v1 width=%d height=%d fit=%s crop=%s "
	    "format=%s quality=%d enlarge=%d background=#%02x%02x%02x",
	    pr->width, pr->height, fit_name(pr->fit), crop_name(pr->crop),
	    format_name(pr->format), pr->quality, pr->enlarge ? 1 : 0,
	    pr->background[0], pr->background[1], pr->background[2]);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return 0;
}
