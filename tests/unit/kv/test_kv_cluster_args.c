/* ddialab kv cluster: which flags the launcher keeps, which reach the nodes, and node argv. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kv/cluster.h"

static dl__kv_cluster_config_t defaults(void)
{
    dl__kv_cluster_config_t cfg = {
        .nodes = 3, .http_base = 8000, .peer_base = 9000, .data_root = "./data"};
    return cfg;
}

/* Parses a NULL-terminated list of arguments after "cluster". */
static int parse(dl__kv_cluster_config_t *cfg, char *err, const char *const *args)
{
    char *argv[32] = {"cluster"};
    int argc = 1;
    for (; args[argc - 1] != NULL; argc++)
        argv[argc] = (char *)args[argc - 1];
    err[0] = '\0';
    return dl__kv_cluster_parse_args(argc, argv, cfg, err, 256);
}

static void assert_forwarded(const dl__kv_cluster_config_t *cfg, const char *const *expected)
{
    int n = 0;
    for (; expected[n] != NULL; n++) {
        assert_true(n < cfg->nforward);
        assert_string_equal(cfg->forward[n], expected[n]);
    }
    assert_int_equal(cfg->nforward, n);
}

static void test_cluster_args_defaults_without_flags(void **state)
{
    dl__kv_cluster_config_t cfg = defaults();
    char err[256];
    const char *args[] = {NULL};
    assert_int_equal(parse(&cfg, err, args), 0);
    assert_int_equal(cfg.nodes, 3);
    assert_int_equal(cfg.http_base, 8000);
    assert_int_equal(cfg.peer_base, 9000);
    assert_string_equal(cfg.data_root, "./data");
    assert_int_equal(cfg.nforward, 0);
    dl__kv_cluster_config_free(&cfg);
}

static void test_cluster_args_keeps_own_flags_and_forwards_the_rest_in_order(void **state)
{
    dl__kv_cluster_config_t cfg = defaults();
    char err[256];
    const char *args[] = {
        "--nodes",     "5",      "--replication", "async",       "--http-base=7000",
        "--fsync",     "none",   "--leader=2",    "--peer-base", "7100",
        "--data-root", "/tmp/x", "--log-level",   "debug",       NULL};
    assert_int_equal(parse(&cfg, err, args), 0);
    assert_int_equal(cfg.nodes, 5);
    assert_int_equal(cfg.http_base, 7000);
    assert_int_equal(cfg.peer_base, 7100);
    assert_string_equal(cfg.data_root, "/tmp/x");
    const char *forwarded[] = {"--replication", "async",       "--fsync", "none",
                               "--leader=2",    "--log-level", "debug",   NULL};
    assert_forwarded(&cfg, forwarded);
    dl__kv_cluster_config_free(&cfg);
}

static void test_cluster_args_forwards_everything_after_double_dash(void **state)
{
    dl__kv_cluster_config_t cfg = defaults();
    char err[256];
    const char *args[] = {"--nodes", "1", "--", "--write-timeout", "2s", "--nodes", "9", NULL};
    assert_int_equal(parse(&cfg, err, args), 0);
    assert_int_equal(cfg.nodes, 1);
    const char *forwarded[] = {"--write-timeout", "2s", "--nodes", "9", NULL};
    assert_forwarded(&cfg, forwarded);
    dl__kv_cluster_config_free(&cfg);
}

static void test_cluster_args_refuses_flags_the_launcher_sets_per_node(void **state)
{
    const char *refused[][3] = {
        {"--http", "127.0.0.1:1", NULL}, {"--peer", "127.0.0.1:2", NULL},
        {"--peers", "1=x", NULL},        {"--data-dir=/tmp/y", NULL, NULL},
        {"--node", "2", NULL},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        dl__kv_cluster_config_t cfg = defaults();
        char err[256];
        assert_int_equal(parse(&cfg, err, refused[i]), -EINVAL);
        assert_non_null(strstr(err, "set by the launcher"));
        assert_null(cfg.forward);
    }
}

static void test_cluster_args_rejects_bad_launcher_values(void **state)
{
    const char *bad[][5] = {
        {"--nodes", "0", NULL},
        {"--nodes", "33", NULL},
        {"--nodes", "three", NULL},
        {"--nodes", NULL},
        {"--http-base", "65534", NULL},
        {"--peer-base", "-1", NULL},
        {"--http-base", "9000", "--peer-base", "9002", NULL}, /* 9001..9003 overlap 9003..9005 */
        {"--data-root=", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dl__kv_cluster_config_t cfg = defaults();
        char err[256];
        assert_int_equal(parse(&cfg, err, bad[i]), -EINVAL);
        assert_true(strlen(err) > 0);
    }
}

static void test_cluster_args_help_is_handled_by_the_launcher(void **state)
{
    dl__kv_cluster_config_t cfg = defaults();
    char err[256];
    const char *args[] = {"--replication", "async", "--help", NULL};
    assert_int_equal(parse(&cfg, err, args), 1);
    assert_null(cfg.forward);
}

static void test_cluster_node_argv_sets_ports_peers_data_dir_then_forwarded_flags(void **state)
{
    char *forward[] = {"--replication", "async", "--fsync", "none", NULL};
    dl__kv_cluster_config_t cfg = defaults();
    cfg.forward = forward;
    cfg.nforward = 4;
    char **argv = dl__kv_cluster_node_argv("/usr/bin/ddialab", &cfg, 2);
    assert_non_null(argv);
    const char *expected[] = {"/usr/bin/ddialab",
                              "kv",
                              "--node",
                              "2",
                              "--http",
                              "127.0.0.1:8002",
                              "--peer",
                              "127.0.0.1:9002",
                              "--peers",
                              "1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003",
                              "--data-dir",
                              "./data/kv-2",
                              "--replication",
                              "async",
                              "--fsync",
                              "none",
                              NULL};
    size_t i = 0;
    for (; expected[i] != NULL; i++) {
        assert_non_null(argv[i]);
        assert_string_equal(argv[i], expected[i]);
    }
    assert_null(argv[i]);
    dl__kv_cluster_argv_free(argv);
}

static void test_cluster_node_argv_joins_data_root_with_one_slash(void **state)
{
    dl__kv_cluster_config_t cfg = defaults();
    cfg.nodes = 1;
    cfg.data_root = "/var/tmp/lab/";
    char **argv = dl__kv_cluster_node_argv("ddialab", &cfg, 1);
    assert_non_null(argv);
    assert_string_equal(argv[9], "1=127.0.0.1:9001");
    assert_string_equal(argv[11], "/var/tmp/lab/kv-1");
    assert_null(argv[12]);
    dl__kv_cluster_argv_free(argv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_args_defaults_without_flags),
        cmocka_unit_test(test_cluster_args_keeps_own_flags_and_forwards_the_rest_in_order),
        cmocka_unit_test(test_cluster_args_forwards_everything_after_double_dash),
        cmocka_unit_test(test_cluster_args_refuses_flags_the_launcher_sets_per_node),
        cmocka_unit_test(test_cluster_args_rejects_bad_launcher_values),
        cmocka_unit_test(test_cluster_args_help_is_handled_by_the_launcher),
        cmocka_unit_test(test_cluster_node_argv_sets_ports_peers_data_dir_then_forwarded_flags),
        cmocka_unit_test(test_cluster_node_argv_joins_data_root_with_one_slash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
