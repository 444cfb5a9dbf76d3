/*
 * Small pieces of the simulator: the random number generator, hashing, accessors, failing and
 * tracing.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- Random numbers --------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng_t *g, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(sim_rng_t *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sim_rng_below(sim_rng_t *g, uint64_t n)
{
    return sim_rng_next(g) % n; /* the bias is irrelevant here */
}

uint64_t sim_rng_range(sim_rng_t *g, uint64_t lo, uint64_t hi)
{
    return lo + sim_rng_below(g, hi - lo + 1);
}

int sim_rng_chance(sim_rng_t *g, unsigned permille)
{
    return sim_rng_below(g, 1000) < permille;
}

/* ---- Hashing ------------------------------------------------------------------------------ */

uint64_t sim_hash_u64(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    return splitmix64(&h);
}

uint64_t sim_hash_bytes(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t f = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        f = (f ^ b[i]) * 0x100000001b3ULL;
    return sim_hash_u64(sim_hash_u64(h, len), f);
}

/* ---- Accessors ---------------------------------------------------------------------------- */

const sim_options_t *sim_world_options(const struct sim_world *w)
{
    return &w->opt;
}

sim_result_t *sim_world_result(struct sim_world *w)
{
    return w->res;
}

struct sim_node *sim_world_node(struct sim_world *w, size_t i)
{
    return &w->nodes[i];
}

size_t sim_world_n_nodes(const struct sim_world *w)
{
    return w->n;
}

uint64_t sim_world_now(const struct sim_world *w)
{
    return w->now;
}

void *sim_world_checker(struct sim_world *w)
{
    return w->checker;
}

void sim_world_set_checker(struct sim_world *w, void *c)
{
    w->checker = c;
}

/* ---- Failing and tracing ------------------------------------------------------------------ */

void sim_fail(struct sim_world *w, const char *fmt, ...)
{
    if (w->res->failed)
        return; /* the first violation is the one to report */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->res->message, sizeof(w->res->message), fmt, ap);
    va_end(ap);
    w->res->failed = 1;
    w->res->fail_time_ms = w->now;
    w->stop = 1;
    if (w->opt.verbose)
        fprintf(w->opt.trace, "%8" PRIu64 " VIOLATION: %s\n", w->now, w->res->message);
}

static const char *role_tag(const struct sim_node *n)
{
    if (!n->up)
        return "--";
    switch (dl_raft_role(n->r)) {
    case DL_RAFT_LEADER:
        return "L ";
    case DL_RAFT_CANDIDATE:
        return "C ";
    case DL_RAFT_PRE_CANDIDATE:
        return "PC";
    default:
        return "F ";
    }
}

void sim_trace(struct sim_world *w, struct sim_node *n, const char *fmt, ...)
{
    if (!w->opt.verbose)
        return;
    FILE *f = w->opt.trace;
    if (n == NULL) {
        fprintf(f, "%8" PRIu64 " ---                                   | ", w->now);
    } else if (!n->up) {
        fprintf(f, "%8" PRIu64 " n%" PRIu64 " -- down  log %" PRIu64 "/%" PRIu64 "%*s| ", w->now,
                n->id, n->last, n->durable, 14, "");
    } else {
        char buf[64];
        snprintf(buf, sizeof(buf), "t%" PRIu64 " c%" PRIu64 " a%" PRIu64 " l%" PRIu64 "/%" PRIu64,
                 dl_raft_term(n->r), dl_raft_commit_index(n->r), n->sm_applied, n->last,
                 n->durable);
        fprintf(f, "%8" PRIu64 " n%" PRIu64 " %s %-30s| ", w->now, n->id, role_tag(n), buf);
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

static const char *msg_name(uint8_t t)
{
    static const char *names[] = {"?",         "APPEND",       "APPEND_RESP",   "VOTE",
                                  "VOTE_RESP", "PRE_VOTE",     "PRE_VOTE_RESP", "TIMEOUT_NOW",
                                  "SNAPSHOT",  "SNAPSHOT_RESP"};
    return t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

void sim_describe_msg(const dl_raft_msg_t *m, char *buf, size_t len)
{
    switch (m->type) {
    case DL_RAFT_MSG_APPEND:
        snprintf(buf, len,
                 "APPEND n%" PRIu64 "->n%" PRIu64 " term %" PRIu64 " prev %" PRIu64 "/%" PRIu64
                 " entries %" PRIu32 " commit %" PRIu64,
                 m->from, m->to, m->term, m->prev_index, m->prev_term, m->n_entries, m->commit);
        break;
    case DL_RAFT_MSG_APPEND_RESP:
        snprintf(buf, len,
                 "APPEND_RESP n%" PRIu64 "->n%" PRIu64 " term %" PRIu64 " %s match %" PRIu64
                 " hint %" PRIu64 " last %" PRIu64 "/%" PRIu64,
                 m->from, m->to, m->term, m->reject ? "REJECT" : "ok", m->match_index,
                 m->hint_index, m->last_index, m->last_term);
        break;
    case DL_RAFT_MSG_SNAPSHOT:
    case DL_RAFT_MSG_SNAPSHOT_RESP:
        snprintf(buf, len,
                 "%s n%" PRIu64 "->n%" PRIu64 " term %" PRIu64 "%s snap %" PRIu64 "/%" PRIu64
                 " offset %" PRIu64 " len %" PRIu32 " of %" PRIu64,
                 msg_name(m->type), m->from, m->to, m->term, m->reject ? " REJECT" : "",
                 m->snap_index, m->snap_term, m->snap_offset, m->data_len, m->snap_size);
        break;
    default:
        snprintf(buf, len,
                 "%s n%" PRIu64 "->n%" PRIu64 " term %" PRIu64 "%s%s last %" PRIu64 "/%" PRIu64,
                 msg_name(m->type), m->from, m->to, m->term,
                 (m->type % 2 == 0) ? (m->reject ? " REJECT" : " GRANT") : "",
                 m->force ? " force" : "", m->last_index, m->last_term);
        break;
    }
}

/* Grows *a (zero-filled) so that index is a valid slot; aborts when out of memory. */
void sim_applied_reserve(struct sim_applied **a, size_t *cap, uint64_t index)
{
    if (index < *cap)
        return;
    size_t c = *cap ? *cap : 256;
    while (c <= index)
        c *= 2;
    *a = realloc(*a, c * sizeof(**a));
    if (*a == NULL)
        abort();
    memset(*a + *cap, 0, (c - *cap) * sizeof(**a));
    *cap = c;
}
