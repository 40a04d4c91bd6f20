/*
 * prewctl: keep the image previews of an S3 bucket in step with its
 * originals and a set of named size presets.
 *
 * This file holds the command table; cmd/run.c parses the command line
 * and runs the command it names.
 */
#include <stddef.h>

#include "cmd/cmd.h"

static const struct cmd_entry *const cmd_table[] = {
	&cmd_generate_entry,
	&cmd_plan_entry,
	&cmd_presets_entry,
	&cmd_purge_entry,
	&cmd_serve_entry,
};

int
main(int argc, char **argv)
{
	return cmd_run(cmd_table, sizeof(cmd_table) / sizeof(cmd_table[0]),
	    argc, argv);
}
