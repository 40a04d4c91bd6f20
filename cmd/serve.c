/*
 * serve: the on-demand fallback behind nginx (serve/serve.h).
 *
 * The main thread only waits for signals: SIGTERM and SIGINT stop taking
 * connections, finish the renders in flight, answer their waiters and
 * exit 0; SIGHUP reloads the configuration file, keeping the old one when
 * the new one does not load. Every other thread starts with them blocked.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "preview/render.h"
#include "serve/lock.h"
#include "serve/serve.h"

#define OPT_LISTEN	0x300
#define OPT_REDIS	0x301
#define OPT_QUEUE	0x302

#define DEFAULT_LISTEN	"127.0.0.1:8180"

struct srv_ctx {
	struct cmd_ctx	*ctx;
};

static void
access_line(void *arg, const struct serve_access *a)
{
	struct srv_ctx	*sc = arg;

	if (sc->ctx->verbose)
		cmd_report("%s '%s' %d %llu bytes %.0f ms", a->method, a->key,
		    a->status, (unsigned long long)a->bytes, a->ms);
}

static void
event(void *arg, const char *msg)
{
	struct srv_ctx	*sc = arg;

	if (!sc->ctx->quiet)
		cmd_report("%s", msg);
}

/* -vv: one line per storage request. */
static void
request_line(void *arg, const char *line)
{
	struct srv_ctx	*sc = arg;

	if (sc->ctx->verbose >= 2)
		cmd_report("%s", line);
}

static int
parse_opts(const struct cmd_args *a, struct serve_params *p, char *err,
    size_t len)
{
	const char	*listen = DEFAULT_LISTEN;
	long		 n, q = -1;
	size_t		 i;

	p->workers = (int)(cmd_ncpu() < 256 ? cmd_ncpu() : 256);
	for (i = 0; i < a->n; i++) {
		switch (a->v[i].ch) {
		case OPT_LISTEN:
			listen = a->v[i].arg;
			break;
		case 'j':
			if (cmd_parse_uint("-j", a->v[i].arg, 1, 256, &n) != 0)
				return -1;
			p->workers = (int)n;
			break;
		case OPT_REDIS:
			p->redis = a->v[i].arg;
			break;
		case OPT_QUEUE:
			/* A flight thread each: thousands, not more. */
			if (cmd_parse_uint("--max-queue", a->v[i].arg, 0, 4096,
			    &q) != 0)
				return -1;
			break;
		}
	}
	p->max_queue = q >= 0 ? (int)q : 4 * p->workers;
	if (serve_parse_listen(listen, p, err, len) != 0) {
		cmd_error("%s", err);
		return -1;
	}
	return 0;
}

/* SIGHUP: the configuration again; the old one stays on any error. */
static void
reload(struct cmd_ctx *ctx, struct server *srv)
{
	struct config	cfg;
	char		err[1024];

	if (config_load(ctx->config_path, &cfg, err, sizeof(err)) != 0) {
		cmd_error("cannot reload, keeping the configuration: %s", err);
		return;
	}
	if (serve_reload(srv, &cfg, err, sizeof(err)) != 0) {
		cmd_error("cannot reload, keeping the configuration: %s", err);
		config_release(&cfg);
		return;
	}
	if (!ctx->quiet)
		cmd_report("reloaded %s", ctx->config_path);
}

static int
cmd_serve_exec(struct cmd_ctx *ctx, const struct cmd_args *a)
{
	struct serve_params	 p;
	struct srv_ctx		 sc = { ctx };
	struct timespec		 tick = { 1, 0 };
	enum serve_fail		 fail;
	struct server		*srv;
	sigset_t		 sigs;
	char			 err[1024], shown[512];
	long			 ncpu = cmd_ncpu();
	int			 sig;

	memset(&p, 0, sizeof(p));
	if (parse_opts(a, &p, err, sizeof(err)) != 0)
		return EXIT_USAGE;
	p.access = access_line;
	p.note = event;
	p.request_log = ctx->verbose >= 2 ? request_line : NULL;
	p.arg = &sc;

	/* Before any thread: the signals are the main thread's, here. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (render_global_init("prewctl", ncpu > p.workers ? (int)(ncpu /
	    p.workers) : 1, err, sizeof(err)) != 0) {
		cmd_error("cannot start libvips: %s", err);
		return EXIT_STORAGE;
	}
	if ((srv = serve_start(&p, &ctx->cfg, &fail, err, sizeof(err))) ==
	    NULL) {
		cmd_error("%s", err);
		return fail == SERVE_CONFIG ? EXIT_USAGE : EXIT_STORAGE;
	}
	if (p.redis != NULL)
		lock_url_shown(p.redis, shown, sizeof(shown));
	if (!ctx->quiet)
		cmd_report("serving %s (%d workers, %d waiting at most%s%s)",
		    args_get(a, OPT_LISTEN) != NULL ? args_get(a, OPT_LISTEN) :
		    DEFAULT_LISTEN, p.workers, p.max_queue, p.redis != NULL ?
		    ", redis " : "", p.redis != NULL ? shown : "");
	for (;;) {
		if ((sig = sigtimedwait(&sigs, NULL, &tick)) == -1) {
			serve_tick(srv);
			continue;
		}
		if (sig == SIGHUP) {
			reload(ctx, srv);
			continue;
		}
		break;
	}
	if (!ctx->quiet)
		cmd_report("stopping: finishing what is in flight");
	serve_stop(srv);
	return EXIT_DONE;
}

static const struct option serve_longopts[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "jobs", required_argument, NULL, 'j' },
	{ "redis", required_argument, NULL, OPT_REDIS },
	{ "max-queue", required_argument, NULL, OPT_QUEUE },
	{ NULL, 0, NULL, 0 }
};

const struct cmd_entry cmd_serve_entry = {
	.name = "serve",
	.usage = "[--listen ADDR:PORT] [-j N] [--redis URL] [--max-queue N]",
	.summary = "make previews on demand, behind nginx",
	.shortopts = "j:",
	.longopts = serve_longopts,
	.args_min = 0,
	.args_max = 0,
	.flags = CMD_CONFIG,
	.exec = cmd_serve_exec,
};
