/*
 * rgw: the foundation's acceptance test against the real S3 server.
 *
 * A few thousand objects with hostile keys go up, are listed, read, HEADed
 * and deleted through s3/'s client; then the prewctl binary meets a wrong
 * secret, endpoints that refuse or never answer, and credentials that come
 * from a shared credentials file. Expected values are computed here: the
 * key order with strcmp, ETags with OpenSSL's MD5.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/evp.h>

#include "helpers.h"

#define NOBJ		2500
#define NTHREADS	8
#define PAGE		1000
#define GET_MAX		(1024 * 1024)
#define LONG_KEY_LEN	1010	/* the whole key; S3 allows 1024 */
#define PRESET		"[preset x]\nwidth = 100\n"
/* What s3/ uses when retry_cap_ms is 0 (s3.h); the store never sets it. */
#define RETRY_CAP_S	5
#define SLACK_S		3

struct obj {
	char		*key;
	unsigned char	*body;
	size_t		 len;
	char		 ctype[64];
	char		 cc[64];	/* "": no Cache-Control */
	char		 m1[64];	/* x-amz-meta-idx */
	char		 m2[64];	/* x-amz-meta-test-tag */
	char		 md5[33];
	int		 hostile;
};

/* Suffixes under the prefix: what URL encoding, signing and XML must survive. */
static const char *const hostile[] = {
	"with space.jpg",
	"  leading and trailing  ",
	"plus+sign.jpg",
	"percent%20literal.jpg",
	"percent%.jpg",
	"amp&amp;x.jpg",
	"eq=ual.jpg",
	"tilde~x.jpg",
	"paren(1).jpg",
	"hash#frag.jpg",
	"question?q=1&r=2.jpg",
	"quote'single.jpg",
	"dquote\"x.jpg",
	"lt<gt>.jpg",
	"tab\there.jpg",
	"mixed +%&=~()#?'\t.jpg",
	"\xd1\x84\xd0\xbe\xd1\x82\xd0\xbe/\xd1\x91\xd0\xb6.jpg",	/* фото/ёж.jpg */
	"emoji-\xf0\x9f\x98\x80.png",
	"a//b",
	"/leading-slash",
	"./x",
	"../y",
	"sub/./z",
	"sub/../w",
	"dot/.",
	"dotdot/..",
	"semi;colon,comma.jpg",
	"star*at@dollar$",
	"back\\slash",
	"caret^pipe|brace{}[bracket]",
	NULL,		/* the long key goes here */
};
#define NHOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static const char *const odd[] = {
	"", "sp ace-", "plus+", "pct%25-", "amp&", "uni-\xd0\xb6-", "q'",
};

static struct obj	 objs[NOBJ];
static char		 prefix[256];
static struct s3_client	*clients[NTHREADS];

static void
md5_hex(const void *p, size_t n, char out[33])
{
	unsigned char	d[EVP_MAX_MD_SIZE];
	unsigned int	dl = 0, i;

	cr_assert(EVP_Digest(p, n, d, &dl, EVP_md5(), NULL) == 1 && dl == 16);
	for (i = 0; i < dl; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static char *
xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
xasprintf(const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0);
	return s;
}

static void
make_objects(void)
{
	size_t	i, j, plen = strlen(prefix);

	for (i = 0; i < NOBJ; i++) {
		struct obj *o = &objs[i];

		memset(o, 0, sizeof(*o));
		if (i < NHOSTILE && hostile[i] != NULL) {
			o->key = xasprintf("%s%s", prefix, hostile[i]);
			o->hostile = 1;
		} else if (i < NHOSTILE) {
			cr_assert(plen + 5 < LONG_KEY_LEN);
			o->key = calloc(1, LONG_KEY_LEN + 1);
			cr_assert(o->key != NULL);
			memcpy(o->key, prefix, plen);
			memcpy(o->key + plen, "long/", 5);
			for (j = plen + 5; j < LONG_KEY_LEN; j++)
				o->key[j] = "0123456789abcdefghij"[j % 20];
			o->hostile = 1;
		} else
			o->key = xasprintf("%sg%zu/%s%05zu.bin", prefix, i % 7,
			    odd[i % (sizeof(odd) / sizeof(odd[0]))], i);

		/* Distinct bodies with binary bytes; the first is empty. */
		if (i == 0)
			o->len = 0;
		else
			o->len = 16 + i % 97;
		o->body = malloc(o->len + 1);
		cr_assert(o->body != NULL);
		if (o->len > 0) {
			int n = snprintf((char *)o->body, o->len + 1,
			    "object %05zu|", i);

			cr_assert(n > 0 && (size_t)n < o->len);
			for (j = (size_t)n; j < o->len; j++)
				o->body[j] = (unsigned char)(i * 31 + j * 7);
		}
		md5_hex(o->body, o->len, o->md5);

		snprintf(o->ctype, sizeof(o->ctype), "%s",
		    i % 3 == 0 ? "image/jpeg" : "");
		if (o->ctype[0] == '\0')
			snprintf(o->ctype, sizeof(o->ctype),
			    "application/x-rgw-test-%zu", i % 13);
		if (i % 5 == 4)
			o->cc[0] = '\0';
		else if (i % 5 == 3)
			snprintf(o->cc, sizeof(o->cc), "no-cache");
		else
			snprintf(o->cc, sizeof(o->cc), "public, max-age=%zu",
			    i);
		snprintf(o->m1, sizeof(o->m1), "%zu", i);
		snprintf(o->m2, sizeof(o->m2), "tag %zu x=y, z;w", i * 7919);
	}
}

static void
free_objects(void)
{
	size_t	i;

	for (i = 0; i < NOBJ; i++) {
		free(objs[i].key);
		free(objs[i].body);
		objs[i].key = NULL;
		objs[i].body = NULL;
	}
}

static int
keycmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Best effort, no asserts: runs after a failure too. */
static void
cleanup(void)
{
	struct s3_client	*c;
	int			 k;

	for (k = 0; k < NTHREADS; k++) {
		s3_client_free(clients[k]);
		clients[k] = NULL;
	}
	if (prefix[0] != '\0') {
		c = th_client();
		(void)th_delete_prefix(c, prefix);
		s3_client_free(c);
		prefix[0] = '\0';
	}
	free_objects();
}

/* Worker threads never assert: they record the first failure. */
struct pool {
	atomic_size_t	 next;
	pthread_mutex_t	 mu;
	size_t		 nfail;
	char		 first[1024];
	int		 phase;		/* 0: PUT, 1: GET */
};

struct worker {
	struct pool		*pool;
	struct s3_client	*c;
	pthread_t		 tid;
};

static void
record(struct pool *p, const struct obj *o, const char *what,
    enum s3_status st, const struct s3_error *err)
{
	char	msg[512];

	pthread_mutex_lock(&p->mu);
	if (p->nfail++ == 0)
		snprintf(p->first, sizeof(p->first), "%s '%s': %s (%s)", what,
		    o->key, st == S3_OK ? "mismatch" :
		    s3_error_text(st, err, msg, sizeof(msg)), s3_strerror(st));
	pthread_mutex_unlock(&p->mu);
}

static void
do_put(struct worker *w, const struct obj *o)
{
	struct s3_meta		meta[2] = { { "idx", o->m1 },
				    { "test-tag", o->m2 } };
	struct s3_put_opts	po = { o->ctype, o->cc[0] != '\0' ? o->cc :
				    NULL, NULL, meta, 2 };
	struct s3_error		err;
	enum s3_status		st;

	st = s3_put(w->c, o->key, o->body, o->len, &po, &err);
	if (st != S3_OK)
		record(w->pool, o, "put", st, &err);
}

static void
do_get(struct worker *w, const struct obj *o)
{
	struct s3_head	hd;
	struct s3_error	err;
	struct buf	b;
	enum s3_status	st;

	buf_init(&b, BUF_NOMAX);
	s3_head_init(&hd);
	st = s3_get(w->c, o->key, GET_MAX, &b, &hd, &err);
	if (st != S3_OK)
		record(w->pool, o, "get", st, &err);
	else if (b.len != o->len || memcmp(b.data, o->body, o->len) != 0)
		record(w->pool, o, "get body", st, &err);
	else if (strcmp(hd.etag, o->md5) != 0 ||
	    strcmp(hd.content_type, o->ctype) != 0)
		record(w->pool, o, "get headers", st, &err);
	s3_head_release(&hd);
	buf_release(&b);
}

static void *
work(void *arg)
{
	struct worker	*w = arg;
	size_t		 i;

	while ((i = atomic_fetch_add(&w->pool->next, 1)) < NOBJ) {
		if (w->pool->phase == 0)
			do_put(w, &objs[i]);
		else
			do_get(w, &objs[i]);
	}
	return NULL;
}

static void
run_pool(int phase, const char *name)
{
	struct worker	w[NTHREADS];
	struct pool	p;
	int		i;

	memset(&p, 0, sizeof(p));
	atomic_init(&p.next, 0);
	pthread_mutex_init(&p.mu, NULL);
	p.phase = phase;
	for (i = 0; i < NTHREADS; i++) {
		w[i].pool = &p;
		w[i].c = clients[i];
		cr_assert(pthread_create(&w[i].tid, NULL, work, &w[i]) == 0);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(w[i].tid, NULL);
	pthread_mutex_destroy(&p.mu);
	cr_assert(p.nfail == 0, "%s: %zu of %d failed; first: %s", name,
	    p.nfail, NOBJ, p.first);
}

/* Listing into arrays. */
struct listing {
	char		**keys;
	uint64_t	 *sizes;
	char		**etags;
	size_t		  n, cap;
	char		**prefixes;
	size_t		  np, pcap;
};

static int
list_obj(void *arg, const struct s3_object *o)
{
	struct listing	*l = arg;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->keys = realloc(l->keys, l->cap * sizeof(*l->keys));
		l->sizes = realloc(l->sizes, l->cap * sizeof(*l->sizes));
		l->etags = realloc(l->etags, l->cap * sizeof(*l->etags));
		if (l->keys == NULL || l->sizes == NULL || l->etags == NULL)
			return 1;
	}
	l->keys[l->n] = strdup(o->key);
	l->etags[l->n] = strdup(o->etag != NULL ? o->etag : "");
	l->sizes[l->n] = o->size;
	l->n++;
	return 0;
}

static int
list_prefix(void *arg, const char *p)
{
	struct listing	*l = arg;

	if (l->np == l->pcap) {
		l->pcap = l->pcap ? l->pcap * 2 : 16;
		l->prefixes = realloc(l->prefixes,
		    l->pcap * sizeof(*l->prefixes));
		if (l->prefixes == NULL)
			return 1;
	}
	l->prefixes[l->np++] = strdup(p);
	return 0;
}

static void
listing_release(struct listing *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++) {
		free(l->keys[i]);
		free(l->etags[i]);
	}
	for (i = 0; i < l->np; i++)
		free(l->prefixes[i]);
	free(l->keys);
	free(l->sizes);
	free(l->etags);
	free(l->prefixes);
	memset(l, 0, sizeof(*l));
}

static void
do_list(struct s3_client *c, const struct s3_list_params *lp,
    struct listing *l)
{
	struct s3_error	err;
	enum s3_status	st;
	char		msg[512];

	st = s3_list(c, lp, list_obj, list_prefix, l, &err);
	cr_assert(st == S3_OK, "list '%s': %s", lp->prefix,
	    s3_error_text(st, &err, msg, sizeof(msg)));
}

/* Whether "name=value\n" is one of the lines of meta. */
static int
has_meta(const struct buf *meta, const char *name, const char *value)
{
	char	line[256];
	char	*p;
	int	 n;

	n = snprintf(line, sizeof(line), "%s=%s\n", name, value);
	cr_assert(n > 0 && (size_t)n < sizeof(line));
	for (p = meta->data; (p = strstr(p, line)) != NULL; p++)
		if (p == meta->data || p[-1] == '\n')
			return 1;
	return 0;
}

static size_t
count_lines(const char *s)
{
	size_t	n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* The index of objs[] for each key in sorted order. */
static size_t	 order[NOBJ];

static int
ordercmp(const void *a, const void *b)
{
	return strcmp(objs[*(const size_t *)a].key, objs[*(const size_t *)b].key);
}

static void
check_full_listing(struct s3_client *c)
{
	struct s3_list_params	 lp = { .prefix = prefix, .max_keys = PAGE };
	struct listing		 l = { 0 };
	uint64_t		 before = s3_client_stats(c)->list;
	size_t			 i;

	do_list(c, &lp, &l);
	cr_assert(l.np == 0, "no delimiter, yet %zu common prefixes", l.np);
	cr_assert(l.n == NOBJ, "listed %zu keys, put %d", l.n, NOBJ);
	/* At least ceil(NOBJ / PAGE) pages: max-keys was honoured. */
	cr_assert(s3_client_stats(c)->list - before >= (NOBJ + PAGE - 1) / PAGE,
	    "%llu list requests for %d keys in pages of %d",
	    (unsigned long long)(s3_client_stats(c)->list - before), NOBJ,
	    PAGE);
	for (i = 0; i < NOBJ; i++) {
		const struct obj *o = &objs[order[i]];

		cr_assert(strcmp(l.keys[i], o->key) == 0,
		    "listing position %zu: got '%s', want '%s'", i, l.keys[i],
		    o->key);
		cr_assert(l.sizes[i] == o->len, "size of '%s': %llu, want %zu",
		    o->key, (unsigned long long)l.sizes[i], o->len);
		cr_assert(strcmp(l.etags[i], o->md5) == 0,
		    "listed etag of '%s': %s, want %s", o->key, l.etags[i],
		    o->md5);
	}
	listing_release(&l);
}

/* Page by hand with start_after and max_pages = 1. */
static void
check_start_after(struct s3_client *c)
{
	struct s3_list_params	 lp = { .prefix = prefix, .max_keys = PAGE,
				    .max_pages = 1 };
	struct listing		 l = { 0 };
	char			*after = NULL;
	size_t			 pages = 0, got, i, k;

	for (;;) {
		size_t before = l.n;

		lp.start_after = after;
		do_list(c, &lp, &l);
		got = l.n - before;
		cr_assert(got <= PAGE, "a page of %zu keys, max-keys %d", got,
		    PAGE);
		if (got == 0)
			break;
		pages++;
		free(after);
		after = strdup(l.keys[l.n - 1]);
		cr_assert(pages <= NOBJ, "start_after does not advance");
	}
	free(after);
	cr_assert(pages >= (NOBJ + PAGE - 1) / PAGE);
	cr_assert(l.n == NOBJ, "paged with start_after: %zu keys, want %d",
	    l.n, NOBJ);
	for (i = 0; i < NOBJ; i++)
		cr_assert(strcmp(l.keys[i], objs[order[i]].key) == 0,
		    "start_after paging, position %zu: '%s', want '%s'", i,
		    l.keys[i], objs[order[i]].key);
	listing_release(&l);

	/* From the middle, and after each hostile key. */
	for (k = 0; k < NOBJ; k++)
		if (k == 1234 || objs[order[k]].hostile) {
			memset(&lp, 0, sizeof(lp));
			lp.prefix = prefix;
			lp.start_after = objs[order[k]].key;
			do_list(c, &lp, &l);
			cr_assert(l.n == NOBJ - k - 1,
			    "start_after '%s': %zu keys, want %zu",
			    lp.start_after, l.n, NOBJ - k - 1);
			if (l.n > 0)
				cr_assert(strcmp(l.keys[0],
				    objs[order[k + 1]].key) == 0,
				    "start_after '%s' starts at '%s'",
				    lp.start_after, l.keys[0]);
			listing_release(&l);
		}
}

static void
check_delimiter(struct s3_client *c)
{
	struct s3_list_params	 lp = { .prefix = prefix, .delimiter = "/" };
	struct listing		 l = { 0 };
	char			**wantp, **wanto;
	size_t			 nwp = 0, nwo = 0, i, plen = strlen(prefix);

	wantp = calloc(NOBJ, sizeof(*wantp));
	wanto = calloc(NOBJ, sizeof(*wanto));
	cr_assert(wantp != NULL && wanto != NULL);
	for (i = 0; i < NOBJ; i++) {
		const char *k = objs[order[i]].key, *slash;

		slash = strchr(k + plen, '/');
		if (slash == NULL)
			wanto[nwo++] = (char *)k;
		else
			wantp[nwp++] = strndup(k, (size_t)(slash - k) + 1);
	}
	/* Each folder once, in byte order. */
	qsort(wantp, nwp, sizeof(*wantp), keycmp);
	for (i = 1; i < nwp;) {
		if (strcmp(wantp[i], wantp[i - 1]) == 0) {
			free(wantp[i]);
			memmove(wantp + i, wantp + i + 1,
			    (nwp - i - 1) * sizeof(*wantp));
			nwp--;
		} else
			i++;
	}

	do_list(c, &lp, &l);
	cr_assert(l.np == nwp, "%zu common prefixes, want %zu", l.np, nwp);
	cr_assert(l.n == nwo, "%zu keys beside the prefixes, want %zu", l.n,
	    nwo);
	/* s3_list hands each kind over in ascending order. */
	for (i = 0; i < nwp; i++)
		cr_assert(strcmp(l.prefixes[i], wantp[i]) == 0,
		    "common prefix %zu: '%s', want '%s'", i, l.prefixes[i],
		    wantp[i]);
	for (i = 0; i < nwo; i++)
		cr_assert(strcmp(l.keys[i], wanto[i]) == 0,
		    "key %zu beside the prefixes: '%s', want '%s'", i,
		    l.keys[i], wanto[i]);
	listing_release(&l);

	/* One level down, in the unicode folder. */
	memset(&lp, 0, sizeof(lp));
	{
		char *sub = xasprintf("%s\xd1\x84\xd0\xbe\xd1\x82\xd0\xbe/",
		    prefix);

		lp.prefix = sub;
		lp.delimiter = "/";
		do_list(c, &lp, &l);
		cr_assert(l.np == 0 && l.n == 1);
		cr_assert(strcmp(l.keys[0], objs[16].key) == 0,
		    "in the unicode folder: '%s'", l.keys[0]);
		listing_release(&l);
		free(sub);
	}
	for (i = 0; i < nwp; i++)
		free(wantp[i]);
	free(wantp);
	free(wanto);
}

static void
check_heads(struct s3_client *c)
{
	size_t	i, n = 0;
	char	msg[512];

	for (i = 0; i < NOBJ; i++) {
		const struct obj	*o = &objs[i];
		struct s3_head		 hd;
		struct s3_error		 err;
		enum s3_status		 st;

		if (!o->hostile && i % 37 != 0)
			continue;
		s3_head_init(&hd);
		st = s3_head(c, o->key, &hd, &err);
		cr_assert(st == S3_OK, "head '%s': %s", o->key,
		    s3_error_text(st, &err, msg, sizeof(msg)));
		cr_assert(hd.size == o->len, "head '%s': size %llu, want %zu",
		    o->key, (unsigned long long)hd.size, o->len);
		cr_assert(strcmp(hd.etag, o->md5) == 0,
		    "head '%s': etag %s, want %s", o->key, hd.etag, o->md5);
		cr_assert(strcmp(hd.content_type, o->ctype) == 0,
		    "head '%s': content type '%s', want '%s'", o->key,
		    hd.content_type, o->ctype);
		cr_assert(strcmp(hd.cache_control, o->cc) == 0,
		    "head '%s': cache control '%s', want '%s'", o->key,
		    hd.cache_control, o->cc);
		cr_assert(has_meta(&hd.meta, "idx", o->m1) &&
		    has_meta(&hd.meta, "test-tag", o->m2) &&
		    count_lines(hd.meta.data) == 2,
		    "head '%s': metadata '%s', want idx=%s and test-tag=%s",
		    o->key, hd.meta.data, o->m1, o->m2);
		cr_assert(hd.mtime_ms > 0);
		s3_head_release(&hd);
		n++;
	}
	cr_assert(n >= 50, "only %zu objects HEADed", n);
}

static void
check_errors(struct s3_client *c)
{
	struct s3_head	 hd;
	struct s3_error	 err;
	struct buf	 b;
	enum s3_status	 st;
	const char	*keys[S3_DELETE_MAX + 1];
	char		*missing;
	size_t		 i;
	const struct obj *big = &objs[NOBJ - 1];

	buf_init(&b, BUF_NOMAX);
	cr_assert(big->len >= 2);
	st = s3_get(c, big->key, big->len - 1, &b, NULL, &err);
	cr_assert(st == S3_ETOOBIG, "get of %zu bytes with max %zu: %s",
	    big->len, big->len - 1, s3_strerror(st));
	cr_assert(b.len == 0, "a refused get leaves %zu bytes", b.len);
	/* Exactly the size is allowed. */
	st = s3_get(c, big->key, big->len, &b, NULL, &err);
	cr_assert(st == S3_OK && b.len == big->len);
	buf_reset(&b);

	missing = xasprintf("%sno such key \xc3\xa9+%%", prefix);
	st = s3_get(c, missing, GET_MAX, &b, NULL, &err);
	cr_assert(st == S3_ENOTFOUND, "get of a missing key: %s",
	    s3_strerror(st));
	cr_assert(err.http_status == 404);
	s3_head_init(&hd);
	st = s3_head(c, missing, &hd, &err);
	cr_assert(st == S3_ENOTFOUND, "head of a missing key: %s",
	    s3_strerror(st));
	s3_head_release(&hd);
	free(missing);
	buf_release(&b);

	for (i = 0; i < S3_DELETE_MAX + 1; i++)
		keys[i] = objs[i].key;
	st = s3_delete_many(c, keys, S3_DELETE_MAX + 1, NULL, NULL, &err);
	cr_assert(st == S3_EINVAL, "delete of %d keys: %s", S3_DELETE_MAX + 1,
	    s3_strerror(st));
	cr_assert(th_count(c, prefix) == NOBJ,
	    "a refused delete of 1001 keys deleted some");
}

struct delfail {
	size_t	n;
	char	first[512];
};

static void
delete_err(void *arg, const char *key, const char *code, const char *msg)
{
	struct delfail	*d = arg;

	if (d->n++ == 0)
		snprintf(d->first, sizeof(d->first), "'%s': %s %s", key, code,
		    msg);
}

static void
delete_all(struct s3_client *c)
{
	const char	*keys[S3_DELETE_MAX];
	struct delfail	 d = { 0, "" };
	struct s3_error	 err;
	enum s3_status	 st;
	size_t		 done = 0, k, i;
	char		 msg[512];

	while (done < NOBJ) {
		k = NOBJ - done < S3_DELETE_MAX ? NOBJ - done : S3_DELETE_MAX;
		for (i = 0; i < k; i++)
			keys[i] = objs[done + i].key;
		st = s3_delete_many(c, keys, k, delete_err, &d, &err);
		cr_assert(st == S3_OK, "delete of %zu keys: %s; %zu failed, "
		    "first %s", k, s3_error_text(st, &err, msg, sizeof(msg)),
		    d.n, d.first);
		done += k;
	}
	cr_assert(th_count(c, prefix) == 0, "keys left after deleting all");
}

TestSuite(rgw, .timeout = 600);

Test(rgw, objects, .fini = cleanup)
{
	double			 t0, t1, t2, t3, t4, t5;
	size_t			 i;
	int			 k;

	t0 = th_now();
	snprintf(prefix, sizeof(prefix), "%s", th_prefix("rgw"));
	make_objects();
	for (i = 0; i < NOBJ; i++)
		order[i] = i;
	qsort(order, NOBJ, sizeof(order[0]), ordercmp);
	for (i = 1; i < NOBJ; i++)
		cr_assert(strcmp(objs[order[i - 1]].key,
		    objs[order[i]].key) < 0, "duplicate test key");
	cr_assert(strlen(objs[NHOSTILE - 1].key) == LONG_KEY_LEN);
	cr_assert(strcmp(objs[16].key + strlen(prefix),
	    "\xd1\x84\xd0\xbe\xd1\x82\xd0\xbe/\xd1\x91\xd0\xb6.jpg") == 0);

	for (k = 0; k < NTHREADS; k++)
		clients[k] = th_client();

	run_pool(0, "put");
	t1 = th_now();
	check_full_listing(clients[0]);
	check_start_after(clients[0]);
	check_delimiter(clients[0]);
	t2 = th_now();
	run_pool(1, "get");
	t3 = th_now();
	check_heads(clients[0]);
	check_errors(clients[0]);
	t4 = th_now();
	delete_all(clients[0]);
	t5 = th_now();

	cr_log_info("rgw objects: %d objects, put %.1fs, list %.1fs, "
	    "get %.1fs, head+errors %.1fs, delete %.1fs, total %.1fs", NOBJ,
	    t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0);
}

/* Run plan with a config; returns the seconds it took (th_run's). */
static double
plan(struct th_run *r, const char *cfg, const char *const *extra)
{
	const char *const	 args[] = { "-c", cfg, "plan", NULL };

	th_prewctl(r, args, extra);
	return r->secs;
}

Test(rgw, wrong_secret)
{
	const struct th_env	*e = th_env();
	const char		*wrong = "wrongSECRETwrongSECRETwrongSECRET0000000";
	char			*cfg, *envv;
	struct th_run		 r;

	cfg = th_s3_config(th_prefix("rgw-secret"), PRESET);
	envv = xasprintf("AWS_SECRET_ACCESS_KEY=%s", wrong);
	{
		const char *const extra[] = { envv, NULL };

		plan(&r, cfg, extra);
	}
	cr_assert(r.status == 3, "exit %d, want 3; stderr: %s", r.status,
	    r.err.data);
	cr_assert(strstr(r.err.data, "SignatureDoesNotMatch") != NULL,
	    "stderr does not name the error: %s", r.err.data);
	cr_assert(strstr(r.err.data, wrong) == NULL &&
	    strstr(r.out.data, wrong) == NULL, "the secret was printed");
	cr_assert(strstr(r.err.data, e->secret_key) == NULL &&
	    strstr(r.out.data, e->secret_key) == NULL,
	    "the real secret was printed");
	th_run_release(&r);
	unlink(cfg);
	free(cfg);
	free(envv);
}

/* A config on endpoint with the given timeouts and one retry. */
static char *
net_config(const char *endpoint, int timeout, int low_speed, int retries)
{
	const struct th_env	*e = th_env();
	const char		*p = th_prefix("rgw-net");
	char			*text, *path;

	text = xasprintf("[storage]\nbucket = %s\nendpoint = %s\n"
	    "region = %s\npath_style = true\nsource = %sphoto/\n"
	    "previews = %sprew/\ntimeout = %d\nlow_speed_time = %d\n"
	    "retries = %d\n\n" PRESET, e->bucket, endpoint, e->region, p, p,
	    timeout, low_speed, retries);
	path = th_write_temp(text);
	free(text);
	return path;
}

static int
listen_socket(int backlog, int *port)
{
	struct sockaddr_in	sa;
	socklen_t		len = sizeof(sa);
	int			fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	if (backlog > 0)
		cr_assert(listen(fd, backlog) == 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

Test(rgw, unreachable)
{
	const int	 timeout = 2, retries = 1, attempts = retries + 1;
	struct th_run	 r;
	char		*cfg, *ep;
	double		 took, bound;
	int		 fd, port;

	/* A port that was free a moment ago: nothing listens there. */
	fd = listen_socket(0, &port);
	close(fd);
	ep = xasprintf("http://127.0.0.1:%d", port);
	cfg = net_config(ep, timeout, 2, retries);
	took = plan(&r, cfg, NULL);
	bound = attempts * timeout + retries * RETRY_CAP_S + SLACK_S;
	cr_assert(r.status == 3, "exit %d, want 3; stderr: %s", r.status,
	    r.err.data);
	cr_assert(took < bound, "took %.1fs, bound %.1fs", took, bound);
	cr_assert(strcasestr(r.err.data, "connect") != NULL,
	    "stderr does not say it cannot connect: %s", r.err.data);
	cr_log_info("rgw unreachable: exit %d in %.2fs (bound %.0fs): %s",
	    r.status, took, bound, r.err.data);
	th_run_release(&r);
	unlink(cfg);
	free(cfg);
	free(ep);
}

Test(rgw, silent_server)
{
	const int	 timeout = 1, low_speed = 2, retries = 1;
	const int	 attempts = retries + 1;
	struct th_run	 r;
	char		*cfg, *ep;
	double		 took, bound;
	int		 fd, port;

	/* The kernel completes the handshake; nobody ever reads or replies. */
	fd = listen_socket(16, &port);
	ep = xasprintf("http://127.0.0.1:%d", port);
	cfg = net_config(ep, timeout, low_speed, retries);
	took = plan(&r, cfg, NULL);
	close(fd);
	bound = attempts * (timeout + low_speed) + retries * RETRY_CAP_S +
	    SLACK_S;
	cr_assert(r.status == 3, "exit %d, want 3; stderr: %s", r.status,
	    r.err.data);
	cr_assert(took < bound, "took %.1fs, bound %.1fs", took, bound);
	/* It cannot know the server is silent before low_speed_time. */
	cr_assert(took >= low_speed - 0.25, "gave up after %.2fs, before "
	    "low_speed_time %ds", took, low_speed);
	cr_assert(strcasestr(r.err.data, "timeout") != NULL ||
	    strcasestr(r.err.data, "timed out") != NULL,
	    "stderr does not say it timed out: %s", r.err.data);
	cr_log_info("rgw silent server: exit %d in %.2fs (bound %.0fs): %s",
	    r.status, took, bound, r.err.data);
	th_run_release(&r);
	unlink(cfg);
	free(cfg);
	free(ep);
}

Test(rgw, credentials_file)
{
	const struct th_env	*e = th_env();
	char			*cfg, *text, *credf, *fenv;
	struct th_run		 r;

	/* [default] is wrong on purpose: only the profile may be used. */
	text = xasprintf("[default]\naws_access_key_id = AKIDEFAULTWRONG\n"
	    "aws_secret_access_key = default-wrong-secret\n\n"
	    "# the CI profile\n[ci]\naws_access_key_id = %s\n"
	    "aws_secret_access_key = %s\n", e->access_key, e->secret_key);
	credf = th_write_temp(text);
	fenv = xasprintf("AWS_SHARED_CREDENTIALS_FILE=%s", credf);
	cfg = th_s3_config(th_prefix("rgw-creds"), PRESET);
	{
		const char *const extra[] = { "AWS_ACCESS_KEY_ID=",
		    "AWS_SECRET_ACCESS_KEY=", fenv, "AWS_PROFILE=ci", NULL };

		plan(&r, cfg, extra);
	}
	cr_assert(r.status == 0, "exit %d with the [ci] profile; stderr: %s",
	    r.status, r.err.data);
	cr_assert(strstr(r.out.data, "\nx ") != NULL,
	    "no row for preset x: %s", r.out.data);
	th_run_release(&r);

	/* The same file with the default profile: refused by the server. */
	{
		const char *const extra[] = { "AWS_ACCESS_KEY_ID=",
		    "AWS_SECRET_ACCESS_KEY=", fenv, "AWS_PROFILE=", NULL };

		plan(&r, cfg, extra);
	}
	cr_assert(r.status == 3, "exit %d with the [default] profile; "
	    "stderr: %s", r.status, r.err.data);
	cr_assert(strstr(r.err.data, "default-wrong-secret") == NULL &&
	    strstr(r.err.data, e->secret_key) == NULL);
	th_run_release(&r);

	unlink(credf);
	unlink(cfg);
	free(cfg);
	free(credf);
	free(fenv);
	free(text);
}
