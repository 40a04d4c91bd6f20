/*
 * credsrc: where struct s3_creds_provider gets its credentials. creds.c
 * walks the chain once and keeps the first source that is set; the
 * sources whose credentials expire (web identity, container, instance
 * metadata) are fetched again over HTTP by credhttp.c, whose answers
 * credparse.c reads.
 *
 * Messages name a source by its kind and host, never by a whole URL (the
 * path of a container endpoint is a capability) and never with a secret.
 */
#ifndef PREWCTL_CREDSRC_H
#define PREWCTL_CREDSRC_H

#include <stddef.h>
#include <time.h>

#include "s3.h"

enum credsrc_kind {
	CS_STATIC,
	CS_ENV,
	CS_WEB_IDENTITY,
	CS_PROFILE,
	CS_CONTAINER,
	CS_IMDS,
};

/* Set when the chain chooses the source, read-only after. */
struct credsrc {
	enum credsrc_kind	 kind;
	char			 name[192];	/* for messages */
	char			*url;		/* STS, container, IMDS */
	char			*token_file;	/* web identity, container */
	char			*auth;		/* container token: a secret */
	char			*role_arn;
	char			*session_name;
	char			*ca_bundle;	/* AWS_CA_BUNDLE */
};

void		 credsrc_release(struct credsrc *);

/* The three HTTP sources: fill src from the environment (creds.c). */
enum s3_status	 credsrc_web_identity(struct credsrc *,
		    const struct s3_creds_opts *, time_t now,
		    struct s3_error *);
enum s3_status	 credsrc_container(struct credsrc *,
		    const struct s3_creds_opts *, struct s3_error *);
enum s3_status	 credsrc_imds(struct credsrc *, struct s3_error *);

/*
 * Fetch credentials from an HTTP source (credhttp.c): S3_OK, or S3_ECREDS
 * or S3_ENOMEM with err->message naming the source and what went wrong.
 * Credentials already expired at now are refused.
 */
enum s3_status	 credsrc_fetch(const struct credsrc *, time_t now,
		    struct s3_creds *, struct s3_error *);

/*
 * The response parsers, for the tests and the fuzzers. Both fill c only on
 * S3_OK; why gets a reason that never quotes the body.
 *
 * A container or instance metadata answer: one flat JSON object whose
 * values are strings, numbers, true, false or null; AccessKeyId,
 * SecretAccessKey and Expiration required, Token optional, Code (when
 * there) must be "Success". S3_EPROTO when malformed.
 */
enum s3_status	 credsrc_parse_json(const char *body, size_t len,
		    struct s3_creds *c, char *why, size_t whylen);
/*
 * An STS AssumeRoleWithWebIdentity answer. S3_OK; S3_ESERVER for an
 * <ErrorResponse>, its <Code> in code; S3_EXML when malformed.
 */
enum s3_status	 credsrc_parse_sts(const char *body, size_t len,
		    struct s3_creds *c, char *code, size_t codelen,
		    char *why, size_t whylen);

#define CREDSRC_TOKEN_MAX	(64 * 1024)	/* a session token */
#define CREDSRC_STS_MAX		(256 * 1024)	/* an STS answer */

/* Shared by creds.c, credhttp.c and credparse.c. */
enum s3_status	 credsrc_fail(struct s3_error *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/* Non-empty, unset as NULL. */
const char	*credsrc_env(const char *name);
/* A whole small file in one wiped allocation (*size bytes to wipe). */
enum s3_status	 credsrc_read_file(const char *path, char **data,
		    size_t *size, struct s3_error *);
void		 credsrc_wipe_free(char *s);
/*
 * A buffer for secrets: all of max allocated at once (so no realloc
 * leaves a copy behind; -1 when out of memory), wiped when closed.
 */
int		 credsrc_sbuf_open(struct buf *, size_t max);
void		 credsrc_sbuf_close(struct buf *);
/* A byte below 0x20, or DEL: never in a header. */
int		 credsrc_has_control(const char *);
/* Keys and secret present, no control character in any of the three. */
enum s3_status	 credsrc_check(const struct s3_creds *, const char *what,
		    struct s3_error *);

#endif
