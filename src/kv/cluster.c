/*
 * ddialab kv cluster: a local cluster of kv nodes, each a child process of this one.
 *
 * The launcher re-executes its own binary (/proc/self/exe) as `ddialab kv --node i ...` for each
 * node, with ports and data directories derived from its flags, and passes every flag it does not
 * know to every node. It shows the nodes' output with a "kv-i |" prefix, like docker compose,
 * prints how to use the cluster once every node accepts connections, reports nodes that exit
 * (users kill nodes on purpose in the labs, so the others keep running), and on SIGINT or SIGTERM
 * stops them all: SIGTERM, then SIGKILL after five seconds.
 *
 * The children run in sessions of their own, so a Ctrl-C in the terminal reaches only the
 * launcher, and each node receives exactly one SIGTERM from it.
 */
#include "kv/cluster.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "ddialab/flags.h"
#include "ddialab/process.h"

#define MAX_NODES         32
#define STOP_GRACE_MS     5000  /* SIGTERM, then SIGKILL after this long */
#define PROBE_INTERVAL_MS 200   /* how often to try the nodes' HTTP ports */
#define READY_DEADLINE_MS 10000 /* print the banner by then even if some node is not up */

static const char usage[] = "ddialab kv cluster [--nodes 3] [--http-base 8000] [--peer-base 9000] "
                            "[--data-root ./data] [node flags...]";

/* Flags the launcher sets for each node itself. */
static const char *const per_node_flags[] = {"node", "http", "peer", "peers", "data-dir", NULL};

/* --- Arguments. --- */

static int in_list(const char *const *names, const char *name, size_t len)
{
    for (; *names != NULL; names++)
        if (strlen(*names) == len && strncmp(*names, name, len) == 0)
            return 1;
    return 0;
}

static int validate(const dl__kv_cluster_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->nodes < 1 || cfg->nodes > MAX_NODES) {
        snprintf(err, errlen, "--nodes must be between 1 and %d", MAX_NODES);
        return -EINVAL;
    }
    if (cfg->http_base < 0 || cfg->http_base + cfg->nodes > 65535) {
        snprintf(err, errlen, "--http-base %lld leaves no room for %lld ports below 65536",
                 (long long)cfg->http_base, (long long)cfg->nodes);
        return -EINVAL;
    }
    if (cfg->peer_base < 0 || cfg->peer_base + cfg->nodes > 65535) {
        snprintf(err, errlen, "--peer-base %lld leaves no room for %lld ports below 65536",
                 (long long)cfg->peer_base, (long long)cfg->nodes);
        return -EINVAL;
    }
    int64_t distance = cfg->http_base - cfg->peer_base;
    if (distance < 0)
        distance = -distance;
    if (distance < cfg->nodes) {
        snprintf(err, errlen, "the HTTP ports (--http-base) and peer ports (--peer-base) overlap");
        return -EINVAL;
    }
    if (cfg->data_root == NULL || cfg->data_root[0] == '\0') {
        snprintf(err, errlen, "--data-root must not be empty");
        return -EINVAL;
    }
    return 0;
}

static void print_help_epilogue(void)
{
    printf("\nEvery other flag is passed unchanged to every node, e.g. --replication async,\n"
           "--fsync none, --leader 2 (see ddialab kv --help). The launcher sets --node, --http,\n"
           "--peer, --peers and --data-dir itself: node i serves HTTP on 127.0.0.1:<http-base+i>,\n"
           "talks to its peers on 127.0.0.1:<peer-base+i> and keeps its data in "
           "<data-root>/kv-i.\n"
           "Ctrl-C stops the cluster.\n");
}

int dl__kv_cluster_parse_args(int argc, char **argv, dl__kv_cluster_config_t *cfg, char *err,
                              size_t errlen)
{
    int rv;
    const dl_flag_t flags[] = {
        {"nodes", DL_FLAG_INT, &cfg->nodes, "number of nodes, 1 to 32"},
        {"http-base", DL_FLAG_INT, &cfg->http_base,
         "node i serves HTTP on 127.0.0.1:<http-base + i>"},
        {"peer-base", DL_FLAG_INT, &cfg->peer_base,
         "node i talks to its peers on 127.0.0.1:<peer-base + i>"},
        {"data-root", DL_FLAG_STRING, &cfg->data_root, "node i keeps its data in <data-root>/kv-i"},
        {0},
    };
    char **own = malloc(((size_t)argc + 1) * sizeof(*own));
    if (own == NULL)
        return -ENOMEM;
    char **forward = malloc(((size_t)argc + 1) * sizeof(*forward));
    if (forward == NULL) {
        rv = -ENOMEM;
        goto err_after_own;
    }

    /* Split first: dl_flags_parse() refuses flags it does not know, and those are the nodes'. */
    int nown = 0, nforward = 0;
    own[nown++] = argc > 0 ? argv[0] : "cluster";
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            while (++i < argc)
                forward[nforward++] = argv[i];
            break;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            own[nown++] = arg;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            forward[nforward++] = arg; /* the value of a node flag */
            continue;
        }
        const char *name = arg + 2;
        size_t len = strcspn(name, "=");
        int own_flag = 0;
        for (const dl_flag_t *f = flags; f->name != NULL && !own_flag; f++)
            own_flag = strlen(f->name) == len && strncmp(f->name, name, len) == 0;
        if (own_flag) {
            own[nown++] = arg;
            if (name[len] != '=' && i + 1 < argc)
                own[nown++] = argv[++i];
            continue;
        }
        if (in_list(per_node_flags, name, len)) {
            snprintf(err, errlen,
                     "--%.*s is set by the launcher for each node "
                     "(see ddialab kv cluster --help)",
                     (int)len, name);
            rv = -EINVAL;
            goto err_after_forward;
        }
        forward[nforward++] = arg;
    }
    forward[nforward] = NULL;

    int next;
    rv = dl_flags_parse(usage, flags, nown, own, 1, &next, err, errlen);
    if (rv == 1)
        print_help_epilogue();
    if (rv == 0)
        rv = validate(cfg, err, errlen);
    if (rv != 0)
        goto err_after_forward;
    free(own);
    cfg->forward = forward;
    cfg->nforward = nforward;
    return 0;

err_after_forward:
    free(forward);
err_after_own:
    free(own);
    return rv;
}

void dl__kv_cluster_config_free(dl__kv_cluster_config_t *cfg)
{
    free(cfg->forward);
    cfg->forward = NULL;
    cfg->nforward = 0;
}

/* vasprintf() that returns NULL on failure. */
static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format(const char *fmt, ...)
{
    char *s;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

static char *peers_list(const dl__kv_cluster_config_t *cfg)
{
    size_t size = (size_t)cfg->nodes * 32;
    char *peers = malloc(size);
    if (peers == NULL)
        return NULL;
    size_t used = 0;
    for (int64_t i = 1; i <= cfg->nodes; i++)
        used += (size_t)snprintf(peers + used, size - used, "%s%lld=127.0.0.1:%lld",
                                 i > 1 ? "," : "", (long long)i, (long long)(cfg->peer_base + i));
    return peers;
}

/* The separator to put between dir and a name in it: none when dir already ends in '/'. */
static const char *separator_after(const char *dir)
{
    size_t len = strlen(dir);
    return len > 0 && dir[len - 1] == '/' ? "" : "/";
}

char **dl__kv_cluster_node_argv(const char *exe, const dl__kv_cluster_config_t *cfg, int id)
{
    size_t n = 12 + (size_t)cfg->nforward;
    char **argv = calloc(n + 1, sizeof(*argv));
    if (argv == NULL)
        return NULL;
    const char *slash = separator_after(cfg->data_root);
    size_t k = 0;
    argv[k++] = strdup(exe);
    argv[k++] = strdup("kv");
    argv[k++] = strdup("--node");
    argv[k++] = format("%d", id);
    argv[k++] = strdup("--http");
    argv[k++] = format("127.0.0.1:%lld", (long long)(cfg->http_base + id));
    argv[k++] = strdup("--peer");
    argv[k++] = format("127.0.0.1:%lld", (long long)(cfg->peer_base + id));
    argv[k++] = strdup("--peers");
    argv[k++] = peers_list(cfg);
    argv[k++] = strdup("--data-dir");
    argv[k++] = format("%s%skv-%d", cfg->data_root, slash, id);
    for (int i = 0; i < cfg->nforward; i++)
        argv[k++] = strdup(cfg->forward[i]);
    for (size_t i = 0; i < n; i++) {
        if (argv[i] == NULL) {
            for (size_t j = 0; j < n; j++)
                free(argv[j]);
            free(argv);
            return NULL;
        }
    }
    return argv;
}

void dl__kv_cluster_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (char **p = argv; *p != NULL; p++)
        free(*p);
    free(argv);
}

/* --- The running cluster. --- */

typedef struct cluster_s cluster_t;

typedef struct {
    cluster_t *cluster;
    int id;
    char name[16];         /* "kv-<id>" */
    dl_process_t *process; /* NULL once it has exited (or never started) */
    int pid;
    int ready;   /* its HTTP port has accepted a connection */
    int probing; /* probe is open (until its close callback) */
    uv_tcp_t probe;
    uv_connect_t connect;
} node_t;

struct cluster_s {
    uv_loop_t loop;
    dl__kv_cluster_config_t cfg;
    node_t nodes[MAX_NODES];
    int running;  /* children not yet reported as exited */
    int stopping; /* a stop signal arrived */
    int failed;   /* a node could not be started */
    int banner_shown;
    int colour;
    int name_width;
    uint64_t started_ms;
    uv_signal_t signals[3];
    uv_timer_t probe_timer;
    uv_timer_t kill_timer;
};

static const int stop_signals[3] = {SIGINT, SIGTERM, SIGHUP};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The launcher's own messages, set apart from the nodes' lines. */
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static void on_node_line(void *ctx, dl_process_t *process, dl_process_stream_t stream,
                         const char *line, size_t len)
{
    static const char *const colours[] = {"36", "33", "32", "35", "34", "96", "93", "92", "95"};
    node_t *node = ctx;
    cluster_t *c = node->cluster;
    if (c->colour)
        printf("\033[%sm%-*s |\033[0m %.*s\n", colours[(node->id - 1) % 9], c->name_width,
               node->name, (int)len, line);
    else
        printf("%-*s | %.*s\n", c->name_width, node->name, (int)len, line);
}

static void on_probe_closed(uv_handle_t *handle)
{
    node_t *node = handle->data;
    node->probing = 0;
}

static void close_probe(node_t *node)
{
    if (node->probing && !uv_is_closing((uv_handle_t *)&node->probe))
        uv_close((uv_handle_t *)&node->probe, on_probe_closed);
}

static void close_all(cluster_t *c)
{
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&c->signals[i], NULL);
    uv_close((uv_handle_t *)&c->probe_timer, NULL);
    uv_close((uv_handle_t *)&c->kill_timer, NULL);
    for (int i = 0; i < c->cfg.nodes; i++)
        close_probe(&c->nodes[i]);
}

/* Whether the nodes run with a static leader (the last --elections/--no-elections given). */
static int static_leader_mode(const dl__kv_cluster_config_t *cfg)
{
    int is_static = 0;
    for (int i = 0; i < cfg->nforward; i++) {
        if (strcmp(cfg->forward[i], "--no-elections") == 0 ||
            strcmp(cfg->forward[i], "--elections=false") == 0)
            is_static = 1;
        else if (strcmp(cfg->forward[i], "--elections") == 0 ||
                 strcmp(cfg->forward[i], "--elections=true") == 0)
            is_static = 0;
    }
    return is_static;
}

static void print_banner(cluster_t *c)
{
    const dl__kv_cluster_config_t *cfg = &c->cfg;
    long long one = cfg->http_base + 1, two = cfg->http_base + (cfg->nodes >= 2 ? 2 : 1);
    int up = 0;
    for (int i = 0; i < cfg->nodes; i++)
        up += c->nodes[i].process != NULL && c->nodes[i].ready;
    c->banner_shown = 1;
    putchar('\n');
    if (up == cfg->nodes)
        say("kv cluster is up: %d node%s on 127.0.0.1", up, up == 1 ? "" : "s");
    else
        say("kv cluster: %d of %lld nodes are up", up, (long long)cfg->nodes);
    const char *slash = separator_after(cfg->data_root);
    for (int i = 0; i < cfg->nodes; i++) {
        node_t *node = &c->nodes[i];
        const char *state = node->process == NULL ? "  (exited)"
                            : node->ready         ? ""
                                                  : "  (not accepting connections yet)";
        say("  %-*s  pid %-7d  http://127.0.0.1:%lld  peer 127.0.0.1:%lld  data %s%s%s%s",
            c->name_width, node->name, node->pid, (long long)(cfg->http_base + node->id),
            (long long)(cfg->peer_base + node->id), cfg->data_root, slash, node->name, state);
    }
    int is_static = static_leader_mode(cfg);
    say("Try:");
    say("  curl -L -X PUT localhost:%lld/kv/greeting -d hello   (-L follows the redirect to the "
        "leader)",
        one);
    say("  curl 'localhost:%lld/kv/greeting?consistency=stale'   (may be stale on a follower)",
        two);
    say("  curl localhost:%lld/status                            (role, term, leader)", one);
    if (cfg->nodes >= 2 && is_static) {
        say("Fail over: /status names the leader; kill it and promote another node:");
        say("  kill <pid of the leader>");
        say("  curl -X POST localhost:%lld/admin/promote", two);
    } else if (cfg->nodes >= 2) {
        say("Fail over: /status names the leader; kill it and watch another node take over");
        say("  kill -9 <pid of the leader>                           (within about 2x the election "
            "timeout)");
    }
    say("Ctrl-C stops the cluster.");
    putchar('\n');
}

/* The banner waits until every running node accepts connections, or the deadline. */
static void maybe_print_banner(cluster_t *c)
{
    if (c->banner_shown || c->stopping || c->running == 0)
        return;
    int waiting = 0;
    for (int i = 0; i < c->cfg.nodes; i++)
        waiting += c->nodes[i].process != NULL && !c->nodes[i].ready;
    if (waiting > 0 && uv_now(&c->loop) - c->started_ms < READY_DEADLINE_MS)
        return;
    uv_timer_stop(&c->probe_timer);
    print_banner(c);
}

static void on_probe_connected(uv_connect_t *req, int status)
{
    node_t *node = req->data;
    if (status == 0)
        node->ready = 1;
    close_probe(node);
    if (status == 0)
        maybe_print_banner(node->cluster);
}

static void on_probe_timer(uv_timer_t *timer)
{
    cluster_t *c = timer->data;
    for (int i = 0; i < c->cfg.nodes; i++) {
        node_t *node = &c->nodes[i];
        if (node->process == NULL || node->ready || node->probing)
            continue;
        struct sockaddr_in addr;
        uv_ip4_addr("127.0.0.1", (int)(c->cfg.http_base + node->id), &addr);
        if (uv_tcp_init(&c->loop, &node->probe) != 0)
            continue;
        node->probing = 1;
        node->probe.data = node;
        node->connect.data = node;
        if (uv_tcp_connect(&node->connect, &node->probe, (const struct sockaddr *)&addr,
                           on_probe_connected) != 0)
            close_probe(node);
    }
    maybe_print_banner(c);
}

static void on_node_exit(void *ctx, dl_process_t *process, int exit_status, int term_signal)
{
    node_t *node = ctx;
    cluster_t *c = node->cluster;
    if (term_signal != 0)
        say("%s was killed by signal %d (%s)", node->name, term_signal, strsignal(term_signal));
    else
        say("%s exited with status %d", node->name, exit_status);
    dl_process_close(process);
    node->process = NULL;
    close_probe(node);
    c->running--;
    if (c->running > 0) {
        maybe_print_banner(c);
        return;
    }
    if (!c->stopping)
        say("all nodes have exited");
    close_all(c);
}

/* Sends signum to every node still running. */
static void signal_nodes(cluster_t *c, int signum)
{
    for (int i = 0; i < c->cfg.nodes; i++) {
        node_t *node = &c->nodes[i];
        if (node->process != NULL && !dl_process_exited(node->process))
            dl_process_kill(node->process, signum);
    }
}

static void on_kill_timer(uv_timer_t *timer)
{
    cluster_t *c = timer->data;
    say("nodes still running after %d s; sending SIGKILL", STOP_GRACE_MS / 1000);
    signal_nodes(c, SIGKILL);
}

static void on_stop_signal(uv_signal_t *handle, int signum)
{
    cluster_t *c = handle->data;
    if (c->stopping) {
        say("%s again: sending SIGKILL", signum == SIGINT    ? "SIGINT"
                                         : signum == SIGTERM ? "SIGTERM"
                                                             : "SIGHUP");
        signal_nodes(c, SIGKILL);
        return;
    }
    c->stopping = 1;
    uv_timer_stop(&c->probe_timer);
    say("stopping %d node%s (SIGTERM; SIGKILL after %d s or on a second Ctrl-C)", c->running,
        c->running == 1 ? "" : "s", STOP_GRACE_MS / 1000);
    signal_nodes(c, SIGTERM);
    uv_timer_start(&c->kill_timer, on_kill_timer, STOP_GRACE_MS, 0);
}

/* Starts node id; on failure says why and returns a negative errno. */
static int start_node(cluster_t *c, const char *exe, node_t *node)
{
    char **argv = dl__kv_cluster_node_argv(exe, &c->cfg, node->id);
    if (argv == NULL) {
        say("%s: out of memory", node->name);
        return -ENOMEM;
    }
    dl_process_options_t opts = {
        .argv = (const char *const *)argv,
        .detached = 1,
        .on_line = on_node_line,
        .on_exit = on_node_exit,
        .ctx = node,
    };
    int rv = dl_process_spawn(&c->loop, &opts, &node->process);
    if (rv != 0) {
        say("%s could not be started: %s", node->name, uv_strerror(rv));
    } else {
        node->pid = dl_process_pid(node->process);
        c->running++;
        printf("%s started, pid %d:", node->name, node->pid);
        for (char **a = argv; *a != NULL; a++)
            printf(" %s", *a);
        putchar('\n');
    }
    dl__kv_cluster_argv_free(argv);
    return rv;
}

static int self_exe(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n < 0)
        return -errno;
    if ((size_t)n >= size - 1)
        return -ENAMETOOLONG;
    buf[n] = '\0';
    return 0;
}

/* Sets up the loop and its handles, starts every node and runs until all have exited. */
static int run(cluster_t *c, const char *exe)
{
    int rv = uv_loop_init(&c->loop);
    if (rv != 0)
        return rv;
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&c->loop, &c->signals[i]);
        c->signals[i].data = c;
        uv_signal_start(&c->signals[i], on_stop_signal, stop_signals[i]);
    }
    uv_timer_init(&c->loop, &c->probe_timer);
    uv_timer_init(&c->loop, &c->kill_timer);
    c->probe_timer.data = c;
    c->kill_timer.data = c;
    c->started_ms = uv_now(&c->loop);

    for (int i = 0; i < c->cfg.nodes && !c->failed; i++)
        c->failed = start_node(c, exe, &c->nodes[i]) != 0;
    if (c->failed && c->running > 0) {
        /* Stop the ones that did start, as if the user had pressed Ctrl-C. */
        on_stop_signal(&c->signals[0], SIGTERM);
    } else if (c->running > 0) {
        uv_timer_start(&c->probe_timer, on_probe_timer, PROBE_INTERVAL_MS, PROBE_INTERVAL_MS);
    } else {
        close_all(c);
    }
    uv_run(&c->loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(&c->loop);
    return rv;
}

int dl_kv_cluster_main(int argc, char **argv)
{
    static cluster_t cluster; /* large, and the one per process */
    cluster_t *c = &cluster;
    char err[256];
    memset(c, 0, sizeof(*c));
    c->cfg.nodes = 3;
    c->cfg.http_base = 8000;
    c->cfg.peer_base = 9000;
    c->cfg.data_root = "./data";
    int rv = dl__kv_cluster_parse_args(argc, argv, &c->cfg, err, sizeof(err));
    if (rv == 1)
        return 0;
    if (rv != 0) {
        fprintf(stderr, "ddialab kv cluster: %s\n", rv == -EINVAL ? err : strerror(-rv));
        return 2;
    }

    char exe[PATH_MAX];
    rv = self_exe(exe, sizeof(exe));
    if (rv != 0) {
        fprintf(stderr, "ddialab kv cluster: cannot find this program's path: %s\n", strerror(-rv));
        dl__kv_cluster_config_free(&c->cfg);
        return 1;
    }

    /* Node lines must show up as they come even when stdout is a pipe; a reader that goes away
     * must not kill the launcher with SIGPIPE and leave the nodes behind. (libuv restores default
     * signal handling in the children.) */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    const char *no_colour = getenv("NO_COLOR");
    c->colour = isatty(STDOUT_FILENO) && (no_colour == NULL || no_colour[0] == '\0');
    for (int i = 0; i < c->cfg.nodes; i++) {
        node_t *node = &c->nodes[i];
        node->cluster = c;
        node->id = i + 1;
        snprintf(node->name, sizeof(node->name), "kv-%d", node->id);
        int width = (int)strlen(node->name);
        if (width > c->name_width)
            c->name_width = width;
    }

    rv = run(c, exe);
    dl__kv_cluster_config_free(&c->cfg);
    if (rv != 0) {
        fprintf(stderr, "ddialab kv cluster: %s\n", uv_strerror(rv));
        return 1;
    }
    return c->stopping && !c->failed ? 0 : 1;
}
