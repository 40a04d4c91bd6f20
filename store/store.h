/*
 * store: where originals and previews live. Two backends behind one set of
 * calls: an S3 bucket (s3/) and a local folder (dirstore.c). Both list
 * keys in ascending byte order, report LastModified in ms, write whole
 * objects or nothing, and know nothing of previews.
 *
 * A struct store is shared; each thread opens its own struct store_conn
 * (for S3 that is one curl handle and its keep-alive connection).
 *
 * Every call returns an enum store_status and fills a caller-owned struct
 * store_error. The statuses say what the engine must decide: whether a
 * failure is about one key or about the storage as a whole
 * (store_failing), and whether it can be retried (the S3 client retries on
 * its own). An S3 answer keeps its HTTP status and <Code>; a folder's
 * filesystem error keeps its errno, and is never dressed up as S3's.
 */
#ifndef PREWCTL_STORE_H
#define PREWCTL_STORE_H

#include <signal.h>
#include <stdint.h>

#include "s3/s3.h"
#include "preview/config.h"

enum store_status {
	STORE_OK = 0,		/* 0 */
	STORE_ENOMEM,		/* 1 out of memory */
	STORE_EINVAL,		/* 2 bad key, argument or configuration */
	STORE_ENOTFOUND,	/* 3 no such key */
	STORE_ETOOBIG,		/* 4 larger than the caller allows */
	STORE_EDENIED,		/* 5 refused: AccessDenied, EACCES, Glacier */
	STORE_EAUTH,		/* 6 credentials missing or refused */
	STORE_EIO,		/* 7 a filesystem error of the folder */
	STORE_ESERVER,		/* 8 the server answered with another error */
	STORE_ENETWORK,		/* 9 unreachable, timed out, reset, cut short */
	STORE_EPROTO,		/* 10 a malformed or hostile response */
	STORE_ECANCELLED,	/* 11 a callback or the cancel flag stopped it */
	STORE_EPARTIAL,		/* 12 delete_many: some keys failed */
};

struct store_error {
	long	 http_status;		/* S3's answer; 0 when none */
	char	 code[64];		/* S3's <Code>, or "" */
	char	 message[512];		/* for humans: never a credential */
	char	 request_id[128];	/* S3's, or "" */
	int	 errnum;		/* the folder's errno, or 0 */
};

const char	*store_strerror(enum store_status);
void		 store_error_clear(struct store_error *);
/*
 * One line for humans: "AccessDenied (HTTP 403)", "cannot write
 * 'prew/a.jpg': No space left on device", "cannot connect: ...".
 */
const char	*store_error_text(enum store_status, const struct store_error *,
		    char *dst, size_t len);
/*
 * Whether a failure is about the storage as a whole (unreachable,
 * credentials refused, failing, full, read-only) rather than about one
 * key; only those count towards stopping a run. A refusal of a read is
 * about that key (a private object, a Glacier one); a refusal of a write
 * is not (read-only credentials, a bucket that refuses the ACL).
 */
int		 store_failing(enum store_status, const struct store_error *,
		    int write);

struct store;
struct store_conn;

/* NULL on failure, with err filled. */
struct store	*store_new(const struct config *, enum store_status *st,
		    struct store_error *err);
void		 store_free(struct store *);
/*
 * Async-signal-safe: remove what writes in progress left (the folder's
 * temporary files), for a process that must exit at once.
 */
void		 store_abort(void);

/* Every connection opened after this logs its requests to fn. */
void		 store_set_log(struct store *, s3_log_fn, void *arg);
struct store_conn *store_conn_new(struct store *);
void		 store_conn_free(struct store_conn *);
void		 store_conn_set_cancel(struct store_conn *,
		    volatile sig_atomic_t *);
/* Adds this connection's counters into sum. */
void		 store_conn_stats(const struct store_conn *, struct s3_stats *);

/* An ETag as listings and HEAD give it, without quotes. */
#define STORE_ETAG_MAX 256

struct store_head {
	uint64_t	 size;
	int64_t		 mtime_ms;
	char		 etag[STORE_ETAG_MAX + 1];
	char		 content_type[256];	/* "" when none */
	struct buf	 meta;		/* "name=value\n" per metadata item */
};

void		 store_head_init(struct store_head *);
void		 store_head_release(struct store_head *);
/* The value of metadata item name, copied into dst; -1 when absent. */
int		 store_head_meta(const struct store_head *, const char *name,
		    char *dst, size_t len);

enum store_status store_list(struct store_conn *,
		    const struct s3_list_params *, s3_object_cb, s3_prefix_cb,
		    void *arg, struct store_error *);
/* Read a whole object; with hd, also what a HEAD would say of it. */
enum store_status store_get(struct store_conn *, const char *key,
		    size_t max_bytes, struct buf *out, struct store_head *hd,
		    struct store_error *);
enum store_status store_head(struct store_conn *, const char *key,
		    struct store_head *, struct store_error *);
/*
 * Write a whole object. The folder keeps the metadata and the
 * Content-Type in extended attributes where the filesystem has them
 * (user.<name>, user.mime_type) and ignores the ACL and Cache-Control.
 */
enum store_status store_put(struct store_conn *, const char *key,
		    const void *data, size_t len, const struct s3_put_opts *,
		    struct store_error *);
/* Called for each key that could not be deleted. */
typedef void	(*store_delete_err_cb)(void *arg, const char *key,
		    enum store_status, const struct store_error *);
enum store_status store_delete_many(struct store_conn *,
		    const char *const *keys, size_t n, store_delete_err_cb,
		    void *arg, struct store_error *);

/* The folder backend, used by store_new when [storage] directory is set. */
struct dirstore;
struct dirstore	*dirstore_new(const char *root, struct store_error *);
void		 dirstore_free(struct dirstore *);
enum store_status dirstore_list(struct dirstore *,
		    const struct s3_list_params *, s3_object_cb, s3_prefix_cb,
		    void *arg, struct store_error *);
enum store_status dirstore_get(struct dirstore *, const char *key,
		    size_t max_bytes, struct buf *out, struct store_head *hd,
		    struct store_error *);
enum store_status dirstore_head(struct dirstore *, const char *key,
		    struct store_head *, struct store_error *);
enum store_status dirstore_put(struct dirstore *, const char *key,
		    const void *data, size_t len, const struct s3_put_opts *,
		    struct store_error *);
enum store_status dirstore_delete_many(struct dirstore *,
		    const char *const *keys, size_t n, store_delete_err_cb,
		    void *arg, struct store_error *);
void		 dirstore_unlink_temps(void);

#endif
