/* ddialab kv --node N: one replicated key-value node. */
#ifndef DDIALAB_KV_NODE_H
#define DDIALAB_KV_NODE_H

/* argv[0] is "kv". Returns the process exit code. */
int dl_kv_node_main(int argc, char **argv);

#endif
