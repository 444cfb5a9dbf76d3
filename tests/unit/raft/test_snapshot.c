/*
 * Scenario tests for snapshots and log compaction in the replication core: a follower that
 * needs compacted entries receives the leader's snapshot in chunks, resumes after a lost chunk,
 * and is streamed entries again afterwards; restarts recover from a snapshot plus the log after
 * it. The in-memory cluster (raft_cluster.h) carries snapshots as the kv driver does.
 */
#include <errno.h>
#include <stdio.h>

#include "raft_cluster.h"

static void write_n(struct cluster *c, uint64_t leader, int n, const char *prefix)
{
    char text[32];
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof(text), "%s-entry-%d", prefix, i);
        propose(c, leader, text);
        settle(c);
    }
}

static void assert_same_state(struct node *a, struct node *b)
{
    assert_int_equal(a->applied, b->applied);
    assert_int_equal(a->sm_len, b->sm_len);
    assert_memory_equal(a->sm, b->sm, a->sm_len);
}

static void test_a_follower_behind_the_compacted_log_gets_the_snapshot_in_chunks(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    write_n(c, 1, 3, "a");
    node_of(c, 3)->up = 0; /* node 3 misses what follows */
    write_n(c, 1, 10, "b");
    take_snapshot(c, 1);
    uint64_t snap = node_of(c, 1)->snap_index;
    assert_int_equal(dl_raft_first_index(node_of(c, 1)->r), snap + 1);
    write_n(c, 1, 2, "c");

    node_of(c, 3)->up = 1;
    dl_raft_peer_down(node_of(c, 1)->r, 3);
    tick(c, 100);
    tick(c, 100);
    struct node *f = node_of(c, 3);
    /* The snapshot is larger than one message (max_msg_bytes 32): several chunks. */
    assert_true(node_of(c, 1)->snap_len > 64);
    assert_true(f->chunks_received >= node_of(c, 1)->snap_len / 32);
    assert_int_equal(f->installs, 1);
    assert_int_equal(f->snap_index, snap);
    assert_int_equal(dl_raft_first_index(f->r), snap + 1);
    /* ... and the entries after it arrived as entries. */
    assert_same_state(node_of(c, 1), f);
    write_n(c, 1, 2, "d");
    assert_same_state(node_of(c, 1), f);
    assert_int_equal(f->installs, 1);
    free_cluster(c);
}

static void test_a_lost_chunk_is_sent_again_and_the_transfer_resumes(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    node_of(c, 3)->up = 0;
    write_n(c, 1, 20, "entry");
    take_snapshot(c, 1);
    node_of(c, 3)->up = 1;
    c->drop_chunk_at = 64 + 1; /* the third chunk */
    dl_raft_peer_down(node_of(c, 1)->r, 3);
    for (int i = 0; i < 5; i++)
        tick(c, 100);
    struct node *f = node_of(c, 3);
    assert_int_equal(c->drop_chunk_at, 0); /* it was dropped */
    assert_int_equal(f->installs, 1);
    assert_same_state(node_of(c, 1), f);
    free_cluster(c);
}

static void test_a_restarted_node_recovers_from_its_snapshot_and_the_log_after_it(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    write_n(c, 1, 8, "x");
    take_snapshot(c, 2); /* a follower compacts on its own */
    write_n(c, 1, 3, "y");
    struct node *f = node_of(c, 2);
    uint64_t snap = f->snap_index;
    dl_raft_free(f->r);
    /* Restart with a state machine that lost its last commit: it resumes from the snapshot. */
    memcpy(f->sm, f->snap, f->snap_len);
    f->sm_len = f->snap_len;
    f->applied = snap;
    start_node(c, 2, f->last, snap);
    assert_int_equal(dl_raft_first_index(f->r), snap + 1);
    assert_int_equal(dl_raft_snapshot_index(f->r), snap);
    tick(c, 100);
    assert_same_state(node_of(c, 1), f);
    free_cluster(c);
}

static void test_compaction_never_drops_what_is_not_applied(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    write_n(c, 1, 5, "z");
    dl_raft_t *r = node_of(c, 1)->r;
    uint64_t applied = node_of(c, 1)->applied;
    assert_int_equal(dl_raft_snapshot_taken(r, dl_raft_last_index(r) + 1, 10), -EINVAL);
    assert_int_equal(dl_raft_compact(r, 100), applied + 1); /* at most up to the applied index */
    assert_int_equal(dl_raft_term_at(r, applied), node_of(c, 1)->log[applied].term);
    assert_int_equal(dl_raft_term_at(r, applied - 1), 0);
    free_cluster(c);
}

static void test_a_snapshot_file_is_made_only_when_a_follower_needs_one(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    node_of(c, 3)->up = 0;
    write_n(c, 1, 12, "lazy");
    /* Compaction alone: the state machine is durable, no file is written. */
    compact(c, 1);
    write_n(c, 1, 2, "more");
    assert_int_equal(node_of(c, 1)->files_made, 0);
    node_of(c, 3)->up = 1;
    dl_raft_peer_down(node_of(c, 1)->r, 3);
    for (int i = 0; i < 4; i++)
        tick(c, 100);
    /* Node 3 needed compacted entries: the leader was asked for a file, once, and sent it. */
    assert_int_equal(node_of(c, 1)->files_made, 1);
    assert_int_equal(node_of(c, 3)->installs, 1);
    assert_same_state(node_of(c, 1), node_of(c, 3));
    free_cluster(c);
}

static void test_a_new_leader_with_a_compacted_log_sends_its_own_snapshot(void **state)
{
    (void)state;
    struct cluster *c = new_cluster_with(3, 0, 1);
    for (int i = 0; i < 30 && dl_raft_role(node_of(c, 1)->r) != DL_RAFT_LEADER &&
                    dl_raft_role(node_of(c, 2)->r) != DL_RAFT_LEADER &&
                    dl_raft_role(node_of(c, 3)->r) != DL_RAFT_LEADER;
         i++)
        tick(c, 100);
    uint64_t leader = 0;
    for (uint64_t id = 1; id <= 3; id++)
        if (dl_raft_role(node_of(c, id)->r) == DL_RAFT_LEADER)
            leader = id;
    assert_true(leader != 0);
    uint64_t lagging = leader % 3 + 1, other = lagging % 3 + 1;
    node_of(c, lagging)->up = 0;
    write_n(c, leader, 6, "p");
    take_snapshot(c, other);
    /* The leader dies; `other` (with a compacted log) wins the election against nobody but
     * the lagging node, which then needs `other`'s snapshot. */
    node_of(c, leader)->up = 0;
    node_of(c, lagging)->up = 1;
    dl_raft_peer_down(node_of(c, other)->r, lagging);
    for (int i = 0; i < 40 && dl_raft_role(node_of(c, other)->r) != DL_RAFT_LEADER; i++)
        tick(c, 100);
    assert_int_equal(dl_raft_role(node_of(c, other)->r), DL_RAFT_LEADER);
    for (int i = 0; i < 5; i++)
        tick(c, 100);
    assert_int_equal(node_of(c, lagging)->installs, 1);
    assert_same_state(node_of(c, other), node_of(c, lagging));
    free_cluster(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_follower_behind_the_compacted_log_gets_the_snapshot_in_chunks),
        cmocka_unit_test(test_a_lost_chunk_is_sent_again_and_the_transfer_resumes),
        cmocka_unit_test(test_a_restarted_node_recovers_from_its_snapshot_and_the_log_after_it),
        cmocka_unit_test(test_compaction_never_drops_what_is_not_applied),
        cmocka_unit_test(test_a_snapshot_file_is_made_only_when_a_follower_needs_one),
        cmocka_unit_test(test_a_new_leader_with_a_compacted_log_sends_its_own_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
