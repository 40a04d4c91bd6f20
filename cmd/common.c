/*
 * common: what the storage commands share: signals, preset selection,
 * opening the store, and turning storage statuses into messages and exit
 * codes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "preview/store.h"

volatile sig_atomic_t cmd_interrupted;

static void
on_signal(int sig)
{
	/* A second signal: the user means it. Leave no temporary file. */
	if (cmd_interrupted != 0) {
		dirstore_unlink_temps();
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
	signal(SIGPIPE, SIG_IGN);
}

int
cmd_exit_code(int code)
{
	if (cmd_interrupted == SIGINT)
		return EXIT_SIGINT;
	if (cmd_interrupted == SIGTERM)
		return EXIT_SIGTERM;
	return code;
}

int
cmd_select_presets(const struct config *cfg, char **names, size_t n,
    const struct preset ***out, size_t *nout)
{
	const struct preset	**v;
	size_t			 i, j, k = 0;

	if ((v = calloc(cfg->npresets + 1, sizeof(*v))) == NULL) {
		cmd_error("out of memory");
		return -1;
	}
	for (j = 0; j < n; j++)
		if (config_preset(cfg, names[j]) == NULL) {
			cmd_error("unknown preset '%s' (see 'prewctl presets')",
			    names[j]);
			free(v);
			return -1;
		}
	for (i = 0; i < cfg->npresets; i++) {
		int take = n == 0;

		for (j = 0; j < n && !take; j++)
			take = strcmp(names[j], cfg->presets[i].name) == 0;
		if (take)
			v[k++] = &cfg->presets[i];
	}
	*out = v;
	*nout = k;
	return 0;
}

int
cmd_storage_exit(enum s3_status st)
{
	return st == S3_ECREDS || st == S3_EINVAL ? EXIT_USAGE : EXIT_STORAGE;
}

/* -vv: one line per request. Each line is one stdio call, so whole. */
static void
log_request(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "prewctl: %s\n", line);
}

struct store *
cmd_open_store(struct cmd_ctx *ctx, int *exit_code)
{
	struct store	*s;
	struct s3_error	 err;
	enum s3_status	 st;
	char		 msg[512];

	if ((s = store_new(&ctx->cfg, &st, &err)) == NULL) {
		s3_error_text(st, &err, msg, sizeof(msg));
		cmd_error("cannot open storage: %s", msg);
		*exit_code = cmd_storage_exit(st);
	} else if (ctx->verbose >= 2)
		store_set_log(s, log_request, NULL);
	return s;
}

void
cmd_storage_error(const char *what, const char *subject, enum s3_status st,
    const struct s3_error *err)
{
	char	msg[512];

	s3_error_text(st, err, msg, sizeof(msg));
	cmd_error("%s '%s': %s", what, subject, msg);
}

void
json_requests(FILE *f, const struct s3_stats *r)
{
	fprintf(f, "\"requests\":{\"list\":%llu,\"get\":%llu,\"put\":%llu,"
	    "\"head\":%llu,\"delete\":%llu},\"retries\":%llu",
	    (unsigned long long)r->list, (unsigned long long)r->get,
	    (unsigned long long)r->put, (unsigned long long)r->head,
	    (unsigned long long)r->del, (unsigned long long)r->retries);
}

int
cmd_parse_uint(const char *opt, const char *s, long max, long *out)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max) {
		cmd_error("bad number '%s' for %s", s, opt);
		return -1;
	}
	*out = v;
	return 0;
}

int
cmd_check_subpath(const char *p)
{
	const char	*seg;
	size_t		 len;

	if (*p == '/') {
		cmd_error("bad --prefix '%s': must be relative to the source",
		    p);
		return -1;
	}
	for (seg = p; *seg != '\0'; seg += len + (seg[len] == '/')) {
		len = strcspn(seg, "/");
		if ((len == 2 && strncmp(seg, "..", 2) == 0) ||
		    (len == 1 && *seg == '.')) {
			cmd_error("bad --prefix '%s': '.' and '..' are not "
			    "allowed", p);
			return -1;
		}
		if (seg[len] == '\0')
			break;
	}
	return 0;
}

int
cmd_diff_prepare(struct cmd_ctx *ctx, char **names, size_t nnames,
    const char *subpath, struct cmd_diff *cd, int *exit_code)
{
	struct config	*cfg = &ctx->cfg;
	struct s3_error	 err;
	enum s3_status	 st;
	size_t		 i;

	memset(cd, 0, sizeof(*cd));
	*exit_code = EXIT_USAGE;
	if (cmd_check_subpath(subpath) != 0)
		return -1;
	if (cmd_select_presets(cfg, names, nnames, &cd->presets,
	    &cd->npresets) != 0)
		goto fail;
	if ((cd->store = cmd_open_store(ctx, exit_code)) == NULL)
		goto fail;
	if ((cd->conn = store_conn_new(cd->store)) == NULL) {
		cmd_error("cannot open storage: out of memory");
		*exit_code = EXIT_STORAGE;
		goto fail;
	}
	store_conn_set_cancel(cd->conn, &cmd_interrupted);
	st = stamps_read(cd->conn, cfg->previews, cd->presets, cd->npresets,
	    &cd->stamps, &err);
	if (st != S3_OK) {
		cmd_storage_error("cannot list", cfg->previews, st, &err);
		*exit_code = cmd_storage_exit(st);
		goto fail;
	}
	if ((cd->dp = calloc(cd->npresets + 1, sizeof(*cd->dp))) == NULL) {
		cmd_error("out of memory");
		goto fail;
	}
	for (i = 0; i < cd->npresets; i++) {
		const struct stamp *s = &cd->stamps.v[i];

		cd->dp[i].name = cd->presets[i]->name;
		cd->dp[i].changed = !s->current;
		cd->dp[i].stamp_ms = s->current ? s->mtime_ms : 0;
	}
	cd->params = (struct diff_params){
		.store = cd->store,
		.source = cfg->source,
		.previews = cfg->previews,
		.subpath = subpath,
		.presets = cd->dp,
		.npresets = cd->npresets,
		.extensions = cfg->extensions,
		.nextensions = cfg->nextensions,
		.cancel = &cmd_interrupted,
	};
	*exit_code = EXIT_DONE;
	return 0;
fail:
	cmd_diff_release(cd);
	return -1;
}

void
cmd_diff_release(struct cmd_diff *cd)
{
	stamps_release(&cd->stamps);
	store_conn_free(cd->conn);
	store_free(cd->store);
	free(cd->presets);
	free(cd->dp);
	memset(cd, 0, sizeof(*cd));
}
