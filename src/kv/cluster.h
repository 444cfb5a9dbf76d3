/* ddialab kv cluster: runs a local cluster of kv nodes as child processes. */
#ifndef DDIALAB_KV_CLUSTER_H
#define DDIALAB_KV_CLUSTER_H

/* argv[0] is "cluster". Returns the process exit code. */
int dl_kv_cluster_main(int argc, char **argv);

#endif
