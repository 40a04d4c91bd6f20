/*
 * mkphoto: make one benchmark photo from a photo of the repository.
 *
 *   mkphoto IN OUT VARIANT
 *
 * OUT is IN made upright, cropped and scaled to 4032 x 3024 (12 MP), with
 * a film grain of its own (Gaussian, sigma GRAIN, seeded by OUT's name) so
 * that it holds the detail of a camera's photo and weighs as much (3 to 4
 * MB), and saved as JPEG q90.  VARIANT 0 keeps it as it is, 1 mirrors it, 2
 * flips it upside down.  VARIANT 3 stores the pixels turned a quarter to
 * the left (3024 x 4032) with EXIF orientation 6, so that a viewer that
 * honours the tag shows the same 4032 x 3024 picture: the renderer must
 * rotate it.
 */
#include <stdio.h>
#include <stdlib.h>

#include <vips/vips.h>

#define PHOTO_W	4032
#define PHOTO_H	3024
#define GRAIN	7.0

/* A seed from the output's name: the same photos on every machine. */
static int
seed_of(const char *s)
{
	unsigned	h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return (int)(h & 0x7fffffff);
}

/* t plus grain, as 8-bit again, into *out. */
static int
grain(VipsImage *t, VipsImage **out, const char *name)
{
	VipsImage	*n = NULL, *sum = NULL;
	int		 rc = -1;

	if (vips_gaussnoise(&n, t->Xsize, t->Ysize, "sigma", GRAIN,
	    "mean", 0.0, "seed", seed_of(name), NULL) != 0 ||
	    vips_add(t, n, &sum, NULL) != 0 ||
	    vips_cast(sum, out, VIPS_FORMAT_UCHAR, NULL) != 0)
		goto out;
	rc = 0;
out:
	if (n != NULL)
		g_object_unref(n);
	if (sum != NULL)
		g_object_unref(sum);
	return rc;
}

static int
make(const char *in, const char *out, long variant)
{
	VipsImage	*t = NULL, *u = NULL, *g = NULL;
	int		 rc = -1;

	if (vips_thumbnail(in, &g, PHOTO_W, "height", PHOTO_H,
	    "crop", VIPS_INTERESTING_CENTRE, "size", VIPS_SIZE_BOTH, NULL) != 0)
		goto out;
	rc = grain(g, &t, out);
	g_object_unref(g);
	if (rc != 0)
		goto out;
	rc = -1;
	switch (variant) {
	case 0:
		u = t;
		t = NULL;
		break;
	case 1:
		if (vips_flip(t, &u, VIPS_DIRECTION_HORIZONTAL, NULL) != 0)
			goto out;
		break;
	case 2:
		if (vips_flip(t, &u, VIPS_DIRECTION_VERTICAL, NULL) != 0)
			goto out;
		break;
	case 3:
		/* Orientation 6 means "turn 90 degrees clockwise to view". */
		if (vips_rot(t, &u, VIPS_ANGLE_D270, NULL) != 0)
			goto out;
		break;
	default:
		fprintf(stderr, "mkphoto: bad variant %ld\n", variant);
		goto out;
	}
	/* vips_thumbnail() dropped the input's tag; a copy may be written. */
	if (t != NULL)
		g_object_unref(t);
	t = NULL;
	if (vips_copy(u, &t, NULL) != 0)
		goto out;
	vips_image_set_int(t, VIPS_META_ORIENTATION, variant == 3 ? 6 : 1);
	if (vips_jpegsave(t, out, "Q", 90, NULL) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "mkphoto: %s: %s", in, vips_error_buffer());
	if (t != NULL)
		g_object_unref(t);
	if (u != NULL)
		g_object_unref(u);
	return rc;
}

int
main(int argc, char *argv[])
{
	char	*end;
	long	 variant;
	int	 rc;

	if (argc != 4) {
		fprintf(stderr, "usage: mkphoto IN OUT VARIANT\n");
		return 2;
	}
	variant = strtol(argv[3], &end, 10);
	if (end == argv[3] || *end != '\0' || variant < 0 || variant > 3) {
		fprintf(stderr, "mkphoto: VARIANT is 0..3: %s\n", argv[3]);
		return 2;
	}
	if (VIPS_INIT(argv[0]) != 0) {
		fprintf(stderr, "mkphoto: cannot start libvips\n");
		return 1;
	}
	rc = make(argv[1], argv[2], variant);
	vips_shutdown();
	return rc == 0 ? 0 : 1;
}
