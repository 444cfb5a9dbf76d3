/*
 * Leader election in the replication core, scenario by scenario: randomized timeouts, the vote
 * rule, PreVote, CheckQuorum, leadership transfer, determinism.
 */
#include "raft_cluster.h"

#include "ddialab/error.h"

static struct cluster *elected_cluster(size_t n)
{
    return new_cluster_with(n, 0, 1);
}

/* Ticks in 50 ms steps for up to `ms`; returns the one leader, or 0 if none (or several). */
static uint64_t run_until_one_leader(struct cluster *c, uint64_t ms)
{
    for (uint64_t t = 0; t < ms; t += 50) {
        tick(c, 50);
        uint64_t leader = 0;
        int leaders = 0;
        for (uint64_t id = 1; id <= c->n; id++)
            if (node_of(c, id)->up && dl_raft_role(node_of(c, id)->r) == DL_RAFT_LEADER) {
                leaders++;
                leader = id;
            }
        if (leaders == 1) {
            int agreed = 1;
            for (uint64_t id = 1; id <= c->n; id++)
                if (node_of(c, id)->up && !c->cut[id][leader] && id != leader)
                    agreed &= dl_raft_leader(node_of(c, id)->r) == leader;
            if (agreed)
                return leader;
        }
    }
    return 0;
}

static void test_a_fresh_cluster_elects_one_leader_within_two_timeouts(void **state)
{
    (void)state;
    struct cluster *c = elected_cluster(3);
    for (uint64_t id = 1; id <= 3; id++)
        assert_int_equal(dl_raft_role(node_of(c, id)->r), DL_RAFT_FOLLOWER);
    uint64_t leader = run_until_one_leader(c, 2000);
    assert_int_not_equal(leader, 0);
    /* Its no-op commits everywhere: the cluster is usable. */
    uint64_t idx = propose(c, leader, "first");
    settle(c);
    tick(c, 100);
    for (uint64_t id = 1; id <= 3; id++)
        assert_int_equal(node_of(c, id)->applied, idx);
    free_cluster(c);
}

static void test_when_the_leader_dies_another_is_elected_and_keeps_every_commit(void **state)
{
    (void)state;
    struct cluster *c = elected_cluster(5);
    uint64_t old = run_until_one_leader(c, 2000);
    assert_int_not_equal(old, 0);
    uint64_t idx = propose(c, old, "committed");
    settle(c);
    tick(c, 100);
    uint64_t old_term = dl_raft_term(node_of(c, old)->r);
    node_of(c, old)->up = 0;
    uint64_t leader = run_until_one_leader(c, 3000);
    assert_int_not_equal(leader, 0);
    assert_int_not_equal(leader, old);
    assert_true(dl_raft_term(node_of(c, leader)->r) > old_term);
    /* Leader Completeness: the new leader has the committed entry. */
    assert_true(node_of(c, leader)->last >= idx);
    assert_string_equal(node_of(c, leader)->log[idx].data, "committed");
    free_cluster(c);
}

static void test_a_candidate_with_a_stale_log_cannot_win(void **state)
{
    (void)state;
    struct cluster *c = elected_cluster(3);
    uint64_t leader = run_until_one_leader(c, 2000);
    uint64_t stale = leader % 3 + 1;
    /* `stale` misses the next writes; then the leader dies. */
    set_link(c, leader, stale, 1);
    for (int i = 0; i < 5; i++)
        propose(c, leader, "w");
    settle(c);
    tick(c, 100);
    node_of(c, leader)->up = 0;
    set_link(c, leader, stale, 0);
    uint64_t next = run_until_one_leader(c, 5000);
    assert_int_not_equal(next, 0);
    assert_int_not_equal(next, stale); /* the vote rule keeps the stale node out */
    free_cluster(c);
}

static void test_prevote_keeps_a_cut_off_node_from_disrupting_the_leader(void **state)
{
    (void)state;
    struct cluster *c = elected_cluster(3);
    uint64_t leader = run_until_one_leader(c, 2000);
    uint64_t lone = leader % 3 + 1;
    uint64_t term = dl_raft_term(node_of(c, leader)->r);
    isolate(c, lone, 1);
    for (int i = 0; i < 200; i++) /* 10 election timeouts */
        tick(c, 50);
    /* Its pre-votes fail, so its term never grows... */
    assert_true(dl_raft_term(node_of(c, lone)->r) <= term);
    isolate(c, lone, 0);
    for (int i = 0; i < 20; i++)
        tick(c, 50);
    /* ...and when it returns, the leader is still the leader in the same term. */
    assert_int_equal(dl_raft_role(node_of(c, leader)->r), DL_RAFT_LEADER);
    assert_int_equal(dl_raft_term(node_of(c, leader)->r), term);
    assert_int_equal(dl_raft_leader(node_of(c, lone)->r), leader);
    free_cluster(c);
}

static void test_check_quorum_makes_a_leader_in_a_minority_step_down(void **state)
{
    (void)state;
    struct cluster *c = elected_cluster(3);
    uint64_t leader = run_until_one_leader(c, 2000);
    isolate(c, leader, 1);
    int stepped_down = 0;
    for (int i = 0; i < 60 && !stepped_down; i++) { /* within about two election timeouts */
        tick(c, 50);
        stepped_down = dl_raft_role(node_of(c, leader)->r) != DL_RAFT_LEADER;
    }
    assert_true(stepped_down);
    /* The majority side elects its own leader meanwhile. */
    uint64_t other = 0;
    for (uint64_t id = 1; id <= 3; id++)
        if (id != leader && dl_raft_role(node_of(c, id)->r) == DL_RAFT_LEADER)
            other = id;
    if (other == 0)
        for (int i = 0; i < 60 && other == 0; i++) {
            tick(c, 50);
            for (uint64_t id = 1; id <= 3; id++)
                if (id != leader && dl_raft_role(node_of(c, id)->r) == DL_RAFT_LEADER)
                    other = id;
        }
    assert_int_not_equal(other, 0);
    free_cluster(c);
}

static void test_leadership_transfer_hands_over_to_the_chosen_node(void **state)
{
    (void)state;
    struct cluster *c = elected_cluster(3);
    uint64_t leader = run_until_one_leader(c, 2000);
    uint64_t target = leader % 3 + 1;
    propose(c, leader, "before");
    dl_raft_update_t u;
    assert_int_equal(dl_raft_transfer_leader(node_of(c, leader)->r, target, c->now, &u), 0);
    handle(c, node_of(c, leader), &u);
    /* No new proposals while handing over. */
    dl_raft_entry_t e = {.type = DL_RAFT_ENTRY_NORMAL, .data = "x", .len = 1};
    assert_int_not_equal(dl_raft_propose(node_of(c, leader)->r, &e, 1, NULL, &u), 0);
    settle(c);
    tick(c, 50);
    assert_int_equal(dl_raft_role(node_of(c, target)->r), DL_RAFT_LEADER);
    assert_int_equal(dl_raft_leader(node_of(c, leader)->r), target);
    free_cluster(c);
}

static void test_promote_with_elections_is_refused_while_a_live_leader_is_heard(void **state)
{
    (void)state;
    struct cluster *c = elected_cluster(3);
    uint64_t leader = run_until_one_leader(c, 2000);
    uint64_t other = leader % 3 + 1;
    settle(c);
    tick(c, 100);
    /* Voting for itself would break the leader's read lease, which it is part of. */
    dl_raft_update_t u;
    assert_int_equal(dl_raft_promote(node_of(c, other)->r, c->now, &u), DL_ELEADERALIVE);
    assert_int_equal(u.n_msgs, 0);
    assert_int_equal(dl_raft_role(node_of(c, leader)->r), DL_RAFT_LEADER);
    /* Once the leader has been silent for an election timeout, a promotion campaigns at once. */
    node_of(c, leader)->up = 0;
    for (uint64_t id = 1; id <= 3; id++)
        if (id != leader)
            dl_raft_peer_down(node_of(c, id)->r, leader);
    uint64_t t0 = c->now;
    while (c->now - t0 < 1000 && dl_raft_role(node_of(c, other)->r) != DL_RAFT_LEADER) {
        tick(c, 50);
        if (dl_raft_promote(node_of(c, other)->r, c->now, &u) == 0) {
            handle(c, node_of(c, other), &u);
            settle(c);
        }
    }
    /* Either the promotion or the other node's own election chose a new leader in time. */
    int leaders = 0;
    for (uint64_t id = 1; id <= 3; id++)
        leaders += id != leader && dl_raft_role(node_of(c, id)->r) == DL_RAFT_LEADER;
    assert_int_equal(leaders, 1);
    free_cluster(c);
}

static void test_votes_are_persisted_before_the_answer_leaves(void **state)
{
    (void)state;
    uint64_t ids[] = {1, 2, 3};
    dl_raft_config_t cfg = {.id = 2, .nodes = ids, .n_nodes = 3, .elections = 1};
    dl_raft_hardstate_t hs = {0};
    dl_raft_t *r;
    assert_int_equal(dl_raft_new(&cfg, &hs, 1, &r), 0);
    dl_raft_update_t u;
    dl_raft_start(r, 0, 0, 0, &u);
    dl_raft_msg_t vote = {.type = DL_RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 1};
    dl_raft_step(r, &vote, 1500, &u); /* after its first election timeout */
    assert_int_equal(u.n_msgs, 1);
    assert_int_equal(u.msgs[0].type, DL_RAFT_MSG_VOTE_RESP);
    assert_int_equal(u.msgs[0].reject, 0);
    /* The grant rides with the hard state that records it: the driver persists first. */
    assert_true(u.hardstate_changed);
    assert_int_equal(u.hardstate.term, 1);
    assert_int_equal(u.hardstate.vote, 1);
    /* One vote per term: node 3 is refused in term 1. */
    dl_raft_msg_t other = {.type = DL_RAFT_MSG_VOTE, .from = 3, .to = 2, .term = 1};
    dl_raft_step(r, &other, 1510, &u);
    assert_int_equal(u.n_msgs, 1);
    assert_int_equal(u.msgs[0].reject, 1);
    dl_raft_free(r);
}

static void read_index(struct cluster *c, uint64_t id, uint64_t ctx)
{
    dl_raft_update_t u;
    assert_int_equal(dl_raft_read_index(node_of(c, id)->r, ctx, c->now, &u), 0);
    handle(c, node_of(c, id), &u);
}

static void test_a_read_is_answered_after_a_majority_confirms_the_leader(void **state)
{
    (void)state;
    struct cluster *c = elected_cluster(3);
    uint64_t leader = run_until_one_leader(c, 2000);
    uint64_t idx = propose(c, leader, "w");
    settle(c);
    read_index(c, leader, 42);
    assert_int_equal(node_of(c, leader)->n_reads, 0); /* not before the round */
    settle(c);
    struct node *l = node_of(c, leader);
    assert_int_equal(l->n_reads, 1);
    assert_int_equal(l->reads[0].ctx, 42);
    assert_true(l->reads[0].index >= idx); /* covers every write acknowledged before it */
    free_cluster(c);
}

static void
test_a_leader_cut_off_never_confirms_a_read_and_refuses_it_on_stepping_down(void **state)
{
    (void)state;
    struct cluster *c = elected_cluster(3);
    uint64_t leader = run_until_one_leader(c, 2000);
    isolate(c, leader, 1);
    read_index(c, leader, 7);
    settle(c);
    assert_int_equal(node_of(c, leader)->n_reads, 0); /* no quorum, no answer */
    for (int i = 0; i < 60 && dl_raft_role(node_of(c, leader)->r) == DL_RAFT_LEADER; i++)
        tick(c, 50);
    struct node *l = node_of(c, leader);
    assert_int_equal(l->n_reads, 1);
    assert_int_equal(l->reads[0].ctx, 7);
    assert_int_equal(l->reads[0].index, 0); /* refused: it is no longer the leader */
    free_cluster(c);
}

static void test_a_new_leader_answers_reads_only_after_committing_in_its_term(void **state)
{
    (void)state;
    uint64_t ids[] = {1, 2, 3};
    dl_raft_config_t cfg = {.id = 1, .nodes = ids, .n_nodes = 3, .elections = 1, .seed = 1};
    dl_raft_hardstate_t hs = {0};
    dl_raft_t *r;
    assert_int_equal(dl_raft_new(&cfg, &hs, 1, &r), 0);
    dl_raft_update_t u;
    dl_raft_start(r, 0, 0, 0, &u);
    dl_raft_promote(r, 0, &u); /* candidate at term 1 */
    dl_raft_msg_t grant = {.type = DL_RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 1};
    dl_raft_step(r, &grant, 1, &u);
    assert_int_equal(dl_raft_role(r), DL_RAFT_LEADER);
    dl_raft_persisted(r, 1, 2, &u);
    assert_int_equal(dl_raft_read_index(r, 9, 3, &u), 0);
    dl_raft_flush(r, 3, &u);
    /* Its no-op has not committed: no round starts, so no answer can come yet. */
    dl_raft_msg_t hb_ack = {.type = DL_RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 1};
    dl_raft_step(r, &hb_ack, 4, &u);
    assert_int_equal(u.n_read_states, 0);
    /* Node 2 acknowledges the no-op: it commits, the round starts, and its echo confirms. */
    dl_raft_msg_t ack = {.type = DL_RAFT_MSG_APPEND_RESP,
                         .from = 2,
                         .to = 1,
                         .term = 1,
                         .match_index = 1,
                         .last_index = 1};
    dl_raft_step(r, &ack, 5, &u);
    assert_int_equal(dl_raft_commit_index(r), 1);
    dl_raft_msg_t echo = {.type = DL_RAFT_MSG_APPEND_RESP,
                          .from = 2,
                          .to = 1,
                          .term = 1,
                          .match_index = 1,
                          .last_index = 1,
                          .context = 1};
    dl_raft_step(r, &echo, 6, &u);
    assert_int_equal(u.n_read_states, 1);
    assert_int_equal(u.read_states[0].ctx, 9);
    assert_int_equal(u.read_states[0].index, 1);
    dl_raft_free(r);
}

static void
test_a_lease_holds_while_a_majority_answers_and_lapses_before_anyone_else_leads(void **state)
{
    (void)state;
    struct cluster *c = elected_cluster(3);
    uint64_t leader = run_until_one_leader(c, 2000);
    settle(c);
    tick(c, 100);
    dl_raft_t *l = node_of(c, leader)->r;
    assert_true(dl_raft_lease_valid(l, c->now));
    /* Cut off: the lease runs out 900 ms (0.9 election timeouts) after the last round a
     * majority acknowledged, and while it holds nobody else may lead. */
    isolate(c, leader, 1);
    uint64_t cut_at = c->now;
    int lapsed_at = -1;
    for (int i = 0; i < 40; i++) {
        tick(c, 50);
        int others_lead = 0;
        for (uint64_t id = 1; id <= 3; id++)
            if (id != leader && dl_raft_role(node_of(c, id)->r) == DL_RAFT_LEADER)
                others_lead = 1;
        if (dl_raft_lease_valid(l, c->now))
            assert_false(others_lead); /* the property a lease read relies on */
        else if (lapsed_at < 0)
            lapsed_at = (int)(c->now - cut_at);
    }
    assert_true(lapsed_at > 0 && lapsed_at <= 1000);
    free_cluster(c);
}

static void test_there_is_no_lease_without_elections(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    settle(c);
    tick(c, 100);
    assert_int_equal(dl_raft_role(node_of(c, 1)->r), DL_RAFT_LEADER);
    assert_false(dl_raft_lease_valid(node_of(c, 1)->r, c->now));
    free_cluster(c);
}

static void test_the_same_seed_replays_the_same_election(void **state)
{
    (void)state;
    uint64_t winners[2], terms[2], times[2];
    for (int run = 0; run < 2; run++) {
        struct cluster *c = new_cluster_with(5, 0, 1);
        winners[run] = run_until_one_leader(c, 3000);
        terms[run] = dl_raft_term(node_of(c, winners[run])->r);
        times[run] = c->now;
        free_cluster(c);
    }
    assert_int_not_equal(winners[0], 0);
    assert_int_equal(winners[0], winners[1]);
    assert_int_equal(terms[0], terms[1]);
    assert_int_equal(times[0], times[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_fresh_cluster_elects_one_leader_within_two_timeouts),
        cmocka_unit_test(test_when_the_leader_dies_another_is_elected_and_keeps_every_commit),
        cmocka_unit_test(test_a_candidate_with_a_stale_log_cannot_win),
        cmocka_unit_test(test_prevote_keeps_a_cut_off_node_from_disrupting_the_leader),
        cmocka_unit_test(test_check_quorum_makes_a_leader_in_a_minority_step_down),
        cmocka_unit_test(test_leadership_transfer_hands_over_to_the_chosen_node),
        cmocka_unit_test(test_promote_with_elections_is_refused_while_a_live_leader_is_heard),
        cmocka_unit_test(test_votes_are_persisted_before_the_answer_leaves),
        cmocka_unit_test(test_a_read_is_answered_after_a_majority_confirms_the_leader),
        cmocka_unit_test(
            test_a_leader_cut_off_never_confirms_a_read_and_refuses_it_on_stepping_down),
        cmocka_unit_test(test_a_new_leader_answers_reads_only_after_committing_in_its_term),
        cmocka_unit_test(
            test_a_lease_holds_while_a_majority_answers_and_lapses_before_anyone_else_leads),
        cmocka_unit_test(test_there_is_no_lease_without_elections),
        cmocka_unit_test(test_the_same_seed_replays_the_same_election),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
