/*
 * fuzzregress: replay fuzz inputs through the fuzz targets' own checks.
 *
 * The libFuzzer targets in tests/fuzz/ each keep their checks in one static
 * function, <target>_one(). This file includes them with FUZZ_REGRESS
 * defined (so no LLVMFuzzerTestOneInput) and FUZZ_FAIL turned into a
 * Criterion failure, then feeds them every file of
 *   tests/fuzz/regress/<target>/   inputs that once crashed or broke a check
 *   tests/fuzz/corpus/<target>/    the seeds (real RGW pages, error bodies,
 *                                  presets.ini variants, requests)
 * so make check covers every input the fuzzers taught us about without
 * clang or libFuzzer. The seed folders must not be empty: a replay of
 * nothing would pass whatever the code does.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

/* The file being replayed, for the failure message. */
static const char *fr_current = "";
/* What a replay holds, freed by fr_cleanup even when a check fails. */
static char	**fr_names;
static size_t	  fr_nnames;
static uint8_t	 *fr_data;

#define FUZZ_REGRESS
#define FUZZ_FAIL(...) do {						\
	fprintf(stderr, "fuzzregress: %s:\n", fr_current);		\
	cr_assert_fail(__VA_ARGS__);					\
} while (0)

#include "tests/fuzz/fuzz_config.c"
#include "tests/fuzz/fuzz_creds.c"
#include "tests/fuzz/fuzz_listxml.c"
#include "tests/fuzz/fuzz_s3error.c"
#include "tests/fuzz/fuzz_sigv4.c"

typedef void	(*fr_target)(const uint8_t *, size_t);

/*
 * make SAN=1 check: LeakSanitizer's hook, for the whole test binary. The
 * Criterion 2.4 runner itself leaks 48 bytes now and then inside
 * libcriterion (criterion_run_all_tests, seen only in full runs), which
 * would fail a passing suite after its summary line. No test code runs in
 * the runner: every test runs in a worker that BoxFort starts with
 * BXFI_MAP in its environment, and prewctl runs as its own binary. So leak
 * checking stays on everywhere but in the runner. Suppressing
 * "libcriterion.so" in tests/lsan.supp instead would hide every leak in a
 * worker too, since each worker's stacks pass through libcriterion.
 */
int	__lsan_is_turned_off(void);

int
__lsan_is_turned_off(void)
{
	return getenv("BXFI_MAP") == NULL;
}

static void
fr_cleanup(void)
{
	size_t	i;

	for (i = 0; i < fr_nnames; i++)
		free(fr_names[i]);
	free(fr_names);
	free(fr_data);
	fr_names = NULL;
	fr_nnames = 0;
	fr_data = NULL;
}

static int
fr_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
fr_read(const char *path, uint8_t **data, size_t *size)
{
	FILE	*fp;
	long	 n;

	cr_assert_not_null(fp = fopen(path, "rb"), "cannot open %s: %s", path,
	    strerror(errno));
	cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	cr_assert(n >= 0 && n < 16 * 1024 * 1024, "%s: size %ld", path, n);
	rewind(fp);
	/* One byte more, so an empty input is still a valid pointer. */
	cr_assert_not_null(*data = malloc((size_t)n + 1));
	cr_assert_eq(fread(*data, 1, (size_t)n, fp), (size_t)n,
	    "cannot read %s", path);
	fclose(fp);
	*size = (size_t)n;
}

/* Feed every regular file of dir to fn; returns how many. */
static size_t
fr_replay(const char *dir, fr_target fn)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[1024];
	size_t		 i, n, size;

	if ((d = opendir(dir)) == NULL) {
		cr_assert_eq(errno, ENOENT, "cannot open %s: %s", dir,
		    strerror(errno));
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		/* README and the like are notes, not inputs. */
		if (de->d_name[0] == '.' || strcmp(de->d_name, "README.md") == 0)
			continue;
		cr_assert_not_null(fr_names = reallocarray(fr_names,
		    fr_nnames + 1, sizeof(*fr_names)));
		cr_assert_not_null(fr_names[fr_nnames] = strdup(de->d_name));
		fr_nnames++;
	}
	closedir(d);
	/* A fixed order, so a failure names the same file every time. */
	if (fr_nnames > 0)
		qsort(fr_names, fr_nnames, sizeof(*fr_names), fr_name_cmp);
	for (i = 0; i < fr_nnames; i++) {
		cr_assert_lt(snprintf(path, sizeof(path), "%s/%s", dir,
		    fr_names[i]), (int)sizeof(path));
		fr_read(path, &fr_data, &size);
		fr_current = path;
		fn(fr_data, size);
		fr_current = "";
		free(fr_data);
		fr_data = NULL;
	}
	n = fr_nnames;
	fr_cleanup();
	return n;
}

static void
fr_target_run(const char *name, fr_target fn)
{
	char	dir[256];
	size_t	seeds;

	(void)snprintf(dir, sizeof(dir), "tests/fuzz/corpus/%s", name);
	seeds = fr_replay(dir, fn);
	cr_assert_gt(seeds, 0, "no seeds in %s (run from the repository root)",
	    dir);
	(void)snprintf(dir, sizeof(dir), "tests/fuzz/regress/%s", name);
	(void)fr_replay(dir, fn);
}

TestSuite(fuzzregress, .fini = fr_cleanup, .timeout = 120);

Test(fuzzregress, listxml)
{
	fr_target_run("listxml", listxml_one);
}

Test(fuzzregress, s3error)
{
	fr_target_run("s3error", s3error_one);
}

Test(fuzzregress, sigv4)
{
	fr_target_run("sigv4", sigv4_one);
}

Test(fuzzregress, config)
{
	fr_target_run("config", config_one);
}

Test(fuzzregress, creds)
{
	fr_target_run("creds", creds_one);
}

/* The harness reads a page as the S3 documentation says it reads. */
Test(fuzzregress, harness_parses_a_known_page)
{
	static const char	 page[] =
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    "<Contents><Key>k</Key><Size>1</Size><ETag>\"e\"</ETag>"
	    "<LastModified>2024-06-01T12:34:56.000Z</LastModified>"
	    "</Contents></ListBucketResult>";
	struct lxf_run		 r;
	struct listxml_result	 res;
	static char		 tok[LXF_KEY_MAX + 1];

	memset(&r, 0, sizeof(r));
	cr_assert_eq(lxf_parse((const uint8_t *)page, sizeof(page) - 1, 0, &r,
	    &res, tok), S3_OK);
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(res.key_count, 1);
	cr_assert_eq(res.is_truncated, 0);
}
