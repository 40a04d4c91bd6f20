/*
 * server: see serve.h.
 *
 * Threads and who owns what:
 *   - libmicrohttpd's one thread (epoll) runs on_request: it answers what
 *     it can at once (400, 404, 405, 503, /healthz, /metrics) and joins
 *     every other request to the flight of its key, suspending the
 *     connection; resumed, it queues the flight's response.
 *   - flight threads take flights from the queue and run them: the Redis
 *     lock, then a render through the site's pool, or the holder's result.
 *   - the pool (work.h) renders; its done callback wakes the flight.
 *   - the main thread reloads and frees the sites no flight uses any more.
 *
 * A site is one configuration with its engine, guard and pool. Requests
 * use the current one; a flight keeps a reference to its site, so a
 * reload never pulls a configuration from under a render.
 *
 * Lock invariants: `mtx` guards the flight table and queue, every
 * flight's waiters, done, status and response, the current site and every
 * site's refs, the dead list and the counters; a flight's `cv` (with
 * `mtx`) carries the pool's result. A connection is suspended with `mtx`
 * held and resumed after it is released, so that a flight can never
 * resume a connection not yet suspended.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <vips/vips.h>

#include "lock.h"
#include "serve.h"
#include "preview/engine.h"
#include "preview/keys.h"
#include "preview/thread.h"
#include "preview/work.h"

#define TABLE_SIZE	1024
#define MAX_URL		4096		/* a preview key is at most 1024 */
#define CODES		9
#define GUARD_MS	(30 * 1000)	/* stamps checked at least this often */
#define LOCK_TTL_MS	(30 * 1000)	/* a dead holder blocks a key this long */
#define LOCK_RENEW_MS	(10 * 1000)	/* a live one renews it this often */

static const unsigned	codes[CODES] = {
	200, 400, 404, 405, 422, 500, 502, 503, 0
};
static const double	buckets[] = {
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60
};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct site {
	struct server		*srv;
	int			 refs;
	struct config		 cfg;
	struct engine		 eng;
	struct guard		*guard;
	struct maker		 mk;
	struct work		*pool;
	char			*ns;		/* lock names: "<bucket>:" */
	uint64_t		*unstored;	/* per preset */
	struct site		*next;		/* on the dead list */
};

/* One request, from its first call to its end. */
struct req {
	struct server		*srv;
	struct MHD_Connection	*conn;
	struct flight		*flight;	/* joined, not yet answered */
	struct req		*next;		/* among the flight's waiters */
	struct timespec		 t0;
	char			 method[8];
	char			*key;		/* for the log */
	int			 started;	/* start_request ran */
	int			 internal;	/* /healthz, /metrics */
	unsigned		 status;
	uint64_t		 bytes;
};

struct flight {
	struct flight		*next;		/* in its table bucket */
	struct flight		*qnext;		/* in the queue */
	char			*key;		/* the preview */
	char			*original;
	size_t			 preset;
	struct site		*site;
	struct req		*waiters;
	int			 refs;		/* running + waiters unanswered */
	int			 done;
	unsigned		 status;
	struct MHD_Response	*resp;
	uint64_t		 size;
	int			 stored;	/* 200, and in the bucket */
	int			 remote;	/* another instance made it */
	char			 reason[600];	/* of a failure */
	pthread_cond_t		 cv;
	struct job		*job;		/* from the pool */
	int			 rendered;
};

struct server {
	struct serve_params	 p;
	struct MHD_Daemon	*mhd;
	struct lock_server	*redis;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;		/* the queue; the drain */
	struct flight		*table[TABLE_SIZE];
	struct flight		*qhead, *qtail;
	size_t			 active;	/* flights in the table */
	size_t			 inflight;	/* flights alive */
	struct site		*site;
	struct site		*dead;
	pthread_t		*threads;
	int			 nthreads;
	int			 stopping;
	long			 wait_ms;	/* the longest a render takes */

	/* Metrics. */
	uint64_t		 requests[CODES];
	uint64_t		 renders;
	uint64_t		 coalesced;
	uint64_t		 hist[NBUCKETS];
	uint64_t		 hist_count;
	double			 hist_sum;
};

static double
since(const struct timespec *t0)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) +
	    (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
note(struct server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
note(struct server *srv, const char *fmt, ...)
{
	va_list	ap;
	char	msg[1600];

	if (srv->p.note == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	srv->p.note(srv->p.arg, msg);
}

int
serve_parse_listen(const char *s, struct serve_params *p, char *err,
    size_t len)
{
	struct sockaddr_in	*in = (struct sockaddr_in *)&p->addr;
	struct sockaddr_in6	*in6 = (struct sockaddr_in6 *)&p->addr;
	const char		*colon;
	char			 host[64], *end;
	long			 port;
	size_t			 hl;

	memset(&p->addr, 0, sizeof(p->addr));
	if (*s == '[') {
		if ((colon = strstr(s, "]:")) == NULL)
			goto bad;
		hl = (size_t)(colon - s - 1);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, s + 1, hl);
		colon++;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			goto bad;
		hl = (size_t)(colon - s);
		if (hl == 0 || hl >= sizeof(host))
			goto bad;
		memcpy(host, s, hl);
	}
	host[hl] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1 ||
	    port > 65535)
		goto bad;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		p->addrlen = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		p->addrlen = sizeof(*in6);
		return 0;
	}
bad:
	snprintf(err, len, "bad address '%s': want ADDR:PORT, such as "
	    "127.0.0.1:8180 or [::1]:8180", s);
	return -1;
}

/* ---- sites ------------------------------------------------------------ */

static void
site_done(void *arg, struct job *j)
{
	struct flight	*f = j->arg;
	struct server	*srv = f->site->srv;

	(void)arg;
	pthread_mutex_lock(&srv->mtx);
	f->job = j;
	f->rendered = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&srv->mtx);
}

static void
site_lost(void *arg, size_t preset, int lost)
{
	struct site	*s = arg;

	if (lost)
		note(s->srv, "preset '%s': its stamp under '%s' is not this "
		    "configuration's definition: its previews are answered "
		    "with no-store and not stored (generate writes the stamp)",
		    s->eng.presets[preset]->name, s->cfg.previews);
	else
		note(s->srv, "preset '%s': its stamp is this configuration's "
		    "again: its previews are stored", s->eng.presets[preset]->name);
}

static void
site_removed(void *arg, size_t preset, const char *key, const char *error)
{
	struct site	*s = arg;

	if (error != NULL)
		note(s->srv, "cannot remove '%s', written after preset '%s' "
		    "changed: %s", key, s->eng.presets[preset]->name, error);
}

/* Stop a site's pool and guard, release what it holds. */
static void
site_free(struct site *s)
{
	struct store_error	err;

	if (s == NULL)
		return;
	if (s->pool != NULL)
		(void)work_finish(s->pool, NULL);
	if (s->guard != NULL) {
		(void)guard_stop(s->guard, &err);
		guard_free(s->guard);
	}
	engine_close(&s->eng);
	config_release(&s->cfg);
	free(s->unstored);
	free(s->ns);
	free(s);
}

/* A site for cfg (taken over when it succeeds); NULL with err. */
static struct site *
site_new(struct server *srv, struct config *cfg, enum serve_fail *fail,
    char *err, size_t len)
{
	struct guard_cbs	 cbs = { site_lost, site_removed, NULL };
	struct work_params	 wp;
	struct eng_params	 ep;
	struct eng_error	 e;
	enum eng_status		 st;
	struct site		*s;
	size_t			 i;

	*fail = SERVE_STORAGE;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	s->srv = srv;
	s->cfg = *cfg;
	memset(&ep, 0, sizeof(ep));
	ep.cfg = &s->cfg;
	ep.subpath = "";
	ep.log = srv->p.request_log;
	ep.log_arg = srv->p.arg;
	if ((st = engine_open(&s->eng, &ep, &e)) != ENG_OK) {
		eng_error_text(st, &e, err, len);
		*fail = st == ENG_CONFIG || (st == ENG_STORAGE && e.setup) ?
		    SERVE_CONFIG : SERVE_STORAGE;
		goto fail;
	}
	/* A missing stamp is written, as generate would; a changed one not. */
	if ((st = engine_write_stamps(&s->eng, 1, 0, NULL, NULL, &e)) !=
	    ENG_OK) {
		eng_error_text(st, &e, err, len);
		goto fail;
	}
	cbs.arg = s;
	if ((s->guard = engine_guard(&s->eng, 1, &cbs)) == NULL ||
	    guard_start(s->guard, GUARD_MS) != 0 ||
	    (s->unstored = calloc(s->eng.npresets + 1,
	    sizeof(*s->unstored))) == NULL ||
	    asprintf(&s->ns, "%s:", cfg->bucket != NULL ? cfg->bucket :
	    cfg->directory) == -1) {
		s->ns = NULL;
		snprintf(err, len, "out of memory");
		goto fail;
	}
	for (i = 0; i < s->eng.npresets; i++)
		if (!guard_may_store(s->guard, i))
			site_lost(s, i, 1);
	engine_maker(&s->eng, s->guard, &s->mk);
	s->mk.no_marks = 1;	/* a 422 stores nothing (prewctl(1)) */
	memset(&wp, 0, sizeof(wp));
	wp.maker = &s->mk;
	wp.nworkers = srv->p.workers;
	wp.done = site_done;
	wp.done_arg = s;
	if ((s->pool = work_start(&wp)) == NULL) {
		snprintf(err, len, "cannot start the workers: out of memory");
		goto fail;
	}
	s->refs = 1;		/* the server's, while current */
	memset(cfg, 0, sizeof(*cfg));
	return s;
fail:
	/* cfg stays the caller's: the copy here is not released. */
	memset(&s->cfg, 0, sizeof(s->cfg));
	site_free(s);
	return NULL;
}

/* Called with mtx held: the last user of a site puts it on the dead list. */
static void
site_unref(struct server *srv, struct site *s)
{
	if (--s->refs > 0)
		return;
	s->next = srv->dead;
	srv->dead = s;
}

/* ---- flights ------------------------------------------------------------ */

static size_t
hash(const char *s)
{
	size_t	h = 5381;

	for (; *s != '\0'; s++)
		h = h * 33 + (unsigned char)*s;
	return h % TABLE_SIZE;
}

/* Called with mtx held. */
static void
flight_unref(struct server *srv, struct flight *f)
{
	if (--f->refs > 0)
		return;
	if (f->resp != NULL)
		MHD_destroy_response(f->resp);
	pthread_cond_destroy(&f->cv);
	site_unref(srv, f->site);
	srv->inflight--;
	pthread_cond_broadcast(&srv->cv);
	free(f->key);
	free(f->original);
	free(f);
}

static struct MHD_Response *
text_response(const char *text)
{
	struct MHD_Response	*r;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
	    MHD_RESPMEM_MUST_COPY);
	if (r != NULL) {
		MHD_add_response_header(r, "Content-Type",
		    "text/plain; charset=utf-8");
		MHD_add_response_header(r, "Cache-Control", "no-store");
	}
	return r;
}

/* The flight's answer: status and one response every waiter shares. */
static void
flight_answer(struct flight *f, unsigned status, const char *text)
{
	char	line[700];

	snprintf(f->reason, sizeof(f->reason), "%s", text);
	snprintf(line, sizeof(line), "%s\n", text);
	f->status = status;
	f->size = strlen(line);
	f->resp = text_response(line);
}

static void
flight_image(struct flight *f, const void *data, size_t len,
    const char *type, const char *cache)
{
	f->status = MHD_HTTP_OK;
	f->size = len;
	if ((f->resp = MHD_create_response_from_buffer(len, (void *)data,
	    MHD_RESPMEM_MUST_COPY)) == NULL)
		return;
	MHD_add_response_header(f->resp, "Content-Type", type);
	if (cache != NULL)
		MHD_add_response_header(f->resp, "Cache-Control", cache);
}

/* The lock a flight holds, renewed while it waits for the pool. */
struct held {
	struct lock_conn	*lc;
	const char		*name;
	size_t			 nlen;
	const char		*token;
};

/*
 * Render the flight's preview in the site's pool; its answer from the job.
 * With h, the lock stays ours however long the pool takes.
 */
static void
render(struct server *srv, struct flight *f, const struct held *h)
{
	struct site		*s = f->site;
	const struct job_preset	*p;
	struct timespec		 t0, until;
	struct job		*j;
	double			 secs;
	size_t			 b;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((j = job_new(&s->mk, f->original, 0, &f->preset, 1)) == NULL) {
		flight_answer(f, 500, "out of memory");
		return;
	}
	j->arg = f;
	if (work_push(s->pool, j) != 0) {
		job_free(j);
		flight_answer(f, 503, "stopping");
		return;
	}
	pthread_mutex_lock(&srv->mtx);
	while (!f->rendered) {
		if (h == NULL) {
			pthread_cond_wait(&f->cv, &srv->mtx);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += LOCK_RENEW_MS / 1000;
		if (pthread_cond_timedwait(&f->cv, &srv->mtx, &until) ==
		    ETIMEDOUT && !f->rendered) {
			pthread_mutex_unlock(&srv->mtx);
			(void)lock_extend(h->lc, h->name, h->nlen, h->token,
			    LOCK_TTL_MS);
			pthread_mutex_lock(&srv->mtx);
		}
	}
	j = f->job;
	secs = since(&t0);
	srv->renders++;
	srv->hist_count++;
	srv->hist_sum += secs;
	for (b = 0; b < NBUCKETS; b++)
		if (secs <= buckets[b])
			srv->hist[b]++;
	if (j->p[0].why == WHY_UNSTORED)
		s->unstored[f->preset]++;
	pthread_mutex_unlock(&srv->mtx);

	p = &j->p[0];
	switch (p->result) {
	case MAKE_MADE:
		flight_image(f, p->out.data.data, p->out.data.len,
		    p->out.content_type, s->cfg.cache_control);
		f->stored = 1;
		break;
	case MAKE_SKIPPED:
		if (p->why == WHY_GONE)
			flight_answer(f, MHD_HTTP_NOT_FOUND, "no such original");
		else if (p->why == WHY_CHANGED)
			/* Deleted or replaced meanwhile: ask again. */
			flight_answer(f, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "the original changed while its preview was made");
		else
			/* Made, not stored: no cache may keep it. */
			flight_image(f, p->out.data.data, p->out.data.len,
			    p->out.content_type, "no-store");
		break;
	case MAKE_FAILED:
		flight_answer(f, p->why == WHY_STORAGE ? MHD_HTTP_BAD_GATEWAY :
		    422, p->error);
		break;
	default:
		flight_answer(f, 500, "no result");
	}
	job_free(j);
}

/* The holder's stored preview, read back; -1 when it is not there. */
static int
fetch_stored(struct flight *f)
{
	struct site		*s = f->site;
	struct store_conn	*c;
	struct store_head	 hd;
	struct store_error	 err;
	struct buf		 b;
	int			 rc = -1;

	if ((c = store_conn_new(s->eng.store)) == NULL)
		return -1;
	buf_init(&b, BUF_NOMAX);
	store_head_init(&hd);
	if (store_get(c, f->key, 256 * 1024 * 1024, &b, &hd, &err) ==
	    STORE_OK) {
		flight_image(f, b.data, b.len, hd.content_type[0] != '\0' ?
		    hd.content_type : "application/octet-stream",
		    s->cfg.cache_control);
		rc = 0;
	}
	store_head_release(&hd);
	buf_release(&b);
	store_conn_free(c);
	return rc;
}

/*
 * Run a flight: with Redis, one render across every instance; without
 * it, or when it does not answer, one render in this process. The holder
 * tells the others "ok" (stored: read it), "retry" (made but not stored:
 * make your own) or "fail <status> <reason>".
 */
static void
run_flight(struct server *srv, struct lock_conn *lc, struct flight *f)
{
	struct held	 h;
	struct timespec	 t0;
	char		 name[1400], token[40], msg[700], *sp;
	const char	*why;
	unsigned	 code;
	int		 n;

	n = snprintf(name, sizeof(name), "%s%s", f->site->ns, f->key);
	if (lc == NULL || n < 0 || (size_t)n >= sizeof(name)) {
		render(srv, f, NULL);
		return;
	}
	h = (struct held){ lc, name, (size_t)n, token };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Another's render takes at most wait_ms; then ours, alone. */
	while (since(&t0) * 1000 < srv->wait_ms) {
		switch (lock_take(lc, name, h.nlen, LOCK_TTL_MS, token)) {
		case LOCK_TAKEN:
			render(srv, f, &h);
			if (f->stored)
				snprintf(msg, sizeof(msg), "ok");
			else if (f->status == MHD_HTTP_OK)
				snprintf(msg, sizeof(msg), "retry");
			else
				snprintf(msg, sizeof(msg), "fail %u %s",
				    f->status, f->reason);
			lock_finish(lc, name, h.nlen, token, msg);
			return;
		case LOCK_DOWN:
			render(srv, f, NULL);
			return;
		case LOCK_HELD:
			break;
		}
		switch (lock_wait(lc, name, h.nlen, msg, sizeof(msg))) {
		case WAIT_MESSAGE:
			if (strcmp(msg, "ok") == 0) {
				if (fetch_stored(f) == 0) {
					f->remote = 1;
					return;
				}
				continue;
			}
			if (strncmp(msg, "fail ", 5) == 0) {
				code = (unsigned)strtoul(msg + 5, &sp, 10);
				why = *sp == ' ' ? sp + 1 : "failed";
				flight_answer(f, code >= 400 && code < 600 ?
				    code : MHD_HTTP_BAD_GATEWAY, why);
				f->remote = 1;
				return;
			}
			continue;	/* "retry": make our own */
		case WAIT_FREE:
			continue;
		case WAIT_DOWN:
			render(srv, f, NULL);
			return;
		}
	}
	render(srv, f, NULL);
}

/*
 * The flight is done: out of the table (the next request for the key
 * starts a new one), and every waiter resumed, after mtx is released.
 */
static void
complete(struct server *srv, struct flight *f)
{
	struct flight	**pp;
	struct req	*w, *next;
	uint64_t	 n = 0;

	if (f->resp == NULL)	/* no memory for the answer */
		f->status = 500;
	pthread_mutex_lock(&srv->mtx);
	for (pp = &srv->table[hash(f->key)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	f->done = 1;
	srv->active--;
	w = f->waiters;
	f->waiters = NULL;
	for (next = w; next != NULL; next = next->next)
		n++;
	/*
	 * A result made elsewhere: the flight's first request waited for it
	 * too (the others were counted when they joined).
	 */
	if (f->remote && n > 0)
		srv->coalesced++;
	flight_unref(srv, f);		/* the run's reference */
	pthread_mutex_unlock(&srv->mtx);
	for (; w != NULL; w = next) {
		next = w->next;
		MHD_resume_connection(w->conn);
	}
}

static void *
flight_main(void *arg)
{
	struct server		*srv = arg;
	struct lock_conn	*lc = NULL;
	struct flight		*f;

	if (srv->redis != NULL)
		lc = lock_conn_new(srv->redis);
	for (;;) {
		pthread_mutex_lock(&srv->mtx);
		while (srv->qhead == NULL && !srv->stopping)
			pthread_cond_wait(&srv->cv, &srv->mtx);
		if ((f = srv->qhead) == NULL) {
			pthread_mutex_unlock(&srv->mtx);
			break;
		}
		srv->qhead = f->qnext;
		if (srv->qhead == NULL)
			srv->qtail = NULL;
		pthread_mutex_unlock(&srv->mtx);
		run_flight(srv, lc, f);
		complete(srv, f);
	}
	lock_conn_free(lc);
	render_thread_shutdown();
	return NULL;
}

/* ---- HTTP ------------------------------------------------------------ */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The URI's path, percent-decoded once, into out (without its leading
 * '/'). -1 for a bad escape, a NUL or a control byte, decoded or not.
 */
static int
decode_path(const char *raw, struct buf *out)
{
	const char	*p;
	int		 hi, lo, c;

	if (*raw != '/')
		return -1;
	for (p = raw + 1; *p != '\0'; p++) {
		c = (unsigned char)*p;
		if (c == '%') {
			if ((hi = hexval((unsigned char)p[1])) < 0 ||
			    (lo = hexval((unsigned char)p[2])) < 0)
				return -1;
			c = hi << 4 | lo;
			p += 2;
		}
		if (c < 0x20 || c == 0x7f)
			return -1;
		if (buf_addch(out, (char)c) != 0)
			return -1;
	}
	return 0;
}

/* MHD must not decode: decode_path does, strictly, once. */
static size_t
no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static enum MHD_Result
answer(struct req *r, unsigned status, struct MHD_Response *resp,
    uint64_t bytes)
{
	enum MHD_Result	rc;

	if (resp == NULL)
		return MHD_NO;
	r->status = status;
	r->bytes = bytes;
	rc = MHD_queue_response(r->conn, status, resp);
	return rc;
}

static enum MHD_Result
answer_text(struct req *r, unsigned status, const char *text)
{
	struct MHD_Response	*resp;
	enum MHD_Result		 rc;

	if ((resp = text_response(text)) == NULL)
		return MHD_NO;
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, "Allow", "GET, HEAD");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(resp, "Retry-After", "1");
	rc = answer(r, status, resp, strlen(text));
	MHD_destroy_response(resp);
	return rc;
}

static void	metrics_text(struct server *, struct buf *);

static enum MHD_Result
answer_metrics(struct server *srv, struct req *r)
{
	struct MHD_Response	*resp;
	enum MHD_Result		 rc;
	struct buf		 b;

	buf_init(&b, BUF_NOMAX);
	metrics_text(srv, &b);
	resp = MHD_create_response_from_buffer(b.len, b.data,
	    MHD_RESPMEM_MUST_COPY);
	if (resp != NULL) {
		MHD_add_response_header(resp, "Content-Type",
		    "text/plain; version=0.0.4; charset=utf-8");
		MHD_add_response_header(resp, "Cache-Control", "no-store");
	}
	rc = answer(r, MHD_HTTP_OK, resp, b.len);
	if (resp != NULL)
		MHD_destroy_response(resp);
	buf_release(&b);
	return rc;
}

/*
 * Join the flight of r's key, or start one; suspend the connection. With
 * mtx held: 503 when too many flights wait already.
 */
static enum MHD_Result
join(struct server *srv, struct req *r, struct site *s, size_t preset,
    const char *original)
{
	struct flight	*f;
	size_t		 h = hash(r->key);

	for (f = srv->table[h]; f != NULL; f = f->next)
		if (strcmp(f->key, r->key) == 0)
			break;
	if (f != NULL) {
		srv->coalesced++;
	} else {
		/* N render, max_queue wait: one flight thread each. */
		if (srv->active >= (size_t)(srv->p.workers +
		    srv->p.max_queue) || srv->stopping)
			return answer_text(r, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "busy: too many previews waiting\n");
		if ((f = calloc(1, sizeof(*f))) == NULL ||
		    (f->key = strdup(r->key)) == NULL ||
		    (f->original = strdup(original)) == NULL) {
			if (f != NULL)
				free(f->key);
			free(f);
			return answer_text(r, 500, "out of memory\n");
		}
		pthread_cond_init(&f->cv, NULL);
		f->preset = preset;
		f->site = s;
		s->refs++;
		f->refs = 1;		/* the run's */
		f->next = srv->table[h];
		srv->table[h] = f;
		if (srv->qtail != NULL)
			srv->qtail->qnext = f;
		else
			srv->qhead = f;
		srv->qtail = f;
		srv->active++;
		srv->inflight++;
		pthread_cond_broadcast(&srv->cv);
	}
	f->refs++;
	r->flight = f;
	r->next = f->waiters;
	f->waiters = r;
	MHD_suspend_connection(r->conn);
	return MHD_YES;
}

/* A request's first call: answer it, or join it to its key's flight. */
static enum MHD_Result
start_request(struct server *srv, struct req *r, const char *url)
{
	const struct preset	*pr;
	struct site		*s;
	struct buf		 key, orig;
	const char		*rel;
	char			 preset[PRESET_NAME_MAX + 1];
	enum MHD_Result		 rc;
	size_t			 i;

	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
		return answer_text(r, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "only GET and HEAD\n");
	/* Not previews: not in prewctl_serve_requests_total. */
	r->internal = strcmp(url, "/healthz") == 0 ||
	    strcmp(url, "/metrics") == 0;
	if (strcmp(url, "/healthz") == 0)
		return answer_text(r, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/metrics") == 0)
		return answer_metrics(srv, r);
	if (strlen(url) > MAX_URL)
		return answer_text(r, MHD_HTTP_BAD_REQUEST, "key too long\n");
	buf_init(&key, KEY_MAX + 1);
	buf_init(&orig, BUF_NOMAX);
	if (decode_path(url, &key) != 0) {
		rc = answer_text(r, MHD_HTTP_BAD_REQUEST, "malformed path\n");
		goto out;
	}
	free(r->key);
	r->key = strdup(key.data);
	pthread_mutex_lock(&srv->mtx);
	s = srv->site;
	switch (key_parse_preview(s->cfg.previews, key.data, preset,
	    sizeof(preset), &rel)) {
	case KEY_MALFORMED:
		rc = answer_text(r, MHD_HTTP_BAD_REQUEST, "malformed path\n");
		goto unlock;
	case KEY_OUTSIDE:
		rc = answer_text(r, MHD_HTTP_NOT_FOUND, "not a preview\n");
		goto unlock;
	case KEY_OK:
		break;
	}
	for (i = 0; i < s->eng.npresets; i++)
		if (strcmp(s->eng.presets[i]->name, preset) == 0)
			break;
	pr = i < s->eng.npresets ? s->eng.presets[i] : NULL;
	if (pr == NULL) {
		rc = answer_text(r, MHD_HTTP_NOT_FOUND, "no such preset\n");
		goto unlock;
	}
	if (!diff_has_extension(rel, s->cfg.extensions, s->cfg.nextensions)) {
		rc = answer_text(r, MHD_HTTP_NOT_FOUND, "not an original's "
		    "extension\n");
		goto unlock;
	}
	if (buf_addf(&orig, "%s%s", s->cfg.source, rel) != 0 ||
	    orig.len > KEY_MAX || r->key == NULL) {
		rc = answer_text(r, MHD_HTTP_BAD_REQUEST, "key too long\n");
		goto unlock;
	}
	rc = join(srv, r, s, i, orig.data);
unlock:
	pthread_mutex_unlock(&srv->mtx);
out:
	buf_release(&key);
	buf_release(&orig);
	return rc;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct server	*srv = cls;
	struct req	*r = *con_cls;
	struct flight	*f;
	enum MHD_Result	 rc;

	(void)version;
	(void)upload;
	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		r->srv = srv;
		r->conn = conn;
		clock_gettime(CLOCK_MONOTONIC, &r->t0);
		snprintf(r->method, sizeof(r->method), "%s", method);
		/* The raw path until it is decoded, for the log. */
		r->key = strndup(url, MAX_URL);
		*con_cls = r;
		/*
		 * Answered on a later call: libmicrohttpd closes the
		 * connection of an answer queued in the first (0.9.75).
		 */
		return MHD_YES;
	}
	if (*upload_size > 0) {		/* a body we do not want */
		*upload_size = 0;
		return MHD_YES;
	}
	if (!r->started) {
		r->started = 1;
		return start_request(srv, r, url);
	}
	if ((f = r->flight) == NULL || !f->done)
		return MHD_YES;
	/* Resumed: the flight's answer, shared by all its waiters. */
	rc = answer(r, f->status, f->resp, f->size);
	pthread_mutex_lock(&srv->mtx);
	r->flight = NULL;
	flight_unref(srv, f);
	pthread_mutex_unlock(&srv->mtx);
	return rc;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct server		*srv = cls;
	struct req		*r = *con_cls;
	struct serve_access	 a;
	size_t			 i;

	(void)conn;
	(void)toe;
	if (r == NULL)
		return;
	pthread_mutex_lock(&srv->mtx);
	if (r->flight != NULL)		/* gone before its answer */
		flight_unref(srv, r->flight);
	for (i = 0; codes[i] != 0 && codes[i] != r->status; i++)
		;
	if (!r->internal)
		srv->requests[i]++;
	pthread_mutex_unlock(&srv->mtx);
	if (srv->p.access != NULL) {
		a = (struct serve_access){ r->method, r->key != NULL ? r->key :
		    "", (int)r->status, r->bytes, since(&r->t0) * 1000 };
		srv->p.access(srv->p.arg, &a);
	}
	free(r->key);
	free(r);
	*con_cls = NULL;
}

/* ---- metrics ---------------------------------------------------------- */

static void
metric_head(struct buf *b, const char *name, const char *type,
    const char *help)
{
	buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
metrics_text(struct server *srv, struct buf *b)
{
	struct site	*s;
	size_t		 i;
	int		 up;

	up = srv->redis != NULL && lock_server_up(srv->redis);
	pthread_mutex_lock(&srv->mtx);
	s = srv->site;
	metric_head(b, "prewctl_serve_requests_total", "counter",
	    "Requests answered, by HTTP status.");
	for (i = 0; codes[i] != 0; i++)
		buf_addf(b, "prewctl_serve_requests_total{code=\"%u\"} %llu\n",
		    codes[i], (unsigned long long)srv->requests[i]);
	buf_addf(b, "prewctl_serve_requests_total{code=\"other\"} %llu\n",
	    (unsigned long long)srv->requests[i]);
	metric_head(b, "prewctl_serve_renders_total", "counter",
	    "Renders this process ran, whatever their result.");
	buf_addf(b, "prewctl_serve_renders_total %llu\n",
	    (unsigned long long)srv->renders);
	metric_head(b, "prewctl_serve_coalesced_total", "counter",
	    "Requests that waited for another's render.");
	buf_addf(b, "prewctl_serve_coalesced_total %llu\n",
	    (unsigned long long)srv->coalesced);
	metric_head(b, "prewctl_serve_render_seconds", "histogram",
	    "Time to fetch, render and store one preview.");
	for (i = 0; i < NBUCKETS; i++)
		buf_addf(b, "prewctl_serve_render_seconds_bucket{le=\"%g\"} "
		    "%llu\n", buckets[i], (unsigned long long)srv->hist[i]);
	buf_addf(b, "prewctl_serve_render_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "prewctl_serve_render_seconds_sum %.6f\n"
	    "prewctl_serve_render_seconds_count %llu\n",
	    (unsigned long long)srv->hist_count, srv->hist_sum,
	    (unsigned long long)srv->hist_count);
	metric_head(b, "prewctl_serve_inflight", "gauge",
	    "Previews being made or waited for.");
	buf_addf(b, "prewctl_serve_inflight %zu\n", srv->inflight);
	metric_head(b, "prewctl_serve_redis_up", "gauge",
	    "1 while Redis answers (0 without --redis).");
	buf_addf(b, "prewctl_serve_redis_up %d\n", up);
	metric_head(b, "prewctl_serve_unstored_total", "counter",
	    "Previews answered but not stored: the preset's stamp is not ours.");
	for (i = 0; i < s->eng.npresets; i++)
		buf_addf(b, "prewctl_serve_unstored_total{preset=\"%s\"} %llu\n",
		    s->eng.presets[i]->name,
		    (unsigned long long)s->unstored[i]);
	metric_head(b, "prewctl_serve_preset_stored", "gauge",
	    "1 while a preset's stamp is ours and its previews are stored.");
	for (i = 0; i < s->eng.npresets; i++)
		buf_addf(b, "prewctl_serve_preset_stored{preset=\"%s\"} %d\n",
		    s->eng.presets[i]->name, guard_may_store(s->guard, i));
	pthread_mutex_unlock(&srv->mtx);
	metric_head(b, "prewctl_build_info", "gauge",
	    "The versions of prewctl and libvips.");
	buf_addf(b, "prewctl_build_info{version=\"%s\",vips=\"%s\"} 1\n",
	    PREWCTL_VERSION, vips_version_string());
}

/* ---- start, reload, stop ----------------------------------------------- */

static void
redis_changed(void *arg, int up, const char *why)
{
	struct server	*srv = arg;

	if (up)
		note(srv, "redis: %s: one render per key across instances "
		    "again", why);
	else
		note(srv, "redis: %s: going on alone (one render per key in "
		    "this process)", why);
}

struct server *
serve_start(const struct serve_params *p, struct config *cfg,
    enum serve_fail *fail, char *err, size_t len)
{
	struct server	*srv;
	int		 i, rc;

	if ((srv = calloc(1, sizeof(*srv))) == NULL) {
		*fail = SERVE_STORAGE;
		snprintf(err, len, "out of memory");
		return NULL;
	}
	srv->p = *p;
	pthread_mutex_init(&srv->mtx, NULL);
	pthread_cond_init(&srv->cv, NULL);
	/* Longer than any render: fetch, image_timeout, store. */
	srv->wait_ms = ((long)cfg->image_timeout_s + 2 * cfg->low_speed_time_s +
	    10) * 1000;
	if (p->redis != NULL) {
		*fail = SERVE_CONFIG;
		if ((srv->redis = lock_server_new(p->redis, err, len)) == NULL)
			goto fail;
		lock_server_on_change(srv->redis, redis_changed, srv);
	}
	if ((srv->site = site_new(srv, cfg, fail, err, len)) == NULL)
		goto fail;
	srv->nthreads = p->workers + p->max_queue;
	if ((srv->threads = calloc((size_t)srv->nthreads,
	    sizeof(*srv->threads))) == NULL) {
		*fail = SERVE_STORAGE;
		snprintf(err, len, "out of memory");
		goto fail;
	}
	for (i = 0; i < srv->nthreads; i++)
		if ((rc = thread_start(&srv->threads[i], flight_main,
		    srv)) != 0) {
			srv->nthreads = i;
			*fail = SERVE_STORAGE;
			snprintf(err, len, "cannot start %d threads: %s",
			    p->workers + p->max_queue, strerror(rc));
			goto fail;
		}
	srv->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
	    on_request, srv,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&srv->p.addr,
	    MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
	    MHD_OPTION_END);
	if (srv->mhd == NULL) {
		int	save = errno;
		char	host[INET6_ADDRSTRLEN];
		const struct sockaddr_in6 *a6 = (const void *)&srv->p.addr;
		const struct sockaddr_in *a4 = (const void *)&srv->p.addr;

		*fail = SERVE_LISTEN;
		if (a6->sin6_family == AF_INET6)
			snprintf(err, len, "cannot listen on [%s]:%u: %s",
			    inet_ntop(AF_INET6, &a6->sin6_addr, host,
			    sizeof(host)), ntohs(a6->sin6_port),
			    strerror(save));
		else
			snprintf(err, len, "cannot listen on %s:%u: %s",
			    inet_ntop(AF_INET, &a4->sin_addr, host,
			    sizeof(host)), ntohs(a4->sin_port),
			    strerror(save));
		goto fail;
	}
	return srv;
fail:
	pthread_mutex_lock(&srv->mtx);
	srv->stopping = 1;
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mtx);
	for (i = 0; i < srv->nthreads; i++)
		pthread_join(srv->threads[i], NULL);
	free(srv->threads);
	if (srv->site != NULL) {
		/* cfg is the site's now: give it back. */
		*cfg = srv->site->cfg;
		memset(&srv->site->cfg, 0, sizeof(srv->site->cfg));
		site_free(srv->site);
	}
	lock_server_free(srv->redis);
	pthread_mutex_destroy(&srv->mtx);
	pthread_cond_destroy(&srv->cv);
	free(srv);
	return NULL;
}

int
serve_reload(struct server *srv, struct config *cfg, char *err, size_t len)
{
	enum serve_fail	 fail;
	struct site	*s, *old;

	if ((s = site_new(srv, cfg, &fail, err, len)) == NULL)
		return -1;
	pthread_mutex_lock(&srv->mtx);
	old = srv->site;
	srv->site = s;
	site_unref(srv, old);
	pthread_mutex_unlock(&srv->mtx);
	return 0;
}

void
serve_tick(struct server *srv)
{
	struct site	*dead, *next;

	if (srv->redis != NULL)
		(void)lock_server_check(srv->redis);
	pthread_mutex_lock(&srv->mtx);
	dead = srv->dead;
	srv->dead = NULL;
	pthread_mutex_unlock(&srv->mtx);
	for (; dead != NULL; dead = next) {
		next = dead->next;
		site_free(dead);
	}
}

void
serve_stop(struct server *srv)
{
	const union MHD_DaemonInfo	*info;
	struct timespec			 t0;
	int				 i, fd;

	/* No new connection; what is open is answered. */
	if ((fd = MHD_quiesce_daemon(srv->mhd)) != -1)
		close(fd);
	pthread_mutex_lock(&srv->mtx);
	srv->stopping = 1;
	pthread_cond_broadcast(&srv->cv);
	while (srv->inflight > 0)
		pthread_cond_wait(&srv->cv, &srv->mtx);
	pthread_mutex_unlock(&srv->mtx);
	/* The resumed waiters are being sent their answers: let them go. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (since(&t0) < 10 && (info = MHD_get_daemon_info(srv->mhd,
	    MHD_DAEMON_INFO_CURRENT_CONNECTIONS)) != NULL &&
	    info->num_connections > 0) {
		struct timespec ts = { 0, 20 * 1000000L };

		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(srv->mhd);
	for (i = 0; i < srv->nthreads; i++)
		pthread_join(srv->threads[i], NULL);
	free(srv->threads);
	pthread_mutex_lock(&srv->mtx);
	site_unref(srv, srv->site);
	pthread_mutex_unlock(&srv->mtx);
	serve_tick(srv);
	lock_server_free(srv->redis);
	pthread_mutex_destroy(&srv->mtx);
	pthread_cond_destroy(&srv->cv);
	free(srv);
}
