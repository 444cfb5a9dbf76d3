/* The HTTP client on a libuv loop, against a fake server on the same loop. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ddialab/error.h"
#include "ddialab/http_client.h"

#include "../fake_http_server.h"

/* The loop the current test runs, or NULL. */
static uv_loop_t *test_loop;

/*
 * Makes the loop's current iteration return at once. Callbacks that change what run_until()
 * waits for call it, so the loop does not sit in its poll phase until the next timer.
 */
static void wake(uv_loop_t *loop)
{
    if (loop != NULL && loop == test_loop)
        uv_stop(loop);
}

/* ---- the fake server's routes ---- */

static void route(void *ctx, const fake_http_request_t *req, fake_http_response_t *resp)
{
    fake_http_server_t *s = ctx;
    wake(s->loop);
    if (strcmp(req->target, "/hello") == 0) {
        fake_http_respond(resp, 200, "ETag: \"7\"\r\n", "hello, world");
    } else if (strncmp(req->target, "/echo", 5) == 0) {
        /* "<method> <target> <body>", so a test sees what arrived. */
        int n = snprintf(resp->body, sizeof(resp->body), "%s %s ", req->method, req->target);
        memcpy(resp->body + n, req->body, req->body_len);
        resp->body_len = (size_t)n + req->body_len;
    } else if (strcmp(req->target, "/redirect") == 0) {
        fake_http_respond(resp, 307, "", "{\"error\": \"not_leader\"}");
        snprintf(resp->headers, sizeof(resp->headers), "Location: %s/echo\r\n", s->url);
    } else if (strcmp(req->target, "/hold") == 0) {
        resp->hold = 1;
    } else {
        fake_http_respond(resp, 404, "", "{\"error\": \"not_found\"}");
    }
}

/* ---- fixture: a loop, a server on it, a client on it ---- */

typedef struct fixture_s {
    uv_loop_t loop;
    fake_http_server_t server;
    dl_http_client_t *client;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(fake_http_server_start(&f->server, &f->loop, route, &f->server), 0);
    assert_int_equal(dl_http_client_new(&f->loop, &f->client), 0);
    test_loop = &f->loop;
    *state = f;
    return 0;
}

/* Closes everything and checks that no handle was left open. */
static int teardown(void **state)
{
    fixture_t *f = *state;
    dl_http_client_close(f->client);
    fake_http_server_close(&f->server);
    while (uv_run(&f->loop, UV_RUN_DEFAULT) != 0) /* again if a wake() stopped it */
        ;
    assert_int_equal(uv_loop_close(&f->loop), 0);
    test_loop = NULL;
    free(f);
    return 0;
}

/* What a callback saw; calls counts invocations so "exactly once" can be asserted. */
typedef struct outcome_s {
    int calls;
    int rv;
    long status;
    char body[16384];
    size_t body_len;
    char location[256];
    char etag[64];
    char effective_url[256];
    char error[256];
    uint64_t finished_ns;
} outcome_t;

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src != NULL ? src : "");
}

static void record(void *ctx, const dl_http_response_t *resp)
{
    outcome_t *o = ctx;
    o->calls++;
    o->rv = resp->rv;
    o->status = resp->status;
    assert_non_null(resp->body);
    assert_true(resp->body_len < sizeof(o->body));
    memcpy(o->body, resp->body, resp->body_len);
    o->body[resp->body_len] = '\0';
    o->body_len = resp->body_len;
    copy_str(o->location, sizeof(o->location), resp->location);
    copy_str(o->etag, sizeof(o->etag), resp->etag);
    copy_str(o->effective_url, sizeof(o->effective_url), resp->effective_url);
    copy_str(o->error, sizeof(o->error), resp->error);
    if (resp->rv != 0)
        assert_non_null(resp->error);
    o->finished_ns = uv_hrtime();
    wake(test_loop);
}

static void on_deadline(uv_timer_t *timer)
{
    *(int *)timer->data = 1;
    uv_stop(timer->loop);
}

/* Runs the loop until *counter reaches target or 5 seconds pass; returns whether it did. */
static int run_until(uv_loop_t *loop, const int *counter, int target)
{
    uv_timer_t deadline;
    int expired = 0;
    uv_timer_init(loop, &deadline);
    deadline.data = &expired;
    uv_timer_start(&deadline, on_deadline, 5000, 0);
    while (*counter < target && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *counter >= target;
}

/* A server-side counter the loop can wait on. */
static int server_requests(fixture_t *f)
{
    int requests;
    fake_http_server_stats(&f->server, NULL, &requests);
    return requests;
}

static void send_ok(fixture_t *f, const dl_http_request_t *req, outcome_t *o)
{
    assert_int_equal(dl_http_client_send(f->client, req, record, o), 0);
    assert_true(run_until(&f->loop, &o->calls, 1));
    assert_int_equal(o->calls, 1);
}

/* ---- tests ---- */

static void test_get_returns_status_body_and_etag(void **state)
{
    fixture_t *f = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/hello", f->server.url);
    dl_http_request_t req = {.method = "GET", .url = url};
    outcome_t o = {0};

    send_ok(f, &req, &o);

    assert_int_equal(o.rv, 0);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.body, "hello, world");
    assert_int_equal(o.body_len, 12);
    assert_string_equal(o.etag, "\"7\"");
    assert_string_equal(o.location, "");
    assert_string_equal(o.effective_url, url);
}

static void test_error_status_is_a_response_not_a_failure(void **state)
{
    fixture_t *f = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/missing", f->server.url);
    dl_http_request_t req = {.method = "GET", .url = url};
    outcome_t o = {0};

    send_ok(f, &req, &o);

    assert_int_equal(o.rv, 0);
    assert_int_equal(o.status, 404);
    assert_string_equal(o.body, "{\"error\": \"not_found\"}");
}

static void test_put_body_and_custom_headers_arrive_intact(void **state)
{
    fixture_t *f = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/echo", f->server.url);
    /* Binary, with NUL bytes, and larger than libcurl's 1 KiB "Expect: 100-continue" limit. */
    unsigned char body[3000];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (unsigned char)(i * 7);
    const char *headers[] = {"If-Match: 3", "X-Trace: abc def", NULL};
    dl_http_request_t req = {
        .method = "PUT", .url = url, .headers = headers, .body = body, .body_len = sizeof(body)};
    outcome_t o = {0};

    uint64_t start = uv_hrtime();
    send_ok(f, &req, &o);

    assert_int_equal(o.rv, 0);
    assert_int_equal(o.status, 200);
    fake_http_request_t got;
    fake_http_server_last(&f->server, &got);
    assert_string_equal(got.method, "PUT");
    assert_string_equal(got.target, "/echo");
    assert_int_equal(got.body_len, sizeof(body));
    assert_memory_equal(got.body, body, sizeof(body));
    char value[128];
    assert_true(fake_http_header(&got, "If-Match", value, sizeof(value)));
    assert_string_equal(value, "3");
    assert_true(fake_http_header(&got, "X-Trace", value, sizeof(value)));
    assert_string_equal(value, "abc def");
    assert_false(fake_http_header(&got, "Expect", value, sizeof(value)));
    assert_false(fake_http_header(&got, "Content-Type", value, sizeof(value)));
    /* No 100-continue wait: well under libcurl's one-second pause. */
    assert_true(o.finished_ns - start < 900 * 1000000ull);
}

static void test_delete_and_empty_put_use_their_methods(void **state)
{
    fixture_t *f = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/echo/k", f->server.url);
    dl_http_request_t del = {.method = "DELETE", .url = url};
    dl_http_request_t put = {.method = "PUT", .url = url};
    outcome_t o1 = {0}, o2 = {0};

    send_ok(f, &del, &o1);
    send_ok(f, &put, &o2);

    assert_string_equal(o1.body, "DELETE /echo/k ");
    assert_string_equal(o2.body, "PUT /echo/k ");
    fake_http_request_t got;
    fake_http_server_last(&f->server, &got);
    char value[32];
    assert_true(fake_http_header(&got, "Content-Length", value, sizeof(value)));
    assert_string_equal(value, "0");
}

static void test_307_followed_keeps_method_and_body(void **state)
{
    fixture_t *f = *state;
    char url[128], echo[128];
    snprintf(url, sizeof(url), "%s/redirect", f->server.url);
    snprintf(echo, sizeof(echo), "%s/echo", f->server.url);
    dl_http_request_t req = {
        .method = "PUT", .url = url, .body = "v1", .body_len = 2, .follow_redirects = 1};
    outcome_t o = {0};

    send_ok(f, &req, &o);

    assert_int_equal(o.rv, 0);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.body, "PUT /echo v1");
    assert_string_equal(o.effective_url, echo);
    assert_string_equal(o.location, ""); /* the final response had none */
    assert_int_equal(server_requests(f), 2);
}

static void test_307_not_followed_exposes_location(void **state)
{
    fixture_t *f = *state;
    char url[128], echo[128];
    snprintf(url, sizeof(url), "%s/redirect", f->server.url);
    snprintf(echo, sizeof(echo), "%s/echo", f->server.url);
    dl_http_request_t req = {.method = "PUT", .url = url, .body = "v1", .body_len = 2};
    outcome_t o = {0};

    send_ok(f, &req, &o);

    assert_int_equal(o.rv, 0);
    assert_int_equal(o.status, 307);
    assert_string_equal(o.location, echo);
    assert_string_equal(o.body, "{\"error\": \"not_leader\"}");
    assert_int_equal(server_requests(f), 1);
}

static void test_timeout_when_server_never_answers(void **state)
{
    fixture_t *f = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/hold", f->server.url);
    dl_http_request_t req = {.method = "GET", .url = url, .timeout_ms = 200};
    outcome_t o = {0};

    uint64_t start = uv_hrtime();
    send_ok(f, &req, &o);

    assert_int_equal(o.rv, -ETIMEDOUT);
    assert_int_equal(o.status, 0);
    assert_string_equal(o.body, "");
    assert_true(strlen(o.error) > 0);
    uint64_t elapsed_ms = (o.finished_ns - start) / 1000000;
    assert_true(elapsed_ms >= 190);
    assert_true(elapsed_ms < 3000);
}

/* A port that nothing listens on: bind one, read it back, close it. */
static int closed_port(uv_loop_t *loop)
{
    uv_tcp_t tcp;
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &tcp);
    assert_int_equal(uv_tcp_bind(&tcp, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&tcp, (struct sockaddr *)&bound, &len), 0);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void test_connection_refused_on_closed_port(void **state)
{
    fixture_t *f = *state;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/kv/a", closed_port(&f->loop));
    dl_http_request_t req = {.method = "GET", .url = url};
    outcome_t o = {0};

    send_ok(f, &req, &o);

    assert_int_equal(o.rv, -ECONNREFUSED);
    assert_int_equal(o.status, 0);
    assert_true(strlen(o.error) > 0);
}

static void test_malformed_url_is_invalid(void **state)
{
    fixture_t *f = *state;
    dl_http_request_t req = {.method = "GET", .url = "ftp://127.0.0.1/x"};
    outcome_t o = {0};

    send_ok(f, &req, &o);

    assert_int_equal(o.rv, -EINVAL);
    dl_http_request_t no_url = {.method = "GET"};
    assert_int_equal(dl_http_client_send(f->client, &no_url, record, &o), -EINVAL);
}

#define CONCURRENT 200

static outcome_t concurrent_outcomes[CONCURRENT];
static int concurrent_done;

static void record_concurrent(void *ctx, const dl_http_response_t *resp)
{
    record(ctx, resp);
    concurrent_done++;
}

static void test_many_concurrent_requests_all_complete(void **state)
{
    fixture_t *f = *state;
    outcome_t *outcomes = concurrent_outcomes;
    memset(concurrent_outcomes, 0, sizeof(concurrent_outcomes));
    concurrent_done = 0;

    for (int i = 0; i < CONCURRENT; i++) {
        char url[128];
        snprintf(url, sizeof(url), "%s/echo?i=%d", f->server.url, i);
        dl_http_request_t req = {.method = "GET", .url = url};
        assert_int_equal(dl_http_client_send(f->client, &req, record_concurrent, &outcomes[i]), 0);
    }

    assert_true(run_until(&f->loop, &concurrent_done, CONCURRENT));
    for (int i = 0; i < CONCURRENT; i++) {
        char expected[64];
        snprintf(expected, sizeof(expected), "GET /echo?i=%d ", i);
        assert_int_equal(outcomes[i].calls, 1);
        assert_int_equal(outcomes[i].rv, 0);
        assert_string_equal(outcomes[i].body, expected);
    }
}

/* Sends the next request from inside the previous one's callback. */
typedef struct chain_s {
    fixture_t *f;
    int done;
    int failures;
} chain_t;

static void on_chain_step(void *ctx, const dl_http_response_t *resp)
{
    chain_t *chain = ctx;
    if (resp->rv != 0 || resp->status != 200)
        chain->failures++;
    wake(test_loop);
    if (++chain->done == 5)
        return;
    char url[128];
    snprintf(url, sizeof(url), "%s/hello", chain->f->server.url);
    dl_http_request_t req = {.method = "GET", .url = url};
    if (dl_http_client_send(chain->f->client, &req, on_chain_step, chain) != 0)
        chain->failures++;
}

static void test_sequential_requests_reuse_one_connection(void **state)
{
    fixture_t *f = *state;
    chain_t chain = {.f = f};
    char url[128];
    snprintf(url, sizeof(url), "%s/hello", f->server.url);
    dl_http_request_t req = {.method = "GET", .url = url};

    assert_int_equal(dl_http_client_send(f->client, &req, on_chain_step, &chain), 0);
    assert_true(run_until(&f->loop, &chain.done, 5));

    assert_int_equal(chain.failures, 0);
    int connections, requests;
    fake_http_server_stats(&f->server, &connections, &requests);
    assert_int_equal(requests, 5);
    assert_int_equal(connections, 1);
}

static void test_close_with_pending_requests_reports_shutdown(void **state)
{
    fixture_t *f = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/hold", f->server.url);
    dl_http_request_t req = {.method = "POST", .url = url, .body = "x", .body_len = 1};
    outcome_t o[3] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(dl_http_client_send(f->client, &req, record, &o[i]), 0);
    /* Wait until the server holds all three, so they are truly in flight. The server runs on
     * this thread, so its counter can be watched directly. */
    assert_true(run_until(&f->loop, &f->server.requests, 3));

    dl_http_client_close(f->client);

    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].rv, DL_ESHUTDOWN);
        assert_true(strlen(o[i].error) > 0);
    }
    f->client = NULL; /* teardown's close becomes a no-op; it also checks every handle closed */
}

/* Closes the client from inside the first response's callback. */
static void close_from_callback(void *ctx, const dl_http_response_t *resp)
{
    fixture_t *f = ctx;
    assert_int_equal(resp->rv, 0);
    dl_http_client_close(f->client);
    f->client = NULL;
}

static void test_close_inside_callback_cancels_the_rest(void **state)
{
    fixture_t *f = *state;
    char hold[128], hello[128];
    snprintf(hold, sizeof(hold), "%s/hold", f->server.url);
    snprintf(hello, sizeof(hello), "%s/hello", f->server.url);
    dl_http_request_t held = {.method = "GET", .url = hold};
    dl_http_request_t answered = {.method = "GET", .url = hello};
    outcome_t o = {0};
    assert_int_equal(dl_http_client_send(f->client, &held, record, &o), 0);
    assert_int_equal(dl_http_client_send(f->client, &answered, close_from_callback, f), 0);

    assert_true(run_until(&f->loop, &o.calls, 1));

    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rv, DL_ESHUTDOWN);
    assert_null(f->client);
}

/* dl_http_fetch blocks, so its server runs on a thread. */
static void test_fetch_returns_owned_result(void **state)
{
    (void)state;
    static fake_http_server_t server;
    assert_int_equal(fake_http_server_start_thread(&server, route, &server), 0);
    char url[128];
    snprintf(url, sizeof(url), "%s/hello", server.url);
    dl_http_request_t req = {.method = "GET", .url = url};
    dl_http_result_t res;

    assert_int_equal(dl_http_fetch(&req, &res), 0);

    assert_int_equal(res.rv, 0);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "hello, world");
    assert_int_equal(res.body_len, 12);
    assert_string_equal(res.etag, "\"7\"");
    assert_null(res.location);
    assert_null(res.error);
    assert_string_equal(res.effective_url, url);
    dl_http_result_free(&res);

    snprintf(url, sizeof(url), "%s/redirect", server.url);
    req.follow_redirects = 1;
    req.method = "POST";
    req.body = "abc";
    req.body_len = 3;
    assert_int_equal(dl_http_fetch(&req, &res), 0);
    assert_string_equal(res.body, "POST /echo abc");
    snprintf(url, sizeof(url), "%s/echo", server.url);
    assert_string_equal(res.effective_url, url);
    dl_http_result_free(&res);
    dl_http_result_free(&res); /* twice is harmless */

    assert_int_equal(fake_http_server_stop_thread(&server), 0);
}

static void test_fetch_reports_refused_connection(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", closed_port(&loop));
    assert_int_equal(uv_loop_close(&loop), 0);
    dl_http_request_t req = {.method = "GET", .url = url};
    dl_http_result_t res;

    assert_int_equal(dl_http_fetch(&req, &res), -ECONNREFUSED);

    assert_int_equal(res.status, 0);
    assert_string_equal(res.body, "");
    assert_non_null(res.error);
    dl_http_result_free(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_returns_status_body_and_etag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_status_is_a_response_not_a_failure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_put_body_and_custom_headers_arrive_intact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_empty_put_use_their_methods, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_307_followed_keeps_method_and_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_307_not_followed_exposes_location, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_when_server_never_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused_on_closed_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_url_is_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent_requests_all_complete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sequential_requests_reuse_one_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending_requests_reports_shutdown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_callback_cancels_the_rest, setup,
                                        teardown),
        cmocka_unit_test(test_fetch_returns_owned_result),
        cmocka_unit_test(test_fetch_reports_refused_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
