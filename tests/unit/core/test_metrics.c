/* The metrics registry: what /metrics shows for each type, and that Prometheus accepts it. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ddialab/metrics.h"

#define PROMTOOL "/usr/bin/promtool"

static char *render(dl_metrics_t *m)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(dl_metrics_render(m, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* Asserts that text contains line as a whole line. */
static void assert_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p != NULL; p = strstr(p + 1, line))
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return;
    fail_msg("line not found: %s\n--- in ---\n%s", line, text);
}

static size_t count_occurrences(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_metrics_empty_registry_renders_empty_text(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    char *text = render(m);
    assert_string_equal(text, "");
    free(text);
    dl_metrics_free(m);
}

static void test_metrics_counter_renders_help_type_and_value(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    dl_metric_t *c = dl_metrics_counter(m, "ddialab_test_requests_total", "Requests served.", NULL);
    assert_non_null(c);
    dl_metric_inc(c);
    dl_metric_add(c, 2.5);
    assert_true(dl_metric_value(c) == 3.5);

    char *text = render(m);
    assert_string_equal(text, "# HELP ddialab_test_requests_total Requests served.\n"
                              "# TYPE ddialab_test_requests_total counter\n"
                              "ddialab_test_requests_total 3.5\n");
    free(text);
    dl_metrics_free(m);
}

static void test_metrics_gauge_set_add_and_labels(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    dl_metric_t *g =
        dl_metrics_gauge(m, "ddialab_test_queue_depth_entries", "Queued entries.", "peer=\"2\"");
    dl_metric_set(g, 10);
    dl_metric_add(g, -3);
    dl_metric_inc(g);
    assert_true(dl_metric_value(g) == 8);

    char *text = render(m);
    assert_has_line(text, "# TYPE ddialab_test_queue_depth_entries gauge");
    assert_has_line(text, "ddialab_test_queue_depth_entries{peer=\"2\"} 8");
    free(text);
    dl_metrics_free(m);
}

static double read_double(void *ctx)
{
    return *(double *)ctx;
}

static void test_metrics_gauge_fn_is_computed_at_scrape_time(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    double current = 1;
    dl_metric_t *g = dl_metrics_gauge_fn(m, "ddialab_test_term_number", "Current term.", NULL,
                                         read_double, &current);
    current = 42;
    assert_true(dl_metric_value(g) == 42);
    char *text = render(m);
    assert_has_line(text, "ddialab_test_term_number 42");
    free(text);

    current = 43;
    text = render(m);
    assert_has_line(text, "ddialab_test_term_number 43");
    free(text);
    dl_metrics_free(m);
}

static void test_metrics_histogram_renders_cumulative_buckets_sum_count(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    double bounds[] = {0.25, 0.5, 1};
    dl_metric_t *h = dl_metrics_histogram(m, "ddialab_test_put_duration_seconds", "PUT latency.",
                                          "mode=\"sync\"", bounds, 3);
    bounds[0] = 99; /* the registry keeps its own copy */
    dl_metric_observe(h, 0.125);
    dl_metric_observe(h, 0.25); /* a bound is inclusive (le) */
    dl_metric_observe(h, 0.75);
    dl_metric_observe(h, 3);

    char *text = render(m);
    assert_string_equal(text,
                        "# HELP ddialab_test_put_duration_seconds PUT latency.\n"
                        "# TYPE ddialab_test_put_duration_seconds histogram\n"
                        "ddialab_test_put_duration_seconds_bucket{mode=\"sync\",le=\"0.25\"} 2\n"
                        "ddialab_test_put_duration_seconds_bucket{mode=\"sync\",le=\"0.5\"} 2\n"
                        "ddialab_test_put_duration_seconds_bucket{mode=\"sync\",le=\"1\"} 3\n"
                        "ddialab_test_put_duration_seconds_bucket{mode=\"sync\",le=\"+Inf\"} 4\n"
                        "ddialab_test_put_duration_seconds_sum{mode=\"sync\"} 4.125\n"
                        "ddialab_test_put_duration_seconds_count{mode=\"sync\"} 4\n");
    free(text);
    dl_metrics_free(m);
}

static void test_metrics_histogram_without_labels_has_only_le(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    dl_metric_t *h = dl_metrics_histogram(
        m, "ddialab_test_fsync_duration_seconds", "fsync latency.", NULL,
        dl_metrics_latency_seconds_buckets, dl_metrics_latency_seconds_nbuckets);
    dl_metric_observe(h, 0.0002);
    char *text = render(m);
    assert_has_line(text, "ddialab_test_fsync_duration_seconds_bucket{le=\"0.0001\"} 0");
    assert_has_line(text, "ddialab_test_fsync_duration_seconds_bucket{le=\"0.00025\"} 1");
    assert_has_line(text, "ddialab_test_fsync_duration_seconds_bucket{le=\"10\"} 1");
    assert_has_line(text, "ddialab_test_fsync_duration_seconds_bucket{le=\"+Inf\"} 1");
    assert_has_line(text, "ddialab_test_fsync_duration_seconds_sum 0.0002");
    assert_has_line(text, "ddialab_test_fsync_duration_seconds_count 1");
    free(text);
    dl_metrics_free(m);
}

static void test_metrics_latency_buckets_ascend_from_100us_to_10s(void **state)
{
    const double *b = dl_metrics_latency_seconds_buckets;
    size_t n = dl_metrics_latency_seconds_nbuckets;
    assert_true(n >= 10);
    assert_true(b[0] == 0.0001);
    assert_true(b[n - 1] == 10);
    for (size_t i = 1; i < n; i++) {
        assert_true(b[i] / b[i - 1] >= 2);
        assert_true(b[i] / b[i - 1] <= 2.5 + 1e-9);
    }
}

static void test_metrics_label_values_and_help_are_escaped(void **state)
{
    char labels[128] = "";
    assert_int_equal(dl_metrics_label_append(labels, sizeof(labels), "path", "a\\b\"c\nd"), 0);
    assert_int_equal(dl_metrics_label_append(labels, sizeof(labels), "code", "200"), 0);
    assert_string_equal(labels, "path=\"a\\\\b\\\"c\\nd\",code=\"200\"");

    char small[12] = "";
    assert_int_equal(dl_metrics_label_append(small, sizeof(small), "code", "200"), 0);
    assert_int_equal(dl_metrics_label_append(small, sizeof(small), "x", "y"), -ENOSPC);
    assert_string_equal(small, "code=\"200\"");

    dl_metrics_t *m = dl_metrics_new();
    dl_metric_t *c =
        dl_metrics_counter(m, "ddialab_test_errors_total", "Errors, by path.\nA \\ b", labels);
    dl_metric_inc(c);
    char *text = render(m);
    assert_has_line(text, "# HELP ddialab_test_errors_total Errors, by path.\\nA \\\\ b");
    assert_has_line(text, "ddialab_test_errors_total{path=\"a\\\\b\\\"c\\nd\",code=\"200\"} 1");
    free(text);
    dl_metrics_free(m);
}

static void test_metrics_families_grouped_when_registered_interleaved(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    dl_metric_inc(dl_metrics_counter(m, "ddialab_test_sent_total", "Frames sent.", "peer=\"1\""));
    dl_metric_set(dl_metrics_gauge(m, "ddialab_test_lag_entries", "Replication lag.", NULL), 5);
    dl_metric_add(dl_metrics_counter(m, "ddialab_test_sent_total", "Frames sent.", "peer=\"2\""),
                  7);

    char *text = render(m);
    assert_string_equal(text, "# HELP ddialab_test_sent_total Frames sent.\n"
                              "# TYPE ddialab_test_sent_total counter\n"
                              "ddialab_test_sent_total{peer=\"1\"} 1\n"
                              "ddialab_test_sent_total{peer=\"2\"} 7\n"
                              "# HELP ddialab_test_lag_entries Replication lag.\n"
                              "# TYPE ddialab_test_lag_entries gauge\n"
                              "ddialab_test_lag_entries 5\n");
    assert_int_equal(count_occurrences(text, "# TYPE ddialab_test_sent_total"), 1);
    free(text);
    dl_metrics_free(m);
}

static void test_metrics_same_name_and_labels_return_same_series(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    dl_metric_t *a = dl_metrics_counter(m, "ddialab_test_puts_total", "PUTs.", "code=\"200\"");
    dl_metric_t *b = dl_metrics_counter(m, "ddialab_test_puts_total", "PUTs.", "code=\"200\"");
    dl_metric_t *other = dl_metrics_counter(m, "ddialab_test_puts_total", "PUTs.", "code=\"503\"");
    dl_metric_t *plain = dl_metrics_counter(m, "ddialab_test_puts_total", "PUTs.", NULL);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, other);
    assert_ptr_equal(plain, dl_metrics_counter(m, "ddialab_test_puts_total", "PUTs.", ""));
    dl_metric_inc(a);
    dl_metric_inc(b);
    assert_true(dl_metric_value(a) == 2);
    assert_true(dl_metric_value(other) == 0);
    dl_metrics_free(m);
}

static void test_metrics_null_series_updates_are_ignored(void **state)
{
    assert_null(dl_metrics_counter(NULL, "ddialab_test_x_total", "x", NULL));
    dl_metric_inc(NULL);
    dl_metric_add(NULL, 1);
    dl_metric_set(NULL, 1);
    dl_metric_observe(NULL, 1);
    assert_true(dl_metric_value(NULL) == 0);
}

static void test_metrics_special_values_use_prometheus_spelling(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    dl_metric_set(dl_metrics_gauge(m, "ddialab_test_a_ratio", "a", NULL), INFINITY);
    dl_metric_set(dl_metrics_gauge(m, "ddialab_test_b_ratio", "b", NULL), -INFINITY);
    dl_metric_set(dl_metrics_gauge(m, "ddialab_test_c_ratio", "c", NULL), NAN);
    dl_metric_set(dl_metrics_gauge(m, "ddialab_test_d_ratio", "d", NULL), 0.1);
    dl_metric_set(dl_metrics_gauge(m, "ddialab_test_e_bytes", "e", NULL), 1099511627776.0);
    char *text = render(m);
    assert_has_line(text, "ddialab_test_a_ratio +Inf");
    assert_has_line(text, "ddialab_test_b_ratio -Inf");
    assert_has_line(text, "ddialab_test_c_ratio NaN");
    assert_has_line(text, "ddialab_test_d_ratio 0.1");
    assert_has_line(text, "ddialab_test_e_bytes 1099511627776");
    free(text);
    dl_metrics_free(m);
}

/* The value of the unlabelled sample `name` in rendered text. */
static double sample_value(const char *text, const char *name)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "\n%s ", name);
    const char *p = strstr(text, prefix);
    if (p == NULL)
        fail_msg("no sample %s in:\n%s", name, text);
    return strtod(p + strlen(prefix), NULL);
}

static void test_metrics_process_metrics_read_proc_self(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    dl_metrics_add_process(m);
    dl_metrics_add_process(m); /* registers nothing new */

    char *text = render(m);
    assert_true(sample_value(text, "process_resident_memory_bytes") > 1024 * 1024);
    assert_true(sample_value(text, "process_open_fds") >= 3);
    assert_true(sample_value(text, "process_cpu_seconds_total") >= 0);
    double now = (double)time(NULL);
    double start = sample_value(text, "process_start_time_seconds");
    assert_true(start > now - 3600 && start <= now + 1);
    assert_int_equal(count_occurrences(text, "# TYPE process_open_fds gauge"), 1);
    assert_int_equal(count_occurrences(text, "# TYPE process_cpu_seconds_total counter"), 1);
    assert_int_equal(count_occurrences(text, "\nprocess_open_fds "), 1);
    free(text);
    dl_metrics_free(m);
}

/* Feeds text to `promtool check metrics` and returns its exit status; its findings are printed. */
static int promtool_check(const char *text)
{
    if (access(PROMTOOL, X_OK) != 0)
        fail_msg(PROMTOOL " is missing: install Debian's prometheus package "
                          "(scripts/deps.sh test, run by make test)");
    FILE *p = popen(PROMTOOL " check metrics 1>&2", "w");
    assert_non_null(p);
    fputs(text, p);
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_metrics_rendered_text_passes_promtool_check_metrics(void **state)
{
    dl_metrics_t *m = dl_metrics_new();
    double term = 3;
    char labels[128] = "";
    assert_int_equal(dl_metrics_label_append(labels, sizeof(labels), "route", "/kv/\"x\"\\y\n"), 0);
    dl_metric_inc(dl_metrics_counter(m, "ddialab_test_requests_total", "Requests \\ served.\nAll.",
                                     "code=\"200\",method=\"GET\""));
    dl_metric_inc(dl_metrics_counter(m, "ddialab_test_requests_total", "Requests.",
                                     "code=\"503\",method=\"PUT\""));
    dl_metric_set(dl_metrics_gauge(m, "ddialab_test_lag_bytes", "Lag.", "peer=\"2\""), 12);
    dl_metrics_gauge_fn(m, "ddialab_test_term_number", "Term.", NULL, read_double, &term);
    dl_metric_inc(dl_metrics_counter(m, "ddialab_test_routes_total", "Routes.", labels));
    dl_metric_t *h = dl_metrics_histogram(m, "ddialab_test_request_duration_seconds", "Latency.",
                                          "method=\"GET\"", dl_metrics_latency_seconds_buckets,
                                          dl_metrics_latency_seconds_nbuckets);
    dl_metric_observe(h, 0.003);
    dl_metric_observe(h, 12);
    dl_metrics_histogram(m, "ddialab_test_request_duration_seconds", "Latency.", "method=\"PUT\"",
                         dl_metrics_latency_seconds_buckets, dl_metrics_latency_seconds_nbuckets);
    dl_metrics_add_process(m);

    char *text = render(m);
    assert_int_equal(promtool_check(text), 0);
    free(text);
    dl_metrics_free(m);
}

static void test_metrics_promtool_rejects_broken_text(void **state)
{
    /* Guards the check above: promtool must really be judging what we feed it. */
    assert_int_not_equal(promtool_check("# TYPE x counter\nx{le=\"1\" 1\n"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_empty_registry_renders_empty_text),
        cmocka_unit_test(test_metrics_counter_renders_help_type_and_value),
        cmocka_unit_test(test_metrics_gauge_set_add_and_labels),
        cmocka_unit_test(test_metrics_gauge_fn_is_computed_at_scrape_time),
        cmocka_unit_test(test_metrics_histogram_renders_cumulative_buckets_sum_count),
        cmocka_unit_test(test_metrics_histogram_without_labels_has_only_le),
        cmocka_unit_test(test_metrics_latency_buckets_ascend_from_100us_to_10s),
        cmocka_unit_test(test_metrics_label_values_and_help_are_escaped),
        cmocka_unit_test(test_metrics_families_grouped_when_registered_interleaved),
        cmocka_unit_test(test_metrics_same_name_and_labels_return_same_series),
        cmocka_unit_test(test_metrics_null_series_updates_are_ignored),
        cmocka_unit_test(test_metrics_special_values_use_prometheus_spelling),
        cmocka_unit_test(test_metrics_process_metrics_read_proc_self),
        cmocka_unit_test(test_metrics_rendered_text_passes_promtool_check_metrics),
        cmocka_unit_test(test_metrics_promtool_rejects_broken_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
