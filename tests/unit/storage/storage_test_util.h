/* Helpers shared by the storage unit tests: temporary directories, copies, file surgery. */
#ifndef DDIALAB_TEST_STORAGE_TEST_UTIL_H
#define DDIALAB_TEST_STORAGE_TEST_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ddialab/fsutil.h"

/* A new empty directory under $TMPDIR (or /tmp); malloc'd path. Aborts on failure. */
static inline char *test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char buf[4096];
    int n = snprintf(buf, sizeof(buf) - 7, "%s/ddialab-storage-", base && *base ? base : "/tmp");
    if (n < 0 || (size_t)n >= sizeof(buf) - 7)
        abort();
    memset(buf + n, 'X', 6); /* mkdtemp's template */
    buf[n + 6] = '\0';
    if (mkdtemp(buf) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return strdup(buf);
}

/* rm -rf path. */
static inline void test_remove_tree(const char *path)
{
    (void)dl_remove_tree(path);
}

/* cmocka fixture: *state is a new temporary directory, removed after the test, also when the
   test fails. Use as cmocka_unit_test_setup_teardown(f, test_tmpdir_setup, test_tmpdir_teardown)
   or through TMPDIR_TEST(f). */
static inline int test_tmpdir_setup(void **state)
{
    *state = test_tmpdir();
    return 0;
}

static inline int test_tmpdir_teardown(void **state)
{
    test_remove_tree(*state);
    free(*state);
    return 0;
}

#define TMPDIR_TEST(f) cmocka_unit_test_setup_teardown(f, test_tmpdir_setup, test_tmpdir_teardown)

static inline char *test_path(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        abort();
    return p;
}

/* Copies the regular files of src (one level) into dst, which is created. 0 or -1. */
static inline int test_copy_dir(const char *src, const char *dst)
{
    if (dl_mkdir_p(dst) != 0)
        return -1;
    DIR *d = opendir(src);
    if (d == NULL)
        return -1;
    struct dirent *e;
    int rv = 0;
    while (rv == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *from = test_path(src, e->d_name), *to = test_path(dst, e->d_name);
        char *data;
        size_t len;
        if (dl_read_file(from, &data, &len) != 0) {
            rv = -1;
        } else {
            int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || dl_write_all(fd, data, len) != 0)
                rv = -1;
            if (fd >= 0)
                close(fd);
            free(data);
        }
        free(from);
        free(to);
    }
    closedir(d);
    return rv;
}

static inline int test_compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir ending with suffix, sorted; *n receives the count. Free with
   test_free_names. */
static inline char **test_list_names(const char *dir, const char *suffix, size_t *n)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    *n = 0;
    if (d == NULL)
        return NULL;
    struct dirent *e;
    size_t slen = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < slen || strcmp(e->d_name + len - slen, suffix) != 0)
            continue;
        names = realloc(names, (*n + 1) * sizeof(*names));
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n > 0)
        qsort(names, *n, sizeof(*names), test_compare_names);
    return names;
}

static inline void test_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static inline long long test_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* XORs the byte at offset of the file with mask. 0 or -1. */
static inline int test_flip_byte(const char *path, long long offset, unsigned char mask)
{
    int fd = open(path, O_RDWR);
    unsigned char b;
    int rv = -1;
    if (fd < 0)
        return -1;
    if (pread(fd, &b, 1, offset) == 1) {
        b ^= mask;
        rv = pwrite(fd, &b, 1, offset) == 1 ? 0 : -1;
    }
    close(fd);
    return rv;
}

/* Overwrites len bytes at offset with byte value c (extending the file if needed). */
static inline int test_fill_bytes(const char *path, long long offset, size_t len, unsigned char c)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -1;
    unsigned char *buf = malloc(len ? len : 1);
    memset(buf, c, len);
    int rv = pwrite(fd, buf, len, offset) == (ssize_t)len ? 0 : -1;
    free(buf);
    close(fd);
    return rv;
}

#endif
