/*
 * lock: see lock.h. hiredis' synchronous API, one context per thread; a
 * context that failed once is dropped, and the next call connects anew.
 */
#include <sys/random.h>
#include <sys/time.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "lock.h"

#define CONNECT_MS	500	/* loopback or a LAN: quick, or down */
#define COMMAND_MS	1000
#define RETRY_MS	1000	/* while down, connect at most this often */

struct lock_server {
	char		*host;
	int		 port;
	int		 db;
	char		*user;		/* AUTH, when the URL has a password */
	char		*pass;
	pthread_mutex_t	 mtx;
	int		 up;
	struct timespec	 retry_at;	/* while down */
	void		(*on_change)(void *, int, const char *);
	void		*arg;
	redisContext	*probe;		/* lock_server_check's own */
};

struct lock_conn {
	struct lock_server	*srv;
	redisContext		*c;
};

/*
 * The holder's end, in one step so that no waiter can fall between: the
 * lock deleted if it is still ours, the result kept a while for a waiter
 * that looks right after, and published for those waiting.
 */
static const char finish_lua[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "redis.call('del', KEYS[1]) end "
    "redis.call('set', KEYS[2], ARGV[2], 'px', ARGV[3]) "
    "redis.call('publish', KEYS[3], ARGV[2]) return 1";

/* A longer life for the lock, if it is still ours. */
static const char extend_lua[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

/*
 * What a waiter sees at once: the lock's time to live, and the last
 * holder's result (only meaningful when the lock is gone).
 */
static const char look_lua[] =
    "return {redis.call('pttl', KEYS[1]), redis.call('get', KEYS[2])}";

#define RESULT_MS	10000	/* a result is kept this long */

void
lock_url_shown(const char *url, char *dst, size_t len)
{
	const char	*at, *host;

	host = strncmp(url, "redis://", 8) == 0 ? url + 8 : url;
	at = strchr(host, '@');
	if (at != NULL && at < host + strcspn(host, "/"))
		snprintf(dst, len, "%.*s***@%s", (int)(host - url), url,
		    at + 1);
	else
		snprintf(dst, len, "%s", url);
}

struct lock_server *
lock_server_new(const char *url, char *err, size_t len)
{
	struct lock_server	*s;
	const char		*h, *e, *p, *at, *colon;
	char			*end, shown[512];
	long			 port = 6379, db = 0;

	lock_url_shown(url, shown, sizeof(shown));
	if (strncmp(url, "redis://", 8) != 0) {
		snprintf(err, len, "'%s' is no redis:// URL", shown);
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	h = url + 8;
	/* [user:]password@ */
	at = strchr(h, '@');
	if (at != NULL && at < h + strcspn(h, "/")) {
		colon = memchr(h, ':', (size_t)(at - h));
		if (colon == NULL)
			colon = h - 1;		/* a password alone */
		s->user = strndup(h, (size_t)(colon >= h ? colon - h : 0));
		s->pass = strndup(colon + 1, (size_t)(at - colon - 1));
		if (s->user == NULL || s->pass == NULL) {
			snprintf(err, len, "out of memory");
			goto fail;
		}
		h = at + 1;
	}
	if (*h == '[') {
		if ((e = strchr(h, ']')) == NULL) {
			snprintf(err, len, "'%s': no ']' after the address",
			    shown);
			goto fail;
		}
		p = e + 1;
		h++;
	} else {
		e = h + strcspn(h, ":/");
		p = e;
	}
	if (e == h) {
		snprintf(err, len, "'%s' names no host", shown);
		goto fail;
	}
	if (*p == ':') {
		errno = 0;
		port = strtol(p + 1, &end, 10);
		if (errno != 0 || end == p + 1 || port < 1 || port > 65535) {
			snprintf(err, len, "'%s': bad port", shown);
			goto fail;
		}
		p = end;
	}
	if (*p == '/' && p[1] != '\0') {
		errno = 0;
		db = strtol(p + 1, &end, 10);
		if (errno != 0 || end == p + 1 || *end != '\0' || db < 0 ||
		    db > 1000000) {
			snprintf(err, len, "'%s': bad database number", shown);
			goto fail;
		}
	} else if (*p != '\0' && strcmp(p, "/") != 0) {
		snprintf(err, len, "'%s': want redis://[[USER]:PASSWORD@]"
		    "HOST:PORT[/DB]", shown);
		goto fail;
	}
	if ((s->host = strndup(h, (size_t)(e - h))) == NULL) {
		snprintf(err, len, "out of memory");
		goto fail;
	}
	s->port = (int)port;
	s->db = (int)db;
	s->up = 1;	/* until it is known not to be */
	pthread_mutex_init(&s->mtx, NULL);
	return s;
fail:
	free(s->user);
	free(s->pass);
	free(s);
	return NULL;
}

void
lock_server_free(struct lock_server *s)
{
	if (s == NULL)
		return;
	if (s->probe != NULL)
		redisFree(s->probe);
	pthread_mutex_destroy(&s->mtx);
	if (s->pass != NULL)
		explicit_bzero(s->pass, strlen(s->pass));
	free(s->user);
	free(s->pass);
	free(s->host);
	free(s);
}

int
lock_server_up(struct lock_server *s)
{
	int	up;

	pthread_mutex_lock(&s->mtx);
	up = s->up;
	pthread_mutex_unlock(&s->mtx);
	return up;
}

void
lock_server_on_change(struct lock_server *s,
    void (*fn)(void *, int, const char *), void *arg)
{
	s->on_change = fn;
	s->arg = arg;
}

static void
add_ms(struct timespec *t, long ms)
{
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

/* Record whether Redis answered; say so once on each change. */
static void
note(struct lock_server *s, int up, const char *why)
{
	pthread_mutex_lock(&s->mtx);
	if (!up) {
		clock_gettime(CLOCK_MONOTONIC, &s->retry_at);
		add_ms(&s->retry_at, RETRY_MS);
	}
	if (s->up != up) {
		s->up = up;
		if (s->on_change != NULL)
			s->on_change(s->arg, up, why);
	}
	pthread_mutex_unlock(&s->mtx);
}

/* Whether a connection may be tried now (not while down, too often). */
static int
may_try(struct lock_server *s)
{
	struct timespec	now;
	int		ok;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&s->mtx);
	ok = s->up || now.tv_sec > s->retry_at.tv_sec ||
	    (now.tv_sec == s->retry_at.tv_sec &&
	    now.tv_nsec >= s->retry_at.tv_nsec);
	pthread_mutex_unlock(&s->mtx);
	return ok;
}

static struct timeval
tv_ms(long ms)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	return tv;
}

/* A fresh context, connected and on its database; NULL when down. */
static redisContext *
connect_(struct lock_server *s)
{
	redisContext	*c;
	redisReply	*r;
	char		 why[256];

	c = redisConnectWithTimeout(s->host, s->port, tv_ms(CONNECT_MS));
	if (c == NULL || c->err != 0) {
		snprintf(why, sizeof(why), "cannot connect to %s:%d: %s",
		    s->host, s->port, c != NULL ? c->errstr : "out of memory");
		if (c != NULL)
			redisFree(c);
		note(s, 0, why);
		return NULL;
	}
	(void)redisSetTimeout(c, tv_ms(COMMAND_MS));
	/* Up once it answers a command: AUTH, SELECT, or a PING. */
	if (s->pass != NULL && s->user[0] != '\0')
		r = redisCommand(c, "AUTH %s %s", s->user, s->pass);
	else if (s->pass != NULL)
		r = redisCommand(c, "AUTH %s", s->pass);
	else
		r = redisCommand(c, "PING");
	if (r != NULL && r->type != REDIS_REPLY_ERROR && s->db != 0) {
		freeReplyObject(r);
		r = redisCommand(c, "SELECT %d", s->db);
	}
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		/* Redis' own words; AUTH's never hold the password. */
		snprintf(why, sizeof(why), "%s:%d does not take us: %s",
		    s->host, s->port, r != NULL ? r->str : c->errstr);
		if (r != NULL)
			freeReplyObject(r);
		redisFree(c);
		note(s, 0, why);
		return NULL;
	}
	freeReplyObject(r);
	note(s, 1, "answers again");
	return c;
}

struct lock_conn *
lock_conn_new(struct lock_server *s)
{
	struct lock_conn	*lc;

	if ((lc = calloc(1, sizeof(*lc))) == NULL)
		return NULL;
	lc->srv = s;
	return lc;
}

void
lock_conn_free(struct lock_conn *lc)
{
	if (lc == NULL)
		return;
	if (lc->c != NULL)
		redisFree(lc->c);
	free(lc);
}

static int
ensure(struct lock_conn *lc)
{
	if (lc->c == NULL && may_try(lc->srv))
		lc->c = connect_(lc->srv);
	return lc->c != NULL ? 0 : -1;
}

/* A command failed: drop the context, mark the server down. */
static void
broken(struct lock_conn *lc, redisReply *r)
{
	char	why[256];

	snprintf(why, sizeof(why), "%s", r != NULL && r->type ==
	    REDIS_REPLY_ERROR ? r->str : lc->c->errstr[0] != '\0' ?
	    lc->c->errstr : "no answer");
	if (r != NULL)
		freeReplyObject(r);
	redisFree(lc->c);
	lc->c = NULL;
	note(lc->srv, 0, why);
}

/*
 * A command on lc's context, connecting when there is none; NULL when
 * Redis does not answer (then marked down). A context that worked before
 * finds its connection closed after a Redis restart: the command never
 * ran, so it goes once more on a new connection before Redis counts as
 * down. A timeout is not retried: the command may have run.
 */
static redisReply *
command(struct lock_conn *lc, const char *fmt, ...)
{
	va_list		 ap, aq;
	redisReply	*r = NULL;
	int		 attempt, fresh, closed;

	va_start(ap, fmt);
	for (attempt = 0; attempt < 2; attempt++) {
		fresh = lc->c == NULL;
		if (ensure(lc) != 0)
			break;
		va_copy(aq, ap);
		r = redisvCommand(lc->c, fmt, aq);
		va_end(aq);
		if (r != NULL && r->type != REDIS_REPLY_ERROR)
			break;
		closed = r == NULL && (lc->c->err == REDIS_ERR_EOF ||
		    (lc->c->err == REDIS_ERR_IO && (errno == EPIPE ||
		    errno == ECONNRESET)));
		if (fresh || !closed || attempt == 1) {
			broken(lc, r);
			r = NULL;
			break;
		}
		redisFree(lc->c);
		lc->c = NULL;
	}
	va_end(ap);
	return r;
}

int
lock_server_check(struct lock_server *s)
{
	redisReply	*r;

	if (s->probe == NULL && (s->probe = connect_(s)) == NULL)
		return 0;
	r = redisCommand(s->probe, "PING");
	if (r != NULL && r->type != REDIS_REPLY_ERROR) {
		freeReplyObject(r);
		note(s, 1, "answers again");
		return 1;
	}
	note(s, 0, r != NULL ? r->str : s->probe->errstr[0] != '\0' ?
	    s->probe->errstr : "no answer");
	if (r != NULL)
		freeReplyObject(r);
	redisFree(s->probe);
	s->probe = NULL;
	return 0;
}

/* "prewctl:<kind>:<name>", binary-safe, into a new buffer. */
static char *
redis_key(const char *kind, const char *name, size_t nlen, size_t *klen)
{
	size_t	 pl = strlen(kind);
	char	*k;

	if ((k = malloc(pl + nlen + 1)) == NULL)
		return NULL;
	memcpy(k, kind, pl);
	memcpy(k + pl, name, nlen);
	k[pl + nlen] = '\0';
	*klen = pl + nlen;
	return k;
}

enum lock_result
lock_take(struct lock_conn *lc, const char *name, size_t nlen, long ttl_ms,
    char *token)
{
	unsigned char	 rnd[16];
	redisReply	*r;
	enum lock_result res;
	size_t		 klen, i;
	char		*key;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return LOCK_DOWN;
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	if ((key = redis_key("prewctl:lock:", name, nlen, &klen)) == NULL)
		return LOCK_DOWN;
	r = command(lc, "SET %b %s NX PX %ld", key, klen, token, ttl_ms);
	free(key);
	if (r == NULL)
		return LOCK_DOWN;
	res = r->type == REDIS_REPLY_STATUS ? LOCK_TAKEN : LOCK_HELD;
	freeReplyObject(r);
	return res;
}

int
lock_extend(struct lock_conn *lc, const char *name, size_t nlen,
    const char *token, long ttl_ms)
{
	redisReply	*r;
	size_t		 klen;
	char		*key;
	int		 ours;

	if ((key = redis_key("prewctl:lock:", name, nlen, &klen)) == NULL)
		return -1;
	r = command(lc, "EVAL %s 1 %b %s %ld", extend_lua, key, klen, token,
	    ttl_ms);
	free(key);
	if (r == NULL)
		return -1;
	ours = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return ours ? 0 : -1;
}

void
lock_finish(struct lock_conn *lc, const char *name, size_t nlen,
    const char *token, const char *msg)
{
	redisReply	*r;
	size_t		 klen, rlen, clen;
	char		*key, *res, *ch;

	key = redis_key("prewctl:lock:", name, nlen, &klen);
	res = redis_key("prewctl:result:", name, nlen, &rlen);
	ch = redis_key("prewctl:done:", name, nlen, &clen);
	if (key != NULL && res != NULL && ch != NULL) {
		r = command(lc, "EVAL %s 3 %b %b %b %s %s %d", finish_lua,
		    key, klen, res, rlen, ch, clen, token, msg, RESULT_MS);
		if (r != NULL)
			freeReplyObject(r);
	}
	free(key);
	free(res);
	free(ch);
}

enum lock_wait
lock_wait(struct lock_conn *lc, const char *name, size_t nlen, char *msg,
    size_t len)
{
	redisContext	*sub = NULL;
	redisReply	*r = NULL;
	enum lock_wait	 ret = WAIT_DOWN;
	long long	 pttl;
	size_t		 klen, rlen, clen;
	char		*key, *res, *ch;

	key = redis_key("prewctl:lock:", name, nlen, &klen);
	res = redis_key("prewctl:result:", name, nlen, &rlen);
	ch = redis_key("prewctl:done:", name, nlen, &clen);
	if (key == NULL || res == NULL || ch == NULL || ensure(lc) != 0)
		goto out;
	/* Subscribed first, so that no message can pass unseen. */
	if ((sub = connect_(lc->srv)) == NULL)
		goto out;
	r = redisCommand(sub, "SUBSCRIBE %b", ch, clen);
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		note(lc->srv, 0, r != NULL ? r->str : sub->errstr);
		goto out;
	}
	freeReplyObject(r);
	r = command(lc, "EVAL %s 2 %b %b", look_lua, key, klen, res, rlen);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		if (r != NULL)
			broken(lc, r);
		r = NULL;
		goto out;
	}
	pttl = r->element[0]->integer;
	if (pttl == -2) {
		/* Released with its result, or expired with none. */
		if (r->element[1]->type == REDIS_REPLY_STRING) {
			snprintf(msg, len, "%.*s", (int)r->element[1]->len,
			    r->element[1]->str);
			ret = WAIT_MESSAGE;
		} else
			ret = WAIT_FREE;
		goto out;
	}
	freeReplyObject(r);
	r = NULL;
	if (pttl < 0)			/* no expiry: not one of ours */
		pttl = COMMAND_MS;
	(void)redisSetTimeout(sub, tv_ms((long)pttl + 100));
	if (redisGetReply(sub, (void **)&r) != REDIS_OK) {
		/* No word within the TTL: look at the lock again. */
		ret = sub->err == REDIS_ERR_IO && (errno == EAGAIN ||
		    errno == EWOULDBLOCK) ? WAIT_FREE : WAIT_DOWN;
		r = NULL;
		goto out;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[2]->type == REDIS_REPLY_STRING) {
		snprintf(msg, len, "%.*s", (int)r->element[2]->len,
		    r->element[2]->str);
		ret = WAIT_MESSAGE;
	}
out:
	if (r != NULL)
		freeReplyObject(r);
	if (sub != NULL)
		redisFree(sub);
	free(key);
	free(res);
	free(ch);
	return ret;
}
