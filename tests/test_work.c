/*
 * work: the pool, over the folder backend, with small generated images.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <vips/vips.h>

#include "preview/work.h"
#include "helpers.h"

static char			 root[] = "/tmp/prewctl-work-XXXXXX";
static struct config		 cfg;
static struct store		*st;
static struct store_conn	*conn;
static const struct preset	*presets[2];
static const char *const	 md5s[2] = { "aa", "bb" };
static struct maker		 mk;

struct seen {
	pthread_mutex_t	 mtx;
	int		 jobs;
	int		 made;
	int		 failed;
	int		 skipped;
	int		 storage;
	pthread_mutex_t	 told_mtx;	/* on_done may run meanwhile */
	int		 told;		/* puts_over */
	int		 written;	/* previews on storage then */
};

static void
on_done(void *arg, struct job *j)
{
	struct seen	*s = arg;
	size_t		 i;

	/* Serialised by the pool: the lock only checks that it is. */
	cr_assert_eq(pthread_mutex_trylock(&s->mtx), 0, "two done at once");
	s->jobs++;
	for (i = 0; i < j->n; i++) {
		s->made += j->p[i].result == MAKE_MADE;
		s->failed += j->p[i].result == MAKE_FAILED;
		s->skipped += j->p[i].result == MAKE_SKIPPED;
		s->storage += j->p[i].storage;
	}
	pthread_mutex_unlock(&s->mtx);
	job_free(j);
}

/* How many of the previews of photo/0..n-1 are on storage. */
static int
previews_written(int n)
{
	struct stat	 sb;
	char		 path[600];
	int		 i, found = 0;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/prew/a/%03d.png", root, i);
		found += stat(path, &sb) == 0;
		snprintf(path, sizeof(path), "%s/prew/b/%03d.png", root, i);
		found += stat(path, &sb) == 0;
	}
	return found;
}

static void
on_puts_over(void *arg)
{
	struct seen	*s = arg;

	pthread_mutex_lock(&s->told_mtx);
	s->told++;
	s->written = previews_written(20);
	pthread_mutex_unlock(&s->told_mtx);
}

static void
png(const char *key)
{
	static const double	 ink[3] = { 40, 120, 200 };
	struct store_error	 err;
	VipsImage		*img, *t;
	void			*buf;
	size_t			 len;

	cr_assert_eq(vips_black(&t, 32, 24, "bands", 3, NULL), 0);
	cr_assert_eq(vips_copy(t, &img, "interpretation",
	    VIPS_INTERPRETATION_sRGB, NULL), 0);
	g_object_unref(t);
	cr_assert_eq(vips_draw_rect(img, (double *)ink, 3, 0, 0, 32, 24,
	    "fill", TRUE, NULL), 0);
	cr_assert_eq(vips_pngsave_buffer(img, &buf, &len, NULL), 0);
	g_object_unref(img);
	cr_assert_eq(store_put(conn, key, buf, len, NULL, &err), STORE_OK);
	g_free(buf);
}

/* photo/000.png ... for n originals. */
static void
originals(int n)
{
	char	key[64];
	int	i;

	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "photo/%03d.png", i);
		png(key);
	}
}

static void
setup(void)
{
	struct store_error	err;
	enum store_status	rc;
	char			text[512], *path;

	cr_assert_eq(render_global_init("prewctl-tests", 1, text,
	    sizeof(text)), 0, "%s", text);
	cr_assert_not_null(mkdtemp(root));
	snprintf(text, sizeof(text), "[storage]\ndirectory = %s\nsource = "
	    "photo/\npreviews = prew/\n[preset a]\nwidth = 16\n"
	    "[preset b]\nwidth = 8\nformat = png\n", root);
	path = th_write_temp(text);
	cr_assert_eq(config_load(path, &cfg, text, sizeof(text)), 0, "%s",
	    text);
	unlink(path);
	free(path);
	cr_assert_not_null(st = store_new(&cfg, &rc, &err));
	cr_assert_not_null(conn = store_conn_new(st));
	presets[0] = &cfg.presets[0];
	presets[1] = &cfg.presets[1];
	mk = (struct maker){
		.store = st, .presets = presets, .def_md5 = md5s,
		.npresets = 2, .source = "photo/", .previews = "prew/",
		.limits = { 100000000, 1 << 24, 30 },
	};
}

static void
teardown(void)
{
	store_conn_free(conn);
	store_free(st);
	config_release(&cfg);
	th_rmtree(root);
}

TestSuite(work, .init = setup, .fini = teardown);

/* Queue n jobs for photo/i.png (both presets); how many were taken. */
static int
push_all(struct work *w, int n)
{
	static const size_t	 both[2] = { 0, 1 };
	struct job		*j;
	char			 key[64];
	int			 i;

	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "photo/%03d.png", i);
		cr_assert_not_null(j = job_new(&mk, key, 0, both, 2));
		if (work_push(w, j) != 0) {
			job_free(j);
			break;
		}
	}
	return i;
}

static struct work *
start(struct seen *s, int workers, int max_errs, volatile sig_atomic_t *cancel)
{
	struct work_params	 p = { &mk, workers, max_errs, cancel, on_done,
				    s, on_puts_over };
	struct work		*w;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mtx, NULL);
	pthread_mutex_init(&s->told_mtx, NULL);
	cr_assert_not_null(w = work_start(&p));
	return w;
}

Test(work, every_job_ends_once)
{
	struct seen	 s;
	struct work	*w;
	struct stat	 sb;
	char		 path[600];
	int		 i;

	originals(20);
	w = start(&s, 3, 10, NULL);
	cr_assert_eq(push_all(w, 20), 20);
	cr_assert_eq(work_finish(w, NULL), WORK_RUNNING);
	cr_expect_eq(s.jobs, 20);
	cr_expect_eq(s.made, 40);
	cr_expect_eq(s.failed + s.skipped, 0);
	for (i = 0; i < 20; i++) {
		snprintf(path, sizeof(path), "%s/prew/b/%03d.png", root, i);
		cr_expect_eq(stat(path, &sb), 0, "%s", path);
	}
}

/*
 * Told once, when every preview is written: what generate's last check
 * of the stamps waits for (and no longer for the originals' HEADs).
 */
Test(work, puts_over_is_told_once_every_preview_is_written)
{
	struct seen	 s;
	struct work	*w;

	originals(20);
	w = start(&s, 3, 10, NULL);
	cr_assert_eq(push_all(w, 20), 20);
	pthread_mutex_lock(&s.told_mtx);
	cr_assert_eq(s.told, 0, "told before the queue closed");
	pthread_mutex_unlock(&s.told_mtx);
	cr_assert_eq(work_finish(w, NULL), WORK_RUNNING);
	cr_expect_eq(s.told, 1);
	cr_expect_eq(s.written, 40, "told with %d of 40 written", s.written);
	cr_expect_eq(s.made, 40);
}

/* Originals gone since the listing: skipped, and no storage failure. */
Test(work, missing_originals_are_items_not_an_outage)
{
	struct seen	 s;
	struct work	*w;

	w = start(&s, 2, 3, NULL);
	cr_assert_eq(push_all(w, 15), 15);
	cr_assert_eq(work_finish(w, NULL), WORK_RUNNING);
	cr_expect_eq(s.jobs, 15);
	cr_expect_eq(s.skipped, 30);
	cr_expect_eq(s.storage, 0);
}

/* Writes failing for every key: the pool stops, with what it had. */
Test(work, writes_failing_in_a_row_stop_the_pool)
{
	struct seen		 s;
	struct work		*w;
	char			 path[600];
	int			 pushed;
	FILE			*f;

	originals(40);
	/* A file where the previews' folder should be. */
	snprintf(path, sizeof(path), "%s/prew", root);
	cr_assert_not_null(f = fopen(path, "w"));
	fclose(f);
	w = start(&s, 1, 3, NULL);
	pushed = push_all(w, 40);
	cr_expect_eq(work_finish(w, NULL), WORK_WRITES_FAILING);
	cr_expect_lt(pushed, 40, "the pool took every job");
	cr_expect_geq(s.storage, 3);
	cr_expect_eq(s.made, 0);
}

Test(work, cancel_stops_taking_jobs)
{
	volatile sig_atomic_t	 cancel = 1;
	struct seen		 s;
	struct work		*w;

	png("photo/000.png");
	w = start(&s, 2, 10, &cancel);
	cr_expect_eq(push_all(w, 5), 0);
	cr_expect_eq(work_finish(w, NULL), WORK_CANCELLED);
	cr_expect_eq(s.jobs, 0);
}

/* The keys the guard tried to remove, NUL-separated. */
static void
on_removed(void *arg, size_t preset, const char *key, const char *error)
{
	(void)preset;
	(void)error;
	cr_assert_eq(buf_add(arg, key, strlen(key) + 1), 0);
}

static int
has_key(const struct buf *b, const char *key)
{
	size_t	off;

	for (off = 0; off < b->len; off += strlen(b->data + off) + 1)
		if (strcmp(b->data + off, key) == 0)
			return 1;
	return 0;
}

/*
 * A write that failed may have been made all the same (its answer lost):
 * the guard covers its key as it does a written one. Preset b's writes
 * fail (a file where its folder should be); no stamp exists, so the check
 * finds both presets another's and removes what they wrote, the key of
 * b's failed write included.
 */
Test(work, a_failed_write_is_a_suspect_of_the_guard)
{
	struct guard_cbs	 cbs = { NULL, on_removed, NULL };
	struct store_error	 err;
	struct guard		*g;
	struct seen		 s;
	struct work		*w;
	struct buf		 removed;
	char			 path[600];
	FILE			*f;

	originals(1);
	snprintf(path, sizeof(path), "%s/prew", root);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/prew/b", root);
	cr_assert_not_null(f = fopen(path, "w"));
	fclose(f);
	buf_init(&removed, BUF_NOMAX);
	cbs.arg = &removed;
	cr_assert_not_null(g = guard_new(st, "prew/", "photo/", presets, 2,
	    NULL, 0, &cbs));
	mk.guard = g;
	w = start(&s, 1, 10, NULL);
	cr_assert_eq(push_all(w, 1), 1);
	work_finish(w, NULL);
	mk.guard = NULL;
	cr_expect_eq(s.made, 1, "preset a's preview");
	cr_expect_eq(s.failed, 1, "preset b's");
	(void)guard_check(g, &err);
	cr_expect_eq(guard_nlost(g), 2);
	cr_expect(has_key(&removed, "prew/a/000.png"), "the written one");
	cr_expect(has_key(&removed, "prew/b/000.png"), "the failed one");
	guard_free(g);
	buf_release(&removed);
}
