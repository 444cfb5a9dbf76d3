/* The consumer-group coordinator (groups.h). */
#include "events/groups.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "events/protocol.h"

#define MIN_SESSION_TIMEOUT_MS 1000    /* Kafka's default minimum is 6 s; labs want faster */
#define MAX_SESSION_TIMEOUT_MS 1800000 /* Kafka's group.max.session.timeout.ms */
#define MAX_PENDING_IDS        1000    /* ids handed out with MEMBER_ID_REQUIRED, per group */

typedef struct member_s {
    char *id;
    char *client_id, *client_host;
    int32_t session_timeout_ms, rebalance_timeout_ms;
    dl_group_protocol_t *protocols; /* copies: names and metadata owned */
    size_t n_protocols;
    int64_t session_deadline;
    void *join_waiter; /* its JoinGroup waits for the rebalance to complete */
    void *sync_waiter; /* its SyncGroup waits for the leader's */
    uint8_t *assignment;
    size_t assignment_len;
} member_t;

typedef struct group_s {
    char *id;
    dl_group_state_t state;
    char *protocol_type;
    char *protocol; /* NULL before the first generation */
    int32_t generation;
    char *leader; /* a member id, NULL when none */
    member_t **members;
    size_t n_members;
    char **pending; /* ids handed out with MEMBER_ID_REQUIRED, not joined yet */
    size_t n_pending;
    int64_t rebalance_deadline;
} group_t;

struct dl_groups_s {
    dl_groups_callbacks_t cb;
    group_t **groups; /* sorted by id */
    size_t n;
    uint64_t next_member;
};

const char *dl_group_state_name(dl_group_state_t state)
{
    switch (state) {
    case DL_GROUP_EMPTY:
        return "Empty";
    case DL_GROUP_PREPARING_REBALANCE:
        return "PreparingRebalance";
    case DL_GROUP_COMPLETING_REBALANCE:
        return "CompletingRebalance";
    case DL_GROUP_STABLE:
        return "Stable";
    }
    return "Unknown";
}

dl_groups_t *dl_groups_new(const dl_groups_callbacks_t *callbacks)
{
    dl_groups_t *g = calloc(1, sizeof(*g));
    if (g != NULL)
        g->cb = *callbacks;
    return g;
}

static void free_protocols(member_t *m)
{
    for (size_t i = 0; i < m->n_protocols; i++) {
        free((char *)m->protocols[i].name);
        free((uint8_t *)m->protocols[i].metadata);
    }
    free(m->protocols);
    m->protocols = NULL;
    m->n_protocols = 0;
}

static void free_member(member_t *m)
{
    free_protocols(m);
    free(m->assignment);
    free(m->client_id);
    free(m->client_host);
    free(m->id);
    free(m);
}

static void free_group(group_t *gr)
{
    for (size_t i = 0; i < gr->n_members; i++)
        free_member(gr->members[i]);
    for (size_t i = 0; i < gr->n_pending; i++)
        free(gr->pending[i]);
    free(gr->pending);
    free(gr->members);
    free(gr->protocol_type);
    free(gr->protocol);
    free(gr->leader);
    free(gr->id);
    free(gr);
}

void dl_groups_free(dl_groups_t *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->n; i++)
        free_group(g->groups[i]);
    free(g->groups);
    free(g);
}

/* The group called id, created (Empty) when create is set; NULL when absent or out of memory. */
static group_t *find_group(dl_groups_t *g, const char *id, int create)
{
    size_t at = 0;
    for (; at < g->n; at++) {
        int c = strcmp(id, g->groups[at]->id);
        if (c == 0)
            return g->groups[at];
        if (c < 0)
            break;
    }
    if (!create)
        return NULL;
    group_t *gr = calloc(1, sizeof(*gr));
    group_t **groups = realloc(g->groups, (g->n + 1) * sizeof(*groups));
    if (gr == NULL || groups == NULL || (gr->id = strdup(id)) == NULL) {
        free(gr);
        if (groups != NULL)
            g->groups = groups;
        return NULL;
    }
    g->groups = groups;
    memmove(g->groups + at + 1, g->groups + at, (g->n - at) * sizeof(*g->groups));
    g->groups[at] = gr;
    g->n++;
    return gr;
}

static member_t *find_member(const group_t *gr, const char *id, size_t *index)
{
    for (size_t i = 0; i < gr->n_members; i++)
        if (strcmp(gr->members[i]->id, id) == 0) {
            if (index != NULL)
                *index = i;
            return gr->members[i];
        }
    return NULL;
}

static int supports(const member_t *m, const char *protocol)
{
    for (size_t i = 0; i < m->n_protocols; i++)
        if (strcmp(m->protocols[i].name, protocol) == 0)
            return 1;
    return 0;
}

/* Whether every member but skip supports protocol. */
static int all_support(const group_t *gr, const char *protocol, const member_t *skip)
{
    for (size_t i = 0; i < gr->n_members; i++)
        if (gr->members[i] != skip && !supports(gr->members[i], protocol))
            return 0;
    return 1;
}

/* The protocol every member supports with the most first-choice votes (ties: the leader's
 * order), or NULL. */
static const char *vote(const group_t *gr)
{
    const char *best = NULL;
    size_t best_votes = 0;
    const member_t *first = gr->n_members ? gr->members[0] : NULL;
    for (size_t p = 0; first != NULL && p < first->n_protocols; p++) {
        const char *candidate = first->protocols[p].name;
        if (!all_support(gr, candidate, NULL))
            continue;
        size_t votes = 0;
        for (size_t i = 0; i < gr->n_members; i++) {
            const member_t *m = gr->members[i];
            for (size_t k = 0; k < m->n_protocols; k++)
                if (all_support(gr, m->protocols[k].name, NULL)) {
                    votes += strcmp(m->protocols[k].name, candidate) == 0;
                    break; /* its first choice among the common ones */
                }
        }
        if (best == NULL || votes > best_votes) {
            best = candidate;
            best_votes = votes;
        }
    }
    return best;
}

static void answer_join_error(dl_groups_t *g, void *waiter, int16_t error, const char *member_id)
{
    dl_group_join_result_t r = {.error = error, .generation = -1, .member_id = member_id};
    g->cb.join_done(waiter, &r);
}

/* Every parked SyncGroup of gr gets error (a rebalance began, or the member left). */
static void fail_syncs(dl_groups_t *g, group_t *gr, int16_t error)
{
    for (size_t i = 0; i < gr->n_members; i++) {
        member_t *m = gr->members[i];
        if (m->sync_waiter != NULL) {
            void *w = m->sync_waiter;
            m->sync_waiter = NULL;
            g->cb.sync_done(w, error, NULL, 0);
        }
    }
}

static void start_rebalance(dl_groups_t *g, group_t *gr, int64_t now_ms)
{
    if (gr->state == DL_GROUP_PREPARING_REBALANCE)
        return;
    fail_syncs(g, gr, DL_KERR_REBALANCE_IN_PROGRESS);
    gr->state = DL_GROUP_PREPARING_REBALANCE;
    int32_t timeout = 0;
    for (size_t i = 0; i < gr->n_members; i++)
        if (gr->members[i]->rebalance_timeout_ms > timeout)
            timeout = gr->members[i]->rebalance_timeout_ms;
    gr->rebalance_deadline = now_ms + timeout;
}

/* Removes member index of gr (answering its parked requests with UNKNOWN_MEMBER_ID). */
static void remove_member(dl_groups_t *g, group_t *gr, size_t index)
{
    member_t *m = gr->members[index];
    gr->members[index] = gr->members[--gr->n_members];
    if (gr->leader != NULL && strcmp(gr->leader, m->id) == 0) {
        free(gr->leader);
        gr->leader = NULL;
    }
    if (m->join_waiter != NULL)
        answer_join_error(g, m->join_waiter, DL_KERR_UNKNOWN_MEMBER_ID, m->id);
    if (m->sync_waiter != NULL)
        g->cb.sync_done(m->sync_waiter, DL_KERR_UNKNOWN_MEMBER_ID, NULL, 0);
    free_member(m);
}

/*
 * Completes a rebalance once every member has rejoined, or when force is set (its timeout
 * passed: members that did not rejoin are removed). Answers every parked JoinGroup.
 */
static void try_complete_join(dl_groups_t *g, group_t *gr, int64_t now_ms, int force)
{
    if (gr->state != DL_GROUP_PREPARING_REBALANCE)
        return;
    for (size_t i = 0; i < gr->n_members; i++)
        if (gr->members[i]->join_waiter == NULL && !force)
            return;
    for (size_t i = gr->n_members; i-- > 0;)
        if (gr->members[i]->join_waiter == NULL)
            remove_member(g, gr, i);
    gr->generation++;
    free(gr->protocol);
    gr->protocol = NULL;
    if (gr->n_members == 0) {
        gr->state = DL_GROUP_EMPTY;
        return;
    }
    const char *chosen = vote(gr);
    gr->protocol = chosen ? strdup(chosen) : NULL;
    if (gr->leader == NULL)
        gr->leader = strdup(gr->members[0]->id);
    gr->state = DL_GROUP_COMPLETING_REBALANCE;
    dl_group_member_info_t *infos = calloc(gr->n_members, sizeof(*infos));
    for (size_t i = 0; infos != NULL && i < gr->n_members; i++) {
        const member_t *m = gr->members[i];
        infos[i].member_id = m->id;
        for (size_t k = 0; k < m->n_protocols; k++)
            if (gr->protocol != NULL && strcmp(m->protocols[k].name, gr->protocol) == 0) {
                infos[i].metadata = m->protocols[k].metadata;
                infos[i].metadata_len = m->protocols[k].metadata_len;
            }
    }
    /* The answers go out after the state is final: a callback may not call back in, but what
     * it sends must describe this generation. Out of memory (no infos, no leader or protocol
     * copy) fails every join; the members retry. */
    int ok = infos != NULL && gr->leader != NULL && gr->protocol != NULL;
    for (size_t i = 0; i < gr->n_members; i++) {
        member_t *m = gr->members[i];
        void *w = m->join_waiter;
        m->join_waiter = NULL;
        m->session_deadline = now_ms + m->session_timeout_ms;
        if (!ok) {
            answer_join_error(g, w, DL_KERR_UNKNOWN_SERVER_ERROR, m->id);
            continue;
        }
        int is_leader = strcmp(m->id, gr->leader) == 0;
        dl_group_join_result_t r = {.error = DL_KERR_NONE,
                                    .generation = gr->generation,
                                    .protocol = gr->protocol,
                                    .leader = gr->leader,
                                    .member_id = m->id,
                                    .members = is_leader ? infos : NULL,
                                    .n_members = is_leader ? gr->n_members : 0};
        g->cb.join_done(w, &r);
    }
    free(infos);
    if (!ok)
        start_rebalance(g, gr, now_ms);
}

/* Copies join's protocols into m (replacing its own); 0 or -1 out of memory. */
static int set_protocols(member_t *m, const dl_group_join_t *join)
{
    dl_group_protocol_t *p = calloc(join->n_protocols, sizeof(*p));
    if (p == NULL)
        return -1;
    for (size_t i = 0; i < join->n_protocols; i++) {
        uint8_t *meta = malloc(join->protocols[i].metadata_len + 1);
        p[i].name = strdup(join->protocols[i].name);
        if (meta == NULL || p[i].name == NULL) {
            free(meta);
            member_t tmp = {.protocols = p, .n_protocols = i + 1};
            free_protocols(&tmp);
            return -1;
        }
        memcpy(meta, join->protocols[i].metadata, join->protocols[i].metadata_len);
        p[i].metadata = meta;
        p[i].metadata_len = join->protocols[i].metadata_len;
    }
    free_protocols(m);
    m->protocols = p;
    m->n_protocols = join->n_protocols;
    return 0;
}

/* A new member id: the client id, a counter and a random part, as Kafka's are. */
static char *new_member_id(dl_groups_t *g, const char *client_id)
{
    char id[320];
    /* The random part comes from the kernel: ids must not repeat across broker restarts, or a
     * consumer that outlived one could pass for the new member given its old id. */
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    snprintf(id, sizeof(id), "%.200s-%llu-%016llx", client_id[0] ? client_id : "member",
             (unsigned long long)++g->next_member, (unsigned long long)r);
    return strdup(id);
}

static int take_pending(group_t *gr, const char *id)
{
    for (size_t i = 0; i < gr->n_pending; i++)
        if (strcmp(gr->pending[i], id) == 0) {
            free(gr->pending[i]);
            gr->pending[i] = gr->pending[--gr->n_pending];
            return 1;
        }
    return 0;
}

void dl_groups_join(dl_groups_t *g, int64_t now_ms, const dl_group_join_t *join, void *waiter)
{
    if (join->group_id[0] == '\0') {
        answer_join_error(g, waiter, DL_KERR_INVALID_GROUP_ID, join->member_id);
        return;
    }
    if (join->session_timeout_ms < MIN_SESSION_TIMEOUT_MS ||
        join->session_timeout_ms > MAX_SESSION_TIMEOUT_MS) {
        answer_join_error(g, waiter, DL_KERR_INVALID_SESSION_TIMEOUT, join->member_id);
        return;
    }
    group_t *gr = find_group(g, join->group_id, 1);
    if (gr == NULL) {
        answer_join_error(g, waiter, DL_KERR_UNKNOWN_SERVER_ERROR, join->member_id);
        return;
    }
    member_t *m = join->member_id[0] ? find_member(gr, join->member_id, NULL) : NULL;
    /* The protocols must fit the group's: the same type, and one that every other member
     * supports too. */
    int fits = join->protocol_type[0] != '\0' && join->n_protocols > 0 &&
               (gr->n_members == 0 || (m != NULL && gr->n_members == 1) ||
                (gr->protocol_type != NULL && strcmp(gr->protocol_type, join->protocol_type) == 0));
    int common = gr->n_members == 0 || (m != NULL && gr->n_members == 1);
    for (size_t i = 0; fits && !common && i < join->n_protocols; i++)
        common = all_support(gr, join->protocols[i].name, m);
    if (!fits || !common) {
        answer_join_error(g, waiter, DL_KERR_INCONSISTENT_GROUP_PROTOCOL, join->member_id);
        return;
    }
    if (m == NULL && join->member_id[0] == '\0' && join->require_known_member_id) {
        if (gr->n_pending >= MAX_PENDING_IDS) { /* a client looping on empty joins: the
                                                 * oldest unused ids go */
            free(gr->pending[0]);
            memmove(gr->pending, gr->pending + 1, (gr->n_pending - 1) * sizeof(*gr->pending));
            gr->n_pending--;
        }
        char *id = new_member_id(g, join->client_id);
        char **pending = id ? realloc(gr->pending, (gr->n_pending + 1) * sizeof(*pending)) : NULL;
        if (pending == NULL) {
            free(id);
            answer_join_error(g, waiter, DL_KERR_UNKNOWN_SERVER_ERROR, "");
            return;
        }
        gr->pending = pending;
        gr->pending[gr->n_pending++] = id;
        answer_join_error(g, waiter, DL_KERR_MEMBER_ID_REQUIRED, id);
        return;
    }
    if (m == NULL) {
        if (join->member_id[0] != '\0' && !take_pending(gr, join->member_id)) {
            answer_join_error(g, waiter, DL_KERR_UNKNOWN_MEMBER_ID, join->member_id);
            return;
        }
        m = calloc(1, sizeof(*m));
        member_t **members =
            m ? realloc(gr->members, (gr->n_members + 1) * sizeof(*members)) : NULL;
        if (members != NULL)
            gr->members = members;
        if (m == NULL || members == NULL ||
            (m->id = join->member_id[0] ? strdup(join->member_id)
                                        : new_member_id(g, join->client_id)) == NULL) {
            free(m);
            answer_join_error(g, waiter, DL_KERR_UNKNOWN_SERVER_ERROR, join->member_id);
            return;
        }
        gr->members[gr->n_members++] = m;
    }
    char *type = strdup(join->protocol_type);
    char *client_id = strdup(join->client_id ? join->client_id : "");
    char *client_host = strdup(join->client_host ? join->client_host : "");
    if (type == NULL || client_id == NULL || client_host == NULL || set_protocols(m, join) != 0) {
        free(type);
        free(client_id);
        free(client_host);
        answer_join_error(g, waiter, DL_KERR_UNKNOWN_SERVER_ERROR, m->id);
        return;
    }
    free(gr->protocol_type);
    gr->protocol_type = type;
    free(m->client_id);
    free(m->client_host);
    m->client_id = client_id;
    m->client_host = client_host;
    m->session_timeout_ms = join->session_timeout_ms;
    m->rebalance_timeout_ms =
        join->rebalance_timeout_ms > 0 ? join->rebalance_timeout_ms : join->session_timeout_ms;
    m->session_deadline = now_ms + m->session_timeout_ms;
    if (m->join_waiter != NULL) /* a second join from the same member: the newest one counts */
        answer_join_error(g, m->join_waiter, DL_KERR_REBALANCE_IN_PROGRESS, m->id);
    m->join_waiter = waiter;
    start_rebalance(g, gr, now_ms);
    try_complete_join(g, gr, now_ms, 0);
}

void dl_groups_sync(dl_groups_t *g, int64_t now_ms, const char *group_id, int32_t generation,
                    const char *member_id, const dl_group_member_info_t *assignments, size_t n,
                    void *waiter)
{
    group_t *gr = find_group(g, group_id, 0);
    member_t *m = gr ? find_member(gr, member_id, NULL) : NULL;
    if (m == NULL) {
        g->cb.sync_done(waiter, DL_KERR_UNKNOWN_MEMBER_ID, NULL, 0);
        return;
    }
    if (generation != gr->generation) {
        g->cb.sync_done(waiter, DL_KERR_ILLEGAL_GENERATION, NULL, 0);
        return;
    }
    if (gr->state == DL_GROUP_PREPARING_REBALANCE) {
        g->cb.sync_done(waiter, DL_KERR_REBALANCE_IN_PROGRESS, NULL, 0);
        return;
    }
    m->session_deadline = now_ms + m->session_timeout_ms;
    if (gr->state == DL_GROUP_STABLE) {
        g->cb.sync_done(waiter, DL_KERR_NONE, m->assignment, m->assignment_len);
        return;
    }
    /* CompletingRebalance: followers wait for the leader. */
    if (m->sync_waiter != NULL)
        g->cb.sync_done(m->sync_waiter, DL_KERR_REBALANCE_IN_PROGRESS, NULL, 0);
    m->sync_waiter = waiter;
    if (gr->leader == NULL || strcmp(gr->leader, member_id) != 0)
        return;
    for (size_t i = 0; i < gr->n_members; i++) {
        member_t *x = gr->members[i];
        free(x->assignment);
        x->assignment = NULL;
        x->assignment_len = 0;
        for (size_t k = 0; k < n; k++)
            if (strcmp(assignments[k].member_id, x->id) == 0 &&
                (x->assignment = malloc(assignments[k].metadata_len + 1)) != NULL) {
                memcpy(x->assignment, assignments[k].metadata, assignments[k].metadata_len);
                x->assignment_len = assignments[k].metadata_len;
            }
    }
    gr->state = DL_GROUP_STABLE;
    for (size_t i = 0; i < gr->n_members; i++) {
        member_t *x = gr->members[i];
        if (x->sync_waiter != NULL) {
            void *w = x->sync_waiter;
            x->sync_waiter = NULL;
            g->cb.sync_done(w, DL_KERR_NONE, x->assignment, x->assignment_len);
        }
    }
}

int16_t dl_groups_heartbeat(dl_groups_t *g, int64_t now_ms, const char *group_id,
                            int32_t generation, const char *member_id)
{
    group_t *gr = find_group(g, group_id, 0);
    member_t *m = gr ? find_member(gr, member_id, NULL) : NULL;
    if (m == NULL)
        return DL_KERR_UNKNOWN_MEMBER_ID;
    if (gr->state == DL_GROUP_PREPARING_REBALANCE) {
        m->session_deadline = now_ms + m->session_timeout_ms;
        return DL_KERR_REBALANCE_IN_PROGRESS;
    }
    if (generation != gr->generation)
        return DL_KERR_ILLEGAL_GENERATION;
    m->session_deadline = now_ms + m->session_timeout_ms;
    return DL_KERR_NONE;
}

/* After a member went: a rebalance for those left, or Empty. */
static void after_departure(dl_groups_t *g, group_t *gr, int64_t now_ms)
{
    if (gr->n_members == 0) {
        fail_syncs(g, gr, DL_KERR_REBALANCE_IN_PROGRESS);
        gr->state = DL_GROUP_EMPTY;
        free(gr->protocol);
        gr->protocol = NULL;
        gr->generation++;
        return;
    }
    start_rebalance(g, gr, now_ms);
    try_complete_join(g, gr, now_ms, 0);
}

int16_t dl_groups_leave(dl_groups_t *g, int64_t now_ms, const char *group_id, const char *member_id)
{
    group_t *gr = find_group(g, group_id, 0);
    size_t index;
    if (gr == NULL || find_member(gr, member_id, &index) == NULL)
        return DL_KERR_UNKNOWN_MEMBER_ID;
    remove_member(g, gr, index);
    after_departure(g, gr, now_ms);
    return DL_KERR_NONE;
}

int16_t dl_groups_check_commit(dl_groups_t *g, int64_t now_ms, const char *group_id,
                               int32_t generation, const char *member_id)
{
    group_t *gr = find_group(g, group_id, 0);
    if (generation < 0 && member_id[0] == '\0')
        return gr == NULL || gr->n_members == 0 ? DL_KERR_NONE : DL_KERR_UNKNOWN_MEMBER_ID;
    member_t *m = gr ? find_member(gr, member_id, NULL) : NULL;
    if (m == NULL)
        return DL_KERR_UNKNOWN_MEMBER_ID;
    if (gr->state == DL_GROUP_PREPARING_REBALANCE)
        return DL_KERR_REBALANCE_IN_PROGRESS;
    if (generation != gr->generation)
        return DL_KERR_ILLEGAL_GENERATION;
    m->session_deadline = now_ms + m->session_timeout_ms;
    return DL_KERR_NONE;
}

void dl_groups_tick(dl_groups_t *g, int64_t now_ms)
{
    for (size_t k = 0; k < g->n; k++) {
        group_t *gr = g->groups[k];
        int removed = 0;
        for (size_t i = gr->n_members; i-- > 0;) {
            member_t *m = gr->members[i];
            /* A member waiting in a rebalance is judged by the rebalance's timeout instead. */
            if (m->join_waiter == NULL && m->session_deadline <= now_ms) {
                remove_member(g, gr, i);
                removed = 1;
            }
        }
        if (removed)
            after_departure(g, gr, now_ms);
        if (gr->state == DL_GROUP_PREPARING_REBALANCE && gr->rebalance_deadline <= now_ms)
            try_complete_join(g, gr, now_ms, 1);
    }
}

int64_t dl_groups_next_deadline(const dl_groups_t *g)
{
    int64_t next = -1;
    for (size_t k = 0; k < g->n; k++) {
        const group_t *gr = g->groups[k];
        if (gr->state == DL_GROUP_PREPARING_REBALANCE &&
            (next < 0 || gr->rebalance_deadline < next))
            next = gr->rebalance_deadline;
        for (size_t i = 0; i < gr->n_members; i++) {
            const member_t *m = gr->members[i];
            if (m->join_waiter == NULL && (next < 0 || m->session_deadline < next))
                next = m->session_deadline;
        }
    }
    return next;
}

void dl_groups_forget_waiter(dl_groups_t *g, void *waiter)
{
    for (size_t k = 0; k < g->n; k++)
        for (size_t i = 0; i < g->groups[k]->n_members; i++) {
            member_t *m = g->groups[k]->members[i];
            if (m->join_waiter == waiter)
                m->join_waiter = NULL;
            if (m->sync_waiter == waiter)
                m->sync_waiter = NULL;
        }
}

static dl_group_view_t view_of(const group_t *gr)
{
    dl_group_view_t v = {.group_id = gr->id,
                         .state = gr->state,
                         .protocol_type = gr->protocol_type ? gr->protocol_type : "",
                         .protocol = gr->protocol ? gr->protocol : "",
                         .generation = gr->generation,
                         .leader = gr->leader ? gr->leader : "",
                         .n_members = gr->n_members};
    return v;
}

int dl_groups_describe(const dl_groups_t *g, const char *group_id,
                       void (*group_fn)(void *ctx, const dl_group_view_t *view),
                       void (*member_fn)(void *ctx, const dl_group_member_view_t *member),
                       void *ctx)
{
    const group_t *gr = find_group((dl_groups_t *)g, group_id, 0);
    if (gr == NULL)
        return -ENOENT;
    dl_group_view_t v = view_of(gr);
    group_fn(ctx, &v);
    for (size_t i = 0; i < gr->n_members; i++) {
        const member_t *m = gr->members[i];
        dl_group_member_view_t mv = {.member_id = m->id,
                                     .client_id = m->client_id ? m->client_id : "",
                                     .client_host = m->client_host ? m->client_host : "",
                                     .assignment = m->assignment,
                                     .assignment_len = m->assignment_len};
        for (size_t k = 0; k < m->n_protocols; k++)
            if (gr->protocol != NULL && strcmp(m->protocols[k].name, gr->protocol) == 0) {
                mv.metadata = m->protocols[k].metadata;
                mv.metadata_len = m->protocols[k].metadata_len;
            }
        member_fn(ctx, &mv);
    }
    return 0;
}

void dl_groups_each(const dl_groups_t *g, void (*fn)(void *ctx, const dl_group_view_t *view),
                    void *ctx)
{
    for (size_t k = 0; k < g->n; k++) {
        dl_group_view_t v = view_of(g->groups[k]);
        fn(ctx, &v);
    }
}
