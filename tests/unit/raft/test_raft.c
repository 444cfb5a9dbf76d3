/*
 * The replication core driven by an in-memory cluster: messages in a queue, a "disk" per node
 * that persists on demand, links that can be cut. Each test is a scenario from the kv lab.
 */
#include "raft_cluster.h"

static void test_static_leader_replicates_and_commits_on_a_majority(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    assert_int_equal(dl_raft_role(node_of(c, 1)->r), DL_RAFT_LEADER);
    assert_int_equal(dl_raft_term(node_of(c, 1)->r), 1);
    assert_int_equal(dl_raft_leader(node_of(c, 2)->r), 1);
    uint64_t a = propose(c, 1, "a");
    uint64_t b = propose(c, 1, "b");
    assert_int_equal(a, 2); /* index 1 is the new leader's no-op */
    assert_int_equal(b, 3);
    settle(c);
    tick(c, 100); /* a heartbeat carries the commit index to the followers */
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(node_of(c, id)->applied, 3);
        assert_same_log(node_of(c, 1), node_of(c, id));
    }
    assert_int_equal(dl_raft_commit_index(node_of(c, 1)->r), 3);
    free_cluster(c);
}

static void test_sync_waits_for_every_node_and_commits_when_it_returns(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 3);
    settle(c);
    node_of(c, 3)->up = 0;
    dl_raft_peer_down(node_of(c, 1)->r, 3);
    uint64_t idx = propose(c, 1, "x");
    settle(c);
    tick(c, 100);
    assert_true(dl_raft_commit_index(node_of(c, 1)->r) < idx);
    assert_int_equal(dl_raft_replicas_of(node_of(c, 1)->r, idx), 2);
    node_of(c, 3)->up = 1;
    tick(c, 100); /* the leader re-probes the returning follower */
    tick(c, 100);
    assert_int_equal(dl_raft_commit_index(node_of(c, 1)->r), idx);
    assert_same_log(node_of(c, 1), node_of(c, 3));
    free_cluster(c);
}

static void test_async_commits_on_the_leaders_disk_alone(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 1);
    set_link(c, 1, 2, 1);
    set_link(c, 1, 3, 1);
    uint64_t idx = propose(c, 1, "lonely");
    settle(c);
    assert_int_equal(dl_raft_commit_index(node_of(c, 1)->r), idx);
    assert_int_equal(node_of(c, 1)->applied, idx);
    assert_int_equal(node_of(c, 2)->last, 0);
    free_cluster(c);
}

static void test_follower_acknowledges_only_what_it_persisted(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 3);
    settle(c);
    node_of(c, 2)->auto_persist = 0;
    uint64_t idx = propose(c, 1, "slow-disk");
    settle(c);
    tick(c, 100);
    assert_int_equal(node_of(c, 2)->last, idx);                /* written... */
    assert_true(dl_raft_commit_index(node_of(c, 1)->r) < idx); /* ...but not acknowledged */
    node_of(c, 2)->auto_persist = 1;
    persist_all(c, node_of(c, 2));
    settle(c);
    assert_int_equal(dl_raft_commit_index(node_of(c, 1)->r), idx);
    free_cluster(c);
}

static void test_promotion_discards_the_old_leaders_unreplicated_writes(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 1);
    uint64_t a = propose(c, 1, "a");
    settle(c);
    tick(c, 100);
    assert_int_equal(node_of(c, 2)->applied, a);
    /* Node 1 is cut off; under async replication it still acknowledges b and c. */
    set_link(c, 1, 2, 1);
    set_link(c, 1, 3, 1);
    propose(c, 1, "b");
    uint64_t lost = propose(c, 1, "c");
    settle(c);
    assert_int_equal(node_of(c, 1)->applied, lost);
    /* An operator promotes node 2, which writes d at term 2. */
    dl_raft_update_t u;
    assert_int_equal(dl_raft_promote(node_of(c, 2)->r, c->now, &u), 0);
    handle(c, node_of(c, 2), &u);
    assert_int_equal(dl_raft_term(node_of(c, 2)->r), 2);
    propose(c, 2, "d");
    settle(c);
    tick(c, 100);
    /* Node 1 comes back: it steps down, drops b and c, and rebuilds from the new leader's log. */
    set_link(c, 1, 2, 0);
    set_link(c, 1, 3, 0);
    tick(c, 100);
    tick(c, 100);
    struct node *old = node_of(c, 1);
    assert_int_equal(dl_raft_role(old->r), DL_RAFT_FOLLOWER);
    assert_int_equal(dl_raft_term(old->r), 2);
    assert_int_equal(dl_raft_leader(old->r), 2);
    assert_int_equal(old->discarded, 2);
    assert_int_equal(old->discarded_applied, 2);
    assert_int_equal(old->rebuilt, 1);
    assert_same_log(node_of(c, 2), old);
    assert_int_equal(old->applied, node_of(c, 2)->applied);
    free_cluster(c);
}

static void test_isolated_restarted_leader_waits_and_then_follows_the_promoted_node(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 1);
    settle(c);
    tick(c, 100);
    /* The leader dies; an operator promotes node 2, which writes. */
    node_of(c, 1)->up = 0;
    dl_raft_peer_down(node_of(c, 2)->r, 1);
    dl_raft_peer_down(node_of(c, 3)->r, 1);
    dl_raft_update_t u;
    assert_int_equal(dl_raft_promote(node_of(c, 2)->r, c->now, &u), 0);
    handle(c, node_of(c, 2), &u);
    uint64_t idx = propose(c, 2, "after-failover");
    settle(c);
    /* Node 1 restarts cut off: it cannot confirm a majority, so it never leads. */
    set_link(c, 1, 2, 1);
    set_link(c, 1, 3, 1);
    struct node *old = node_of(c, 1);
    dl_raft_free(old->r);
    start_node(c, 1, old->last, old->applied);
    for (int i = 0; i < 30; i++)
        tick(c, 100);
    assert_int_equal(dl_raft_role(old->r), DL_RAFT_FOLLOWER);
    assert_true(dl_raft_reclaiming(old->r));
    /* Healed, it hears term 2 and follows node 2: nothing the new leader wrote is lost. */
    set_link(c, 1, 2, 0);
    set_link(c, 1, 3, 0);
    tick(c, 100);
    tick(c, 100);
    assert_int_equal(dl_raft_leader(old->r), 2);
    assert_int_equal(dl_raft_role(node_of(c, 2)->r), DL_RAFT_LEADER);
    assert_false(dl_raft_reclaiming(old->r));
    assert_int_equal(old->discarded, 0);
    assert_int_equal(old->applied, idx);
    assert_same_log(node_of(c, 2), old);
    free_cluster(c);
}

static void test_restarted_leader_that_lost_its_tail_does_not_lead_over_fuller_logs(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    for (int i = 0; i < 5; i++)
        propose(c, 1, "w");
    settle(c);
    tick(c, 100);
    uint64_t committed = dl_raft_commit_index(node_of(c, 1)->r);
    /* Power loss: node 1's last two entries never reached its disk (the followers have them). */
    struct node *l = node_of(c, 1);
    dl_raft_free(l->r);
    l->last -= 2;
    l->applied = l->last;
    start_node(c, 1, l->last, l->applied);
    for (int i = 0; i < 10; i++)
        tick(c, 100);
    /* Leading now would overwrite committed entries; it waits for an operator instead. */
    assert_int_equal(dl_raft_role(l->r), DL_RAFT_FOLLOWER);
    assert_int_equal(node_of(c, 2)->last, committed);
    dl_raft_update_t u;
    assert_int_equal(dl_raft_promote(node_of(c, 2)->r, c->now, &u), 0);
    handle(c, node_of(c, 2), &u);
    for (int i = 0; i < 5; i++)
        tick(c, 100);
    assert_int_equal(dl_raft_leader(l->r), 2);
    assert_same_log(node_of(c, 2), l);
    for (uint64_t id = 1; id <= 3; id++)
        assert_int_equal(node_of(c, id)->discarded, 0);
    free_cluster(c);
}

static void test_deposed_leader_steps_down_when_a_follower_answers_with_a_higher_term(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    settle(c);
    set_link(c, 1, 2, 1);
    set_link(c, 1, 3, 1);
    dl_raft_update_t u;
    assert_int_equal(dl_raft_promote(node_of(c, 3)->r, c->now, &u), 0);
    handle(c, node_of(c, 3), &u);
    settle(c);
    /* Node 1 only talks to node 2, which already follows term 2. */
    set_link(c, 1, 2, 0);
    tick(c, 100);
    assert_int_equal(dl_raft_role(node_of(c, 1)->r), DL_RAFT_FOLLOWER);
    assert_int_equal(dl_raft_term(node_of(c, 1)->r), 3); /* node 3's own term */
    assert_int_equal(dl_raft_propose(node_of(c, 1)->r, NULL, 0, NULL, &u),
                     -1006 /* DL_ENOTLEADER */);
    free_cluster(c);
}

static void test_divergent_suffix_of_an_older_term_is_replaced(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 1);
    settle(c);
    /* Node 1 (async) replicates 30 writes to node 3 only, then is cut off entirely. */
    set_link(c, 1, 2, 1);
    for (int i = 0; i < 30; i++)
        propose(c, 1, "x");
    settle(c);
    tick(c, 100);
    assert_int_equal(node_of(c, 3)->last, 31);
    set_link(c, 1, 3, 1);
    /* Node 2, which never saw them, is promoted and writes at term 2. */
    dl_raft_update_t u;
    assert_int_equal(dl_raft_promote(node_of(c, 2)->r, c->now, &u), 0);
    handle(c, node_of(c, 2), &u);
    for (int i = 0; i < 10; i++)
        propose(c, 2, "z");
    settle(c);
    tick(c, 100);
    set_link(c, 1, 2, 0);
    set_link(c, 1, 3, 0);
    for (int i = 0; i < 5; i++)
        tick(c, 100);
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(dl_raft_role(node_of(c, id)->r),
                         id == 2 ? DL_RAFT_LEADER : DL_RAFT_FOLLOWER);
        assert_same_log(node_of(c, 2), node_of(c, id));
        assert_int_equal(node_of(c, id)->applied, node_of(c, 2)->applied);
    }
    assert_int_equal(node_of(c, 3)->discarded, 30);
    assert_int_equal(node_of(c, 1)->discarded, 30);
    free_cluster(c);
}

static void test_two_promotions_never_share_a_term(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    settle(c);
    /* Two operators promote nodes 2 and 3 while they cannot see each other. */
    set_link(c, 2, 3, 1);
    set_link(c, 1, 3, 1);
    dl_raft_update_t u;
    dl_raft_promote(node_of(c, 2)->r, c->now, &u);
    handle(c, node_of(c, 2), &u);
    settle(c);
    dl_raft_promote(node_of(c, 3)->r, c->now, &u);
    handle(c, node_of(c, 3), &u);
    propose(c, 3, "split");
    /* Each took a term of its own residue class, so the two can never be confused. */
    assert_int_equal(dl_raft_term(node_of(c, 2)->r), 2);
    assert_int_equal(dl_raft_term(node_of(c, 3)->r), 3);
    set_link(c, 2, 3, 0);
    set_link(c, 1, 3, 0);
    for (int i = 0; i < 5; i++)
        tick(c, 100);
    /* The higher term wins everywhere: one leader, one log. */
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(dl_raft_leader(node_of(c, id)->r), 3);
        assert_same_log(node_of(c, 3), node_of(c, id));
    }
    free_cluster(c);
}

static void test_restarted_follower_catches_up_from_its_own_log(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    propose(c, 1, "before");
    settle(c);
    tick(c, 100);
    struct node *f = node_of(c, 3);
    uint64_t applied = f->applied;
    f->up = 0;
    dl_raft_peer_down(node_of(c, 1)->r, 3);
    dl_raft_free(f->r);
    f->r = NULL;
    for (int i = 0; i < 100; i++)
        propose(c, 1, "while-down");
    settle(c);
    tick(c, 100);
    start_node(c, 3, f->last, applied);
    assert_int_equal(dl_raft_role(f->r), DL_RAFT_FOLLOWER);
    for (int i = 0; i < 5; i++)
        tick(c, 100);
    assert_same_log(node_of(c, 1), f);
    assert_int_equal(f->applied, node_of(c, 1)->applied);
    free_cluster(c);
}

static void test_restarted_leader_leads_again_at_a_new_term_once_a_majority_answers(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    propose(c, 1, "a");
    settle(c);
    tick(c, 100);
    struct node *l = node_of(c, 1);
    dl_raft_free(l->r);
    start_node(c, 1, l->last, l->applied);
    assert_true(dl_raft_reclaiming(l->r));
    tick(c, 100);
    assert_int_equal(dl_raft_role(l->r), DL_RAFT_LEADER);
    /* Never term 1 again: the next term of node 1's own class. */
    assert_int_equal(dl_raft_term(l->r), 17);
    uint64_t idx = propose(c, 1, "b");
    settle(c);
    tick(c, 100);
    assert_int_equal(node_of(c, 2)->applied, idx);
    assert_int_equal(dl_raft_leader(node_of(c, 3)->r), 1);
    free_cluster(c);
}

static void test_promoting_a_node_that_never_heard_the_leader_takes_a_term_of_its_own(void **state)
{
    (void)state;
    struct cluster *c = new_cluster(3, 0);
    /* Node 3 is cut off from the start: it is still at term 0, the static leader at term 1. */
    set_link(c, 1, 3, 1);
    set_link(c, 2, 3, 1);
    assert_int_equal(dl_raft_term(node_of(c, 3)->r), 0);
    dl_raft_update_t u;
    assert_int_equal(dl_raft_promote(node_of(c, 3)->r, c->now, &u), 0);
    handle(c, node_of(c, 3), &u);
    assert_int_equal(dl_raft_term(node_of(c, 3)->r), 3);
    set_link(c, 1, 3, 0);
    set_link(c, 2, 3, 0);
    tick(c, 100);
    tick(c, 100);
    /* The higher term wins everywhere: one leader, one log. */
    assert_int_equal(dl_raft_role(node_of(c, 1)->r), DL_RAFT_FOLLOWER);
    assert_int_equal(dl_raft_leader(node_of(c, 2)->r), 3);
    assert_same_log(node_of(c, 3), node_of(c, 1));
    free_cluster(c);
}

static void test_config_is_validated(void **state)
{
    (void)state;
    dl_raft_t *r;
    dl_raft_hardstate_t hs = {0};
    uint64_t ids[] = {1, 2, 2};
    dl_raft_config_t cfg = {.id = 1, .nodes = ids, .n_nodes = 3};
    assert_int_not_equal(dl_raft_new(&cfg, &hs, 1, &r), 0); /* duplicate id */
    uint64_t ok[] = {1, 2, 3};
    cfg.nodes = ok;
    cfg.id = 4; /* a node outside its membership (joining, or removed) starts, as no voter */
    assert_int_equal(dl_raft_new(&cfg, &hs, 1, &r), 0);
    assert_false(dl_raft_is_voter(r, 4));
    assert_true(dl_raft_is_voter(r, 3));
    dl_raft_free(r);
    uint64_t learners[] = {3};
    cfg.learners = learners;
    cfg.n_learners = 1;
    cfg.id = 1;
    assert_int_not_equal(dl_raft_new(&cfg, &hs, 1, &r), 0); /* 3 both voter and learner */
    cfg.learners = NULL;
    cfg.n_learners = 0;
    cfg.commit_quorum = 4;
    assert_int_not_equal(dl_raft_new(&cfg, &hs, 1, &r), 0); /* quorum larger than cluster */
    cfg.commit_quorum = 0;
    assert_int_equal(dl_raft_new(&cfg, &hs, 1, &r), 0);
    assert_int_equal(dl_raft_commit_quorum(r), 2);
    dl_raft_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_leader_replicates_and_commits_on_a_majority),
        cmocka_unit_test(test_sync_waits_for_every_node_and_commits_when_it_returns),
        cmocka_unit_test(test_async_commits_on_the_leaders_disk_alone),
        cmocka_unit_test(test_follower_acknowledges_only_what_it_persisted),
        cmocka_unit_test(test_promotion_discards_the_old_leaders_unreplicated_writes),
        cmocka_unit_test(test_isolated_restarted_leader_waits_and_then_follows_the_promoted_node),
        cmocka_unit_test(test_restarted_leader_that_lost_its_tail_does_not_lead_over_fuller_logs),
        cmocka_unit_test(test_deposed_leader_steps_down_when_a_follower_answers_with_a_higher_term),
        cmocka_unit_test(test_divergent_suffix_of_an_older_term_is_replaced),
        cmocka_unit_test(test_two_promotions_never_share_a_term),
        cmocka_unit_test(test_restarted_follower_catches_up_from_its_own_log),
        cmocka_unit_test(test_restarted_leader_leads_again_at_a_new_term_once_a_majority_answers),
        cmocka_unit_test(test_promoting_a_node_that_never_heard_the_leader_takes_a_term_of_its_own),
        cmocka_unit_test(test_config_is_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
