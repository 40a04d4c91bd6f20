/*
 * generate: make every missing or stale preview.
 *
 * Order of work: read the stamps; rewrite those whose preset changed (so a
 * run killed after this point still knows the change); then run the
 * merge-join, pushing one job per original that needs any preset into the
 * worker pool, which blocks the listing when it falls behind. Results come
 * back through gen_report, under the pool's report lock.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "preview/render.h"
#include "preview/work.h"

struct gen_counts {
	uint64_t	 state[PS_COUNT];
	uint64_t	 generated;
	uint64_t	 failed;
	uint64_t	 bytes;
};

struct gen {
	struct cmd_diff		*cd;
	struct work		*work;
	struct gen_counts	*c;		/* per preset */
	FILE			*failures;	/* JSON lines, for --json */
	int			 dry_run;
	int			 force;
	int			 json;
	int			 keys;		/* print what would be made */
	int			 progress;
	int			 verbose;
	uint64_t		 jobs;		/* queued */
	uint64_t		 done;		/* results reported */
	_Atomic uint64_t	 todo;		/* results expected */
	uint64_t		 nfailed;
	struct timespec		 start, last_progress;
};

static double
elapsed(const struct timespec *since)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void
gen_progress(struct gen *g, int final)
{
	double		t, rate, eta;
	uint64_t	todo;

	if (!g->progress)
		return;
	if (!final && elapsed(&g->last_progress) < 0.2)
		return;
	clock_gettime(CLOCK_MONOTONIC, &g->last_progress);
	t = elapsed(&g->start);
	rate = t > 0 ? (double)g->done / t : 0;
	todo = g->todo;
	eta = rate > 0 ? (double)(todo - g->done) / rate : 0;
	fprintf(stderr, "\r%llu/%llu previews, %.1f/s, ETA %d:%02d, "
	    "%llu failed ", (unsigned long long)g->done,
	    (unsigned long long)todo, rate, (int)eta / 60, (int)eta % 60,
	    (unsigned long long)g->nfailed);
	if (final)
		fputc('\n', stderr);
}

static void
gen_report(void *arg, const struct work_result *r)
{
	struct gen		*g = arg;
	const struct preset	*p = g->cd->presets[r->preset];

	g->done++;
	if (r->ok) {
		g->c[r->preset].generated++;
		g->c[r->preset].bytes += r->bytes;
		if (g->verbose)
			fprintf(stderr, "%smade '%s' (%llu bytes)\n",
			    g->progress ? "\r" : "", r->preview,
			    (unsigned long long)r->bytes);
	} else {
		g->c[r->preset].failed++;
		g->nfailed++;
		if (g->progress)
			fputc('\n', stderr);
		cmd_error("cannot make preview '%s' of '%s': %s", p->name,
		    r->key, r->error);
		if (g->failures != NULL) {
			fputs("{\"key\":", g->failures);
			json_string(g->failures, r->key);
			fputs(",\"preset\":", g->failures);
			json_string(g->failures, p->name);
			fputs(",\"error\":", g->failures);
			json_string(g->failures, r->error);
			fputs("}\n", g->failures);
		}
	}
	gen_progress(g, 0);
}

static int
gen_item(void *arg, const struct diff_item *it)
{
	struct gen	*g = arg;
	struct job	*j;
	uint64_t	 mask = 0;
	size_t		 i, n = 0;

	for (i = 0; i < g->cd->npresets; i++) {
		enum pstate s = it->state[i];

		g->c[i].state[s]++;
		if (s == PS_MISSING || s == PS_STALE_ORIGINAL ||
		    s == PS_STALE_PRESET || (s == PS_FRESH && g->force)) {
			mask |= UINT64_C(1) << i;
			n++;
			if (g->keys)
				printf("%s\t%s\t%s\n", pstate_name(s),
				    g->cd->presets[i]->name, it->source->key);
		}
	}
	if (mask == 0 || g->dry_run)
		return 0;
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->key = strdup(it->source->key)) == NULL) {
		free(j);
		return 1;
	}
	j->rel = j->key + strlen(g->cd->params.source);
	snprintf(j->etag, sizeof(j->etag), "%s", it->source->etag);
	j->size = it->source->size;
	j->mask = mask;
	g->jobs++;
	g->todo += n;
	return work_push(g->work, j) != 0;
}

/*
 * Rewrite the stamps of changed presets. S3's LastModified has one-second
 * resolution, so a preview written in the same second as its stamp could
 * not be told from one written just before it; waiting out that second
 * makes every preview of the new definition strictly newer than its stamp.
 */
static int
write_stamps(struct gen *g, int quiet)
{
	struct cmd_diff	*cd = g->cd;
	struct s3_error	 err;
	struct timespec	 ts = { 1, 50 * 1000000L };
	enum s3_status	 st;
	size_t		 i;
	int		 wrote = 0;

	for (i = 0; i < cd->npresets; i++) {
		if (!cd->dp[i].changed)
			continue;
		st = stamp_write(cd->conn, cd->params.previews, &cd->stamps.v[i],
		    &err);
		if (st != S3_OK) {
			cmd_storage_error("cannot write the stamp of preset",
			    cd->presets[i]->name, st, &err);
			return cmd_storage_exit(st);
		}
		if (!quiet)
			fprintf(stderr, "preset '%s' %s: its previews will be "
			    "remade\n", cd->presets[i]->name,
			    cd->stamps.v[i].exists ? "changed" : "is new");
		wrote = 1;
	}
	if (wrote)
		while (nanosleep(&ts, &ts) == -1 && !cmd_interrupted)
			;
	return EXIT_DONE;
}

static void
gen_summary(struct gen *g, const struct diff_result *res,
    const struct s3_stats *reqs, double secs, FILE *f)
{
	struct cmd_diff	*cd = g->cd;
	size_t		 i;

	fprintf(f, "%llu originals, %llu other objects ignored, %.1f s%s\n",
	    (unsigned long long)res->originals,
	    (unsigned long long)res->ignored, secs,
	    g->dry_run ? " (dry run: nothing written)" : "");
	fprintf(f, "%-12s %9s %9s %9s %12s\n", "preset",
	    g->dry_run ? "to make" : "generated", "fresh", "failed", "bytes");
	for (i = 0; i < cd->npresets; i++) {
		struct gen_counts *c = &g->c[i];
		uint64_t todo = c->state[PS_MISSING] +
		    c->state[PS_STALE_ORIGINAL] + c->state[PS_STALE_PRESET] +
		    (g->force ? c->state[PS_FRESH] : 0);

		fprintf(f, "%-12s %9llu %9llu %9llu %12llu\n",
		    cd->presets[i]->name,
		    (unsigned long long)(g->dry_run ? todo : c->generated),
		    (unsigned long long)(g->force ? 0 : c->state[PS_FRESH]),
		    (unsigned long long)c->failed,
		    (unsigned long long)c->bytes);
	}
	fprintf(f, "requests: %llu list, %llu get, %llu put, %llu head, "
	    "%llu retries\n", (unsigned long long)reqs->list,
	    (unsigned long long)reqs->get, (unsigned long long)reqs->put,
	    (unsigned long long)reqs->head, (unsigned long long)reqs->retries);
}

static void
gen_json(struct gen *g, const struct diff_result *res,
    const struct s3_stats *reqs, double secs, int code)
{
	struct cmd_diff	*cd = g->cd;
	size_t		 i, s;
	int		 ch, first = 1, at_start = 1;

	printf("{\"dry_run\":%s,\"exit\":%d,\"seconds\":%.3f,"
	    "\"originals\":%llu,\"ignored\":%llu,\"presets\":{",
	    g->dry_run ? "true" : "false", code, secs,
	    (unsigned long long)res->originals,
	    (unsigned long long)res->ignored);
	for (i = 0; i < cd->npresets; i++) {
		struct gen_counts *c = &g->c[i];

		printf("%s", i > 0 ? "," : "");
		json_string(stdout, cd->presets[i]->name);
		printf(":{\"generated\":%llu,\"fresh\":%llu,\"failed\":%llu,"
		    "\"bytes\":%llu", (unsigned long long)c->generated,
		    (unsigned long long)(g->force ? 0 : c->state[PS_FRESH]),
		    (unsigned long long)c->failed,
		    (unsigned long long)c->bytes);
		for (s = PS_MISSING; s < PS_COUNT; s++)
			if (s != PS_FRESH)
				printf(",\"%s\":%llu", pstate_name(s),
				    (unsigned long long)c->state[s]);
		printf("}");
	}
	printf("},");
	json_requests(stdout, reqs);
	printf(",\"failures\":[");
	if (g->failures != NULL) {
		rewind(g->failures);
		while ((ch = getc(g->failures)) != EOF) {
			if (at_start && !first)
				putchar(',');
			first = 0;
			at_start = ch == '\n';
			if (ch != '\n')
				putchar(ch);
		}
	}
	printf("]}\n");
}

static int
cmd_generate_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "preset", required_argument, NULL, 'p' },
		{ "prefix", required_argument, NULL, 'P' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "keys", no_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 }
	};
	struct config		*cfg = &ctx->cfg;
	struct cmd_diff		 cd;
	struct diff_result	 res;
	struct s3_error		 err;
	struct s3_stats		 reqs;
	struct work_params	 wp;
	struct gen		 g;
	enum s3_status		 st;
	const char		*subpath = "";
	const char		**md5 = NULL;
	char			**names, msg[512];
	size_t			 nnames = 0, i;
	long			 jobs, ncpu;
	int			 ch, code, storage_failed = 0;
	double			 secs;

	memset(&g, 0, sizeof(g));
	memset(&res, 0, sizeof(res));
	memset(&reqs, 0, sizeof(reqs));
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	jobs = ncpu > 0 ? (ncpu < 256 ? ncpu : 256) : 1;
	if ((names = calloc((size_t)argc, sizeof(*names))) == NULL)
		return EXIT_USAGE;
	while ((ch = getopt_long(argc, argv, "fj:n", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			names[nnames++] = optarg;
			break;
		case 'P':
			subpath = optarg;
			break;
		case 'j':
			if (cmd_parse_uint("-j", optarg, 256, &jobs) != 0 ||
			    jobs == 0) {
				free(names);
				return EXIT_USAGE;
			}
			break;
		case 'n':
			g.dry_run = 1;
			break;
		case 'f':
			g.force = 1;
			break;
		case 'k':
			g.keys = 1;
			break;
		case 'J':
			g.json = 1;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	if (cfg->npresets > WORK_MAX_PRESETS) {
		cmd_error("%s: at most %d presets", ctx->config_path,
		    WORK_MAX_PRESETS);
		free(names);
		return EXIT_USAGE;
	}
	/* libvips' own threads on top of ours would oversubscribe the CPUs. */
	if (render_global_init(ctx->argv0, ncpu > jobs ? (int)(ncpu / jobs) :
	    1, msg, sizeof(msg)) != 0) {
		cmd_error("cannot start libvips: %s", msg);
		free(names);
		return EXIT_USAGE;
	}
	cmd_catch_signals();
	clock_gettime(CLOCK_MONOTONIC, &g.start);
	if (cmd_diff_prepare(ctx, names, nnames, subpath, &cd, &code) != 0) {
		free(names);
		return cmd_exit_code(code);
	}
	free(names);
	g.cd = &cd;
	g.verbose = ctx->verbose;
	g.progress = !ctx->quiet && !g.json && !g.keys && !g.verbose &&
	    isatty(2);
	if ((g.c = calloc(cd.npresets + 1, sizeof(*g.c))) == NULL ||
	    (md5 = calloc(cd.npresets + 1, sizeof(*md5))) == NULL) {
		code = EXIT_STORAGE;
		goto out;
	}
	if (g.json && (g.failures = tmpfile()) == NULL) {
		cmd_error("cannot make a temporary file for --json");
		code = EXIT_USAGE;
		goto out;
	}
	if (!g.dry_run && (code = write_stamps(&g, ctx->quiet || g.json)) !=
	    EXIT_DONE)
		goto out;

	for (i = 0; i < cd.npresets; i++)
		md5[i] = cd.stamps.v[i].md5;
	if (!g.dry_run) {
		memset(&wp, 0, sizeof(wp));
		wp.store = cd.store;
		wp.presets = cd.presets;
		wp.stamp_md5 = md5;
		wp.npresets = cd.npresets;
		wp.previews = cfg->previews;
		wp.cache_control = cfg->cache_control;
		wp.acl = cfg->acl;
		wp.limits.max_pixels = cfg->max_pixels;
		wp.limits.max_bytes = cfg->max_bytes;
		wp.limits.timeout_s = cfg->image_timeout_s;
		wp.nworkers = (int)jobs;
		wp.max_storage_errors = 10;
		wp.cancel = &cmd_interrupted;
		wp.report = gen_report;
		wp.report_arg = &g;
		if ((g.work = work_start(&wp)) == NULL) {
			cmd_error("cannot start workers");
			code = EXIT_STORAGE;
			goto out;
		}
	}
	st = diff_run(&cd.params, gen_item, &g, &res, &err);
	if (st == S3_ECANCELLED && !cmd_interrupted &&
	    (g.work == NULL || !work_stopped(g.work))) {
		/* Neither a signal nor the pool: a job could not be made. */
		cmd_error("stopped: out of memory");
		st = S3_ENOMEM;
	}
	if (g.work != NULL) {
		if (st == S3_ECANCELLED)
			st = S3_OK;	/* the pool or the signal says why */
		work_finish(g.work, &reqs, &storage_failed);
		g.work = NULL;
	}
	gen_progress(&g, 1);
	code = EXIT_DONE;
	if (g.nfailed > 0)
		code = EXIT_SOME_FAILED;
	if (st == S3_ENOMEM)
		code = EXIT_STORAGE;
	else if (st != S3_OK && st != S3_ECANCELLED) {
		cmd_storage_error("cannot list", res.failed_prefix, st, &err);
		code = cmd_storage_exit(st);
	}
	if (storage_failed) {
		cmd_error("stopped: storage failed %d times in a row",
		    wp.max_storage_errors);
		code = EXIT_STORAGE;
	}
	code = cmd_exit_code(code);
	if (cmd_interrupted)
		cmd_error("interrupted: %llu previews made before stopping",
		    (unsigned long long)g.done);
	store_conn_stats(cd.conn, &reqs);
	s3_stats_add(&reqs, &res.requests);
	secs = elapsed(&g.start);
	if (g.json)
		gen_json(&g, &res, &reqs, secs, code);
	else if (!ctx->quiet)
		gen_summary(&g, &res, &reqs, secs, stdout);
out:
	if (g.failures != NULL)
		fclose(g.failures);
	free(g.c);
	free(md5);
	cmd_diff_release(&cd);
	return code;
usage:
	cmd_usage(&cmd_generate_entry, stderr);
	free(names);
	return EXIT_USAGE;
}

const struct cmd_entry cmd_generate_entry = {
	.name = "generate",
	.usage = "[--preset NAME ...] [--prefix SUBPATH] [-j N] [-n | --dry-run] "
	    "[--force] [--keys] [--json]",
	.summary = "make every missing or stale preview",
	.needs_config = 1,
	.exec = cmd_generate_exec,
};
