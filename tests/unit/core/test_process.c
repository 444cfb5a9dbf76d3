/* Child processes: output line by line, exit status, signals, and clean teardown. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "ddialab/process.h"

#define DEADLINE_MS 10000
#define MAX_LINES   16

typedef struct {
    uv_loop_t loop;
    dl_process_t *process;
    /* What the callbacks saw. */
    int nlines;
    dl_process_stream_t streams[MAX_LINES];
    char lines[MAX_LINES][64];
    size_t total_bytes;
    size_t longest;
    int exits;
    int lines_at_exit;
    int exit_status;
    int term_signal;
    /* What the callbacks do. */
    const char *kill_on_line; /* send SIGTERM when this line arrives */
    int close_on_first_line;
} fixture_t;

static void on_line(void *ctx, dl_process_t *p, dl_process_stream_t stream, const char *line,
                    size_t len)
{
    fixture_t *f = ctx;
    assert_ptr_equal(p, f->process);
    assert_int_equal(strlen(line), len); /* NUL-terminated at len */
    f->total_bytes += len;
    if (len > f->longest)
        f->longest = len;
    if (f->nlines < MAX_LINES) {
        f->streams[f->nlines] = stream;
        snprintf(f->lines[f->nlines], sizeof(f->lines[0]), "%s", line);
    }
    f->nlines++;
    if (f->kill_on_line != NULL && strcmp(line, f->kill_on_line) == 0)
        assert_int_equal(dl_process_kill(p, SIGTERM), 0);
    if (f->close_on_first_line) {
        dl_process_close(p);
        f->process = NULL;
    }
}

static void on_exit_cb(void *ctx, dl_process_t *p, int exit_status, int term_signal)
{
    fixture_t *f = ctx;
    assert_ptr_equal(p, f->process);
    assert_true(dl_process_exited(p));
    f->exits++;
    f->lines_at_exit = f->nlines;
    f->exit_status = exit_status;
    f->term_signal = term_signal;
    assert_int_equal(dl_process_kill(p, SIGTERM), -ESRCH);
    assert_true(dl_process_pid(p) > 0);
    dl_process_close(p); /* closing from inside the callback is allowed */
    f->process = NULL;
}

static int setup(void **state)
{
    static fixture_t f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(uv_loop_init(&f.loop), 0);
    *state = &f;
    return 0;
}

static void on_walk_close(uv_handle_t *handle, void *arg)
{
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

/* Ends each test by asserting the loop has no handles left, i.e. the process freed itself. */
static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->process != NULL) { /* a failed test left its child behind */
        dl_process_kill(f->process, SIGKILL);
        dl_process_close(f->process);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rv = uv_loop_close(&f->loop);
    if (rv != 0) {
        uv_walk(&f->loop, on_walk_close, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_loop_close(&f->loop);
    }
    assert_int_equal(rv, 0);
    return 0;
}

static void on_deadline(uv_timer_t *timer)
{
    *(int *)timer->data = 1;
}

/* Runs the loop until *done is non-zero; fails the test after DEADLINE_MS. */
static void run_until(fixture_t *f, const int *done)
{
    uv_timer_t timer;
    int expired = 0;
    uv_timer_init(&f->loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, on_deadline, DEADLINE_MS, 0);
    while (!*done && !expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(expired);
}

static void spawn_sh(fixture_t *f, const char *script, const char *const *env, const char *cwd)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    dl_process_options_t opts = {
        .argv = argv,
        .env = env,
        .cwd = cwd,
        .on_line = on_line,
        .on_exit = on_exit_cb,
        .ctx = f,
    };
    assert_int_equal(dl_process_spawn(&f->loop, &opts, &f->process), 0);
    assert_true(dl_process_pid(f->process) > 0);
}

static void test_process_joins_lines_split_across_reads(void **state)
{
    fixture_t *f = *state;
    spawn_sh(f, "printf 'hel'; sleep 0.2; printf 'lo\\r\\nwor'; sleep 0.2; printf 'ld\\n\\nlast'",
             NULL, NULL);
    run_until(f, &f->exits);
    assert_int_equal(f->nlines, 4);
    assert_string_equal(f->lines[0], "hello");
    assert_string_equal(f->lines[1], "world");
    assert_string_equal(f->lines[2], "");
    assert_string_equal(f->lines[3], "last"); /* no newline: delivered at end of file */
    assert_int_equal(f->streams[0], DL_PROCESS_STDOUT);
    assert_int_equal(f->exit_status, 0);
    assert_int_equal(f->term_signal, 0);
}

static void test_process_reports_exit_status_after_all_output(void **state)
{
    fixture_t *f = *state;
    spawn_sh(f, "echo out; echo err >&2; exit 3", NULL, NULL);
    run_until(f, &f->exits);
    assert_int_equal(f->exits, 1);
    assert_int_equal(f->nlines, 2);
    assert_int_equal(f->lines_at_exit, 2);
    for (int i = 0; i < 2; i++) {
        if (strcmp(f->lines[i], "out") == 0)
            assert_int_equal(f->streams[i], DL_PROCESS_STDOUT);
        else if (strcmp(f->lines[i], "err") == 0)
            assert_int_equal(f->streams[i], DL_PROCESS_STDERR);
        else
            fail_msg("unexpected line '%s'", f->lines[i]);
    }
    assert_int_equal(f->exit_status, 3);
    assert_int_equal(f->term_signal, 0);
}

static void test_process_kill_delivers_signal_and_exit_reports_it(void **state)
{
    fixture_t *f = *state;
    f->kill_on_line = "ready";
    spawn_sh(f, "echo ready; exec sleep 30", NULL, NULL);
    run_until(f, &f->exits);
    assert_int_equal(f->nlines, 1);
    assert_int_equal(f->exit_status, 0);
    assert_int_equal(f->term_signal, SIGTERM);
}

static void test_process_spawn_of_missing_program_fails_with_enoent(void **state)
{
    fixture_t *f = *state;
    const char *argv[] = {"/nonexistent/ddialab-no-such-program", NULL};
    dl_process_options_t opts = {.argv = argv, .on_line = on_line, .on_exit = on_exit_cb, .ctx = f};
    dl_process_t *p = NULL;
    assert_int_equal(dl_process_spawn(&f->loop, &opts, &p), -ENOENT);
    assert_null(p);
    /* teardown asserts that nothing is left open on the loop */
}

static void test_process_env_additions_override_and_cwd_applies(void **state)
{
    fixture_t *f = *state;
    const char *env[] = {"DL_TEST_GREETING=hi there", "HOME=/nowhere", NULL};
    spawn_sh(f, "echo \"$DL_TEST_GREETING|$HOME|$(pwd)\"; test -n \"$PATH\" && echo path-kept", env,
             "/");
    run_until(f, &f->exits);
    assert_int_equal(f->nlines, 2);
    assert_string_equal(f->lines[0], "hi there|/nowhere|/");
    assert_string_equal(f->lines[1], "path-kept");
}

static void test_process_long_line_is_delivered_in_pieces(void **state)
{
    fixture_t *f = *state;
    spawn_sh(f, "head -c 20000 /dev/zero | tr '\\0' a; echo; echo short", NULL, NULL);
    run_until(f, &f->exits);
    assert_int_equal(f->total_bytes, 20000 + 5);
    assert_int_equal(f->longest, DL_PROCESS_LINE_MAX);
    assert_int_equal(f->nlines, 4); /* 8192 + 8192 + 3616, then "short" */
    assert_string_equal(f->lines[3], "short");
}

static void test_process_close_inside_on_line_stops_callbacks(void **state)
{
    fixture_t *f = *state;
    f->close_on_first_line = 1;
    spawn_sh(f, "echo one; echo two; echo three", NULL, NULL);
    run_until(f, &f->nlines);
    assert_null(f->process);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* close callbacks run; nothing else may be reported */
    assert_int_equal(f->nlines, 1);
    assert_string_equal(f->lines[0], "one");
    assert_int_equal(f->exits, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_process_joins_lines_split_across_reads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_process_reports_exit_status_after_all_output, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_process_kill_delivers_signal_and_exit_reports_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_spawn_of_missing_program_fails_with_enoent,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_env_additions_override_and_cwd_applies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_process_long_line_is_delivered_in_pieces, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_process_close_inside_on_line_stops_callbacks, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
