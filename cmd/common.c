/*
 * common: what every command shares: messages, output, signals, numbers,
 * and opening the engine.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

volatile sig_atomic_t cmd_interrupted;

/* The first error, for --json; cmd_error may run in any thread. */
static pthread_mutex_t	 error_mtx = PTHREAD_MUTEX_INITIALIZER;
static char		*first_error;

/* A message is never cut: keys alone may be 1024 bytes. */
static void
vsay(const char *fmt, va_list ap, int record)
{
	char	*msg;

	if (vasprintf(&msg, fmt, ap) == -1) {
		fputs("prewctl: out of memory\n", stderr);
		return;
	}
	/* One message, one line: a key in it is escaped as in --keys. */
	flockfile(stderr);
	fputs("prewctl: ", stderr);
	cmd_key(stderr, msg);
	fputc('\n', stderr);
	funlockfile(stderr);
	pthread_mutex_lock(&error_mtx);
	if (record && first_error == NULL) {
		first_error = msg;
		msg = NULL;
	}
	pthread_mutex_unlock(&error_mtx);
	free(msg);
}

void
cmd_error(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsay(fmt, ap, 1);
	va_end(ap);
}

void
cmd_report(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsay(fmt, ap, 0);
	va_end(ap);
}

const char *
cmd_first_error(void)
{
	return first_error;
}

void
cmd_usage(const struct cmd_entry *e, FILE *f)
{
	fprintf(f, "usage: prewctl %s%s%s\n", e->name, *e->usage ? " " : "",
	    e->usage);
}

int
cmd_finish(int code)
{
	if (cmd_interrupted == SIGPIPE)
		return EXIT_SIGPIPE;
	/* A full disk or closed pipe must not look like success. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno == EPIPE)
			return EXIT_SIGPIPE;
		cmd_error("cannot write output: %s", strerror(errno));
		return code == EXIT_DONE ? EXIT_SOME_FAILED : code;
	}
	return code;
}

void
cmd_key(FILE *f, const char *key)
{
	const unsigned char	*p = (const unsigned char *)key;
	size_t			 len = strlen(key), i = 0, n;

	while (i < len) {
		switch (p[i]) {
		case '\\':
			fputs("\\\\", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		default:
			if (p[i] < 0x20 || p[i] == 0x7f ||
			    (n = utf8_seq(p + i, len - i)) == 0) {
				fprintf(f, "\\x%02x", p[i]);
				break;
			}
			fwrite(p + i, 1, n, f);
			i += n;
			continue;
		}
		i++;
	}
}

int
cmd_out_check(void)
{
	if (ferror(stdout) && errno == EPIPE) {
		cmd_interrupted = SIGPIPE;
		return -1;
	}
	return cmd_interrupted == SIGPIPE ? -1 : 0;
}

static void
on_signal(int sig)
{
	/* A second signal: the user means it. Leave no temporary file. */
	if (cmd_interrupted != 0 && cmd_interrupted != SIGPIPE) {
		store_abort();
		_exit(128 + sig);
	}
	cmd_interrupted = sig;
}

void
cmd_catch_signals(void)
{
	struct sigaction	sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* A closed stdout shows as EPIPE: cmd_out_check. */
	signal(SIGPIPE, SIG_IGN);
}

int
cmd_exit_code(int code)
{
	switch (cmd_interrupted) {
	case SIGINT:
		return EXIT_SIGINT;
	case SIGTERM:
		return EXIT_SIGTERM;
	case SIGPIPE:
		return EXIT_SIGPIPE;
	}
	return code;
}

int
cmd_parse_uint(const char *opt, const char *s, long min, long max, long *out)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!isdigit((unsigned char)*s) || errno != 0 || *end != '\0' ||
	    v < min || v > max) {
		cmd_error("bad number '%s' for %s (%ld..%ld)", s, opt, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

long
cmd_ncpu(void)
{
	cpu_set_t	set;
	long		n;

	/* A container limited to some CPUs says so in our affinity mask. */
	if (sched_getaffinity(0, sizeof(set), &set) == 0 &&
	    (n = CPU_COUNT(&set)) > 0)
		return n;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? n : 1;
}

/* -vv: one line per request. Each line is one stdio call, so whole. */
static void
log_request(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "prewctl: %s\n", line);
}

int
cmd_engine_fail(enum eng_status st, const struct eng_error *e)
{
	char	msg[1800];

	if (st == ENG_OK)
		return EXIT_DONE;
	if (st == ENG_INTERRUPTED)
		return cmd_exit_code(EXIT_SOME_FAILED);
	cmd_error("%s", eng_error_text(st, e, msg, sizeof(msg)));
	if (st == ENG_CONFIG || (st == ENG_STORAGE && e->setup))
		return EXIT_USAGE;
	return EXIT_STORAGE;
}

int
cmd_engine_open(struct cmd_ctx *ctx, const struct cmd_args *a,
    const struct cmd_open *o, struct engine *eng)
{
	struct eng_params	 p;
	struct eng_error	 e;
	enum eng_status		 st;
	char			**names;
	size_t			 i, n = 0;

	if ((names = calloc(a->n + 1, sizeof(*names))) == NULL) {
		cmd_error("out of memory");
		return EXIT_STORAGE;
	}
	for (i = 0; i < a->n; i++)
		if (a->v[i].ch == o->preset_ch)
			names[n++] = (char *)a->v[i].arg;
	memset(&p, 0, sizeof(p));
	p.cfg = &ctx->cfg;
	p.names = names;
	p.nnames = n;
	p.subpath = o->subpath != NULL ? o->subpath : "";
	p.retry_failed = o->retry_failed;
	p.any_source = o->any_source;
	p.shard = o->shard;
	p.nshards = o->nshards;
	p.ranges = o->ranges;
	p.lists = 1;
	p.cancel = &cmd_interrupted;
	if (ctx->verbose >= 2)
		p.log = log_request;
	st = engine_open(eng, &p, &e);
	free(names);
	return cmd_engine_fail(st, &e);
}

void
cmd_json_requests(struct json *j, const struct s3_stats *r)
{
	json_key(j, "requests");
	json_object(j);
	json_ku64(j, "list", r->list);
	json_ku64(j, "get", r->get);
	json_ku64(j, "put", r->put);
	json_ku64(j, "head", r->head);
	json_ku64(j, "delete", r->del);
	json_end(j);
	json_ku64(j, "retries", r->retries);
}

void
cmd_print_requests(FILE *f, const struct s3_stats *r)
{
	fprintf(f, "requests: %llu list, %llu get, %llu put, %llu head, "
	    "%llu delete, %llu retries\n", (unsigned long long)r->list,
	    (unsigned long long)r->get, (unsigned long long)r->put,
	    (unsigned long long)r->head, (unsigned long long)r->del,
	    (unsigned long long)r->retries);
}

int
cmd_scale_opts(const struct cmd_args *a, struct cmd_open *o,
    struct cmd_metrics *m)
{
	const char	*s;
	char		*end;
	unsigned long	 i, n;
	long		 r;

	if ((s = args_get(a, OPT_SHARD)) != NULL) {
		/* Digits only: strtoul would take spaces and signs too. */
		errno = 0;
		if (!isdigit((unsigned char)*s))
			goto bad;
		i = strtoul(s, &end, 10);
		if (errno != 0 || *end != '/')
			goto bad;
		s = end + 1;
		if (!isdigit((unsigned char)*s))
			goto bad;
		n = strtoul(s, &end, 10);
		if (errno != 0 || *end != '\0' || n < 1 || n > 10000 || i >= n)
			goto bad;
		o->shard = (unsigned)i;
		o->nshards = (unsigned)n;
	}
	if ((s = args_get(a, OPT_RANGES)) != NULL) {
		if (cmd_parse_uint("--list-ranges", s, 1, 1024, &r) != 0)
			return -1;
		o->ranges = (int)r;
	}
	m->path = args_get(a, OPT_METRICS);
	m->shard = o->shard;
	m->nshards = o->nshards;
	return 0;
bad:
	cmd_error("bad --shard '%s': want I/N with 0 <= I < N <= 10000",
	    args_get(a, OPT_SHARD));
	return -1;
}

int
cmd_parse_duration(const char *opt, const char *s, long *secs)
{
	char	*end;
	long	 v, mul = 1;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == 0 && isdigit((unsigned char)*s)) {
		switch (*end) {
		case 's':
			end++;
			break;
		case 'm':
			mul = 60;
			end++;
			break;
		case 'h':
			mul = 3600;
			end++;
			break;
		case 'd':
			mul = 86400;
			end++;
			break;
		}
		if (*end == '\0' && v > 0 && v <= 366L * 86400 / mul) {
			*secs = v * mul;
			return 0;
		}
	}
	cmd_error("bad duration '%s' for %s: want 30s, 90m, 6h or 1d", s, opt);
	return -1;
}
