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

