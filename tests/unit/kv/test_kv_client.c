/*
 * ddialab kv get|put|del|status against fake nodes that answer as the kv HTTP API promises:
 * a leader, a follower that redirects to it, a node without a leader, a leader that cannot
 * gather its replicas, and a node that never answers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "kv/client.h"

#include "../fake_http_server.h"

/* ---- fake nodes ---- */

typedef struct cluster_s {
    fake_http_server_t leader, follower, leaderless, short_of_replicas, silent;
    fake_http_server_t orphan; /* a follower whose leader is gone: redirects to closed_url */
    char closed_url[64];       /* an endpoint nothing listens on */
} cluster_t;

static void leader_route(void *ctx, const fake_http_request_t *req, fake_http_response_t *resp)
{
    char value[64];
    int is_put = strcmp(req->method, "PUT") == 0;
    if (strcmp(req->target, "/status") == 0) {
        fake_http_respond(
            resp, 200, "",
            "{\"node\": 1, \"role\": \"leader\", \"term\": 3, \"leader\": 1, "
            "\"last_index\": 42, \"commit_index\": 42, \"applied_index\": 41, "
            "\"replication\": \"quorum\", \"followers\": ["
            "{\"node\": 2, \"match_index\": 40, \"lag\": 2, \"connected\": true},"
            "{\"node\": 3, \"match_index\": 30, \"lag\": 12, \"connected\": false}]}");
    } else if (is_put && fake_http_header(req, "If-Match", value, sizeof(value)) &&
               strcmp(value, "4") != 0) {
        fake_http_respond(resp, 412, "",
                          "{\"error\": \"precondition_failed\", \"message\": \"the current "
                          "version is 4, not %s\"}",
                          value);
    } else if (is_put && fake_http_header(req, "If-None-Match", value, sizeof(value)) &&
               strcmp(req->target, "/kv/exists") == 0) {
        fake_http_respond(resp, 412, "",
                          "{\"error\": \"precondition_failed\", \"message\": \"the key exists\"}");
    } else if (is_put) {
        fake_http_respond(resp, 200, "", "{\"key\": \"k\", \"version\": 5, \"index\": 12}");
    } else if (strcmp(req->target, "/kv/missing") == 0) {
        fake_http_respond(resp, 404, "",
                          "{\"error\": \"not_found\", \"message\": \"no such key: missing\"}");
    } else if (strcmp(req->method, "DELETE") == 0) {
        fake_http_respond(resp, 200, "", "{\"key\": \"greeting\", \"index\": 13}");
    } else if (strcmp(req->method, "GET") == 0) {
        fake_http_respond(resp, 200, "ETag: \"4\"\r\n", "hello\nworld");
    } else {
        fake_http_respond(resp, 405, "", "{\"error\": \"method_not_allowed\"}");
    }
}

static void follower_route(void *ctx, const fake_http_request_t *req, fake_http_response_t *resp)
{
    cluster_t *cl = ctx;
    if (strcmp(req->target, "/status") == 0) {
        fake_http_respond(resp, 200, "",
                          "{\"node\": 2, \"role\": \"follower\", \"term\": 3, \"leader\": 1, "
                          "\"last_index\": 40, \"commit_index\": 40, \"applied_index\": 40, "
                          "\"replication\": \"quorum\", \"followers\": []}");
    } else if (strcmp(req->method, "GET") == 0 && strstr(req->target, "consistency=stale")) {
        fake_http_respond(resp, 200, "ETag: \"3\"\r\n", "stale-value");
    } else {
        fake_http_respond(resp, 307, "",
                          "{\"error\": \"not_leader\", \"message\": \"node 2 is a follower\", "
                          "\"leader\": 1, \"leader_url\": \"%s\"}",
                          cl->leader.url);
        snprintf(resp->headers, sizeof(resp->headers), "Location: %s%s\r\n", cl->leader.url,
                 req->target);
    }
}

static void orphan_route(void *ctx, const fake_http_request_t *req, fake_http_response_t *resp)
{
    cluster_t *cl = ctx;
    fake_http_respond(resp, 307, "", "{\"error\": \"not_leader\", \"leader\": 1}");
    snprintf(resp->headers, sizeof(resp->headers), "Location: %s%s\r\n", cl->closed_url,
             req->target);
}

static void leaderless_route(void *ctx, const fake_http_request_t *req, fake_http_response_t *resp)
{
    fake_http_respond(resp, 503, "",
                      "{\"error\": \"no_leader\", \"message\": \"no leader elected yet\"}");
}

static void short_of_replicas_route(void *ctx, const fake_http_request_t *req,
                                    fake_http_response_t *resp)
{
    fake_http_respond(resp, 503, "",
                      "{\"error\": \"not_enough_replicas\", \"message\": \"only 1 of 3 nodes "
                      "acknowledged the write\"}");
}

static void silent_route(void *ctx, const fake_http_request_t *req, fake_http_response_t *resp)
{
    resp->hold = 1;
}

static int requests_to(fake_http_server_t *s)
{
    int requests;
    fake_http_server_stats(s, NULL, &requests);
    return requests;
}

static void closed_url(char *buf, size_t len)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &addr_len), 0);
    close(fd);
    snprintf(buf, len, "http://127.0.0.1:%d", ntohs(addr.sin_port));
}

static int setup(void **state)
{
    cluster_t *cl = calloc(1, sizeof(*cl));
    assert_non_null(cl);
    assert_int_equal(fake_http_server_start_thread(&cl->leader, leader_route, cl), 0);
    assert_int_equal(fake_http_server_start_thread(&cl->follower, follower_route, cl), 0);
    assert_int_equal(fake_http_server_start_thread(&cl->leaderless, leaderless_route, cl), 0);
    assert_int_equal(
        fake_http_server_start_thread(&cl->short_of_replicas, short_of_replicas_route, cl), 0);
    assert_int_equal(fake_http_server_start_thread(&cl->silent, silent_route, cl), 0);
    assert_int_equal(fake_http_server_start_thread(&cl->orphan, orphan_route, cl), 0);
    closed_url(cl->closed_url, sizeof(cl->closed_url));
    *state = cl;
    return 0;
}

static int teardown(void **state)
{
    cluster_t *cl = *state;
    assert_int_equal(fake_http_server_stop_thread(&cl->leader), 0);
    assert_int_equal(fake_http_server_stop_thread(&cl->follower), 0);
    assert_int_equal(fake_http_server_stop_thread(&cl->leaderless), 0);
    assert_int_equal(fake_http_server_stop_thread(&cl->short_of_replicas), 0);
    assert_int_equal(fake_http_server_stop_thread(&cl->silent), 0);
    assert_int_equal(fake_http_server_stop_thread(&cl->orphan), 0);
    free(cl);
    return 0;
}

/* ---- running the command line with captured output ---- */

typedef struct run_s {
    int code;
    char out[8192];
    size_t out_len;
    char err[8192];
    int err_lines;
} run_t;

static size_t slurp(FILE *fp, char *buf, size_t len)
{
    rewind(fp);
    size_t n = fread(buf, 1, len - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return n;
}

/* Runs "ddialab kv <args...>" (NULL-terminated) with stdin from stdin_data when not NULL. */
static void run(run_t *r, const char *stdin_data, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, stdin_data);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;

    FILE *out = tmpfile(), *err = tmpfile(), *in = tmpfile();
    assert_true(out != NULL && err != NULL && in != NULL);
    if (stdin_data != NULL)
        fwrite(stdin_data, 1, strlen(stdin_data), in);
    rewind(in);
    fflush(stdout);
    fflush(stderr);
    int saved[3] = {dup(0), dup(1), dup(2)};
    dup2(fileno(in), 0);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);

    r->code = dl_kv_client_main(argc, argv);

    fflush(stdout);
    fflush(stderr);
    for (int fd = 0; fd < 3; fd++) {
        dup2(saved[fd], fd);
        close(saved[fd]);
    }
    clearerr(stdin);
    fclose(in);
    r->out_len = slurp(out, r->out, sizeof(r->out));
    slurp(err, r->err, sizeof(r->err));
    r->err_lines = 0;
    for (const char *p = r->err; *p != '\0'; p++)
        r->err_lines += *p == '\n';
}

/* ---- put ---- */

static void test_put_sends_encoded_key_and_value_to_the_leader(void **state)
{
    cluster_t *cl = *state;
    run_t r;

    run(&r, NULL, "put", "a/b c~ü", "v 1", "--endpoints", cl->leader.url, NULL);

    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "OK version=5 index=12\n");
    assert_string_equal(r.err, "");
    fake_http_request_t got;
    fake_http_server_last(&cl->leader, &got);
    assert_string_equal(got.method, "PUT");
    assert_string_equal(got.target, "/kv/a%2Fb%20c~%C3%BC");
    assert_int_equal(got.body_len, 3);
    assert_memory_equal(got.body, "v 1", 3);
}

static void test_put_through_a_follower_reaches_the_leader(void **state)
{
    cluster_t *cl = *state;
    run_t r;

    run(&r, NULL, "put", "k", "value", "--endpoints", cl->follower.url, NULL);

    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "OK version=5 index=12\n");
    assert_int_equal(requests_to(&cl->follower), 1);
    fake_http_request_t got;
    fake_http_server_last(&cl->leader, &got);
    assert_string_equal(got.method, "PUT");
    assert_string_equal(got.target, "/kv/k");
    assert_int_equal(got.body_len, 5);
    assert_memory_equal(got.body, "value", 5);
}

static void test_put_if_match_sends_the_version_and_reports_a_mismatch(void **state)
{
    cluster_t *cl = *state;
    run_t r;
    char value[32];
    fake_http_request_t got;

    run(&r, NULL, "put", "k", "v", "--if-match", "3", "--endpoints", cl->leader.url, NULL);

    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    assert_int_equal(r.err_lines, 1);
    assert_non_null(strstr(r.err, "the current version is 4, not 3"));
    fake_http_server_last(&cl->leader, &got);
    assert_true(fake_http_header(&got, "If-Match", value, sizeof(value)));
    assert_string_equal(value, "3");

    /* The version as an ETag shows it, quotes included, is accepted too. */
    run(&r, NULL, "put", "k", "v", "--if-match", "\"4\"", "--endpoints", cl->leader.url, NULL);
    assert_int_equal(r.code, 0);
    fake_http_server_last(&cl->leader, &got);
    assert_true(fake_http_header(&got, "If-Match", value, sizeof(value)));
    assert_string_equal(value, "4");
}

static void test_put_if_none_match_refuses_an_existing_key(void **state)
{
    cluster_t *cl = *state;
    run_t r;
    char value[32];

    run(&r, NULL, "put", "--if-none-match", "exists", "v", "--endpoints", cl->leader.url, NULL);

    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "the key exists"));
    fake_http_request_t got;
    fake_http_server_last(&cl->leader, &got);
    assert_true(fake_http_header(&got, "If-None-Match", value, sizeof(value)));
    assert_string_equal(value, "*");
}

static void test_put_reads_the_value_from_a_file_or_stdin(void **state)
{
    cluster_t *cl = *state;
    run_t r;
    fake_http_request_t got;
    char path[] = "/tmp/ddialab-kv-client-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char binary[] = {'a', 0, 'b', '\n', (char)0xff};
    assert_int_equal(write(fd, binary, sizeof(binary)), sizeof(binary));
    close(fd);

    run(&r, NULL, "put", "k", "--file", path, "--endpoints", cl->leader.url, NULL);
    unlink(path);

    assert_int_equal(r.code, 0);
    fake_http_server_last(&cl->leader, &got);
    assert_int_equal(got.body_len, sizeof(binary));
    assert_memory_equal(got.body, binary, sizeof(binary));

    run(&r, "from stdin\n", "put", "k", "--file", "-", "--endpoints", cl->leader.url, NULL);

    assert_int_equal(r.code, 0);
    fake_http_server_last(&cl->leader, &got);
    assert_int_equal(got.body_len, 11);
    assert_memory_equal(got.body, "from stdin\n", 11);
}

static void test_a_key_after_double_dash_may_look_like_a_flag(void **state)
{
    cluster_t *cl = *state;
    run_t r;

    run(&r, NULL, "put", "--endpoints", cl->leader.url, "--", "--k", "--v", NULL);

    assert_int_equal(r.code, 0);
    fake_http_request_t got;
    fake_http_server_last(&cl->leader, &got);
    assert_string_equal(got.target, "/kv/--k");
    assert_memory_equal(got.body, "--v", 3);
}

/* ---- get and del ---- */

static void test_get_prints_the_raw_value_and_the_version(void **state)
{
    cluster_t *cl = *state;
    run_t r;

    run(&r, NULL, "get", "greeting", "--show-version", "--endpoints", cl->follower.url, NULL);

    assert_int_equal(r.code, 0);
    assert_int_equal(r.out_len, 11);
    assert_string_equal(r.out, "hello\nworld"); /* exactly the value: no newline added */
    assert_string_equal(r.err, "4\n");
    fake_http_request_t got;
    fake_http_server_last(&cl->leader, &got);
    assert_string_equal(got.target, "/kv/greeting"); /* linearizable: the follower redirected */
}

static void test_get_stale_is_answered_by_the_first_endpoint(void **state)
{
    cluster_t *cl = *state;
    run_t r;

    run(&r, NULL, "get", "greeting", "--consistency", "stale", "--endpoints", cl->follower.url,
        NULL);

    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "stale-value");
    assert_int_equal(requests_to(&cl->leader), 0);
    fake_http_request_t got;
    fake_http_server_last(&cl->follower, &got);
    assert_string_equal(got.target, "/kv/greeting?consistency=stale");
}

static void test_get_missing_key_exits_1_with_the_server_message(void **state)
{
    cluster_t *cl = *state;
    run_t r;

    run(&r, NULL, "get", "missing", "--endpoints", cl->leader.url, NULL);

    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    assert_int_equal(r.err_lines, 1);
    assert_non_null(strstr(r.err, "no such key: missing"));
}

static void test_del_removes_and_reports_missing_keys(void **state)
{
    cluster_t *cl = *state;
    run_t r;

    run(&r, NULL, "del", "greeting", "--endpoints", cl->follower.url, NULL);

    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "OK index=13\n");
    fake_http_request_t got;
    fake_http_server_last(&cl->leader, &got);
    assert_string_equal(got.method, "DELETE");
    assert_string_equal(got.target, "/kv/greeting");

    run(&r, NULL, "del", "missing", "--endpoints", cl->leader.url, NULL);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "no such key: missing"));
}

/* ---- finding the leader ---- */

static void test_unreachable_and_leaderless_endpoints_are_skipped(void **state)
{
    cluster_t *cl = *state;
    run_t r;
    char endpoints[256];
    snprintf(endpoints, sizeof(endpoints), "%s, %s,%s/", cl->closed_url, cl->leaderless.url,
             cl->follower.url);

    run(&r, NULL, "put", "k", "v", "--endpoints", endpoints, NULL);

    assert_int_equal(r.code, 0);
    assert_string_equal(r.err, "");
    assert_int_equal(requests_to(&cl->leaderless), 1);
    assert_int_equal(requests_to(&cl->leader), 1);
}

static void test_every_endpoint_tried_is_named_when_none_can_serve(void **state)
{
    cluster_t *cl = *state;
    run_t r;
    char endpoints[256];
    snprintf(endpoints, sizeof(endpoints), "%s,%s", cl->closed_url, cl->leaderless.url);

    run(&r, NULL, "get", "k", "--endpoints", endpoints, NULL);

    assert_int_equal(r.code, 3);
    assert_int_equal(r.err_lines, 1);
    assert_non_null(strstr(r.err, cl->closed_url));
    assert_non_null(strstr(r.err, cl->leaderless.url));
    assert_non_null(strstr(r.err, "no leader elected yet"));
}

static void test_a_redirect_to_a_dead_leader_moves_on_and_is_named(void **state)
{
    cluster_t *cl = *state;
    run_t r;
    char endpoints[256], redirected[128];
    snprintf(redirected, sizeof(redirected), "redirected to %s/kv/k", cl->closed_url);

    run(&r, NULL, "put", "k", "v", "--endpoints", cl->orphan.url, NULL);

    assert_int_equal(r.code, 3);
    assert_int_equal(r.err_lines, 1);
    assert_non_null(strstr(r.err, cl->orphan.url));
    assert_non_null(strstr(r.err, redirected));

    snprintf(endpoints, sizeof(endpoints), "%s,%s", cl->orphan.url, cl->leader.url);
    run(&r, NULL, "put", "k", "v", "--endpoints", endpoints, NULL);

    assert_int_equal(r.code, 0);
    assert_int_equal(requests_to(&cl->leader), 1);
}

static void test_a_failed_replication_is_reported_not_retried(void **state)
{
    cluster_t *cl = *state;
    run_t r;
    char endpoints[256];
    snprintf(endpoints, sizeof(endpoints), "%s,%s", cl->short_of_replicas.url, cl->leader.url);

    run(&r, NULL, "put", "k", "v", "--endpoints", endpoints, NULL);

    assert_int_equal(r.code, 3);
    assert_int_equal(r.err_lines, 1);
    assert_non_null(strstr(r.err, "only 1 of 3 nodes acknowledged the write"));
    assert_int_equal(requests_to(&cl->leader), 0);
}

static void test_a_timed_out_write_is_not_retried_but_a_read_is(void **state)
{
    cluster_t *cl = *state;
    run_t r;
    char endpoints[256];
    snprintf(endpoints, sizeof(endpoints), "%s,%s", cl->silent.url, cl->leader.url);

    run(&r, NULL, "put", "k", "v", "--timeout", "200ms", "--endpoints", endpoints, NULL);

    assert_int_equal(r.code, 3);
    assert_int_equal(r.err_lines, 1);
    assert_non_null(strstr(r.err, "may or may not have been applied"));
    assert_int_equal(requests_to(&cl->leader), 0);

    run(&r, NULL, "get", "greeting", "--timeout", "200ms", "--endpoints", endpoints, NULL);

    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "hello\nworld");
}

/* ---- status ---- */

static void test_status_prints_one_row_per_endpoint(void **state)
{
    cluster_t *cl = *state;
    run_t r;
    char endpoints[256];
    snprintf(endpoints, sizeof(endpoints), "%s,%s,%s", cl->leader.url, cl->follower.url,
             cl->closed_url);

    run(&r, NULL, "status", "--endpoints", endpoints, NULL);

    assert_int_equal(r.code, 0);
    char *lines[8];
    int n = 0;
    for (char *save = NULL, *l = strtok_r(r.out, "\n", &save); l != NULL && n < 8;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    assert_int_equal(n, 4);
    char e[64], node[16], role[32], term[16], leader[16], last[16], commit[16], applied[16];
    char lag[32];
    assert_int_equal(sscanf(lines[0], "%63s %15s %31s %15s %15s %15s %15s %15s %31s", e, node, role,
                            term, leader, last, commit, applied, lag),
                     9);
    assert_string_equal(e, "ENDPOINT");
    assert_string_equal(lag, "LAG");
    assert_int_equal(sscanf(lines[1], "%63s %15s %31s %15s %15s %15s %15s %15s %31s", e, node, role,
                            term, leader, last, commit, applied, lag),
                     9);
    assert_string_equal(e, cl->leader.url);
    assert_string_equal(role, "leader");
    assert_string_equal(term, "3");
    assert_string_equal(applied, "41");
    assert_string_equal(lag, "-");
    assert_int_equal(sscanf(lines[2], "%63s %15s %31s %15s %15s %15s %15s %15s %31s", e, node, role,
                            term, leader, last, commit, applied, lag),
                     9);
    assert_string_equal(node, "2");
    assert_string_equal(role, "follower");
    assert_string_equal(leader, "1");
    assert_string_equal(last, "40");
    assert_string_equal(lag, "2"); /* as the leader sees node 2 */
    assert_non_null(strstr(lines[3], cl->closed_url));
    assert_non_null(strstr(lines[3], "unreachable"));
    assert_int_equal(r.err_lines, 1);
    assert_non_null(strstr(r.err, cl->closed_url));
}

static void test_status_with_nothing_reachable_exits_3(void **state)
{
    cluster_t *cl = *state;
    run_t r;

    run(&r, NULL, "status", "--endpoints", cl->closed_url, NULL);

    assert_int_equal(r.code, 3);
    assert_int_equal(r.err_lines, 1);
    assert_non_null(strstr(r.err, cl->closed_url));
}

/* ---- command line ---- */

static void expect_usage_error(const char *why, run_t *r)
{
    if (r->code != 2 || r->err_lines != 1)
        fail_msg("%s: exit %d, stderr '%s'", why, r->code, r->err);
    assert_string_equal(r->out, "");
}

static void test_bad_command_lines_exit_2_with_one_line(void **state)
{
    run_t r;
    run(&r, NULL, "get", NULL);
    expect_usage_error("missing key", &r);
    run(&r, NULL, "get", "k", "extra", NULL);
    expect_usage_error("extra argument", &r);
    run(&r, NULL, "get", "", NULL);
    expect_usage_error("empty key", &r);
    run(&r, NULL, "get", "k", "--bogus", NULL);
    expect_usage_error("unknown flag", &r);
    run(&r, NULL, "get", "k", "--consistency", "eventual", NULL);
    expect_usage_error("bad consistency", &r);
    run(&r, NULL, "get", "k", "--timeout", "soon", NULL);
    expect_usage_error("bad timeout", &r);
    run(&r, NULL, "get", "k", "--timeout", "0", NULL);
    expect_usage_error("zero timeout", &r);
    run(&r, NULL, "get", "k", "--endpoints", " , ", NULL);
    expect_usage_error("no endpoints", &r);
    run(&r, NULL, "put", "k", NULL);
    expect_usage_error("missing value", &r);
    run(&r, NULL, "put", "k", "v", "--file", "-", NULL);
    expect_usage_error("value and file", &r);
    run(&r, NULL, "put", "k", "--file", "/nonexistent/ddialab", NULL);
    expect_usage_error("unreadable file", &r);
    run(&r, NULL, "put", "k", "v", "--if-match", "3", "--if-none-match", NULL);
    expect_usage_error("both preconditions", &r);
    run(&r, NULL, "put", "k", "v", "--if-match", "three", NULL);
    expect_usage_error("bad version", &r);
    run(&r, NULL, "status", "extra", NULL);
    expect_usage_error("status takes no argument", &r);
}

static void test_help_is_printed_and_exits_0(void **state)
{
    run_t r;
    run(&r, NULL, "put", "--help", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "--if-match"));
    assert_non_null(strstr(r.out, "--endpoints"));
    assert_non_null(strstr(r.out, "http://127.0.0.1:8001,http://127.0.0.1:8002"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_put_sends_encoded_key_and_value_to_the_leader),
        T(test_put_through_a_follower_reaches_the_leader),
        T(test_put_if_match_sends_the_version_and_reports_a_mismatch),
        T(test_put_if_none_match_refuses_an_existing_key),
        T(test_put_reads_the_value_from_a_file_or_stdin),
        T(test_a_key_after_double_dash_may_look_like_a_flag),
        T(test_get_prints_the_raw_value_and_the_version),
        T(test_get_stale_is_answered_by_the_first_endpoint),
        T(test_get_missing_key_exits_1_with_the_server_message),
        T(test_del_removes_and_reports_missing_keys),
        T(test_unreachable_and_leaderless_endpoints_are_skipped),
        T(test_every_endpoint_tried_is_named_when_none_can_serve),
        T(test_a_redirect_to_a_dead_leader_moves_on_and_is_named),
        T(test_a_failed_replication_is_reported_not_retried),
        T(test_a_timed_out_write_is_not_retried_but_a_read_is),
        T(test_status_prints_one_row_per_endpoint),
        T(test_status_with_nothing_reachable_exits_3),
        T(test_bad_command_lines_exit_2_with_one_line),
        T(test_help_is_printed_and_exits_0),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
