/*
 * cmd: the command table's entry type and what every command shares.
 *
 * Each cmd/<name>.c exports exactly one struct cmd_entry; prewctl.c holds
 * the table, parses the global options, loads the configuration when the
 * command needs it, checks the argument counts and calls exec. Only this
 * layer prints messages and chooses exit codes.
 */
#ifndef PREWCTL_CMD_H
#define PREWCTL_CMD_H

#include <signal.h>
#include <stdio.h>

#include "preview/config.h"
#include "preview/diff.h"
#include "preview/stamp.h"

/* Exit codes: fixed, listed in the man page's EXIT STATUS. */
enum {
	EXIT_DONE = 0,		/* all done */
	EXIT_SOME_FAILED = 1,	/* some items failed */
	EXIT_USAGE = 2,		/* usage or configuration error, or refused */
	EXIT_STORAGE = 3,	/* cannot list, auth refused, unreachable */
	EXIT_SIGINT = 130,
	EXIT_SIGTERM = 143,
};

struct cmd_ctx {
	const char	*argv0;
	const char	*config_path;	/* resolved path */
	struct config	 cfg;		/* loaded when the entry asks */
	int		 verbose;
	int		 quiet;
};

struct cmd_entry {
	const char	*name;
	const char	*usage;		/* the arguments, after the name */
	const char	*summary;	/* one line for --help */
	int		 needs_config;
	int		 (*exec)(struct cmd_ctx *, int argc, char **argv);
};

extern const struct cmd_entry cmd_generate_entry;
extern const struct cmd_entry cmd_plan_entry;
extern const struct cmd_entry cmd_presets_entry;
extern const struct cmd_entry cmd_purge_entry;

/* prewctl: <message>, on stderr, git's grammar. */
void	 cmd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	 cmd_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "usage: prewctl NAME USAGE" on stderr (or stdout for --help). */
void	 cmd_usage(const struct cmd_entry *, FILE *);
/* Flush stdout and check it: code, or 1 when the output was lost. */
int	 cmd_finish(int code);
/* Write s as a JSON string, quotes included. */
void	 json_string(FILE *, const char *s);

/* Shared by the commands that touch storage (cmd/common.c). */

/* The signal that interrupted us, or 0. A second signal exits at once. */
extern volatile sig_atomic_t cmd_interrupted;
void	 cmd_catch_signals(void);
/* 130 or 143 when interrupted, else code. */
int	 cmd_exit_code(int code);

/*
 * The presets named by --preset (all when n is 0), in file order, into a
 * new array. Returns 0, or -1 after printing an error (exit 2).
 */
int	 cmd_select_presets(const struct config *, char **names, size_t n,
	    const struct preset ***out, size_t *nout);
/* Open the configured storage; NULL after printing an error. */
struct store *cmd_open_store(struct cmd_ctx *, int *exit_code);
/* Print "prewctl: what 'subject': reason" for a storage failure. */
void	 cmd_storage_error(const char *what, const char *subject,
	    enum s3_status, const struct s3_error *);
/* Exit code for a storage status: 2 for config/credentials, else 3. */
int	 cmd_storage_exit(enum s3_status);
void	 json_requests(FILE *, const struct s3_stats *);
/*
 * What plan, generate and purge share: the chosen presets, the store, one
 * connection for stamps and odd requests, the stamps read, and the diff
 * parameters built from them.
 */
struct cmd_diff {
	struct store		 *store;
	struct store_conn	 *conn;
	const struct preset	**presets;
	size_t			  npresets;
	struct stamps		  stamps;
	struct diff_preset	 *dp;
	struct diff_params	  params;
};

/* Returns 0, or -1 after printing an error with *exit_code set. */
int	 cmd_diff_prepare(struct cmd_ctx *, char **names, size_t nnames,
	    const char *subpath, struct cmd_diff *, int *exit_code);
void	 cmd_diff_release(struct cmd_diff *);
/* Check --prefix: relative, no "..", no leading '/'. */
int	 cmd_check_subpath(const char *);

/* Parse a positive integer option; -1 after printing an error. */
int	 cmd_parse_uint(const char *opt, const char *s, long max, long *out);

#endif
