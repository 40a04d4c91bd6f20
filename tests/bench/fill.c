/*
 * fill: make many tiny keys fast, for the scale rows of the benchmark.
 *
 *   fill s3 PREFIX N THREADS    PUT N empty objects under PREFIX
 *   fill dir ROOT/ N            create N empty files under ROOT/
 *
 * Keys are PREFIX "d%04u/k%07u.jpg", a thousand to a folder.  The S3 form
 * takes the endpoint and bucket from PREWCTL_TEST_ENDPOINT and
 * PREWCTL_TEST_BUCKET and the credentials as the AWS CLI finds them, and
 * runs THREADS clients (one keep-alive connection each) through prewctl's
 * own S3 client.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s3/s3.h"

#define PER_DIR	1000

struct shared {
	struct s3_config	 cfg;
	const char		*prefix;
	unsigned		 n;
	atomic_uint		 next;
	atomic_uint		 failed;
};

static int
parse_count(const char *s, unsigned max, unsigned *out)
{
	char		*end;
	unsigned long	 v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || v == 0 || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int
key_of(char *dst, size_t len, const char *prefix, unsigned i)
{
	int	 n;

	n = snprintf(dst, len, "%sd%04u/k%07u.jpg", prefix, i / PER_DIR, i);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void *
put_worker(void *arg)
{
	struct shared		*sh = arg;
	struct s3_client	*c;
	struct s3_put_opts	 po = { .content_type = "image/jpeg" };
	struct s3_error		 err;
	enum s3_status		 st;
	char			 key[1024], text[512];
	unsigned		 i;

	if ((c = s3_client_new(&sh->cfg)) == NULL) {
		atomic_fetch_add(&sh->failed, 1);
		return NULL;
	}
	while ((i = atomic_fetch_add(&sh->next, 1)) < sh->n) {
		if (key_of(key, sizeof(key), sh->prefix, i) != 0) {
			atomic_fetch_add(&sh->failed, 1);
			break;
		}
		s3_error_clear(&err);
		st = s3_put(c, key, "", 0, &po, &err);
		if (st != S3_OK) {
			/* Report the first few only: the count says the rest. */
			if (atomic_fetch_add(&sh->failed, 1) < 5)
				fprintf(stderr, "fill: PUT %s: %s\n", key,
				    s3_error_text(st, &err, text,
				    sizeof(text)));
		}
	}
	s3_client_free(c);
	return NULL;
}

static int
fill_s3(const char *prefix, unsigned n, unsigned nthreads)
{
	struct shared	 sh;
	struct s3_creds_provider *creds = NULL;
	struct s3_error	 err;
	pthread_t	*t = NULL;
	unsigned	 i, started = 0;
	enum s3_status	 st;
	char		 text[512];
	int		 rc = 1;

	memset(&sh, 0, sizeof(sh));
	sh.cfg.endpoint = getenv("PREWCTL_TEST_ENDPOINT");
	sh.cfg.bucket = getenv("PREWCTL_TEST_BUCKET");
	sh.cfg.region = getenv("PREWCTL_TEST_REGION");
	sh.cfg.path_style = 1;
	sh.cfg.tls_verify = 1;
	sh.cfg.max_retries = 5;
	sh.prefix = prefix;
	sh.n = n;
	atomic_init(&sh.next, 0);
	atomic_init(&sh.failed, 0);
	if (sh.cfg.endpoint == NULL || sh.cfg.bucket == NULL) {
		fprintf(stderr, "fill: PREWCTL_TEST_ENDPOINT and "
		    "PREWCTL_TEST_BUCKET must be set\n");
		return 1;
	}
	if (s3_global_init() != 0) {
		fprintf(stderr, "fill: cannot start libcurl\n");
		return 1;
	}
	if ((st = s3_creds_provider_new(NULL, &creds, &err)) != S3_OK) {
		fprintf(stderr, "fill: credentials: %s\n",
		    s3_error_text(st, &err, text, sizeof(text)));
		goto out;
	}
	sh.cfg.creds = creds;
	if ((t = calloc(nthreads, sizeof(*t))) == NULL) {
		fprintf(stderr, "fill: out of memory\n");
		goto out;
	}
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&t[i], NULL, put_worker, &sh) != 0)
			break;
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	if (started == 0 || atomic_load(&sh.failed) != 0) {
		fprintf(stderr, "fill: %u of %u PUTs failed\n",
		    atomic_load(&sh.failed), n);
		goto out;
	}
	rc = 0;
out:
	free(t);
	s3_creds_provider_free(creds);
	s3_global_cleanup();
	return rc;
}

static int
fill_dir(const char *root, unsigned n)
{
	char		 path[PATH_MAX];
	unsigned	 i;
	int		 fd;

	if (mkdir(root, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "fill: mkdir %s: %s\n", root, strerror(errno));
		return 1;
	}
	for (i = 0; i < n; i++) {
		if (i % PER_DIR == 0) {
			if (key_of(path, sizeof(path), root, i) != 0)
				goto toolong;
			*strrchr(path, '/') = '\0';
			if (mkdir(path, 0755) != 0 && errno != EEXIST) {
				fprintf(stderr, "fill: mkdir %s: %s\n", path,
				    strerror(errno));
				return 1;
			}
		}
		if (key_of(path, sizeof(path), root, i) != 0)
			goto toolong;
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd == -1) {
			fprintf(stderr, "fill: %s: %s\n", path,
			    strerror(errno));
			return 1;
		}
		close(fd);
	}
	return 0;
toolong:
	fprintf(stderr, "fill: path too long under %s\n", root);
	return 1;
}

int
main(int argc, char *argv[])
{
	unsigned	 n, nthreads;

	if (argc == 5 && strcmp(argv[1], "s3") == 0 &&
	    parse_count(argv[3], 100000000, &n) == 0 &&
	    parse_count(argv[4], 256, &nthreads) == 0)
		return fill_s3(argv[2], n, nthreads);
	if (argc == 4 && strcmp(argv[1], "dir") == 0 &&
	    parse_count(argv[3], 100000000, &n) == 0)
		return fill_dir(argv[2], n);
	fprintf(stderr, "usage: fill s3 PREFIX N THREADS | fill dir ROOT/ N\n");
	return 2;
}
