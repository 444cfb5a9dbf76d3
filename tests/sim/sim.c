/*
 * raft_sim: runs the deterministic Raft simulation over one seed or a range of seeds.
 *
 *   raft_sim --seeds 500 --mode both --nodes mix      many seeds, progress, one line per failure
 *   raft_sim --seed 1234 --mode elections --nodes 3 --verbose     replay one seed with a trace
 *   raft_sim --seed 7 --check-determinism             run a seed twice, compare event hashes
 *
 * Exit status: 0 when every seed passed, 1 on any violation, 2 on bad usage.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#define DEFAULT_FAULT_MS 20000

static const char *usage_text =
    "usage: raft_sim [--seed S | --seeds N [--first-seed F]] [--mode static|elections|both]\n"
    "                [--nodes 3|5|mix] [--fault-ms MS] [--verbose] [--progress N]\n"
    "                [--check-determinism]\n"
    "  --seed S          run seed S only (default 1)\n"
    "  --seeds N         run seeds F..F+N-1 (F from --first-seed, default 1)\n"
    "  --mode M          static: elections off, node 1 leads, operators promote; elections:\n"
    "                    Raft elections (liveness checked after healing); both: even seeds\n"
    "                    static, odd seeds elections (default)\n"
    "  --nodes N         cluster size 1..7, or mix: 3 or 5 by seed (default 3)\n"
    "  --fault-ms MS     simulated length of the fault phase (default 20000)\n"
    "  --verbose         print every event of the run (use with --seed)\n"
    "  --progress N      a progress line every N seeds (default: about every 10%)\n"
    "  --check-determinism  run every seed twice and compare the hash of all events\n"

    "  --inject BUG      checker self-test with a broken disk, which must fail: lose-synced\n"
    "                    (a crash loses synced entries), forget-vote (a crash loses the vote)\n";

static char crash_line[512];

/* The core or the simulator crashed: say which seed, so that it can be replayed. */
static void on_fatal_signal(int sig)
{
    ssize_t rv = write(STDERR_FILENO, crash_line, strlen(crash_line));
    (void)rv;
    signal(sig, SIG_DFL);
    raise(sig);
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *mode_name(sim_mode_t m)
{
    return m == SIM_ELECTIONS ? "elections" : "static";
}

static void replay_command(char *buf, size_t len, const char *argv0, const sim_options_t *o)
{
    char extra[96] = "";
    if (o->fault_ms != DEFAULT_FAULT_MS)
        snprintf(extra, sizeof(extra), " --fault-ms %" PRIu64, o->fault_ms);
    if (o->inject)
        snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), " --inject %s",
                 o->inject == SIM_INJECT_LOSE_SYNCED ? "lose-synced" : "forget-vote");
    snprintf(buf, len, "%s --seed %" PRIu64 " --mode %s --nodes %d%s", argv0, o->seed,
             mode_name(o->mode), o->nodes, extra);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || *s == '\0')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "raft_sim: %s%s%s (see --help)\n", msg, arg ? ": " : "", arg ? arg : "");
    return 2;
}

/* Does the core elect at all? A quiet three-node cluster with elections, no faults. */
int main(int argc, char **argv)
{
    uint64_t seed = 1, first = 1, count = 0, fault_ms = DEFAULT_FAULT_MS, progress = 0;
    int single = 0, verbose = 0, determinism = 0, inject = 0;
    int mode = -1; /* -1: both */
    int nodes = 3; /* 0: mix */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_u64(v, &seed))
                return usage_error("--seed needs a number", v);
            single = 1;
            i++;
        } else if (strcmp(a, "--seeds") == 0) {
            if (parse_u64(v, &count) || count == 0)
                return usage_error("--seeds needs a positive number", v);
            i++;
        } else if (strcmp(a, "--first-seed") == 0) {
            if (parse_u64(v, &first))
                return usage_error("--first-seed needs a number", v);
            i++;
        } else if (strcmp(a, "--mode") == 0) {
            if (v && strcmp(v, "static") == 0)
                mode = SIM_STATIC;
            else if (v && strcmp(v, "elections") == 0)
                mode = SIM_ELECTIONS;
            else if (v && strcmp(v, "both") == 0)
                mode = -1;
            else
                return usage_error("--mode is static, elections or both", v);
            i++;
        } else if (strcmp(a, "--nodes") == 0) {
            uint64_t n;
            if (v && strcmp(v, "mix") == 0)
                nodes = 0;
            else if (parse_u64(v, &n) == 0 && n >= 1 && n <= SIM_MAX_NODES)
                nodes = (int)n;
            else
                return usage_error("--nodes is 1..7 or mix", v);
            i++;
        } else if (strcmp(a, "--fault-ms") == 0) {
            if (parse_u64(v, &fault_ms))
                return usage_error("--fault-ms needs a number", v);
            i++;
        } else if (strcmp(a, "--progress") == 0) {
            if (parse_u64(v, &progress))
                return usage_error("--progress needs a number", v);
            i++;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            verbose = 1;
        } else if (strcmp(a, "--check-determinism") == 0) {
            determinism = 1;
        } else if (strcmp(a, "--inject") == 0) {
            if (v && strcmp(v, "lose-synced") == 0)
                inject = SIM_INJECT_LOSE_SYNCED;
            else if (v && strcmp(v, "forget-vote") == 0)
                inject = SIM_INJECT_FORGET_VOTE;
            else
                return usage_error("--inject is lose-synced or forget-vote", v);
            i++;
        } else {
            return usage_error("unknown option", a);
        }
    }
    if (single && count)
        return usage_error("--seed and --seeds exclude each other", NULL);
    if (single) {
        first = seed;
        count = 1;
    } else if (count == 0) {
        count = 1;
    }
    if (progress == 0)
        progress = count >= 20 ? count / 10 : count + 1;

    signal(SIGSEGV, on_fatal_signal);
    signal(SIGABRT, on_fatal_signal);
    signal(SIGFPE, on_fatal_signal);
    signal(SIGBUS, on_fatal_signal);

    double t0 = wall_seconds();
    uint64_t failures = 0, runs[2] = {0, 0}, proposals = 0, committed = 0, lost = 0, events = 0,
             confs = 0;
    uint64_t live_max = 0, live_sum = 0, live_n = 0, conv_max = 0, conv_sum = 0;
    uint64_t conv_seed = 0, ratio_seed = 0;
    double ratio_max = 0;
    for (uint64_t k = 0; k < count; k++) {
        uint64_t s = first + k;
        sim_options_t o = {
            .seed = s, .fault_ms = fault_ms, .verbose = verbose, .trace = stdout, .inject = inject};
        o.mode = mode >= 0 ? (sim_mode_t)mode : (s % 2 ? SIM_ELECTIONS : SIM_STATIC);
        o.nodes = nodes ? nodes : ((s >> 1) % 2 ? 5 : 3);
        char replay[400];
        replay_command(replay, sizeof(replay), argv[0], &o);
        snprintf(crash_line, sizeof(crash_line),
                 "\nraft_sim: crashed running seed %" PRIu64 "; replay: %s --verbose\n", s, replay);
        sim_result_t r;
        sim_run(&o, &r);
        runs[o.mode]++;
        events += r.events;
        proposals += r.proposals;
        committed += r.committed;
        lost += r.lost_applied;
        confs += r.membership_changes;
        if (o.mode == SIM_ELECTIONS && !r.failed) {
            live_sum += r.liveness_ms;
            live_n++;
            if (r.liveness_ms > live_max)
                live_max = r.liveness_ms;
            conv_sum += r.converge_ms;
            if (r.converge_ms > conv_max) {
                conv_max = r.converge_ms;
                conv_seed = s;
            }
            double ratio = r.bound_ms ? (double)r.liveness_ms / (double)r.bound_ms : 0;
            if (ratio > ratio_max) {
                ratio_max = ratio;
                ratio_seed = s;
            }
        }
        if (determinism && !r.failed) {
            sim_options_t o2 = o;
            o2.verbose = 0;
            sim_result_t r2;
            sim_run(&o2, &r2);
            if (r2.hash != r.hash || r2.events != r.events) {
                r.failed = 1;
                snprintf(r.message, sizeof(r.message),
                         "not deterministic: hash %016" PRIx64 " after %" PRIu64
                         " events, then %016" PRIx64 " after %" PRIu64 " events",
                         r.hash, r.events, r2.hash, r2.events);
            } else if (count == 1) {
                printf("raft_sim: seed %" PRIu64 " (%s, %d nodes) is deterministic: hash "
                       "%016" PRIx64 " after %" PRIu64 " events, twice\n",
                       s, mode_name(o.mode), o.nodes, r.hash, r.events);
            }
        }
        if (r.failed) {
            failures++;
            printf("FAIL seed %" PRIu64 " (%s, %d nodes) at %" PRIu64 " ms: %s\n  replay: %s "
                   "--verbose\n",
                   s, mode_name(o.mode), o.nodes, r.fail_time_ms, r.message, replay);
        } else if (count == 1) {
            printf("raft_sim: seed %" PRIu64 " (%s, %d nodes) passed: %" PRIu64 " events, %" PRIu64
                   " ms simulated, %" PRIu64 " of %" PRIu64 " proposals committed, %" PRIu64
                   " leaderships, max term %" PRIu64 ", %" PRIu64 " applied entries lost",
                   s, mode_name(o.mode), o.nodes, r.events, r.end_ms, r.committed, r.proposals,
                   r.leaders, r.max_term, r.lost_applied);
            if (o.mode == SIM_ELECTIONS)
                printf(", a proposal committed %" PRIu64 " ms after healing and was applied "
                       "everywhere after %" PRIu64 " ms",
                       r.liveness_ms, r.converge_ms);
            printf(" (hash %016" PRIx64 ")\n", r.hash);
        }
        if ((k + 1) % progress == 0 && k + 1 < count) {
            double el = wall_seconds() - t0;
            printf("raft_sim: %" PRIu64 "/%" PRIu64 " seeds, %.0f seeds/s, %" PRIu64
                   " failures so far\n",
                   k + 1, count, (double)(k + 1) / (el > 0 ? el : 1e-9), failures);
        }
        fflush(stdout);
    }
    double el = wall_seconds() - t0;
    if (count > 1) {
        printf("raft_sim: %" PRIu64 " seeds (%" PRIu64 " static, %" PRIu64 " elections) in %.2f s"
               " (%.0f seeds/s, %" PRIu64 " events): %" PRIu64 " failures; %" PRIu64 " of %" PRIu64
               " proposals committed, %" PRIu64
               " applied entries lost to promotions (static), %" PRIu64 " membership changes",
               count, runs[SIM_STATIC], runs[SIM_ELECTIONS], el, (double)count / el, events,
               failures, committed, proposals, lost, confs);
        if (live_n)
            printf("; after healing (elections) a proposal committed in %" PRIu64
                   " ms on average (%" PRIu64 " at most) and was applied everywhere in %" PRIu64
                   " ms (%" PRIu64 " at most, seed %" PRIu64 "); closest to the bound: "
                   "%.0f%% of it (seed %" PRIu64 ")",
                   live_sum / live_n, live_max, conv_sum / live_n, conv_max, conv_seed,
                   100 * ratio_max, ratio_seed);
        printf("\n");
    }
    return failures ? 1 : 0;
}
