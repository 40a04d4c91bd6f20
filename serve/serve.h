/*
 * serve: the on-demand half. nginx serves /<previews><preset>/<rel> from
 * the bucket; when S3 answers 403 or 404 it asks us. We map the URI back
 * to a preview key, refuse anything that is not one before any request,
 * make the preview with the same engine as generate (the same bytes, the
 * same metadata), store it, and answer with it.
 *
 * One render per key however many ask: in this process a flight per key
 * that every request for it joins (its connection suspended, holding no
 * thread); across processes a Redis lock (lock.h). Flights run in flight
 * threads, which take the lock or wait for its holder's result; the
 * render itself goes through the pool of work.h, the same pool generate
 * uses, sized to the CPUs.
 *
 * Nothing here prints: events and access lines go to the callbacks.
 */
#ifndef PREWCTL_SERVE_H
#define PREWCTL_SERVE_H

#include <sys/socket.h>

#include <stdint.h>

#include "preview/config.h"
#include "s3/s3.h"

/* One line of the access log. */
struct serve_access {
	const char	*method;
	const char	*key;		/* the decoded key, or the raw path */
	int		 status;
	uint64_t	 bytes;
	double		 ms;
};

struct serve_params {
	struct sockaddr_storage	 addr;		/* serve_parse_listen */
	socklen_t		 addrlen;
	int			 workers;	/* renders at once */
	int			 max_queue;	/* flights waiting, then 503 */
	const char		*redis;		/* redis:// URL, or NULL */
	s3_log_fn		 request_log;	/* -vv: each storage request */
	void			(*access)(void *, const struct serve_access *);
	void			(*note)(void *, const char *msg);
	void			*arg;
};

/* "ADDR:PORT" ("[v6]:PORT") into p->addr; -1 with why in err. */
int		 serve_parse_listen(const char *, struct serve_params *p,
		    char *err, size_t);

struct server;

/* Why serve_start failed, for the exit status. */
enum serve_fail {
	SERVE_CONFIG,		/* the configuration or Redis URL cannot work */
	SERVE_STORAGE,		/* storage failed, or no memory */
	SERVE_LISTEN,		/* the address cannot be bound */
};

/*
 * Start serving cfg (taken over when it succeeds). NULL with why in err
 * and what kind of failure in *fail.
 */
struct server	*serve_start(const struct serve_params *, struct config *cfg,
		    enum serve_fail *fail, char *err, size_t);
/*
 * Serve cfg from now on (taken over when it succeeds); the requests
 * already in flight finish with the old one. -1 with why in err: the old
 * configuration stays.
 */
int		 serve_reload(struct server *, struct config *cfg, char *err,
		    size_t);
/*
 * Once a second or so from the main thread: asks Redis whether it answers,
 * frees what old configurations held.
 */
void		 serve_tick(struct server *);
/* Stop taking connections, finish the flights, answer every waiter, stop. */
void		 serve_stop(struct server *);

#endif
