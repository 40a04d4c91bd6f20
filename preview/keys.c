/*
 * keys: see keys.h.
 */
#include <string.h>

#include "keys.h"

int
key_preset_name_ok(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || s[0] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int
key_preset_prefix(struct buf *b, const char *previews, const char *preset)
{
	return buf_addf(b, "%s%s/", previews, preset);
}

int
key_preview(struct buf *b, const char *previews, const char *preset,
    const char *rel)
{
	return buf_addf(b, "%s%s/%s", previews, preset, rel);
}

int
key_stamp(struct buf *b, const char *previews, const char *preset)
{
	return buf_addf(b, "%s" STAMP_NAME "%s", previews, preset);
}

int
key_failed_prefix(struct buf *b, const char *previews, const char *preset)
{
	return buf_addf(b, "%s" FAILED_DIR "/%s/", previews, preset);
}

int
key_failed(struct buf *b, const char *previews, const char *preset,
    const char *rel)
{
	return buf_addf(b, "%s" FAILED_DIR "/%s/%s", previews, preset, rel);
}

const char *
key_stamp_preset(const char *previews, const char *key)
{
	size_t		 plen = strlen(previews);
	const char	*name;

	if (strncmp(key, previews, plen) != 0 ||
	    strncmp(key + plen, STAMP_NAME, strlen(STAMP_NAME)) != 0)
		return NULL;
	name = key + plen + strlen(STAMP_NAME);
	return key_preset_name_ok(name, strlen(name)) ? name : NULL;
}

/* Every segment of s non-empty, not "." or "..", no control byte. */
static int
segments_ok(const char *s)
{
	const char	*seg, *p;
	size_t		 n;

	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	for (seg = s;; seg += n + 1) {
		n = strcspn(seg, "/");
		if (n == 0 || (n == 1 && seg[0] == '.') ||
		    (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
		if (seg[n] == '\0')
			return 1;
	}
}

enum key_verdict
key_parse_preview(const char *previews, const char *key, char *preset,
    size_t len, const char **rel)
{
	size_t		 plen = strlen(previews), n;
	const char	*name;

	if (*key == '\0' || strlen(key) > KEY_MAX || !segments_ok(key))
		return KEY_MALFORMED;
	if (strncmp(key, previews, plen) != 0)
		return KEY_OUTSIDE;
	name = key + plen;
	n = strcspn(name, "/");
	if (name[n] != '/' || name[n + 1] == '\0')
		return KEY_OUTSIDE;
	if (!key_preset_name_ok(name, n) || n >= len)
		return KEY_MALFORMED;
	memcpy(preset, name, n);
	preset[n] = '\0';
	*rel = name + n + 1;
	return KEY_OK;
}
