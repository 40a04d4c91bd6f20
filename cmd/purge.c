/*
 * purge: delete previews whose original is gone (and the failure marks of
 * originals that are gone), and with --removed-presets the folders and
 * stamps of presets no longer configured.
 *
 * Nothing is deleted until every listing has finished: the keys go to a
 * spool first, then the refusals are checked, and only then does
 * remove_spool delete. The refusals, so that a mistake deletes nothing:
 *   - a listing failed (exit 3), unless --force;
 *   - no originals under the source while previews exist (exit 2), unless
 *     --force;
 *   - more than half of some preset's previews would go, when that is
 *     more than PURGE_SHARE_MIN keys (exit 2), unless --force;
 *   - more than --max-delete keys (default PURGE_MAX_DELETE) would go
 *     (exit 2): only a larger --max-delete lifts it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "preview/keys.h"
#include "preview/remove.h"

#define OPT_PRESET	'p'
#define OPT_PREFIX	0x200
#define OPT_FORCE	0x201
#define OPT_REMOVED	0x205
#define OPT_MAX		0x206

#define PURGE_MAX_DELETE	10000
#define PURGE_SHARE_MIN		10

struct purge {
	struct cmd_ctx	*ctx;
	struct engine	 eng;
	struct json	*json;
	FILE		*spool;
	uint64_t	 count;		/* keys spooled */
	uint64_t	*orphans;	/* per preset */
	uint64_t	*previews;	/* per preset: how many exist */
	uint64_t	 marks;		/* failure marks of gone originals */
	uint64_t	 removed;	/* keys of removed presets */
	uint64_t	 left_alone;	/* folders under previews not ours */
	uint64_t	(*states)[PS_COUNT];	/* per preset, for the metrics */
	uint64_t	(*results)[M_NRESULTS];
	uint64_t	 folder_keys;	/* of a removed preset, any shard's */
	struct cmd_metrics metrics;	/* --metrics-file and the run */
	int		 failed;	/* cannot spool */
	int		 force;
	int		 dry_run;
	long		 max_delete;
};

static int
spool(struct purge *p, const char *key)
{
	if (spool_add(p->spool, key) != 0) {
		p->failed = 1;
		return -1;
	}
	p->count++;
	return 0;
}

static int
purge_item(void *arg, const struct diff_item *it)
{
	struct purge	*p = arg;
	size_t		 i;

	for (i = 0; i < p->eng.npresets; i++) {
		p->states[i][it->state[i]]++;
		if (it->previews[i] != NULL)
			p->previews[i]++;
		if (it->state[i] != PS_ORPHAN)
			continue;
		if (spool(p, it->previews[i]->key) != 0)
			return 1;
		p->orphans[i]++;
	}
	/* A mark is bookkeeping: it goes with its original. */
	for (i = 0; i < p->eng.npresets && it->source == NULL; i++)
		if (it->marks[i] != NULL) {
			if (spool(p, it->marks[i]->key) != 0)
				return 1;
			p->marks++;
		}
	return 0;
}

/*
 * A key under a removed preset's folder (or its marks'): prefix is the
 * folder, so what follows it is the rel its shard is known by.
 */
struct removed_walk {
	struct purge	*p;
	size_t		 strip;
};

static int
removed_obj(void *arg, const struct s3_object *o)
{
	struct removed_walk	*w = arg;
	struct purge		*p = w->p;

	p->folder_keys++;
	if (p->eng.nshards > 1 &&
	    diff_shard(o->key + w->strip, p->eng.nshards) != p->eng.shard)
		return 0;
	if (spool(p, o->key) != 0)
		return 1;
	p->removed++;
	return 0;
}

/*
 * Spool the folders and stamps of removed presets: ours, no longer
 * configured. Everything else under the previews root is left alone.
 * Returns an exit code: EXIT_DONE when all is spooled.
 */
static int
spool_removed(struct purge *p)
{
	struct root_item	*v = NULL;
	struct s3_list_params	 lp;
	struct store_error	 err;
	struct eng_error	 e;
	enum eng_status		 est;
	enum store_status	 st;
	struct removed_walk	 w = { p, 0 };
	struct buf		 prefix;
	size_t			 n = 0, i, k;
	char			 msg[600];
	int			 rc = EXIT_STORAGE;

	if ((est = engine_root(&p->eng, &v, &n, &e)) != ENG_OK)
		return cmd_engine_fail(est, &e);
	buf_init(&prefix, BUF_NOMAX);
	for (i = 0; i < n; i++) {
		if (v[i].kind != ROOT_REMOVED) {
			p->left_alone++;
			if (p->ctx->verbose)
				cmd_report("left alone: '%s%s/' (%s)",
				    p->eng.cfg->previews, v[i].name,
				    v[i].kind == ROOT_THEIRS ? "a preset of "
				    "another source" : "not made by prewctl");
			continue;
		}
		/* Its previews, and its failure marks. */
		p->folder_keys = 0;
		for (k = 0; k < 2; k++) {
			buf_reset(&prefix);
			if ((k == 0 ? key_preset_prefix(&prefix,
			    p->eng.cfg->previews, v[i].name) :
			    key_failed_prefix(&prefix, p->eng.cfg->previews,
			    v[i].name)) != 0)
				goto nomem;
			memset(&lp, 0, sizeof(lp));
			lp.prefix = prefix.data;
			w.strip = prefix.len;
			st = store_list(p->eng.conn, &lp, removed_obj, NULL, &w,
			    &err);
			if (p->failed)
				goto out;
			if (st != STORE_OK) {
				store_error_text(st, &err, msg, sizeof(msg));
				cmd_error("refusing to purge: cannot list "
				    "'%s': %s", prefix.data, msg);
				goto out;
			}
		}
		/*
		 * Sharded, each shard deletes its keys; the stamp goes with
		 * the run that finds the folder empty (the next one, when
		 * the shards run at once), or the stamp would go first and
		 * the other shards would take the folder for a foreign one.
		 */
		if (p->eng.nshards > 1 && p->folder_keys > 0)
			continue;
		buf_reset(&prefix);
		if (key_stamp(&prefix, p->eng.cfg->previews, v[i].name) != 0)
			goto nomem;
		if (spool(p, prefix.data) != 0)
			goto out;
		p->removed++;
	}
	rc = EXIT_DONE;
	goto out;
nomem:
	cmd_error("out of memory");
out:
	buf_release(&prefix);
	root_items_free(v, n);
	return rc;
}

/* Whether the refusals allow deleting what was spooled; 0 when they do. */
static int
refusals(struct purge *p, const struct diff_result *res)
{
	size_t	i;

	if (res->originals == 0 && res->previews > 0 && !p->force) {
		cmd_error("refusing to purge: no originals under '%s' but %llu "
		    "previews exist (wrong source? --force overrides)",
		    p->eng.cfg->source, (unsigned long long)res->previews);
		return EXIT_USAGE;
	}
	for (i = 0; i < p->eng.npresets && !p->force; i++)
		if (p->orphans[i] > PURGE_SHARE_MIN &&
		    p->orphans[i] * 2 > p->previews[i]) {
			cmd_error("refusing to purge: %llu of the %llu previews "
			    "of preset '%s' would be deleted, more than half "
			    "(--force overrides)",
			    (unsigned long long)p->orphans[i],
			    (unsigned long long)p->previews[i],
			    p->eng.presets[i]->name);
			return EXIT_USAGE;
		}
	if (p->count > (uint64_t)p->max_delete) {
		cmd_error("refusing to purge: %llu keys would be deleted, more "
		    "than --max-delete %ld", (unsigned long long)p->count,
		    p->max_delete);
		return EXIT_USAGE;
	}
	return EXIT_DONE;
}

static void
on_deleted(void *arg, const char *key)
{
	struct purge	*p = arg;

	if (p->ctx->verbose)
		cmd_report("deleted '%s'", key);
}

static void
on_failed(void *arg, const char *key, enum store_status st, const char *why)
{
	struct purge	*p = arg;
	const char	*rel;
	char		 name[PRESET_NAME_MAX + 1];
	size_t		 i;

	(void)st;
	/* Which preset's orphan was not deleted, for the metrics. */
	if (key_parse_preview(p->eng.cfg->previews, key, name, sizeof(name),
	    &rel) == KEY_OK)
		for (i = 0; i < p->eng.npresets; i++)
			if (strcmp(p->eng.presets[i]->name, name) == 0)
				p->results[i][M_FAILED]++;
	cmd_report("cannot delete '%s': %s", key, why);
	if (p->json != NULL) {
		json_object(p->json);
		json_kstr(p->json, "key", key);
		json_kstr(p->json, "error", why);
		json_end(p->json);
	}
}

/* -n: the keys that would be deleted, then how many. */
static void
print_dry_run(struct purge *p)
{
	struct buf	key;

	buf_init(&key, BUF_NOMAX);
	rewind(p->spool);
	if (p->json != NULL) {
		json_key(p->json, "keys");
		json_array(p->json);
	}
	while (spool_next(p->spool, &key) > 0 && cmd_out_check() == 0) {
		if (p->json != NULL)
			json_str(p->json, key.data);
		else {
			cmd_key(stdout, key.data);
			putchar('\n');
		}
	}
	if (p->json != NULL)
		json_end(p->json);
	else if (!p->ctx->quiet)
		printf("%llu keys would be deleted (dry run)\n",
		    (unsigned long long)p->count);
	buf_release(&key);
}

static void
print_json(struct purge *p, const struct remove_result *rr,
    const struct s3_stats *reqs)
{
	struct json	*j = p->json;
	size_t		 i;

	json_key(j, "dry_run");
	json_bool(j, p->dry_run);
	json_ku64(j, "would_delete", p->count);
	json_ku64(j, "deleted", rr->deleted);
	json_ku64(j, "failed", rr->failed);
	json_ku64(j, "removed_presets_keys", p->removed);
	json_ku64(j, "marks", p->marks);
	json_ku64(j, "left_alone", p->left_alone);
	json_key(j, "orphans");
	json_object(j);
	for (i = 0; i < p->eng.npresets; i++)
		json_ku64(j, p->eng.presets[i]->name, p->orphans[i]);
	json_end(j);
	cmd_json_requests(j, reqs);
}

static int
run(struct purge *p, const struct cmd_args *a)
{
	struct remove_cbs	 cbs = { on_deleted, on_failed, p };
	struct remove_result	 rr;
	struct diff_result	 res;
	struct store_error	 err;
	enum store_status	 st;
	char			 msg[600];
	size_t			 i;
	int			 code, listing_failed = 0;
	struct cmd_open		 co = { .preset_ch = OPT_PRESET,
				    .subpath = args_get(a, OPT_PREFIX),
				    .any_source = p->force };

	memset(&rr, 0, sizeof(rr));
	memset(&res, 0, sizeof(res));
	if (cmd_scale_opts(a, &co, &p->metrics) != 0)
		return EXIT_USAGE;
	if (args_has(a, OPT_REMOVED) && args_get(a, OPT_PREFIX) != NULL) {
		cmd_error("--removed-presets deletes whole presets: not with "
		    "--prefix");
		return EXIT_USAGE;
	}
	if ((code = cmd_engine_open(p->ctx, a, &co, &p->eng)) != EXIT_DONE)
		return code;
	if ((p->orphans = calloc(p->eng.npresets + 1,
	    sizeof(*p->orphans))) == NULL ||
	    (p->previews = calloc(p->eng.npresets + 1,
	    sizeof(*p->previews))) == NULL ||
	    (p->states = calloc(p->eng.npresets + 1,
	    sizeof(*p->states))) == NULL ||
	    (p->results = calloc(p->eng.npresets + 1,
	    sizeof(*p->results))) == NULL ||
	    (p->spool = tmpfile()) == NULL) {
		cmd_error("cannot make the spool of keys to delete");
		return EXIT_STORAGE;
	}

	st = diff_run(&p->eng.params, purge_item, p, &res, &err);
	if (p->failed) {
		cmd_error("cannot write the spool of keys to delete");
		return EXIT_STORAGE;
	}
	if (cmd_interrupted)
		return cmd_exit_code(EXIT_DONE);
	if (st != STORE_OK) {
		store_error_text(st, &err, msg, sizeof(msg));
		cmd_error("%scannot list '%s': %s", p->force ? "" :
		    "refusing to purge: ", res.failed_prefix, msg);
		if (!p->force)
			return EXIT_STORAGE;
		listing_failed = 1;
	}
	if (args_has(a, OPT_REMOVED) && (code = spool_removed(p)) != EXIT_DONE)
		return code;
	/* --force lifts all but --max-delete, a listing failed or not. */
	if ((code = refusals(p, &res)) != EXIT_DONE)
		return code;
	if (fflush(p->spool) != 0) {
		cmd_error("cannot write the spool of keys to delete");
		return EXIT_STORAGE;
	}

	if (p->dry_run)
		print_dry_run(p);
	else {
		if (p->json != NULL) {
			json_key(p->json, "failures");
			json_array(p->json);
		}
		remove_spool(p->eng.store, p->spool, 4, &cmd_interrupted, &cbs,
		    &rr);
		if (p->json != NULL)
			json_end(p->json);
	}
	store_conn_stats(p->eng.conn, &res.requests);
	s3_stats_add(&res.requests, &rr.requests);

	code = rr.failed > 0 ? EXIT_SOME_FAILED : EXIT_DONE;
	/* Deletes the server refuses are no item's fault: credentials. */
	if (rr.refused > 0)
		code = EXIT_STORAGE;
	if (rr.status != STORE_OK) {
		store_error_text(rr.status, &rr.err, msg, sizeof(msg));
		cmd_error("stopped deleting under '%s': %s",
		    p->eng.cfg->previews, msg);
		cmd_error("%llu keys were not tried", (unsigned long long)
		    (p->count - rr.deleted - rr.failed));
		code = EXIT_STORAGE;
	}
	if (listing_failed)	/* --force deleted what it found; say so */
		code = EXIT_STORAGE;
	/* The orphans of each preset that went (deleted, not dry run). */
	for (i = 0; !p->dry_run && i < p->eng.npresets; i++)
		p->results[i][M_DELETED] = rr.status == STORE_OK ?
		    p->orphans[i] - p->results[i][M_FAILED] : 0;
	if (p->json != NULL)
		print_json(p, &rr, &res.requests);
	else if (!p->ctx->quiet && !p->dry_run)
		printf("%llu deleted, %llu failed\n",
		    (unsigned long long)rr.deleted,
		    (unsigned long long)rr.failed);
	p->metrics.originals = res.originals;
	p->metrics.reqs = res.requests;
	return cmd_exit_code(code);
}

static int
cmd_purge_exec(struct cmd_ctx *ctx, const struct cmd_args *a)
{
	struct purge	p;
	int		code;

	memset(&p, 0, sizeof(p));
	p.ctx = ctx;
	p.json = ctx->json;
	p.force = args_has(a, OPT_FORCE);
	p.dry_run = args_has(a, 'n');
	p.max_delete = PURGE_MAX_DELETE;
	cmd_metrics_start(&p.metrics, "purge");
	if (args_has(a, OPT_MAX) && cmd_parse_uint("--max-delete",
	    args_get(a, OPT_MAX), 0, 1L << 62, &p.max_delete) != 0)
		return EXIT_USAGE;
	cmd_catch_signals();
	code = run(&p, a);
	p.metrics.states = p.states;
	p.metrics.results = p.results;
	cmd_metrics_end(&p.metrics, &p.eng, code);
	if (p.spool != NULL)
		fclose(p.spool);
	free(p.orphans);
	free(p.previews);
	free(p.states);
	free(p.results);
	engine_close(&p.eng);
	return code;
}

static const struct option purge_longopts[] = {
	{ "preset", required_argument, NULL, OPT_PRESET },
	{ "prefix", required_argument, NULL, OPT_PREFIX },
	{ "removed-presets", no_argument, NULL, OPT_REMOVED },
	{ "dry-run", no_argument, NULL, 'n' },
	{ "max-delete", required_argument, NULL, OPT_MAX },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "json", no_argument, NULL, CMD_OPT_JSON },
	SCALE_LONGOPTS,
	{ NULL, 0, NULL, 0 }
};

const struct cmd_entry cmd_purge_entry = {
	.name = "purge",
	.usage = "[--preset NAME ...] [--prefix SUBPATH] [--removed-presets] "
	    "[-n | --dry-run] [--max-delete N] [--force] [--json] "
	    "[--shard I/N] [--list-ranges N] [--metrics-file PATH]",
	.summary = "delete previews whose original is gone",
	.shortopts = "n",
	.longopts = purge_longopts,
	.args_min = 0,
	.args_max = 0,
	.flags = CMD_CONFIG | CMD_JSON,
	.exec = cmd_purge_exec,
};
