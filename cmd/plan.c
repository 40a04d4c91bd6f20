/*
 * plan: list, diff, and say per preset what generate and purge would do.
 * Writes nothing, not even a stamp: a preset whose stamp is missing or out
 * of date shows every existing preview as stale.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

struct plan {
	const struct cmd_diff	*cd;
	uint64_t		(*counts)[PS_COUNT];
	int			 keys;
	int			 json;
	int			 first;
};

static int
plan_item(void *arg, const struct diff_item *it)
{
	struct plan	*p = arg;
	const char	*key;
	size_t		 i;

	for (i = 0; i < p->cd->npresets; i++) {
		if (it->state[i] == PS_NONE)
			continue;
		p->counts[i][it->state[i]]++;
		if (!p->keys)
			continue;
		key = it->source != NULL ? it->source->key :
		    it->previews[i]->key;
		if (p->json) {
			printf("%s{\"key\":", p->first ? "" : ",");
			json_string(stdout, key);
			printf(",\"preset\":");
			json_string(stdout, p->cd->presets[i]->name);
			printf(",\"state\":\"%s\"}", pstate_name(it->state[i]));
			p->first = 0;
		} else
			printf("%s\t%s\t%s\n", pstate_name(it->state[i]),
			    p->cd->presets[i]->name, key);
	}
	return 0;
}

static int
cmd_plan_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "preset", required_argument, NULL, 'p' },
		{ "prefix", required_argument, NULL, 'P' },
		{ "keys", no_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 }
	};
	struct cmd_diff		 cd;
	struct diff_result	 res;
	struct s3_error		 err;
	struct plan		 p;
	enum s3_status		 st;
	const char		*subpath = "";
	char			**names;
	size_t			 nnames = 0, i, s;
	int			 ch, code;

	memset(&p, 0, sizeof(p));
	if ((names = calloc((size_t)argc, sizeof(*names))) == NULL)
		return EXIT_USAGE;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			names[nnames++] = optarg;
			break;
		case 'P':
			subpath = optarg;
			break;
		case 'k':
			p.keys = 1;
			break;
		case 'J':
			p.json = 1;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	cmd_catch_signals();
	if (cmd_diff_prepare(ctx, names, nnames, subpath, &cd, &code) != 0) {
		free(names);
		return code;
	}
	free(names);
	p.cd = &cd;
	p.first = 1;
	if ((p.counts = calloc(cd.npresets + 1, sizeof(*p.counts))) == NULL) {
		cmd_diff_release(&cd);
		return EXIT_STORAGE;
	}
	if (p.json)
		printf("{\"keys\":[");
	st = diff_run(&cd.params, plan_item, &p, &res, &err);
	store_conn_stats(cd.conn, &res.requests);
	if (st != S3_OK) {
		if (p.json)
			printf("]}\n");
		if (st != S3_ECANCELLED)
			cmd_storage_error("cannot list", res.failed_prefix, st,
			    &err);
		code = cmd_exit_code(cmd_storage_exit(st));
		goto out;
	}
	if (p.json) {
		printf("],\"originals\":%llu,\"ignored\":%llu,\"presets\":{",
		    (unsigned long long)res.originals,
		    (unsigned long long)res.ignored);
		for (i = 0; i < cd.npresets; i++) {
			printf("%s", i > 0 ? "," : "");
			json_string(stdout, cd.presets[i]->name);
			printf(":{\"stamp\":\"%s\"", cd.dp[i].changed ?
			    "changed" : "current");
			for (s = PS_MISSING; s < PS_COUNT; s++)
				printf(",\"%s\":%llu", pstate_name(s),
				    (unsigned long long)p.counts[i][s]);
			printf("}");
		}
		printf("},");
		json_requests(stdout, &res.requests);
		printf("}\n");
	} else if (!ctx->quiet) {
		printf("%llu originals, %llu other objects ignored\n",
		    (unsigned long long)res.originals,
		    (unsigned long long)res.ignored);
		printf("%-12s %9s %9s %9s %9s %9s  %s\n", "preset", "missing",
		    "stale", "(preset)", "fresh", "orphan", "stamp");
		for (i = 0; i < cd.npresets; i++)
			printf("%-12s %9llu %9llu %9llu %9llu %9llu  %s\n",
			    cd.presets[i]->name,
			    (unsigned long long)p.counts[i][PS_MISSING],
			    (unsigned long long)p.counts[i][PS_STALE_ORIGINAL],
			    (unsigned long long)p.counts[i][PS_STALE_PRESET],
			    (unsigned long long)p.counts[i][PS_FRESH],
			    (unsigned long long)p.counts[i][PS_ORPHAN],
			    cd.dp[i].changed ? "changed" : "current");
	}
	code = cmd_exit_code(EXIT_DONE);
out:
	free(p.counts);
	cmd_diff_release(&cd);
	return code;
usage:
	cmd_usage(&cmd_plan_entry, stderr);
	free(names);
	return EXIT_USAGE;
}

const struct cmd_entry cmd_plan_entry = {
	.name = "plan",
	.usage = "[--preset NAME ...] [--prefix SUBPATH] [--keys] [--json]",
	.summary = "show what generate and purge would do; writes nothing",
	.needs_config = 1,
	.exec = cmd_plan_exec,
};
