/*
 * The command line: usage text against the man page, exit codes, and
 * configuration errors as the user sees them; global options anywhere,
 * the one JSON object of --json whatever happens, keys escaped in text
 * and JSON, a closed stdout, -j and its default, which configuration is
 * read. Most of it runs on a folder backend (a temporary folder per
 * test); what needs S3 (a wrong secret, a refused listing through
 * tests/s3-fault-proxy) uses the test server under a prefix of its own.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"

static const char *const commands[] = { "generate", "plan", "presets",
    "purge" };

/* The SYNOPSIS line of cmd from the man page, as groff renders it. */
static int
man_synopsis(const char *cmd, char *dst, size_t len)
{
	FILE	*f;
	char	 line[1024], want[64];
	int	 in = 0, found = 0;

	f = popen("groff -mandoc -Tascii -P-c -P-b -P-u -rLL=500n "
	    "man/prewctl.1 2>/dev/null", "r");
	cr_assert(f != NULL);
	snprintf(want, sizeof(want), "prewctl %s", cmd);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line;

		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, "SYNOPSIS") == 0)
			in = 1;
		else if (in && line[0] != ' ' && line[0] != '\0')
			in = 0;
		while (*p == ' ')
			p++;
		if (in && strncmp(p, want, strlen(want)) == 0 &&
		    (p[strlen(want)] == ' ' || p[strlen(want)] == '\0')) {
			snprintf(dst, len, "%s", p);
			found = 1;
		}
	}
	pclose(f);
	return found;
}

Test(cli, usage_matches_man_synopsis)
{
	struct th_run	r;
	char		man[1024];
	size_t		i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const char *args[] = { commands[i], "--help", NULL };

		th_prewctl(&r, args, NULL);
		cr_assert_eq(r.status, 0, "%s --help exits %d", commands[i],
		    r.status);
		cr_assert(man_synopsis(commands[i], man, sizeof(man)),
		    "no SYNOPSIS line for %s in man/prewctl.1", commands[i]);
		r.out.data[strcspn(r.out.data, "\n")] = '\0';
		cr_assert(strncmp(r.out.data, "usage: ", 7) == 0);
		cr_assert_str_eq(r.out.data + 7, man,
		    "--help and the man page disagree for %s", commands[i]);
		th_run_release(&r);
	}
}

Test(cli, help_lists_every_command)
{
	const char	*args[] = { "--help", NULL };
	struct th_run	 r;
	size_t		 i;

	th_prewctl(&r, args, NULL);
	cr_assert_eq(r.status, 0);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		cr_assert(strstr(r.out.data, commands[i]) != NULL,
		    "--help does not list %s", commands[i]);
	th_run_release(&r);
}

Test(cli, version)
{
	const char	*args[] = { "--version", NULL };
	struct th_run	 r;

	th_prewctl(&r, args, NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strncmp(r.out.data, "prewctl ", 8) == 0);
	th_run_release(&r);
}

Test(cli, unknown_command_is_usage_error)
{
	const char	*args[] = { "frobnicate", NULL };
	struct th_run	 r;

	th_prewctl(&r, args, NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err.data, "unknown command 'frobnicate'") != NULL);
	th_run_release(&r);
}

Test(cli, unknown_option_is_usage_error)
{
	char		*cfg = th_write_temp("[storage]\ndirectory = /tmp\n"
			    "source = a/\npreviews = b/\n[preset s]\n"
			    "width = 10\n");
	const char	*args[] = { "-c", cfg, "plan", "--bogus", NULL };
	struct th_run	 r;

	th_prewctl(&r, args, NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err.data, "usage: prewctl plan") != NULL);
	th_run_release(&r);
	unlink(cfg);
	free(cfg);
}

Test(cli, bad_config_names_file_line_and_key)
{
	char		*cfg = th_write_temp("[storage]\ndirectory = /tmp\n"
			    "source = a/\npreviews = b/\n\n[preset small]\n"
			    "widht = 320\n");
	const char	*args[] = { "-c", cfg, "presets", NULL };
	struct th_run	 r;
	char		 want[512];

	th_prewctl(&r, args, NULL);
	cr_assert_eq(r.status, 2);
	snprintf(want, sizeof(want),
	    "%s:7: unknown key 'widht' in [preset small]", cfg);
	cr_assert(strstr(r.err.data, want) != NULL, "stderr: %s",
	    r.err.data);
	th_run_release(&r);
	unlink(cfg);
	free(cfg);
}

Test(cli, missing_config_is_usage_error)
{
	const char	*args[] = { "-c", "/nonexistent/presets.ini", "plan",
			    NULL };
	struct th_run	 r;

	th_prewctl(&r, args, NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err.data, "/nonexistent/presets.ini") != NULL);
	th_run_release(&r);
}

Test(cli, prewctl_config_env_is_used)
{
	char		*cfg = th_write_temp("[storage]\ndirectory = /tmp\n"
			    "source = a/\npreviews = b/\n[preset envpick]\n"
			    "width = 10\n");
	char		 env[512];
	const char	*extra[] = { env, NULL };
	const char	*args[] = { "presets", NULL };
	struct th_run	 r;

	/* Tests run from the repo root, which has a presets.ini: go away. */
	cr_assert(chdir("/tmp") == 0);
	snprintf(env, sizeof(env), "PREWCTL_CONFIG=%s", cfg);
	th_prewctl(&r, args, extra);
	cr_assert_eq(r.status, 0, "stderr: %s", r.err.data);
	cr_assert(strstr(r.out.data, "envpick") != NULL);
	th_run_release(&r);
	unlink(cfg);
	free(cfg);
}

Test(cli, every_exit_code_is_in_the_man_page)
{
	static const char *const codes[] = { "0", "1", "2", "3", "130",
	    "143" };
	FILE	*f;
	char	 text[65536];
	size_t	 n, i;
	char	 want[32];

	f = popen("groff -mandoc -Tascii -P-c -P-b -P-u -rLL=500n "
	    "man/prewctl.1 2>/dev/null | sed -n '/^EXIT STATUS/,/^EXAMPLES/p'",
	    "r");
	cr_assert(f != NULL);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	pclose(f);
	/* Each code is in a tag: "     0       All done." or "     130, 143". */
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char	*line;
		char		*tok, *save;
		int		 found = 0;

		for (line = text; line != NULL && !found;
		    line = strchr(line, '\n') != NULL ?
		    strchr(line, '\n') + 1 : NULL) {
			if (strncmp(line, "     ", 5) != 0 || line[5] == ' ')
				continue;
			snprintf(want, sizeof(want), "%s", line + 5);
			want[strcspn(want, "\n")] = '\0';
			if (strstr(want, "  ") != NULL)
				*strstr(want, "  ") = '\0';
			for (tok = strtok_r(want, ", ", &save); tok != NULL;
			    tok = strtok_r(NULL, ", ", &save))
				found |= strcmp(tok, codes[i]) == 0;
		}
		cr_assert(found, "EXIT STATUS does not list %s", codes[i]);
	}
}

/* ---- a folder backend for the tests below -------------------------------- */

#define TINY_JPEG	"tests/data/render/srgb-hp-tiny.jpg"	/* 48x32 */
#define NOT_AN_IMAGE	"tests/data/render/text-named.jpg"
#define FPROXY		"tests/s3-fault-proxy"
#define MAX_CFGS	8

/* What a test made; cli_fini undoes it. */
static struct {
	char	 root[64];		/* the folder "bucket" */
	char	 cwd[64];		/* a working directory of our own */
	char	*cfgs[MAX_CFGS];
	int	 ncfgs;
	pid_t	 proxy;
	int	 sock;			/* a bound port nobody listens on */
	struct s3_client *c;
	char	 prefix[256];
} C = { .sock = -1 };

static void
cli_fini(void)
{
	int	i;

	th_stop_server(&C.proxy);
	if (C.sock >= 0)
		close(C.sock);
	if (C.c != NULL) {
		if (C.prefix[0] != '\0')
			th_delete_prefix(C.c, C.prefix);
		s3_client_free(C.c);
	}
	if (C.root[0] != '\0')
		th_rmtree(C.root);
	if (C.cwd[0] != '\0')
		th_rmtree(C.cwd);
	for (i = 0; i < C.ncfgs; i++) {
		unlink(C.cfgs[i]);
		free(C.cfgs[i]);
	}
}

/* A fresh folder with an empty photo/ in it. */
static const char *
folder_new(void)
{
	char	path[128];

	snprintf(C.root, sizeof(C.root), "/tmp/prewctl-cli-XXXXXX");
	cr_assert_not_null(mkdtemp(C.root));
	snprintf(path, sizeof(path), "%s/photo", C.root);
	cr_assert_eq(mkdir(path, 0755), 0);
	return C.root;
}

/* root/<area>/<rel> with the bytes of src (NULL: empty), folders made. */
static void
folder_put(const char *area, const char *rel, const char *src)
{
	struct buf	 b;
	char		 path[1024], *s;
	FILE		*f;

	cr_assert((size_t)snprintf(path, sizeof(path), "%s/%s/%s", C.root,
	    area, rel) < sizeof(path));
	for (s = strchr(path + strlen(C.root) + 1, '/'); s != NULL;
	    s = strchr(s + 1, '/')) {
		*s = '\0';
		cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "%s: %s",
		    path, strerror(errno));
		*s = '/';
	}
	cr_assert_not_null(f = fopen(path, "wb"), "%s: %s", path,
	    strerror(errno));
	if (src != NULL) {
		buf_init(&b, BUF_NOMAX);
		th_read_file(src, &b);
		cr_assert_eq(fwrite(b.data, 1, b.len, f), b.len);
		buf_release(&b);
	}
	cr_assert_eq(fclose(f), 0);
}

static char *
keep_cfg(char *path)
{
	cr_assert_lt(C.ncfgs, MAX_CFGS);
	C.cfgs[C.ncfgs++] = path;
	return path;
}

/* A configuration of the folder C.root with these presets. */
static char *
folder_cfg(const char *presets)
{
	char	text[2048];

	cr_assert((size_t)snprintf(text, sizeof(text), "[storage]\n"
	    "directory = %s\nsource = photo/\npreviews = prew/\n%s", C.root,
	    presets) < sizeof(text));
	return keep_cfg(th_write_temp(text));
}

/* Every line of stderr is a message: "prewctl: ...". */
static void
all_messages(const struct th_run *r, const char *what)
{
	const char	*p;

	for (p = r->err.data; p != NULL && *p != '\0';
	    p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1 : NULL)
		cr_assert(strncmp(p, "prewctl: ", 9) == 0, "%s: a line of "
		    "stderr that is not a message: '%.*s'\nstderr: %.2000s",
		    what, (int)strcspn(p, "\n"), p, r->err.data);
}

/* How many times needle is in hay. */
static int
count_of(const char *hay, const char *needle)
{
	const char	*p;
	int		 n = 0;

	for (p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* ---- 1. global options anywhere, long forms, messages -------------------- */

#define CFG	"\001cfg"	/* replaced by the test's configuration */

/* argv vectors after which "plan"/"presets" must read CFG. */
static const char *const after_cmd[][6] = {
	{ "plan", "-c", CFG, NULL },
	{ "plan", "--config", CFG, NULL },
	{ "plan", "--keys", "--config", CFG, NULL },
	{ "plan", "-v", "-c", CFG, "--keys", NULL },
	{ "--config", CFG, "plan", NULL },
	{ "-c", CFG, "plan", NULL },
	{ "presets", "--config", CFG, NULL },
	{ "presets", "-c", CFG, NULL },
	{ "generate", "-n", "--config", CFG, NULL },
};

/*
 * Run args with CFG replaced by cfg (and "--config=CFG" joined). The
 * working directory is the repository's, which has a presets.ini: were
 * the option ignored, that one would be read.
 */
static void
run_with_cfg(struct th_run *r, const char *const *args, const char *cfg)
{
	const char	*argv[16];
	size_t		 i;

	for (i = 0; args[i] != NULL; i++) {
		cr_assert_lt(i, 15);
		argv[i] = strcmp(args[i], CFG) == 0 ? cfg : args[i];
	}
	argv[i] = NULL;
	th_prewctl(r, argv, NULL);
}

Test(cli, global_options_after_the_command, .fini = cli_fini)
{
	struct th_run	 r;
	char		*cfg;
	size_t		 i;

	folder_new();
	folder_put("photo", "a.jpg", TINY_JPEG);
	cfg = folder_cfg("[preset afterpick]\nwidth = 16\n");
	for (i = 0; i < sizeof(after_cmd) / sizeof(after_cmd[0]); i++) {
		run_with_cfg(&r, after_cmd[i], cfg);
		th_expect_exit(&r, 0, after_cmd[i][0]);
		cr_assert_not_null(strstr(r.out.data, "afterpick"), "case %zu "
		    "(%s): not our configuration: %.500s", i, after_cmd[i][0],
		    r.out.data);
		all_messages(&r, after_cmd[i][0]);
		th_run_release(&r);
	}
}

/* -q and --quiet, before and after: errors only, each a message. */
static const char *const quiet_args[][8] = {
	{ "-q", "-c", CFG, "generate", "--force", "--retry-failed", NULL },
	{ "-c", CFG, "generate", "--force", "--retry-failed", "-q", NULL },
	{ "generate", "--quiet", "--force", "--retry-failed", "-c", CFG,
	    NULL },
	{ "--quiet", "generate", "--force", "--retry-failed", "--config",
	    CFG, NULL },
};

Test(cli, quiet_before_and_after, .fini = cli_fini)
{
	static const char *const loud[] = { "-c", CFG, "generate", "--force",
	    "--retry-failed", NULL };
	struct th_run	 r;
	char		*cfg;
	size_t		 i;

	folder_new();
	folder_put("photo", "a.jpg", TINY_JPEG);
	folder_put("photo", "b-broken.jpg", NOT_AN_IMAGE);
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	/* Without -q: a summary on stdout, so -q has something to hide. */
	run_with_cfg(&r, loud, cfg);
	th_expect_exit(&r, 1, "generate over a broken original");
	cr_assert_gt(r.out.len, 0, "no summary without -q");
	th_run_release(&r);
	for (i = 0; i < sizeof(quiet_args) / sizeof(quiet_args[0]); i++) {
		run_with_cfg(&r, quiet_args[i], cfg);
		th_expect_exit(&r, 1, "generate -q over a broken original");
		cr_assert_eq(r.out.len, 0, "case %zu: -q printed on stdout: "
		    "%.500s", i, r.out.data);
		cr_assert_eq(count_of(r.err.data, "photo/b-broken.jpg"), 1,
		    "case %zu: the failure is not reported once: %.1000s", i,
		    r.err.data);
		cr_assert_null(strstr(r.err.data, "photo/a.jpg"), "case %zu: "
		    "-q reported a success: %.1000s", i, r.err.data);
		all_messages(&r, "generate -q");
		th_run_release(&r);
	}
}

/* -v and --verbose, before and after: each preview made is reported. */
static const char *const verbose_args[][6] = {
	{ "-v", "-c", CFG, "generate", "--force", NULL },
	{ "-c", CFG, "generate", "--force", "--verbose", NULL },
	{ "generate", "-v", "--force", "-c", CFG, NULL },
	{ "--verbose", "generate", "--force", "--config", CFG, NULL },
};

Test(cli, verbose_before_and_after, .fini = cli_fini)
{
	static const char *const plain[] = { "-c", CFG, "generate", "--force",
	    NULL };
	struct th_run	 r;
	char		*cfg;
	size_t		 i;

	folder_new();
	folder_put("photo", "a.jpg", TINY_JPEG);
	folder_put("photo", "d/b.jpg", TINY_JPEG);
	cfg = folder_cfg("[preset s]\nwidth = 16\n[preset m]\nwidth = 20\n");
	run_with_cfg(&r, plain, cfg);
	th_expect_exit(&r, 0, "generate");
	cr_assert_null(strstr(r.err.data, "prew/s/a.jpg"), "reported "
	    "without -v: %.1000s", r.err.data);
	th_run_release(&r);
	for (i = 0; i < sizeof(verbose_args) / sizeof(verbose_args[0]); i++) {
		run_with_cfg(&r, verbose_args[i], cfg);
		th_expect_exit(&r, 0, "generate -v");
		cr_assert_eq(count_of(r.err.data, "'prew/s/a.jpg'"), 1,
		    "case %zu: %.1000s", i, r.err.data);
		cr_assert_eq(count_of(r.err.data, "'prew/m/a.jpg'"), 1,
		    "case %zu: %.1000s", i, r.err.data);
		cr_assert_eq(count_of(r.err.data, "'prew/s/d/b.jpg'"), 1,
		    "case %zu: %.1000s", i, r.err.data);
		cr_assert_eq(count_of(r.err.data, "'prew/m/d/b.jpg'"), 1,
		    "case %zu: %.1000s", i, r.err.data);
		all_messages(&r, "generate -v");
		th_run_release(&r);
	}
}

/*
 * Keys with a newline, a tab and bytes that are not UTF-8 in messages:
 * each preview made (-v) and a failure. Still one message per line, each
 * starting with "prewctl:", the key escaped as OUTPUT says of keys in
 * text output.
 */
Test(cli, messages_escape_keys, .fini = cli_fini)
{
	static const char *const args[] = { "-v", "-c", CFG, "generate",
	    NULL };
	struct th_run	 r;
	char		*cfg;

	folder_new();
	folder_put("photo", "n\nl\tt.jpg", TINY_JPEG);
	folder_put("photo", "b\xff\xfe.jpg", TINY_JPEG);
	folder_put("photo", "x\ny\xff.jpg", NOT_AN_IMAGE);
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	run_with_cfg(&r, args, cfg);
	th_expect_exit(&r, 1, "generate -v");
	all_messages(&r, "generate -v over keys with control bytes");
	cr_assert_not_null(strstr(r.err.data, "prew/s/n\\nl\\tt.jpg"),
	    "%.1000s", r.err.data);
	cr_assert_not_null(strstr(r.err.data, "prew/s/b\\xff\\xfe.jpg"),
	    "%.1000s", r.err.data);
	cr_assert_not_null(strstr(r.err.data, "photo/x\\ny\\xff.jpg"),
	    "%.1000s", r.err.data);
	th_run_release(&r);
}

/* An unknown option names itself and the command, then the usage. */
static const struct {
	const char	*cmd;
	const char	*opt;
} unknown_opts[] = {
	{ "plan", "--bogus" },
	{ "plan", "--force" },
	{ "generate", "-Z" },
	{ "generate", "--max-delete" },
	{ "purge", "--keys" },
	{ "purge", "-j" },
	{ "presets", "--json" },
};

Test(cli, unknown_option_names_itself_and_the_command, .fini = cli_fini)
{
	struct th_run	 r;
	char		*cfg, want[128];
	size_t		 i;

	folder_new();
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	for (i = 0; i < sizeof(unknown_opts) / sizeof(unknown_opts[0]); i++) {
		const char *args[] = { "-c", cfg, unknown_opts[i].cmd,
		    unknown_opts[i].opt, "1", NULL };

		th_prewctl(&r, args, NULL);
		th_expect_exit(&r, 2, unknown_opts[i].opt);
		snprintf(want, sizeof(want), "prewctl: unknown option '%s' for "
		    "%s\n", unknown_opts[i].opt, unknown_opts[i].cmd);
		cr_assert(strncmp(r.err.data, want, strlen(want)) == 0,
		    "want '%s', stderr: %.500s", want, r.err.data);
		snprintf(want, sizeof(want), "\nusage: prewctl %s",
		    unknown_opts[i].cmd);
		cr_assert_not_null(strstr(r.err.data, want), "%.500s",
		    r.err.data);
		cr_assert_eq(r.out.len, 0);
		th_run_release(&r);
	}
}

/* ---- 2. --json: one object, whatever happens ----------------------------- */

/*
 * stdout is exactly one JSON object whose last members are "exit" (the
 * exit status) and "error" (a string holding want_error, or null when
 * want_error is NULL). Returns it parsed.
 */
static struct th_json *
json_outcome(const struct th_run *r, int code, const char *want_error,
    const char *what)
{
	struct th_json	*j;
	const char	*e;
	size_t		 n;

	th_expect_exit(r, code, what);
	j = th_json_parse(r->out.data, r->out.len);
	cr_assert_eq(th_json_type(j), TH_JSON_OBJECT, "%s: not an object",
	    what);
	n = th_json_len(j);
	cr_assert_geq(n, 2, "%s: %s", what, r->out.data);
	cr_assert_str_eq(th_json_name(j, n - 2), "exit", "%s: %s", what,
	    r->out.data);
	cr_assert_str_eq(th_json_name(j, n - 1), "error", "%s: %s", what,
	    r->out.data);
	cr_assert_eq(th_json_num(j, "exit"), r->status, "%s: \"exit\" is "
	    "%lld, the status %d", what, th_json_num(j, "exit"), r->status);
	e = th_json_str(j, "error");
	if (want_error == NULL)
		cr_assert_null(e, "%s: error %s", what, e);
	else {
		cr_assert_not_null(e, "%s: error is null", what);
		cr_assert_not_null(strstr(e, want_error), "%s: error '%s' "
		    "does not say '%s'", what, e, want_error);
		/* The same message on stderr. */
		cr_assert_not_null(strstr(r->err.data, e), "%s: stderr does "
		    "not hold '%s': %.1000s", what, e, r->err.data);
	}
	return j;
}

Test(cli, json_on_a_bad_config)
{
	char		*cfg = th_write_temp("[storage]\nbukket = x\n");
	const char	*args[] = { "-c", cfg, "plan", "--json", NULL };
	struct th_run	 r;

	th_prewctl(&r, args, NULL);
	th_json_free(json_outcome(&r, 2, "unknown key 'bukket'",
	    "plan --json, bad config"));
	th_run_release(&r);
	unlink(cfg);
	free(cfg);
}

Test(cli, json_on_a_missing_config)
{
	const char	*args[] = { "generate", "--json", "-c",
			    "/nonexistent/presets.ini", NULL };
	struct th_run	 r;

	th_prewctl(&r, args, NULL);
	th_json_free(json_outcome(&r, 2, "/nonexistent/presets.ini",
	    "generate --json, no config"));
	th_run_release(&r);
}

Test(cli, json_on_an_unknown_preset, .fini = cli_fini)
{
	struct th_run	 r;
	char		*cfg;
	size_t		 i;
	static const char *const cmds[] = { "plan", "generate", "purge" };

	folder_new();
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *args[] = { "-c", cfg, cmds[i], "--json",
		    "--preset", "nope", NULL };

		th_prewctl(&r, args, NULL);
		th_json_free(json_outcome(&r, 2, "'nope'", cmds[i]));
		th_run_release(&r);
	}
}

Test(cli, json_on_a_usage_error, .fini = cli_fini)
{
	struct th_run	 r;
	char		*cfg;

	folder_new();
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	{
		const char *args[] = { "-c", cfg, "generate", "--json", "-j",
		    "0", NULL };

		th_prewctl(&r, args, NULL);
		th_json_free(json_outcome(&r, 2, "-j", "generate -j 0"));
		th_run_release(&r);
	}
}

Test(cli_s3, json_on_a_wrong_secret, .fini = cli_fini)
{
	static const char *const wrong[] = {
		"AWS_SECRET_ACCESS_KEY=not-the-secret-0000000000000000000000",
		NULL };
	static const char *const cmds[] = { "plan", "generate", "purge" };
	struct th_run	 r;
	char		*cfg;
	size_t		 i;

	snprintf(C.prefix, sizeof(C.prefix), "%s", th_prefix("cli-secret"));
	cfg = keep_cfg(th_s3_config(C.prefix, "[preset s]\nwidth = 16\n"));
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *args[] = { "-c", cfg, cmds[i], "--json", NULL };

		th_prewctl(&r, args, wrong);
		th_json_free(json_outcome(&r, 3, "SignatureDoesNotMatch",
		    cmds[i]));
		th_run_release(&r);
	}
}

/* A port that is bound (so nobody else takes it) but never listens. */
static int
dead_port(void)
{
	struct sockaddr_in	sa;
	socklen_t		len = sizeof(sa);

	cr_assert((C.sock = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(bind(C.sock, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	cr_assert(getsockname(C.sock, (struct sockaddr *)&sa, &len) == 0);
	return ntohs(sa.sin_port);
}

/* An S3 configuration of prefix at endpoint. */
static char *
s3_cfg_at(const char *endpoint, const char *prefix, const char *presets)
{
	const struct th_env	*e = th_env();
	char			 text[2048];

	cr_assert((size_t)snprintf(text, sizeof(text), "[storage]\n"
	    "bucket = %s\nendpoint = %s\nregion = %s\npath_style = true\n"
	    "source = %sphoto/\npreviews = %sprew/\nretries = 1\ntimeout = 2\n"
	    "%s", e->bucket, endpoint, e->region, prefix, prefix, presets) <
	    sizeof(text));
	return keep_cfg(th_write_temp(text));
}

Test(cli, json_on_an_unreachable_endpoint, .fini = cli_fini)
{
	static const char *const cmds[] = { "plan", "generate", "purge" };
	struct th_run	 r;
	char		 endpoint[64], *cfg;
	size_t		 i;

	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d",
	    dead_port());
	cfg = s3_cfg_at(endpoint, th_prefix("cli-dead"),
	    "[preset s]\nwidth = 16\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *args[] = { "-c", cfg, cmds[i], "--json", NULL };

		th_prewctl(&r, args, NULL);
		th_json_free(json_outcome(&r, 3, "connect", cmds[i]));
		th_run_release(&r);
	}
}

Test(cli, json_on_a_purge_refusal, .fini = cli_fini)
{
	static const char *const gen[] = { "-c", CFG, "generate", "-q", NULL };
	static const char *const purge[] = { "-c", CFG, "purge", "--json",
	    NULL };
	static const char *const maxdel[] = { "-c", CFG, "purge", "--json",
	    "--force", "--max-delete", "2", NULL };
	struct th_run	 r;
	struct th_json	*j;
	char		*cfg, path[128];
	int		 i;

	folder_new();
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "p%d.jpg", i);
		folder_put("photo", path, TINY_JPEG);
	}
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	run_with_cfg(&r, gen, cfg);
	th_expect_exit(&r, 0, "generate");
	th_run_release(&r);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/photo/p%d.jpg", C.root, i);
		cr_assert_eq(unlink(path), 0);
	}
	/* No originals left while previews exist. */
	run_with_cfg(&r, purge, cfg);
	j = json_outcome(&r, 2, "refusing to purge", "purge, empty source");
	th_json_free(j);
	th_run_release(&r);
	/* More than --max-delete: --force does not lift it. */
	run_with_cfg(&r, maxdel, cfg);
	j = json_outcome(&r, 2, "max-delete", "purge --max-delete 2");
	th_json_free(j);
	th_run_release(&r);
	snprintf(path, sizeof(path), "%s/prew/s/p0.jpg", C.root);
	cr_assert_eq(access(path, F_OK), 0, "a refused purge deleted");
}

/* A listing refused (403 on every LIST) is a failure, never "nothing". */
Test(cli_s3, json_on_a_failed_listing, .fini = cli_fini)
{
	static const char *const cmds[][3] = {
		{ "plan", "--json", NULL },
		{ "plan", "--json", "--keys" },
		{ "generate", "--json", NULL },
	};
	char		*argv[8], endpoint[64], *cfg;
	struct th_run	 r;
	struct th_json	*j;
	size_t		 i;
	int		 port;

	C.c = th_client();
	snprintf(C.prefix, sizeof(C.prefix), "%s", th_prefix("cli-deny"));
	{
		char key[512];

		snprintf(key, sizeof(key), "%sphoto/a.jpg", C.prefix);
		th_put_file(C.c, key, TINY_JPEG);
	}
	argv[0] = FPROXY;
	argv[1] = "--deny";
	argv[2] = "LIST";
	argv[3] = "--max-seconds";
	argv[4] = "300";
	argv[5] = (char *)th_env()->endpoint;
	argv[6] = NULL;
	port = th_start_server(argv, &C.proxy);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
	cfg = s3_cfg_at(endpoint, C.prefix, "[preset s]\nwidth = 16\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *args[] = { "-c", cfg, cmds[i][0], cmds[i][1],
		    cmds[i][2], NULL };

		th_prewctl(&r, args, NULL);
		/* Exit 3: not an empty success. */
		j = json_outcome(&r, 3, "AccessDenied", cmds[i][0]);
		th_json_free(j);
		th_run_release(&r);
	}
}

Test(cli, json_on_success, .fini = cli_fini)
{
	static const char *const cmds[][4] = {
		{ "generate", "--json", NULL },
		{ "plan", "--json", NULL },
		{ "plan", "--json", "--keys", NULL },
		{ "purge", "--json", "-n", NULL },
		{ "generate", "--json", "--keys", "--force" },
	};
	struct th_run	 r;
	struct th_json	*j;
	char		*cfg;
	size_t		 i;

	folder_new();
	folder_put("photo", "a.jpg", TINY_JPEG);
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *args[] = { "-c", cfg, cmds[i][0], cmds[i][1],
		    cmds[i][2], cmds[i][3], NULL };

		th_prewctl(&r, args, NULL);
		j = json_outcome(&r, 0, NULL, cmds[i][0]);
		th_json_free(j);
		th_run_release(&r);
	}
}

/*
 * generate --keys --json prints only JSON: "keys" holds every preview
 * made, each with its PREVIEW key, its original, preset, state, result.
 */
Test(cli, generate_keys_json_is_only_json, .fini = cli_fini)
{
	static const char *const rels[] = { "a.jpg", "d/e/b.jpg" };
	static const char *const pre[] = { "s", "m" };
	static const char *const args[] = { "-c", CFG, "generate", "--keys",
	    "--json", NULL };
	struct th_run		 r;
	struct th_json		*j;
	const struct th_json	*keys;
	char			*cfg, want[256];
	int			 seen[2][2] = { { 0 } };
	size_t			 i, a, b;

	folder_new();
	for (a = 0; a < 2; a++)
		folder_put("photo", rels[a], TINY_JPEG);
	cfg = folder_cfg("[preset s]\nwidth = 16\n[preset m]\nwidth = 20\n");
	run_with_cfg(&r, args, cfg);
	j = json_outcome(&r, 0, NULL, "generate --keys --json");
	cr_assert_eq(r.out.data[0], '{', "text before the JSON: %.200s",
	    r.out.data);
	keys = th_json_at(j, "keys");
	cr_assert_not_null(keys, "%s", r.out.data);
	cr_assert_eq(th_json_type(keys), TH_JSON_ARRAY);
	cr_assert_eq(th_json_len(keys), 4, "%s", r.out.data);
	for (i = 0; i < 4; i++) {
		const struct th_json *k = th_json_item(keys, i);
		const char *key = th_json_str(k, "key");
		const char *orig = th_json_str(k, "original");
		const char *preset = th_json_str(k, "preset");
		int found = 0;

		cr_assert_str_eq(th_json_str(k, "state"), "missing");
		cr_assert_str_eq(th_json_str(k, "result"), "made");
		for (a = 0; a < 2; a++)
			for (b = 0; b < 2; b++) {
				snprintf(want, sizeof(want), "prew/%s/%s",
				    pre[b], rels[a]);
				if (strcmp(key, want) != 0)
					continue;
				found = 1;
				seen[a][b]++;
				cr_assert_str_eq(preset, pre[b]);
				snprintf(want, sizeof(want), "photo/%s",
				    rels[a]);
				cr_assert_str_eq(orig, want);
			}
		cr_assert(found, "keys[%zu].key is '%s': not a preview key",
		    i, key);
	}
	for (a = 0; a < 2; a++)
		for (b = 0; b < 2; b++)
			cr_assert_eq(seen[a][b], 1, "prew/%s/%s listed %d "
			    "times", pre[b], rels[a], seen[a][b]);
	th_json_free(j);
	th_run_release(&r);
}

/* ---- 3. keys that are not UTF-8, or hold a newline and a tab ------------- */

/*
 * The bytes of a JSON string as th_json_parse gives them, with each lone
 * U+DC80..U+DCFF turned back into its byte (Python's surrogateescape).
 */
static char *
surrogateescape(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	char			*out = malloc(strlen(s) + 1);
	size_t			 n = 0;

	cr_assert_not_null(out);
	while (*p != '\0') {
		if (p[0] == 0xed && (p[1] == 0xb2 || p[1] == 0xb3) &&
		    (p[2] & 0xc0) == 0x80) {
			out[n++] = (char)(0x80 | (p[1] & 1) << 6 | (p[2] & 0x3f));
			p += 3;
			continue;
		}
		out[n++] = (char)*p++;
	}
	out[n] = '\0';
	return out;
}

static void
odd_keys_folder(void)
{
	folder_new();
	folder_put("photo", "a.jpg", TINY_JPEG);
	folder_put("photo", "sub/b\xff\xfe.jpg", TINY_JPEG);
	folder_put("photo", "n\nl\tt.jpg", TINY_JPEG);
}

Test(cli, odd_keys_in_plan_keys_json, .fini = cli_fini)
{
	static const char *const args[] = { "-c", CFG, "plan", "--keys",
	    "--json", NULL };
	static const char *const raw[] = {
		"\"key\":\"prew/s/sub/b\\udcff\\udcfe.jpg\"",
		"\"original\":\"photo/sub/b\\udcff\\udcfe.jpg\"",
		"\"key\":\"prew/s/n\\nl\\tt.jpg\"",
		"\"original\":\"photo/n\\nl\\tt.jpg\"",
		"\"key\":\"prew/s/a.jpg\"",
	};
	static const char *const bytes[] = { "prew/s/sub/b\xff\xfe.jpg",
	    "prew/s/n\nl\tt.jpg", "prew/s/a.jpg" };
	struct th_run		 r;
	struct th_json		*j;
	const struct th_json	*keys;
	char			*cfg, *back;
	int			 seen[3] = { 0, 0, 0 };
	size_t			 i, k;

	odd_keys_folder();
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	run_with_cfg(&r, args, cfg);
	j = json_outcome(&r, 0, NULL, "plan --keys --json");
	for (i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
		cr_assert_not_null(strstr(r.out.data, raw[i]), "no %s in %s",
		    raw[i], r.out.data);
	cr_assert_null(memchr(r.out.data, 0xff, r.out.len), "a raw 0xff");
	cr_assert_null(memchr(r.out.data, 0xfe, r.out.len), "a raw 0xfe");
	keys = th_json_at(j, "keys");
	cr_assert_not_null(keys);
	cr_assert_eq(th_json_len(keys), 3, "%s", r.out.data);
	for (i = 0; i < 3; i++) {
		back = surrogateescape(th_json_str(th_json_item(keys, i),
		    "key"));
		for (k = 0; k < 3; k++)
			if (strcmp(back, bytes[k]) == 0)
				seen[k]++;
		free(back);
	}
	for (k = 0; k < 3; k++)
		cr_assert_eq(seen[k], 1, "key %zu read back %d times", k,
		    seen[k]);
	th_json_free(j);
	th_run_release(&r);
}

/* Lines of out that start with prefix. */
static int
lines_starting(const char *out, const char *prefix)
{
	const char	*p;
	int		 n = 0;

	for (p = out; p != NULL && *p != '\0';
	    p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
	return n;
}

/* Whole lines of out equal to line. */
static int
has_line(const char *out, const char *line)
{
	const char	*p;

	for (p = out; p != NULL && *p != '\0';
	    p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, line, strlen(line)) == 0 &&
		    (p[strlen(line)] == '\n' || p[strlen(line)] == '\0'))
			return 1;
	return 0;
}

Test(cli, odd_keys_in_text_keys, .fini = cli_fini)
{
	static const char *const plan[] = { "-c", CFG, "plan", "--keys",
	    NULL };
	static const char *const gen[] = { "-c", CFG, "generate", "--keys",
	    "-n", NULL };
	static const char *const lines[] = {
		"missing\ts\tprew/s/a.jpg",
		"missing\ts\tprew/s/n\\nl\\tt.jpg",
		"missing\ts\tprew/s/sub/b\\xff\\xfe.jpg",
	};
	const char *const *const runs[] = { plan, gen };
	struct th_run	 r;
	char		*cfg;
	size_t		 i, k;

	odd_keys_folder();
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	for (k = 0; k < 2; k++) {
		run_with_cfg(&r, runs[k], cfg);
		th_expect_exit(&r, 0, runs[k][2]);
		/* One line per preview, nothing split. */
		cr_assert_eq(lines_starting(r.out.data, "missing\t"), 3,
		    "%s --keys: %.1000s", runs[k][2], r.out.data);
		for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
			cr_assert(has_line(r.out.data, lines[i]), "%s --keys: "
			    "no line '%s' in %.1000s", runs[k][2], lines[i],
			    r.out.data);
		cr_assert_null(memchr(r.out.data, 0xff, r.out.len));
		th_run_release(&r);
	}
}

/* ---- 4. plan --keys | head -1 -------------------------------------------- */

/*
 * stdout is a pipe closed after one line, with far more output to come
 * than the pipe holds: prewctl stops, quietly, with 141, soon.
 */
Test(cli, keys_into_a_closed_pipe, .fini = cli_fini)
{
	enum { NORIG = 4000 };
	char		 fifo[128], errpath[128], rel[64], chunk[512];
	const char	*cfg;
	const char	*args[6];
	struct th_run	 fake;
	double		 deadline;
	pid_t		 pid;
	int		 fd, pfd, st, i, got_line = 0;

	folder_new();
	for (i = 0; i < NORIG; i++) {
		snprintf(rel, sizeof(rel), "d%d/img-%05d.jpg", i / 500, i);
		folder_put("photo", rel, NULL);
	}
	/* Two presets: some 300 KB of keys, past any pipe's buffer. */
	cfg = folder_cfg("[preset s]\nwidth = 16\n[preset m]\nwidth = 20\n");
	snprintf(fifo, sizeof(fifo), "%s/out.fifo", C.root);
	snprintf(errpath, sizeof(errpath), "%s/err", C.root);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	/* The reader first, so that prewctl's open does not wait. */
	cr_assert((fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) >= 0);
	args[0] = "-c";
	args[1] = cfg;
	args[2] = "plan";
	args[3] = "--keys";
	args[4] = NULL;
	pid = th_spawn_prewctl(args, NULL, fifo, errpath);
	cr_assert((pfd = (int)syscall(SYS_pidfd_open, pid, 0)) >= 0,
	    "pidfd_open: %s", strerror(errno));
	deadline = th_now() + 60;
	while (!got_line) {
		struct pollfd	pf = { fd, POLLIN, 0 };
		ssize_t		n;

		cr_assert(th_now() < deadline, "no line in 60 s");
		if (poll(&pf, 1, 1000) <= 0)
			continue;
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		cr_assert_gt(n, 0, "stdout ended before a line");
		got_line = memchr(chunk, '\n', (size_t)n) != NULL;
	}
	cr_assert(strncmp(chunk, "missing\t", 8) == 0, "%.100s", chunk);
	close(fd);
	/* It ends: generous, only so that a hang fails rather than waits. */
	{
		struct pollfd	pf = { pfd, POLLIN, 0 };

		if (poll(&pf, 1, 60000) != 1) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			cr_assert_fail("plan --keys went on for 60 s with its "
			    "stdout closed");
		}
	}
	close(pfd);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	memset(&fake, 0, sizeof(fake));
	fake.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	buf_init(&fake.err, BUF_NOMAX);
	buf_init(&fake.out, BUF_NOMAX);
	th_read_file(errpath, &fake.err);
	th_expect_exit(&fake, 141, "plan --keys | head -1");
	cr_assert_eq(fake.err.len, 0, "stderr: %.1000s", fake.err.data);
	th_run_release(&fake);
}

/* ---- 5. -j out of range -------------------------------------------------- */

static const char *const bad_jobs[][2] = {
	{ "-j", "0" },
	{ "-j", "257" },
	{ "--jobs", "0" },
	{ "--jobs", "257" },
	{ "-j", "-1" },
	{ "-j", "2x" },
	{ "-j", "" },
	{ "-j", "99999999999999999999" },
};

Test(cli, jobs_out_of_range, .fini = cli_fini)
{
	struct th_run	 r;
	char		*cfg;
	size_t		 i;

	folder_new();
	folder_put("photo", "a.jpg", TINY_JPEG);
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	for (i = 0; i < sizeof(bad_jobs) / sizeof(bad_jobs[0]); i++) {
		const char *args[] = { "-c", cfg, "generate", bad_jobs[i][0],
		    bad_jobs[i][1], NULL };

		th_prewctl(&r, args, NULL);
		th_expect_exit(&r, 2, bad_jobs[i][1]);
		cr_assert_not_null(strstr(r.err.data, "-j"), "%s %s: %.500s",
		    bad_jobs[i][0], bad_jobs[i][1], r.err.data);
		all_messages(&r, "-j");
		th_run_release(&r);
	}
	/* The ends of the range are fine, and nothing was made above. */
	{
		char path[128];
		const char *one[] = { "-c", cfg, "generate", "-n", "-j", "1",
		    NULL };
		const char *max[] = { "-c", cfg, "generate", "-n", "--jobs",
		    "256", NULL };

		snprintf(path, sizeof(path), "%s/prew", C.root);
		cr_assert_neq(access(path, F_OK), 0, "a refused run wrote");
		th_prewctl(&r, one, NULL);
		th_expect_exit(&r, 0, "-j 1");
		th_run_release(&r);
		th_prewctl(&r, max, NULL);
		th_expect_exit(&r, 0, "--jobs 256");
		th_run_release(&r);
	}
}

/* ---- 6. text --keys: the preview's key ----------------------------------- */

Test(cli, text_keys_are_preview_keys, .fini = cli_fini)
{
	static const char *const plan[] = { "-c", CFG, "plan", "--keys",
	    NULL };
	static const char *const gen[] = { "-c", CFG, "generate", "--keys",
	    NULL };
	static const char *const want[] = {
		"missing\tthumb\tprew/thumb/2024/06/cat.jpg",
		"missing\tbig\tprew/big/2024/06/cat.jpg",
	};
	const char *const *const runs[] = { plan, gen };
	struct th_run	 r;
	char		*cfg;
	size_t		 i, k;

	folder_new();
	folder_put("photo", "2024/06/cat.jpg", TINY_JPEG);
	cfg = folder_cfg("[preset thumb]\nwidth = 16\n"
	    "[preset big]\nwidth = 20\n");
	for (k = 0; k < 2; k++) {
		run_with_cfg(&r, runs[k], cfg);
		th_expect_exit(&r, 0, runs[k][2]);
		for (i = 0; i < 2; i++)
			cr_assert(has_line(r.out.data, want[i]), "%s --keys: "
			    "no line '%s' in %.1000s", runs[k][2], want[i],
			    r.out.data);
		cr_assert_null(strstr(r.out.data, "photo/"), "%s --keys "
		    "printed an original's key: %.1000s", runs[k][2],
		    r.out.data);
		th_run_release(&r);
	}
}

/* ---- 7. generate --force -n --json --------------------------------------- */

Test(cli, force_dry_run_counts, .fini = cli_fini)
{
	static const char *const gen[] = { "-c", CFG, "generate", "-q", NULL };
	static const char *const dry[] = { "-c", CFG, "generate", "--force",
	    "-n", "--json", NULL };
	static const char *const pre[] = { "s", "m" };
	struct th_run	 r;
	struct th_json	*j;
	char		*cfg, path[256];
	size_t		 k;

	folder_new();
	folder_put("photo", "a.jpg", TINY_JPEG);
	folder_put("photo", "b.jpg", TINY_JPEG);
	folder_put("photo", "c/d.jpg", TINY_JPEG);
	cfg = folder_cfg("[preset s]\nwidth = 16\n[preset m]\nwidth = 20\n");
	run_with_cfg(&r, gen, cfg);
	th_expect_exit(&r, 0, "generate");
	th_run_release(&r);
	/* A fourth original, with no preview yet. */
	folder_put("photo", "e.jpg", TINY_JPEG);
	run_with_cfg(&r, dry, cfg);
	j = json_outcome(&r, 0, NULL, "generate --force -n --json");
	for (k = 0; k < 2; k++) {
		char p[64];

		snprintf(p, sizeof(p), "presets.%s.to_make", pre[k]);
		cr_assert_eq(th_json_num(j, p), 4, "%s: %s", p, r.out.data);
		snprintf(p, sizeof(p), "presets.%s.fresh", pre[k]);
		cr_assert_eq(th_json_num(j, p), 3, "%s: %s", p, r.out.data);
		snprintf(p, sizeof(p), "presets.%s.missing", pre[k]);
		cr_assert_eq(th_json_num(j, p), 1, "%s: %s", p, r.out.data);
		snprintf(p, sizeof(p), "presets.%s.generated", pre[k]);
		cr_assert_eq(th_json_num(j, p), 0, "%s: %s", p, r.out.data);
	}
	cr_assert_eq(th_json_num(j, "originals"), 4);
	th_json_free(j);
	th_run_release(&r);
	snprintf(path, sizeof(path), "%s/prew/s/e.jpg", C.root);
	cr_assert_neq(access(path, F_OK), 0, "a dry run wrote %s", path);
}

/* ---- 8. the default -j follows the CPU affinity -------------------------- */

/*
 * taskset -c 0 is sched_setaffinity and exec: the mask is set on this
 * test's own process (each test runs in a process of its own), and
 * prewctl, started by th_run, inherits it.
 */
Test(cli, default_jobs_follow_affinity, .fini = cli_fini)
{
	static const char *const gen[] = { "-c", CFG, "generate", "--json",
	    "--force", NULL };
	struct th_run	 r;
	struct th_json	*j;
	cpu_set_t	 all, one;
	char		*cfg;
	long		 want;

	folder_new();
	folder_put("photo", "a.jpg", TINY_JPEG);
	cfg = folder_cfg("[preset s]\nwidth = 16\n");
	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	want = CPU_COUNT(&all) < 256 ? CPU_COUNT(&all) : 256;
	run_with_cfg(&r, gen, cfg);
	j = json_outcome(&r, 0, NULL, "generate --json");
	cr_assert_eq(th_json_num(j, "workers"), want, "%d CPUs in the mask, "
	    "%lld workers", CPU_COUNT(&all), th_json_num(j, "workers"));
	th_json_free(j);
	th_run_release(&r);

	CPU_ZERO(&one);
	CPU_SET(0, &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0, "%s",
	    strerror(errno));
	run_with_cfg(&r, gen, cfg);
	j = json_outcome(&r, 0, NULL, "generate --json on CPU 0 only");
	cr_assert_eq(th_json_num(j, "workers"), 1, "%lld workers on one CPU",
	    th_json_num(j, "workers"));
	th_json_free(j);
	th_run_release(&r);
}

/* ---- 9. which configuration ---------------------------------------------- */

/*
 * -c beats $PREWCTL_CONFIG, which beats ./presets.ini: three files, each
 * with a preset of its own name, and `presets` says which was read.
 */
Test(cli, config_precedence, .fini = cli_fini)
{
	static const char *const names[] = { "fromcwd", "fromenv", "fromflag" };
	char		 text[512], path[128], env[256];
	char		*envcfg, *flagcfg;
	const char	*extra[] = { env, NULL };
	struct th_opts	 o;
	struct th_run	 r;
	size_t		 k, n;
	FILE		*f;

	folder_new();
	snprintf(C.cwd, sizeof(C.cwd), "/tmp/prewctl-cwd-XXXXXX");
	cr_assert_not_null(mkdtemp(C.cwd));
	snprintf(path, sizeof(path), "%s/presets.ini", C.cwd);
	snprintf(text, sizeof(text), "[storage]\ndirectory = %s\n"
	    "source = photo/\npreviews = prew/\n[preset %s]\nwidth = 10\n",
	    C.root, names[0]);
	cr_assert_not_null(f = fopen(path, "w"));
	cr_assert_geq(fputs(text, f), 0);
	cr_assert_eq(fclose(f), 0);
	snprintf(text, sizeof(text), "[preset %s]\nwidth = 10\n", names[1]);
	envcfg = folder_cfg(text);
	snprintf(text, sizeof(text), "[preset %s]\nwidth = 10\n", names[2]);
	flagcfg = folder_cfg(text);
	snprintf(env, sizeof(env), "PREWCTL_CONFIG=%s", envcfg);

	for (n = 0; n < 3; n++) {
		const char *args[] = { "presets", NULL, NULL, NULL };

		memset(&o, 0, sizeof(o));
		o.cwd = C.cwd;
		if (n >= 1)
			o.env = extra;
		if (n == 2) {
			args[1] = "-c";
			args[2] = flagcfg;
		}
		th_run(&r, &o, args);
		th_expect_exit(&r, 0, "presets");
		for (k = 0; k < 3; k++)
			if (k == n)
				cr_assert_not_null(strstr(r.out.data, names[k]),
				    "case %zu: %s was not read: %.500s", n,
				    names[k], r.out.data);
			else
				cr_assert_null(strstr(r.out.data, names[k]),
				    "case %zu: %s was read: %.500s", n,
				    names[k], r.out.data);
		th_run_release(&r);
	}
}
