/*
 * cmd: the command table's entry type and what every command shares.
 *
 * Each cmd/<name>.c exports exactly one struct cmd_entry, which declares
 * its options, its argument counts and whether it needs the configuration
 * or takes --json. prewctl.c holds the table; cmd_run (cmd/run.c) parses
 * the global options (before or after the command name), then the
 * command's own with one parser, checks the argument counts, loads the
 * configuration, opens the --json object and calls exec. Only this layer
 * prints messages and chooses exit codes.
 */
#ifndef PREWCTL_CMD_H
#define PREWCTL_CMD_H

#include <getopt.h>
#include <signal.h>
#include <time.h>
#include <stdint.h>
#include <stdio.h>

#include "cmd/json.h"
#include "preview/config.h"
#include "preview/engine.h"

/* Exit codes: fixed, listed in the man page's EXIT STATUS. */
enum {
	EXIT_DONE = 0,		/* all done */
	EXIT_SOME_FAILED = 1,	/* some items failed */
	EXIT_USAGE = 2,		/* usage or configuration error, or refused */
	EXIT_STORAGE = 3,	/* storage error or out of memory: cannot run */
	EXIT_TIMEUP = 75,	/* --time-limit: time is up, work is left
				   (sysexits' EX_TEMPFAIL: try again) */
	EXIT_SIGINT = 130,
	EXIT_SIGPIPE = 141,	/* standard output closed (| head) */
	EXIT_SIGTERM = 143,
};

/* One option as given: its getopt character and its argument. */
struct cmd_opt {
	int		 ch;
	const char	*arg;		/* NULL for a flag */
};

/* A command's options in the order given, and its other arguments. */
struct cmd_args {
	struct cmd_opt	*v;
	size_t		 n;
	char	       **argv;
	int		 argc;
};

int		 args_has(const struct cmd_args *, int ch);
/* The last value given for ch, or NULL. */
const char	*args_get(const struct cmd_args *, int ch);

struct cmd_ctx {
	const char	*config_path;	/* resolved path */
	struct config	 cfg;		/* loaded when the entry asks */
	int		 verbose;
	int		 quiet;
	struct json	*json;		/* --json: the root object is open */
};

#define CMD_CONFIG	0x1		/* load the configuration first */
#define CMD_JSON	0x2		/* takes --json */
/* The getopt value of --json in a command's longopts. */
#define CMD_OPT_JSON	0x101

struct cmd_entry {
	const char		*name;
	const char		*usage;		/* the arguments, after the name */
	const char		*summary;	/* one line for --help */
	const char		*shortopts;	/* getopt's, the command's own */
	const struct option	*longopts;	/* the command's own, or NULL */
	int			 args_min, args_max;	/* other arguments */
	int			 flags;
	int			 (*exec)(struct cmd_ctx *,
				    const struct cmd_args *);
};

extern const struct cmd_entry cmd_generate_entry;
extern const struct cmd_entry cmd_plan_entry;
extern const struct cmd_entry cmd_presets_entry;
extern const struct cmd_entry cmd_purge_entry;
extern const struct cmd_entry cmd_serve_entry;

/* Parse argv, run the command it names, return the exit code. */
int	 cmd_run(const struct cmd_entry *const *table, size_t n, int argc,
	    char **argv);

/*
 * "prewctl: <message>" on stderr, git's grammar. cmd_error's message is
 * also the "error" of the --json object (the first one given);
 * cmd_report is for one item among many.
 */
void	 cmd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	 cmd_report(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
/* The first cmd_error message, or NULL. */
const char *cmd_first_error(void);
/* "usage: prewctl NAME USAGE" on f. */
void	 cmd_usage(const struct cmd_entry *, FILE *);
/*
 * Flush stdout and check it: code, or 1 when output was lost (a full
 * disk); 141, quietly, when it was closed.
 */
int	 cmd_finish(int code);

/*
 * A key in text output, escaped so that one key is one line: '\\' as
 * "\\\\", tab, newline and CR as "\\t", "\\n", "\\r", any other control
 * byte and every byte that is not valid UTF-8 as "\\xHH".
 */
void	 cmd_key(FILE *, const char *key);
/*
 * After writing to stdout: 0 while it takes output, -1 once it is closed
 * (| head): the run then stops as if interrupted and exits 141 quietly.
 */
int	 cmd_out_check(void);

/* The signal that interrupted us (SIGPIPE for a closed stdout), or 0. */
extern volatile sig_atomic_t cmd_interrupted;
void	 cmd_catch_signals(void);
/* 130, 141 or 143 when interrupted, else code. */
int	 cmd_exit_code(int code);

/*
 * What the storage commands share (cmd/common.c): opening the engine
 * with the --preset names (option ch) and --prefix given, and turning an
 * engine failure into its message and exit code: 2 when the
 * configuration cannot work (a bad option, an unknown preset, no
 * credentials, no such folder), 3 when the storage failed or memory ran
 * out, 130/143 when interrupted.
 */
struct cmd_open {
	int		 preset_ch;	/* the --preset option */
	const char	*subpath;	/* --prefix */
	int		 retry_failed;
	int		 any_source;	/* purge --force */
	unsigned	 shard, nshards;	/* --shard */
	int		 ranges;	/* --list-ranges */
};
int	 cmd_engine_open(struct cmd_ctx *, const struct cmd_args *,
	    const struct cmd_open *, struct engine *);
int	 cmd_engine_fail(enum eng_status, const struct eng_error *);
/* "requests":{list, get, put, head, delete}, "retries" into the JSON. */
void	 cmd_json_requests(struct json *, const struct s3_stats *);
/* "requests: 4 list, ..." on f. */
void	 cmd_print_requests(FILE *, const struct s3_stats *);

/*
 * The options generate, plan and purge share for large buckets:
 * --shard I/N (0 <= I < N <= 10000), --list-ranges N and --metrics-file
 * PATH, from the values of their getopt characters into o and m.
 * -1 after printing an error (exit 2).
 */
#define OPT_SHARD	0x400
#define OPT_RANGES	0x401
#define OPT_METRICS	0x402
#define SCALE_LONGOPTS \
	{ "shard", required_argument, NULL, OPT_SHARD }, \
	{ "list-ranges", required_argument, NULL, OPT_RANGES }, \
	{ "metrics-file", required_argument, NULL, OPT_METRICS }
struct cmd_metrics;
int	 cmd_scale_opts(const struct cmd_args *, struct cmd_open *o,
	    struct cmd_metrics *m);
/* "30s", "90m", "6h", "1d" or plain seconds; -1 after an error. */
int	 cmd_parse_duration(const char *opt, const char *s, long *secs);

/* What --metrics-file says of a run (cmd/metrics.c). */
enum { M_GENERATED, M_FAILED, M_SKIPPED, M_DELETED, M_NRESULTS };
struct run_metrics {
	const char		 *command;
	unsigned		  shard, nshards;
	double			  start;	/* seconds since the epoch */
	double			  duration;
	int			  success;
	int			  exit_status;
	uint64_t		  originals;
	size_t			  npresets;
	const char		**names;
	const uint64_t		(*states)[PS_COUNT];	/* [npresets] */
	const uint64_t		(*results)[M_NRESULTS];	/* [npresets] */
	struct s3_stats		  reqs;
};
/* Write the file (whole or not at all); -1 after printing an error. */
int	 cmd_metrics_write(const char *path, const struct run_metrics *);

/*
 * One run of generate, plan or purge as --metrics-file reports it. The
 * command starts it, fills in what it learns, and ends it on every way
 * out, a failed start included, so monitoring sees every run.
 */
struct cmd_metrics {
	const char	 *path;		/* --metrics-file, or NULL: none */
	const char	 *command;
	unsigned	  shard, nshards;
	struct timespec	  wall, start;	/* real and monotonic clocks */
	uint64_t	  originals;
	uint64_t	(*states)[PS_COUNT];	/* per preset, or NULL */
	uint64_t	(*results)[M_NRESULTS];	/* per preset, or NULL */
	struct s3_stats	  reqs;
};
void	 cmd_metrics_start(struct cmd_metrics *, const char *command);
/* Seconds since the start. */
double	 cmd_metrics_elapsed(const struct cmd_metrics *);
/* Write the file for a run ending with code; eng may be unopened. */
void	 cmd_metrics_end(const struct cmd_metrics *, const struct engine *,
	    int code);

/* Parse a number option in min..max; -1 after printing an error. */
int	 cmd_parse_uint(const char *opt, const char *s, long min, long max,
	    long *out);
/* The CPUs this process may run on (its affinity mask), at least 1. */
long	 cmd_ncpu(void);

#endif
