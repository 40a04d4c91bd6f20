/*
 * generate: make every missing or stale preview.
 *
 * Order of work: open the engine (stamps read, the listings' first pages
 * on their way); write the stamps of changed presets (so a run killed
 * after this point still knows the change); start the guard and the pool;
 * run the merge-join, pushing one job per original that needs any preset
 * into the pool, which blocks the listing when it falls behind; drain the
 * pool, the guard making its last check as soon as the last preview is
 * written (gen_puts_over). Results come back through gen_done under the
 * pool's report lock.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "preview/keys.h"
#include "preview/work.h"

#define OPT_PRESET	'p'
#define OPT_PREFIX	0x200
#define OPT_FORCE	0x201
#define OPT_KEYS	0x202
#define OPT_RETRY	0x203
#define OPT_VERIFY	0x204
#define OPT_TIMELIMIT	0x207

#define STAMP_WAIT	600	/* seconds a shard waits for shard 0's stamps */

struct gen_opts {
	const char	*prefix;
	struct cmd_metrics metrics;	/* --metrics-file and the run */
	struct cmd_open	 open;		/* what cmd_engine_open takes */
	long		 time_limit;	/* seconds; 0: none */
	long		 jobs;
	int		 dry_run;
	int		 force;
	int		 keys;
	int		 retry_failed;
	int		 verify;
};

struct gen_counts {
	uint64_t	 state[PS_COUNT];
	uint64_t	 to_make;
	uint64_t	 generated;
	uint64_t	 failed;
	uint64_t	 skipped;	/* by the pool */
	uint64_t	 too_long;	/* by the listing: no key for it */
	uint64_t	 removed;	/* stale previews of non-images */
	uint64_t	 verified;	/* --verify: fresh and right */
	uint64_t	 bytes;
};

struct gen {
	struct cmd_ctx		*ctx;
	struct gen_opts		 o;
	struct engine		 eng;
	struct maker		 mk;
	struct guard		*guard;
	struct work		*work;
	struct gen_counts	*c;		/* per preset */
	struct json		*json;
	int			 progress;
	_Atomic uint64_t	 todo;		/* previews queued (read by
						   the pool's progress) */
	uint64_t		 done;		/* previews with a result */
	uint64_t		 nfailed, nlost_skips, nmarked;
	int			 nomem;
	int			 timeup;	/* --time-limit reached */
	struct timespec		 last_progress;
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
	double	t, rate, eta;

	if (!g->progress)
		return;
	if (!final && elapsed(&g->last_progress) < 0.2)
		return;
	clock_gettime(CLOCK_MONOTONIC, &g->last_progress);
	t = cmd_metrics_elapsed(&g->o.metrics);
	rate = t > 0 ? (double)g->done / t : 0;
	eta = rate > 0 ? (double)(g->todo - g->done) / rate : 0;
	fprintf(stderr, "\r%llu/%llu previews, %.1f/s, ETA %d:%02d, "
	    "%llu failed ", (unsigned long long)g->done,
	    (unsigned long long)g->todo, rate, (int)eta / 60, (int)eta % 60,
	    (unsigned long long)g->nfailed);
	if (final)
		fputc('\n', stderr);
}

/* One --keys entry: text at queue time, JSON once its result is known. */
static void
key_json(struct gen *g, const char *preview, const char *original,
    size_t preset, const char *state, const char *result, const char *err)
{
	json_object(g->json);
	json_kstr(g->json, "key", preview);
	json_kstr(g->json, "original", original);
	json_kstr(g->json, "preset", g->eng.presets[preset]->name);
	json_kstr(g->json, "state", state);
	json_kstr(g->json, "result", result);
	if (err != NULL)
		json_kstr(g->json, "error", err);
	json_end(g->json);
}

static void
failure_json(struct gen *g, const char *original, size_t preset,
    const char *err)
{
	json_object(g->json);
	json_kstr(g->json, "key", original);
	json_kstr(g->json, "preset", g->eng.presets[preset]->name);
	json_kstr(g->json, "error", err);
	json_end(g->json);
}

static const char *const result_names[] = {
	"pending", "made", "failed", "skipped", "verified"
};

/* A job's end: count, report, free. */
static void
gen_done(void *arg, struct job *j)
{
	struct gen	*g = arg;
	size_t		 i;

	for (i = 0; i < j->n; i++) {
		const struct job_preset	*p = &j->p[i];
		struct gen_counts	*c = &g->c[p->preset];
		const char		*name = g->eng.presets[p->preset]->name;

		g->done++;
		if (g->json != NULL && g->o.keys)
			key_json(g, p->key.data, j->key, p->preset,
			    pstate_name(p->state), result_names[p->result],
			    p->result == MAKE_FAILED ||
			    p->result == MAKE_SKIPPED ? p->error : NULL);
		switch (p->result) {
		case MAKE_MADE:
			c->generated++;
			c->bytes += p->out.data.len;
			if (g->ctx->verbose)
				cmd_report("%smade '%s' (%zu bytes)",
				    g->progress ? "\r" : "", p->key.data,
				    p->out.data.len);
			break;
		case MAKE_FAILED:
			c->failed++;
			g->nfailed++;
			c->removed += p->removed;
			if (g->progress)
				fputc('\n', stderr);
			cmd_report("cannot make preview '%s' of '%s': %s%s", name,
			    j->key, p->error, p->removed ? "; its stale "
			    "preview was removed" : "");
			if (g->json != NULL && !g->o.keys)
				failure_json(g, j->key, p->preset, p->error);
			break;
		case MAKE_SKIPPED:
			c->skipped++;
			if (p->why == WHY_UNSTORED)
				g->nlost_skips++;
			if (g->ctx->verbose)
				cmd_report("skipped '%s': %s", p->key.data,
				    p->error);
			break;
		case MAKE_VERIFIED:
			c->verified++;
			break;
		case MAKE_PENDING:
			break;
		}
	}
	g->nmarked += j->marks_written;
	if (j->changed)
		cmd_report("'%s' changed while its previews were made: "
		    "they were removed, the next run makes them", j->key);
	job_free(j);
	gen_progress(g, 0);
}

/* A preview the listing says cannot be written: its key is too long. */
static int
key_too_long(const struct gen *g, size_t i, const char *rel)
{
	return strlen(g->eng.cfg->previews) +
	    strlen(g->eng.presets[i]->name) + 1 + strlen(rel) > KEY_MAX;
}

static int
gen_item(void *arg, const struct diff_item *it)
{
	struct gen	*g = arg;
	struct job	*j;
	size_t		 idx[MAKE_MAX_PRESETS], i, n = 0;
	enum pstate	 state[MAKE_MAX_PRESETS];
	struct buf	 key;

	/* Time is up: no new original; what is in flight ends. */
	if (g->o.time_limit > 0 && !g->o.dry_run &&
	    cmd_metrics_elapsed(&g->o.metrics) >= (double)g->o.time_limit) {
		g->timeup = 1;
		return 1;
	}
	for (i = 0; i < g->eng.npresets; i++) {
		enum pstate s = it->state[i];

		g->c[i].state[s]++;
		if (!pstate_todo(s, g->o.force) && !(g->o.verify &&
		    s == PS_FRESH))
			continue;
		if (key_too_long(g, i, it->rel)) {
			g->c[i].too_long++;
			cmd_report("cannot make preview '%s' of '%s': its key "
			    "would be longer than 1024 bytes",
			    g->eng.presets[i]->name, it->source->key);
			continue;
		}
		if (pstate_todo(s, g->o.force))
			g->c[i].to_make++;
		if (g->o.keys && (g->json == NULL || g->o.dry_run)) {
			buf_init(&key, BUF_NOMAX);
			if (key_preview(&key, g->eng.cfg->previews,
			    g->eng.presets[i]->name, it->rel) != 0) {
				g->nomem = 1;
				return 1;
			}
			if (g->json != NULL)
				key_json(g, key.data, it->source->key, i,
				    pstate_name(s), "dry-run", NULL);
			else {
				printf("%s\t%s\t", pstate_name(s),
				    g->eng.presets[i]->name);
				cmd_key(stdout, key.data);
				putchar('\n');
			}
			buf_release(&key);
			if (cmd_out_check() != 0)
				return 1;
		}
		idx[n] = i;
		state[n++] = s;
	}
	if (n == 0 || g->o.dry_run)
		return 0;
	if ((j = job_new(&g->mk, it->source->key, it->source->size, idx,
	    n)) == NULL) {
		g->nomem = 1;
		return 1;
	}
	for (i = 0; i < n; i++) {
		j->p[i].state = state[i];
		j->p[i].verify = state[i] == PS_FRESH && !g->o.force;
		j->p[i].marked = it->marks[idx[i]] != NULL;
	}
	(void)snprintf(j->listed_etag, sizeof(j->listed_etag), "%s",
	    it->source->etag);
	g->todo += n;
	if (work_push(g->work, j) != 0) {
		job_free(j);
		return 1;
	}
	return 0;
}

static void
stamp_written(void *arg, const struct preset *p, int existed)
{
	struct gen	*g = arg;

	if (!g->ctx->quiet && g->json == NULL)
		cmd_report("preset '%s' %s: its previews will be remade",
		    p->name, existed ? "changed" : "is new");
}

static void
guard_lost(void *arg, size_t preset, int lost)
{
	struct gen	*g = arg;

	if (!lost)
		return;
	cmd_error("preset '%s' was changed on storage by another run: its "
	    "stamp no longer matches this configuration, so no more of its "
	    "previews are written", g->eng.presets[preset]->name);
}

static void
guard_removed(void *arg, size_t preset, const char *key, const char *error)
{
	struct gen	*g = arg;

	if (error != NULL)
		cmd_error("cannot remove '%s', written after preset '%s' "
		    "changed: %s", key, g->eng.presets[preset]->name, error);
	else if (g->ctx->verbose)
		cmd_report("removed '%s': written after preset '%s' changed",
		    key, g->eng.presets[preset]->name);
}

static void
print_summary(struct gen *g, const struct diff_result *res,
    const struct s3_stats *reqs, double secs)
{
	struct gen_counts	*c;
	uint64_t		 known = 0;
	size_t			 i;

	printf("%llu originals, %llu other objects ignored, %.1f s%s\n",
	    (unsigned long long)res->originals,
	    (unsigned long long)res->ignored, secs,
	    g->o.dry_run ? " (dry run: nothing written)" : "");
	printf("%-12s %9s %9s %9s %9s %12s\n", "preset",
	    g->o.dry_run ? "to make" : "generated", "fresh", "failed", "known",
	    "bytes");
	for (i = 0; i < g->eng.npresets; i++) {
		c = &g->c[i];
		known += c->state[PS_KNOWN_FAILURE];
		printf("%-12s %9llu %9llu %9llu %9llu %12llu\n",
		    g->eng.presets[i]->name, (unsigned long long)
		    (g->o.dry_run ? c->to_make : c->generated),
		    (unsigned long long)c->state[PS_FRESH],
		    (unsigned long long)c->failed,
		    (unsigned long long)c->state[PS_KNOWN_FAILURE],
		    (unsigned long long)c->bytes);
	}
	cmd_print_requests(stdout, reqs);
	if (known > 0)
		printf("%llu known failures: originals unchanged since they "
		    "failed (--retry-failed tries them again)\n",
		    (unsigned long long)known);
}

static void
print_json(struct gen *g, const struct diff_result *res,
    const struct s3_stats *reqs, double secs)
{
	struct json	*j = g->json;
	size_t		 i, s;

	json_end(j);	/* the keys or failures */
	json_key(j, "dry_run");
	json_bool(j, g->o.dry_run);
	json_key(j, "seconds");
	json_double(j, secs, 3);
	json_ku64(j, "workers", g->o.dry_run ? 0 : (uint64_t)g->o.jobs);
	json_ku64(j, "originals", res->originals);
	json_ku64(j, "ignored", res->ignored);
	json_key(j, "presets");
	json_object(j);
	for (i = 0; i < g->eng.npresets; i++) {
		struct gen_counts *c = &g->c[i];

		json_key(j, g->eng.presets[i]->name);
		json_object(j);
		json_ku64(j, "to_make", c->to_make);
		json_ku64(j, "generated", c->generated);
		json_ku64(j, "failed", c->failed);
		json_ku64(j, "skipped", c->skipped + c->too_long);
		json_ku64(j, "removed", c->removed);
		json_ku64(j, "bytes", c->bytes);
		if (g->o.verify)
			json_ku64(j, "verified", c->verified);
		for (s = PS_MISSING; s < PS_COUNT; s++)
			json_ku64(j, pstate_name((enum pstate)s), c->state[s]);
		json_end(j);
	}
	json_end(j);
	cmd_json_requests(j, reqs);
}

/* --metrics-file, on every way out once the options are read. */
static void
write_metrics(struct gen *g, int code)
{
	struct cmd_metrics	*m = &g->o.metrics;
	size_t			 i;

	if (m->path == NULL)
		return;
	if (g->c != NULL) {
		m->states = calloc(g->eng.npresets + 1, sizeof(*m->states));
		m->results = calloc(g->eng.npresets + 1, sizeof(*m->results));
	}
	for (i = 0; m->states != NULL && m->results != NULL &&
	    i < g->eng.npresets; i++) {
		memcpy(m->states[i], g->c[i].state, sizeof(m->states[i]));
		m->results[i][M_GENERATED] = g->c[i].generated;
		m->results[i][M_FAILED] = g->c[i].failed;
		m->results[i][M_SKIPPED] = g->c[i].skipped +
		    g->c[i].too_long;
		m->results[i][M_DELETED] = g->c[i].removed;
	}
	if (g->c != NULL && (m->states == NULL || m->results == NULL))
		cmd_error("cannot write the metrics: out of memory");
	else
		cmd_metrics_end(m, &g->eng, code);
	free(m->states);
	free(m->results);
	m->states = NULL;
	m->results = NULL;
}

static int
parse_opts(const struct cmd_args *a, struct gen_opts *o)
{
	size_t	i;
	long	ncpu = cmd_ncpu();

	o->jobs = ncpu < 256 ? ncpu : 256;
	for (i = 0; i < a->n; i++) {
		switch (a->v[i].ch) {
		case OPT_PREFIX:
			o->prefix = a->v[i].arg;
			break;
		case 'j':
			if (cmd_parse_uint("-j", a->v[i].arg, 1, 256,
			    &o->jobs) != 0)
				return -1;
			break;
		case 'n':
			o->dry_run = 1;
			break;
		case OPT_FORCE:
			o->force = 1;
			break;
		case OPT_KEYS:
			o->keys = 1;
			break;
		case OPT_RETRY:
			o->retry_failed = 1;
			break;
		case OPT_VERIFY:
			o->verify = 1;
			break;
		case OPT_TIMELIMIT:
			if (cmd_parse_duration("--time-limit", a->v[i].arg,
			    &o->time_limit) != 0)
				return -1;
			break;
		}
	}
	o->open = (struct cmd_open){ .preset_ch = OPT_PRESET,
	    .subpath = o->prefix, .retry_failed = o->retry_failed };
	return cmd_scale_opts(a, &o->open, &o->metrics);
}

/* The last check of the stamps, alongside the last originals' HEADs. */
static void
gen_puts_over(void *arg)
{
	struct gen	*g = arg;

	guard_last(g->guard);
}

/* The pool and the guard, sized so that libvips and we share the CPUs. */
static int
start_pool(struct gen *g, long ncpu)
{
	struct work_params	wp;
	struct guard_cbs	cbs = { guard_lost, guard_removed, g };
	char			msg[512];

	/* libvips' own threads on top of ours would oversubscribe the CPUs. */
	if (render_global_init("prewctl", ncpu > g->o.jobs ? (int)(ncpu /
	    g->o.jobs) : 1, msg, sizeof(msg)) != 0) {
		cmd_error("cannot start libvips: %s", msg);
		return EXIT_STORAGE;
	}
	if ((g->guard = engine_guard(&g->eng, 0, &cbs)) == NULL ||
	    guard_start(g->guard, 10 * 1000) != 0) {
		cmd_error("out of memory");
		return EXIT_STORAGE;
	}
	engine_maker(&g->eng, g->guard, &g->mk);
	memset(&wp, 0, sizeof(wp));
	wp.maker = &g->mk;
	wp.nworkers = (int)g->o.jobs;
	wp.max_storage_errors = 10;
	wp.cancel = &cmd_interrupted;
	wp.done = gen_done;
	wp.done_arg = g;
	wp.puts_over = gen_puts_over;
	if ((g->work = work_start(&wp)) == NULL) {
		cmd_error("cannot start workers: out of memory");
		return EXIT_STORAGE;
	}
	return EXIT_DONE;
}

/* Drain the pool and the guard; the exit code they call for. */
static int
stop_pool(struct gen *g, struct s3_stats *reqs)
{
	struct store_error	 err;
	enum store_status	 st;
	enum work_stop		 stop = WORK_RUNNING;
	char			 msg[600];
	int			 code = EXIT_DONE;

	if (g->work != NULL)
		stop = work_finish(g->work, reqs);
	g->work = NULL;
	if (stop == WORK_READS_FAILING || stop == WORK_WRITES_FAILING) {
		cmd_error("stopped: storage failed %d %s in a row", 10,
		    stop == WORK_READS_FAILING ? "reads" : "writes");
		code = EXIT_STORAGE;
	}
	if (g->guard != NULL) {
		st = guard_stop(g->guard, &err);
		/* Another run changed a preset: this one did not finish it. */
		if (guard_nlost(g->guard) > 0 && code == EXIT_DONE)
			code = EXIT_SOME_FAILED;
		if (st != STORE_OK) {
			store_error_text(st, &err, msg, sizeof(msg));
			cmd_error("storage failed: cannot check that the "
			    "stamps under '%s' are unchanged: %s",
			    g->eng.cfg->previews, msg);
			code = EXIT_STORAGE;
		}
		guard_stats(g->guard, reqs);
		guard_free(g->guard);
		g->guard = NULL;
	}
	return code;
}

static int
run(struct gen *g, const struct cmd_args *a)
{
	struct diff_result	 res;
	struct eng_error	 e;
	struct store_error	 err;
	struct s3_stats		 reqs;
	enum store_status	 st;
	enum eng_status		 est;
	char			 msg[600];
	int			 code, pcode = EXIT_DONE;

	memset(&res, 0, sizeof(res));
	memset(&reqs, 0, sizeof(reqs));
	if ((code = cmd_engine_open(g->ctx, a, &g->o.open, &g->eng)) !=
	    EXIT_DONE)
		return code;
	if ((g->c = calloc(g->eng.npresets + 1, sizeof(*g->c))) == NULL) {
		cmd_error("out of memory");
		return EXIT_STORAGE;
	}
	if (g->json != NULL) {
		json_key(g->json, g->o.keys ? "keys" : "failures");
		json_array(g->json);
	}
	if (!g->o.dry_run) {
		/* Another shard writes a changed stamp: 10 minutes for it. */
		if (engine_stamps_awaited(&g->eng) > 0 && !g->ctx->quiet)
			cmd_report("shard %u/%u: waiting up to %d s for shard "
			    "0 to write the stamps of %zu changed presets",
			    g->eng.shard, g->eng.nshards, STAMP_WAIT,
			    engine_stamps_awaited(&g->eng));
		if ((est = engine_write_stamps(&g->eng, 0, STAMP_WAIT, stamp_written,
		    g, &e)) != ENG_OK)
			return cmd_engine_fail(est, &e);
		if ((code = start_pool(g, cmd_ncpu())) != EXIT_DONE) {
			(void)stop_pool(g, &reqs);
			return code;
		}
	}

	st = diff_run(&g->eng.params, gen_item, g, &res, &err);
	pcode = stop_pool(g, &reqs);
	gen_progress(g, 1);

	code = g->nfailed > 0 || g->nlost_skips > 0 ? EXIT_SOME_FAILED :
	    EXIT_DONE;
	if (g->nomem) {
		cmd_error("stopped: out of memory");
		code = EXIT_STORAGE;
	} else if (st != STORE_OK && st != STORE_ECANCELLED) {
		store_error_text(st, &err, msg, sizeof(msg));
		cmd_error("cannot list '%s': %s", res.failed_prefix, msg);
		code = EXIT_STORAGE;
	}
	if (pcode != EXIT_DONE)
		code = pcode;
	if (g->timeup && (code == EXIT_DONE || code == EXIT_SOME_FAILED)) {
		cmd_error("time is up after %ld s: %llu previews made, work is "
		    "left (the next run does the rest)", g->o.time_limit,
		    (unsigned long long)g->done);
		code = EXIT_TIMEUP;
	}
	if (cmd_interrupted != 0 && cmd_interrupted != SIGPIPE)
		cmd_error("interrupted: %llu previews made before stopping",
		    (unsigned long long)g->done);
	store_conn_stats(g->eng.conn, &reqs);
	s3_stats_add(&reqs, &res.requests);
	code = cmd_exit_code(code);
	g->o.metrics.originals = res.originals;
	g->o.metrics.reqs = reqs;
	if (g->json != NULL)
		print_json(g, &res, &reqs, cmd_metrics_elapsed(&g->o.metrics));
	else if (!g->ctx->quiet)
		print_summary(g, &res, &reqs,
		    cmd_metrics_elapsed(&g->o.metrics));
	return code;
}

static int
cmd_generate_exec(struct cmd_ctx *ctx, const struct cmd_args *a)
{
	struct gen	g;
	int		code;

	memset(&g, 0, sizeof(g));
	g.ctx = ctx;
	g.json = ctx->json;
	cmd_metrics_start(&g.o.metrics, "generate");
	if (parse_opts(a, &g.o) != 0)
		return EXIT_USAGE;
	g.progress = !ctx->quiet && g.json == NULL && !g.o.keys &&
	    !ctx->verbose && isatty(2);
	cmd_catch_signals();
	code = run(&g, a);
	write_metrics(&g, code);
	free(g.c);
	engine_close(&g.eng);
	return code;
}

static const struct option generate_longopts[] = {
	{ "preset", required_argument, NULL, OPT_PRESET },
	{ "prefix", required_argument, NULL, OPT_PREFIX },
	{ "jobs", required_argument, NULL, 'j' },
	{ "dry-run", no_argument, NULL, 'n' },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "keys", no_argument, NULL, OPT_KEYS },
	{ "retry-failed", no_argument, NULL, OPT_RETRY },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "time-limit", required_argument, NULL, OPT_TIMELIMIT },
	SCALE_LONGOPTS,
	{ "json", no_argument, NULL, CMD_OPT_JSON },
	{ NULL, 0, NULL, 0 }
};

const struct cmd_entry cmd_generate_entry = {
	.name = "generate",
	.usage = "[--preset NAME ...] [--prefix SUBPATH] [-j N] [-n | --dry-run] "
	    "[--force] [--retry-failed] [--verify] [--keys] [--json] "
	    "[--shard I/N] [--list-ranges N] [--time-limit DURATION] "
	    "[--metrics-file PATH]",
	.summary = "make every missing or stale preview",
	.shortopts = "j:n",
	.longopts = generate_longopts,
	.args_min = 0,
	.args_max = 0,
	.flags = CMD_CONFIG | CMD_JSON,
	.exec = cmd_generate_exec,
};
