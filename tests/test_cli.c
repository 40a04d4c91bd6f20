/*
 * The command line, without storage: usage text against the man page,
 * exit codes, and configuration errors as the user sees them.
 */
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
