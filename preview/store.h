/*
 * store: where originals and previews live. Two backends behind one set of
 * calls: an S3 bucket (s3/) and a local folder. Both list keys in ascending
 * byte order, report LastModified in ms, and write whole objects or nothing.
 *
 * A struct store is shared; each thread opens its own struct store_conn
 * (for S3 that is one curl handle and its keep-alive connection).
 * Statuses and errors are s3/'s, so callers handle one kind.
 */
#ifndef PREWCTL_STORE_H
#define PREWCTL_STORE_H

#include "s3/s3.h"
#include "config.h"

struct store;
struct store_conn;

/* NULL on failure, with err filled (S3_ECREDS, S3_EINVAL, ...). */
struct store	*store_new(const struct config *, enum s3_status *st,
		    struct s3_error *err);
void		 store_free(struct store *);
/* A short description for messages: "s3://bucket" or "dir:/path". */
const char	*store_name(const struct store *);
int		 store_is_local(const struct store *);

/* Every connection opened after this logs its requests to fn. */
void		 store_set_log(struct store *, s3_log_fn, void *arg);
struct store_conn *store_conn_new(struct store *);
void		 store_conn_free(struct store_conn *);
void		 store_conn_set_cancel(struct store_conn *, volatile sig_atomic_t *);
/* Adds this connection's counters into sum. */
void		 store_conn_stats(const struct store_conn *, struct s3_stats *sum);

enum s3_status	 store_list(struct store_conn *, const struct s3_list_params *,
		    s3_object_cb, s3_prefix_cb, void *arg, struct s3_error *);
enum s3_status	 store_get(struct store_conn *, const char *key,
		    size_t max_bytes, struct buf *out, struct s3_error *);
enum s3_status	 store_put(struct store_conn *, const char *key,
		    const void *data, size_t len, const struct s3_put_opts *,
		    struct s3_error *);
enum s3_status	 store_delete_many(struct store_conn *,
		    const char *const *keys, size_t n, s3_delete_err_cb,
		    void *arg, struct s3_error *);

/* The folder backend, used by store_new when [storage] directory is set. */
struct dirstore;
struct dirstore	*dirstore_new(const char *root, struct s3_error *);
void		 dirstore_free(struct dirstore *);
const char	*dirstore_root(const struct dirstore *);
enum s3_status	 dirstore_list(struct dirstore *, const struct s3_list_params *,
		    s3_object_cb, s3_prefix_cb, void *arg, struct s3_error *);
enum s3_status	 dirstore_get(struct dirstore *, const char *key,
		    size_t max_bytes, struct buf *out, struct s3_error *);
enum s3_status	 dirstore_put(struct dirstore *, const char *key,
		    const void *data, size_t len, struct s3_error *);
/* Async-signal-safe: remove the temporary files of puts in progress. */
void		 dirstore_unlink_temps(void);
enum s3_status	 dirstore_delete_many(struct dirstore *,
		    const char *const *keys, size_t n, s3_delete_err_cb,
		    void *arg, struct s3_error *);

#endif
