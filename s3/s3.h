/*
 * s3: a small S3 client that knows nothing of previews.
 *
 * Every call returns an enum s3_status and, on failure, fills a caller-owned
 * struct s3_error with what the server or the transport said. Nothing here
 * prints or exits. One struct s3_client owns one curl easy handle and so one
 * keep-alive connection: use one per thread and never share it.
 */
#ifndef PREWCTL_S3_H
#define PREWCTL_S3_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

enum s3_status {
	S3_OK = 0,		/* 0 */
	S3_ENOMEM,		/* 1 out of memory */
	S3_EINVAL,		/* 2 bad argument or configuration */
	S3_ECREDS,		/* 3 no usable credentials */
	S3_ESERVER,		/* 4 the server answered with an S3 error */
	S3_ENOTFOUND,		/* 5 404: no such key or bucket */
	S3_ECONNECT,		/* 6 cannot resolve or connect */
	S3_ETIMEOUT,		/* 7 connect or low-speed timeout */
	S3_ENETWORK,		/* 8 reset, send or receive failure */
	S3_ETLS,		/* 9 TLS handshake or verification failed */
	S3_ESHORT,		/* 10 body shorter than Content-Length */
	S3_ETOOBIG,		/* 11 body larger than the allowed maximum */
	S3_EXML,		/* 12 malformed or hostile XML */
	S3_EPROTO,		/* 13 a response S3 would never send */
	S3_ECANCELLED,		/* 14 a callback asked to stop */
	S3_EPARTIAL,		/* 15 DeleteObjects: some keys failed */
};

struct s3_error {
	long	 http_status;		/* 0 when no response arrived */
	char	 code[64];		/* S3 <Code>, e.g. "SignatureDoesNotMatch" */
	char	 message[256];		/* S3 <Message> or transport text */
	char	 request_id[128];	/* S3 <RequestId> */
	int	 curl_code;		/* CURLcode, 0 when none */
};

const char	*s3_strerror(enum s3_status);
int		 s3_retryable(enum s3_status, const struct s3_error *);
void		 s3_error_clear(struct s3_error *);
/* One line for humans: "SignatureDoesNotMatch (HTTP 403)" or the transport text. */
const char	*s3_error_text(enum s3_status, const struct s3_error *,
		    char *dst, size_t len);

/* Parse an S3 <Error> body into err->code, message and request_id. */
enum s3_status	 s3_parse_error(const char *body, size_t len,
		    struct s3_error *err);

struct s3_creds {
	char	*access_key;
	char	*secret_key;
	char	*session_token;		/* NULL when none */
	time_t	 expires;		/* 0: never (static credentials) */
};

/* Wipe and free the strings; the struct may be filled again. */
void		 s3_creds_release(struct s3_creds *);
/* AWS_REGION, else AWS_DEFAULT_REGION, else NULL (empty counts as unset). */
const char	*s3_region_from_env(void);

/*
 * A credentials provider: made once (in main, before the threads), shared
 * by every client and thread. s3_creds_provider_new walks the AWS SDKs'
 * chain and keeps the first source that is set:
 *
 *  1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
 *     (AWS_SESSION_TOKEN);
 *  2. web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN
 *     (AWS_ROLE_SESSION_NAME), exchanged at STS (AssumeRoleWithWebIdentity
 *     at https://sts.REGION.amazonaws.com or AWS_ENDPOINT_URL_STS);
 *  3. the profile AWS_PROFILE (default "default") in the shared
 *     credentials file (AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials)
 *     and the config file (AWS_CONFIG_FILE, ~/.aws/config), the
 *     credentials file winning key by key;
 *  4. the container endpoint (ECS, EKS, AWS Batch):
 *     AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI, with
 *     AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN;
 *  5. the EC2 instance profile through IMDSv2 (AWS_EC2_METADATA_DISABLED,
 *     AWS_EC2_METADATA_SERVICE_ENDPOINT).
 *
 * A source that is set but fails is an error, not a reason to try the
 * next (as in the SDKs). Credentials of 2, 4 and 5 expire; the provider
 * fetches new ones from the same source when they expire within five
 * minutes. s3_creds_snapshot is safe from any thread.
 */
struct s3_creds_provider;

struct s3_creds_opts {
	const char	*region;	/* STS region; NULL: us-east-1 */
	/* For tests; NULL: the real ones. */
	const char	*container_host;	/* "http://169.254.170.2" */
	time_t		(*clock)(void *arg);	/* time(NULL) */
	void		*clock_arg;
};

/* S3_OK with *out set, or S3_ECREDS (S3_ENOMEM) with err->message. */
enum s3_status	 s3_creds_provider_new(const struct s3_creds_opts *,
		    struct s3_creds_provider **out, struct s3_error *);
/* A provider that hands out a copy of c for ever; NULL: out of memory. */
struct s3_creds_provider *s3_creds_provider_static(const struct s3_creds *c);
void		 s3_creds_provider_free(struct s3_creds_provider *);
/* Where the credentials come from: "environment", "profile 'x'", ... */
const char	*s3_creds_provider_source(const struct s3_creds_provider *);
/*
 * A consistent copy of the current credentials for one request, fetched
 * again first when they expire within five minutes (one thread fetches,
 * the others go on with the old ones while those are valid). A failed
 * fetch keeps the old credentials until they expire; then it is
 * S3_ECREDS. The caller frees out with s3_creds_release; err->message
 * never holds a secret.
 */
enum s3_status	 s3_creds_snapshot(struct s3_creds_provider *,
		    struct s3_creds *out, struct s3_error *);

struct s3_config {
	const char	*endpoint;	/* "http://127.0.0.1:7480"; NULL: AWS */
	const char	*bucket;
	const char	*region;	/* NULL: "us-east-1" */
	int		 path_style;
	int		 tls_verify;	/* 1 unless the config turns it off */
	const char	*ca_bundle;	/* NULL: system default */
	long		 connect_timeout_ms;	/* 0: 5000 */
	long		 low_speed_time_s;	/* 0: 30 */
	int		 max_retries;		/* attempts after the first; <0: 0 */
	long		 retry_base_ms;		/* 0: 100 */
	long		 retry_cap_ms;		/* 0: 5000 */
	struct s3_creds_provider *creds;	/* shared; not owned */
};

/* Counters a client keeps; the caller sums them over its clients. */
struct s3_stats {
	uint64_t	 list;
	uint64_t	 get;
	uint64_t	 put;
	uint64_t	 head;
	uint64_t	 del;
	uint64_t	 retries;
	uint64_t	 bytes_in;
	uint64_t	 bytes_out;
};

/* Add every counter of add into sum. */
void		 s3_stats_add(struct s3_stats *sum, const struct s3_stats *add);

struct s3_client;

/* Call once in main before any thread starts. */
int		 s3_global_init(void);
void		 s3_global_cleanup(void);

struct s3_client *s3_client_new(const struct s3_config *);
void		 s3_client_free(struct s3_client *);
const struct s3_stats *s3_client_stats(const struct s3_client *);
/*
 * A log line for each request attempt ("GET /b/k -> 200, 12 ms") and each
 * retry. Lines never hold credentials, signatures or tokens: the client
 * sends those in headers, which are not logged.
 */
typedef void	(*s3_log_fn)(void *arg, const char *line);
void		 s3_client_set_log(struct s3_client *, s3_log_fn, void *arg);
/* Checked between retries; nonzero stops retrying at once. */
void		 s3_client_set_cancel(struct s3_client *,
		    volatile sig_atomic_t *cancel);

struct s3_object {
	const char	*key;		/* decoded key */
	uint64_t	 size;
	const char	*etag;		/* with its quotes removed */
	int64_t		 mtime_ms;	/* LastModified, ms since the epoch */
};

/*
 * Listing callbacks get each entry while the page streams in. Return 0 to
 * go on, nonzero to stop (the listing then returns S3_ECANCELLED).
 */
typedef int	(*s3_object_cb)(void *arg, const struct s3_object *);
typedef int	(*s3_prefix_cb)(void *arg, const char *prefix);

struct s3_list_params {
	const char	*prefix;
	const char	*delimiter;	/* NULL: none */
	const char	*start_after;	/* NULL: none */
	int		 max_keys;	/* 0: 1000 */
	int		 max_pages;	/* 0: all */
	int		*more;		/* or NULL: set to whether max_pages
					   ended a listing that goes on */
};

enum s3_status	 s3_list(struct s3_client *, const struct s3_list_params *,
		    s3_object_cb, s3_prefix_cb, void *arg, struct s3_error *);

/* A header longer than its field is an error (S3_EPROTO), never cut. */
struct s3_head {
	uint64_t	 size;
	char		 etag[257];	/* 256 bytes, as listings allow */
	int64_t		 mtime_ms;
	char		 content_type[256];
	char		 cache_control[1024];
	struct buf	 meta;		/* "name=value\n" for each x-amz-meta-* */
};

void		 s3_head_init(struct s3_head *);
void		 s3_head_release(struct s3_head *);

/* Read a whole object into out; larger than max_bytes is S3_ETOOBIG. */
enum s3_status	 s3_get(struct s3_client *, const char *key, size_t max_bytes,
		    struct buf *out, struct s3_head *hd, struct s3_error *);
enum s3_status	 s3_head(struct s3_client *, const char *key,
		    struct s3_head *, struct s3_error *);

struct s3_meta {
	const char	*name;		/* without "x-amz-meta-" */
	const char	*value;
};

struct s3_put_opts {
	const char		*content_type;
	const char		*cache_control;	/* NULL: none */
	const char		*acl;		/* NULL: none */
	const struct s3_meta	*meta;
	size_t			 nmeta;
};

enum s3_status	 s3_put(struct s3_client *, const char *key, const void *data,
		    size_t len, const struct s3_put_opts *, struct s3_error *);

/* Called for each key that DeleteObjects could not delete. */
typedef void	(*s3_delete_err_cb)(void *arg, const char *key,
		    const char *code, const char *message);

/* Delete one key (a missing key is not an error). */
enum s3_status	 s3_delete(struct s3_client *, const char *key,
		    struct s3_error *);

#define S3_DELETE_MAX 1000
/*
 * Delete up to S3_DELETE_MAX keys; S3_EPARTIAL when some keys failed. Keys
 * with a control character XML cannot carry go one by one with s3_delete.
 */
enum s3_status	 s3_delete_many(struct s3_client *, const char *const *keys,
		    size_t n, s3_delete_err_cb, void *arg, struct s3_error *);

#endif
