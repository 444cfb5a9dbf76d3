/*
 * The verbs of "ddialab txn", one entry point each; argv[0] is the verb. Each returns the
 * process exit code: 0, 1 when the run found what it checks for failing, 2 for a usage error.
 */
#ifndef DDIALAB_TXN_CLI_H
#define DDIALAB_TXN_CLI_H

int dl_txn_run_main(int argc, char **argv);    /* src/txn/run.c */
int dl_txn_demo_main(int argc, char **argv);   /* src/txn/demo.c */
int dl_txn_stress_main(int argc, char **argv); /* src/txn/stress.c */
int dl_txn_serve_main(int argc, char **argv);  /* src/txn/serve.c */

#endif
