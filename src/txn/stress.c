/*
 * "ddialab txn stress": real threads run a workload's transactions on one engine for a while;
 * the run reports throughput, aborts by reason and the workload's broken invariants, and with
 * --check records the history and names the anomalies of Adya's that the checker finds in it.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ddialab/flags.h"
#include "txn/cli.h"
#include "txn/history.h"
#include "txn/workload.h"

static const char usage[] =
    "ddialab txn stress [--workload bank|counter|write-skew|phantom] [--isolation LEVEL]\n"
    "                          [--threads N] [--duration D] [--check] [--json] [--expect-none]\n\n"
    "Real threads run transactions on one engine. Levels: read-uncommitted, read-committed,\n"
    "snapshot (repeatable-read), serial, 2pl, ssi (serializable). Workloads:\n"
    "  bank        transfers between accounts; audits must see the starting total\n"
    "  counter     read-then-write increments; lost updates counted\n"
    "  write-skew  doctors go off call if both of their shift are on; nobody on call is a bug\n"
    "  phantom     book a slot if a predicate read finds it free; a double booking is a bug\n"
    "Exit status: 0; 1 with --expect-none when a violation or anomaly was found, and always when\n"
    "the run failed (out of memory, threads still blocked after the end); 2 bad usage";

/* After the duration, how long threads may take to finish the transactions they are in. */
#define DRAIN_SECONDS 10

typedef struct options_s {
    char *workload, *isolation;
    int64_t threads, duration_ms, keys, audits, seed, examples;
    int check, json, yield, expect_none;
} options_t;

typedef struct slot_s {
    dl_txn_worker_t worker;
    pthread_t thread;
    atomic_int *finished, *failed;
} slot_t;

typedef struct run_s {
    options_t opt;
    dl_txn_workload_t workload;
    dl_txn_level_t level;
    dl_txn_engine_t *engine;
    dl_txn_hist_t *hist;
    slot_t *slots;
    atomic_int stop, finished, failed;
    double seconds;       /* from the start until every thread finished */
    dl_txn_stats_t total; /* summed over the threads */
    dl_txn_verdict_t verdict;
    dl_txn_hist_report_t report;
    int checked;
} run_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* A short name for an abort reason, for JSON. */
static const char *reason_name(unsigned reason, char *buf, size_t len)
{
    switch (reason) {
    case DL_TXN_ERR_SERIALIZATION:
        return "serialization";
    case DL_TXN_ERR_DUPLICATE_KEY:
        return "duplicate_key";
    case DL_TXN_ERR_NOT_ACTIVE:
        return "not_active";
    case DL_TXN_ERR_NO_MEMORY:
        return "no_memory";
    case DL_TXN_ERR_DEADLOCK:
        return "deadlock";
    case DL_TXN_ERR_SSI:
        return "ssi";
    case DL_TXN_ERR_NOT_INTEGER:
        return "not_integer";
    default:
        snprintf(buf, len, "error_%u", reason);
        return buf;
    }
}

/* ---- Options ----------------------------------------------------------------------------- */

/* Checks the flags and fills run->workload and run->level; -EINVAL with a one-line err. */
static int validate(run_t *run, char *err, size_t errlen)
{
    const options_t *o = &run->opt;
    if (dl_txn_workload_parse(o->workload, &run->workload.kind) != 0) {
        snprintf(err, errlen, "unknown workload '%s' (bank, counter, write-skew, phantom)",
                 o->workload);
        return -EINVAL;
    }
    if (dl_txn_level_parse(o->isolation, &run->level) != 0) {
        snprintf(err, errlen,
                 "unknown isolation level '%s' (read-uncommitted, read-committed, snapshot, "
                 "repeatable-read, serial, 2pl, ssi, serializable)",
                 o->isolation);
        return -EINVAL;
    }
    int64_t keys = o->keys ? o->keys : dl_txn_workload_default_keys(run->workload.kind);
    int64_t least = run->workload.kind == DL_TXN_WORKLOAD_BANK ? 2 : 1;
    if (o->threads < 1 || o->threads > 256)
        snprintf(err, errlen, "--threads must be between 1 and 256");
    else if (o->duration_ms < 1 || o->duration_ms > 3600000)
        snprintf(err, errlen, "--duration must be between 1ms and 1h");
    else if (keys < least || keys > 1000000)
        snprintf(err, errlen, "--keys must be between %" PRId64 " and 1000000 for %s", least,
                 o->workload);
    else if (o->audits < 0 || o->audits > 100)
        snprintf(err, errlen, "--audits must be a percentage, 0 to 100");
    else if (o->examples < 1 || o->examples > 1000)
        snprintf(err, errlen, "--examples must be between 1 and 1000");
    else if (o->seed < 0)
        snprintf(err, errlen, "--seed must be 0 (from the clock) or more");
    if (err[0] != '\0')
        return -EINVAL;
    run->workload.keys = keys;
    run->workload.audit_percent = o->audits;
    run->workload.threads = (int)o->threads;
    return 0;
}

/* ---- The run ----------------------------------------------------------------------------- */

static void *work(void *arg)
{
    slot_t *slot = arg;
    while (!atomic_load(slot->worker.stop))
        if (dl_txn_workload_step(&slot->worker) != 0) {
            atomic_store(slot->failed, 1);
            break;
        }
    atomic_fetch_add(slot->finished, 1);
    return NULL;
}

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t committed_so_far(const run_t *run, uint64_t *aborted)
{
    uint64_t n = 0;
    *aborted = 0;
    for (int64_t i = 0; i < run->opt.threads; i++) {
        n += atomic_load(&run->slots[i].worker.stats.committed);
        *aborted += atomic_load(&run->slots[i].worker.stats.aborted);
    }
    return n;
}

/*
 * Starts the threads, lets them run for the duration (a progress line a second on stderr for
 * runs of 5 s or more), stops them and waits for them. -ETIMEDOUT when threads are still blocked
 * DRAIN_SECONDS after the end (they are left running: the process is about to exit).
 */
static int run_threads(run_t *run)
{
    int64_t n = run->opt.threads;
    for (int64_t i = 0; i < n; i++) {
        slot_t *s = &run->slots[i];
        s->worker.engine = run->engine;
        s->worker.level = run->level;
        s->worker.workload = &run->workload;
        s->worker.hist = run->hist;
        s->worker.stop = &run->stop;
        s->worker.thread = (int)i;
        s->worker.yield = run->opt.yield;
        s->worker.rng = splitmix((uint64_t)run->opt.seed * 1000003u + (uint64_t)i) | 1;
        s->finished = &run->finished;
        s->failed = &run->failed;
    }
    double start = now(), end = start + (double)run->opt.duration_ms / 1000.0;
    int64_t started = 0;
    for (; started < n; started++)
        if (pthread_create(&run->slots[started].thread, NULL, work, &run->slots[started]) != 0)
            break;
    if (started < n)
        atomic_store(&run->stop, 1);
    int progress = run->opt.duration_ms >= 5000;
    double next_line = start + 1.0;
    for (double t = now(); t < end && !atomic_load(&run->stop); t = now()) {
        sleep_seconds(end - t < 0.05 ? end - t : 0.05);
        if (progress && now() >= next_line) {
            uint64_t aborted, committed = committed_so_far(run, &aborted);
            fprintf(stderr, "[%5.1f s] %" PRIu64 " committed, %" PRIu64 " aborted\n", now() - start,
                    committed, aborted);
            next_line += 1.0;
        }
    }
    atomic_store(&run->stop, 1);
    double deadline = now() + DRAIN_SECONDS;
    while (atomic_load(&run->finished) < started && now() < deadline)
        sleep_seconds(0.005);
    if (atomic_load(&run->finished) < started) {
        fprintf(stderr,
                "ddialab txn stress: %" PRId64 " of %" PRId64 " threads still wait for other "
                "transactions %d s after the end: a deadlock the engine did not detect?\n",
                started - atomic_load(&run->finished), started, DRAIN_SECONDS);
        return -ETIMEDOUT;
    }
    for (int64_t i = 0; i < started; i++)
        pthread_join(run->slots[i].thread, NULL);
    run->seconds = now() - start;
    if (started < n) {
        fprintf(stderr, "ddialab txn stress: cannot start thread %" PRId64 "\n", started + 1);
        return -EAGAIN;
    }
    return atomic_load(&run->failed) ? -ENOMEM : 0;
}

static void sum_stats(run_t *run)
{
    dl_txn_stats_t *t = &run->total;
    for (int64_t i = 0; i < run->opt.threads; i++) {
        const dl_txn_stats_t *s = &run->slots[i].worker.stats;
        t->committed += atomic_load(&s->committed);
        t->aborted += atomic_load(&s->aborted);
        for (int r = 0; r < DL_TXN_STRESS_REASONS; r++)
            t->aborts[r] += s->aborts[r];
        t->blocked += s->blocked;
        t->audits += s->audits;
        t->bad_audits += s->bad_audits;
        t->increments += s->increments;
        t->changes += s->changes;
    }
}

/* ---- Output ------------------------------------------------------------------------------ */

static double abort_rate(const run_t *run)
{
    uint64_t attempts = run->total.committed + run->total.aborted;
    return attempts ? (double)run->total.aborted / (double)attempts : 0.0;
}

static void print_summary(const run_t *run)
{
    const dl_txn_stats_t *t = &run->total;
    printf("stress      %s at %s: %" PRId64 " threads for %.2f s, seed %" PRId64 "%s\n",
           dl_txn_workload_name(run->workload.kind), dl_txn_level_name(run->level),
           run->opt.threads, run->seconds, run->opt.seed,
           run->opt.yield ? ", yielding between statements" : "");
    printf("workload    %s\n", run->verdict.description);
    printf("committed   %" PRIu64 " transactions, %.0f/s\n", t->committed,
           run->seconds > 0 ? (double)t->committed / run->seconds : 0.0);
    printf("aborted     %" PRIu64 " attempts, %.1f%% (retried)", t->aborted,
           100.0 * abort_rate(run));
    const char *sep = ": ";
    for (int r = 0; r < DL_TXN_STRESS_REASONS; r++)
        if (t->aborts[r] != 0) {
            printf("%s%s %" PRIu64, sep, dl_txn_error_message((dl_txn_error_t)r), t->aborts[r]);
            sep = ", ";
        }
    printf("\nwaited      %" PRIu64 " statements blocked on another transaction\n", t->blocked);
    if (run->verdict.n_violations == 0)
        printf("violations  none\n");
    else
        printf("violations  %" PRIu64 "\n", run->verdict.total);
    for (size_t i = 0; i < run->verdict.n_violations; i++)
        printf("  %-22s %s\n", run->verdict.violations[i].name, run->verdict.violations[i].what);
    if (!run->checked)
        return;
    const dl_txn_hist_report_t *r = &run->report;
    printf("check       %" PRIu64 " committed and %" PRIu64 " aborted transactions, %" PRIu64
           " operations, %" PRIu64 " dependency edges",
           r->n_committed, r->n_aborted, r->n_operations, r->n_edges);
    if (r->n_ambiguous != 0)
        printf(", %" PRIu64 " reads of unknown absent versions", r->n_ambiguous);
    printf("\n");
    char none[256] = "";
    for (int a = 0; a < DL_TXN_N_ANOMALIES; a++) {
        const char *name = dl_txn_anomaly_name((dl_txn_anomaly_t)a);
        if (r->count[a] == 0) {
            strncat(none, " ", sizeof(none) - strlen(none) - 1);
            strncat(none, name, sizeof(none) - strlen(none) - 1);
            continue;
        }
        printf("  %-16s %s%" PRIu64 ": %s\n", name, r->lower_bound[a] ? "at least " : "",
               r->count[a], dl_txn_anomaly_meaning((dl_txn_anomaly_t)a));
        for (size_t i = 0; i < r->n_examples; i++)
            if (r->examples[i].anomaly == (dl_txn_anomaly_t)a)
                printf("    %s\n", r->examples[i].text);
    }
    if (none[0] != '\0')
        printf("  none of        %s\n", none);
}

/* Sets obj[name] = value; jansson steals the reference and only fails out of memory. */
static int set(json_t *obj, const char *name, json_t *value)
{
    return json_object_set_new(obj, name, value);
}

static json_t *check_json(const dl_txn_hist_report_t *r)
{
    json_t *o = json_object(), *anomalies = json_object();
    int rv = set(o, "committed", json_integer((json_int_t)r->n_committed));
    rv |= set(o, "aborted", json_integer((json_int_t)r->n_aborted));
    rv |= set(o, "operations", json_integer((json_int_t)r->n_operations));
    rv |= set(o, "edges", json_integer((json_int_t)r->n_edges));
    rv |= set(o, "ambiguous_reads", json_integer((json_int_t)r->n_ambiguous));
    for (int a = 0; a < DL_TXN_N_ANOMALIES; a++) {
        json_t *one = json_object(), *examples = json_array();
        rv |= set(one, "count", json_integer((json_int_t)r->count[a]));
        rv |= set(one, "lower_bound", json_boolean(r->lower_bound[a]));
        for (size_t i = 0; i < r->n_examples; i++) {
            const dl_txn_hist_example_t *ex = &r->examples[i];
            if (ex->anomaly != (dl_txn_anomaly_t)a)
                continue;
            json_t *e = json_object(), *txns = json_array();
            for (size_t j = 0; j < ex->n_txns; j++)
                rv |= json_array_append_new(txns, json_integer((json_int_t)ex->txns[j]));
            rv |= set(e, "txns", txns);
            rv |= set(e, "text", json_string(ex->text));
            rv |= json_array_append_new(examples, e);
        }
        rv |= set(one, "examples", examples);
        rv |= set(anomalies, dl_txn_anomaly_name((dl_txn_anomaly_t)a), one);
    }
    rv |= set(o, "anomalies", anomalies);
    rv |= set(o, "total", json_integer((json_int_t)dl_txn_hist_report_total(r)));
    if (rv != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int print_json(const run_t *run)
{
    const dl_txn_stats_t *t = &run->total;
    json_t *o = json_object(), *aborts = json_object(), *violations = json_object();
    int rv = set(o, "workload", json_string(dl_txn_workload_name(run->workload.kind)));
    rv |= set(o, "level", json_string(dl_txn_level_name(run->level)));
    rv |= set(o, "threads", json_integer(run->opt.threads));
    rv |= set(o, "duration_s", json_real(run->seconds));
    rv |= set(o, "seed", json_integer(run->opt.seed));
    rv |= set(o, "yield", json_boolean(run->opt.yield));
    rv |= set(o, "keys", json_integer(run->workload.keys));
    rv |= set(o, "description", json_string(run->verdict.description));
    rv |= set(o, "committed", json_integer((json_int_t)t->committed));
    rv |= set(o, "aborted", json_integer((json_int_t)t->aborted));
    rv |= set(o, "txn_per_s",
              json_real(run->seconds > 0 ? (double)t->committed / run->seconds : 0.0));
    rv |= set(o, "abort_rate", json_real(abort_rate(run)));
    rv |= set(o, "blocked_statements", json_integer((json_int_t)t->blocked));
    for (unsigned r = 0; r < DL_TXN_STRESS_REASONS; r++) {
        char buf[32];
        if (t->aborts[r] != 0)
            rv |= set(aborts, reason_name(r, buf, sizeof(buf)),
                      json_integer((json_int_t)t->aborts[r]));
    }
    rv |= set(o, "aborts", aborts);
    rv |= set(o, "audits", json_integer((json_int_t)t->audits));
    if (run->workload.kind == DL_TXN_WORKLOAD_COUNTER)
        rv |= set(o, "increments", json_integer((json_int_t)t->increments));
    rv |= set(o, "final_value", json_integer(run->verdict.final_value));
    rv |= set(o, "expected_value", json_integer(run->verdict.expected));
    for (size_t i = 0; i < run->verdict.n_violations; i++)
        rv |= set(violations, run->verdict.violations[i].name,
                  json_integer((json_int_t)run->verdict.violations[i].count));
    rv |= set(o, "violations", violations);
    rv |= set(o, "violations_total", json_integer((json_int_t)run->verdict.total));
    if (run->checked) {
        json_t *check = check_json(&run->report);
        rv |= check == NULL ? -1 : set(o, "check", check);
    }
    if (rv == 0)
        rv = json_dumpf(o, stdout, JSON_COMPACT);
    json_decref(o);
    if (rv != 0)
        return -ENOMEM;
    printf("\n");
    return 0;
}

/* ---- Entry ------------------------------------------------------------------------------- */

static void out_of_memory(void)
{
    fprintf(stderr, "ddialab txn stress: out of memory\n");
}

int dl_txn_stress_main(int argc, char **argv)
{
    run_t *run = calloc(1, sizeof(*run));
    if (run == NULL) {
        out_of_memory();
        return 1;
    }
    options_t *o = &run->opt;
    *o = (options_t){.workload = "bank",
                     .isolation = "read-committed",
                     .threads = 4,
                     .duration_ms = 2000,
                     .audits = 15,
                     .examples = 10,
                     .yield = 1};
    dl_flag_t flags[] = {
        {"workload", DL_FLAG_STRING, &o->workload, "bank, counter, write-skew or phantom"},
        {"isolation", DL_FLAG_STRING, &o->isolation,
         "read-uncommitted, read-committed, snapshot, serial, 2pl or ssi"},
        {"threads", DL_FLAG_INT, &o->threads, "threads, each running one transaction at a time"},
        {"duration", DL_FLAG_DURATION, &o->duration_ms,
         "how long to run (250ms, 2s, 1m); a progress line a second from 5s on"},
        {"keys", DL_FLAG_INT, &o->keys,
         "accounts, counters, shifts or slots (0: 8, 4, 2, 2); fewer collide more"},
        {"audits", DL_FLAG_INT, &o->audits, "percent of transactions that are audits"},
        {"check", DL_FLAG_BOOL, &o->check,
         "record the history and check it for Adya's anomalies (G0 ... G2)"},
        {"examples", DL_FLAG_INT, &o->examples, "cycles or reads named per anomaly by --check"},
        {"json", DL_FLAG_BOOL, &o->json, "print one JSON object instead of the summary"},
        {"seed", DL_FLAG_INT, &o->seed, "seed of the threads' choices (0: from the clock)"},
        {"yield", DL_FLAG_BOOL, &o->yield,
         "yield the CPU between statements so that transactions interleave (--no-yield: not)"},
        {"expect-none", DL_FLAG_BOOL, &o->expect_none,
         "exit 1 when any violation or anomaly was found"},
        {NULL, 0, NULL, NULL},
    };
    char err[512] = "";
    int next, status = 1;
    int rv = dl_flags_parse(usage, flags, argc, argv, 1, &next, err, sizeof(err));
    if (rv == 0 && next < argc) {
        snprintf(err, sizeof(err), "unexpected argument '%s' (see --help)", argv[next]);
        rv = -EINVAL;
    }
    if (rv == 0)
        rv = validate(run, err, sizeof(err));
    if (rv != 0) {
        if (rv != 1) /* 1: --help was printed */
            fprintf(stderr, "ddialab txn stress: %s\n", err);
        status = rv == 1 ? 0 : 2;
        goto err_after_run;
    }
    if (o->seed == 0)
        o->seed =
            (int64_t)(splitmix((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32)) % 1000000) + 1;

    if ((run->engine = dl_txn_engine_new()) == NULL) {
        out_of_memory();
        goto err_after_run;
    }
    if (o->check && (run->hist = dl_txn_hist_new()) == NULL) {
        out_of_memory();
        goto err_after_engine;
    }
    if ((run->slots = calloc((size_t)o->threads, sizeof(*run->slots))) == NULL ||
        dl_txn_workload_setup(&run->workload, run->engine, run->hist) != 0) {
        out_of_memory();
        goto err_after_hist;
    }
    rv = run_threads(run);
    if (rv == -ETIMEDOUT)
        return 1; /* threads still use the engine: leave everything to the exit */
    if (rv != 0) {
        if (rv == -ENOMEM)
            out_of_memory();
        goto err_after_hist;
    }
    sum_stats(run);
    if (dl_txn_workload_verdict(&run->workload, run->engine, &run->total, &run->verdict) != 0) {
        out_of_memory();
        goto err_after_hist;
    }
    if (o->check) {
        dl_txn_hist_options_t opts = {.max_examples = (size_t)o->examples};
        rv = dl_txn_hist_check(run->hist, &opts, &run->report);
        if (rv != 0) {
            fprintf(stderr, "ddialab txn stress: cannot check the history: %s\n",
                    rv == -ENOMEM ? "out of memory" : "incomplete (out of memory while recording)");
            goto err_after_hist;
        }
        run->checked = 1;
    }
    if (o->json && print_json(run) != 0) {
        out_of_memory();
        goto err_after_report;
    }
    if (!o->json)
        print_summary(run);
    uint64_t found = run->verdict.total;
    if (run->checked)
        found += dl_txn_hist_report_total(&run->report);
    status = o->expect_none && found > 0 ? 1 : 0;

err_after_report:
    if (run->checked)
        dl_txn_hist_report_free(&run->report);
err_after_hist:
    dl_txn_hist_free(run->hist);
err_after_engine:
    dl_txn_engine_free(run->engine);
err_after_run:
    free(run->slots);
    free(run);
    return status;
}
