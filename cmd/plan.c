/*
 * plan: list, diff, and say per preset what generate and purge would do.
 * Writes nothing, not even a stamp: a preset whose stamp is missing or out
 * of date shows every existing preview as stale. It also says what else
 * the previews root holds: presets removed from the configuration (purge
 * --removed-presets deletes them), other configurations' presets and
 * folders prewctl did not make (never touched).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "preview/keys.h"

#define OPT_PRESET	'p'
#define OPT_PREFIX	0x200
#define OPT_KEYS	0x202
#define OPT_RETRY	0x203

struct plan {
	struct cmd_ctx	*ctx;
	struct engine	 eng;
	uint64_t	(*counts)[PS_COUNT];
	struct json	*json;
	int		 keys;
	int		 nomem;
	struct cmd_metrics metrics;	/* --metrics-file and the run */
};

static int
plan_item(void *arg, const struct diff_item *it)
{
	struct plan	*p = arg;
	struct buf	 key;
	size_t		 i;

	for (i = 0; i < p->eng.npresets; i++) {
		enum pstate s = it->state[i];

		if (s == PS_NONE)
			continue;
		p->counts[i][s]++;
		if (!p->keys)
			continue;
		buf_init(&key, BUF_NOMAX);
		if (key_preview(&key, p->eng.cfg->previews,
		    p->eng.presets[i]->name, it->rel) != 0) {
			p->nomem = 1;
			return 1;
		}
		if (p->json != NULL) {
			json_object(p->json);
			json_kstr(p->json, "key", key.data);
			json_kstr(p->json, "original", it->source != NULL ?
			    it->source->key : NULL);
			json_kstr(p->json, "preset", p->eng.presets[i]->name);
			json_kstr(p->json, "state", pstate_name(s));
			json_end(p->json);
		} else {
			printf("%s\t%s\t", pstate_name(s),
			    p->eng.presets[i]->name);
			cmd_key(stdout, key.data);
			putchar('\n');
		}
		buf_release(&key);
		if (cmd_out_check() != 0)
			return 1;
	}
	return 0;
}

static const char *const root_kinds[] = { "removed", "theirs", "foreign" };

static void
print_root(struct plan *p, const struct root_item *v, size_t n)
{
	const char	*prev = p->eng.cfg->previews;
	size_t		 i;

	for (i = 0; i < n; i++) {
		printf("%s\t", root_kinds[v[i].kind]);
		cmd_key(stdout, prev);
		cmd_key(stdout, v[i].name);
		switch (v[i].kind) {
		case ROOT_REMOVED:
			printf("/\tpreset no longer configured: purge "
			    "--removed-presets deletes it\n");
			break;
		case ROOT_THEIRS:
			printf("/\tpreset of a configuration with another "
			    "source: left alone\n");
			break;
		case ROOT_FOREIGN:
			printf("/\tnot made by prewctl (no stamp): left "
			    "alone\n");
			break;
		}
	}
}

static void
json_root(struct json *j, const struct root_item *v, size_t n)
{
	size_t	i;

	json_key(j, "root");
	json_array(j);
	for (i = 0; i < n; i++) {
		json_object(j);
		json_kstr(j, "name", v[i].name);
		json_kstr(j, "kind", root_kinds[v[i].kind]);
		json_end(j);
	}
	json_end(j);
}

static void
print_table(struct plan *p, const struct diff_result *res)
{
	size_t	i;

	printf("%llu originals, %llu other objects ignored\n",
	    (unsigned long long)res->originals,
	    (unsigned long long)res->ignored);
	printf("%-12s %9s %9s %9s %9s %9s %9s  %s\n", "preset", "missing",
	    "stale", "(preset)", "fresh", "orphan", "known", "stamp");
	for (i = 0; i < p->eng.npresets; i++)
		printf("%-12s %9llu %9llu %9llu %9llu %9llu %9llu  %s\n",
		    p->eng.presets[i]->name,
		    (unsigned long long)p->counts[i][PS_MISSING],
		    (unsigned long long)p->counts[i][PS_STALE_ORIGINAL],
		    (unsigned long long)p->counts[i][PS_STALE_PRESET],
		    (unsigned long long)p->counts[i][PS_FRESH],
		    (unsigned long long)p->counts[i][PS_ORPHAN],
		    (unsigned long long)p->counts[i][PS_KNOWN_FAILURE],
		    p->eng.dp[i].changed ? "changed" : "current");
}

static void
print_json(struct plan *p, const struct diff_result *res)
{
	struct json	*j = p->json;
	size_t		 i, s;

	json_ku64(j, "originals", res->originals);
	json_ku64(j, "ignored", res->ignored);
	json_key(j, "presets");
	json_object(j);
	for (i = 0; i < p->eng.npresets; i++) {
		json_key(j, p->eng.presets[i]->name);
		json_object(j);
		json_kstr(j, "stamp", p->eng.dp[i].changed ? "changed" :
		    "current");
		for (s = PS_MISSING; s < PS_COUNT; s++)
			json_ku64(j, pstate_name((enum pstate)s),
			    p->counts[i][s]);
		json_end(j);
	}
	json_end(j);
}

static int
run(struct plan *p, const struct cmd_args *a)
{
	struct diff_result	 res;
	struct store_error	 err;
	struct eng_error	 e;
	struct root_item	*root = NULL;
	enum store_status	 st;
	enum eng_status		 est;
	size_t			 nroot = 0;
	char			 msg[600];
	int			 code;
	struct cmd_open		 co = { .preset_ch = OPT_PRESET,
				    .subpath = args_get(a, OPT_PREFIX),
				    .retry_failed = args_has(a, OPT_RETRY) };

	memset(&res, 0, sizeof(res));
	if (cmd_scale_opts(a, &co, &p->metrics) != 0)
		return EXIT_USAGE;
	if ((code = cmd_engine_open(p->ctx, a, &co, &p->eng)) != EXIT_DONE)
		return code;
	if ((p->counts = calloc(p->eng.npresets + 1, sizeof(*p->counts))) ==
	    NULL) {
		cmd_error("out of memory");
		return EXIT_STORAGE;
	}
	if ((est = engine_root(&p->eng, &root, &nroot, &e)) != ENG_OK)
		return cmd_engine_fail(est, &e);
	if (p->json != NULL && p->keys) {
		json_key(p->json, "keys");
		json_array(p->json);
	}
	st = diff_run(&p->eng.params, plan_item, p, &res, &err);
	if (p->json != NULL && p->keys)
		json_end(p->json);
	store_conn_stats(p->eng.conn, &res.requests);
	code = EXIT_DONE;
	if (p->nomem) {
		cmd_error("out of memory");
		code = EXIT_STORAGE;
	} else if (st != STORE_OK && st != STORE_ECANCELLED) {
		store_error_text(st, &err, msg, sizeof(msg));
		cmd_error("cannot list '%s': %s", res.failed_prefix, msg);
		code = EXIT_STORAGE;
	}
	if (code == EXIT_DONE && cmd_interrupted == 0) {
		if (p->json != NULL) {
			print_json(p, &res);
			json_root(p->json, root, nroot);
			cmd_json_requests(p->json, &res.requests);
		} else if (!p->ctx->quiet) {
			print_table(p, &res);
			print_root(p, root, nroot);
		}
	}
	root_items_free(root, nroot);
	p->metrics.originals = res.originals;
	p->metrics.reqs = res.requests;
	return cmd_exit_code(code);
}

static int
cmd_plan_exec(struct cmd_ctx *ctx, const struct cmd_args *a)
{
	struct plan	p;
	int		code;

	memset(&p, 0, sizeof(p));
	p.ctx = ctx;
	p.json = ctx->json;
	p.keys = args_has(a, OPT_KEYS);
	cmd_metrics_start(&p.metrics, "plan");
	cmd_catch_signals();
	code = run(&p, a);
	p.metrics.states = p.counts;
	cmd_metrics_end(&p.metrics, &p.eng, code);
	free(p.counts);
	engine_close(&p.eng);
	return code;
}

static const struct option plan_longopts[] = {
	{ "preset", required_argument, NULL, OPT_PRESET },
	{ "prefix", required_argument, NULL, OPT_PREFIX },
	{ "keys", no_argument, NULL, OPT_KEYS },
	{ "retry-failed", no_argument, NULL, OPT_RETRY },
	{ "json", no_argument, NULL, CMD_OPT_JSON },
	SCALE_LONGOPTS,
	{ NULL, 0, NULL, 0 }
};

const struct cmd_entry cmd_plan_entry = {
	.name = "plan",
	.usage = "[--preset NAME ...] [--prefix SUBPATH] [--retry-failed] "
	    "[--keys] [--json] [--shard I/N] [--list-ranges N] "
	    "[--metrics-file PATH]",
	.summary = "show what generate and purge would do; writes nothing",
	.longopts = plan_longopts,
	.args_min = 0,
	.args_max = 0,
	.flags = CMD_CONFIG | CMD_JSON,
	.exec = cmd_plan_exec,
};
