/*
 * Scenario tests for membership changes in the replication core: learners catch up without
 * counting, a promoted learner counts, one change at a time, a removed leader steps down, and a
 * configuration entry that is truncated is undone.
 */
#include <errno.h>
#include <stdio.h>

#include "ddialab/error.h"
#include "raft_cluster.h"

static uint64_t elect(struct cluster *c)
{
    /* Fine ticks: with 100 ms ones, randomized timeouts collide and votes split. */
    for (int i = 0; i < 600; i++) {
        for (uint64_t id = 1; id <= c->n; id++)
            if (c->nodes[id - 1].up && dl_raft_role(c->nodes[id - 1].r) == DL_RAFT_LEADER)
                return id;
        tick(c, 10);
    }
    fail_msg("no leader elected");
    return 0;
}

/* Proposes voters v[] and learners l[] (0-terminated) through leader; returns the result. */
static int change(struct cluster *c, uint64_t leader, const uint64_t *v, const uint64_t *l)
{
    dl_raft_membership_t m = {.n = 0};
    for (; *v; v++)
        m.ids[m.n++] = *v;
    for (; l && *l; l++) {
        m.ids[m.n] = *l;
        m.learner[m.n++] = 1;
    }
    uint8_t payload[256];
    size_t len = dl_raft_membership_encode(&m, "ctx", 3, payload, sizeof(payload));
    assert_true(len <= sizeof(payload));
    dl_raft_update_t u;
    uint64_t index = 0;
    int rv = dl_raft_propose_membership(node_of(c, leader)->r, payload, (uint32_t)len, &index, &u);
    handle(c, node_of(c, leader), &u);
    settle(c);
    return rv;
}

static void test_a_learner_gets_the_log_but_counts_for_nothing_until_promoted(void **state)
{
    (void)state;
    struct cluster *c = new_cluster_with(4, 0, 1);
    /* Start with voters 1-3; node 4 is not a member yet. */
    node_of(c, 4)->up = 0;
    uint64_t leader = elect(c);
    /* Nodes 1-3 start with every node as a voter in this harness: shrink to 1-3 first. */
    const uint64_t three[] = {1, 2, 3, 0};
    assert_int_equal(change(c, leader, three, NULL), 0);
    leader = elect(c);
    propose(c, leader, "before");
    settle(c);
    node_of(c, 4)->up = 1;
    const uint64_t learner4[] = {4, 0};
    assert_int_equal(change(c, leader, three, learner4), 0);
    tick(c, 100);
    tick(c, 100);
    struct node *l = node_of(c, 4);
    assert_int_equal(l->last, node_of(c, leader)->last); /* it has the whole log */
    assert_false(dl_raft_is_voter(node_of(c, leader)->r, 4));
    /* Two voters down: the leader and the learner alone cannot commit. */
    uint64_t a = leader % 3 + 1, b = a % 3 + 1;
    node_of(c, a)->up = 0;
    node_of(c, b)->up = 0;
    uint64_t commit = dl_raft_commit_index(node_of(c, leader)->r);
    propose(c, leader, "stuck");
    tick(c, 100);
    assert_int_equal(dl_raft_commit_index(node_of(c, leader)->r), commit);
    node_of(c, a)->up = 1;
    node_of(c, b)->up = 1;
    dl_raft_peer_down(node_of(c, leader)->r, a);
    dl_raft_peer_down(node_of(c, leader)->r, b);
    tick(c, 100);
    leader = elect(c);
    /* Promote 4: now four voters, a majority of three. */
    const uint64_t four[] = {1, 2, 3, 4, 0};
    assert_int_equal(change(c, leader, four, NULL), 0);
    tick(c, 100);
    assert_true(dl_raft_is_voter(node_of(c, leader)->r, 4));
    assert_true(dl_raft_is_voter(node_of(c, 4)->r, 4));
    assert_int_equal(dl_raft_commit_quorum(node_of(c, leader)->r), 3);
    free_cluster(c);
}

static void test_one_change_at_a_time_and_one_voter_per_change(void **state)
{
    (void)state;
    struct cluster *c = new_cluster_with(5, 0, 1);
    uint64_t leader = elect(c);
    uint64_t o[4], n = 0;
    for (uint64_t id = 1; id <= 5; id++)
        if (id != leader)
            o[n++] = id;
    /* Two voters removed at once: refused. */
    const uint64_t three[] = {leader, o[0], o[1], 0};
    assert_int_equal(change(c, leader, three, NULL), -EINVAL);
    /* One removed: accepted. With three of the four remaining voters down it cannot commit, and
     * a second change must wait for it. */
    node_of(c, o[0])->up = 0;
    node_of(c, o[1])->up = 0;
    node_of(c, o[2])->up = 0;
    const uint64_t four[] = {leader, o[0], o[1], o[2], 0};
    assert_int_equal(change(c, leader, four, NULL), 0);
    assert_int_equal(change(c, leader, four, NULL), DL_EBUSY);
    /* A change that only adds or drops learners is not a voter change. */
    free_cluster(c);
}

static void test_a_removed_leader_steps_down_once_the_change_commits(void **state)
{
    (void)state;
    struct cluster *c = new_cluster_with(3, 0, 1);
    uint64_t leader = elect(c);
    uint64_t rest[3], n = 0;
    for (uint64_t id = 1; id <= 3; id++)
        if (id != leader)
            rest[n++] = id;
    rest[n] = 0;
    assert_int_equal(change(c, leader, rest, NULL), 0);
    settle(c);
    assert_int_not_equal(dl_raft_role(node_of(c, leader)->r), DL_RAFT_LEADER);
    /* It never campaigns again; the other two elect a leader among themselves. */
    for (int i = 0; i < 30; i++)
        tick(c, 100);
    assert_int_not_equal(dl_raft_role(node_of(c, leader)->r), DL_RAFT_LEADER);
    uint64_t next = elect(c);
    assert_int_not_equal(next, leader);
    propose(c, next, "after");
    settle(c);
    assert_int_equal(dl_raft_commit_index(node_of(c, next)->r),
                     dl_raft_last_index(node_of(c, next)->r));
    free_cluster(c);
}

static void test_a_truncated_configuration_entry_is_undone(void **state)
{
    (void)state;
    struct cluster *c = new_cluster_with(3, 0, 1);
    uint64_t leader = elect(c);
    propose(c, leader, "x");
    settle(c);
    /* The leader is cut off, appends a change nobody receives, and loses leadership. */
    isolate(c, leader, 1);
    uint64_t rest[3], n = 0;
    for (uint64_t id = 1; id <= 3; id++)
        if (id != leader)
            rest[n++] = id;
    rest[n] = 0;
    assert_int_equal(change(c, leader, rest, NULL), 0);
    assert_false(dl_raft_is_voter(node_of(c, leader)->r, leader)); /* in force once appended */
    for (int i = 0; i < 30; i++)
        tick(c, 100);
    uint64_t next = 0;
    for (uint64_t id = 1; id <= 3; id++)
        if (id != leader && dl_raft_role(node_of(c, id)->r) == DL_RAFT_LEADER)
            next = id;
    assert_true(next != 0);
    propose(c, next, "y");
    settle(c);
    isolate(c, leader, 0);
    tick(c, 100);
    tick(c, 100);
    /* The old leader's change was replaced by the new leader's log: it is a voter again. */
    assert_true(dl_raft_is_voter(node_of(c, leader)->r, leader));
    assert_same_log(node_of(c, leader), node_of(c, next));
    free_cluster(c);
}

static void test_membership_payloads_round_trip_and_bad_ones_are_refused(void **state)
{
    (void)state;
    dl_raft_membership_t m = {.n = 3, .ids = {1, 7, 3}, .learner = {0, 1, 0}};
    uint8_t buf[64];
    size_t len = dl_raft_membership_encode(&m, "addr", 4, buf, sizeof(buf));
    dl_raft_membership_t back;
    const void *ctx;
    size_t ctx_len;
    assert_int_equal(dl_raft_membership_decode(buf, len, &back, &ctx, &ctx_len), 0);
    assert_int_equal(back.n, 3);
    assert_int_equal(back.ids[1], 7);
    assert_int_equal(back.learner[1], 1);
    assert_int_equal(ctx_len, 4);
    assert_memory_equal(ctx, "addr", 4);
    /* No voter, a duplicate, a truncated payload: refused. */
    dl_raft_membership_t learners_only = {.n = 1, .ids = {2}, .learner = {1}};
    len = dl_raft_membership_encode(&learners_only, NULL, 0, buf, sizeof(buf));
    assert_int_equal(dl_raft_membership_decode(buf, len, &back, NULL, NULL), DL_EPROTO);
    dl_raft_membership_t dup = {.n = 2, .ids = {2, 2}};
    len = dl_raft_membership_encode(&dup, NULL, 0, buf, sizeof(buf));
    assert_int_equal(dl_raft_membership_decode(buf, len, &back, NULL, NULL), DL_EPROTO);
    len = dl_raft_membership_encode(&m, NULL, 0, buf, sizeof(buf));
    assert_int_equal(dl_raft_membership_decode(buf, len - 1, &back, NULL, NULL), DL_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_learner_gets_the_log_but_counts_for_nothing_until_promoted),
        cmocka_unit_test(test_one_change_at_a_time_and_one_voter_per_change),
        cmocka_unit_test(test_a_removed_leader_steps_down_once_the_change_commits),
        cmocka_unit_test(test_a_truncated_configuration_entry_is_undone),
        cmocka_unit_test(test_membership_payloads_round_trip_and_bad_ones_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
