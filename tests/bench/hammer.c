/*
 * hammer: the load generator of the serve rows of the benchmark.
 *
 *   hammer C < URLS
 *
 * GETs every URL read from standard input (one a line, in that order),
 * with at most C transfers at once on libcurl's multi interface; a
 * connection that is free again is kept alive for the next URL.  As each
 * request ends, it prints "status seconds bytes": the HTTP status (0: no
 * answer), the seconds from the request's start to its last byte, and the
 * body's bytes.  On standard error, one summary line of key=value words:
 * the count, the failures, the wall time from the first start to the last
 * byte, requests per second, latency p50/p99/max and the statuses.
 * Exits 1 when a request got no HTTP answer, 2 on bad usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#define MAX_CONC	1000
#define MAX_URLS	10000000
#define TIMEOUT_S	300L	/* longer than any render serve may wait for */

struct xfer {
	CURL		*h;
	double		 t0;		/* started */
	double		 last;		/* the last byte came; 0: none yet */
	uint64_t	 bytes;
};

static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct xfer	*x = arg;

	(void)data;
	x->bytes += size * n;
	x->last = now();
	return size * n;
}

/* Headers count as bytes too: a HEAD or an empty body ends with them. */
static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct xfer	*x = arg;

	(void)data;
	x->last = now();
	return size * n;
}

static int
by_value(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p of them at or below. */
static double
rank(const double *v, size_t n, double p)
{
	size_t	i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)n);
	if ((double)i < p * (double)n)
		i++;
	return v[i > 0 ? i - 1 : 0];
}

/* The URLs of stdin, newlines dropped; NULL on error (said). */
static char **
read_urls(size_t *np)
{
	char	**v = NULL, **nv, *line = NULL;
	size_t	 n = 0, cap = 0, sz = 0;
	ssize_t	 len;

	while ((len = getline(&line, &sz, stdin)) != -1) {
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (n == MAX_URLS) {
			fprintf(stderr, "hammer: more than %d URLs\n",
			    MAX_URLS);
			goto fail;
		}
		if (n == cap) {
			cap = cap != 0 ? cap * 2 : 1024;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
				goto nomem;
			v = nv;
		}
		if ((v[n] = strdup(line)) == NULL)
			goto nomem;
		n++;
	}
	if (ferror(stdin)) {
		fprintf(stderr, "hammer: cannot read the URLs: %s\n",
		    strerror(errno));
		goto fail;
	}
	free(line);
	*np = n;
	return v;
nomem:
	fprintf(stderr, "hammer: out of memory\n");
fail:
	free(line);
	while (n > 0)
		free(v[--n]);
	free(v);
	return NULL;
}

/* Start url on x. */
static int
start(CURLM *m, struct xfer *x, const char *url)
{
	x->bytes = 0;
	x->last = 0;
	if (curl_easy_setopt(x->h, CURLOPT_URL, url) != CURLE_OK)
		return -1;
	x->t0 = now();
	return curl_multi_add_handle(m, x->h) == CURLM_OK ? 0 : -1;
}

static int
setup(struct xfer *x)
{
	if ((x->h = curl_easy_init()) == NULL)
		return -1;
	/* Signals are for the shell; no proxy from the environment. */
	curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(x->h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(x->h, CURLOPT_TIMEOUT, TIMEOUT_S);
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	return 0;
}

int
main(int argc, char *argv[])
{
	struct xfer	*xs = NULL, *x;
	CURLM		*m = NULL;
	CURLMsg		*msg;
	char		**urls = NULL, *end, *priv;
	double		*lat = NULL, t_first = 0, t_last = 0, t;
	size_t		 nurls = 0, next = 0, done = 0, failed = 0, i;
	size_t		 codes[600];
	long		 conc, status;
	int		 running, left, first, rc = 2;

	if (argc != 2) {
		fprintf(stderr, "usage: hammer CONCURRENCY < URLS\n");
		return 2;
	}
	errno = 0;
	conc = strtol(argv[1], &end, 10);
	if (errno != 0 || end == argv[1] || *end != '\0' || conc < 1 ||
	    conc > MAX_CONC) {
		fprintf(stderr, "hammer: concurrency must be 1 to %d: '%s'\n",
		    MAX_CONC, argv[1]);
		return 2;
	}
	if ((urls = read_urls(&nurls)) == NULL)
		return 2;
	if ((size_t)conc > nurls)
		conc = nurls > 0 ? (long)nurls : 1;
	memset(codes, 0, sizeof(codes));
	rc = 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "hammer: cannot start libcurl\n");
		goto out;
	}
	if ((xs = calloc((size_t)conc, sizeof(*xs))) == NULL ||
	    (lat = calloc(nurls + 1, sizeof(*lat))) == NULL ||
	    (m = curl_multi_init()) == NULL) {
		fprintf(stderr, "hammer: out of memory\n");
		goto out;
	}
	/* One kept-alive connection per transfer slot, no more. */
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, conc);
	for (i = 0; i < (size_t)conc; i++)
		if (setup(&xs[i]) != 0) {
			fprintf(stderr, "hammer: cannot make a transfer\n");
			goto out;
		}

	t_first = now();
	for (i = 0; i < (size_t)conc && next < nurls; i++)
		if (start(m, &xs[i], urls[next++]) != 0) {
			fprintf(stderr, "hammer: cannot start a transfer\n");
			goto out;
		}
	while (done < nurls) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			fprintf(stderr, "hammer: the multi handle failed\n");
			goto out;
		}
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			t = now();
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
			    &priv);
			x = (struct xfer *)priv;
			status = 0;
			if (msg->data.result == CURLE_OK)
				curl_easy_getinfo(x->h,
				    CURLINFO_RESPONSE_CODE, &status);
			else
				failed++;
			if (x->last == 0 || msg->data.result != CURLE_OK)
				x->last = t;
			if (x->last > t_last)
				t_last = x->last;
			lat[done++] = x->last - x->t0;
			codes[status >= 0 && status < 600 ? status : 0]++;
			printf("%ld %.6f %llu\n", status, x->last - x->t0,
			    (unsigned long long)x->bytes);
			curl_multi_remove_handle(m, x->h);
			if (next < nurls && start(m, x, urls[next++]) != 0) {
				fprintf(stderr, "hammer: cannot start a "
				    "transfer\n");
				goto out;
			}
		}
		/* Only after the messages: the last one must not wait here. */
		if (done < nurls && curl_multi_poll(m, NULL, 0, 1000, NULL) !=
		    CURLM_OK) {
			fprintf(stderr, "hammer: the multi handle failed\n");
			goto out;
		}
	}

	qsort(lat, done, sizeof(*lat), by_value);
	t = t_last > t_first ? t_last - t_first : 0;
	fprintf(stderr, "hammer: n=%zu failed=%zu conc=%ld wall=%.6f "
	    "rate=%.3f p50=%.6f p99=%.6f max=%.6f codes=", done, failed,
	    conc, t, t > 0 ? (double)done / t : 0, rank(lat, done, 0.5),
	    rank(lat, done, 0.99), done > 0 ? lat[done - 1] : 0);
	for (first = 1, i = 0; i < 600; i++)
		if (codes[i] != 0) {
			fprintf(stderr, "%s%zu:%zu", first ? "" : ",", i,
			    codes[i]);
			first = 0;
		}
	fprintf(stderr, "\n");
	rc = failed > 0 ? 1 : 0;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "hammer: cannot write: %s\n", strerror(errno));
		rc = 1;
	}
out:
	if (xs != NULL)
		for (i = 0; i < (size_t)conc; i++)
			if (xs[i].h != NULL) {
				if (m != NULL)
					curl_multi_remove_handle(m, xs[i].h);
				curl_easy_cleanup(xs[i].h);
			}
	if (m != NULL)
		curl_multi_cleanup(m);
	curl_global_cleanup();
	for (i = 0; i < nurls; i++)
		free(urls[i]);
	free(urls);
	free(lat);
	free(xs);
	return rc;
}
