/*
 * stamp: see stamp.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "keys.h"
#include "stamp.h"

static void
md5_hex(const char *s, char dst[33])
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	len = 0, i;

	EVP_Digest(s, strlen(s), md, &len, EVP_md5(), NULL);
	for (i = 0; i < len && i < 16; i++)
		snprintf(dst + 2 * i, 3, "%02x", md[i]);
	dst[32] = '\0';
}

/*
 * Split a stamp body (cut up in place) into its definition and the source
 * it names, NULL when it names none.
 */
static void
parse_body(char *body, const char **def, const char **source)
{
	char	*nl, *line;

	*def = body;
	*source = NULL;
	if ((nl = strchr(body, '\n')) == NULL)
		return;
	*nl = '\0';
	for (line = nl + 1; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (strncmp(line, "source=", 7) == 0)
			*source = line + 7;
		if (nl == NULL)
			break;
	}
}

/*
 * GET the body of the stamp of name into b, its head into hd;
 * STORE_ENOTFOUND when none.
 */
static enum store_status
read_body(struct store_conn *c, const char *previews, const char *name,
    struct buf *b, struct store_head *hd, struct store_error *err)
{
	struct buf	key;
	enum store_status	st;

	buf_init(&key, BUF_NOMAX);
	if (key_stamp(&key, previews, name) != 0) {
		buf_release(&key);
		return STORE_ENOMEM;
	}
	buf_reset(b);
	st = store_get(c, key.data, STAMP_MAX, b, hd, err);
	buf_release(&key);
	return st;
}

/*
 * What an ETag says of s: 1 current (the MD5 of the body, or of the
 * definition alone for a stamp older than source lines), -1 nothing.
 */
static int
etag_says(const struct stamp *s, const char *etag)
{
	return strcmp(etag, s->md5) == 0 || strcmp(etag, s->def_md5) == 0 ?
	    1 : -1;
}

/*
 * GET the body of s and judge it: current when it holds s's definition
 * (none, or one too big: not current). The body's own time and ETag, not
 * a listing's: a listing may still show the object this one replaced (RGW
 * updates its index after answering the PUT), and the time of an older
 * body would make previews older than this one fresh.
 */
static enum store_status
judge_body(struct store_conn *c, const char *previews, const char *source,
    struct stamp *s, struct store_error *err)
{
	struct store_head	 hd;
	struct buf		 body;
	enum store_status	 st;
	const char		*def, *src;

	buf_init(&body, STAMP_MAX);
	store_head_init(&hd);
	st = read_body(c, previews, s->preset->name, &body, &hd, err);
	if (st == STORE_OK) {
		s->mtime_ms = hd.mtime_ms;
		(void)snprintf(s->etag, sizeof(s->etag), "%s", hd.etag);
		parse_body(body.data, &def, &src);
		s->other_source = src != NULL && strcmp(src, source) != 0;
		if (s->other_source)
			(void)snprintf(s->found_source,
			    sizeof(s->found_source), "%s", src);
		s->current = strcmp(def, s->canonical) == 0;
	} else if (st == STORE_ETOOBIG || st == STORE_ENOTFOUND) {
		s->current = 0;
		st = STORE_OK;
	}
	store_head_release(&hd);
	buf_release(&body);
	return st;
}

int
stamp_init(struct stamp *s, const struct preset *p, const char *source)
{
	int	len;

	memset(s, 0, sizeof(*s));
	s->preset = p;
	if (preset_canonical(p, s->canonical, sizeof(s->canonical)) != 0)
		return -1;
	len = snprintf(s->body, sizeof(s->body), "%s\nsource=%s\n",
	    s->canonical, source);
	if (len < 0 || (size_t)len >= sizeof(s->body))
		return -1;
	md5_hex(s->body, s->md5);
	md5_hex(s->canonical, s->def_md5);
	return 0;
}

struct root_walk {
	const char	*previews;
	struct stamps	*ss;
	int		 nomem;
};

static int
push_str(char ***v, size_t *n, const char *s, size_t len)
{
	char	**nv, *p;

	if ((p = strndup(s, len)) == NULL)
		return -1;
	if ((nv = reallocarray(*v, *n + 1, sizeof(**v))) == NULL) {
		free(p);
		return -1;
	}
	nv[(*n)++] = p;
	*v = nv;
	return 0;
}

static int
root_obj(void *arg, const struct s3_object *o)
{
	struct root_walk	*w = arg;
	const char		*name;
	size_t			 i;

	if ((name = key_stamp_preset(w->previews, o->key)) == NULL) {
		w->ss->loose++;
		return 0;
	}
	if (push_str(&w->ss->stamped, &w->ss->nstamped, name,
	    strlen(name)) != 0) {
		w->nomem = 1;
		return 1;
	}
	for (i = 0; i < w->ss->n; i++) {
		struct stamp *s = &w->ss->v[i];

		if (strcmp(s->preset->name, name) != 0)
			continue;
		s->exists = 1;
		s->mtime_ms = o->mtime_ms;
		(void)snprintf(s->etag, sizeof(s->etag), "%s", o->etag);
		s->current = etag_says(s, o->etag);
	}
	return 0;
}

static int
root_prefix(void *arg, const char *prefix)
{
	struct root_walk	*w = arg;
	const char		*name = prefix + strlen(w->previews);
	size_t			 len = strlen(name);

	if (len > 0 && name[len - 1] == '/')
		len--;
	if (push_str(&w->ss->dirs, &w->ss->ndirs, name, len) != 0) {
		w->nomem = 1;
		return 1;
	}
	return 0;
}

enum store_status
stamps_read(struct store_conn *c, const char *previews, const char *source,
    const struct preset *const *presets, size_t n, struct stamps *ss,
    struct store_error *err)
{
	struct s3_list_params	 lp;
	struct root_walk	 w;
	enum store_status	 st;
	size_t			 i;

	memset(ss, 0, sizeof(*ss));
	if ((ss->v = calloc(n + 1, sizeof(*ss->v))) == NULL)
		return STORE_ENOMEM;
	ss->n = n;
	for (i = 0; i < n; i++)
		if (stamp_init(&ss->v[i], presets[i], source) != 0)
			return STORE_EINVAL;
	memset(&w, 0, sizeof(w));
	w.previews = previews;
	w.ss = ss;
	memset(&lp, 0, sizeof(lp));
	lp.prefix = previews;
	lp.delimiter = "/";
	st = store_list(c, &lp, root_obj, root_prefix, &w, err);
	if (w.nomem)
		return STORE_ENOMEM;
	if (st != STORE_OK)
		return st;

	/* An ETag that is not the body's MD5: compare the body itself. */
	for (i = 0; i < n && st == STORE_OK; i++) {
		struct stamp *s = &ss->v[i];

		if (s->current == -1)
			st = judge_body(c, previews, source, s, err);
	}
	return st;
}

enum store_status
stamp_check(struct store_conn *c, const char *previews, const char *source,
    struct stamp *s, const struct stamp *known, struct store_error *err)
{
	struct store_head	 hd;
	struct buf		 key;
	enum store_status	 st;

	buf_init(&key, BUF_NOMAX);
	if (key_stamp(&key, previews, s->preset->name) != 0) {
		buf_release(&key);
		return STORE_ENOMEM;
	}
	store_head_init(&hd);
	st = store_head(c, key.data, &hd, err);
	buf_release(&key);
	s->exists = st == STORE_OK;
	s->current = 0;
	s->other_source = 0;
	s->etag[0] = '\0';
	if (st == STORE_OK) {
		s->mtime_ms = hd.mtime_ms;
		(void)snprintf(s->etag, sizeof(s->etag), "%s", hd.etag);
		s->current = etag_says(s, hd.etag);
	}
	store_head_release(&hd);
	if (st == STORE_ENOTFOUND)
		return STORE_OK;
	if (st != STORE_OK || s->current != -1)
		return st;
	/* The very object known was: what was found of it holds. */
	if (known != NULL && known->exists && known->etag[0] != '\0' &&
	    strcmp(known->etag, s->etag) == 0) {
		s->current = known->current;
		s->other_source = known->other_source;
		memcpy(s->found_source, known->found_source,
		    sizeof(s->found_source));
		return STORE_OK;
	}
	return judge_body(c, previews, source, s, err);
}

void
stamps_release(struct stamps *ss)
{
	size_t	i;

	for (i = 0; i < ss->ndirs; i++)
		free(ss->dirs[i]);
	for (i = 0; i < ss->nstamped; i++)
		free(ss->stamped[i]);
	free(ss->dirs);
	free(ss->stamped);
	free(ss->v);
	memset(ss, 0, sizeof(*ss));
}

enum store_status
stamp_write(struct store_conn *c, const char *previews, const struct stamp *s,
    struct store_error *err)
{
	struct s3_put_opts	 po;
	struct buf		 key;
	enum store_status		 st;

	buf_init(&key, BUF_NOMAX);
	if (key_stamp(&key, previews, s->preset->name) != 0) {
		buf_release(&key);
		return STORE_ENOMEM;
	}
	memset(&po, 0, sizeof(po));
	po.content_type = "text/plain; charset=utf-8";
	po.cache_control = "no-cache";
	st = store_put(c, key.data, s->body, strlen(s->body), &po, err);
	buf_release(&key);
	return st;
}

static int
add_item(struct root_item **v, size_t *n, const char *name,
    enum root_kind kind, int dir, int stamp)
{
	struct root_item	*nv;
	char			*p;

	if ((p = strdup(name)) == NULL)
		return -1;
	if ((nv = reallocarray(*v, *n + 1, sizeof(**v))) == NULL) {
		free(p);
		return -1;
	}
	nv[*n] = (struct root_item){ p, kind, dir, stamp };
	(*n)++;
	*v = nv;
	return 0;
}

static int
listed(char *const *v, size_t n, const char *name)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return 1;
	return 0;
}

enum store_status
root_classify(struct store_conn *c, const char *previews, const char *source,
    const struct config *cfg, const struct stamps *ss,
    struct root_item **itemsp, size_t *np, struct store_error *err)
{
	struct root_item	*items = NULL;
	struct buf		 body;
	enum store_status		 st = STORE_OK;
	const char		*name, *def, *src;
	size_t			 n = 0, i;
	enum root_kind		 kind;

	buf_init(&body, STAMP_MAX);
	for (i = 0; i < ss->nstamped; i++) {
		name = ss->stamped[i];
		if (config_preset(cfg, name) != NULL)
			continue;
		if ((st = read_body(c, previews, name, &body, NULL, err)) ==
		    STORE_ENOTFOUND)
			continue;	/* deleted meanwhile */
		if (st != STORE_OK)
			goto fail;
		parse_body(body.data, &def, &src);
		kind = src == NULL || strcmp(src, source) == 0 ? ROOT_REMOVED :
		    ROOT_THEIRS;
		if (add_item(&items, &n, name, kind,
		    listed(ss->dirs, ss->ndirs, name), 1) != 0)
			goto nomem;
	}
	for (i = 0; i < ss->ndirs; i++) {
		name = ss->dirs[i];
		if (config_preset(cfg, name) != NULL ||
		    strcmp(name, FAILED_DIR) == 0 ||
		    listed(ss->stamped, ss->nstamped, name))
			continue;
		if (add_item(&items, &n, name, ROOT_FOREIGN, 1, 0) != 0)
			goto nomem;
	}
	buf_release(&body);
	*itemsp = items;
	*np = n;
	return STORE_OK;
nomem:
	st = STORE_ENOMEM;
fail:
	buf_release(&body);
	root_items_free(items, n);
	return st;
}

void
root_items_free(struct root_item *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}
