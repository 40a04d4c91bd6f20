/*
 * sigv4: AWS Signature Version 4 as a pure function of the request, the
 * credentials and the time (passed in, never read here). Every stage is
 * kept in struct sigv4 so tests can check each against the AWS vectors.
 */
#ifndef PREWCTL_SIGV4_H
#define PREWCTL_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

struct sigv4_header {
	const char	*name;		/* any case; trimmed by the signer */
	const char	*value;		/* trimmed, inner runs of spaces folded */
};

struct sigv4_request {
	const char			*method;
	const char			*path;	/* as on the wire: "/bucket/a%20b.jpg" */
	const char			*query;	/* as on the wire, without '?'; NULL: none */
	const struct sigv4_header	*headers;	/* all headers to sign, host included */
	size_t				 nheaders;
	const char			*payload_hash;	/* hex SHA-256 or "UNSIGNED-PAYLOAD" */
};

struct sigv4_key {
	const char	*access_key;
	const char	*secret_key;
	const char	*region;
	const char	*service;	/* "s3" */
};

struct sigv4 {
	char		amz_date[17];		/* 20150830T123600Z */
	char		scope[128];		/* 20150830/us-east-1/s3/aws4_request */
	struct buf	signed_headers;		/* host;x-amz-date */
	struct buf	creq;			/* canonical request */
	struct buf	sts;			/* string to sign */
	char		signature[65];		/* hex */
	struct buf	authorization;		/* the Authorization header value */
};

void	sigv4_init(struct sigv4 *);
void	sigv4_release(struct sigv4 *);

/*
 * Sign req at time now. The canonical URI is the path with each byte
 * percent-decoded and encoded again the S3 way (no dot-segment removal, no
 * double encoding), so a path already encoded by s3_uri_encode is unchanged.
 * Query parameters are decoded, encoded again, and sorted by name then value.
 * Duplicate header names are joined with ',' in the order given.
 * Returns 0, or -1 when out of memory or the request is malformed (bad
 * escape, path not starting with '/', no host header, a header name that is
 * not a token, a control byte in a value, now before 1970 or past 9999).
 * The session token, if any, is one of the headers (x-amz-security-token).
 */
int	sigv4_sign(const struct sigv4_request *, const struct sigv4_key *,
	    time_t now, struct sigv4 *);

/*
 * The x-amz-date form of t: "YYYYMMDDTHHMMSSZ", dst at least 17 bytes.
 * Times outside years 0000-9999 are clamped to them.
 */
void	sigv4_amz_date(time_t t, char dst[17]);

/* Hex SHA-256 of data into dst (65 bytes). */
void	sigv4_sha256_hex(const void *data, size_t len, char dst[65]);
/* Base64 of the MD5 of data into dst (25 bytes), for Content-MD5. */
/* Both leave "" in dst if libcrypto fails (e.g. MD5 under FIPS). */
void	sigv4_md5_base64(const void *data, size_t len, char dst[25]);

/*
 * S3's URI encoding: every byte but A-Z a-z 0-9 - . _ ~ becomes %XX
 * (uppercase hex); '/' is kept when keep_slash is set. Appends to out.
 */
int	s3_uri_encode(struct buf *out, const char *s, size_t len, int keep_slash);
/* Percent-decode s ("%2B" -> '+'; '+' stays '+'). -1 on a bad escape. */
int	s3_uri_decode(struct buf *out, const char *s, size_t len);

#endif
