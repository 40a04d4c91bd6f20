/*
 * buf: the invariants buf.h promises, after every call.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "s3/buf.h"

static void
invariants(const struct buf *b)
{
	cr_assert_not_null(b->data);
	cr_assert_eq(b->data[b->len], '\0');
	cr_assert_leq(b->len, b->max);
	cr_assert(b->cap == 0 || b->len < b->cap);
}

Test(buf, empty_is_a_readable_string)
{
	struct buf	b;

	buf_init(&b, 100);
	invariants(&b);
	cr_assert_str_eq(b.data, "");
	cr_assert_eq(buf_avail(&b), 0);
	/* Neither may write into the shared empty string. */
	buf_truncate(&b, 0);
	buf_reset(&b);
	buf_setlen(&b, 0);
	invariants(&b);
	buf_release(&b);
	invariants(&b);
}

Test(buf, appends)
{
	struct buf	b;

	buf_init(&b, BUF_NOMAX);
	cr_assert_eq(buf_add(&b, "ab", 2), 0);
	cr_assert_eq(buf_addch(&b, 'c'), 0);
	cr_assert_eq(buf_addstr(&b, "de"), 0);
	cr_assert_eq(buf_addf(&b, "%d-%s", 42, "x"), 0);
	invariants(&b);
	cr_assert_str_eq(b.data, "abcde42-x");
	cr_assert_eq(b.len, 9);
	buf_truncate(&b, 3);
	cr_assert_str_eq(b.data, "abc");
	/* Longer than what is there: nothing changes. */
	buf_truncate(&b, 10);
	cr_assert_str_eq(b.data, "abc");
	buf_reset(&b);
	cr_assert_str_eq(b.data, "");
	invariants(&b);
	buf_release(&b);
}

/* Past max an append fails and leaves the buffer as it was. */
Test(buf, max_is_kept)
{
	struct buf	b;

	buf_init(&b, 5);
	cr_assert_eq(buf_add(&b, "abcd", 4), 0);
	cr_assert_eq(buf_add(&b, "ef", 2), -1);
	cr_assert_str_eq(b.data, "abcd");
	cr_assert_eq(buf_addf(&b, "%s", "xyz"), -1);
	cr_assert_str_eq(b.data, "abcd");
	cr_assert_eq(buf_addch(&b, 'e'), 0);
	cr_assert_eq(buf_addch(&b, 'f'), -1);
	cr_assert_eq(buf_grow(&b, 1), -1);
	cr_assert_str_eq(b.data, "abcde");
	invariants(&b);
	buf_release(&b);
}

/* Writing into the room buf_avail gives, then buf_setlen, as read(2) does. */
Test(buf, avail_and_setlen)
{
	struct buf	b;
	size_t		n;

	buf_init(&b, BUF_NOMAX);
	cr_assert_eq(buf_grow(&b, 10), 0);
	n = buf_avail(&b);
	cr_assert_geq(n, 10);
	memcpy(b.data, "0123456789", 10);
	buf_setlen(&b, 10);
	invariants(&b);
	cr_assert_str_eq(b.data, "0123456789");
	cr_assert_eq(buf_avail(&b), n - 10);
	/* A length past the room is refused. */
	buf_setlen(&b, b.cap);
	cr_assert_eq(b.len, 10);
	buf_release(&b);
}

Test(buf, detach_hands_over)
{
	struct buf	 b;
	size_t		 len;
	char		*s;

	buf_init(&b, BUF_NOMAX);
	cr_assert_eq(buf_addstr(&b, "mine"), 0);
	s = buf_detach(&b, &len);
	cr_assert_str_eq(s, "mine");
	cr_assert_eq(len, 4);
	invariants(&b);
	cr_assert_str_eq(b.data, "");
	free(s);
	/* An empty one still hands over a string the caller can free. */
	s = buf_detach(&b, &len);
	cr_assert_not_null(s);
	cr_assert_eq(len, 0);
	free(s);
}
