/*
 * The consumer-group coordinator (events/groups.h) driven step by step with explicit time, as a
 * Kafka client would drive it: joins, MEMBER_ID_REQUIRED, rebalances, the leader's assignments
 * relayed by SyncGroup, heartbeats, session expiry, leaving, offset-commit checks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "events/groups.h"
#include "events/protocol.h"

/* What a parked request was answered with. */
typedef struct answer_s {
    int joins, syncs; /* how many times answered */
    int16_t error;
    int32_t generation;
    char protocol[64], leader[128], member_id[128];
    size_t n_members;
    char first_member_metadata[64];
    char assignment[64];
} answer_t;

static void on_join(void *waiter, const dl_group_join_result_t *r)
{
    answer_t *a = waiter;
    a->joins++;
    a->error = r->error;
    a->generation = r->generation;
    snprintf(a->protocol, sizeof(a->protocol), "%s", r->protocol ? r->protocol : "");
    snprintf(a->leader, sizeof(a->leader), "%s", r->leader ? r->leader : "");
    snprintf(a->member_id, sizeof(a->member_id), "%s", r->member_id ? r->member_id : "");
    a->n_members = r->n_members;
    a->first_member_metadata[0] = '\0';
    if (r->n_members > 0)
        snprintf(a->first_member_metadata, sizeof(a->first_member_metadata), "%.*s",
                 (int)r->members[0].metadata_len, (const char *)r->members[0].metadata);
}

static void on_sync(void *waiter, int16_t error, const uint8_t *assignment, size_t len)
{
    answer_t *a = waiter;
    a->syncs++;
    a->error = error;
    snprintf(a->assignment, sizeof(a->assignment), "%.*s", (int)len,
             assignment ? (const char *)assignment : "");
}

static int setup(void **state)
{
    dl_groups_callbacks_t cb = {.join_done = on_join, .sync_done = on_sync};
    *state = dl_groups_new(&cb);
    return *state == NULL;
}

static int teardown(void **state)
{
    dl_groups_free(*state);
    return 0;
}

static const dl_group_protocol_t RANGE[] = {{"range", (const uint8_t *)"topics:a", 8},
                                            {"roundrobin", (const uint8_t *)"topics:a", 8}};
static const dl_group_protocol_t ROUNDROBIN[] = {{"roundrobin", (const uint8_t *)"topics:b", 8}};
static const dl_group_protocol_t KAFKAJS[] = {{"RoundRobinAssigner", (const uint8_t *)"x", 1}};

/* A join of member_id ("" for new) to group "g" with session timeout 10 s. */
static void join(dl_groups_t *g, int64_t now, const char *member_id,
                 const dl_group_protocol_t *protocols, size_t n, answer_t *a)
{
    dl_group_join_t j = {.group_id = "g",
                         .member_id = member_id,
                         .client_id = "test",
                         .session_timeout_ms = 10000,
                         .rebalance_timeout_ms = 5000,
                         .protocol_type = "consumer",
                         .protocols = protocols,
                         .n_protocols = n};
    dl_groups_join(g, now, &j, a);
}

static void sync_as(dl_groups_t *g, int64_t now, const answer_t *joined, answer_t *a,
                    const dl_group_member_info_t *assignments, size_t n)
{
    dl_groups_sync(g, now, "g", joined->generation, joined->member_id, assignments, n, a);
}

static void test_a_first_member_gets_a_generation_at_once_and_leads(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0};
    join(g, 0, "", RANGE, 2, &a);
    assert_int_equal(a.joins, 1);
    assert_int_equal(a.error, DL_KERR_NONE);
    assert_int_equal(a.generation, 1);
    assert_string_equal(a.protocol, "range");
    assert_string_equal(a.leader, a.member_id);
    assert_int_equal(a.n_members, 1);
    assert_string_equal(a.first_member_metadata, "topics:a");
}

static void test_a_new_member_of_join_v4_first_gets_member_id_required(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0};
    dl_group_join_t j = {.group_id = "g",
                         .member_id = "",
                         .client_id = "rdkafka",
                         .require_known_member_id = 1,
                         .session_timeout_ms = 10000,
                         .protocol_type = "consumer",
                         .protocols = RANGE,
                         .n_protocols = 2};
    dl_groups_join(g, 0, &j, &a);
    assert_int_equal(a.error, DL_KERR_MEMBER_ID_REQUIRED);
    assert_non_null(strstr(a.member_id, "rdkafka-"));
    char id[128];
    snprintf(id, sizeof(id), "%s", a.member_id);
    j.member_id = id;
    dl_groups_join(g, 1, &j, &a);
    assert_int_equal(a.error, DL_KERR_NONE);
    assert_string_equal(a.member_id, id);
    j.member_id = "made-up";
    dl_groups_join(g, 2, &j, &a);
    assert_int_equal(a.error, DL_KERR_UNKNOWN_MEMBER_ID);
}

static void test_a_second_member_waits_until_the_first_rejoins(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0}, b = {0};
    join(g, 0, "", RANGE, 2, &a);
    join(g, 10, "", RANGE, 2, &b);
    assert_int_equal(b.joins, 0); /* parked: the rebalance needs a */
    assert_int_equal(dl_groups_heartbeat(g, 20, "g", a.generation, a.member_id),
                     DL_KERR_REBALANCE_IN_PROGRESS);
    char a_id[128];
    snprintf(a_id, sizeof(a_id), "%s", a.member_id);
    join(g, 30, a_id, RANGE, 2, &a);
    assert_int_equal(a.joins, 2);
    assert_int_equal(b.joins, 1);
    assert_int_equal(a.generation, 2);
    assert_int_equal(b.generation, 2);
    assert_string_equal(a.leader, a_id); /* the leader stays */
    assert_string_equal(b.leader, a_id);
    assert_int_equal(a.n_members, 2);
    assert_int_equal(b.n_members, 0); /* only the leader sees the members */
}

static void test_sync_relays_the_leaders_assignments_to_waiting_followers(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0}, b = {0};
    join(g, 0, "", RANGE, 2, &a);
    join(g, 1, "", RANGE, 2, &b);
    join(g, 2, a.member_id, RANGE, 2, &a);
    answer_t bs = {0}, as = {0};
    sync_as(g, 3, &b, &bs, NULL, 0);
    assert_int_equal(bs.syncs, 0); /* the follower waits for the leader */
    dl_group_member_info_t assignments[] = {{a.member_id, (const uint8_t *)"p0,p1", 5},
                                            {b.member_id, (const uint8_t *)"p2", 2}};
    sync_as(g, 4, &a, &as, assignments, 2);
    assert_int_equal(as.syncs, 1);
    assert_int_equal(bs.syncs, 1);
    assert_string_equal(as.assignment, "p0,p1");
    assert_string_equal(bs.assignment, "p2");
    assert_int_equal(dl_groups_heartbeat(g, 5, "g", b.generation, b.member_id), DL_KERR_NONE);
    assert_int_equal(dl_groups_heartbeat(g, 5, "g", b.generation - 1, b.member_id),
                     DL_KERR_ILLEGAL_GENERATION);
    answer_t stale = {0};
    dl_groups_sync(g, 6, "g", b.generation - 1, b.member_id, NULL, 0, &stale);
    assert_int_equal(stale.error, DL_KERR_ILLEGAL_GENERATION);
}

static void test_a_member_that_stops_heartbeating_is_removed_and_the_group_rebalances(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0}, b = {0}, as = {0}, bs = {0};
    join(g, 0, "", RANGE, 2, &a);
    join(g, 1, "", RANGE, 2, &b);
    join(g, 2, a.member_id, RANGE, 2, &a);
    sync_as(g, 3, &a, &as, NULL, 0);
    sync_as(g, 3, &b, &bs, NULL, 0);
    /* a heartbeats, b goes silent; b's session (10 s) ends at 10,003. */
    for (int64_t t = 3000; t <= 9000; t += 3000)
        assert_int_equal(dl_groups_heartbeat(g, t, "g", a.generation, a.member_id), DL_KERR_NONE);
    assert_int_equal(dl_groups_next_deadline(g), 10003);
    dl_groups_tick(g, 10002);
    assert_int_equal(dl_groups_heartbeat(g, 10002, "g", a.generation, a.member_id), DL_KERR_NONE);
    dl_groups_tick(g, 10003);
    assert_int_equal(dl_groups_heartbeat(g, 10004, "g", a.generation, a.member_id),
                     DL_KERR_REBALANCE_IN_PROGRESS);
    assert_int_equal(dl_groups_heartbeat(g, 10004, "g", b.generation, b.member_id),
                     DL_KERR_UNKNOWN_MEMBER_ID);
    int32_t before = a.generation;
    join(g, 10005, a.member_id, RANGE, 2, &a);
    assert_int_equal(a.error, DL_KERR_NONE);
    assert_int_equal(a.generation, before + 1);
    assert_int_equal(a.n_members, 1);
}

static void test_members_that_miss_a_rebalance_are_dropped_at_its_timeout(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0}, b = {0};
    join(g, 0, "", RANGE, 2, &a);
    join(g, 1, "", RANGE, 2, &b);
    join(g, 2, a.member_id, RANGE, 2, &a);
    /* a rejoins (a new rebalance); b, still within its session, never does. */
    join(g, 100, a.member_id, RANGE, 2, &a);
    assert_int_equal(a.joins, 2);
    assert_int_equal(dl_groups_next_deadline(g), 5100); /* the rebalance timeout, 5 s */
    dl_groups_tick(g, 5100);
    assert_int_equal(a.joins, 3);
    assert_int_equal(a.error, DL_KERR_NONE);
    assert_int_equal(a.n_members, 1);
}

static void test_a_member_without_a_common_protocol_is_refused(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0}, k = {0};
    join(g, 0, "", RANGE, 2, &a);
    join(g, 1, "", KAFKAJS, 1, &k);
    assert_int_equal(k.error, DL_KERR_INCONSISTENT_GROUP_PROTOCOL);
    assert_int_equal(dl_groups_heartbeat(g, 2, "g", a.generation, a.member_id), DL_KERR_NONE);
}

static void test_the_protocol_is_one_every_member_supports(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0}, b = {0};
    join(g, 0, "", RANGE, 2, &a);
    join(g, 1, "", ROUNDROBIN, 1, &b);
    join(g, 2, a.member_id, RANGE, 2, &a);
    assert_string_equal(a.protocol, "roundrobin");
    assert_string_equal(b.protocol, "roundrobin");
}

static void test_leaving_rebalances_the_rest_and_the_last_empties_the_group(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0}, b = {0};
    join(g, 0, "", RANGE, 2, &a);
    join(g, 1, "", RANGE, 2, &b);
    join(g, 2, a.member_id, RANGE, 2, &a);
    char a_id[128];
    snprintf(a_id, sizeof(a_id), "%s", a.member_id);
    assert_int_equal(dl_groups_leave(g, 3, "g", b.member_id), DL_KERR_NONE);
    assert_int_equal(dl_groups_leave(g, 3, "g", b.member_id), DL_KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(dl_groups_heartbeat(g, 4, "g", a.generation, a_id),
                     DL_KERR_REBALANCE_IN_PROGRESS);
    join(g, 5, a_id, RANGE, 2, &a);
    assert_int_equal(a.n_members, 1);
    assert_int_equal(dl_groups_leave(g, 6, "g", a_id), DL_KERR_NONE);
    /* Empty: a consumer that assigns itself may commit without membership. */
    assert_int_equal(dl_groups_check_commit(g, 7, "g", -1, ""), DL_KERR_NONE);
}

static void test_offset_commits_need_the_current_generation(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0}, as = {0};
    join(g, 0, "", RANGE, 2, &a);
    sync_as(g, 1, &a, &as, NULL, 0);
    assert_int_equal(dl_groups_check_commit(g, 2, "g", a.generation, a.member_id), DL_KERR_NONE);
    assert_int_equal(dl_groups_check_commit(g, 2, "g", a.generation + 1, a.member_id),
                     DL_KERR_ILLEGAL_GENERATION);
    assert_int_equal(dl_groups_check_commit(g, 2, "g", a.generation, "nobody"),
                     DL_KERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(dl_groups_check_commit(g, 2, "g", -1, ""), DL_KERR_UNKNOWN_MEMBER_ID);
}

static void test_a_forgotten_waiter_is_never_answered(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0}, b = {0};
    join(g, 0, "", RANGE, 2, &a);
    join(g, 1, "", RANGE, 2, &b);
    dl_groups_forget_waiter(g, &b); /* b's connection closed while it waited */
    join(g, 2, a.member_id, RANGE, 2, &a);
    dl_groups_tick(g, 6000); /* the rebalance times out without b */
    assert_int_equal(b.joins, 0);
    assert_int_equal(a.n_members, 1);
}

typedef struct seen_s {
    char state[32], protocol[32], members[256];
} seen_t;

static void seen_group(void *ctx, const dl_group_view_t *v)
{
    seen_t *s = ctx;
    snprintf(s->state, sizeof(s->state), "%s", dl_group_state_name(v->state));
    snprintf(s->protocol, sizeof(s->protocol), "%s", v->protocol);
}

static void seen_member(void *ctx, const dl_group_member_view_t *m)
{
    seen_t *s = ctx;
    size_t n = strlen(s->members);
    snprintf(s->members + n, sizeof(s->members) - n, "%s@%s meta=%.*s assigned=%.*s;", m->client_id,
             m->client_host, (int)m->metadata_len, (const char *)m->metadata,
             (int)m->assignment_len, m->assignment ? (const char *)m->assignment : "");
}

static void test_describe_shows_state_protocol_and_each_members_assignment(void **state)
{
    dl_groups_t *g = *state;
    answer_t a = {0}, as = {0};
    dl_group_join_t j = {.group_id = "g",
                         .member_id = "",
                         .client_id = "cli",
                         .client_host = "/127.0.0.1",
                         .session_timeout_ms = 10000,
                         .protocol_type = "consumer",
                         .protocols = RANGE,
                         .n_protocols = 2};
    dl_groups_join(g, 0, &j, &a);
    seen_t seen = {0};
    assert_int_equal(dl_groups_describe(g, "g", seen_group, seen_member, &seen), 0);
    assert_string_equal(seen.state, "CompletingRebalance");
    dl_group_member_info_t assignments[] = {{a.member_id, (const uint8_t *)"p0", 2}};
    sync_as(g, 1, &a, &as, assignments, 1);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(dl_groups_describe(g, "g", seen_group, seen_member, &seen), 0);
    assert_string_equal(seen.state, "Stable");
    assert_string_equal(seen.protocol, "range");
    assert_string_equal(seen.members, "cli@/127.0.0.1 meta=topics:a assigned=p0;");
    assert_int_equal(dl_groups_describe(g, "nope", seen_group, seen_member, &seen), -ENOENT);
}

static void test_member_ids_differ_across_coordinators(void **state)
{
    /* Two coordinators stand for the broker before and after a restart: a consumer that
     * outlived the first must not find its id handed to someone else by the second. */
    dl_groups_callbacks_t cb = {.join_done = on_join, .sync_done = on_sync};
    dl_groups_t *before = dl_groups_new(&cb), *after = dl_groups_new(&cb);
    answer_t a = {0}, b = {0};
    join(before, 0, "", RANGE, 2, &a);
    join(after, 0, "", RANGE, 2, &b);
    assert_int_equal(a.generation, b.generation);
    assert_string_not_equal(a.member_id, b.member_id);
    dl_groups_free(before);
    dl_groups_free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_a_first_member_gets_a_generation_at_once_and_leads),
        T(test_a_new_member_of_join_v4_first_gets_member_id_required),
        T(test_a_second_member_waits_until_the_first_rejoins),
        T(test_sync_relays_the_leaders_assignments_to_waiting_followers),
        T(test_a_member_that_stops_heartbeating_is_removed_and_the_group_rebalances),
        T(test_members_that_miss_a_rebalance_are_dropped_at_its_timeout),
        T(test_a_member_without_a_common_protocol_is_refused),
        T(test_the_protocol_is_one_every_member_supports),
        T(test_leaving_rebalances_the_rest_and_the_last_empties_the_group),
        T(test_offset_commits_need_the_current_generation),
        T(test_a_forgotten_waiter_is_never_answered),
        T(test_describe_shows_state_protocol_and_each_members_assignment),
        cmocka_unit_test(test_member_ids_differ_across_coordinators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
