/*
 * credhttp: the credentials sources that answer over HTTP.
 *
 *  - web identity: an unsigned POST of AssumeRoleWithWebIdentity to STS,
 *    with the token file read again for every fetch (Kubernetes rotates
 *    it); the XML answer is read by credparse.c;
 *  - a container endpoint (ECS, EKS Pod Identity, AWS Batch): a GET, with
 *    the authorization token (its file read again for every fetch) as the
 *    Authorization header; a flat JSON object back;
 *  - instance metadata (IMDSv2 only): PUT /latest/api/token, then the role
 *    name and the role's credentials, each GET carrying the token. Short
 *    timeouts, and no second try after a failed connect, so a machine that
 *    is no EC2 instance does not stall.
 *
 * Each request uses an easy handle of its own, made and freed here: a fetch
 * is rare, and a handle is never shared between threads. http and https
 * only, no redirects, TLS verified (AWS_CA_BUNDLE when set), every answer
 * bounded. Instance metadata and http container endpoints are reached
 * directly, never through a proxy.
 *
 * Secrets (tokens, answers, the request body) live in buffers sized once
 * and wiped before they are freed; what libcurl and libxml2 copy inside
 * themselves is beyond our reach. No message quotes an answer or a URL's
 * path: the path of a container endpoint is a capability.
 */
#include <arpa/inet.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "credsrc.h"
#include "sigv4.h"

#define JSON_BODY_MAX	(128 * 1024)
#define IMDS_SMALL_MAX	4096		/* the IMDS token, a role name */
#define IMDS_TTL	"21600"

/* Cut trailing white space (a token file's newline). */
static void
chomp(char *s)
{
	size_t	 n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' ||
	    s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

/* ---- HTTP ---------------------------------------------------------------- */

struct hreq {
	const char	*what;		/* the source's name, for messages */
	const char	*method;
	const char	*url;
	const char	*hdr[4];	/* "Name: value", NULL-ended; secrets */
	const char	*body;		/* POST only */
	size_t		 body_len;
	long		 connect_ms;
	long		 total_ms;
	int		 direct;	/* never through a proxy */
	int		 retry_connect;	/* try again after a failed connect */
	const char	*ca_bundle;
};

struct hresp {
	long		 status;
	struct buf	 body;		/* sbuf_open'ed by the caller */
	int		 too_big;
};

static size_t
h_write(char *p, size_t size, size_t nitems, void *arg)
{
	struct hresp	*r = arg;
	size_t		 n = size * nitems;

	if (buf_add(&r->body, p, n) != 0) {
		r->too_big = 1;
		return 0;
	}
	return n;
}

static void
slist_wipe_free(struct curl_slist *l)
{
	struct curl_slist	*x;

	for (x = l; x != NULL; x = x->next)
		explicit_bzero(x->data, strlen(x->data));
	curl_slist_free_all(l);
}

/*
 * One request, tried a second time after a transport failure (not after a
 * failed connect unless retry_connect), a 5xx or a 429. The body of the
 * last answer is in r->body whatever its status.
 */
static enum s3_status
h_perform(const struct hreq *q, struct hresp *r, struct s3_error *err)
{
	struct curl_slist	*list = NULL, *l;
	CURL			*h;
	CURLcode		 cc = CURLE_OK;
	enum s3_status		 st = S3_ECREDS;
	int			 i, attempt;

	if ((h = curl_easy_init()) == NULL) {
		credsrc_fail(err, "out of memory");
		return S3_ENOMEM;
	}
	for (i = 0; q->hdr[i] != NULL; i++) {
		if ((l = curl_slist_append(list, q->hdr[i])) == NULL)
			goto nomem;
		list = l;
	}
	/* No "Expect: 100-continue" round trip, no default form type. */
	if ((l = curl_slist_append(list, "Expect:")) == NULL)
		goto nomem;
	list = l;
	if (q->body == NULL) {
		if ((l = curl_slist_append(list, "Content-Type:")) == NULL)
			goto nomem;
		list = l;
	}
	curl_easy_setopt(h, CURLOPT_URL, q->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, q->connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, q->total_ms);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (q->ca_bundle != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, q->ca_bundle);
	if (q->direct)
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, h_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	if (strcmp(q->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
		    q->body != NULL ? q->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)q->body_len);
	}
	for (attempt = 0; attempt < 2; attempt++) {
		buf_reset(&r->body);
		r->status = 0;
		r->too_big = 0;
		cc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
		if (r->too_big || (cc == CURLE_OK && r->status < 500 &&
		    r->status != 429))
			break;
		if (!q->retry_connect && (cc == CURLE_COULDNT_CONNECT ||
		    cc == CURLE_COULDNT_RESOLVE_HOST ||
		    cc == CURLE_OPERATION_TIMEDOUT))
			break;
	}
	if (r->too_big)
		credsrc_fail(err, "%s: an answer larger than %zu bytes",
		    q->what, r->body.max);
	else if (cc != CURLE_OK)
		credsrc_fail(err, "%s: %s", q->what, curl_easy_strerror(cc));
	else
		st = S3_OK;
	goto out;
nomem:
	credsrc_fail(err, "out of memory");
	st = S3_ENOMEM;
out:
	curl_easy_cleanup(h);
	slist_wipe_free(list);
	return st;
}

/* ---- the sources ------------------------------------------------------- */

/*
 * Check url (http or https, a host) and name the source by its scheme and
 * host[:port] only. host gets the bare host (IPv6 without brackets).
 */
static enum s3_status
parse_url(struct credsrc *src, const char *kind, const char *var,
    const char *url, char *host, size_t hostlen, int *https,
    struct s3_error *err)
{
	CURLU		*u;
	char		*scheme = NULL, *h = NULL, *port = NULL;
	enum s3_status	 st = S3_ECREDS;
	size_t		 n;
	int		 k;

	if ((u = curl_url()) == NULL) {
		credsrc_fail(err, "out of memory");
		return S3_ENOMEM;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		credsrc_fail(err, "%s is not an http or https URL", var);
		goto out;
	}
	(void)curl_url_get(u, CURLUPART_PORT, &port, 0);
	k = snprintf(src->name, sizeof(src->name), "%s %s://%s%s%s", kind,
	    scheme, h, port != NULL ? ":" : "", port != NULL ? port : "");
	if (k < 0 || (size_t)k >= sizeof(src->name)) {
		credsrc_fail(err, "the host in %s is too long", var);
		goto out;
	}
	n = strlen(h);
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h[n - 1] = '\0';
		memmove(h, h + 1, n - 1);
	}
	k = snprintf(host, hostlen, "%s", h);
	if (k < 0 || (size_t)k >= hostlen) {
		credsrc_fail(err, "the host in %s is too long", var);
		goto out;
	}
	*https = strcmp(scheme, "https") == 0;
	st = S3_OK;
out:
	curl_free(scheme);
	curl_free(h);
	curl_free(port);
	curl_url_cleanup(u);
	return st;
}

static enum s3_status
dup_into(char **dst, const char *s, struct s3_error *err)
{
	if ((*dst = strdup(s)) == NULL) {
		credsrc_fail(err, "out of memory");
		return S3_ENOMEM;
	}
	return S3_OK;
}

static enum s3_status
ca_bundle(struct credsrc *src, struct s3_error *err)
{
	const char	*ca = credsrc_env("AWS_CA_BUNDLE");

	return ca != NULL ? dup_into(&src->ca_bundle, ca, err) : S3_OK;
}

enum s3_status
credsrc_web_identity(struct credsrc *src, const struct s3_creds_opts *o,
    time_t now, struct s3_error *err)
{
	const char	*file, *arn, *sess, *ep, *region, *r;
	char		 url[256], name[64], host[256];
	enum s3_status	 st;
	int		 n, https;

	if ((file = credsrc_env("AWS_WEB_IDENTITY_TOKEN_FILE")) == NULL)
		return S3_ENOTFOUND;
	if ((arn = credsrc_env("AWS_ROLE_ARN")) == NULL)
		return credsrc_fail(err, "AWS_WEB_IDENTITY_TOKEN_FILE is set "
		    "but AWS_ROLE_ARN is not");
	region = o->region != NULL ? o->region : "us-east-1";
	if ((ep = credsrc_env("AWS_ENDPOINT_URL_STS")) == NULL) {
		for (r = region; *r != '\0'; r++)
			if (!((*r >= 'a' && *r <= 'z') ||
			    (*r >= '0' && *r <= '9') || *r == '-'))
				return credsrc_fail(err, "region '%s' cannot "
				    "name an STS endpoint", region);
		n = snprintf(url, sizeof(url), "https://sts.%s.amazonaws.com/",
		    region);
		if (n < 0 || (size_t)n >= sizeof(url))
			return credsrc_fail(err, "region '%s' is too long",
			    region);
		ep = url;
	}
	if ((st = parse_url(src, "web identity at", "AWS_ENDPOINT_URL_STS",
	    ep, host, sizeof(host), &https, err)) != S3_OK)
		return st;
	if ((sess = credsrc_env("AWS_ROLE_SESSION_NAME")) == NULL) {
		/* As botocore does: the tool's name and the time. */
		n = snprintf(name, sizeof(name), "prewctl-%lld",
		    (long long)now);
		if (n < 0 || (size_t)n >= sizeof(name))
			return credsrc_fail(err, "out of memory");
		sess = name;
	}
	src->kind = CS_WEB_IDENTITY;
	if ((st = dup_into(&src->url, ep, err)) != S3_OK ||
	    (st = dup_into(&src->token_file, file, err)) != S3_OK ||
	    (st = dup_into(&src->role_arn, arn, err)) != S3_OK ||
	    (st = dup_into(&src->session_name, sess, err)) != S3_OK)
		return st;
	return ca_bundle(src, err);
}

/*
 * http is allowed to loopback and to the ECS and EKS Pod Identity
 * addresses only, as in the SDKs (a name other than localhost is not
 * resolved to find out: it is refused).
 */
static int
container_host_ok(const char *host)
{
	struct in_addr	 a4;
	struct in6_addr	 a6, eks;

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127 ||
		    strcmp(host, "169.254.170.2") == 0 ||
		    strcmp(host, "169.254.170.23") == 0;
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (inet_pton(AF_INET6, "fd00:ec2::23", &eks) != 1)
			return 0;
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		    memcmp(&a6, &eks, sizeof(a6)) == 0;
	}
	return 0;
}

enum s3_status
credsrc_container(struct credsrc *src, const struct s3_creds_opts *o,
    struct s3_error *err)
{
	const char	*rel, *full, *base, *var, *tok, *tokfile;
	char		 host[256];
	struct buf	 url;
	enum s3_status	 st;
	int		 https;

	rel = credsrc_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	full = credsrc_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	if (rel == NULL && full == NULL)
		return S3_ENOTFOUND;
	buf_init(&url, 8192);
	if (rel != NULL) {
		var = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
		base = o->container_host != NULL ? o->container_host :
		    "http://169.254.170.2";
		if (buf_addstr(&url, base) != 0 || buf_addstr(&url, rel) != 0) {
			st = credsrc_fail(err, "%s is too long", var);
			goto out;
		}
	} else {
		var = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
		if (buf_addstr(&url, full) != 0) {
			st = credsrc_fail(err, "%s is too long", var);
			goto out;
		}
	}
	if ((st = parse_url(src, "container endpoint", var, url.data, host,
	    sizeof(host), &https, err)) != S3_OK)
		goto out;
	if (rel == NULL && !https && !container_host_ok(host)) {
		st = credsrc_fail(err, "%s: http only to a loopback address, "
		    "169.254.170.2, 169.254.170.23 or fd00:ec2::23, not to "
		    "'%s' (use https)", var, host);
		goto out;
	}
	src->kind = CS_CONTAINER;
	tokfile = credsrc_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	tok = credsrc_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	if (tokfile != NULL)
		st = dup_into(&src->token_file, tokfile, err);
	else if (tok != NULL && credsrc_has_control(tok))
		st = credsrc_fail(err, "AWS_CONTAINER_AUTHORIZATION_TOKEN "
		    "holds a control character");
	else if (tok != NULL)
		st = dup_into(&src->auth, tok, err);
	if (st == S3_OK && (st = dup_into(&src->url, url.data, err)) == S3_OK)
		st = ca_bundle(src, err);
out:
	buf_release(&url);
	return st;
}

enum s3_status
credsrc_imds(struct credsrc *src, struct s3_error *err)
{
	const char	*off, *ep;
	char		 host[256];
	enum s3_status	 st;
	size_t		 n;
	int		 https;

	off = credsrc_env("AWS_EC2_METADATA_DISABLED");
	if (off != NULL && strcasecmp(off, "true") == 0)
		return S3_ENOTFOUND;
	if ((ep = credsrc_env("AWS_EC2_METADATA_SERVICE_ENDPOINT")) == NULL)
		ep = "http://169.254.169.254";
	if ((st = parse_url(src, "instance metadata",
	    "AWS_EC2_METADATA_SERVICE_ENDPOINT", ep, host, sizeof(host),
	    &https, err)) != S3_OK)
		return st;
	src->kind = CS_IMDS;
	if ((st = dup_into(&src->url, ep, err)) != S3_OK)
		return st;
	/* The paths are appended: no trailing slash. */
	n = strlen(src->url);
	while (n > 0 && src->url[n - 1] == '/')
		src->url[--n] = '\0';
	return ca_bundle(src, err);
}

/* A token file's content, trimmed and checked for use in a header. */
static enum s3_status
read_token(const char *path, const char *what, char **tok, size_t *size,
    struct s3_error *err)
{
	char		 msg[sizeof(err->message)];
	enum s3_status	 st;

	if ((st = credsrc_read_file(path, tok, size, err)) != S3_OK) {
		if (st == S3_ENOMEM)
			return st;
		/* As long as err->message: it fits. */
		(void)snprintf(msg, sizeof(msg), "%s", err->message);
		return credsrc_fail(err, "%s: %s", what, msg);
	}
	chomp(*tok);
	if (**tok == '\0' || credsrc_has_control(*tok)) {
		explicit_bzero(*tok, *size);
		free(*tok);
		*tok = NULL;
		return credsrc_fail(err, "%s: '%s' is empty or holds a "
		    "control character", what, path);
	}
	return S3_OK;
}

/* Append s form-encoded (which S3's URI encoding is). */
static int
form_add(struct buf *b, const char *name, const char *s)
{
	if (b->len > 0 && buf_addch(b, '&') != 0)
		return -1;
	if (buf_addstr(b, name) != 0 || buf_addch(b, '=') != 0)
		return -1;
	return s3_uri_encode(b, s, strlen(s), 0);
}

static enum s3_status
fetch_sts(const struct credsrc *src, struct s3_creds *c,
    struct s3_error *err)
{
	struct hreq	 q;
	struct hresp	 r;
	struct buf	 form;
	char		*tok = NULL, code[64], why[128];
	size_t		 toksize = 0;
	enum s3_status	 st;

	memset(&r, 0, sizeof(r));
	buf_init(&form, 0);
	if (credsrc_sbuf_open(&r.body, CREDSRC_STS_MAX) != 0)
		goto nomem;
	if ((st = read_token(src->token_file, src->name, &tok, &toksize,
	    err)) != S3_OK)
		goto out;
	if (credsrc_sbuf_open(&form, 3 * (strlen(tok) + strlen(src->role_arn) +
	    strlen(src->session_name)) + 256) != 0)
		goto nomem;
	if (form_add(&form, "Action", "AssumeRoleWithWebIdentity") != 0 ||
	    form_add(&form, "RoleArn", src->role_arn) != 0 ||
	    form_add(&form, "RoleSessionName", src->session_name) != 0 ||
	    form_add(&form, "Version", "2011-06-15") != 0 ||
	    form_add(&form, "WebIdentityToken", tok) != 0)
		goto nomem;
	memset(&q, 0, sizeof(q));
	q.what = src->name;
	q.method = "POST";
	q.url = src->url;
	q.hdr[0] = "Content-Type: application/x-www-form-urlencoded; "
	    "charset=utf-8";
	q.body = form.data;
	q.body_len = form.len;
	q.connect_ms = 5000;
	q.total_ms = 30000;
	q.retry_connect = 1;
	q.ca_bundle = src->ca_bundle;
	if ((st = h_perform(&q, &r, err)) != S3_OK)
		goto out;
	st = credsrc_parse_sts(r.body.data, r.body.len, c, code, sizeof(code),
	    why, sizeof(why));
	if (r.status == 200 && st == S3_OK)
		goto out;
	if (st == S3_OK)
		s3_creds_release(c);
	if (st == S3_ENOMEM)
		goto nomem;
	if (r.status != 200 && st == S3_ESERVER && !credsrc_has_control(code))
		st = credsrc_fail(err, "%s: STS refused the role: %s "
		    "(HTTP %ld)", src->name, code, r.status);
	else if (r.status != 200)
		st = credsrc_fail(err, "%s: HTTP %ld", src->name, r.status);
	else
		st = credsrc_fail(err, "%s: %s in the answer", src->name, why);
	goto out;
nomem:
	credsrc_fail(err, "out of memory");
	st = S3_ENOMEM;
out:
	if (tok != NULL) {
		explicit_bzero(tok, toksize);
		free(tok);
	}
	credsrc_sbuf_close(&form);
	credsrc_sbuf_close(&r.body);
	return st;
}

/* The JSON answer of a container or instance metadata endpoint. */
static enum s3_status
json_creds(const struct credsrc *src, const struct hresp *r,
    struct s3_creds *c, struct s3_error *err)
{
	char		 why[128];
	enum s3_status	 st;

	if (r->status != 200)
		return credsrc_fail(err, "%s: HTTP %ld", src->name, r->status);
	st = credsrc_parse_json(r->body.data, r->body.len, c, why,
	    sizeof(why));
	if (st == S3_ENOMEM) {
		credsrc_fail(err, "out of memory");
		return S3_ENOMEM;
	}
	if (st != S3_OK)
		return credsrc_fail(err, "%s: %s in the answer", src->name,
		    why);
	return S3_OK;
}

static enum s3_status
fetch_container(const struct credsrc *src, struct s3_creds *c,
    struct s3_error *err)
{
	struct hreq	 q;
	struct hresp	 r;
	struct buf	 auth;
	char		*tok = NULL;
	size_t		 toksize = 0;
	enum s3_status	 st = S3_ENOMEM;

	memset(&r, 0, sizeof(r));
	buf_init(&auth, 0);
	if (credsrc_sbuf_open(&r.body, JSON_BODY_MAX) != 0)
		goto nomem;
	memset(&q, 0, sizeof(q));
	if (src->token_file != NULL && (st = read_token(src->token_file,
	    src->name, &tok, &toksize, err)) != S3_OK)
		goto out;
	if (tok != NULL || src->auth != NULL) {
		const char *t = tok != NULL ? tok : src->auth;

		if (credsrc_sbuf_open(&auth, strlen(t) + 32) != 0 ||
		    buf_addf(&auth, "Authorization: %s", t) != 0)
			goto nomem;
		q.hdr[0] = auth.data;
	}
	q.what = src->name;
	q.method = "GET";
	q.url = src->url;
	q.hdr[q.hdr[0] != NULL ? 1 : 0] = "Accept: application/json";
	q.connect_ms = 2000;
	q.total_ms = 5000;
	q.direct = strncmp(src->url, "http:", 5) == 0;
	q.retry_connect = 1;
	q.ca_bundle = src->ca_bundle;
	if ((st = h_perform(&q, &r, err)) == S3_OK)
		st = json_creds(src, &r, c, err);
	goto out;
nomem:
	credsrc_fail(err, "out of memory");
	st = S3_ENOMEM;
out:
	if (tok != NULL) {
		explicit_bzero(tok, toksize);
		free(tok);
	}
	credsrc_sbuf_close(&auth);
	credsrc_sbuf_close(&r.body);
	return st;
}

/* One IMDS request: path after the endpoint, an optional header. */
static enum s3_status
imds_call(const struct credsrc *src, const char *method, const char *path,
    const char *hdr, struct hresp *r, struct s3_error *err)
{
	struct hreq	 q;
	struct buf	 url;
	enum s3_status	 st;

	buf_init(&url, BUF_NOMAX);
	if (buf_addf(&url, "%s%s", src->url, path) != 0) {
		buf_release(&url);
		credsrc_fail(err, "out of memory");
		return S3_ENOMEM;
	}
	memset(&q, 0, sizeof(q));
	q.what = src->name;
	q.method = method;
	q.url = url.data;
	q.hdr[0] = hdr;
	q.connect_ms = 1000;
	q.total_ms = 3000;
	q.direct = 1;
	q.ca_bundle = src->ca_bundle;
	st = h_perform(&q, r, err);
	buf_release(&url);
	return st;
}

static enum s3_status
fetch_imds(const struct credsrc *src, struct s3_creds *c,
    struct s3_error *err)
{
	static const char	 creds_path[] =
	    "/latest/meta-data/iam/security-credentials/";
	struct hresp		 small, r;
	struct buf		 hdr, path;
	enum s3_status		 st;
	size_t			 n;

	memset(&small, 0, sizeof(small));
	memset(&r, 0, sizeof(r));
	buf_init(&path, BUF_NOMAX);
	buf_init(&hdr, 0);
	if (credsrc_sbuf_open(&small.body, IMDS_SMALL_MAX) != 0 ||
	    credsrc_sbuf_open(&r.body, JSON_BODY_MAX) != 0 ||
	    credsrc_sbuf_open(&hdr, IMDS_SMALL_MAX + 64) != 0)
		goto nomem;
	if ((st = imds_call(src, "PUT", "/latest/api/token",
	    "X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TTL, &small,
	    err)) != S3_OK)
		goto out;
	if (small.status != 200) {
		st = credsrc_fail(err, "%s: HTTP %ld for a token", src->name,
		    small.status);
		goto out;
	}
	chomp(small.body.data);
	if (small.body.data[0] == '\0' ||
	    credsrc_has_control(small.body.data)) {
		st = credsrc_fail(err, "%s: a malformed token", src->name);
		goto out;
	}
	if (buf_addf(&hdr, "X-aws-ec2-metadata-token: %s",
	    small.body.data) != 0)
		goto nomem;

	if ((st = imds_call(src, "GET", creds_path, hdr.data, &small,
	    err)) != S3_OK)
		goto out;
	if (small.status == 404) {
		st = credsrc_fail(err, "%s: no IAM role is attached to this "
		    "instance", src->name);
		goto out;
	}
	if (small.status != 200) {
		st = credsrc_fail(err, "%s: HTTP %ld for the role name",
		    src->name, small.status);
		goto out;
	}
	/* The first line names the role. */
	n = strcspn(small.body.data, "\r\n");
	small.body.data[n] = '\0';
	if (n == 0 || credsrc_has_control(small.body.data)) {
		st = credsrc_fail(err, "%s: no IAM role is attached to this "
		    "instance", src->name);
		goto out;
	}
	if (buf_addstr(&path, creds_path) != 0 ||
	    s3_uri_encode(&path, small.body.data, n, 0) != 0)
		goto nomem;
	if ((st = imds_call(src, "GET", path.data, hdr.data, &r, err)) ==
	    S3_OK)
		st = json_creds(src, &r, c, err);
	goto out;
nomem:
	credsrc_fail(err, "out of memory");
	st = S3_ENOMEM;
out:
	buf_release(&path);
	credsrc_sbuf_close(&hdr);
	credsrc_sbuf_close(&small.body);
	credsrc_sbuf_close(&r.body);
	return st;
}

enum s3_status
credsrc_fetch(const struct credsrc *src, time_t now, struct s3_creds *c,
    struct s3_error *err)
{
	enum s3_status	 st;

	memset(c, 0, sizeof(*c));
	switch (src->kind) {
	case CS_WEB_IDENTITY:
		st = fetch_sts(src, c, err);
		break;
	case CS_CONTAINER:
		st = fetch_container(src, c, err);
		break;
	case CS_IMDS:
		st = fetch_imds(src, c, err);
		break;
	default:
		return credsrc_fail(err, "%s: nothing to fetch", src->name);
	}
	if (st == S3_OK && c->expires <= now)
		st = credsrc_fail(err, "%s: credentials that have expired "
		    "already", src->name);
	if (st == S3_OK)
		st = credsrc_check(c, src->name, err);
	if (st != S3_OK)
		s3_creds_release(c);
	return st;
}
