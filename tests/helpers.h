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
/* The same on another bucket of the test server. */
struct s3_client *th_client_for(const char *bucket);
/* A prefix no other test or run uses: "t/<name>-<pid>-<n>/" (static). */
const char	*th_prefix(const char *name);

struct th_run {
	int		 status;	/* exit code, or 128 + signal */
	struct buf	 out;
	struct buf	 err;
	double		 secs;		/* wall time */
	long		 maxrss_kb;	/* peak resident set */
};

/* How th_run runs prewctl; zeros are the defaults. */
struct th_opts {
	const char *const	*env;		/* more "NAME=value", or NULL */
	double			 deadline;	/* seconds; 0: 600 */
	const char		*cwd;		/* NULL: ours */
};

/*
 * The one way the tests run prewctl: with args (NULL-terminated), the test
 * credentials and o->env in its environment, stdout and stderr captured,
 * its time and peak RSS measured. Past the deadline it is killed and the
 * test fails. Free with th_run_release.
 */
void		 th_run(struct th_run *, const struct th_opts *,
		    const char *const *args);
/* th_run with extra_env and the default deadline. */
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

/* Pace a poll loop: 10 ms. The deadline bounds a wait; this only paces. */
void		 th_pace(void);
/* Reap pid within limit seconds (killed past it, failing); its exit code. */
int		 th_reap(pid_t pid, double limit, const char *what);

/*
 * tests/s3-fault-proxy in front of the test server, with its --stats file
 * and a --release-file for --hold-put; opts are more of its options
 * (NULL-terminated, or NULL). Stopped by th_proxy_stop.
 */
struct th_proxy {
	pid_t	 pid;
	char	 endpoint[64];		/* http://127.0.0.1:port */
	char	 stats[128];
	char	 release[128];
};
void		 th_proxy_start(struct th_proxy *, const char *const *opts);
void		 th_proxy_stop(struct th_proxy *);
/* Let the PUTs --hold-put holds go. */
void		 th_proxy_release(const struct th_proxy *);

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

/*
 * JSON (jsonread.c): a strict parser into a tree, and values by path
 * ("presets.small.generated", "failures[0].key"). th_json_parse fails the
 * test on anything that is not one JSON value.
 */
enum th_json_type {
	TH_JSON_NULL, TH_JSON_FALSE, TH_JSON_TRUE, TH_JSON_NUMBER,
	TH_JSON_STRING, TH_JSON_ARRAY, TH_JSON_OBJECT
};
struct th_json;

struct th_json	*th_json_parse(const char *doc, size_t len);
void		 th_json_free(struct th_json *);
/* The value at path, or NULL. */
const struct th_json *th_json_at(const struct th_json *, const char *path);
enum th_json_type th_json_type(const struct th_json *);
/* A string's bytes, an array's elements, an object's members. */
size_t		 th_json_len(const struct th_json *);
const char	*th_json_name(const struct th_json *, size_t);
const struct th_json *th_json_item(const struct th_json *, size_t);
/* The integer, number, string (NULL for null) or boolean at path; asserted. */
long long	 th_json_num(const struct th_json *, const char *path);
double		 th_json_real(const struct th_json *, const char *path);
const char	*th_json_str(const struct th_json *, const char *path);
int		 th_json_bool(const struct th_json *, const char *path);

/* The fault proxy's stats (free with th_json_free). */
struct th_json	*th_proxy_stats(const struct th_proxy *);
/* How often path ("/bucket/key") is in its list ("put_paths"...). */
long long	 th_proxy_paths(const struct th_proxy *, const char *list,
		    const char *path);
#endif
