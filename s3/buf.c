#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static char buf_empty[1];

void
buf_init(struct buf *b, size_t max)
{
	b->data = buf_empty;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_release(struct buf *b)
{
	if (b->cap != 0)
		free(b->data);
	buf_init(b, b->max);
}

void
buf_reset(struct buf *b)
{
	buf_truncate(b, 0);
}

void
buf_truncate(struct buf *b, size_t len)
{
	/* Nothing allocated: data is the shared static "", never written. */
	if (b->cap == 0 || len > b->len)
		return;
	b->len = len;
	b->data[len] = '\0';
}

int
buf_grow(struct buf *b, size_t extra)
{
	size_t	 want, cap;
	char	*p;

	if (extra > b->max - b->len)
		return -1;
	want = b->len + extra + 1;
	if (want <= b->cap)
		return 0;
	cap = b->cap < 64 ? 64 : b->cap;
	while (cap < want)
		cap = cap > (size_t)-1 / 2 ? want : cap * 2;
	p = realloc(b->cap != 0 ? b->data : NULL, cap);
	if (p == NULL)
		return -1;
	if (b->cap == 0)
		p[0] = '\0';
	b->data = p;
	b->cap = cap;
	return 0;
}

size_t
buf_avail(const struct buf *b)
{
	return b->cap > b->len ? b->cap - b->len - 1 : 0;
}

void
buf_setlen(struct buf *b, size_t len)
{
	/* Never a write to the shared empty string. */
	if (b->cap == 0 || len >= b->cap)
		return;
	b->len = len;
	b->data[len] = '\0';
}

int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_grow(b, n) != 0)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_addstr(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
buf_addch(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

int
buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_grow(b, (size_t)n) != 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *
buf_detach(struct buf *b, size_t *lenp)
{
	char	*p;

	if (buf_grow(b, 0) != 0)
		return NULL;
	p = b->data;
	if (lenp != NULL)
		*lenp = b->len;
	b->data = buf_empty;
	b->len = b->cap = 0;
	return p;
}
