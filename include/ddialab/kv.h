/*
 * ddialab kv: the replicated key-value lab.
 *
 *   ddialab kv --node N [flags]            run one node
 *   ddialab kv cluster [--nodes 3] [...]   run a local cluster as child processes
 *   ddialab kv get|put|del|status [...]    a client that finds the leader
 */
#ifndef DDIALAB_KV_H
#define DDIALAB_KV_H

/* Entry point for "ddialab kv ..."; argv[0] is "kv". Returns the process exit code. */
int dl_kv_main(int argc, char **argv);

#endif
