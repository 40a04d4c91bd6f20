/*
 * lock: one render per key across serve instances, through Redis.
 *
 * The lock only saves work: a preview is deterministic and a PUT replaces
 * a whole object, so two instances rendering the same key at once store
 * the same bytes. Hence Redis' single-instance lock is enough:
 *
 *   take     SET <lock> <token> NX PX <ttl>, the token random per take;
 *   extend   while it works, the holder renews the TTL (a token-checked
 *            PEXPIRE), so that a short TTL covers a long render;
 *   finish   one Lua script: delete the lock if it is still ours (a holder
 *            whose lock expired never deletes another's), keep the result
 *            ("ok", "retry" or "fail <status> <reason>") a few seconds
 *            under a key of its own, and PUBLISH it on the key's channel;
 *   wait     the others SUBSCRIBE, then look at the lock and the result in
 *            one script: the lock gone with a result is that result; held,
 *            they wait for the message at most until its TTL has run out
 *            (a holder that died blocks nobody longer).
 *
 * Each thread owns its own struct lock_conn (hiredis contexts are not
 * thread-safe). A struct lock_server is shared: the address, and whether
 * Redis answers (lock_server_up), which every connection updates; while it
 * does not, connecting is tried at most once a second.
 */
#ifndef PREWCTL_LOCK_H
#define PREWCTL_LOCK_H

#include <stddef.h>

struct lock_server;
struct lock_conn;

/*
 * "redis://[[USER]:PASSWORD@]HOST:PORT[/DB]" (HOST may be [v6]); NULL
 * with why in err when the URL is malformed. With a password, each
 * connection starts with AUTH.
 */
struct lock_server *lock_server_new(const char *url, char *err, size_t len);
/* The URL as it may be shown: its password, if any, as "***". */
void		 lock_url_shown(const char *url, char *dst, size_t len);
void		 lock_server_free(struct lock_server *);
/* 1 while Redis answers, 0 after it failed, until it answers again. */
int		 lock_server_up(struct lock_server *);
/*
 * Ask Redis whether it answers (PING, on a connection of the server's
 * own: one thread only), so that lock_server_up is true of an idle
 * process too; 1 when it does.
 */
int		 lock_server_check(struct lock_server *);
/* Called (serialised) when Redis goes down or comes back, with why. */
void		 lock_server_on_change(struct lock_server *,
		    void (*fn)(void *arg, int up, const char *why), void *arg);

struct lock_conn *lock_conn_new(struct lock_server *);
void		 lock_conn_free(struct lock_conn *);

enum lock_result {
	LOCK_TAKEN,		/* ours: render, extend, finish */
	LOCK_HELD,		/* another has it: wait for its result */
	LOCK_DOWN,		/* Redis does not answer: go on alone */
};

/*
 * Take the lock of name for ttl_ms. With LOCK_TAKEN, token (at least 33
 * bytes) holds what lock_extend and lock_finish need.
 */
enum lock_result lock_take(struct lock_conn *, const char *name, size_t nlen,
		    long ttl_ms, char *token);
/* Give the lock ttl_ms more to live; -1 when it is no longer ours. */
int		 lock_extend(struct lock_conn *, const char *name, size_t nlen,
		    const char *token, long ttl_ms);
/*
 * Release the lock if it is still ours and tell the waiters msg: "ok",
 * "retry" or "fail <status> <reason>".
 */
void		 lock_finish(struct lock_conn *, const char *name, size_t nlen,
		    const char *token, const char *msg);

enum lock_wait {
	WAIT_MESSAGE,		/* msg holds what the holder published */
	WAIT_FREE,		/* the lock is free: take it again */
	WAIT_DOWN,		/* Redis failed: go on alone */
};

/*
 * Wait for the holder of name: subscribe, then look at the lock; if it is
 * still held, wait for the message at most until its TTL runs out (then
 * WAIT_FREE). msg (len bytes) gets the message.
 */
enum lock_wait	 lock_wait(struct lock_conn *, const char *name, size_t nlen,
		    char *msg, size_t len);

#endif
