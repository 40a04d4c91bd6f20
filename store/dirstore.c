/*
 * dirstore: a local folder that plays the part of a bucket.
 *
 * The key "photo/a/b.jpg" is the file ROOT/photo/a/b.jpg. Every path is
 * resolved from an open descriptor of the root, one segment at a time with
 * O_NOFOLLOW, so a symlink anywhere below the root is never followed and
 * cannot lead out of it. Symlinks and other non-regular files are not
 * objects: listing skips them and reading one is STORE_ENOTFOUND.
 *
 * Keys are refused (STORE_EINVAL) when they could not name a file below the
 * root: empty, longer than S3's 1024 bytes, a leading '/', an empty, "." or
 * ".." segment, a segment longer than NAME_MAX, or a segment starting with
 * ".prewctl-tmp", which is reserved for the temporary files of put.
 *
 * Listing gives what ListObjectsV2 gives: keys in ascending byte order. It
 * walks depth first, reading and sorting one directory at a time, and sorts
 * a directory as its name plus "/" so that "a.jpg" < "a/b.jpg" < "a0.jpg"
 * comes out as it does from S3. Memory is the depth times the width of one
 * directory, never the number of files. max_keys and max_pages have no
 * meaning here and are ignored (more says 0).
 *
 * LastModified is the later of the file's mtime and ctime. The ctime
 * changes whenever a file is replaced or written, so an original replaced
 * by an older file (cp -p, rsync -a, mv, tar x keep the old mtime) still
 * shows as changed; a chmod counts as a change too, which costs a render,
 * never a wrong preview. The ETag is NOT an MD5 of the contents: it is made
 * from that time in ns, the size and the inode ("<time>-<size>-<ino>" in
 * hex), so that listing never reads a file.
 *
 * Metadata and the Content-Type are kept in extended attributes, as
 * "user.<name>" and "user.mime_type", where the filesystem has them; a
 * filesystem without user attributes keeps none, silently.
 *
 * put writes a temporary ".prewctl-tmp-XXXXXXXXXXXX" next to the final name
 * and renames it over that name, so a reader sees the old file or the new
 * one, never half of one. The file is on disk (fsync) before the rename,
 * so that a crash never leaves an empty or partial file under the final
 * name (XFS, btrfs and ext4 may order the rename first); it may lose a
 * recent put. A failed put removes its temporary file.
 *
 * Filesystem errors other than "no such file" are STORE_EDENIED (EACCES,
 * EPERM) or STORE_EIO, with the errno in err->errnum and the key and
 * strerror's text in err->message.
 *
 * Threads: a struct dirstore holds nothing mutable but the root descriptor,
 * which is only read, so any number of threads may call it at once. A
 * delete removes parent directories that became empty; a put racing with it
 * may find its directory gone (ENOENT) and so starts its walk again.
 */
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

#define KEY_MAX		1024		/* S3's limit, in bytes */
#define TMP_PREFIX	".prewctl-tmp"
#define TMP_PREFIX_LEN	(sizeof(TMP_PREFIX) - 1)
#define TMP_RANDOM	12		/* random characters after the '-' */
#define TMP_TRIES	100		/* names tried before giving up */
/*
 * Walks retried after an ENOENT race. Each lost race means another thread
 * removed a folder, which is progress, so the bound only stops a walk whose
 * root itself is gone; busy folders on a loaded machine need hundreds.
 */
#define PUT_ATTEMPTS	1000
#define READ_CHUNK	65536

struct dirstore {
	int	 rootfd;
	char	*root;
};

/* One listing in progress; path is the key so far, ending in '/'. */
struct lister {
	const char	*start_after;	/* NULL: none */
	int		 rollup;	/* delimiter "/" */
	s3_object_cb	 ocb;
	s3_prefix_cb	 pcb;
	void		*arg;
	struct store_error	*err;
	struct buf	 path;
};

/* A directory entry; a directory's name ends in '/' so it sorts as S3 does. */
struct entry {
	char	*name;
	size_t	 len;
	int	 dir;
};

static void	set_err(struct store_error *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* A folder's error: its errno (or 0) and a message, no S3 code. */
static void
set_err(struct store_error *err, int errnum, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
	err->errnum = errnum;
	va_start(ap, fmt);
	n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	/* A message cut short says so. */
	if (n < 0)
		err->message[0] = '\0';
	else if ((size_t)n >= sizeof(err->message))
		memcpy(err->message + sizeof(err->message) - 4, "...", 4);
}

/*
 * A filesystem error: refused (EACCES, EPERM) or an I/O error of another
 * kind, with strerror's text. The build defines _GNU_SOURCE, so this is
 * the GNU strerror_r.
 */
static enum store_status
io_err(struct store_error *err, int errnum, const char *what, const char *key)
{
	char	sbuf[128];

	set_err(err, errnum, "%s '%s': %s", what, key,
	    strerror_r(errnum, sbuf, sizeof(sbuf)));
	return errnum == EACCES || errnum == EPERM ? STORE_EDENIED : STORE_EIO;
}

static enum store_status
nomem(struct store_error *err)
{
	set_err(err, ENOMEM, "out of memory");
	return STORE_ENOMEM;
}

static enum store_status
cancelled(struct store_error *err)
{
	set_err(err, 0, "listing stopped by its callback");
	return STORE_ECANCELLED;
}

/* errno values that mean "nothing there" when walking without following. */
static int
gone(int e)
{
	return e == ENOENT || e == ENOTDIR || e == ELOOP;
}

static const char *
bad_segment(const char *s, size_t n)
{
	if (n == 0)
		return "empty path segment";
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return "\".\" or \"..\" path segment";
	if (n > NAME_MAX)
		return "path segment longer than NAME_MAX";
	if (n >= TMP_PREFIX_LEN && memcmp(s, TMP_PREFIX, TMP_PREFIX_LEN) == 0)
		return "segment reserved for temporary files";
	return NULL;
}

static const char *
bad_key(const char *key)
{
	const char	*why, *s, *e;

	if (key == NULL || key[0] == '\0')
		return "empty key";
	if (strnlen(key, KEY_MAX + 1) > KEY_MAX)
		return "key longer than 1024 bytes";
	if (key[0] == '/')
		return "key starts with '/'";
	for (s = key;; s = e + 1) {
		if ((e = strchr(s, '/')) == NULL)
			e = s + strlen(s);
		if ((why = bad_segment(s, (size_t)(e - s))) != NULL)
			return why;
		if (*e == '\0')
			return NULL;
	}
}

static enum store_status
check_key(const char *key, struct store_error *err)
{
	const char	*why;

	if ((why = bad_key(key)) == NULL)
		return STORE_OK;
	/* Do not echo a hostile key of any length. */
	set_err(err, 0, "invalid key '%.64s': %s",
	    key != NULL ? key : "", why);
	return STORE_EINVAL;
}

/* Where the last segment starts, and so the length of the parent path. */
static size_t
parent_len(const char *key, size_t len)
{
	while (len > 0 && key[len - 1] != '/')
		len--;
	return len > 0 ? len - 1 : 0;
}

static void
close_dir(const struct dirstore *ds, int fd)
{
	if (fd != -1 && fd != ds->rootfd)
		close(fd);
}

static int
is_link(int dfd, const char *name)
{
	struct stat	st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode);
}

/*
 * Opens the directory named by the first len bytes of path ("a/b"), one
 * segment at a time and never through a symlink; len 0 is the root itself
 * (returned as is: close with close_dir). With create, missing directories
 * are made; one made or removed by someone else meanwhile is fine. Returns
 * -1 with errno set on failure.
 */
static int
open_dirs(const struct dirstore *ds, const char *path, size_t len, int create)
{
	char	 seg[NAME_MAX + 1];
	size_t	 i, j, n;
	int	 fd, next, save;

	fd = ds->rootfd;
	for (i = 0; i < len; i = j + 1) {
		for (j = i; j < len && path[j] != '/'; j++)
			;
		n = j - i;
		if (n == 0 || n > NAME_MAX) {
			errno = EINVAL;
			goto fail;
		}
		memcpy(seg, path + i, n);
		seg[n] = '\0';
		next = openat(fd, seg,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* A link says ENOTDIR or ELOOP: make it ELOOP, always. */
		if (next == -1 && (errno == ENOTDIR || errno == ELOOP))
			errno = is_link(fd, seg) ? ELOOP : ENOTDIR;
		if (next == -1 && errno == ENOENT && create) {
			if (mkdirat(fd, seg, 0755) == -1 && errno != EEXIST)
				goto fail;
			next = openat(fd, seg,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next == -1)
			goto fail;
		close_dir(ds, fd);
		fd = next;
	}
	return fd;

fail:
	save = errno;
	close_dir(ds, fd);
	errno = save;
	return -1;
}

struct dirstore *
dirstore_new(const char *root, struct store_error *err)
{
	struct dirstore	*ds = NULL;
	char		 sbuf[128];
	int		 fd = -1;

	if (root == NULL || root[0] == '\0') {
		set_err(err, 0, "no storage directory given");
		goto fail;
	}
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		set_err(err, errno, "cannot open directory '%s': %s",
		    root, strerror_r(errno, sbuf, sizeof(sbuf)));
		goto fail;
	}
	if ((ds = calloc(1, sizeof(*ds))) == NULL ||
	    (ds->root = strdup(root)) == NULL) {
		set_err(err, ENOMEM, "out of memory");
		goto fail;
	}
	ds->rootfd = fd;
	return ds;

fail:
	if (fd != -1)
		close(fd);
	if (ds != NULL)
		free(ds->root);
	free(ds);
	return NULL;
}

void
dirstore_free(struct dirstore *ds)
{
	if (ds == NULL)
		return;
	close(ds->rootfd);
	free(ds->root);
	free(ds);
}

const char *
dirstore_root(const struct dirstore *ds)
{
	return ds->root;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct entry	*ea = a, *eb = b;

	return strcmp(ea->name, eb->name);
}

/* Whether a name is worth a look: not ".", "..", or a temporary file. */
static int
skip_name(const char *name)
{
	if (name[0] == '.' && (name[1] == '\0' ||
	    (name[1] == '.' && name[2] == '\0')))
		return 1;
	return strncmp(name, TMP_PREFIX, TMP_PREFIX_LEN) == 0;
}

/* DT_REG, DT_DIR, or DT_UNKNOWN for anything to skip; -1 on error. */
static int
entry_type(DIR *d, const struct dirent *de)
{
	struct stat	st;

	switch (de->d_type) {
	case DT_REG:
	case DT_DIR:
		return de->d_type;
	case DT_UNKNOWN:
		break;
	default:
		return DT_UNKNOWN;
	}
	if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? DT_UNKNOWN : -1;
	if (S_ISREG(st.st_mode))
		return DT_REG;
	if (S_ISDIR(st.st_mode))
		return DT_DIR;
	return DT_UNKNOWN;
}

/*
 * The next entry of d to list: a file or a directory whose name starts
 * with match (NULL: any), not one of our temporary files.  STORE_OK with *dep
 * NULL at the end of d.
 */
static enum store_status
next_entry(struct lister *l, DIR *d, const char *match, struct dirent **dep,
    int *type)
{
	struct dirent	*de;
	size_t		 mlen = match != NULL ? strlen(match) : 0;

	*dep = NULL;
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			return errno != 0 ? io_err(l->err, errno,
			    "cannot read directory", l->path.data) : STORE_OK;
		if (skip_name(de->d_name) ||
		    (mlen > 0 && strncmp(de->d_name, match, mlen) != 0))
			continue;
		if ((*type = entry_type(d, de)) == -1)
			return io_err(l->err, errno, "cannot stat", de->d_name);
		if (*type != DT_UNKNOWN) {
			*dep = de;
			return STORE_OK;
		}
	}
}

/*
 * Every key below a directory K (ending in '/') starts with K. All of them
 * sort before start_after when K does and start_after does not start with K.
 */
static int
dir_before_start(const struct lister *l, const char *k, size_t klen)
{
	const char	*sa = l->start_after;

	return sa != NULL && strcmp(k, sa) < 0 && strncmp(sa, k, klen) != 0;
}

static void
free_entries(struct entry *ents, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
}

/* Reads one directory whole: the names starting with match, to be sorted. */
static enum store_status
read_dir(struct lister *l, DIR *d, const char *match, struct entry **entsp,
    size_t *np)
{
	struct dirent	*de;
	struct entry	*ents = NULL, *p;
	size_t		 n = 0, cap = 0, nlen;
	enum store_status	 rc;
	int		 type;

	while ((rc = next_entry(l, d, match, &de, &type)) == STORE_OK &&
	    de != NULL) {
		nlen = strlen(de->d_name);
		/* Nothing here could be a key S3 would take. */
		if (l->path.len + nlen + (type == DT_DIR ? 2 : 0) > KEY_MAX)
			continue;
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			if ((p = reallocarray(ents, cap, sizeof(*p))) == NULL) {
				rc = nomem(l->err);
				break;
			}
			ents = p;
		}
		p = &ents[n];
		if ((p->name = malloc(nlen + 2)) == NULL) {
			rc = nomem(l->err);
			break;
		}
		memcpy(p->name, de->d_name, nlen);
		p->dir = type == DT_DIR;
		if (p->dir)
			p->name[nlen++] = '/';
		p->name[nlen] = '\0';
		p->len = nlen;
		n++;
	}
	if (rc != STORE_OK) {
		free_entries(ents, n);
		return rc;
	}
	*entsp = ents;
	*np = n;
	return STORE_OK;
}

/*
 * What a listing or a HEAD says of a file: its size, the later of its
 * mtime and ctime as LastModified, and the ETag made from that time, the
 * size and the inode (see the top of this file).
 */
static void
file_identity(const struct stat *st, struct store_head *hd)
{
	const struct timespec	*t = &st->st_mtim;

	if (st->st_ctim.tv_sec > t->tv_sec || (st->st_ctim.tv_sec ==
	    t->tv_sec && st->st_ctim.tv_nsec > t->tv_nsec))
		t = &st->st_ctim;
	hd->size = (uint64_t)st->st_size;
	hd->mtime_ms = (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
	/* Three 64-bit numbers in hex always fit. */
	(void)snprintf(hd->etag, sizeof(hd->etag),
	    "%" PRIx64 "-%" PRIx64 "-%" PRIx64,
	    (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec,
	    (uint64_t)st->st_size, (uint64_t)st->st_ino);
}

static enum store_status
visit_file(struct lister *l, int dfd, const char *name)
{
	struct stat		 st;
	struct s3_object	 obj;
	struct store_head	 id;
	const char		*key = l->path.data;

	if (l->start_after != NULL && strcmp(key, l->start_after) <= 0)
		return STORE_OK;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT)
			return STORE_OK;	/* deleted meanwhile */
		return io_err(l->err, errno, "cannot stat", key);
	}
	if (!S_ISREG(st.st_mode))
		return STORE_OK;
	file_identity(&st, &id);
	obj.key = key;
	obj.size = id.size;
	obj.etag = id.etag;
	obj.mtime_ms = id.mtime_ms;
	if (l->ocb != NULL && l->ocb(l->arg, &obj) != 0)
		return cancelled(l->err);
	return STORE_OK;
}

/*
 * Whether a directory (fd, taken over; path its key with '/') holds a key
 * after start_after: that decides whether its common prefix shows. Reads
 * without sorting and stops at the first one.
 */
static enum store_status
has_key(struct lister *l, int fd, int *found)
{
	DIR		*d;
	struct dirent	*de;
	size_t		 base = l->path.len;
	enum store_status	 rc = STORE_OK;
	int		 type, cfd;

	if ((d = fdopendir(fd)) == NULL) {
		rc = io_err(l->err, errno, "cannot read directory",
		    l->path.data);
		close(fd);
		return rc;
	}
	while (!*found && (rc = next_entry(l, d, NULL, &de, &type)) == STORE_OK &&
	    de != NULL) {
		buf_truncate(&l->path, base);
		if (buf_addstr(&l->path, de->d_name) != 0 ||
		    (type == DT_DIR && buf_addch(&l->path, '/') != 0)) {
			rc = nomem(l->err);
			break;
		}
		if (type == DT_REG) {
			if (l->path.len <= KEY_MAX && (l->start_after == NULL ||
			    strcmp(l->path.data, l->start_after) > 0))
				*found = 1;
			continue;
		}
		if (l->path.len + 1 > KEY_MAX ||
		    dir_before_start(l, l->path.data, l->path.len))
			continue;
		cfd = openat(dirfd(d), de->d_name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd == -1) {
			if (gone(errno))
				continue;
			rc = io_err(l->err, errno, "cannot open", l->path.data);
			break;
		}
		if ((rc = has_key(l, cfd, found)) != STORE_OK)
			break;
	}
	buf_truncate(&l->path, base);
	closedir(d);
	return rc;
}

static enum store_status	walk(struct lister *, int, const char *);

/* path is the directory's key, with its '/'. */
static enum store_status
visit_dir(struct lister *l, int dfd, const char *name)
{
	enum store_status	rc;
	int		fd, found = 0;

	if (dir_before_start(l, l->path.data, l->path.len))
		return STORE_OK;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		if (gone(errno))
			return STORE_OK;
		return io_err(l->err, errno, "cannot open", l->path.data);
	}
	if (!l->rollup)
		return walk(l, fd, NULL);
	if ((rc = has_key(l, fd, &found)) != STORE_OK || !found)
		return rc;
	if (l->pcb != NULL && l->pcb(l->arg, l->path.data) != 0)
		return cancelled(l->err);
	return STORE_OK;
}

/*
 * Lists one directory (fd, taken over; l->path its key) in byte order of
 * the keys. match, at the top only, is the part of the prefix after the
 * last '/': a name must start with it.
 */
static enum store_status
walk(struct lister *l, int fd, const char *match)
{
	DIR		*d;
	struct entry	*ents = NULL;
	size_t		 n = 0, i, base = l->path.len;
	enum store_status	 rc;

	if ((d = fdopendir(fd)) == NULL) {
		rc = io_err(l->err, errno, "cannot read directory",
		    l->path.data);
		close(fd);
		return rc;
	}
	if ((rc = read_dir(l, d, match, &ents, &n)) != STORE_OK)
		goto out;
	if (n > 1)
		qsort(ents, n, sizeof(*ents), entry_cmp);
	for (i = 0; i < n; i++) {
		buf_truncate(&l->path, base);
		if (buf_add(&l->path, ents[i].name, ents[i].len) != 0) {
			rc = nomem(l->err);
			goto out;
		}
		if (ents[i].dir) {
			ents[i].name[ents[i].len - 1] = '\0';
			rc = visit_dir(l, dirfd(d), ents[i].name);
		} else
			rc = visit_file(l, dirfd(d), ents[i].name);
		if (rc != STORE_OK)
			goto out;
	}

out:
	buf_truncate(&l->path, base);
	free_entries(ents, n);
	closedir(d);
	return rc;
}

enum store_status
dirstore_list(struct dirstore *ds, const struct s3_list_params *params,
    s3_object_cb ocb, s3_prefix_cb pcb, void *arg, struct store_error *err)
{
	struct lister	 l;
	const char	*prefix = "", *delim = NULL, *s, *e;
	size_t		 dirlen;
	enum store_status	 rc = STORE_OK;
	int		 fd = -1;

	memset(&l, 0, sizeof(l));
	buf_init(&l.path, BUF_NOMAX);
	if (params != NULL) {
		if (params->prefix != NULL)
			prefix = params->prefix;
		delim = params->delimiter;
		l.start_after = params->start_after;
		/* One listing, never pages: nothing goes on after it. */
		if (params->more != NULL)
			*params->more = 0;
	}
	if (delim != NULL && delim[0] != '\0' && strcmp(delim, "/") != 0) {
		set_err(err, 0,
		    "a folder supports only \"/\" as a delimiter");
		return STORE_EINVAL;
	}
	l.rollup = delim != NULL && delim[0] != '\0';
	l.ocb = ocb;
	l.pcb = pcb;
	l.arg = arg;
	l.err = err;

	/* The directory part of the prefix; no key can match a bad one. */
	dirlen = parent_len(prefix, strlen(prefix));
	if (strlen(prefix) > KEY_MAX)
		goto out;
	for (s = prefix; dirlen > 0; s = e + 1) {
		if ((e = memchr(s, '/', (size_t)(prefix + dirlen - s))) == NULL)
			e = prefix + dirlen;
		if (bad_segment(s, (size_t)(e - s)) != NULL)
			goto out;
		if (e == prefix + dirlen)
			break;
	}
	if (dirlen == 0)
		/* Not the root descriptor: readdir would move its offset. */
		fd = openat(ds->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	else
		fd = open_dirs(ds, prefix, dirlen, 0);
	/*
	 * A link on the way to the prefix is never followed; a listing that
	 * came back empty for it would hide every original, so say so.
	 */
	if (fd == -1 && errno == ELOOP) {
		set_err(err, ELOOP, "a folder on the way to '%s' is a symbolic "
		    "link, and links are never followed", prefix);
		rc = STORE_EINVAL;
		goto out;
	}
	if (fd == -1) {
		if (!gone(errno))
			rc = io_err(err, errno, "cannot open", prefix);
		goto out;
	}
	if (dirlen > 0 && buf_add(&l.path, prefix, dirlen + 1) != 0) {
		close(fd);
		rc = nomem(err);
		goto out;
	}
	rc = walk(&l, fd, prefix + (dirlen > 0 ? dirlen + 1 : 0));

out:
	buf_release(&l.path);
	return rc;
}

static enum store_status
notfound(struct store_error *err, const char *key)
{
	set_err(err, ENOENT, "no such key '%s'", key);
	return STORE_ENOTFOUND;
}

static enum store_status
toobig(struct store_error *err, const char *key, size_t max)
{
	set_err(err, EFBIG, "'%s' is larger than %zu bytes", key, max);
	return STORE_ETOOBIG;
}

/* read(2) that retries EINTR. */
static ssize_t
read_retry(int fd, void *p, size_t n)
{
	ssize_t	r;

	do
		r = read(fd, p, n);
	while (r == -1 && errno == EINTR);
	return r;
}

/*
 * Open the regular file key names, never through a link, with its stat:
 * *fdp is -1 on failure (a link, a FIFO or a folder is STORE_ENOTFOUND).
 */
static enum store_status
open_file(struct dirstore *ds, const char *key, int *fdp, struct stat *st,
    struct store_error *err)
{
	size_t			 dirlen;
	enum store_status	 rc;
	int			 dfd, fd;

	*fdp = -1;
	if ((rc = check_key(key, err)) != STORE_OK)
		return rc;
	dirlen = parent_len(key, strlen(key));
	if ((dfd = open_dirs(ds, key, dirlen, 0)) == -1)
		return gone(errno) ? notfound(err, key) :
		    io_err(err, errno, "cannot open", key);
	/* O_NONBLOCK: a FIFO must not hang us before fstat says what it is. */
	fd = openat(dfd, key + (dirlen > 0 ? dirlen + 1 : 0),
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		rc = gone(errno) ? notfound(err, key) :
		    io_err(err, errno, "cannot open", key);
	else if (fstat(fd, st) == -1)
		rc = io_err(err, errno, "cannot stat", key);
	else if (!S_ISREG(st->st_mode))
		rc = notfound(err, key);
	close_dir(ds, dfd);
	if (rc != STORE_OK) {
		if (fd != -1)
			close(fd);
		return rc;
	}
	*fdp = fd;
	return STORE_OK;
}

#define XATTR_USER	"user."
#define XATTR_TYPE_NAME	"mime_type"	/* set_attr adds the "user." */
#define XATTR_TYPE	XATTR_USER XATTR_TYPE_NAME
#define XATTR_MAX	4096		/* a value we would write, at most */

/*
 * The metadata of an open file into hd->meta as "name=value\n": every
 * "user." attribute but the Content-Type. A filesystem without them has
 * none; a value we could not have written (too long, with a newline) is
 * skipped.
 */
static void
read_meta(int fd, struct store_head *hd)
{
	char	 names[XATTR_MAX], value[XATTR_MAX];
	ssize_t	 nl, vl;
	char	*n;

	buf_reset(&hd->meta);
	hd->content_type[0] = '\0';
	vl = fgetxattr(fd, XATTR_TYPE, value, sizeof(value));
	if (vl > 0 && (size_t)vl < sizeof(hd->content_type) &&
	    memchr(value, '\n', (size_t)vl) == NULL) {
		memcpy(hd->content_type, value, (size_t)vl);
		hd->content_type[vl] = '\0';
	}
	if ((nl = flistxattr(fd, names, sizeof(names))) <= 0)
		return;
	for (n = names; n < names + nl; n += strlen(n) + 1) {
		if (strncmp(n, XATTR_USER, strlen(XATTR_USER)) != 0 ||
		    strcmp(n, XATTR_TYPE) == 0)
			continue;
		vl = fgetxattr(fd, n, value, sizeof(value));
		if (vl < 0 || memchr(value, '\n', (size_t)vl) != NULL)
			continue;
		if (buf_addf(&hd->meta, "%s=", n + strlen(XATTR_USER)) != 0 ||
		    buf_add(&hd->meta, value, (size_t)vl) != 0 ||
		    buf_addch(&hd->meta, '\n') != 0)
			return;
	}
}

enum store_status
dirstore_head(struct dirstore *ds, const char *key, struct store_head *hd,
    struct store_error *err)
{
	struct stat		 st;
	enum store_status	 rc;
	int			 fd;

	if ((rc = open_file(ds, key, &fd, &st, err)) != STORE_OK)
		return rc;
	file_identity(&st, hd);
	read_meta(fd, hd);
	close(fd);
	return STORE_OK;
}

enum store_status
dirstore_get(struct dirstore *ds, const char *key, size_t max_bytes,
    struct buf *out, struct store_head *hd, struct store_error *err)
{
	struct stat	 st;
	size_t		 room, avail, want;
	ssize_t		 n;
	enum store_status	 rc = STORE_OK;
	int		 fd = -1;
	char		 c;

	buf_reset(out);
	if ((rc = open_file(ds, key, &fd, &st, err)) != STORE_OK)
		return rc;
	if ((uint64_t)st.st_size > max_bytes) {
		rc = toobig(err, key, max_bytes);
		goto out;
	}
	if (buf_grow(out, (size_t)st.st_size) != 0) {
		rc = (size_t)st.st_size > out->max ?
		    toobig(err, key, max_bytes) : nomem(err);
		goto out;
	}

	/* The file may grow while we read: never take more than max_bytes. */
	for (;;) {
		room = max_bytes - out->len;
		if (room < SIZE_MAX)
			room++;		/* one byte more tells it grew */
		if ((avail = buf_avail(out)) == 0) {
			want = room < READ_CHUNK ? room : READ_CHUNK;
			if (buf_grow(out, want) != 0) {
				if (want <= out->max - out->len) {
					rc = nomem(err);
					goto out;
				}
				/* out is full: only the end may follow. */
				if ((n = read_retry(fd, &c, 1)) == -1) {
					rc = io_err(err, errno, "cannot read",
					    key);
					goto out;
				}
				if (n == 0)
					break;
				rc = toobig(err, key, max_bytes);
				goto out;
			}
			avail = buf_avail(out);
		}
		if (avail > room)
			avail = room;
		if ((n = read_retry(fd, out->data + out->len, avail)) == -1) {
			rc = io_err(err, errno, "cannot read", key);
			goto out;
		}
		if (n == 0)
			break;
		buf_setlen(out, out->len + (size_t)n);
		if (out->len > max_bytes) {
			rc = toobig(err, key, max_bytes);
			goto out;
		}
	}
	/* What was read is what this says: the same open file. */
	if (hd != NULL) {
		if (fstat(fd, &st) == -1) {
			rc = io_err(err, errno, "cannot stat", key);
			goto out;
		}
		file_identity(&st, hd);
		read_meta(fd, hd);
	}

out:
	if (rc != STORE_OK)
		buf_reset(out);
	close(fd);
	return rc;
}

/* Creates ".prewctl-tmp-XXXXXXXXXXXX" in dfd, exclusively; name gets it. */
static int
open_tmp(int dfd, char *name, size_t size)
{
	static const char	 chars[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned char		 rnd[TMP_RANDOM];
	size_t			 i;
	int			 fd, try;

	if (size < TMP_PREFIX_LEN + 1 + TMP_RANDOM + 1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(name, TMP_PREFIX "-", TMP_PREFIX_LEN + 1);
	for (try = 0; try < TMP_TRIES; try++) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (i = 0; i < TMP_RANDOM; i++)
			name[TMP_PREFIX_LEN + 1 + i] =
			    chars[rnd[i] % (sizeof(chars) - 1)];
		name[TMP_PREFIX_LEN + 1 + TMP_RANDOM] = '\0';
		fd = openat(dfd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

static int
write_all(int fd, const void *data, size_t len)
{
	const char	*p = data;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len > SSIZE_MAX ? SSIZE_MAX : len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Temporary files being written, so that a process told to stop at once
 * (a second signal) can remove them before it exits: dirstore_unlink_temps
 * runs in a signal handler, so a slot is published by one atomic store
 * after its fields are set, and only read, never written, there.
 */
#define TEMP_SLOTS 64

static struct temp_slot {
	atomic_int	 used;
	int		 dfd;
	char		 name[TMP_PREFIX_LEN + 1 + TMP_RANDOM + 1];
} temp_slots[TEMP_SLOTS];

static struct temp_slot *
temp_claim(int dfd, const char *name)
{
	size_t	i;
	int	free_ = 0;

	for (i = 0; i < TEMP_SLOTS; i++) {
		free_ = 0;
		if (!atomic_compare_exchange_strong(&temp_slots[i].used, &free_,
		    2))
			continue;
		temp_slots[i].dfd = dfd;
		memcpy(temp_slots[i].name, name, sizeof(temp_slots[i].name));
		atomic_store(&temp_slots[i].used, 1);
		return &temp_slots[i];
	}
	return NULL;	/* more writers than slots: not tracked */
}

static void
temp_release(struct temp_slot *t)
{
	if (t != NULL)
		atomic_store(&t->used, 0);
}

void
dirstore_unlink_temps(void)
{
	size_t	i;

	for (i = 0; i < TEMP_SLOTS; i++)
		if (atomic_load(&temp_slots[i].used) == 1)
			unlinkat(temp_slots[i].dfd, temp_slots[i].name, 0);
}

/* One attribute; a filesystem without user attributes is no error. */
static int
set_attr(int fd, const char *name, const char *value)
{
	char	full[256];
	int	n;

	n = snprintf(full, sizeof(full), XATTR_USER "%s", name);
	if (n < 0 || (size_t)n >= sizeof(full)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (fsetxattr(fd, full, value, strlen(value), 0) == -1 &&
	    errno != ENOTSUP)
		return -1;
	return 0;
}

/* The Content-Type and the metadata of opts, as attributes of fd. */
static int
write_meta(int fd, const struct s3_put_opts *opts)
{
	size_t	i;

	if (opts == NULL)
		return 0;
	if (opts->content_type != NULL &&
	    set_attr(fd, XATTR_TYPE_NAME, opts->content_type) == -1)
		return -1;
	for (i = 0; i < opts->nmeta; i++)
		if (set_attr(fd, opts->meta[i].name, opts->meta[i].value) == -1)
			return -1;
	return 0;
}

enum store_status
dirstore_put(struct dirstore *ds, const char *key, const void *data,
    size_t len, const struct s3_put_opts *opts, struct store_error *err)
{
	struct temp_slot *slot = NULL;
	sigset_t	 all, old;
	char		 tmp[TMP_PREFIX_LEN + 1 + TMP_RANDOM + 1];
	const char	*name;
	size_t		 dirlen;
	enum store_status	 rc = STORE_OK;
	int		 dfd = -1, fd = -1, attempt, made = 0, save;

	if ((rc = check_key(key, err)) != STORE_OK)
		return rc;
	if (data == NULL && len > 0) {
		set_err(err, 0, "no data for '%s'", key);
		return STORE_EINVAL;
	}
	dirlen = parent_len(key, strlen(key));
	name = key + (dirlen > 0 ? dirlen + 1 : 0);

	/* A delete may remove an empty directory under us: walk again. */
	for (attempt = 1;; attempt++) {
		if ((dfd = open_dirs(ds, key, dirlen, 1)) == -1) {
			if (errno == ENOENT && attempt < PUT_ATTEMPTS) {
				sched_yield();
				continue;
			}
			rc = io_err(err, errno, "cannot make the folder for",
			    key);
			goto out;
		}
		/*
		 * No signal between creating the file and recording it, or
		 * dirstore_unlink_temps could miss it.
		 */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		if ((fd = open_tmp(dfd, tmp, sizeof(tmp))) != -1)
			slot = temp_claim(dfd, tmp);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (fd != -1)
			break;
		save = errno;
		close_dir(ds, dfd);
		dfd = -1;
		if (save == ENOENT && attempt < PUT_ATTEMPTS) {
			sched_yield();
			continue;
		}
		rc = io_err(err, save, "cannot make a temporary file for", key);
		goto out;
	}
	made = 1;
	if (write_all(fd, data, len) == -1) {
		rc = io_err(err, errno, "cannot write", key);
		goto out;
	}
	if (write_meta(fd, opts) == -1) {
		rc = io_err(err, errno, "cannot set the attributes of", key);
		goto out;
	}
	if (fchmod(fd, 0644) == -1) {
		rc = io_err(err, errno, "cannot chmod", key);
		goto out;
	}
	if (fsync(fd) == -1) {
		rc = io_err(err, errno, "cannot write", key);
		goto out;
	}
	save = close(fd);
	fd = -1;
	if (save == -1) {
		rc = io_err(err, errno, "cannot write", key);
		goto out;
	}
	if (renameat(dfd, tmp, dfd, name) == -1) {
		rc = io_err(err, errno, "cannot rename into place", key);
		goto out;
	}
	made = 0;

out:
	if (fd != -1)
		close(fd);
	if (made)
		unlinkat(dfd, tmp, 0);
	temp_release(slot);
	close_dir(ds, dfd);
	return rc;
}

/* Removes the directories above a deleted key that are now empty. */
static void
prune_dirs(const struct dirstore *ds, const char *key, size_t dirlen)
{
	char	seg[NAME_MAX + 1];
	size_t	plen, start, n;
	int	pfd, r;

	while (dirlen > 0) {
		plen = parent_len(key, dirlen);
		start = plen > 0 ? plen + 1 : 0;
		n = dirlen - start;
		if (n > NAME_MAX)
			return;
		memcpy(seg, key + start, n);
		seg[n] = '\0';
		if ((pfd = open_dirs(ds, key, plen, 0)) == -1)
			return;
		/* AT_REMOVEDIR never follows a symlink; ENOTEMPTY ends it. */
		r = unlinkat(pfd, seg, AT_REMOVEDIR);
		close_dir(ds, pfd);
		if (r == -1)
			return;
		dirlen = plen;
	}
}

enum store_status
dirstore_delete_many(struct dirstore *ds, const char *const *keys, size_t n,
    store_delete_err_cb cb, void *arg, struct store_error *err)
{
	struct store_error	 kerr;
	enum store_status	 st;
	const char		*key;
	size_t			 i, dirlen, failed = 0;
	int			 dfd;

	for (i = 0; i < n; i++) {
		key = keys[i] != NULL ? keys[i] : "";
		st = check_key(key, &kerr);
		dirlen = parent_len(key, strlen(key));
		if (st == STORE_OK &&
		    (dfd = open_dirs(ds, key, dirlen, 0)) == -1) {
			if (gone(errno))
				continue;	/* nothing there: deleted */
			st = io_err(&kerr, errno, "cannot open", key);
		} else if (st == STORE_OK) {
			/* A missing key, or a directory, is no object. */
			if (unlinkat(dfd, key + (dirlen > 0 ? dirlen + 1 : 0),
			    0) == -1 && errno != ENOENT && errno != EISDIR)
				st = io_err(&kerr, errno, "cannot delete", key);
			close_dir(ds, dfd);
			prune_dirs(ds, key, dirlen);
		}
		if (st != STORE_OK) {
			if (cb != NULL)
				cb(arg, key, st, &kerr);
			failed++;
		}
	}
	if (failed > 0) {
		set_err(err, 0, "%zu of %zu keys not deleted", failed, n);
		return STORE_EPARTIAL;
	}
	return STORE_OK;
}
