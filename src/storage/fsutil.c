/* File-system helpers: mkdir -p, directory fsync, atomic replace, whole-file reads. */
#include "ddialab/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Copies the directory part of path into out ("." when path has no slash). */
static int parent_dir(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    size_t n;
    if (slash == NULL) {
        n = 1;
        path = ".";
    } else {
        n = (slash == path) ? 1 : (size_t)(slash - path); /* "/x" -> "/" */
    }
    if (n >= outlen)
        return -ENAMETOOLONG;
    memcpy(out, path, n);
    out[n] = '\0';
    return 0;
}

int dl_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rv = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rv;
}

/* Creates one directory; 1 if it was created, 0 if a directory was already there. */
static int mkdir_one(const char *path)
{
    if (mkdir(path, 0755) == 0)
        return 1;
    if (errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int dl_mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0)
        return -EINVAL;
    if (len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';

    /* Walk the prefixes "a", "a/b", "a/b/c"; the leading "/" of an absolute path is skipped. */
    for (size_t i = 1; i <= len; i++) {
        if (i < len && buf[i] != '/')
            continue;
        if (buf[i - 1] == '/') /* "a//b": the empty component adds nothing */
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        int rv = mkdir_one(buf);
        if (rv == 1) {
            char parent[PATH_MAX];
            rv = parent_dir(buf, parent, sizeof(parent));
            if (rv == 0)
                rv = dl_fsync_dir(parent);
        }
        buf[i] = saved;
        if (rv < 0)
            return rv;
    }
    return 0;
}

int dl_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t dl_pread_all(int fd, void *buf, size_t len, uint64_t offset)
{
    char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int dl_atomic_write_file(const char *path, const void *data, size_t len)
{
    static atomic_uint counter;
    char tmp[PATH_MAX];
    char dir[PATH_MAX];
    int rv = parent_dir(path, dir, sizeof(dir));
    if (rv < 0)
        return rv;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%u", path, (long)getpid(),
                     atomic_fetch_add(&counter, 1));
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -ENAMETOOLONG;

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0)
        return -errno;
    rv = dl_write_all(fd, data, len);
    if (rv < 0)
        goto err_after_open;
    if (fsync(fd) != 0) {
        rv = -errno;
        goto err_after_open;
    }
    if (close(fd) != 0) {
        rv = -errno;
        goto err_after_close;
    }
    if (rename(tmp, path) != 0) {
        rv = -errno;
        goto err_after_close;
    }
    return dl_fsync_dir(dir);

err_after_open:
    close(fd);
err_after_close:
    unlink(tmp);
    return rv;
}

int dl_read_file(const char *path, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;

    /* The size is only a hint: read until end of file, so files that grow (or report size 0,
       like /proc) are read whole. */
    struct stat st;
    size_t cap = 4096;
    if (fstat(fd, &st) == 0 && st.st_size > 0)
        cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    size_t used = 0;
    int rv = 0;
    if (buf == NULL) {
        rv = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (used + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                rv = -ENOMEM;
                goto out;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + used, cap - 1 - used);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rv = -errno;
            goto out;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    buf[used] = '\0';
    *data = buf;
    *len = used;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rv;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rv = type == FTW_DP ? rmdir(path) : unlink(path);
    return rv == 0 || errno == ENOENT ? 0 : -errno;
}

int dl_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    int rv = nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return rv == 0 ? 0 : rv == -1 ? -errno : rv;
}
