#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"

extern char **environ;

static struct th_env	env;
static struct s3_creds_provider *creds;	/* the test user's, for ever */

static const char *
need(const char *name)
{
	const char *v = getenv(name);

	cr_assert(v != NULL && *v != '\0',
	    "%s is not set: run the tests with 'make check'", name);
	return v;
}

const struct th_env *
th_env(void)
{
	if (env.endpoint == NULL) {
		env.endpoint = need("PREWCTL_TEST_ENDPOINT");
		env.bucket = need("PREWCTL_TEST_BUCKET");
		env.access_key = need("PREWCTL_TEST_ACCESS_KEY");
		env.secret_key = need("PREWCTL_TEST_SECRET_KEY");
		env.region = getenv("PREWCTL_TEST_REGION") != NULL ?
		    getenv("PREWCTL_TEST_REGION") : "us-east-1";
		env.bin = getenv("PREWCTL_BIN") != NULL ?
		    getenv("PREWCTL_BIN") : "./prewctl";
	}
	return &env;
}

struct s3_client *
th_client(void)
{
	return th_client_for(th_env()->bucket);
}

struct s3_client *
th_client_for(const char *bucket)
{
	const struct th_env	*e = th_env();
	struct s3_config	 cfg;
	struct s3_client	*c;

	s3_global_init();
	if (creds == NULL) {
		struct s3_creds	 sc = { (char *)e->access_key,
				    (char *)e->secret_key, NULL, 0 };

		creds = s3_creds_provider_static(&sc);
		cr_assert(creds != NULL);
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.endpoint = e->endpoint;
	cfg.bucket = bucket;
	cfg.region = e->region;
	cfg.path_style = 1;
	cfg.tls_verify = 1;
	cfg.max_retries = 3;
	cfg.creds = creds;
	c = s3_client_new(&cfg);
	cr_assert(c != NULL, "cannot make an S3 client");
	return c;
}

const char *
th_prefix(const char *name)
{
	static char	buf[256];
	static int	n;
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, sizeof(buf), "t/%s-%ld-%lld%09ld-%d/", name,
	    (long)getpid(), (long long)ts.tv_sec, ts.tv_nsec, n++);
	return buf;
}

static void
drain(int fd, struct buf *b, int *open)
{
	char	chunk[8192];
	ssize_t	n;

	n = read(fd, chunk, sizeof(chunk));
	if (n > 0)
		cr_assert(buf_add(b, chunk, (size_t)n) == 0);
	else if (n == 0 || (errno != EINTR && errno != EAGAIN))
		*open = 0;
}

/*
 * argv and envp for running prewctl with args: extra first (getenv takes
 * the first match, so a test can override), then the test credentials, a
 * proxy bypass for loopback, then our environment. Free both with free().
 */
static void
prewctl_argv_envp(const char *const *args, const char *const *extra,
    char ***argvp, char ***envpp)
{
	const struct th_env	*e = th_env();
	static char		 ak[256], sk[256];
	char			**argv, **envp;
	size_t			 n = 0, m = 0, x = 0, i, k = 0;

	while (args[n] != NULL)
		n++;
	while (environ[m] != NULL)
		m++;
	while (extra != NULL && extra[x] != NULL)
		x++;
	argv = calloc(n + 2, sizeof(*argv));
	envp = calloc(m + x + 5, sizeof(*envp));
	cr_assert(argv != NULL && envp != NULL);
	argv[0] = (char *)e->bin;
	for (i = 0; i < n; i++)
		argv[i + 1] = (char *)args[i];
	for (i = 0; i < x; i++)
		envp[k++] = (char *)extra[i];
	snprintf(ak, sizeof(ak), "AWS_ACCESS_KEY_ID=%s", e->access_key);
	snprintf(sk, sizeof(sk), "AWS_SECRET_ACCESS_KEY=%s", e->secret_key);
	envp[k++] = ak;
	envp[k++] = sk;
	/* The test servers are on loopback: no proxy may stand between. */
	envp[k++] = "no_proxy=127.0.0.1,localhost";
	envp[k++] = "NO_PROXY=127.0.0.1,localhost";
	for (i = 0; i < m; i++)
		envp[k++] = environ[i];
	*argvp = argv;
	*envpp = envp;
}

/* args joined by spaces into dst, for messages (cut short if need be). */
static const char *
joined(const char *const *args, char *dst, size_t len)
{
	size_t	n = 0, i;
	int	k;

	dst[0] = '\0';
	for (i = 0; args[i] != NULL && n < len; i++) {
		k = snprintf(dst + n, len - n, "%s%s", i > 0 ? " " : "",
		    args[i]);
		if (k < 0)
			break;
		n += (size_t)k;
	}
	return dst;
}

void
th_run(struct th_run *r, const struct th_opts *o, const char *const *args)
{
	const struct th_env		*e = th_env();
	posix_spawn_file_actions_t	 fa;
	struct rusage			 ru;
	char				**argv, **envp, cmd[512];
	double				 t0, deadline, left;
	int				 outp[2], errp[2], st, oo = 1, eo = 1;
	pid_t				 pid;

	memset(r, 0, sizeof(*r));
	buf_init(&r->out, 64 * 1024 * 1024);
	buf_init(&r->err, 64 * 1024 * 1024);
	prewctl_argv_envp(args, o != NULL ? o->env : NULL, &argv, &envp);
	cr_assert(pipe2(outp, O_CLOEXEC) == 0 && pipe2(errp, O_CLOEXEC) == 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	if (o != NULL && o->cwd != NULL)
		posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
	t0 = th_now();
	deadline = t0 + (o != NULL && o->deadline > 0 ? o->deadline : 600);
	cr_assert(posix_spawn(&pid, e->bin, &fa, NULL, argv, envp) == 0,
	    "cannot run %s", e->bin);
	posix_spawn_file_actions_destroy(&fa);
	close(outp[1]);
	close(errp[1]);
	while (oo || eo) {
		struct pollfd pf[2] = {
			{ oo ? outp[0] : -1, POLLIN, 0 },
			{ eo ? errp[0] : -1, POLLIN, 0 },
		};

		if ((left = deadline - th_now()) <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			cr_assert_fail("prewctl %s ran past its deadline of "
			    "%.0f s; stderr: %.2000s", joined(args, cmd,
			    sizeof(cmd)), deadline - t0, r->err.data);
		}
		if (poll(pf, 2, (int)(left * 1000) + 1) < 0)
			continue;
		if (pf[0].revents)
			drain(outp[0], &r->out, &oo);
		if (pf[1].revents)
			drain(errp[0], &r->err, &eo);
	}
	close(outp[0]);
	close(errp[0]);
	while (wait4(pid, &st, 0, &ru) < 0)
		cr_assert(errno == EINTR);
	r->secs = th_now() - t0;
	r->maxrss_kb = ru.ru_maxrss;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	free(argv);
	free(envp);
}

void
th_prewctl(struct th_run *r, const char *const *args,
    const char *const *extra)
{
	struct th_opts	o = { extra, 0, NULL };

	th_run(r, &o, args);
}

pid_t
th_spawn_prewctl(const char *const *args, const char *const *extra,
    const char *out, const char *err)
{
	const struct th_env		*e = th_env();
	posix_spawn_file_actions_t	 fa;
	char				**argv, **envp;
	pid_t				 pid;

	prewctl_argv_envp(args, extra, &argv, &envp);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out,
	    O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err,
	    O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(posix_spawn(&pid, e->bin, &fa, NULL, argv, envp) == 0,
	    "cannot run %s", e->bin);
	posix_spawn_file_actions_destroy(&fa);
	free(argv);
	free(envp);
	return pid;
}

void
th_run_release(struct th_run *r)
{
	buf_release(&r->out);
	buf_release(&r->err);
}

char *
th_write_temp(const char *text)
{
	char	 path[] = "/tmp/prewctl-test-XXXXXX";
	int	 fd;
	size_t	 len = strlen(text);

	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert(write(fd, text, len) == (ssize_t)len);
	close(fd);
	return strdup(path);
}

char *
th_s3_config(const char *prefix, const char *presets)
{
	const struct th_env	*e = th_env();
	struct buf		 b;
	char			*path;

	buf_init(&b, BUF_NOMAX);
	buf_addf(&b, "[storage]\nbucket = %s\nendpoint = %s\nregion = %s\n"
	    "path_style = true\nsource = %sphoto/\npreviews = %sprew/\n"
	    "cache_control = public, max-age=60\nretries = 3\ntimeout = 5\n\n%s",
	    e->bucket, e->endpoint, e->region, prefix, prefix, presets);
	path = th_write_temp(b.data);
	buf_release(&b);
	return path;
}

void
th_read_file(const char *path, struct buf *b)
{
	FILE	*f = fopen(path, "rb");
	char	 chunk[65536];
	size_t	 n;

	cr_assert(f != NULL, "cannot open %s", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		cr_assert(buf_add(b, chunk, n) == 0);
	fclose(f);
}

char *
th_slurp(const char *path, size_t *len)
{
	struct buf	b;

	buf_init(&b, BUF_NOMAX);
	th_read_file(path, &b);
	return buf_detach(&b, len);
}

void
th_put_file(struct s3_client *c, const char *key, const char *path)
{
	struct s3_put_opts	po = { "application/octet-stream", NULL, NULL,
				    NULL, 0 };
	struct s3_error		err;
	struct buf		b;
	enum s3_status		st;
	char			msg[256];

	buf_init(&b, BUF_NOMAX);
	th_read_file(path, &b);
	st = s3_put(c, key, b.data, b.len, &po, &err);
	cr_assert(st == S3_OK, "cannot put '%s': %s", key,
	    s3_error_text(st, &err, msg, sizeof(msg)));
	buf_release(&b);
}

struct collect {
	char	**keys;
	size_t	  n;
};

static int
collect_key(void *arg, const struct s3_object *o)
{
	struct collect	*c = arg;

	c->keys = realloc(c->keys, (c->n + 1) * sizeof(*c->keys));
	c->keys[c->n++] = strdup(o->key);
	return 0;
}

size_t
th_delete_prefix(struct s3_client *cl, const char *prefix)
{
	struct s3_list_params	 lp = { .prefix = prefix };
	struct collect		 c = { NULL, 0 };
	struct s3_error		 err;
	size_t			 i, done = 0;

	cr_assert(s3_list(cl, &lp, collect_key, NULL, &c, &err) == S3_OK);
	while (done < c.n) {
		size_t k = c.n - done < S3_DELETE_MAX ? c.n - done :
		    S3_DELETE_MAX;

		cr_assert(s3_delete_many(cl, (const char *const *)c.keys +
		    done, k, NULL, NULL, &err) == S3_OK);
		done += k;
	}
	for (i = 0; i < c.n; i++)
		free(c.keys[i]);
	free(c.keys);
	return done;
}

static int
count_key(void *arg, const struct s3_object *o)
{
	(void)o;
	(*(size_t *)arg)++;
	return 0;
}

size_t
th_count(struct s3_client *cl, const char *prefix)
{
	struct s3_list_params	lp = { .prefix = prefix };
	struct s3_error		err;
	size_t			n = 0;

	cr_assert(s3_list(cl, &lp, count_key, NULL, &n, &err) == S3_OK);
	return n;
}

double
th_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

void
th_rmtree(const char *path)
{
	if (path != NULL && path[0] != '\0')
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void
th_expect_exit(const struct th_run *r, int code, const char *what)
{
	cr_assert_eq(r->status, code, "%s: exit %d, expected %d; stderr: "
	    "%.3000s\nstdout: %.1000s", what, r->status, code, r->err.data,
	    r->out.data);
}

void
th_expect_no_secret(const char *text, const char *secret, int parts,
    const char *what)
{
	size_t	len = strlen(secret), i;
	char	part[13];

	cr_expect(strstr(text, secret) == NULL, "%s shows a secret", what);
	for (i = 4; parts && i + 12 + 4 <= len; i += 6) {
		memcpy(part, secret + i, 12);
		part[12] = '\0';
		cr_expect(strstr(text, part) == NULL, "%s shows part of a "
		    "secret: '%s'", what, part);
	}
}

int
th_start_server(char *const *argv, pid_t *pid)
{
	posix_spawn_file_actions_t	 fa;
	char				 line[128], *end;
	size_t				 n = 0;
	double				 deadline;
	long				 port;
	int				 p[2];

	cr_assert(access(argv[0], X_OK) == 0, "%s is not executable",
	    argv[0]);
	cr_assert(pipe2(p, O_CLOEXEC) == 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	cr_assert(posix_spawn(pid, argv[0], &fa, NULL, argv, environ) == 0,
	    "cannot start %s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	deadline = th_now() + 30;
	while (n < sizeof(line) - 1 && memchr(line, '\n', n) == NULL) {
		struct pollfd	pf = { p[0], POLLIN, 0 };
		ssize_t		got;

		cr_assert(th_now() < deadline, "%s did not say its port in "
		    "30 s", argv[0]);
		if (poll(&pf, 1, 1000) <= 0)
			continue;
		got = read(p[0], line + n, sizeof(line) - 1 - n);
		cr_assert(got > 0, "%s exited before saying its port",
		    argv[0]);
		n += (size_t)got;
	}
	close(p[0]);
	line[n] = '\0';
	cr_assert(strncmp(line, "PORT ", 5) == 0, "%s said '%s'", argv[0],
	    line);
	errno = 0;
	port = strtol(line + 5, &end, 10);
	cr_assert(errno == 0 && *end == '\n' && port > 0 && port < 65536,
	    "%s said '%s'", argv[0], line);
	return (int)port;
}

void
th_stop_server(pid_t *pid)
{
	int	st;

	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	while (waitpid(*pid, &st, 0) < 0 && errno == EINTR)
		;
	*pid = 0;
}

void
th_pace(void)
{
	struct timespec	ts = { 0, 10 * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int
th_reap(pid_t pid, double limit, const char *what)
{
	double	deadline = th_now() + limit;
	pid_t	r;
	int	st;

	while ((r = waitpid(pid, &st, WNOHANG)) != pid) {
		cr_assert(r == 0 || errno == EINTR, "waitpid: %s",
		    strerror(errno));
		if (th_now() > deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			cr_assert_fail("%s: still running after %.0f s", what,
			    limit);
		}
		th_pace();
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void
th_proxy_start(struct th_proxy *px, const char *const *opts)
{
	char	*argv[32], dir[] = "/tmp/prewctl-proxy-XXXXXX";
	size_t	 n = 0, i;

	memset(px, 0, sizeof(*px));
	cr_assert(mkdtemp(dir) != NULL);
	snprintf(px->stats, sizeof(px->stats), "%s/stats", dir);
	snprintf(px->release, sizeof(px->release), "%s/release", dir);
	argv[n++] = "tests/s3-fault-proxy";
	argv[n++] = "--max-seconds";
	argv[n++] = "600";
	argv[n++] = "--stats";
	argv[n++] = px->stats;
	argv[n++] = "--release-file";
	argv[n++] = px->release;
	for (i = 0; opts != NULL && opts[i] != NULL; i++) {
		cr_assert_lt(n, sizeof(argv) / sizeof(argv[0]) - 2);
		argv[n++] = (char *)opts[i];
	}
	argv[n++] = (char *)th_env()->endpoint;
	argv[n] = NULL;
	snprintf(px->endpoint, sizeof(px->endpoint), "http://127.0.0.1:%d",
	    th_start_server(argv, &px->pid));
}

void
th_proxy_stop(struct th_proxy *px)
{
	char	*slash;

	th_stop_server(&px->pid);
	if (px->stats[0] == '\0')
		return;
	unlink(px->stats);
	unlink(px->release);
	if ((slash = strrchr(px->stats, '/')) != NULL) {
		*slash = '\0';
		rmdir(px->stats);
	}
	memset(px, 0, sizeof(*px));
}

void
th_proxy_release(const struct th_proxy *px)
{
	int	fd;

	fd = open(px->release, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert(fd >= 0, "%s: %s", px->release, strerror(errno));
	close(fd);
}

struct th_json *
th_proxy_stats(const struct th_proxy *px)
{
	struct buf	 b;
	struct th_json	*j;

	buf_init(&b, BUF_NOMAX);
	th_read_file(px->stats, &b);
	j = th_json_parse(b.data, b.len);
	buf_release(&b);
	return j;
}

long long
th_proxy_paths(const struct th_proxy *px, const char *list, const char *path)
{
	struct th_json		*j = th_proxy_stats(px);
	const struct th_json	*a = th_json_at(j, list);
	size_t			 i;
	long long		 n = 0;

	cr_assert_not_null(a, "no '%s' in the proxy's stats", list);
	for (i = 0; i < th_json_len(a); i++)
		n += strcmp(th_json_str(th_json_item(a, i), ""), path) == 0;
	th_json_free(j);
	return n;
}
