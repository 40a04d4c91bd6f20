/*
 * prewctl: keep the image previews of an S3 bucket in step with its
 * originals and a set of named size presets.
 *
 * This file holds the command table, parses the global options (stopping at
 * the command name), finds and loads the configuration for the commands
 * that need it, and calls the command.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "s3/s3.h"

static const struct cmd_entry *const cmd_table[] = {
	&cmd_generate_entry,
	&cmd_plan_entry,
	&cmd_presets_entry,
	&cmd_purge_entry,
};
#define NCMDS (sizeof(cmd_table) / sizeof(cmd_table[0]))

static void
usage(FILE *f)
{
	size_t	i;

	fprintf(f, "usage: prewctl [-c FILE] [-v] [-q] COMMAND [ARGS]\n"
	    "       prewctl --help | --version\n\ncommands:\n");
	for (i = 0; i < NCMDS; i++)
		fprintf(f, "  %-10s %s\n", cmd_table[i]->name,
		    cmd_table[i]->summary);
	fprintf(f, "\noptions:\n"
	    "  -c FILE    configuration (default ./presets.ini, else "
	    "$PREWCTL_CONFIG)\n"
	    "  -v         report each preview made; -vv each request too\n"
	    "  -q         no progress or summary, errors only\n"
	    "\n'prewctl COMMAND --help' shows a command's options; "
	    "man prewctl has the rest.\n");
}

void
cmd_error(const char *fmt, ...)
{
	va_list	ap;

	fputs("prewctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
cmd_warn(const char *fmt, ...)
{
	va_list	ap;

	fputs("prewctl: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
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
	/* A full disk or closed pipe must not look like success. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cmd_error("cannot write output: %s", strerror(errno));
		return code == EXIT_DONE ? EXIT_SOME_FAILED : code;
	}
	return code;
}

void
json_string(FILE *f, const char *s)
{
	const unsigned char	*p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

/* -c FILE, else ./presets.ini when it exists, else $PREWCTL_CONFIG. */
static const char *
find_config(const char *given)
{
	const char	*env;

	if (given != NULL)
		return given;
	if (access("presets.ini", F_OK) == 0)
		return "presets.ini";
	if ((env = getenv("PREWCTL_CONFIG")) != NULL && *env != '\0')
		return env;
	return NULL;
}

static int
wants_help(int argc, char **argv)
{
	int	i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd_entry	*e = NULL;
	struct cmd_ctx		 ctx;
	const char		*config = NULL;
	char			 err[512];
	size_t			 i;
	int			 ch, rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.argv0 = argv[0];
	while ((ch = getopt_long(argc, argv, "+c:hqvV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			usage(stdout);
			return cmd_finish(EXIT_DONE);
		case 'q':
			ctx.quiet = 1;
			break;
		case 'v':
			ctx.verbose++;
			break;
		case 'V':
			printf("prewctl %s\n", PREWCTL_VERSION);
			return cmd_finish(EXIT_DONE);
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (i = 0; i < NCMDS; i++)
		if (strcmp(argv[0], cmd_table[i]->name) == 0)
			e = cmd_table[i];
	if (e == NULL) {
		cmd_error("unknown command '%s'", argv[0]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (wants_help(argc, argv)) {
		cmd_usage(e, stdout);
		return cmd_finish(EXIT_DONE);
	}
	if (e->needs_config) {
		if ((ctx.config_path = find_config(config)) == NULL) {
			cmd_error("no configuration: ./presets.ini not found, "
			    "-c FILE not given, PREWCTL_CONFIG not set");
			return EXIT_USAGE;
		}
		if (config_load(ctx.config_path, &ctx.cfg, err,
		    sizeof(err)) != 0) {
			cmd_error("%s", err);
			return EXIT_USAGE;
		}
	}
	if (s3_global_init() != 0) {
		cmd_error("cannot initialise libcurl");
		return EXIT_USAGE;
	}
	/* Each command parses its own options from a fresh getopt state. */
	optind = 0;
	rc = e->exec(&ctx, argc, argv);
	s3_global_cleanup();
	if (e->needs_config)
		config_release(&ctx.cfg);
	return cmd_finish(rc);
}
