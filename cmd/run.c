/*
 * run: from argv to a command's exit code.
 *
 * One parser for every command: the global options (-c/--config,
 * -v/--verbose, -q/--quiet, -h/--help) are taken before the command name
 * and after it, the command's own from its entry, and every other word is
 * an argument, counted against the entry's limits. With --json the root
 * object is opened before anything can fail and closed here whatever
 * happened, with "exit" and "error" last: a script always gets one object.
 */
#include <sys/resource.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "preview/render.h"
#include "s3/s3.h"

/* Global options, as long options; short ones are in GLOBAL_SHORT. */
#define GLOBAL_SHORT	"c:hqv"
#define OPT_VERSION	0x100

static const struct option global_long[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ NULL, 0, NULL, 0 }
};

int
args_has(const struct cmd_args *a, int ch)
{
	size_t	i;

	for (i = 0; i < a->n; i++)
		if (a->v[i].ch == ch)
			return 1;
	return 0;
}

const char *
args_get(const struct cmd_args *a, int ch)
{
	const char	*v = NULL;
	size_t		 i;

	for (i = 0; i < a->n; i++)
		if (a->v[i].ch == ch)
			v = a->v[i].arg;
	return v;
}

static void
usage(const struct cmd_entry *const *table, size_t n, FILE *f)
{
	size_t	i;

	fprintf(f, "usage: prewctl [-c FILE] [-v] [-q] COMMAND [ARGS]\n"
	    "       prewctl --help | --version\n\ncommands:\n");
	for (i = 0; i < n; i++)
		fprintf(f, "  %-10s %s\n", table[i]->name, table[i]->summary);
	fprintf(f, "\noptions (before or after the command):\n"
	    "  -c, --config FILE  configuration (default: $PREWCTL_CONFIG, "
	    "else ./presets.ini)\n"
	    "  -v, --verbose      report each preview made; -vv each request "
	    "too\n"
	    "  -q, --quiet        no progress or summary, errors only\n"
	    "\n'prewctl COMMAND --help' shows a command's options; "
	    "man prewctl has the rest.\n");
}

/* -c FILE, else $PREWCTL_CONFIG, else ./presets.ini when it exists. */
static const char *
find_config(const char *given)
{
	const char	*env;

	if (given != NULL)
		return given;
	if ((env = getenv("PREWCTL_CONFIG")) != NULL && *env != '\0')
		return env;
	if (access("presets.ini", F_OK) == 0)
		return "presets.ini";
	return NULL;
}

/* The name of the option getopt stopped at, for a message. */
static const char *
bad_option(char **argv, int ch, char *buf, size_t len)
{
	const char	*word = argv[optind - 1];

	if (ch != 0 && ch != '?' && ch != ':')
		(void)snprintf(buf, len, "-%c", ch);
	else if (optopt != 0 && strncmp(word, "--", 2) != 0)
		(void)snprintf(buf, len, "-%c", optopt);
	else
		(void)snprintf(buf, len, "%s", word);
	return buf;
}

struct parse {
	const char	*config;
	int		 help;
	int		 json;
};

/* A global option; 0 when ch was one. */
static int
global(struct cmd_ctx *ctx, struct parse *ps, int ch, const char *arg)
{
	switch (ch) {
	case 'c':
		ps->config = arg;
		return 0;
	case 'h':
		ps->help = 1;
		return 0;
	case 'q':
		ctx->quiet = 1;
		return 0;
	case 'v':
		ctx->verbose++;
		return 0;
	}
	return -1;
}

/*
 * The command's options and the global ones after the name, into a. 0, or
 * -1 after a message.
 */
static int
parse_command(const struct cmd_entry *e, struct cmd_ctx *ctx,
    struct parse *ps, int argc, char **argv, struct cmd_args *a)
{
	struct option	 longs[64];
	char		 shorts[64], name[64];
	size_t		 n = 0, i;
	int		 ch, idx;

	for (i = 0; e->longopts != NULL && e->longopts[i].name != NULL &&
	    n < 40; i++)
		longs[n++] = e->longopts[i];
	for (i = 0; global_long[i].name != NULL; i++)
		longs[n++] = global_long[i];
	longs[n] = (struct option){ NULL, 0, NULL, 0 };
	(void)snprintf(shorts, sizeof(shorts), ":%s%s", GLOBAL_SHORT,
	    e->shortopts != NULL ? e->shortopts : "");

	if ((a->v = calloc((size_t)argc + 1, sizeof(*a->v))) == NULL) {
		cmd_error("out of memory");
		return -1;
	}
	optind = 0;	/* GNU: a fresh start, permuting as usual */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, longs, &idx)) != -1) {
		if (ch == '?' || ch == ':') {
			cmd_error("%s option '%s' for %s", ch == ':' ?
			    "missing argument to" : "unknown",
			    bad_option(argv, ch == ':' ? 0 : ch, name,
			    sizeof(name)), e->name);
			return -1;
		}
		if (global(ctx, ps, ch, optarg) == 0)
			continue;
		if (ch == CMD_OPT_JSON)
			ps->json = 1;
		a->v[a->n++] = (struct cmd_opt){ ch, optarg };
	}
	a->argv = argv + optind;
	a->argc = argc - optind;
	return 0;
}

/* Close the --json object: "exit" and "error" last, whatever was open. */
static void
json_finish(struct json *j, int code)
{
	const char	*err = cmd_first_error();

	while (j->depth > 1)
		json_end(j);
	if (j->depth == 0)
		json_object(j);
	json_key(j, "exit");
	json_int(j, code);
	json_kstr(j, "error", err);
	json_close_all(j);
	fputc('\n', j->f);
}

/*
 * Listings in ranges and the pool's readers and writers each hold a
 * connection: take the hard limit of open files, not systemd's soft 1024.
 */
static void
raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
cmd_run(const struct cmd_entry *const *table, size_t ntable, int argc,
    char **argv)
{
	static const struct option longs[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd_entry	*e = NULL;
	struct cmd_ctx		 ctx;
	struct cmd_args		 a;
	struct parse		 ps;
	struct json		 json;
	char			 err[600], name[64];
	size_t			 i;
	int			 ch, code = EXIT_USAGE, loaded = 0;

	memset(&ctx, 0, sizeof(ctx));
	memset(&a, 0, sizeof(a));
	memset(&ps, 0, sizeof(ps));
	raise_nofile();
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:" GLOBAL_SHORT, longs,
	    NULL)) != -1) {
		if (ch == OPT_VERSION) {
			printf("prewctl %s\n", PREWCTL_VERSION);
			return cmd_finish(EXIT_DONE);
		}
		if (global(&ctx, &ps, ch, optarg) == 0)
			continue;
		cmd_error("%s option '%s'", ch == ':' ? "missing argument to" :
		    "unknown", bad_option(argv, 0, name, sizeof(name)));
		usage(table, ntable, stderr);
		return EXIT_USAGE;
	}
	if (optind == argc) {
		if (ps.help) {
			usage(table, ntable, stdout);
			return cmd_finish(EXIT_DONE);
		}
		usage(table, ntable, stderr);
		return EXIT_USAGE;
	}
	for (i = 0; i < ntable; i++)
		if (strcmp(argv[optind], table[i]->name) == 0)
			e = table[i];
	if (e == NULL) {
		cmd_error("unknown command '%s'", argv[optind]);
		usage(table, ntable, stderr);
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;

	/*
	 * --help wins over everything else on the line; --json is known
	 * before anything can fail, so that every failure is JSON.
	 */
	for (i = 1; (int)i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			ps.help = 1;
		if ((e->flags & CMD_JSON) && strcmp(argv[i], "--json") == 0)
			ps.json = 1;
	}
	if (ps.help) {
		cmd_usage(e, stdout);
		return cmd_finish(EXIT_DONE);
	}
	if (ps.json) {
		json_init(&json, stdout);
		json_object(&json);
		ctx.json = &json;
	}
	if (parse_command(e, &ctx, &ps, argc, argv, &a) != 0) {
		if (!ps.json)
			cmd_usage(e, stderr);
		goto out;
	}
	if (a.argc < e->args_min || a.argc > e->args_max) {
		cmd_error("%s takes %s", e->name, e->args_max == 0 ?
		    "no arguments" : "other arguments");
		if (!ps.json)
			cmd_usage(e, stderr);
		goto out;
	}
	if (e->flags & CMD_CONFIG) {
		if ((ctx.config_path = find_config(ps.config)) == NULL) {
			cmd_error("no configuration: -c FILE not given, "
			    "PREWCTL_CONFIG not set, ./presets.ini not found");
			goto out;
		}
		if (config_load(ctx.config_path, &ctx.cfg, err,
		    sizeof(err)) != 0) {
			cmd_error("%s", err);
			goto out;
		}
		loaded = 1;
	}
	if (s3_global_init() != 0) {
		cmd_error("cannot initialise libcurl");
		code = EXIT_STORAGE;
		goto out;
	}
	code = e->exec(&ctx, &a);
	s3_global_cleanup();
	render_global_shutdown();
out:
	code = cmd_exit_code(code);
	if (ctx.json != NULL)
		json_finish(ctx.json, code);
	if (loaded)
		config_release(&ctx.cfg);
	free(a.v);
	return cmd_finish(code);
}
