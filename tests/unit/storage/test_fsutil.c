/* File-system helpers: mkdir -p, atomic replacement, whole-file reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>

#include "ddialab/fsutil.h"
#include "storage_test_util.h"

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_mkdir_p_creates_nested_directories_and_accepts_existing_ones(void **state)
{
    const char *root = *state;
    char *deep = test_path(root, "a/b/c");
    assert_int_equal(dl_mkdir_p(deep), 0);
    assert_true(is_dir(deep));
    assert_int_equal(dl_mkdir_p(deep), 0); /* again: nothing to do */
    char *messy = test_path(root, "x//y/");
    assert_int_equal(dl_mkdir_p(messy), 0);
    char *clean = test_path(root, "x/y");
    assert_true(is_dir(clean));
    assert_int_equal(dl_mkdir_p(""), -EINVAL);
    free(clean);
    free(messy);
    free(deep);
}

static void test_mkdir_p_fails_when_a_file_is_in_the_way(void **state)
{
    const char *root = *state;
    char *file = test_path(root, "file");
    assert_int_equal(dl_atomic_write_file(file, "x", 1), 0);
    assert_int_equal(dl_mkdir_p(file), -ENOTDIR);
    char *below = test_path(file, "sub");
    assert_int_equal(dl_mkdir_p(below), -ENOTDIR);
    free(below);
    free(file);
}

static void test_atomic_write_file_replaces_content_and_leaves_no_temporary_files(void **state)
{
    const char *root = *state;
    char *path = test_path(root, "meta.json");
    assert_int_equal(dl_atomic_write_file(path, "{\"term\": 1, \"long\": true}", 25), 0);
    assert_int_equal(dl_atomic_write_file(path, "{\"term\": 2}", 11), 0);
    char *data;
    size_t len;
    assert_int_equal(dl_read_file(path, &data, &len), 0);
    assert_int_equal(len, 11);
    assert_string_equal(data, "{\"term\": 2}"); /* the shorter content, nothing left over */
    free(data);
    size_t n;
    char **names = test_list_names(root, "", &n);
    size_t files = 0;
    for (size_t i = 0; i < n; i++)
        files += names[i][0] != '.';
    assert_int_equal(files, 1);
    test_free_names(names, n);

    assert_int_equal(dl_atomic_write_file(path, "", 0), 0);
    assert_int_equal(dl_read_file(path, &data, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);
    free(path);
}

static void test_atomic_write_file_into_missing_directory_fails(void **state)
{
    const char *root = *state;
    char *path = test_path(root, "missing/file");
    assert_int_equal(dl_atomic_write_file(path, "x", 1), -ENOENT);
    free(path);
}

static void test_read_file_of_missing_file_is_enoent(void **state)
{
    char *data = (char *)1;
    size_t len = 7;
    assert_int_equal(dl_read_file("/nonexistent/ddialab/file", &data, &len), -ENOENT);
    assert_null(data);
    assert_int_equal(len, 0);
}

static void test_read_file_reads_files_whose_size_is_unknown(void **state)
{
    /* /proc files report size 0; the whole content must still come back. */
    char *data;
    size_t len;
    assert_int_equal(dl_read_file("/proc/self/status", &data, &len), 0);
    assert_true(len > 100);
    assert_int_equal(strlen(data), len);
    assert_non_null(strstr(data, "Pid:"));
    free(data);
}

static void test_read_file_reads_large_binary_files_whole(void **state)
{
    const char *root = *state;
    char *path = test_path(root, "blob");
    size_t big = 1 << 20;
    unsigned char *buf = malloc(big);
    for (size_t i = 0; i < big; i++)
        buf[i] = (unsigned char)(i * 7);
    assert_int_equal(dl_atomic_write_file(path, buf, big), 0);
    char *data;
    size_t len;
    assert_int_equal(dl_read_file(path, &data, &len), 0);
    assert_int_equal(len, big);
    assert_memory_equal(data, buf, big);
    assert_int_equal(data[big], '\0');
    free(data);
    free(buf);
    free(path);
}

static void test_pread_all_stops_at_end_of_file(void **state)
{
    const char *root = *state;
    char *path = test_path(root, "f");
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(dl_write_all(fd, "hello world", 11), 0);
    char buf[32];
    assert_int_equal(dl_pread_all(fd, buf, 5, 6), 5);
    assert_memory_equal(buf, "world", 5);
    assert_int_equal(dl_pread_all(fd, buf, 32, 6), 5);
    assert_int_equal(dl_pread_all(fd, buf, 32, 100), 0);
    close(fd);
    assert_int_equal(dl_pread_all(fd, buf, 1, 0), -EBADF);
    free(path);
}

static void test_remove_tree_removes_everything_below_but_follows_no_link(void **state)
{
    char tree[4096], keep[4096], path[4096];
    snprintf(tree, sizeof(tree), "%s/tree", (const char *)*state);
    snprintf(keep, sizeof(keep), "%s/keep", (const char *)*state);
    snprintf(path, sizeof(path), "%s/a/b", tree);
    assert_int_equal(dl_mkdir_p(path), 0);
    assert_int_equal(dl_mkdir_p(keep), 0);
    snprintf(path, sizeof(path), "%s/a/b/file", tree);
    assert_int_equal(dl_atomic_write_file(path, "x", 1), 0);
    snprintf(path, sizeof(path), "%s/a/link", tree);
    assert_int_equal(symlink(keep, path), 0);

    assert_int_equal(dl_remove_tree(tree), 0);
    struct stat st;
    assert_int_not_equal(lstat(tree, &st), 0);
    assert_int_equal(stat(keep, &st), 0);      /* the link went, not what it pointed to */
    assert_int_equal(dl_remove_tree(tree), 0); /* a missing path is fine */
}

static void test_fsync_dir_of_missing_directory_is_enoent(void **state)
{
    assert_int_equal(dl_fsync_dir("/nonexistent/ddialab"), -ENOENT);
    assert_int_equal(dl_fsync_dir("/tmp"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TMPDIR_TEST(test_mkdir_p_creates_nested_directories_and_accepts_existing_ones),
        TMPDIR_TEST(test_mkdir_p_fails_when_a_file_is_in_the_way),
        TMPDIR_TEST(test_atomic_write_file_replaces_content_and_leaves_no_temporary_files),
        TMPDIR_TEST(test_atomic_write_file_into_missing_directory_fails),
        cmocka_unit_test(test_read_file_of_missing_file_is_enoent),
        cmocka_unit_test(test_read_file_reads_files_whose_size_is_unknown),
        TMPDIR_TEST(test_read_file_reads_large_binary_files_whole),
        TMPDIR_TEST(test_pread_all_stops_at_end_of_file),
        TMPDIR_TEST(test_remove_tree_removes_everything_below_but_follows_no_link),
        cmocka_unit_test(test_fsync_dir_of_missing_directory_is_enoent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
