#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "stamp.h"

char *
stamp_key(const char *previews, const char *name)
{
	struct buf	b;

	buf_init(&b, BUF_NOMAX);
	if (buf_addf(&b, "%s%s%s", previews, STAMP_NAME, name) != 0) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

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

struct root_walk {
	const char	*previews;
	struct stamps	*ss;
	struct s3_object *found;	/* per stamp: what the listing said */
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
	size_t			 i, plen = strlen(w->previews);

	if (strncmp(o->key + plen, STAMP_NAME, strlen(STAMP_NAME)) != 0)
		return 0;
	if (push_str(&w->ss->stamp_keys, &w->ss->nstamp_keys, o->key,
	    strlen(o->key)) != 0) {
		w->nomem = 1;
		return 1;
	}
	name = o->key + plen + strlen(STAMP_NAME);
	for (i = 0; i < w->ss->n; i++) {
		struct stamp *s = &w->ss->v[i];

		if (strcmp(s->preset->name, name) != 0)
			continue;
		s->exists = 1;
		s->mtime_ms = o->mtime_ms;
		s->current = strcmp(o->etag, s->md5) == 0 ? 1 : -1;
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

enum s3_status
stamps_read(struct store_conn *c, const char *previews,
    const struct preset *const *presets, size_t n, struct stamps *ss,
    struct s3_error *err)
{
	struct s3_list_params	 lp;
	struct root_walk	 w;
	struct buf		 body;
	enum s3_status		 st;
	size_t			 i;
	char			*key;

	memset(ss, 0, sizeof(*ss));
	if ((ss->v = calloc(n + 1, sizeof(*ss->v))) == NULL)
		return S3_ENOMEM;
	ss->n = n;
	for (i = 0; i < n; i++) {
		ss->v[i].preset = presets[i];
		if (preset_canonical(presets[i], ss->v[i].canonical,
		    sizeof(ss->v[i].canonical)) != 0)
			return S3_EINVAL;
		md5_hex(ss->v[i].canonical, ss->v[i].md5);
	}
	memset(&w, 0, sizeof(w));
	w.previews = previews;
	w.ss = ss;
	memset(&lp, 0, sizeof(lp));
	lp.prefix = previews;
	lp.delimiter = "/";
	st = store_list(c, &lp, root_obj, root_prefix, &w, err);
	if (w.nomem)
		return S3_ENOMEM;
	if (st != S3_OK)
		return st;

	/* An ETag that is not the body's MD5: compare the body itself. */
	buf_init(&body, STAMP_MAX);
	for (i = 0; i < n; i++) {
		struct stamp *s = &ss->v[i];

		if (s->current != -1)
			continue;
		if ((key = stamp_key(previews, s->preset->name)) == NULL) {
			buf_release(&body);
			return S3_ENOMEM;
		}
		buf_reset(&body);
		st = store_get(c, key, STAMP_MAX, &body, err);
		free(key);
		if (st == S3_ETOOBIG || st == S3_ENOTFOUND) {
			s->current = 0;
			continue;
		}
		if (st != S3_OK) {
			buf_release(&body);
			return st;
		}
		s->current = strcmp(body.data, s->canonical) == 0;
	}
	buf_release(&body);
	return S3_OK;
}

void
stamps_release(struct stamps *ss)
{
	size_t	i;

	for (i = 0; i < ss->ndirs; i++)
		free(ss->dirs[i]);
	for (i = 0; i < ss->nstamp_keys; i++)
		free(ss->stamp_keys[i]);
	free(ss->dirs);
	free(ss->stamp_keys);
	free(ss->v);
	memset(ss, 0, sizeof(*ss));
}

enum s3_status
stamp_write(struct store_conn *c, const char *previews, const struct stamp *s,
    struct s3_error *err)
{
	struct s3_put_opts	 po;
	enum s3_status		 st;
	char			*key;

	if ((key = stamp_key(previews, s->preset->name)) == NULL)
		return S3_ENOMEM;
	memset(&po, 0, sizeof(po));
	po.content_type = "text/plain; charset=utf-8";
	po.cache_control = "no-cache";
	st = store_put(c, key, s->canonical, strlen(s->canonical), &po, err);
	free(key);
	return st;
}
