/*
 * presets: print the configuration as parsed, so a change can be checked
 * before a run. A bad file never gets here: loading it exits 2.
 */
#include <stdio.h>

#include "cmd.h"

static int
cmd_presets_exec(struct cmd_ctx *ctx, const struct cmd_args *a)
{
	const struct config	*cfg = &ctx->cfg;
	char			 canon[1024];
	size_t			 i;

	(void)a;
	printf("# %s\n", ctx->config_path);
	if (cfg->directory != NULL)
		printf("storage   directory %s\n", cfg->directory);
	else
		printf("storage   bucket %s at %s\n", cfg->bucket,
		    cfg->endpoint != NULL ? cfg->endpoint : "AWS");
	printf("source    %s\npreviews  %s\n", cfg->source, cfg->previews);
	for (i = 0; i < cfg->npresets; i++) {
		const struct preset *p = &cfg->presets[i];

		if (preset_canonical(p, canon, sizeof(canon)) != 0)
			canon[0] = '\0';
		printf("preset    %-12s %s\n", p->name, canon);
	}
	return EXIT_DONE;
}

const struct cmd_entry cmd_presets_entry = {
	.name = "presets",
	.usage = "",
	.summary = "print the presets as parsed (exit 2 on a bad file)",
	.args_min = 0,
	.args_max = 0,
	.flags = CMD_CONFIG,
	.exec = cmd_presets_exec,
};
