/*
 * listxml: the ListObjectsV2 response parsed while it streams in.
 *
 * Feed each chunk from the network to listxml_feed; each <Contents> and each
 * <CommonPrefixes> is handed to the callbacks as soon as its end tag is
 * parsed, so memory holds one entry, never the page. Keys and prefixes are
 * URL-decoded ('+' as a space, as AWS sends it) when the response says
 * <EncodingType>url</EncodingType>, which must come before the first entry
 * (S3 and RGW put it near the top). NextContinuationToken is never decoded.
 * A DOCTYPE of any kind is refused (S3 never sends one): no DTD, no
 * entities but the five predefined ones, no network. Fields are bounded
 * (Key, Prefix and the token 4096 bytes as sent); longer is S3_EXML.
 */
#ifndef PREWCTL_LISTXML_H
#define PREWCTL_LISTXML_H

#include <stddef.h>

#include "s3.h"

struct listxml;

struct listxml_result {
	int	 is_truncated;
	char	*next_token;		/* NULL when absent; owned by the parser */
	int	 key_count;		/* entries seen (Contents + CommonPrefixes) */
	int	 server_key_count;	/* <KeyCount> as sent; -1 when absent */
};

struct listxml	*listxml_new(s3_object_cb, s3_prefix_cb, void *arg);
void		 listxml_free(struct listxml *);
/*
 * Returns S3_OK, S3_EXML (malformed, DOCTYPE, a field too long), S3_ENOMEM,
 * or S3_ECANCELLED when a callback returned nonzero. After an error every
 * later call returns the same error. msg (may be NULL) gets a reason.
 */
enum s3_status	 listxml_feed(struct listxml *, const char *chunk, size_t len,
		    char *msg, size_t msglen);
/*
 * End of body: checks the document was complete, fills res. A page without
 * <IsTruncated> is S3_EXML. An empty <NextContinuationToken/> (RGW sends one
 * on a last page) is reported as NULL; truncated without a token is for the
 * caller to refuse.
 */
enum s3_status	 listxml_finish(struct listxml *, struct listxml_result *res,
		    char *msg, size_t msglen);

/* "2024-06-01T12:34:56.000Z" to ms since the epoch; -1 when malformed. */
int		 s3_parse_time(const char *s, int64_t *ms);

#endif
