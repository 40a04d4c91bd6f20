/*
 * buf: the one growable byte buffer.
 *
 * Invariants (hold after every call, success or failure):
 *   - data is never NULL once buf_init has run: it points at a static "" when
 *     nothing is allocated, so a buf can always be read as a C string;
 *   - data[len] == '\0';
 *   - len <= max: an append that would pass max fails, leaves the buffer as it
 *     was and returns -1, so a hostile peer cannot grow it without bound.
 * Functions return 0 on success and -1 on failure (no memory, or over max).
 * Ownership: buf_release frees the contents; buf_detach hands them to the
 * caller, who frees them with free().
 */
#ifndef PREWCTL_BUF_H
#define PREWCTL_BUF_H

#include <stddef.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;
};

#define BUF_NOMAX ((size_t)-1 / 2)

void	 buf_init(struct buf *, size_t max);
void	 buf_release(struct buf *);
void	 buf_reset(struct buf *);
/* Cut to len bytes (len <= b->len). */
void	 buf_truncate(struct buf *, size_t len);
int	 buf_grow(struct buf *, size_t extra);
/* Bytes that can be written at data[len] without growing (0 if none). */
size_t	 buf_avail(const struct buf *);
/*
 * Set len after writing into the room buf_avail gave; len must be within
 * it (at most cap - 1), or 0.
 */
void	 buf_setlen(struct buf *, size_t len);
int	 buf_add(struct buf *, const void *, size_t);
int	 buf_addstr(struct buf *, const char *);
int	 buf_addch(struct buf *, char);
int	 buf_addf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
char	*buf_detach(struct buf *, size_t *lenp);

#endif
