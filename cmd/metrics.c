/*
 * metrics: --metrics-file, a Prometheus text-format file for
 * node_exporter's textfile collector.
 *
 * The collector reads every *.prom file of its folder, skips a whole file
 * that carries sample timestamps, and must never see half a file: the
 * file is written to a temporary name in the same folder and renamed over
 * the old one. It runs as another user, so the file gets the mode a plain
 * new file gets (0666 less the umask), not mkstemp's 0600.
 * prewctl_last_success_timestamp_seconds is carried over from the file
 * being replaced when this run failed, so that an alert on "no success
 * for a day" sees the last one.
 */
#include <sys/random.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "cmd.h"

/* The labels every sample carries: command, and shard when sharded. */
static void
labels(struct buf *b, const struct run_metrics *m, const char *more)
{
	buf_addf(b, "{command=\"%s\"", m->command);
	if (m->nshards > 1)
		buf_addf(b, ",shard=\"%u/%u\"", m->shard, m->nshards);
	if (more != NULL)
		buf_addf(b, ",%s", more);
	buf_addch(b, '}');
}

static void
head(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
sample(struct buf *b, const struct run_metrics *m, const char *name,
    const char *more, double v)
{
	buf_addstr(b, name);
	labels(b, m, more);
	buf_addf(b, " %.17g\n", v);
}

/* A label value: '\\', '"' and newline escaped, as the format says. */
static void
label_value(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			buf_addch(b, '\\');
		if (*s == '\n') {
			buf_addstr(b, "\\n");
			continue;
		}
		buf_addch(b, *s);
	}
}

/*
 * The last success the old file recorded for the same command and shard,
 * or 0: its line, as this writer writes it, names the same labels.
 */
static double
previous_success(const char *path, const struct run_metrics *m)
{
	struct buf	 want;
	FILE		*f;
	char		 line[512];
	double		 v = 0;

	if ((f = fopen(path, "r")) == NULL)
		return 0;
	buf_init(&want, BUF_NOMAX);
	buf_addstr(&want, "prewctl_last_success_timestamp_seconds");
	labels(&want, m, NULL);
	buf_addch(&want, ' ');
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, want.data, want.len) == 0)
			v = strtod(line + want.len, NULL);
	fclose(f);
	buf_release(&want);
	return v;
}

static const char *const result_names[M_NRESULTS] = {
	"generated", "failed", "skipped", "deleted"
};

static void
render(struct buf *b, const struct run_metrics *m, double last_success)
{
	struct buf	 more;
	size_t		 i, s;

	buf_init(&more, BUF_NOMAX);
	head(b, "prewctl_last_run_timestamp_seconds", "gauge",
	    "When the last run started, in seconds since the epoch.");
	sample(b, m, "prewctl_last_run_timestamp_seconds", NULL, m->start);
	head(b, "prewctl_last_success_timestamp_seconds", "gauge",
	    "When the last run that succeeded started.");
	sample(b, m, "prewctl_last_success_timestamp_seconds", NULL,
	    m->success ? m->start : last_success);
	head(b, "prewctl_last_run_success", "gauge",
	    "1 when the last run exited 0.");
	sample(b, m, "prewctl_last_run_success", NULL, m->success);
	head(b, "prewctl_last_run_exit_status", "gauge",
	    "The exit status of the last run (see prewctl(1)).");
	sample(b, m, "prewctl_last_run_exit_status", NULL, m->exit_status);
	head(b, "prewctl_run_duration_seconds", "gauge",
	    "How long the last run took.");
	sample(b, m, "prewctl_run_duration_seconds", NULL, m->duration);
	head(b, "prewctl_run_originals", "gauge",
	    "Originals the last run found (in its shard).");
	sample(b, m, "prewctl_run_originals", NULL, (double)m->originals);
	head(b, "prewctl_run_previews", "gauge",
	    "Previews per preset of the last run, by state or result.");
	for (i = 0; i < m->npresets; i++) {
		for (s = PS_MISSING; s < PS_COUNT; s++) {
			buf_reset(&more);
			buf_addstr(&more, "preset=\"");
			label_value(&more, m->names[i]);
			buf_addf(&more, "\",state=\"%s\"",
			    pstate_name((enum pstate)s));
			sample(b, m, "prewctl_run_previews", more.data,
			    (double)m->states[i][s]);
		}
		for (s = 0; m->results != NULL && s < M_NRESULTS; s++) {
			buf_reset(&more);
			buf_addstr(&more, "preset=\"");
			label_value(&more, m->names[i]);
			buf_addf(&more, "\",state=\"%s\"", result_names[s]);
			sample(b, m, "prewctl_run_previews", more.data,
			    (double)m->results[i][s]);
		}
	}
	head(b, "prewctl_run_requests", "gauge",
	    "Storage requests the last run made, by kind.");
	sample(b, m, "prewctl_run_requests", "kind=\"list\"",
	    (double)m->reqs.list);
	sample(b, m, "prewctl_run_requests", "kind=\"get\"",
	    (double)m->reqs.get);
	sample(b, m, "prewctl_run_requests", "kind=\"put\"",
	    (double)m->reqs.put);
	sample(b, m, "prewctl_run_requests", "kind=\"head\"",
	    (double)m->reqs.head);
	sample(b, m, "prewctl_run_requests", "kind=\"delete\"",
	    (double)m->reqs.del);
	head(b, "prewctl_run_retries", "gauge",
	    "Requests the last run retried.");
	sample(b, m, "prewctl_run_retries", NULL, (double)m->reqs.retries);
	head(b, "prewctl_build_info", "gauge",
	    "The versions of prewctl and libvips.");
	buf_reset(&more);
	buf_addf(&more, "version=\"%s\",vips=\"%s\"", PREWCTL_VERSION,
	    vips_version_string());
	sample(b, m, "prewctl_build_info", more.data, 1);
	buf_release(&more);
}

int
cmd_metrics_write(const char *path, const struct run_metrics *m)
{
	unsigned char	 rnd[6];
	struct buf	 b, tmp;
	const char	*slash;
	size_t		 i;
	ssize_t		 n;
	int		 fd = -1, rc = -1;

	buf_init(&b, BUF_NOMAX);
	buf_init(&tmp, BUF_NOMAX);
	render(&b, m, previous_success(path, m));
	/* A name of our own beside it, created as a plain file is. */
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		goto out;
	slash = strrchr(path, '/');
	if (slash != NULL)
		buf_add(&tmp, path, (size_t)(slash - path) + 1);
	buf_addstr(&tmp, ".prewctl-metrics-");
	for (i = 0; i < sizeof(rnd); i++)
		buf_addf(&tmp, "%02x", rnd[i]);
	if (b.len == 0 || tmp.len == 0) {
		errno = ENOMEM;
		goto out;
	}
	if ((fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0666)) == -1)
		goto out;
	for (i = 0; i < b.len; i += (size_t)n)
		if ((n = write(fd, b.data + i, b.len - i)) <= 0) {
			if (n == -1 && errno == EINTR) {
				n = 0;
				continue;
			}
			goto out;
		}
	/* On disk before the name points at it. */
	if (fsync(fd) == -1)
		goto out;
	if (close(fd) == -1) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp.data, path) == -1)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		int save = errno;

		if (fd != -1)
			close(fd);
		if (tmp.len > 0)
			unlink(tmp.data);
		errno = save;
		cmd_error("cannot write the metrics to '%s': %s", path,
		    strerror(errno));
	}
	buf_release(&b);
	buf_release(&tmp);
	return rc;
}

void
cmd_metrics_start(struct cmd_metrics *m, const char *command)
{
	m->command = command;
	clock_gettime(CLOCK_REALTIME, &m->wall);
	clock_gettime(CLOCK_MONOTONIC, &m->start);
}

double
cmd_metrics_elapsed(const struct cmd_metrics *m)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - m->start.tv_sec) +
	    (double)(now.tv_nsec - m->start.tv_nsec) / 1e9;
}

void
cmd_metrics_end(const struct cmd_metrics *m, const struct engine *eng,
    int code)
{
	struct run_metrics	  r;
	const char		**names;
	size_t			  i, n;

	if (m->path == NULL)
		return;
	/* Per-preset samples only with the counts of every preset. */
	n = m->states != NULL ? eng->npresets : 0;
	if ((names = calloc(n + 1, sizeof(*names))) == NULL) {
		cmd_error("cannot write the metrics: out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		names[i] = eng->presets[i]->name;
	r = (struct run_metrics){ m->command, m->shard, m->nshards,
	    (double)m->wall.tv_sec + (double)m->wall.tv_nsec / 1e9,
	    cmd_metrics_elapsed(m), code == EXIT_DONE, code, m->originals, n,
	    names, (const uint64_t (*)[PS_COUNT])m->states,
	    (const uint64_t (*)[M_NRESULTS])m->results, m->reqs };
	(void)cmd_metrics_write(m->path, &r);
	free(names);
}
