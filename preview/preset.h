/*
 * preset: what a preset is, in one place: its fields, the names of its
 * fits, crops and formats as the configuration spells them, its canonical
 * form (the definition its stamp holds: equal strings mean equal
 * previews), and the Content-Type of each format.
 */
#ifndef PREWCTL_PRESET_H
#define PREWCTL_PRESET_H

#include <stddef.h>

enum fit { FIT_INSIDE, FIT_COVER, FIT_FILL };
enum crop { CROP_CENTRE, CROP_ATTENTION };
enum format { FMT_SAME, FMT_JPEG, FMT_WEBP, FMT_AVIF, FMT_PNG };

struct preset {
	char		*name;
	int		 width;		/* > 0 */
	int		 height;	/* 0: from the aspect ratio */
	enum fit	 fit;
	enum crop	 crop;		/* for FIT_COVER */
	enum format	 format;
	int		 quality;	/* 1..100 */
	int		 enlarge;	/* 0: never upscale */
	unsigned char	 background[3];	/* flattening colour, default white */
	int		 line;		/* where the section starts */
};

/* The defaults of a preset that names only its width. */
void		 preset_init(struct preset *);

const char	*format_name(enum format);
const char	*fit_name(enum fit);
const char	*crop_name(enum crop);
/* The value of "format =" as a format; -1 when it names none. */
int		 format_parse(const char *, enum format *);
int		 fit_parse(const char *, enum fit *);
int		 crop_parse(const char *, enum crop *);
/* "image/jpeg", ...; never for FMT_SAME, which is no output format. */
const char	*format_content_type(enum format);

/*
 * The canonical definition of a preset ("v1 width=320 height=0 ...") into
 * dst: equal strings mean equal previews. -1 when it does not fit.
 */
int		 preset_canonical(const struct preset *, char *dst, size_t len);

#endif
