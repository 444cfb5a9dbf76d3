/* ddialab kv get|put|del|status: a command-line client that finds the leader. */
#ifndef DDIALAB_KV_CLIENT_H
#define DDIALAB_KV_CLIENT_H

/* argv[0] is the verb ("get", "put", "del", "status"). Returns the process exit code. */
int dl_kv_client_main(int argc, char **argv);

#endif
