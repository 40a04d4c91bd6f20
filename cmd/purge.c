/*
 * purge: delete previews whose original is gone, and with
 * --removed-presets everything under the folders (and the stamps) of
 * presets no longer configured.
 *
 * Nothing is deleted until every listing has finished: the keys go to a
 * spool first, then the refusals are checked (an empty source while
 * previews exist, a failed listing, more than --max-delete keys), and only
 * then does remove_spool delete.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "preview/remove.h"

struct purge {
	struct cmd_diff	*cd;
	FILE		*spool;
	uint64_t	 count;
	uint64_t	*orphans;	/* per preset */
	uint64_t	 removed;	/* from removed presets */
	int		 failed;	/* cannot spool */
	int		 json;
	int		 first;
};

static int
purge_item(void *arg, const struct diff_item *it)
{
	struct purge	*p = arg;
	size_t		 i;

	for (i = 0; i < p->cd->npresets; i++) {
		if (it->state[i] != PS_ORPHAN)
			continue;
		if (spool_add(p->spool, it->previews[i]->key) != 0) {
			p->failed = 1;
			return 1;
		}
		p->orphans[i]++;
		p->count++;
	}
	return 0;
}

static int
removed_obj(void *arg, const struct s3_object *o)
{
	struct purge	*p = arg;

	if (spool_add(p->spool, o->key) != 0) {
		p->failed = 1;
		return 1;
	}
	p->removed++;
	p->count++;
	return 0;
}

static void
purge_err(void *arg, const char *key, const char *why)
{
	(void)arg;
	cmd_error("cannot delete '%s': %s", key, why);
}

/* Spool every key of presets that are no longer configured. */
static int
spool_removed(struct cmd_ctx *ctx, struct purge *p)
{
	struct cmd_diff		*cd = p->cd;
	struct s3_list_params	 lp;
	struct s3_error		 err;
	struct buf		 prefix;
	enum s3_status		 st;
	size_t			 i, plen = strlen(ctx->cfg.previews);
	const char		*name;

	buf_init(&prefix, BUF_NOMAX);
	for (i = 0; i < cd->stamps.ndirs; i++) {
		if (config_preset(&ctx->cfg, cd->stamps.dirs[i]) != NULL)
			continue;
		buf_reset(&prefix);
		if (buf_addf(&prefix, "%s%s/", ctx->cfg.previews,
		    cd->stamps.dirs[i]) != 0)
			goto nomem;
		memset(&lp, 0, sizeof(lp));
		lp.prefix = prefix.data;
		st = store_list(cd->conn, &lp, removed_obj, NULL, p, &err);
		if (p->failed)
			goto nomem;
		if (st != S3_OK) {
			cmd_storage_error("refusing to purge: cannot list",
			    prefix.data, st, &err);
			buf_release(&prefix);
			return -1;
		}
	}
	for (i = 0; i < cd->stamps.nstamp_keys; i++) {
		name = cd->stamps.stamp_keys[i] + plen + strlen(STAMP_NAME);
		if (config_preset(&ctx->cfg, name) != NULL)
			continue;
		if (spool_add(p->spool, cd->stamps.stamp_keys[i]) != 0)
			goto nomem;
		p->removed++;
		p->count++;
	}
	buf_release(&prefix);
	return 0;
nomem:
	cmd_error("cannot write the spool of keys to delete");
	buf_release(&prefix);
	return -1;
}

static int
cmd_purge_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "preset", required_argument, NULL, 'p' },
		{ "removed-presets", no_argument, NULL, 'R' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "max-delete", required_argument, NULL, 'M' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 }
	};
	struct cmd_diff		 cd;
	struct diff_result	 res;
	struct remove_result	 rr;
	struct s3_error		 err;
	struct purge		 p;
	struct buf		 key;
	enum s3_status		 st;
	char			**names;
	size_t			 nnames = 0, i;
	long			 max_delete = -1;
	int			 ch, code, removed = 0, dry_run = 0, force = 0;
	int			 listing_failed = 0;

	memset(&p, 0, sizeof(p));
	memset(&rr, 0, sizeof(rr));
	if ((names = calloc((size_t)argc, sizeof(*names))) == NULL)
		return EXIT_USAGE;
	while ((ch = getopt_long(argc, argv, "n", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			names[nnames++] = optarg;
			break;
		case 'R':
			removed = 1;
			break;
		case 'n':
			dry_run = 1;
			break;
		case 'M':
			if (cmd_parse_uint("--max-delete", optarg, 1L << 62,
			    &max_delete) != 0) {
				free(names);
				return EXIT_USAGE;
			}
			break;
		case 'f':
			force = 1;
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
	if (cmd_diff_prepare(ctx, names, nnames, "", &cd, &code) != 0) {
		free(names);
		/* A failed listing is a refusal: nothing was deleted. */
		return cmd_exit_code(code == EXIT_STORAGE ? EXIT_USAGE : code);
	}
	free(names);
	p.cd = &cd;
	buf_init(&key, BUF_NOMAX);
	if ((p.orphans = calloc(cd.npresets + 1, sizeof(*p.orphans))) == NULL ||
	    (p.spool = tmpfile()) == NULL) {
		cmd_error("cannot make the spool of keys to delete");
		code = EXIT_USAGE;
		goto out;
	}

	st = diff_run(&cd.params, purge_item, &p, &res, &err);
	if (p.failed) {
		cmd_error("cannot write the spool of keys to delete");
		code = EXIT_USAGE;
		goto out;
	}
	if (cmd_interrupted) {
		code = cmd_exit_code(EXIT_DONE);
		goto out;
	}
	if (st != S3_OK) {
		cmd_storage_error(force ? "cannot list" :
		    "refusing to purge: cannot list", res.failed_prefix, st,
		    &err);
		listing_failed = 1;
		if (!force) {
			code = EXIT_USAGE;
			goto out;
		}
	}
	if (res.originals == 0 && res.previews > 0 && !force &&
	    !listing_failed) {
		cmd_error("refusing to purge: no originals under '%s' but %llu "
		    "previews exist (wrong source? --force overrides)",
		    ctx->cfg.source, (unsigned long long)res.previews);
		code = EXIT_USAGE;
		goto out;
	}
	if (removed && spool_removed(ctx, &p) != 0) {
		code = EXIT_USAGE;
		goto out;
	}
	if (max_delete >= 0 && p.count > (uint64_t)max_delete) {
		cmd_error("refusing to purge: %llu keys would be deleted, more "
		    "than --max-delete %ld", (unsigned long long)p.count,
		    max_delete);
		code = EXIT_USAGE;
		goto out;
	}
	if (fflush(p.spool) != 0) {
		cmd_error("cannot write the spool of keys to delete");
		code = EXIT_USAGE;
		goto out;
	}

	if (dry_run) {
		rewind(p.spool);
		if (p.json)
			printf("{\"dry_run\":true,\"keys\":[");
		for (i = 0; spool_next(p.spool, &key) > 0; i++) {
			if (p.json) {
				printf("%s", i > 0 ? "," : "");
				json_string(stdout, key.data);
			} else
				printf("%s\n", key.data);
		}
	} else
		remove_spool(cd.store, p.spool, 4, &cmd_interrupted, purge_err,
		    NULL, &rr);
	store_conn_stats(cd.conn, &res.requests);
	s3_stats_add(&res.requests, &rr.requests);

	code = rr.failed > 0 ? EXIT_SOME_FAILED : EXIT_DONE;
	if (rr.status != S3_OK) {
		cmd_storage_error("stopped deleting", ctx->cfg.previews,
		    rr.status, &rr.err);
		cmd_error("%llu keys were not tried",
		    (unsigned long long)(p.count - rr.deleted - rr.failed));
		code = cmd_storage_exit(rr.status);
	}
	if (listing_failed)	/* --force deleted what it found; say so */
		code = EXIT_STORAGE;
	code = cmd_exit_code(code);
	if (p.json) {
		if (!dry_run)
			printf("{\"dry_run\":false");
		else
			printf("]");
		printf(",\"exit\":%d,\"would_delete\":%llu,\"deleted\":%llu,"
		    "\"failed\":%llu,\"removed_presets_keys\":%llu,"
		    "\"orphans\":{", code, (unsigned long long)p.count,
		    (unsigned long long)rr.deleted,
		    (unsigned long long)rr.failed,
		    (unsigned long long)p.removed);
		for (i = 0; i < cd.npresets; i++) {
			printf("%s", i > 0 ? "," : "");
			json_string(stdout, cd.presets[i]->name);
			printf(":%llu", (unsigned long long)p.orphans[i]);
		}
		printf("},");
		json_requests(stdout, &res.requests);
		printf("}\n");
	} else if (!ctx->quiet) {
		if (dry_run)
			fprintf(stderr, "%llu keys would be deleted (dry run)\n",
			    (unsigned long long)p.count);
		else
			printf("%llu deleted, %llu failed\n",
			    (unsigned long long)rr.deleted,
			    (unsigned long long)rr.failed);
	}
out:
	if (p.spool != NULL)
		fclose(p.spool);
	free(p.orphans);
	buf_release(&key);
	cmd_diff_release(&cd);
	return code;
usage:
	cmd_usage(&cmd_purge_entry, stderr);
	free(names);
	return EXIT_USAGE;
}

const struct cmd_entry cmd_purge_entry = {
	.name = "purge",
	.usage = "[--preset NAME ...] [--removed-presets] [-n | --dry-run] "
	    "[--max-delete N] [--force] [--json]",
	.summary = "delete previews whose original is gone",
	.needs_config = 1,
	.exec = cmd_purge_exec,
};
