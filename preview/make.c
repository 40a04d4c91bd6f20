/*
 * make: see make.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "make.h"

struct job *
job_new(const struct maker *mk, const char *key, uint64_t size,
    const size_t *presets, size_t n)
{
	struct job	*j;
	size_t		 i, slen = strlen(mk->source);

	if (strncmp(key, mk->source, slen) != 0 || n > MAKE_MAX_PRESETS)
		return NULL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	if ((j->key = strdup(key)) == NULL ||
	    (j->p = calloc(n + 1, sizeof(*j->p))) == NULL) {
		free(j->key);
		free(j);
		return NULL;
	}
	j->rel = j->key + slen;
	j->size = size;
	j->n = n;
	buf_init(&j->in, BUF_NOMAX);
	for (i = 0; i < n; i++) {
		struct job_preset *p = &j->p[i];

		p->preset = presets[i];
		p->state = PS_MISSING;
		render_out_init(&p->out);
		buf_init(&p->key, BUF_NOMAX);
		if (key_preview(&p->key, mk->previews,
		    mk->presets[p->preset]->name, j->rel) != 0) {
			j->n = i + 1;
			job_free(j);
			return NULL;
		}
	}
	return j;
}

void
job_free(struct job *j)
{
	size_t	i;

	if (j == NULL)
		return;
	for (i = 0; i < j->n; i++) {
		render_out_release(&j->p[i].out);
		buf_release(&j->p[i].key);
	}
	buf_release(&j->in);
	free(j->p);
	free(j->key);
	free(j);
}

int
job_done(const struct job *j)
{
	size_t	i;

	for (i = 0; i < j->n; i++)
		if (j->p[i].result == MAKE_PENDING)
			return 0;
	return 1;
}

/*
 * A preset's result; a failed one drops what it had, a skipped one keeps
 * its preview (serve answers with it even when it is not stored).
 */
static void
settle(struct job_preset *p, enum make_result r, enum make_why w,
    const char *why)
{
	if (p->result != MAKE_PENDING)
		return;
	p->result = r;
	p->why = w;
	if (why != NULL)
		(void)snprintf(p->error, sizeof(p->error), "%s", why);
	if (r == MAKE_FAILED)
		render_out_release(&p->out);
}

void
job_fail_pending(struct job *j, enum make_why w, const char *why, int storage)
{
	size_t	i;

	for (i = 0; i < j->n; i++)
		if (j->p[i].result == MAKE_PENDING) {
			j->p[i].storage = storage;
			settle(&j->p[i], MAKE_FAILED, w, why);
		}
}

/* Header-safe copy of an ETag: hex digits and '-' only. */
static void
clean_etag(const char *in, char *out, size_t len)
{
	size_t	n = 0;

	for (; *in != '\0' && n + 1 < len; in++)
		if ((*in >= '0' && *in <= '9') || (*in >= 'a' && *in <= 'f') ||
		    (*in >= 'A' && *in <= 'F') || *in == '-')
			out[n++] = *in;
	out[n] = '\0';
}

/*
 * --verify: a fresh preview's metadata names the ETag of the original it
 * was made from; when that is not the listed original's (a versioned
 * bucket rolled back), it is made again. One HEAD per preview. -1 when a
 * storage failure ended the job.
 */
static int
verify(const struct maker *mk, struct store_conn *conn, struct job *j)
{
	struct store_head	 hd;
	struct store_error	 err;
	enum store_status	 st;
	char			 want[STORE_ETAG_MAX + 1], had[STORE_ETAG_MAX + 1];
	char			 why[600];
	size_t			 i;

	(void)mk;
	clean_etag(j->listed_etag, want, sizeof(want));
	for (i = 0; i < j->n; i++) {
		struct job_preset *p = &j->p[i];

		if (!p->verify || p->result != MAKE_PENDING)
			continue;
		store_head_init(&hd);
		st = store_head(conn, p->key.data, &hd, &err);
		if (st == STORE_OK && store_head_meta(&hd,
		    "prewctl-source-etag", had, sizeof(had)) == 0 &&
		    strcmp(had, want) == 0)
			p->result = MAKE_VERIFIED;
		store_head_release(&hd);
		if (st == STORE_OK || st == STORE_ENOTFOUND)
			continue;
		store_error_text(st, &err, why, sizeof(why));
		p->storage = store_failing(st, &err, 0);
		settle(p, MAKE_FAILED, WHY_STORAGE, why);
		if (p->storage) {
			job_fail_pending(j, WHY_STORAGE, why, 1);
			return -1;
		}
	}
	return 0;
}

void
make_fetch(const struct maker *mk, struct store_conn *conn, struct job *j)
{
	struct store_head	 hd;
	struct store_error	 err;
	enum store_status	 st;
	char			 why[600];
	size_t			 i;

	if (verify(mk, conn, j) != 0 || job_done(j))
		return;
	buf_reset(&j->in);
	if (j->size > mk->limits.max_bytes) {
		snprintf(why, sizeof(why), "original of %llu bytes is over "
		    "max_bytes (%llu)", (unsigned long long)j->size,
		    (unsigned long long)mk->limits.max_bytes);
		for (i = 0; i < j->n; i++)
			j->p[i].permanent = 1;
		job_fail_pending(j, WHY_IMAGE, why, 0);
		return;
	}
	store_head_init(&hd);
	st = store_get(conn, j->key, mk->limits.max_bytes, &j->in, &hd, &err);
	if (st == STORE_OK) {
		memcpy(j->etag, hd.etag, sizeof(j->etag));
		j->fetched = 1;
		store_head_release(&hd);
		return;
	}
	store_head_release(&hd);
	store_error_text(st, &err, why, sizeof(why));
	if (st == STORE_ENOTFOUND) {
		/* Deleted since the listing: nothing to make, no failure. */
		for (i = 0; i < j->n; i++)
			settle(&j->p[i], MAKE_SKIPPED, WHY_GONE, "the original was "
			    "deleted during the run");
		return;
	}
	for (i = 0; i < j->n; i++) {
		/* Too large, or refused for this key: it fails every time. */
		j->p[i].permanent = st == STORE_ETOOBIG || st == STORE_EDENIED;
		j->p[i].storage = store_failing(st, &err, 0);
	}
	/* Too large is the original's fault; the rest the storage's. */
	job_fail_pending(j, st == STORE_ETOOBIG ? WHY_IMAGE : WHY_STORAGE, why,
	    j->n > 0 ? j->p[0].storage : 0);
}

void
make_render(const struct maker *mk, struct job *j)
{
	const struct preset	*ps[MAKE_MAX_PRESETS];
	struct render_out	 outs[MAKE_MAX_PRESETS];
	char			 err[256];
	size_t			 idx[MAKE_MAX_PRESETS], n = 0, i, k;

	if (!j->fetched)
		return;
	for (i = 0; i < j->n; i++)
		if (j->p[i].result == MAKE_PENDING) {
			idx[n] = i;
			ps[n] = mk->presets[j->p[i].preset];
			render_out_init(&outs[n++]);
		}
	if (n > 0)
		(void)render_image(j->in.data, j->in.len, ps, n, &mk->limits,
		    outs, err, sizeof(err));
	for (k = 0; k < n; k++) {
		struct job_preset *p = &j->p[idx[k]];

		if (outs[k].status == RENDER_OK) {
			render_out_release(&p->out);
			p->out = outs[k];
			continue;
		}
		/* A timeout may pass another time: neither marked nor removed. */
		p->permanent = outs[k].status == RENDER_EIMAGE;
		settle(p, MAKE_FAILED, outs[k].status == RENDER_ETIMEOUT ?
		    WHY_TIMEOUT : WHY_IMAGE, outs[k].error);
		render_out_release(&outs[k]);
	}
	/* The original is not needed any more; its memory goes now. */
	buf_release(&j->in);
}


static enum store_status
delete_one(struct store_conn *conn, const char *key, struct store_error *err)
{
	const char	*v[1] = { key };

	return store_delete_many(conn, v, 1, NULL, NULL, err);
}

/* PUT one made preview; its result says how it went. */
static void
put_one(const struct maker *mk, struct store_conn *conn, struct job_preset *p,
    const char *etag)
{
	struct store_error	 err;
	struct s3_put_opts	 po;
	struct s3_meta		 meta[2];
	enum store_status	 st;
	char			 why[600];

	if (mk->guard != NULL && !guard_may_store(mk->guard, p->preset)) {
		settle(p, MAKE_SKIPPED, WHY_UNSTORED, "not written: the "
		    "preset's stamp on storage is another definition");
		return;
	}
	meta[0] = (struct s3_meta){ "prewctl-source-etag", etag };
	meta[1] = (struct s3_meta){ "prewctl-preset", mk->def_md5[p->preset] };
	po = (struct s3_put_opts){ p->out.content_type, mk->cache_control,
	    mk->acl, meta, 2 };
	st = store_put(conn, p->key.data, p->out.data.data, p->out.data.len,
	    &po, &err);
	if (st != STORE_OK) {
		store_error_text(st, &err, why, sizeof(why));
		p->storage = store_failing(st, &err, 1);
		p->write = 1;
		settle(p, MAKE_FAILED, WHY_STORAGE, why);
	}
	/*
	 * The guard covers every write tried: a failed one too, for a lost
	 * answer is not a lost write (and a delete of none is no harm).
	 * Written after the stamp changed, it must not stay (a failed
	 * write keeps its failure).
	 */
	if (mk->guard != NULL &&
	    guard_stored(mk->guard, p->preset, p->key.data) != 0) {
		(void)delete_one(conn, p->key.data, &err);
		settle(p, MAKE_SKIPPED, WHY_UNSTORED, "not kept: another run "
		    "changed the preset's stamp");
	}
	if (p->result == MAKE_PENDING)
		p->result = MAKE_MADE;
}

/* The failure mark of preset p of j into b. */
static int
mark_key(const struct maker *mk, const struct job *j,
    const struct job_preset *p, struct buf *b)
{
	buf_reset(b);
	return key_failed(b, mk->previews, mk->presets[p->preset]->name,
	    j->rel) != 0 || b->len > KEY_MAX ? -1 : 0;
}

/*
 * The bookkeeping of the presets that failed for the original's sake:
 * their stale preview goes (a takedown that replaces a photo with a
 * placeholder must not leave the photo public), and they are marked, so
 * that the next runs know them from the listing (diff.h). A preset made
 * loses its mark.
 */
static void
keep_books(const struct maker *mk, struct store_conn *conn, struct job *j,
    const char *etag, struct buf *mark)
{
	struct store_error	 err;
	struct s3_put_opts	 po;
	char			 body[STORE_ETAG_MAX + 8];
	size_t			 i;
	int			 n;

	n = snprintf(body, sizeof(body), "etag=%s\n", etag);
	memset(&po, 0, sizeof(po));
	po.content_type = "text/plain; charset=utf-8";
	for (i = 0; i < j->n; i++) {
		struct job_preset *p = &j->p[i];

		if (p->result == MAKE_MADE && p->marked &&
		    mark_key(mk, j, p, mark) == 0 &&
		    delete_one(conn, mark->data, &err) == STORE_OK)
			j->marks_removed++;
		if (p->result != MAKE_FAILED || !p->permanent)
			continue;
		if (p->state == PS_STALE_ORIGINAL && !p->storage &&
		    delete_one(conn, p->key.data, &err) == STORE_OK)
			p->removed = 1;
		if (!mk->no_marks && n > 0 && (size_t)n < sizeof(body) &&
		    mark_key(mk, j, p, mark) == 0 && store_put(conn,
		    mark->data, body, (size_t)n, &po, &err) == STORE_OK) {
			p->mark_written = 1;
			j->marks_written++;
		}
	}
}

/* The ETag the previews name: what was read, or what the listing said. */
static void
job_etag(const struct job *j, char *etag, size_t len)
{
	clean_etag(j->fetched ? j->etag : j->listed_etag, etag, len);
}

void
make_store_one(const struct maker *mk, struct store_conn *conn, struct job *j,
    size_t i)
{
	char	etag[STORE_ETAG_MAX + 1];

	if (i >= j->n || j->p[i].result != MAKE_PENDING)
		return;
	job_etag(j, etag, sizeof(etag));
	put_one(mk, conn, &j->p[i], etag);
}

void
make_store_end(const struct maker *mk, struct store_conn *conn, struct job *j)
{
	struct store_head	 hd;
	struct store_error	 err;
	enum store_status	 st;
	struct buf		 mark;
	char			 etag[STORE_ETAG_MAX + 1];
	char			 now[STORE_ETAG_MAX + 1];
	size_t			 i, made = 0;

	job_etag(j, etag, sizeof(etag));
	for (i = 0; i < j->n; i++)
		made += j->p[i].result == MAKE_MADE;
	buf_init(&mark, BUF_NOMAX);
	keep_books(mk, conn, j, etag, &mark);

	/*
	 * The original may have been replaced since it was read: then what
	 * was written is of the old picture and newer than the new one,
	 * fresh for good. One HEAD tells; what was written goes again.
	 */
	if ((made > 0 && j->fetched) || j->marks_written > 0) {
		store_head_init(&hd);
		st = store_head(conn, j->key, &hd, &err);
		clean_etag(hd.etag, now, sizeof(now));
		if ((st == STORE_OK && strcmp(now, etag) != 0) ||
		    st == STORE_ENOTFOUND) {
			j->changed = 1;
			for (i = 0; i < j->n; i++) {
				struct job_preset *p = &j->p[i];

				if (p->mark_written &&
				    mark_key(mk, j, p, &mark) == 0 &&
				    delete_one(conn, mark.data, &err) ==
				    STORE_OK) {
					p->mark_written = 0;
					j->marks_written--;
				}
				if (p->result != MAKE_MADE)
					continue;
				(void)delete_one(conn, p->key.data, &err);
				p->result = MAKE_SKIPPED;
				p->why = WHY_CHANGED;
				snprintf(p->error, sizeof(p->error), "not kept: "
				    "the original changed while its preview "
				    "was made (the next run makes it)");
			}
		}
		store_head_release(&hd);
	}
	buf_release(&mark);
}
