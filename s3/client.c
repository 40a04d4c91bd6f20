/*
 * client: S3 requests over one libcurl easy handle.
 *
 * A struct s3_client belongs to one thread. curl_easy_reset between requests
 * clears the options but keeps the live connection, so requests reuse one
 * keep-alive connection. Every request goes through s3_request(), which
 * signs it, sends it, and retries what s3_retryable() allows with capped
 * exponential backoff and full jitter (sleep a random time in
 * [0, min(cap, base * 2^attempt)]), checking the cancel flag in between.
 *
 * Response bodies go to a sink: a listing parser, a size-capped buffer, or
 * nothing. Error bodies (status >= 300) are collected separately, capped,
 * and parsed into struct s3_error.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <libxml/parser.h>

#include "s3.h"
#include "sigv4.h"
#include "listxml.h"
#include "xml.h"

#define ERROR_BODY_MAX	(64 * 1024)
/*
 * A page of 1000 keys of 1024 bytes, each byte %XX-encoded, with the other
 * fields, is under 4 MiB: a larger body is no real page.
 */
#define LIST_PAGE_MAX	(8 * 1024 * 1024)
#define DELETE_BODY_MAX	(4 * 1024 * 1024)
#define EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_client {
	CURL		*curl;
	char		*scheme;	/* "http" or "https" */
	char		*host;		/* host[:port] of the endpoint */
	char		*bucket;
	char		*region;
	int		 path_style;
	int		 tls_verify;
	char		*ca_bundle;
	long		 connect_timeout_ms;
	long		 low_speed_time_s;
	int		 max_retries;
	long		 retry_base_ms;
	long		 retry_cap_ms;
	struct s3_creds_provider *creds;
	volatile sig_atomic_t *cancel;
	s3_log_fn	 log;
	void		*log_arg;
	struct s3_stats	 stats;
};

/* What a sink does with each chunk of a 2xx body. */
typedef enum s3_status (*sink_fn)(void *arg, const char *p, size_t n);

struct req {
	const char		*method;
	const char		*key;		/* NULL: the bucket itself */
	const char		*query;		/* encoded, NULL: none */
	const void		*body;
	size_t			 body_len;
	const struct s3_put_opts *put;
	const char		*content_md5;	/* NULL: none */
	const char		*content_type;	/* NULL: none (PUT sets its own) */
	sink_fn			 sink;
	void			*sink_arg;
	/* Called before each attempt, so a sink can start over. */
	void			(*restart)(void *arg);
	struct s3_head		*head;		/* response headers, may be NULL */
	struct buf		*presize;	/* grown to Content-Length at once */
	uint64_t		*counter;	/* which stats field to bump */
};

struct resp {
	const struct req	*req;
	CURL			*curl;
	long			 status;
	struct buf		 errbody;
	enum s3_status		 sink_status;
	uint64_t		 received;
	int64_t			 content_length;	/* -1: not sent */
	const char		*too_long;	/* a header we could not keep */
	int			 encoded;	/* Content-Encoding: decoded */
};

int
s3_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	xmlInitParser();
	return 0;
}

void
s3_global_cleanup(void)
{
	xmlCleanupParser();
	curl_global_cleanup();
}

static char *
xstrdup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

struct s3_client *
s3_client_new(const struct s3_config *cfg)
{
	struct s3_client	*c;
	const char		*ep, *p;
	char			 host[512];
	int			 n;

	if (cfg->bucket == NULL || cfg->creds == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->region = strdup(cfg->region != NULL ? cfg->region : "us-east-1");
	ep = cfg->endpoint;
	if (ep == NULL) {
		n = snprintf(host, sizeof(host), "s3.%s.amazonaws.com",
		    c->region != NULL ? c->region : "us-east-1");
		if (n < 0 || (size_t)n >= sizeof(host))
			goto fail;
		c->scheme = strdup("https");
		c->host = strdup(host);
	} else {
		if (strncmp(ep, "http://", 7) == 0) {
			c->scheme = strdup("http");
			p = ep + 7;
		} else if (strncmp(ep, "https://", 8) == 0) {
			c->scheme = strdup("https");
			p = ep + 8;
		} else
			goto fail;
		/* Keep host[:port] only: a path on the endpoint is not ours. */
		c->host = strndup(p, strcspn(p, "/"));
		if (c->host != NULL && *c->host == '\0')
			goto fail;
	}
	c->bucket = strdup(cfg->bucket);
	c->path_style = cfg->path_style;
	c->tls_verify = cfg->tls_verify;
	c->ca_bundle = xstrdup_or_null(cfg->ca_bundle != NULL ?
	    cfg->ca_bundle : getenv("AWS_CA_BUNDLE"));
	c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ?
	    cfg->connect_timeout_ms : 5000;
	c->low_speed_time_s = cfg->low_speed_time_s > 0 ?
	    cfg->low_speed_time_s : 30;
	c->max_retries = cfg->max_retries > 0 ? cfg->max_retries : 0;
	c->retry_base_ms = cfg->retry_base_ms > 0 ? cfg->retry_base_ms : 100;
	c->retry_cap_ms = cfg->retry_cap_ms > 0 ? cfg->retry_cap_ms : 5000;
	c->creds = cfg->creds;
	c->curl = curl_easy_init();
	if (c->region == NULL || c->scheme == NULL || c->host == NULL ||
	    c->bucket == NULL || c->curl == NULL)
		goto fail;
	return c;
fail:
	s3_client_free(c);
	return NULL;
}

void
s3_client_free(struct s3_client *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	free(c->scheme);
	free(c->host);
	free(c->bucket);
	free(c->region);
	free(c->ca_bundle);
	free(c);
}

void
s3_stats_add(struct s3_stats *sum, const struct s3_stats *add)
{
	sum->list += add->list;
	sum->get += add->get;
	sum->put += add->put;
	sum->head += add->head;
	sum->del += add->del;
	sum->retries += add->retries;
	sum->bytes_in += add->bytes_in;
	sum->bytes_out += add->bytes_out;
}

const struct s3_stats *
s3_client_stats(const struct s3_client *c)
{
	return &c->stats;
}

void
s3_client_set_cancel(struct s3_client *c, volatile sig_atomic_t *cancel)
{
	c->cancel = cancel;
}

void
s3_client_set_log(struct s3_client *c, s3_log_fn fn, void *arg)
{
	c->log = fn;
	c->log_arg = arg;
}

static void
s3_log(struct s3_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
s3_log(struct s3_client *c, const char *fmt, ...)
{
	char	line[1024];
	va_list	ap;

	if (c->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->log(c->log_arg, line);
}

void
s3_head_init(struct s3_head *hd)
{
	memset(hd, 0, sizeof(*hd));
	buf_init(&hd->meta, 64 * 1024);
}

void
s3_head_release(struct s3_head *hd)
{
	buf_release(&hd->meta);
}

/* -1 when the value does not fit: nothing is cut silently. */
static int
copy_field(char *dst, size_t len, const char *p, size_t n)
{
	if (n >= len) {
		dst[0] = '\0';
		return -1;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

/*
 * The header callback sees each response header line. We keep what
 * s3_head needs, the request id for errors, and Content-Length to tell a
 * short body from a whole one.
 */
static size_t
header_cb(char *line, size_t size, size_t nitems, void *arg)
{
	struct resp	*r = arg;
	struct s3_head	*hd = r->req->head;
	size_t		 n = size * nitems, nlen, vlen;
	const char	*colon, *v;
	char		*end;

	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new response (after a redirect or 100): start over. */
		r->content_length = -1;
		r->too_long = NULL;
		r->encoded = 0;
		if (hd != NULL)
			buf_reset(&hd->meta);
		return n;
	}
	if ((colon = memchr(line, ':', n)) == NULL)
		return n;
	nlen = (size_t)(colon - line);
	v = colon + 1;
	while (v < line + n && (*v == ' ' || *v == '\t'))
		v++;
	vlen = (size_t)(line + n - v);
	while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
	    v[vlen - 1] == ' '))
		vlen--;

#define IS(name) (nlen == sizeof(name) - 1 && strncasecmp(line, name, nlen) == 0)
	if (IS("content-encoding") && vlen > 0 &&
	    !(vlen == 8 && strncasecmp(v, "identity", 8) == 0))
		r->encoded = 1;
	if (IS("content-length")) {
		char tmp[32];

		(void)copy_field(tmp, sizeof(tmp), v, vlen);
		errno = 0;
		r->content_length = (int64_t)strtoll(tmp, &end, 10);
		if (errno != 0 || end == tmp || *end != '\0' ||
		    r->content_length < 0)
			r->content_length = -1;
		if (hd != NULL && r->content_length >= 0)
			hd->size = (uint64_t)r->content_length;
	}
	if (hd == NULL)
		return n;
	if (IS("etag")) {
		if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
			v++;
			vlen -= 2;
		}
		if (copy_field(hd->etag, sizeof(hd->etag), v, vlen) != 0)
			r->too_long = "ETag";
	} else if (IS("content-type")) {
		if (copy_field(hd->content_type, sizeof(hd->content_type), v,
		    vlen) != 0)
			r->too_long = "Content-Type";
	} else if (IS("cache-control")) {
		if (copy_field(hd->cache_control, sizeof(hd->cache_control), v,
		    vlen) != 0)
			r->too_long = "Cache-Control";
	} else if (IS("last-modified")) {
		char	tmp[64];
		time_t	t;

		(void)copy_field(tmp, sizeof(tmp), v, vlen);
		if ((t = curl_getdate(tmp, NULL)) != -1)
			hd->mtime_ms = (int64_t)t * 1000;
	} else if (nlen > 11 && strncasecmp(line, "x-amz-meta-", 11) == 0) {
		size_t i;

		/* Header names arrive in any case; S3 stores them lowercase. */
		for (i = 11; i < nlen; i++)
			if (buf_addch(&hd->meta, (char)tolower(
			    (unsigned char)line[i])) != 0) {
				r->too_long = "x-amz-meta-*";
				return n;
			}
		if (buf_addch(&hd->meta, '=') != 0 ||
		    buf_add(&hd->meta, v, vlen) != 0 ||
		    buf_addch(&hd->meta, '\n') != 0)
			r->too_long = "x-amz-meta-*";
	}
#undef IS
	return n;
}

/*
 * Body bytes: routed by status, which libcurl knows once the headers are
 * done, that is by the first write.
 */
static size_t
write_cb(char *p, size_t size, size_t nitems, void *arg)
{
	struct resp	*r = arg;
	size_t		 n = size * nitems, room;

	if (r->status == 0)
		curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &r->status);
	r->received += n;
	if (r->status >= 300 || r->status < 200) {
		/* Keep what fits of an error body; drop the rest. */
		room = ERROR_BODY_MAX - r->errbody.len;
		buf_add(&r->errbody, p, n < room ? n : room);
		return n;
	}
	if (r->req->sink == NULL)
		return n;
	/* One allocation for the body instead of doubling through it. */
	if (r->received == n && r->req->presize != NULL &&
	    r->content_length > 0)
		(void)buf_grow(r->req->presize, (size_t)r->content_length);
	r->sink_status = r->req->sink(r->req->sink_arg, p, n);
	return r->sink_status == S3_OK ? n : 0;
}

static int
add_header(struct curl_slist **list, const char *name, const char *value)
{
	struct buf		 b;
	struct curl_slist	*l;

	buf_init(&b, BUF_NOMAX);
	if (buf_addf(&b, "%s: %s", name, value) != 0) {
		buf_release(&b);
		return -1;
	}
	l = curl_slist_append(*list, b.data);
	buf_release(&b);
	if (l == NULL)
		return -1;
	*list = l;
	return 0;
}

/* "/bucket/key" (path-style) or "/key", encoded; and the Host header. */
static int
build_target(struct s3_client *c, const char *key, struct buf *path,
    struct buf *host)
{
	if (c->path_style) {
		if (buf_addstr(host, c->host) != 0 || buf_addch(path, '/') != 0 ||
		    s3_uri_encode(path, c->bucket, strlen(c->bucket), 0) != 0)
			return -1;
		if (key != NULL && buf_addch(path, '/') != 0)
			return -1;
		if (key == NULL && buf_addch(path, '/') != 0)
			return -1;
	} else {
		if (buf_addf(host, "%s.%s", c->bucket, c->host) != 0 ||
		    buf_addch(path, '/') != 0)
			return -1;
	}
	if (key != NULL && s3_uri_encode(path, key, strlen(key), 1) != 0)
		return -1;
	return 0;
}

static enum s3_status
map_curl(CURLcode cc)
{
	switch (cc) {
	case CURLE_OK:
		return S3_OK;
	case CURLE_OUT_OF_MEMORY:
		return S3_ENOMEM;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return S3_ECONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return S3_ETIMEOUT;
	case CURLE_PARTIAL_FILE:
		return S3_ESHORT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return S3_ETLS;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return S3_EINVAL;
	default:
		return S3_ENETWORK;
	}
}

/* One attempt: sign, send, classify. */
static enum s3_status
attempt(struct s3_client *c, const struct req *q, struct s3_error *err)
{
	struct sigv4_header	 hdrs[32];
	struct sigv4_request	 sr;
	struct sigv4_key	 sk;
	struct s3_creds		 cr;
	struct sigv4		 sig;
	struct curl_slist	*list = NULL;
	struct buf		 path, host, url;
	struct resp		 r;
	char			 payload[65], amz_date[17];
	size_t			 nh = 0, i;
	enum s3_status		 st = S3_ENOMEM;
	CURLcode		 cc;
	time_t			 now;
	struct timespec		 t0, t1;

	buf_init(&path, 16 * 1024);
	buf_init(&host, 1024);
	buf_init(&url, 20 * 1024);
	sigv4_init(&sig);
	memset(&r, 0, sizeof(r));
	r.req = q;
	r.content_length = -1;
	buf_init(&r.errbody, ERROR_BODY_MAX);
	memset(&cr, 0, sizeof(cr));
	s3_error_clear(err);

	/* Each attempt signs with the provider's credentials of the moment. */
	if ((st = s3_creds_snapshot(c->creds, &cr, err)) != S3_OK)
		goto out;
	st = S3_ENOMEM;
	if (build_target(c, q->key, &path, &host) != 0)
		goto out;
	if (q->body != NULL && q->body_len > 0)
		sigv4_sha256_hex(q->body, q->body_len, payload);
	else
		memcpy(payload, EMPTY_SHA256, sizeof(payload));

	now = time(NULL);
	sigv4_amz_date(now, amz_date);
	hdrs[nh++] = (struct sigv4_header){ "host", host.data };
	hdrs[nh++] = (struct sigv4_header){ "x-amz-content-sha256", payload };
	hdrs[nh++] = (struct sigv4_header){ "x-amz-date", amz_date };
	if (cr.session_token != NULL)
		hdrs[nh++] = (struct sigv4_header){ "x-amz-security-token",
		    cr.session_token };
	if (q->content_md5 != NULL)
		hdrs[nh++] = (struct sigv4_header){ "content-md5",
		    q->content_md5 };
	if (q->content_type != NULL)
		hdrs[nh++] = (struct sigv4_header){ "content-type",
		    q->content_type };
	if (q->put != NULL) {
		if (q->put->cache_control != NULL)
			hdrs[nh++] = (struct sigv4_header){ "cache-control",
			    q->put->cache_control };
		if (q->put->acl != NULL)
			hdrs[nh++] = (struct sigv4_header){ "x-amz-acl",
			    q->put->acl };
	}
	/* Metadata names are signed with their prefix; build them in url. */
	if (q->put != NULL && q->put->nmeta > 0) {
		if (q->put->nmeta > sizeof(hdrs) / sizeof(hdrs[0]) - nh) {
			st = S3_EINVAL;
			goto out;
		}
		for (i = 0; i < q->put->nmeta; i++) {
			if (buf_addf(&url, "x-amz-meta-%s", q->put->meta[i].name)
			    != 0 || buf_addch(&url, '\0') != 0)
				goto out;
		}
		{
			const char *name = url.data;

			for (i = 0; i < q->put->nmeta; i++) {
				hdrs[nh++] = (struct sigv4_header){ name,
				    q->put->meta[i].value };
				name += strlen(name) + 1;
			}
		}
	}

	sr = (struct sigv4_request){ q->method, path.data, q->query, hdrs, nh,
	    payload };
	sk = (struct sigv4_key){ cr.access_key, cr.secret_key, c->region,
	    "s3" };
	if (sigv4_sign(&sr, &sk, now, &sig) != 0) {
		st = S3_EINVAL;
		goto out;
	}
	for (i = 1; i < nh; i++)	/* curl sends Host itself */
		if (add_header(&list, hdrs[i].name, hdrs[i].value) != 0)
			goto out;
	if (add_header(&list, "Authorization", sig.authorization.data) != 0)
		goto out;
	/* No "Expect: 100-continue" round trip, and no default type. */
	if ((list = curl_slist_append(list, "Expect:")) == NULL)
		goto out;
	if (q->content_type == NULL &&
	    (list = curl_slist_append(list, "Content-Type:")) == NULL)
		goto out;

	{
		/* The URL: scheme://host + path (+ ?query). */
		struct buf u;

		buf_init(&u, 20 * 1024);
		if (buf_addf(&u, "%s://%s%s%s%s", c->scheme, host.data,
		    path.data, q->query != NULL ? "?" : "",
		    q->query != NULL ? q->query : "") != 0) {
			buf_release(&u);
			goto out;
		}
		buf_release(&url);
		url = u;
	}

	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url.data);
	/* Send "/./" and "/../" in keys as signed; curl would squash them. */
	curl_easy_setopt(c->curl, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS,
	    c->connect_timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
	curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
	if (c->ca_bundle != NULL)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_bundle);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &r);
	r.curl = c->curl;
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &r);
	/*
	 * An object stored with Content-Encoding: gzip (or deflate, br) is
	 * what a browser shows once decoded: a GET decodes it. S3 never
	 * compresses on its own, so nothing else changes; the sink's cap
	 * bounds the decoded size.
	 */
	if (strcmp(q->method, "GET") == 0 && q->key != NULL)
		curl_easy_setopt(c->curl, CURLOPT_ACCEPT_ENCODING, "");
	if (strcmp(q->method, "HEAD") == 0)
		curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
	else if (strcmp(q->method, "GET") != 0) {
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, q->method);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS,
		    q->body != NULL ? q->body : "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)q->body_len);
	}

	if (q->restart != NULL)
		q->restart(q->sink_arg);
	if (q->counter != NULL)
		(*q->counter)++;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cc = curl_easy_perform(c->curl);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r.status);
	s3_log(c, "%s %s%s%s -> %ld%s%s, %ld ms", q->method, path.data,
	    q->query != NULL ? "?" : "", q->query != NULL ? q->query : "",
	    r.status, cc != CURLE_OK ? ", " : "",
	    cc != CURLE_OK ? curl_easy_strerror(cc) : "",
	    (long)((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000));
	err->http_status = r.status;
	err->curl_code = (int)cc;
	c->stats.bytes_in += r.received;
	if (q->body != NULL)
		c->stats.bytes_out += q->body_len;

	if (cc == CURLE_WRITE_ERROR && r.sink_status != S3_OK) {
		st = r.sink_status;
		if (err->message[0] == '\0')
			snprintf(err->message, sizeof(err->message), "%s",
			    s3_strerror(st));
		goto out;
	}
	if (cc != CURLE_OK) {
		st = map_curl(cc);
		snprintf(err->message, sizeof(err->message), "%s",
		    curl_easy_strerror(cc));
		goto out;
	}
	if (r.status >= 300 || r.status < 200) {
		if (r.errbody.len > 0)
			(void)s3_parse_error(r.errbody.data, r.errbody.len, err);
		err->http_status = r.status;
		st = r.status == 404 ? S3_ENOTFOUND : S3_ESERVER;
		if (err->code[0] == '\0')
			snprintf(err->code, sizeof(err->code), "HTTP%ld",
			    r.status);
		goto out;
	}
	if (r.too_long != NULL) {
		st = S3_EPROTO;
		snprintf(err->message, sizeof(err->message),
		    "response header %s too long", r.too_long);
		goto out;
	}
	/*
	 * curl catches most short bodies; this catches the rest. Decoded,
	 * the body is no longer Content-Length long: curl checked the
	 * encoded one.
	 */
	if (strcmp(q->method, "HEAD") != 0 && r.content_length >= 0 &&
	    !r.encoded &&
	    r.received != (uint64_t)r.content_length) {
		st = S3_ESHORT;
		snprintf(err->message, sizeof(err->message),
		    "body of %llu bytes, %lld announced",
		    (unsigned long long)r.received,
		    (long long)r.content_length);
		goto out;
	}
	st = S3_OK;
out:
	curl_slist_free_all(list);
	s3_creds_release(&cr);
	sigv4_release(&sig);
	buf_release(&path);
	buf_release(&host);
	buf_release(&url);
	buf_release(&r.errbody);
	return st;
}

static void
backoff(struct s3_client *c, int attempt_no)
{
	long		cap = c->retry_base_ms;
	long		ms;
	struct timespec	ts;
	int		i;

	for (i = 0; i < attempt_no && cap < c->retry_cap_ms; i++)
		cap *= 2;
	if (cap > c->retry_cap_ms)
		cap = c->retry_cap_ms;
	ms = (long)arc4random_uniform((uint32_t)cap + 1);
	/* Sleep in slices so a cancel is seen quickly. */
	while (ms > 0 && (c->cancel == NULL || !*c->cancel)) {
		long slice = ms < 50 ? ms : 50;

		ts.tv_sec = 0;
		ts.tv_nsec = slice * 1000000L;
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
		ms -= slice;
	}
}

static enum s3_status
s3_request(struct s3_client *c, const struct req *q, struct s3_error *err)
{
	enum s3_status	st;
	char		msg[256];
	int		n;

	for (n = 0;; n++) {
		st = attempt(c, q, err);
		if (st == S3_OK || !s3_retryable(st, err) ||
		    n >= c->max_retries ||
		    (c->cancel != NULL && *c->cancel))
			return st;
		c->stats.retries++;
		s3_log(c, "retrying (%d of %d): %s", n + 1, c->max_retries,
		    s3_error_text(st, err, msg, sizeof(msg)));
		backoff(c, n);
		if (c->cancel != NULL && *c->cancel)
			return st;
	}
}

/* GET into a capped buffer. */
struct getsink {
	struct buf	*out;
	size_t		 max;
};

static enum s3_status
get_sink(void *arg, const char *p, size_t n)
{
	struct getsink	*g = arg;

	if (n > g->max - g->out->len)
		return S3_ETOOBIG;
	return buf_add(g->out, p, n) == 0 ? S3_OK : S3_ENOMEM;
}

static void
get_restart(void *arg)
{
	struct getsink	*g = arg;

	buf_reset(g->out);
}

enum s3_status
s3_get(struct s3_client *c, const char *key, size_t max_bytes,
    struct buf *out, struct s3_head *hd, struct s3_error *err)
{
	struct getsink	g = { out, max_bytes };
	struct req	q;
	enum s3_status	st;

	memset(&q, 0, sizeof(q));
	q.method = "GET";
	q.key = key;
	q.presize = out;
	q.sink = get_sink;
	q.sink_arg = &g;
	q.restart = get_restart;
	q.head = hd;
	q.counter = &c->stats.get;
	st = s3_request(c, &q, err);
	if (st == S3_ETOOBIG)
		snprintf(err->message, sizeof(err->message),
		    "object larger than %zu bytes", max_bytes);
	if (st != S3_OK)
		buf_reset(out);
	return st;
}

enum s3_status
s3_head(struct s3_client *c, const char *key, struct s3_head *hd,
    struct s3_error *err)
{
	struct req	q;

	memset(&q, 0, sizeof(q));
	q.method = "HEAD";
	q.key = key;
	q.head = hd;
	q.counter = &c->stats.head;
	return s3_request(c, &q, err);
}

enum s3_status
s3_put(struct s3_client *c, const char *key, const void *data, size_t len,
    const struct s3_put_opts *opts, struct s3_error *err)
{
	struct req	q;
	char		md5[25];

	sigv4_md5_base64(data, len, md5);
	memset(&q, 0, sizeof(q));
	q.method = "PUT";
	q.key = key;
	q.body = data;
	q.body_len = len;
	q.put = opts;
	q.content_md5 = md5;
	q.content_type = opts->content_type != NULL ? opts->content_type :
	    "application/octet-stream";
	q.counter = &c->stats.put;
	return s3_request(c, &q, err);
}

/*
 * Listing: one request per page. A page that fails halfway is asked for
 * again; entries up to the last one delivered are then skipped. That is
 * safe because a page lists its keys in ascending order, and its common
 * prefixes in ascending order, each list on its own (RGW sends the
 * prefixes first, AWS the keys), so each kind keeps its own mark.
 */
struct lister {
	s3_object_cb	 obj_cb;
	s3_prefix_cb	 prefix_cb;
	void		*arg;
	struct listxml	*lx;
	size_t		 page_bytes;
	struct buf	 last_key;	/* "" until a key is delivered */
	struct buf	 last_prefix;
	int		 failed;	/* callback allocation failure */
	char		 msg[256];
};

/* Whether s was delivered before; if not, remember it as the last. */
static int
seen(struct lister *l, struct buf *last, const char *s)
{
	if (last->len > 0 && strcmp(s, last->data) <= 0)
		return 1;
	buf_reset(last);
	if (buf_addstr(last, s) != 0)
		l->failed = 1;
	return 0;
}

static int
lister_obj(void *arg, const struct s3_object *o)
{
	struct lister	*l = arg;

	if (seen(l, &l->last_key, o->key))
		return 0;
	if (l->failed)
		return 1;
	return l->obj_cb != NULL ? l->obj_cb(l->arg, o) : 0;
}

static int
lister_prefix(void *arg, const char *prefix)
{
	struct lister	*l = arg;

	if (seen(l, &l->last_prefix, prefix))
		return 0;
	if (l->failed)
		return 1;
	return l->prefix_cb != NULL ? l->prefix_cb(l->arg, prefix) : 0;
}

static void
list_restart(void *arg)
{
	struct lister	*l = arg;

	listxml_free(l->lx);
	l->lx = listxml_new(lister_obj, lister_prefix, l);
	l->page_bytes = 0;
}

static enum s3_status
list_sink(void *arg, const char *p, size_t n)
{
	struct lister	*l = arg;

	if (l->lx == NULL)
		return S3_ENOMEM;
	if (n > LIST_PAGE_MAX - l->page_bytes) {
		snprintf(l->msg, sizeof(l->msg), "listing page larger than "
		    "%d bytes", LIST_PAGE_MAX);
		return S3_EPROTO;
	}
	l->page_bytes += n;
	return listxml_feed(l->lx, p, n, l->msg, sizeof(l->msg));
}

static int
add_param(struct buf *q, const char *name, const char *value)
{
	if (q->len > 0 && buf_addch(q, '&') != 0)
		return -1;
	if (buf_addstr(q, name) != 0 || buf_addch(q, '=') != 0)
		return -1;
	return s3_uri_encode(q, value, strlen(value), 0);
}

enum s3_status
s3_list(struct s3_client *c, const struct s3_list_params *lp,
    s3_object_cb obj_cb, s3_prefix_cb prefix_cb, void *arg,
    struct s3_error *err)
{
	struct lister		 l;
	struct listxml_result	 res;
	struct buf		 query, token;
	struct req		 q;
	enum s3_status		 st = S3_ENOMEM;
	char			 maxkeys[16];
	int			 pages = 0;

	memset(&l, 0, sizeof(l));
	l.obj_cb = obj_cb;
	l.prefix_cb = prefix_cb;
	l.arg = arg;
	buf_init(&l.last_key, 8192);
	buf_init(&l.last_prefix, 8192);
	buf_init(&query, 32 * 1024);
	buf_init(&token, 8192);
	snprintf(maxkeys, sizeof(maxkeys), "%d",
	    lp->max_keys > 0 && lp->max_keys <= 1000 ? lp->max_keys : 1000);
	if (lp->more != NULL)
		*lp->more = 0;

	for (;;) {
		buf_reset(&query);
		/* Parameters in sorted order, as they are signed. */
		if ((token.len > 0 &&
		    add_param(&query, "continuation-token", token.data) != 0) ||
		    (lp->delimiter != NULL &&
		    add_param(&query, "delimiter", lp->delimiter) != 0) ||
		    add_param(&query, "encoding-type", "url") != 0 ||
		    add_param(&query, "list-type", "2") != 0 ||
		    add_param(&query, "max-keys", maxkeys) != 0 ||
		    add_param(&query, "prefix",
		    lp->prefix != NULL ? lp->prefix : "") != 0 ||
		    (lp->start_after != NULL && token.len == 0 &&
		    add_param(&query, "start-after", lp->start_after) != 0))
			goto out;

		memset(&q, 0, sizeof(q));
		q.method = "GET";
		q.query = query.data;
		q.sink = list_sink;
		q.sink_arg = &l;
		q.restart = list_restart;
		q.counter = &c->stats.list;
		l.msg[0] = '\0';
		st = s3_request(c, &q, err);
		if (st == S3_OK)
			st = listxml_finish(l.lx, &res, l.msg, sizeof(l.msg));
		if (st != S3_OK) {
			if (l.failed)
				st = S3_ENOMEM;
			if (l.msg[0] != '\0' && (st == S3_EXML ||
			    st == S3_EPROTO || err->message[0] == '\0'))
				snprintf(err->message, sizeof(err->message),
				    "%s", l.msg);
			goto out;
		}
		pages++;
		if (!res.is_truncated)
			break;
		if (res.next_token == NULL || *res.next_token == '\0') {
			st = S3_EPROTO;
			snprintf(err->message, sizeof(err->message),
			    "listing truncated without a continuation token");
			goto out;
		}
		if (token.len > 0 && strcmp(token.data, res.next_token) == 0) {
			st = S3_EPROTO;
			snprintf(err->message, sizeof(err->message),
			    "listing repeated its continuation token");
			goto out;
		}
		buf_reset(&token);
		if (buf_addstr(&token, res.next_token) != 0) {
			st = S3_EPROTO;
			snprintf(err->message, sizeof(err->message),
			    "continuation token too long");
			goto out;
		}
		if (lp->max_pages > 0 && pages >= lp->max_pages) {
			if (lp->more != NULL)
				*lp->more = 1;
			break;
		}
	}
	st = S3_OK;
out:
	listxml_free(l.lx);
	buf_release(&l.last_key);
	buf_release(&l.last_prefix);
	buf_release(&query);
	buf_release(&token);
	return st;
}

/*
 * XML text escaping for keys in a DeleteObjects body (xml_safe keys only);
 * -1 when out of memory.
 */
static int
xml_escape(struct buf *b, const char *s)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		int rc;

		switch (*p) {
		case '&': rc = buf_addstr(b, "&amp;"); break;
		case '<': rc = buf_addstr(b, "&lt;"); break;
		case '>': rc = buf_addstr(b, "&gt;"); break;
		case '"': rc = buf_addstr(b, "&quot;"); break;
		case '\'': rc = buf_addstr(b, "&apos;"); break;
		case '\t': case '\n': case '\r':
			rc = buf_addf(b, "&#%d;", *p);
			break;
		default:
			rc = buf_addch(b, (char)*p);
		}
		if (rc != 0)
			return -1;
	}
	return 0;
}

enum s3_status
s3_delete(struct s3_client *c, const char *key, struct s3_error *err)
{
	struct req	q;
	enum s3_status	st;

	memset(&q, 0, sizeof(q));
	q.method = "DELETE";
	q.key = key;
	q.counter = &c->stats.del;
	st = s3_request(c, &q, err);
	return st == S3_ENOTFOUND ? S3_OK : st;
}

/* Whether XML 1.0 can carry s: no control character but tab, LF, CR. */
static int
xml_safe(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' &&
		    *s != '\r')
			return 0;
	return 1;
}

/*
 * The batch goes first: if it fails as a whole, no key has been reported
 * yet and the caller may count them all as failed. Keys XML cannot carry
 * follow one by one, each failure reported through cb.
 */
enum s3_status
s3_delete_many(struct s3_client *c, const char *const *keys, size_t n,
    s3_delete_err_cb cb, void *arg, struct s3_error *err)
{
	struct buf	 body, resp;
	struct getsink	 g;
	struct req	 q;
	struct s3_error	 kerr;
	char		 md5[25], msg[256];
	enum s3_status	 st = S3_ENOMEM;
	size_t		 i, nbatch = 0;
	int		 nerr = 0;

	s3_error_clear(err);
	if (n == 0)
		return S3_OK;
	if (n > S3_DELETE_MAX)
		return S3_EINVAL;
	buf_init(&body, BUF_NOMAX);
	buf_init(&resp, DELETE_BODY_MAX);
	if (buf_addstr(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	    "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	    "<Quiet>true</Quiet>") != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (!xml_safe(keys[i]))
			continue;
		if (buf_addstr(&body, "<Object><Key>") != 0 ||
		    xml_escape(&body, keys[i]) != 0 ||
		    buf_addstr(&body, "</Key></Object>") != 0)
			goto out;
		nbatch++;
	}
	if (nbatch > 0) {
		if (buf_addstr(&body, "</Delete>") != 0)
			goto out;
		sigv4_md5_base64(body.data, body.len, md5);
		g.out = &resp;
		g.max = DELETE_BODY_MAX;
		memset(&q, 0, sizeof(q));
		q.method = "POST";
		q.query = "delete=";
		q.body = body.data;
		q.body_len = body.len;
		q.content_md5 = md5;
		q.content_type = "application/xml";
		q.sink = get_sink;
		q.sink_arg = &g;
		q.restart = get_restart;
		q.counter = &c->stats.del;
		if ((st = s3_request(c, &q, err)) != S3_OK)
			goto out;
		st = s3_parse_delete_result(resp.data, resp.len, nbatch, cb,
		    arg, &nerr);
		if (st != S3_OK) {
			snprintf(err->message, sizeof(err->message), "%s",
			    st == S3_EXML ? "malformed DeleteObjects result" :
			    "out of memory");
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		if (xml_safe(keys[i]))
			continue;
		if ((st = s3_delete(c, keys[i], &kerr)) != S3_OK) {
			nerr++;
			if (cb != NULL)
				cb(arg, keys[i], kerr.code, s3_error_text(st,
				    &kerr, msg, sizeof(msg)));
		}
	}
	st = nerr > 0 ? S3_EPARTIAL : S3_OK;
out:
	buf_release(&body);
	buf_release(&resp);
	return st;
}
