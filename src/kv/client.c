/*
 * ddialab kv get|put|del|status: a command-line client that finds the leader.
 *
 * Reads and writes go to the first endpoint that answers. A follower answers with a 307 to the
 * leader, which the HTTP client follows with the same method and body; an endpoint that refuses
 * the connection, or a node that knows no leader (503 no_leader), sends us to the next endpoint.
 * A write whose fate is unknown (timed out or cut off after it was sent) is not retried: it is
 * reported, because sending it again could apply it twice. status asks every endpoint at once.
 *
 * Exit codes: 0 success, 1 not found or precondition failed, 2 usage error, 3 no endpoint could
 * serve the request or the server failed. Every error is one line on stderr.
 */
#include "kv/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "ddialab/error.h"
#include "ddialab/flags.h"
#include "ddialab/http_client.h"

#define DEFAULT_ENDPOINTS "http://127.0.0.1:8001,http://127.0.0.1:8002,http://127.0.0.1:8003"
#define MAX_ENDPOINTS     16
#define MAX_POSITIONAL    2

enum {
    EXIT_OK = 0,
    EXIT_REFUSED = 1, /* not found, precondition failed */
    EXIT_USAGE = 2,
    EXIT_UNAVAILABLE = 3, /* no endpoint could serve the request, or a server error */
};

/* Everything the command line can say; flags write straight into it. */
typedef struct options_s {
    const char *verb;
    /* flags */
    char *endpoints_flag;
    int64_t timeout_ms;
    char *if_match;
    int if_none_match;
    char *file;
    char *consistency;
    int show_version;
    /* derived */
    char *endpoints[MAX_ENDPOINTS]; /* "http://host:port", without a trailing slash */
    int endpoint_count;
    char *positional[MAX_POSITIONAL];
    int positional_count;
} options_t;

#define COMMON_FLAGS(o)                                                                            \
    {"endpoints", DL_FLAG_STRING, &(o)->endpoints_flag,                                            \
     "comma-separated node URLs, tried in order"},                                                 \
    {                                                                                              \
        "timeout", DL_FLAG_DURATION, &(o)->timeout_ms, "how long to wait for each HTTP request"    \
    }

/* ---- command line ---- */

static void usage_error(const options_t *o, const char *message)
{
    /* The shared flag parser already points at --help in some of its messages. */
    const char *hint = strstr(message, "--help") ? "" : " (see --help)";
    fprintf(stderr, "ddialab kv %s: %s%s\n", o->verb, message, hint);
}

/* Splits --endpoints into o->endpoints. Returns 0, or -EINVAL with a message in err. */
static int parse_endpoints(options_t *o, char *err, size_t errlen)
{
    const char *p = o->endpoints_flag;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *start = p;
        p += len;
        if (*p == ',')
            p++;
        while (len > 0 && (*start == ' ' || *start == '\t')) {
            start++;
            len--;
        }
        while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '/'))
            len--;
        if (len == 0)
            continue;
        if (o->endpoint_count == MAX_ENDPOINTS) {
            snprintf(err, errlen, "at most %d endpoints", MAX_ENDPOINTS);
            return -EINVAL;
        }
        /* "127.0.0.1:8001" is accepted as "http://127.0.0.1:8001". */
        int has_scheme = memmem(start, len, "://", 3) != NULL;
        size_t size = len + 8;
        char *url = malloc(size);
        if (url == NULL) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        snprintf(url, size, "%s%.*s", has_scheme ? "" : "http://", (int)len, start);
        o->endpoints[o->endpoint_count++] = url;
    }
    if (o->endpoint_count == 0) {
        snprintf(err, errlen, "--endpoints names no endpoint");
        return -EINVAL;
    }
    return 0;
}

/*
 * Parses argv (argv[0] is the verb) against flags, accepting flags before, between and after the
 * positional arguments; everything after "--" is positional. Returns 0, 1 after --help, or
 * EXIT_USAGE after printing the one-line reason.
 */
static int parse_command_line(options_t *o, const char *usage, const dl_flag_t *flags,
                              int min_positional, int max_positional, int argc, char **argv)
{
    char err[256];
    int i = 1;
    while (i < argc) {
        int next;
        int rv = dl_flags_parse(usage, flags, argc, argv, i, &next, err, sizeof(err));
        if (rv == 1)
            return 1;
        if (rv != 0) {
            usage_error(o, err);
            return EXIT_USAGE;
        }
        int rest_positional = next > i && strcmp(argv[next - 1], "--") == 0;
        for (; next < argc; next++) {
            if (o->positional_count == max_positional) {
                snprintf(err, sizeof(err), "unexpected argument '%s'", argv[next]);
                usage_error(o, err);
                return EXIT_USAGE;
            }
            o->positional[o->positional_count++] = argv[next];
            if (!rest_positional)
                break;
        }
        i = next + 1;
    }
    if (o->positional_count < min_positional) {
        usage_error(o, min_positional == 1 ? "missing KEY" : "missing arguments");
        return EXIT_USAGE;
    }
    if (o->positional_count > 0 && o->positional[0][0] == '\0') {
        usage_error(o, "the key is empty");
        return EXIT_USAGE;
    }
    if (o->timeout_ms <= 0) {
        usage_error(o, "--timeout must be positive");
        return EXIT_USAGE;
    }
    if (parse_endpoints(o, err, sizeof(err)) != 0) {
        usage_error(o, err);
        return EXIT_USAGE;
    }
    return 0;
}

static void options_free(options_t *o)
{
    for (int i = 0; i < o->endpoint_count; i++)
        free(o->endpoints[i]);
}

/* "/kv/" + key with every byte but the unreserved ones (RFC 3986) percent-encoded. */
static char *kv_path(const char *key, const char *query)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(key);
    char *path = malloc(4 + len * 3 + (query != NULL ? strlen(query) : 0) + 1);
    if (path == NULL)
        return NULL;
    char *w = path + 4;
    memcpy(path, "/kv/", 4);
    for (const unsigned char *k = (const unsigned char *)key; *k != '\0'; k++) {
        if ((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
            *k == '-' || *k == '.' || *k == '_' || *k == '~') {
            *w++ = (char)*k;
        } else {
            *w++ = '%';
            *w++ = hex[*k >> 4];
            *w++ = hex[*k & 15];
        }
    }
    *w = '\0';
    if (query != NULL)
        strcpy(w, query);
    return path;
}

/* Reads all of path ("-" is stdin) into a new buffer. Returns 0 or -errno. */
static int read_value(const char *path, char **out, size_t *out_len)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (fp == NULL)
        return -errno;
    size_t len = 0, cap = 4096;
    char *data = malloc(cap);
    int rv = 0;
    while (data != NULL) {
        len += fread(data + len, 1, cap - len, fp);
        if (len < cap)
            break;
        char *grown = realloc(data, cap * 2);
        if (grown == NULL) {
            free(data);
            data = NULL;
            break;
        }
        data = grown;
        cap *= 2;
    }
    if (data == NULL)
        rv = -ENOMEM;
    else if (ferror(fp))
        rv = -EIO;
    if (fp != stdin)
        fclose(fp);
    if (rv != 0) {
        free(data);
        return rv;
    }
    *out = data;
    *out_len = len;
    return 0;
}

/* ---- talking to the cluster ---- */

/* Reads the "error" and "message" strings of our JSON error body; "" for what is missing. */
static void error_fields(const dl_http_result_t *res, char *code, size_t code_len, char *message,
                         size_t message_len)
{
    json_t *root = json_loadb(res->body, res->body_len, 0, NULL);
    const char *c = json_string_value(json_object_get(root, "error"));
    const char *m = json_string_value(json_object_get(root, "message"));
    snprintf(code, code_len, "%s", c != NULL ? c : "");
    snprintf(message, message_len, "%s", m != NULL ? m : "");
    json_decref(root);
}

/* Appends "endpoint (reason)" to the list of what was tried. */
static void note_attempt(char *tried, size_t len, const char *endpoint, const char *reason)
{
    size_t used = strlen(tried);
    if (used + 1 >= len)
        return;
    snprintf(tried + used, len - used, "%s%s (%s)", used > 0 ? ", " : "", endpoint, reason);
}

/* Appends why endpoint failed, naming the leader it redirected to when that one failed. */
static void note_failure(char *tried, size_t len, const char *endpoint, const dl_http_result_t *res)
{
    const char *url = res->effective_url;
    if (url == NULL || strncmp(url, endpoint, strlen(endpoint)) == 0) {
        note_attempt(tried, len, endpoint, res->error);
        return;
    }
    char reason[1024];
    snprintf(reason, sizeof(reason), "redirected to %s: %s", url, res->error);
    note_attempt(tried, len, endpoint, reason);
}

/* One request on the key o->positional[0]. */
typedef struct key_request_s {
    const char *method;
    const char *query; /* "?..." or NULL */
    const char *const *headers;
    const char *body;
    size_t body_len;
    int may_retry; /* may it be sent again once its fate is unknown? reads: yes; writes: no */
} key_request_t;

/*
 * Sends kr to the leader: the endpoints in order, following redirects, skipping an endpoint
 * that cannot be reached or has no leader. Returns 0 with the answer in *res (any status), or
 * EXIT_UNAVAILABLE after printing why (res is then freed).
 */
static int send_to_leader(const options_t *o, const key_request_t *kr, dl_http_result_t *res)
{
    char tried[2048] = "";
    int answered = 0;
    char *path = kv_path(o->positional[0], kr->query);
    if (path == NULL) {
        fprintf(stderr, "ddialab kv %s: out of memory\n", o->verb);
        return EXIT_UNAVAILABLE;
    }
    for (int i = 0; i < o->endpoint_count; i++) {
        const char *endpoint = o->endpoints[i];
        size_t url_len = strlen(endpoint) + strlen(path) + 1;
        char *url = malloc(url_len);
        if (url == NULL) {
            fprintf(stderr, "ddialab kv %s: out of memory\n", o->verb);
            free(path);
            return EXIT_UNAVAILABLE;
        }
        snprintf(url, url_len, "%s%s", endpoint, path);
        dl_http_request_t req = {.method = kr->method,
                                 .url = url,
                                 .headers = kr->headers,
                                 .body = kr->body,
                                 .body_len = kr->body_len,
                                 .timeout_ms = o->timeout_ms,
                                 .follow_redirects = 1};
        int rv = dl_http_fetch(&req, res);
        free(url);

        if (rv == 0 && res->status == 503) {
            char code[64], message[256];
            error_fields(res, code, sizeof(code), message, sizeof(message));
            if (strcmp(code, "no_leader") != 0 && strcmp(code, "shutting_down") != 0) {
                answered = 1; /* the leader itself failed the request: report it */
                break;
            }
            char reason[sizeof(code) + sizeof(message) + 2];
            snprintf(reason, sizeof(reason), "%s%s%s", code, message[0] ? ": " : "", message);
            note_attempt(tried, sizeof(tried), endpoint, reason);
        } else if (rv == 0) {
            answered = 1;
            break;
        } else if (rv == -ECONNREFUSED || rv == -EINVAL || kr->may_retry) {
            note_failure(tried, sizeof(tried), endpoint, res);
        } else {
            fprintf(stderr,
                    "ddialab kv %s: %s: %s; the write may or may not have been applied, so it "
                    "was not retried\n",
                    o->verb, res->effective_url != NULL ? res->effective_url : endpoint,
                    res->error);
            dl_http_result_free(res);
            free(path);
            return EXIT_UNAVAILABLE;
        }
        dl_http_result_free(res);
    }
    free(path);
    if (answered)
        return 0;
    fprintf(stderr, "ddialab kv %s: no endpoint could serve the request; tried %s\n", o->verb,
            tried);
    return EXIT_UNAVAILABLE;
}

/*
 * Maps an answer that is not a success to the exit code, printing the server's message:
 * 404 and 412 are the user's answer (1), anything else is a server error (3).
 */
static int report_failure(const options_t *o, const dl_http_result_t *res)
{
    char code[64], message[512];
    error_fields(res, code, sizeof(code), message, sizeof(message));
    if (res->status == 412) {
        /* Say what the condition met, in the words of the version the user passed. */
        json_t *root = json_loadb(res->body, res->body_len, 0, NULL);
        json_t *current = json_object_get(root, "current_version");
        if (json_is_integer(current) && o->if_match != NULL)
            snprintf(message, sizeof(message),
                     "the current version is %" JSON_INTEGER_FORMAT ", not %s",
                     json_integer_value(current), o->if_match);
        else if (json_is_integer(current))
            snprintf(message, sizeof(message),
                     "the key exists (current version is %" JSON_INTEGER_FORMAT ")",
                     json_integer_value(current));
        else if (current != NULL)
            snprintf(message, sizeof(message), "the key does not exist");
        json_decref(root);
    }
    if (message[0] == '\0' && code[0] == '\0') {
        /* Not our JSON error body: show the start of whatever came back, on one line. */
        snprintf(message, sizeof(message), "%.200s", res->body);
        message[strcspn(message, "\r\n")] = '\0';
    }
    fprintf(stderr, "ddialab kv %s: %s (HTTP %ld%s%s)\n", o->verb,
            message[0] ? message : "the server gave no reason", res->status, code[0] ? " " : "",
            code);
    return res->status == 404 || res->status == 412 ? EXIT_REFUSED : EXIT_UNAVAILABLE;
}

/*
 * Reports the answer to a write and frees it: on 200, "OK" and the given integer members of the
 * JSON answer ("OK version=3 index=12"); otherwise what report_failure() says. Returns the exit
 * code.
 */
static int report_write(const options_t *o, dl_http_result_t *res, const char *const *members)
{
    int rv = EXIT_OK;
    if (res->status == 200) {
        json_t *root = json_loadb(res->body, res->body_len, 0, NULL);
        printf("OK");
        for (; *members != NULL; members++) {
            json_t *v = json_object_get(root, *members);
            if (json_is_integer(v))
                printf(" %s=%" JSON_INTEGER_FORMAT, *members, json_integer_value(v));
        }
        printf("\n");
        json_decref(root);
    } else {
        rv = report_failure(o, res);
    }
    dl_http_result_free(res);
    return rv;
}

/* ---- verbs ---- */

static int cmd_get(options_t *o, int argc, char **argv)
{
    const dl_flag_t flags[] = {
        {"consistency", DL_FLAG_STRING, &o->consistency,
         "linearizable (ask the leader) or stale (any node answers from its own copy)"},
        {"show-version", DL_FLAG_BOOL, &o->show_version, "print the value's version to stderr"},
        COMMON_FLAGS(o),
        {0},
    };
    int rv = parse_command_line(o, "ddialab kv get KEY [flags]", flags, 1, 1, argc, argv);
    if (rv != 0)
        return rv == 1 ? EXIT_OK : rv;
    int stale = 0;
    if (o->consistency != NULL) {
        stale = strcmp(o->consistency, "stale") == 0;
        if (!stale && strcmp(o->consistency, "linearizable") != 0) {
            usage_error(o, "--consistency must be stale or linearizable");
            return EXIT_USAGE;
        }
    }
    key_request_t kr = {
        .method = "GET", .query = stale ? "?consistency=stale" : NULL, .may_retry = 1};
    dl_http_result_t res;
    rv = send_to_leader(o, &kr, &res);
    if (rv != 0)
        return rv;
    if (res.status == 200) {
        /* The version first: the value has no newline of its own to end on. */
        if (o->show_version && res.etag != NULL) {
            const char *v = res.etag[0] == '"' ? res.etag + 1 : res.etag;
            fprintf(stderr, "%.*s\n", (int)strcspn(v, "\""), v);
        }
        fwrite(res.body, 1, res.body_len, stdout);
        fflush(stdout);
    } else {
        rv = report_failure(o, &res);
    }
    dl_http_result_free(&res);
    return rv;
}

/* Checks that text is a version number, optionally in quotes as an ETag shows it. */
static int parse_version(const char *text, char *out, size_t outlen)
{
    size_t len = strlen(text);
    if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
        text++;
        len -= 2;
    }
    if (len == 0 || len >= outlen || strspn(text, "0123456789") < len)
        return -EINVAL;
    memcpy(out, text, len);
    out[len] = '\0';
    return 0;
}

static int cmd_put(options_t *o, int argc, char **argv)
{
    const dl_flag_t flags[] = {
        {"if-match", DL_FLAG_STRING, &o->if_match, "write only if the key's version is this one"},
        {"if-none-match", DL_FLAG_BOOL, &o->if_none_match, "write only if the key does not exist"},
        {"file", DL_FLAG_STRING, &o->file, "read the value from this file ('-' is stdin)"},
        COMMON_FLAGS(o),
        {0},
    };
    int rv = parse_command_line(o, "ddialab kv put KEY VALUE [flags] | put KEY --file PATH", flags,
                                1, 2, argc, argv);
    if (rv != 0)
        return rv == 1 ? EXIT_OK : rv;
    char header[64];
    const char *headers[2] = {NULL, NULL};
    if (o->if_match != NULL && o->if_none_match) {
        usage_error(o, "--if-match and --if-none-match exclude each other");
        return EXIT_USAGE;
    }
    if (o->if_match != NULL) {
        char version[32];
        if (parse_version(o->if_match, version, sizeof(version)) != 0) {
            usage_error(o, "--if-match needs a version number");
            return EXIT_USAGE;
        }
        snprintf(header, sizeof(header), "If-Match: %s", version);
        headers[0] = header;
    } else if (o->if_none_match) {
        headers[0] = "If-None-Match: *";
    }
    if ((o->file != NULL) == (o->positional_count == 2)) {
        usage_error(o, o->file != NULL ? "give the value or --file, not both"
                                       : "missing VALUE (or --file PATH)");
        return EXIT_USAGE;
    }

    char *file_value = NULL;
    const char *value = o->positional[1];
    size_t value_len = value != NULL ? strlen(value) : 0;
    if (o->file != NULL) {
        rv = read_value(o->file, &file_value, &value_len);
        if (rv != 0) {
            char err[300];
            snprintf(err, sizeof(err), "cannot read %s: %s",
                     strcmp(o->file, "-") == 0 ? "stdin" : o->file, strerror(-rv));
            usage_error(o, err);
            return EXIT_USAGE;
        }
        value = file_value;
    }
    key_request_t kr = {.method = "PUT", .headers = headers, .body = value, .body_len = value_len};
    dl_http_result_t res;
    rv = send_to_leader(o, &kr, &res);
    free(file_value);
    if (rv != 0)
        return rv;
    return report_write(o, &res, (const char *const[]){"version", "index", NULL});
}

static int cmd_del(options_t *o, int argc, char **argv)
{
    const dl_flag_t flags[] = {COMMON_FLAGS(o), {0}};
    int rv = parse_command_line(o, "ddialab kv del KEY [flags]", flags, 1, 1, argc, argv);
    if (rv != 0)
        return rv == 1 ? EXIT_OK : rv;
    key_request_t kr = {.method = "DELETE"};
    dl_http_result_t res;
    rv = send_to_leader(o, &kr, &res);
    if (rv != 0)
        return rv;
    return report_write(o, &res, (const char *const[]){"index", NULL});
}

/* ---- status: every endpoint at once, then one table ---- */

enum {
    COL_ENDPOINT,
    COL_NODE,
    COL_ROLE,
    COL_TERM,
    COL_LEADER,
    COL_LAST,
    COL_COMMIT,
    COL_APPLIED,
    COL_LAG,
    COLUMNS
};

typedef struct status_row_s {
    json_t *status; /* the node's /status answer, or NULL */
    char error[256];
    int *pending; /* answers still to come, over all rows */
} status_row_t;

static void on_status(void *ctx, const dl_http_response_t *resp)
{
    status_row_t *row = ctx;
    (*row->pending)--;
    if (resp->rv != 0) {
        snprintf(row->error, sizeof(row->error), "%s", resp->error);
    } else if (resp->status != 200) {
        snprintf(row->error, sizeof(row->error), "HTTP %ld from /status", resp->status);
    } else {
        row->status = json_loadb(resp->body, resp->body_len, 0, NULL);
        if (!json_is_object(row->status)) {
            json_decref(row->status);
            row->status = NULL;
            snprintf(row->error, sizeof(row->error), "/status did not answer a JSON object");
        }
    }
}

/* Renders a scalar JSON member for the table; "-" when absent or null. */
static void cell(char *buf, size_t len, json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (json_is_integer(v))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
    else
        snprintf(buf, len, "-");
}

/* The follower's replication lag as the leader reports it ("?" when no leader says). */
static void lag_cell(char *buf, size_t len, json_t *leader, json_t *node)
{
    snprintf(buf, len, "%s", leader == NULL ? "?" : "-");
    if (leader == NULL || leader == node)
        return;
    json_t *id = json_object_get(node, "node");
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(leader, "followers"), i, f)
    {
        if (json_equal(json_object_get(f, "node"), id)) {
            cell(buf, len, f, "lag");
            if (json_is_false(json_object_get(f, "connected")) && strlen(buf) + 15 < len)
                strcat(buf, " disconnected");
            return;
        }
    }
    snprintf(buf, len, "?");
}

static int cmd_status(options_t *o, int argc, char **argv)
{
    const dl_flag_t flags[] = {COMMON_FLAGS(o), {0}};
    int rv = parse_command_line(o, "ddialab kv status [flags]", flags, 0, 0, argc, argv);
    if (rv != 0)
        return rv == 1 ? EXIT_OK : rv;

    status_row_t rows[MAX_ENDPOINTS] = {{0}};
    uv_loop_t loop;
    dl_http_client_t *http;
    if (uv_loop_init(&loop) != 0 || dl_http_client_new(&loop, &http) != 0) {
        fprintf(stderr, "ddialab kv status: cannot start the HTTP client\n");
        return EXIT_UNAVAILABLE;
    }
    int pending = 0;
    for (int i = 0; i < o->endpoint_count; i++) {
        char url[512];
        snprintf(url, sizeof(url), "%s/status", o->endpoints[i]);
        dl_http_request_t req = {.method = "GET", .url = url, .timeout_ms = o->timeout_ms};
        rows[i].pending = &pending;
        rv = dl_http_client_send(http, &req, on_status, &rows[i]);
        if (rv == 0)
            pending++;
        else
            snprintf(rows[i].error, sizeof(rows[i].error), "%s", dl_strerror(rv));
    }
    while (pending > 0 && uv_run(&loop, UV_RUN_ONCE) != 0)
        ;
    dl_http_client_close(http);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);

    /* The leader with the highest term is the one whose view of the followers counts. */
    json_t *leader = NULL;
    for (int i = 0; i < o->endpoint_count; i++) {
        json_t *s = rows[i].status;
        const char *role = json_string_value(json_object_get(s, "role"));
        if (role != NULL && strcmp(role, "leader") == 0 &&
            (leader == NULL || json_integer_value(json_object_get(s, "term")) >
                                   json_integer_value(json_object_get(leader, "term"))))
            leader = s;
    }

    static const char *titles[COLUMNS] = {"ENDPOINT", "NODE",   "ROLE",    "TERM", "LEADER",
                                          "LAST",     "COMMIT", "APPLIED", "LAG"};
    static const char *members[COLUMNS] = {NULL,           "node",          "role",
                                           "term",         "leader",        "last_index",
                                           "commit_index", "applied_index", NULL};
    char cells[MAX_ENDPOINTS + 1][COLUMNS][128];
    int width[COLUMNS] = {0};
    int reachable = 0;
    for (int c = 0; c < COLUMNS; c++)
        snprintf(cells[0][c], sizeof(cells[0][c]), "%s", titles[c]);
    for (int i = 0; i < o->endpoint_count; i++) {
        char(*row)[128] = cells[i + 1];
        json_t *s = rows[i].status;
        reachable += s != NULL;
        snprintf(row[COL_ENDPOINT], sizeof(row[0]), "%s", o->endpoints[i]);
        for (int c = COL_NODE; c < COL_LAG; c++)
            cell(row[c], sizeof(row[0]), s, members[c]);
        if (s == NULL)
            snprintf(row[COL_ROLE], sizeof(row[0]), "unreachable");
        if (s != NULL)
            lag_cell(row[COL_LAG], sizeof(row[0]), leader, s);
        else
            snprintf(row[COL_LAG], sizeof(row[0]), "-");
    }
    for (int r = 0; r <= o->endpoint_count; r++)
        for (int c = 0; c < COLUMNS; c++)
            if ((int)strlen(cells[r][c]) > width[c])
                width[c] = (int)strlen(cells[r][c]);
    for (int r = 0; r <= o->endpoint_count; r++)
        for (int c = 0; c < COLUMNS; c++) {
            if (c + 1 < COLUMNS)
                printf("%-*s  ", width[c], cells[r][c]);
            else
                printf("%s\n", cells[r][c]);
        }
    fflush(stdout);

    char tried[2048] = "";
    for (int i = 0; i < o->endpoint_count; i++) {
        if (rows[i].status == NULL) {
            note_attempt(tried, sizeof(tried), o->endpoints[i], rows[i].error);
            if (reachable > 0)
                fprintf(stderr, "ddialab kv status: %s: %s\n", o->endpoints[i], rows[i].error);
        }
        json_decref(rows[i].status);
    }
    if (reachable == 0) {
        fprintf(stderr, "ddialab kv status: no endpoint reachable; tried %s\n", tried);
        return EXIT_UNAVAILABLE;
    }
    return EXIT_OK;
}

int dl_kv_client_main(int argc, char **argv)
{
    options_t o = {.endpoints_flag = DEFAULT_ENDPOINTS, .timeout_ms = 5000};
    o.verb = argc > 0 ? argv[0] : "";
    int rv;
    if (strcmp(o.verb, "get") == 0) {
        rv = cmd_get(&o, argc, argv);
    } else if (strcmp(o.verb, "put") == 0) {
        rv = cmd_put(&o, argc, argv);
    } else if (strcmp(o.verb, "del") == 0) {
        rv = cmd_del(&o, argc, argv);
    } else if (strcmp(o.verb, "status") == 0) {
        rv = cmd_status(&o, argc, argv);
    } else {
        fprintf(stderr, "ddialab kv: unknown client verb '%s' (get, put, del, status)\n", o.verb);
        rv = EXIT_USAGE;
    }
    options_free(&o);
    return rv;
}
