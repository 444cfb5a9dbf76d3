/*
 * ddialab txn: the isolation-levels lab.
 *
 *   ddialab txn run FILE [--isolation LEVEL | --all-levels] [--json]   replay a scenario script
 *   ddialab txn demo [--json]                  the anomaly x level matrix from the bundled scripts
 *   ddialab txn stress --workload W [...]      real threads, invariants and a history checker
 *   ddialab txn serve [--listen 127.0.0.1:7070] sessions over HTTP for curl in two terminals
 */
#ifndef DDIALAB_TXN_H
#define DDIALAB_TXN_H

/* Entry point for "ddialab txn ..."; argv[0] is "txn". Returns the process exit code. */
int dl_txn_main(int argc, char **argv);

#endif
