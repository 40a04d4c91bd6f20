/*
 * sigv4 against published vectors: the AWS SigV4 test suites (classic and
 * the current aws-c-auth one, S3's unnormalised path variants), and the
 * worked examples of the S3 API Reference. Each case is checked stage by
 * stage (canonical request, string to sign, signature, Authorization) so a
 * failure names the case and the first stage that went wrong.
 *
 * The vectors are read at run time from tests/data/sigv4 (tests run from the
 * repository root); see tests/data/sigv4/SOURCES.md for where each came from.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s3/buf.h"
#include "s3/sigv4.h"
#include "helpers.h"

#define DATA	"tests/data/sigv4/"
#define MAXHDR	32

/* Credentials of both AWS suites, as their documentation gives them. */
#define SUITE_AK	"AKIDEXAMPLE"
#define SUITE_SK	"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_REGION	"us-east-1"
#define SUITE_SERVICE	"service"

/* Credentials of the S3 API Reference examples. */
#define DOCS_AK		"AKIAIOSFODNN7EXAMPLE"
#define DOCS_SK		"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define DOCS_REGION	"us-east-1"
#define DOCS_SERVICE	"s3"

/* A raw HTTP request as the .req / request.txt files hold it. */
struct rawreq {
	struct buf		 text;		/* parsed in place */
	const char		*method;
	const char		*path;
	const char		*query;		/* NULL: no '?' */
	struct sigv4_header	 h[MAXHDR];
	size_t			 nh;
	const char		*body;
	size_t			 bodylen;
	/* Headers the test adds (x-amz-date, token, content hash). */
	char			 extra[3][1024];
};

static void
slurp(const char *path, struct buf *out)
{
	FILE	*f;
	char	 chunk[4096];
	size_t	 n;

	buf_init(out, 4 * 1024 * 1024);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open vector file '%s' (run from the "
	    "repository root)", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		cr_assert_eq(buf_add(out, chunk, n), 0, "'%s': out of memory",
		    path);
	cr_assert_eq(ferror(f), 0, "cannot read '%s'", path);
	fclose(f);
}

/* The whole file, as a string owned by the caller. */
static char *
slurp_str(const char *path)
{
	struct buf	b;
	char		*s;

	slurp(path, &b);
	s = buf_detach(&b, NULL);
	cr_assert_not_null(s);
	return s;
}

/* A one-line file (signature, Authorization) without its newline. */
static char *
slurp_line(const char *path)
{
	char	*s = slurp_str(path);

	s[strcspn(s, "\r\n")] = '\0';
	return s;
}

/*
 * Request line, headers (a line that starts with a space or tab continues
 * the one before it, and is kept with its newline for the signer to fold),
 * an empty line, the body.
 */
static void
parse_req(const char *path, struct rawreq *rq)
{
	char	*p, *eol, *sp, *colon, *end, *q;

	memset(rq, 0, sizeof(*rq));
	slurp(path, &rq->text);
	p = rq->text.data;

	eol = strchr(p, '\n');
	cr_assert_not_null(eol, "'%s': no request line", path);
	*eol = '\0';
	if (eol > p && eol[-1] == '\r')
		eol[-1] = '\0';
	/* The target may hold spaces ("/example space/"): cut at the ends. */
	sp = strchr(p, ' ');
	end = strrchr(p, ' ');
	cr_assert(sp != NULL && end != NULL && sp != end &&
	    strncmp(end + 1, "HTTP/", 5) == 0, "'%s': bad request line '%s'",
	    path, p);
	*sp = '\0';
	*end = '\0';
	rq->method = p;
	rq->path = sp + 1;
	if ((q = strchr(sp + 1, '?')) != NULL) {
		*q = '\0';
		rq->query = q + 1;
	}

	p = eol + 1;
	rq->body = "";
	for (;;) {
		if (*p == '\0')
			break;
		if (*p == '\n' || (p[0] == '\r' && p[1] == '\n')) {
			rq->body = p + (*p == '\n' ? 1 : 2);
			break;
		}
		end = strchr(p, '\n');
		while (end != NULL && (end[1] == ' ' || end[1] == '\t'))
			end = strchr(end + 1, '\n');
		colon = strchr(p, ':');
		cr_assert(colon != NULL && (end == NULL || colon < end),
		    "'%s': header line without ':'", path);
		cr_assert_lt(rq->nh, MAXHDR, "'%s': too many headers", path);
		*colon = '\0';
		rq->h[rq->nh].name = p;
		rq->h[rq->nh].value = colon + 1;
		rq->nh++;
		if (end == NULL)
			break;
		*end = '\0';
		p = end + 1;
	}
	rq->bodylen = strlen(rq->body);
}

static void
add_header(struct rawreq *rq, int slot, const char *name, const char *value)
{
	int	n;

	n = snprintf(rq->extra[slot], sizeof(rq->extra[slot]), "%s", value);
	cr_assert(n >= 0 && (size_t)n < sizeof(rq->extra[slot]));
	cr_assert_lt(rq->nh, MAXHDR);
	rq->h[rq->nh].name = name;
	rq->h[rq->nh].value = rq->extra[slot];
	rq->nh++;
}

/* The value of the first header called name (any case), or NULL. */
static const char *
find_header(const struct rawreq *rq, const char *name)
{
	size_t	i;

	for (i = 0; i < rq->nh; i++)
		if (strcasecmp(rq->h[i].name, name) == 0)
			return rq->h[i].value;
	return NULL;
}

static time_t
parse_time(const char *s, const char *fmt)
{
	struct tm	tm;
	const char	*end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, fmt, &tm);
	cr_assert(end != NULL && *end == '\0', "bad time '%s'", s);
	return timegm(&tm);
}

/* The text after "Signature=" in an Authorization value. */
static const char *
authz_signature(const char *authz)
{
	const char	*p = strstr(authz, "Signature=");

	cr_assert_not_null(p, "no Signature= in '%s'", authz);
	return p + strlen("Signature=");
}

/* The S3 pages print the header as "a,b,c"; the suites as "a, b, c". */
static void
squeeze_comma_space(const char *in, char *out, size_t outsz)
{
	size_t	o = 0;

	for (; *in != '\0' && o + 1 < outsz; in++) {
		*out++ = *in;
		o++;
		if (*in == ',' && in[1] == ' ')
			in++;
	}
	*out = '\0';
}

static void
check_stages(const char *name, const struct sigv4 *sv, const char *creq,
    const char *sts, const char *sig, const char *authz, int squeeze)
{
	char	got[1024], want[1024];

	cr_expect_str_eq(sv->creq.data, creq,
	    "%s: canonical request differs:\n--- got\n%s\n--- want\n%s",
	    name, sv->creq.data, creq);
	cr_expect_str_eq(sv->sts.data, sts,
	    "%s: string to sign differs:\n--- got\n%s\n--- want\n%s",
	    name, sv->sts.data, sts);
	cr_expect_str_eq(sv->signature, sig, "%s: signature differs", name);
	if (authz == NULL)
		return;
	if (squeeze) {
		squeeze_comma_space(sv->authorization.data, got, sizeof(got));
		squeeze_comma_space(authz, want, sizeof(want));
		cr_expect_str_eq(got, want, "%s: Authorization differs: got "
		    "'%s'", name, sv->authorization.data);
	} else
		cr_expect_str_eq(sv->authorization.data, authz,
		    "%s: Authorization differs", name);
}

static void
path_of(char *dst, size_t dstsz, const char *dir, const char *file)
{
	int	n;

	n = snprintf(dst, dstsz, DATA "%s/%s", dir, file);
	cr_assert(n >= 0 && (size_t)n < dstsz, "path too long");
}

/* --- classic aws-sig-v4-test-suite ---------------------------------- */

/*
 * Parameters hold their strings inline: Criterion may run each test in a
 * fresh image of the binary, where pointers from the parent mean nothing.
 */
struct classic_case {
	char	dir[64];	/* under aws-sig-v4-test-suite/ */
	char	token[80];	/* session token the case signs, or "" */
};

/*
 * Left out, each for a reason S3 cannot meet it:
 *   normalize-path/get-relative, get-relative-relative, get-slash,
 *   get-slash-dot-slash, get-slash-pointless-dot, get-slashes: the expected
 *     values remove dot segments and merge slashes, which S3 forbids (see
 *     normalize-path.txt); the unnormalised variants of the current suite
 *     are checked below instead.
 *   post-x-www-form-urlencoded, post-x-www-form-urlencoded-parameters: the
 *     upstream files disagree with each other (corpus SOURCES.md, Errata);
 *     the consistent versions of the current suite are checked below.
 * normalize-path/get-space is kept: normalising does not change it.
 */
static struct classic_case classic_cases[] = {
	{ "get-vanilla", "" },
	{ "get-vanilla-query", "" },
	{ "get-vanilla-empty-query-key", "" },
	{ "get-vanilla-query-order-key", "" },
	{ "get-vanilla-query-order-value", "" },
	{ "get-vanilla-query-order-key-case", "" },
	{ "get-vanilla-query-order-encoded", "" },
	{ "get-vanilla-query-unreserved", "" },
	{ "get-vanilla-utf8-query", "" },
	{ "get-unreserved", "" },
	{ "get-utf8", "" },
	{ "get-header-key-duplicate", "" },
	{ "get-header-value-order", "" },
	{ "get-header-value-multiline", "" },
	{ "get-header-value-trim", "" },
	/* The token is not in the .req: the suite supplies it. */
	{ "get-vanilla-with-session-token",
	    "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267" },
	{ "post-vanilla", "" },
	{ "post-vanilla-query", "" },
	{ "post-vanilla-empty-query-value", "" },
	{ "post-header-key-case", "" },
	{ "post-header-key-sort", "" },
	{ "post-header-value-case", "" },
	{ "normalize-path/get-space", "" },
	/* Token in the .req, signed as a header. */
	{ "post-sts-token/post-sts-header-before", "" },
	/* Token added after signing, so not signed at all. */
	{ "post-sts-token/post-sts-header-after", "" },
};

ParameterizedTestParameters(sigv4, classic)
{
	return cr_make_param_array(struct classic_case, classic_cases,
	    sizeof(classic_cases) / sizeof(classic_cases[0]));
}

ParameterizedTest(struct classic_case *c, sigv4, classic)
{
	struct sigv4_key	 key = { SUITE_AK, SUITE_SK, SUITE_REGION,
	    SUITE_SERVICE };
	struct sigv4_request	 req;
	struct rawreq		 rq;
	struct sigv4		 sv;
	const char		*base, *date;
	char			 dir[256], p[512], file[256], hash[65];
	char			*creq, *sts, *authz;

	base = strrchr(c->dir, '/');
	base = base == NULL ? c->dir : base + 1;
	snprintf(dir, sizeof(dir), "aws-sig-v4-test-suite/%s", c->dir);
	snprintf(file, sizeof(file), "%s.req", base);
	path_of(p, sizeof(p), dir, file);
	parse_req(p, &rq);
	snprintf(file, sizeof(file), "%s.creq", base);
	path_of(p, sizeof(p), dir, file);
	creq = slurp_str(p);
	snprintf(file, sizeof(file), "%s.sts", base);
	path_of(p, sizeof(p), dir, file);
	sts = slurp_str(p);
	snprintf(file, sizeof(file), "%s.authz", base);
	path_of(p, sizeof(p), dir, file);
	authz = slurp_line(p);
	if (c->token[0] != '\0')
		add_header(&rq, 0, "X-Amz-Security-Token", c->token);

	date = find_header(&rq, "X-Amz-Date");
	cr_assert_not_null(date, "%s: no X-Amz-Date in the request", c->dir);
	sigv4_sha256_hex(rq.body, rq.bodylen, hash);
	memset(&req, 0, sizeof(req));
	req.method = rq.method;
	req.path = rq.path;
	req.query = rq.query;
	req.headers = rq.h;
	req.nheaders = rq.nh;
	req.payload_hash = hash;

	sigv4_init(&sv);
	cr_assert_eq(sigv4_sign(&req, &key, parse_time(date, "%Y%m%dT%H%M%SZ"),
	    &sv), 0, "%s: sigv4_sign failed", c->dir);
	check_stages(c->dir, &sv, creq, sts, authz_signature(authz), authz, 0);
	sigv4_release(&sv);
	free(creq);
	free(sts);
	free(authz);
	buf_release(&rq.text);
}

/* --- current aws-c-auth suite (context.json) ------------------------ */

/*
 * The path cases of this suite come as -normalized and -unnormalized; only
 * the unnormalised ones are what S3 signs. The form POSTs are here because
 * their classic versions are inconsistent; they also sign
 * x-amz-content-sha256, as every S3 request does. The session-token cases
 * take the token from context.json.
 */
struct suite_case {
	char	dir[64];	/* under aws-signing-test-suite-v4/ */
};

static struct suite_case suite_cases[] = {
	{ "get-relative-unnormalized" },
	{ "get-relative-relative-unnormalized" },
	{ "get-slash-unnormalized" },
	{ "get-slash-dot-slash-unnormalized" },
	{ "get-slash-pointless-dot-unnormalized" },
	{ "get-slashes-unnormalized" },
	{ "get-space-unnormalized" },
	{ "post-x-www-form-urlencoded" },
	{ "post-x-www-form-urlencoded-parameters" },
	{ "get-vanilla-with-session-token" },
	{ "post-sts-header-before" },
};

ParameterizedTestParameters(sigv4, suite)
{
	return cr_make_param_array(struct suite_case, suite_cases,
	    sizeof(suite_cases) / sizeof(suite_cases[0]));
}

ParameterizedTest(struct suite_case *c, sigv4, suite)
{
	struct sigv4_key	 key;
	struct sigv4_request	 req;
	struct rawreq		 rq;
	struct sigv4		 sv;
	struct tm		 tm;
	struct th_json		*ctx;
	char			 dir[256], p[512], hash[65], amzdate[32];
	char			*text, *creq, *sts, *sig, *signedreq, *authz;
	const char		*ts, *token;
	time_t			 now;

	snprintf(dir, sizeof(dir), "aws-signing-test-suite-v4/%s", c->dir);
	path_of(p, sizeof(p), dir, "context.json");
	text = slurp_str(p);
	ctx = th_json_parse(text, strlen(text));
	free(text);
	path_of(p, sizeof(p), dir, "request.txt");
	parse_req(p, &rq);
	path_of(p, sizeof(p), dir, "header-canonical-request.txt");
	creq = slurp_str(p);
	path_of(p, sizeof(p), dir, "header-string-to-sign.txt");
	sts = slurp_str(p);
	path_of(p, sizeof(p), dir, "header-signature.txt");
	sig = slurp_line(p);
	path_of(p, sizeof(p), dir, "header-signed-request.txt");
	signedreq = slurp_str(p);
	authz = strstr(signedreq, "\nAuthorization:");
	cr_assert_not_null(authz, "%s: no Authorization in the signed request",
	    c->dir);
	authz += strlen("\nAuthorization:");
	authz[strcspn(authz, "\r\n")] = '\0';

	cr_assert_not_null(key.access_key = th_json_str(ctx,
	    "credentials.access_key_id"));
	cr_assert_not_null(key.secret_key = th_json_str(ctx,
	    "credentials.secret_access_key"));
	cr_assert_not_null(key.region = th_json_str(ctx, "region"));
	cr_assert_not_null(key.service = th_json_str(ctx, "service"));
	cr_assert_not_null(ts = th_json_str(ctx, "timestamp"));

	/* The signer of this suite adds x-amz-date itself; ours is told. */
	now = parse_time(ts, "%Y-%m-%dT%H:%M:%SZ");
	memset(&tm, 0, sizeof(tm));
	cr_assert_not_null(strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm));
	cr_assert_neq(strftime(amzdate, sizeof(amzdate), "%Y%m%dT%H%M%SZ",
	    &tm), 0);
	add_header(&rq, 0, "X-Amz-Date", amzdate);
	if (th_json_at(ctx, "credentials.token") != NULL &&
	    (token = th_json_str(ctx, "credentials.token")) != NULL)
		add_header(&rq, 1, "X-Amz-Security-Token", token);
	sigv4_sha256_hex(rq.body, rq.bodylen, hash);
	if (th_json_bool(ctx, "sign_body"))
		add_header(&rq, 2, "X-Amz-Content-Sha256", hash);

	memset(&req, 0, sizeof(req));
	req.method = rq.method;
	req.path = rq.path;
	req.query = rq.query;
	req.headers = rq.h;
	req.nheaders = rq.nh;
	req.payload_hash = hash;

	sigv4_init(&sv);
	cr_assert_eq(sigv4_sign(&req, &key, now, &sv), 0,
	    "%s: sigv4_sign failed", c->dir);
	check_stages(c->dir, &sv, creq, sts, sig, authz, 0);
	sigv4_release(&sv);
	th_json_free(ctx);
	free(creq);
	free(sts);
	free(sig);
	free(signedreq);
	buf_release(&rq.text);
}

/* --- S3 API Reference examples -------------------------------------- */

struct docs_case {
	char	dir[64];	/* under s3-docs-examples/ */
};

/*
 * chunked-put-object: only the seed request fits this interface (its
 * payload hash is the literal STREAMING-AWS4-HMAC-SHA256-PAYLOAD); the
 * per-chunk signatures need a chunk signer that sigv4.h does not offer, and
 * prewctl sends previews whole. presigned-get-object is its own test below.
 */
static struct docs_case docs_cases[] = {
	{ "get-object" },
	{ "put-object" },
	{ "list-objects" },
	{ "get-bucket-lifecycle" },
	{ "chunked-put-object" },
};

ParameterizedTestParameters(sigv4, docs)
{
	return cr_make_param_array(struct docs_case, docs_cases,
	    sizeof(docs_cases) / sizeof(docs_cases[0]));
}

static int
is_hex64(const char *s)
{
	return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

ParameterizedTest(struct docs_case *c, sigv4, docs)
{
	struct sigv4_key	 key = { DOCS_AK, DOCS_SK, DOCS_REGION,
	    DOCS_SERVICE };
	struct sigv4_request	 req;
	struct rawreq		 rq;
	struct sigv4		 sv;
	const char		*date, *sha;
	char			 dir[256], file[256], p[512], hash[65];
	char			*creq, *sts, *authz;

	snprintf(dir, sizeof(dir), "s3-docs-examples/%s", c->dir);
	snprintf(file, sizeof(file), "%s.req", c->dir);
	path_of(p, sizeof(p), dir, file);
	parse_req(p, &rq);
	snprintf(file, sizeof(file), "%s.creq", c->dir);
	path_of(p, sizeof(p), dir, file);
	creq = slurp_str(p);
	snprintf(file, sizeof(file), "%s.sts", c->dir);
	path_of(p, sizeof(p), dir, file);
	sts = slurp_str(p);
	snprintf(file, sizeof(file), "%s.authz", c->dir);
	path_of(p, sizeof(p), dir, file);
	authz = slurp_line(p);

	date = find_header(&rq, "x-amz-date");
	cr_assert_not_null(date, "%s: no x-amz-date", c->dir);
	sha = find_header(&rq, "x-amz-content-sha256");
	cr_assert_not_null(sha, "%s: no x-amz-content-sha256", c->dir);
	if (is_hex64(sha)) {
		/* A real hash: it must be the body's. */
		sigv4_sha256_hex(rq.body, rq.bodylen, hash);
		cr_assert_str_eq(hash, sha, "%s: body hash differs from "
		    "x-amz-content-sha256", c->dir);
	} else
		snprintf(hash, sizeof(hash), "%s", sha);

	memset(&req, 0, sizeof(req));
	req.method = rq.method;
	req.path = rq.path;
	req.query = rq.query;
	req.headers = rq.h;
	req.nheaders = rq.nh;
	req.payload_hash = hash;

	sigv4_init(&sv);
	cr_assert_eq(sigv4_sign(&req, &key, parse_time(date, "%Y%m%dT%H%M%SZ"),
	    &sv), 0, "%s: sigv4_sign failed", c->dir);
	check_stages(c->dir, &sv, creq, sts, authz_signature(authz), authz, 1);
	sigv4_release(&sv);
	free(creq);
	free(sts);
	free(authz);
	buf_release(&rq.text);
}

/*
 * Query-string auth: the caller puts the X-Amz-* parameters in the query
 * and signs host only with UNSIGNED-PAYLOAD; the signature then goes into
 * the URL, so there is no Authorization header to compare.
 */
Test(sigv4, docs_presigned)
{
	struct sigv4_key	 key = { DOCS_AK, DOCS_SK, DOCS_REGION,
	    DOCS_SERVICE };
	struct sigv4_request	 req;
	struct rawreq		 rq;
	struct sigv4		 sv;
	const char		*dir = "s3-docs-examples/presigned-get-object";
	char			 p[512], datebuf[32];
	char			*url, *query, *sigp, *creq, *sts, *d;

	path_of(p, sizeof(p), dir, "presigned-get-object.req");
	parse_req(p, &rq);
	path_of(p, sizeof(p), dir, "presigned-get-object.creq");
	creq = slurp_str(p);
	path_of(p, sizeof(p), dir, "presigned-get-object.sts");
	sts = slurp_str(p);
	path_of(p, sizeof(p), dir, "presigned-get-object.url");
	url = slurp_line(p);

	query = strchr(url, '?');
	cr_assert_not_null(query);
	query++;
	sigp = strstr(query, "&X-Amz-Signature=");
	cr_assert_not_null(sigp, "no X-Amz-Signature in the URL");
	*sigp = '\0';
	sigp += strlen("&X-Amz-Signature=");
	d = strstr(query, "X-Amz-Date=");
	cr_assert_not_null(d);
	d += strlen("X-Amz-Date=");
	snprintf(datebuf, sizeof(datebuf), "%.*s", (int)strcspn(d, "&"), d);

	memset(&req, 0, sizeof(req));
	req.method = rq.method;
	req.path = rq.path;
	req.query = query;
	req.headers = rq.h;
	req.nheaders = rq.nh;
	req.payload_hash = "UNSIGNED-PAYLOAD";

	sigv4_init(&sv);
	cr_assert_eq(sigv4_sign(&req, &key,
	    parse_time(datebuf, "%Y%m%dT%H%M%SZ"), &sv), 0);
	check_stages("presigned-get-object", &sv, creq, sts, sigp, NULL, 0);
	sigv4_release(&sv);
	free(url);
	free(creq);
	free(sts);
	buf_release(&rq.text);
}

/* --- behaviour the vectors do not pin down -------------------------- */

static const struct sigv4_key test_key = { SUITE_AK, SUITE_SK, SUITE_REGION,
    "s3" };

static const struct sigv4_header host_date[] = {
	{ "Host", "bucket.example.com" },
	{ "X-Amz-Date", "20150830T123600Z" },
};

#define EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Line n (0-based) of the canonical request, into dst. */
static void
creq_line(const struct sigv4 *sv, int n, char *dst, size_t dstsz)
{
	const char	*p = sv->creq.data;
	size_t		 len;

	while (n-- > 0) {
		p = strchr(p, '\n');
		cr_assert_not_null(p);
		p++;
	}
	len = strcspn(p, "\n");
	cr_assert_lt(len, dstsz);
	memcpy(dst, p, len);
	dst[len] = '\0';
}

static int
sign_simple(const char *path, const char *query, struct sigv4 *sv)
{
	struct sigv4_request	req = { "GET", path, query, host_date, 2,
	    EMPTY_SHA256 };

	return sigv4_sign(&req, &test_key, 1440938160, sv);
}

/* An S3 key with '+', ' ', '~' and UTF-8, encoded by s3_uri_encode. */
Test(sigv4, encoded_path_unchanged)
{
	const char	*k = "/photos/a+b c~\xe1\x88\xb4.jpg";
	struct buf	 path;
	struct sigv4	 sv;
	char		 line[256];

	buf_init(&path, 1024);
	cr_assert_eq(s3_uri_encode(&path, k, strlen(k), 1), 0);
	cr_assert_str_eq(path.data, "/photos/a%2Bb%20c~%E1%88%B4.jpg");
	sigv4_init(&sv);
	cr_assert_eq(sign_simple(path.data, NULL, &sv), 0);
	creq_line(&sv, 1, line, sizeof(line));
	cr_expect_str_eq(line, path.data);
	/* Lowercase escapes, and a raw '+', come out the same. */
	cr_assert_eq(sign_simple("/photos/a+b%20c~%e1%88%b4.jpg", NULL, &sv),
	    0);
	creq_line(&sv, 1, line, sizeof(line));
	cr_expect_str_eq(line, path.data);
	/* No double encoding: "%25" stays "%25", not "%2525". */
	cr_assert_eq(sign_simple("/100%25.jpg", NULL, &sv), 0);
	creq_line(&sv, 1, line, sizeof(line));
	cr_expect_str_eq(line, "/100%25.jpg");
	sigv4_release(&sv);
	buf_release(&path);
}

Test(sigv4, query_rules)
{
	static const struct {
		const char	*in, *want;
	} t[] = {
		{ "a=b+c", "a=b%2Bc" },		/* '+' is '+', not space */
		{ "a=b%2bc", "a=b%2Bc" },	/* escapes to uppercase */
		{ "a=b c", "a=b%20c" },
		{ "lifecycle", "lifecycle=" },	/* no '=': empty value */
		{ "x=&a=", "a=&x=" },
		{ "a=1=2", "a=1%3D2" },		/* split on the first '=' */
		{ "prefix=a/b&delimiter=/", "delimiter=%2F&prefix=a%2Fb" },
		{ "b=2&a=2&a=1", "a=1&a=2&b=2" },
		{ "", "" },
	};
	struct sigv4	sv;
	char		line[256];
	size_t		i;

	sigv4_init(&sv);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		cr_assert_eq(sign_simple("/", t[i].in, &sv), 0, "query '%s'",
		    t[i].in);
		creq_line(&sv, 2, line, sizeof(line));
		cr_expect_str_eq(line, t[i].want, "query '%s'", t[i].in);
	}
	/* NULL: no query at all, an empty line all the same. */
	cr_assert_eq(sign_simple("/", NULL, &sv), 0);
	creq_line(&sv, 2, line, sizeof(line));
	cr_expect_str_eq(line, "");
	sigv4_release(&sv);
}

Test(sigv4, malformed_requests_fail)
{
	static const struct sigv4_header nohost[] = {
		{ "X-Amz-Date", "20150830T123600Z" },
	};
	static const struct sigv4_header badname[] = {
		{ "Host", "bucket.example.com" },
		{ "Bad Name", "x" },
	};
	static const struct sigv4_header ctl[] = {
		{ "Host", "bucket.example.com" },
		{ "X-Amz-Meta-A", "a\001b" },
	};
	struct sigv4_request	req = { "GET", "/", NULL, host_date, 2,
	    EMPTY_SHA256 };
	struct sigv4		sv;

	sigv4_init(&sv);
	cr_expect_eq(sign_simple("/a%G1", NULL, &sv), -1, "bad path escape");
	cr_expect_eq(sign_simple("/a%4", NULL, &sv), -1, "short path escape");
	cr_expect_eq(sign_simple("a", NULL, &sv), -1, "relative path");
	cr_expect_eq(sign_simple("/", "a=%zz", &sv), -1, "bad query escape");
	req.headers = nohost;
	req.nheaders = 1;
	cr_expect_eq(sigv4_sign(&req, &test_key, 0, &sv), -1, "no host");
	req.headers = badname;
	req.nheaders = 2;
	cr_expect_eq(sigv4_sign(&req, &test_key, 0, &sv), -1, "bad name");
	req.headers = ctl;
	cr_expect_eq(sigv4_sign(&req, &test_key, 0, &sv), -1, "control byte");
	req.headers = host_date;
	req.payload_hash = NULL;
	cr_expect_eq(sigv4_sign(&req, &test_key, 0, &sv), -1, "no payload");
	req.payload_hash = EMPTY_SHA256;
	req.method = "";
	cr_expect_eq(sigv4_sign(&req, &test_key, 0, &sv), -1, "no method");
	sigv4_release(&sv);
}

/* Signing again with the same struct starts afresh. */
Test(sigv4, reuse)
{
	struct sigv4_key	 key = { SUITE_AK, SUITE_SK, SUITE_REGION,
	    SUITE_SERVICE };
	static const struct sigv4_header h[] = {
		{ "Host", "example.amazonaws.com" },
		{ "X-Amz-Date", "20150830T123600Z" },
	};
	struct sigv4_request	 req = { "GET", "/", NULL, h, 2, EMPTY_SHA256 };
	struct sigv4		 sv;
	int			 i;

	sigv4_init(&sv);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(sigv4_sign(&req, &key, 1440938160, &sv), 0);
		/* get-vanilla of the classic suite. */
		cr_expect_str_eq(sv.signature, "5fa00fa31553b73ebf1942676e86291e"
		    "8372ff2a2260956d9b8aae1d763fbf31", "round %d", i);
		cr_expect_str_eq(sv.signed_headers.data, "host;x-amz-date");
		cr_expect_str_eq(sv.scope,
		    "20150830/us-east-1/service/aws4_request");
		cr_expect_str_eq(sv.amz_date, "20150830T123600Z");
	}
	sigv4_release(&sv);
}

/* --- URI encoding ---------------------------------------------------- */

Test(sigv4, uri_encode)
{
	static const struct {
		const char	*in;
		int		 keep;
		const char	*want;
	} t[] = {
		{ "a+b", 1, "a%2Bb" },
		{ "a b", 1, "a%20b" },
		{ "a/b", 1, "a/b" },
		{ "a/b", 0, "a%2Fb" },
		{ "~-._", 0, "~-._" },
		{ "100%", 1, "100%25" },
		{ "\xe1\x88\xb4", 1, "%E1%88%B4" },
		{ "\xff", 0, "%FF" },
		{ "a=b&c", 0, "a%3Db%26c" },
		{ "#?*", 1, "%23%3F%2A" },
		{ "AZaz09", 0, "AZaz09" },
		{ "", 0, "" },
	};
	struct buf	b;
	size_t		i;

	buf_init(&b, 1024);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_reset(&b);
		cr_assert_eq(s3_uri_encode(&b, t[i].in, strlen(t[i].in),
		    t[i].keep), 0);
		cr_expect_str_eq(b.data, t[i].want, "encode '%s' keep=%d",
		    t[i].in, t[i].keep);
	}
	/* It appends, and a NUL inside the length is a byte like any. */
	buf_reset(&b);
	cr_assert_eq(buf_addstr(&b, "x"), 0);
	cr_assert_eq(s3_uri_encode(&b, "a\0b", 3, 0), 0);
	cr_expect_str_eq(b.data, "xa%00b");
	buf_release(&b);
}

Test(sigv4, uri_encode_over_max_leaves_buffer)
{
	struct buf	b;

	buf_init(&b, 8);
	cr_assert_eq(buf_addstr(&b, "ab"), 0);
	cr_expect_eq(s3_uri_encode(&b, "   ", 3, 0), -1);
	cr_expect_eq(b.len, 2);
	cr_expect_str_eq(b.data, "ab");
	buf_release(&b);
}

Test(sigv4, uri_decode)
{
	static const struct {
		const char	*in, *want;
	} t[] = {
		{ "%2B", "+" },
		{ "+", "+" },
		{ "a%20b", "a b" },
		{ "%e1%88%B4", "\xe1\x88\xb4" },
		{ "%25", "%" },
		{ "plain", "plain" },
	};
	static const char *const bad[] = { "%G1", "%4", "%", "abc%", "%1g",
	    "a%%20" };
	struct buf	b;
	unsigned char	all[256];
	size_t		i;

	buf_init(&b, 4096);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_reset(&b);
		cr_assert_eq(s3_uri_decode(&b, t[i].in, strlen(t[i].in)), 0);
		cr_expect_str_eq(b.data, t[i].want, "decode '%s'", t[i].in);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&b);
		cr_assert_eq(buf_addstr(&b, "keep"), 0);
		cr_expect_eq(s3_uri_decode(&b, bad[i], strlen(bad[i])), -1,
		    "decode '%s' should fail", bad[i]);
		cr_expect_str_eq(b.data, "keep", "decode '%s' changed the "
		    "buffer", bad[i]);
	}

	/* Every byte survives encode then decode. */
	for (i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)i;
	{
		struct buf	enc;

		buf_init(&enc, 4096);
		cr_assert_eq(s3_uri_encode(&enc, (const char *)all,
		    sizeof(all), 0), 0);
		cr_expect_eq(enc.len, 66 + 190 * 3, "encoded length");
		buf_reset(&b);
		cr_assert_eq(s3_uri_decode(&b, enc.data, enc.len), 0);
		cr_assert_eq(b.len, sizeof(all));
		cr_expect_eq(memcmp(b.data, all, sizeof(all)), 0);
		buf_release(&enc);
	}
	buf_release(&b);
}

/* --- digests ----------------------------------------------------------- */

/* RFC 1321 appendix A.5; base64 of each digest per RFC 4648. */
Test(sigv4, md5_base64)
{
	static const struct {
		const char	*in, *want;
	} t[] = {
		{ "", "1B2M2Y8AsgTpgAmY7PhCfg==" },
		{ "a", "DMF1ucDxtqgxw5niaXcmYQ==" },
		{ "abc", "kAFQmDzST7DWlj99KOF/cg==" },
		{ "message digest", "+WtpfXy3k41SWi8xqvFh0A==" },
		{ "abcdefghijklmnopqrstuvwxyz", "w/zT12GS5AB9+0lsymfhOw==" },
		{ "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789", "0XSrmNJ32fWlYRwsn0Gdnw==" },
		{ "1234567890123456789012345678901234567890"
		    "1234567890123456789012345678901234567890",
		    "V+30oivjyVWsSdouIQe2eg==" },
	};
	char	dst[25];
	size_t	i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(dst, 'x', sizeof(dst));
		sigv4_md5_base64(t[i].in, strlen(t[i].in), dst);
		cr_expect_str_eq(dst, t[i].want, "md5 of '%s'", t[i].in);
	}
}

/* FIPS 180-2 appendix B. */
Test(sigv4, sha256_hex)
{
	char	dst[65];
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnop"
	    "nopq";

	sigv4_sha256_hex("", 0, dst);
	cr_expect_str_eq(dst, EMPTY_SHA256);
	sigv4_sha256_hex("abc", 3, dst);
	cr_expect_str_eq(dst, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9c"
	    "b410ff61f20015ad");
	sigv4_sha256_hex(two, strlen(two), dst);
	cr_expect_str_eq(dst, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167"
	    "f6ecedd419db06c1");
}

/* Seconds since the epoch as GNU date -u -d '...' +%s gives them. */
Test(sigv4, amz_date)
{
	static const struct {
		time_t		 t;
		const char	*want;
	} t[] = {
		{ 0, "19700101T000000Z" },
		{ 1440938160, "20150830T123600Z" },
		{ 1369353600, "20130524T000000Z" },
		{ 946684799, "19991231T235959Z" },
		{ 951825600, "20000229T120000Z" },	/* leap century */
		{ 1456790399, "20160229T235959Z" },
		{ 2147483648, "20380119T031408Z" },	/* past 32 bits */
		{ 4107542400, "21000301T000000Z" },	/* 2100 not leap */
		{ 13574585228, "24000229T060708Z" },
	};
	char	dst[17];
	size_t	i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		sigv4_amz_date(t[i].t, dst);
		cr_expect_str_eq(dst, t[i].want, "amz date of %lld",
		    (long long)t[i].t);
	}
}
