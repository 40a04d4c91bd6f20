/*
 * helpers: what the integration tests share. They run the real prewctl
 * binary against the real S3 server that tests/run-tests started, with a
 * configuration written for the test, and check the bucket with s3/'s
 * client. A missing server is a failure, never a skip.
 */
#ifndef PREWCTL_TEST_HELPERS_H
#define PREWCTL_TEST_HELPERS_H

#include <stddef.h>
#include <sys/types.h>

#include "s3/s3.h"

struct th_env {
	const char	*endpoint;
	const char	*bucket;
	const char	*access_key;
	const char	*secret_key;
	const char	*region;
	const char	*bin;		/* the prewctl under test */
};

/* The test server, from the environment; asserts it is all there. */
const struct th_env *th_env(void);
/* A client on the test bucket (free with s3_client_free). */
struct s3_client *th_client(void);
/* A prefix no other test or run uses: "t/<name>-<pid>-<n>/" (static). */
const char	*th_prefix(const char *name);

struct th_run {
	int		 status;	/* exit code, or 128 + signal */
	struct buf	 out;
	struct buf	 err;
};

/*
 * Run prewctl with args (NULL-terminated) and the test credentials in its
 * environment, plus extra "NAME=value" strings (NULL-terminated, may be
 * NULL). Captures stdout and stderr. Free with th_run_release.
 */
void		 th_prewctl(struct th_run *, const char *const *args,
		    const char *const *extra_env);
void		 th_run_release(struct th_run *);
/*
 * The same, not waited for: stdin from /dev/null, stdout and stderr to the
 * files out and err. The caller reaps the pid.
 */
pid_t		 th_spawn_prewctl(const char *const *args,
		    const char *const *extra_env, const char *out,
		    const char *err);

/*
 * Start a test server (argv[0] is its path) that prints "PORT <n>" on its
 * first line once it listens; returns the port, with its pid in *pid.
 * th_stop_server sends it SIGTERM, reaps it, and sets *pid to 0.
 */
int		 th_start_server(char *const *argv, pid_t *pid);
void		 th_stop_server(pid_t *pid);

/* Write text to a new temporary file; returns its path (caller frees). */
char		*th_write_temp(const char *text);
/* A config for the test bucket with source and previews under prefix. */
char		*th_s3_config(const char *prefix, const char *presets);

/* Seconds on the monotonic clock, for deadlines and bounds. */
double		 th_now(void);
/* Remove a folder and everything below it, never following links. */
void		 th_rmtree(const char *path);
/* Assert r exited with code, showing its output when it did not. */
void		 th_expect_exit(const struct th_run *r, int code,
		    const char *what);

/*
 * Expect secret in text neither whole nor, with parts, as any 12
 * characters of its middle (only for secrets made by a test, whose every
 * part is distinctive).
 */
void		 th_expect_no_secret(const char *text, const char *secret,
		    int parts, const char *what);

/* Read a whole local file into b; asserts on failure. */
void		 th_read_file(const char *path, struct buf *b);
/* A whole local file in a new NUL-terminated string; asserts on failure. */
char		*th_slurp(const char *path, size_t *len);
/* PUT a local file as key; asserts on failure. */
void		 th_put_file(struct s3_client *, const char *key,
		    const char *path);
/* Delete every key under prefix; returns how many. */
size_t		 th_delete_prefix(struct s3_client *, const char *prefix);
/* Count keys under prefix. */
size_t		 th_count(struct s3_client *, const char *prefix);

#endif
