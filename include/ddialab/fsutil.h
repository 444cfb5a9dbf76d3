/*
 * File-system helpers with crash safety spelled out.
 *
 * Every function returns 0 on success or a negative errno value. None of them keeps state, and
 * all of them are safe to call from any thread (they only use the file descriptors they open).
 *
 * What "durable" means here: once the function returns 0, the named effect survives a power
 * loss, because the file data and every directory entry on the way to it have been fsynced.
 */
#ifndef DDIALAB_FSUTIL_H
#define DDIALAB_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Creates path and any missing parents (mode 0755 before the umask), like `mkdir -p`. Each
 * directory it creates is made durable by fsyncing its parent. A path that exists as a directory
 * is fine; one that exists as something else fails with -ENOTDIR.
 */
int dl_mkdir_p(const char *path);

/* Fsyncs the directory itself, making the creations, renames and deletions in it durable. */
int dl_fsync_dir(const char *dir);

/*
 * Replaces the file at path with exactly len bytes of data, atomically: readers (and a crash)
 * see either the old content or the new, never a mix or a partial file. It writes a temporary
 * file in the same directory ("<path>.tmp.<pid>.<n>"), fsyncs it, renames it over path and
 * fsyncs the directory. On failure the temporary file is removed and path is untouched.
 */
int dl_atomic_write_file(const char *path, const void *data, size_t len);

/*
 * Reads the whole file at path. On success *data is a malloc'd buffer the caller frees, holding
 * *len bytes followed by a NUL (not counted in *len), so text files can be used as strings.
 * Returns -ENOENT when the file does not exist; *data is NULL on every failure.
 */
int dl_read_file(const char *path, char **data, size_t *len);

/*
 * Removes path and everything under it, like `rm -rf` (symbolic links are removed, never
 * followed). A path that does not exist is fine. Not durable by itself: fsync the parent
 * directory afterwards when that matters. Not thread-safe (nftw(3) keeps the walk's state).
 */
int dl_remove_tree(const char *path);

/* Writes all len bytes to fd at its current position, retrying short writes and EINTR. */
int dl_write_all(int fd, const void *data, size_t len);

/*
 * Reads up to len bytes from fd at offset, retrying short reads and EINTR until len bytes are
 * read or end of file. Returns the number of bytes read (less than len only at end of file), or
 * a negative errno value.
 */
ssize_t dl_pread_all(int fd, void *buf, size_t len, uint64_t offset);

#endif
