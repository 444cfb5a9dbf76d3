/* ddialab kv cluster: runs a local cluster of kv nodes as child processes. */
#ifndef DDIALAB_KV_CLUSTER_H
#define DDIALAB_KV_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

/* argv[0] is "cluster". Returns the process exit code. */
int dl_kv_cluster_main(int argc, char **argv);

/* The launcher's settings; internal, exposed for the unit tests. */
typedef struct dl__kv_cluster_config_s {
    int64_t nodes;     /* node ids are 1..nodes */
    int64_t http_base; /* node i serves HTTP on 127.0.0.1:http_base+i */
    int64_t peer_base; /* and talks to its peers on 127.0.0.1:peer_base+i */
    char *data_root;   /* node i keeps its data in data_root/kv-i */
    int nforward;
    char **forward; /* node flags passed unchanged to every node, in their order */
} dl__kv_cluster_config_t;

/*
 * Parses the launcher's argv (argv[0] is "cluster"): its own flags (--nodes, --http-base,
 * --peer-base, --data-root, --help) go into cfg, which holds the defaults on entry; every other
 * argument is kept in cfg->forward for the nodes, as is everything after "--". The flags the
 * launcher sets per node (--node, --http, --peer, --peers, --data-dir) are refused.
 * Returns 0; 1 when --help was given (printed to stdout); or -EINVAL with a message in err.
 * On 0, cfg->forward is a malloc'd array of pointers into argv: free it with
 * dl__kv_cluster_config_free().
 */
int dl__kv_cluster_parse_args(int argc, char **argv, dl__kv_cluster_config_t *cfg, char *err,
                              size_t errlen);

void dl__kv_cluster_config_free(dl__kv_cluster_config_t *cfg);

/*
 * Builds the NULL-terminated argument vector for node id (1..cfg->nodes):
 *   exe kv --node <id> --http 127.0.0.1:<http> --peer 127.0.0.1:<peer>
 *       --peers 1=127.0.0.1:<peer1>,... --data-dir <data_root>/kv-<id> <forwarded flags...>
 * Returns a malloc'd vector of malloc'd strings (free with dl__kv_cluster_argv_free), or NULL
 * when out of memory.
 */
char **dl__kv_cluster_node_argv(const char *exe, const dl__kv_cluster_config_t *cfg, int id);

void dl__kv_cluster_argv_free(char **argv);

#endif
