"""Network partitions between real nodes: the minority can neither commit nor answer a
linearizable read, the majority carries on, and after healing every node converges.

Each node listens (HTTP and peers) on its own loopback address, 127.0.0.11, .12, .13 (Linux
routes all of 127/8 to lo), and runs as its own uid. An nftables table of this test's own
(`ddialab_part_<pid>`, in the host's network namespace) cuts links with rules such as

    meta skuid <uid of node 1> ip daddr 127.0.0.12 counter drop     # node 1 can no longer reach 2

in the output hook, where every packet a node sends passes with the socket that sent it. The uid
is what tells the nodes apart: a node's outgoing peer connections are not bound to its own
address, so the kernel gives all of them the source 127.0.0.1, and a rule on addresses alone
could not say which node a packet comes from. Cutting what a node sends is enough: a node sends
its messages on the connection it dialed, and only TCP acknowledgements travel back on it. The
drops are silent, as in a real partition: connections stay up, TCP retransmits into the void,
and delivers whatever is still queued (stale messages included) once the link heals. The test
process (uid 0) is matched by no rule, and a node answers it at 127.0.0.1, so the test reaches
every node's HTTP API throughout.

It needs root (to install rules and start processes as other uids) and a working `nft`
(Debian package nftables; scripts/deps.sh test installs it). Without them every test skips and
says why. The table is flushed after each test and deleted at the end (atexit too); its rules
only ever match this run's own uids.
"""

import atexit
# The preflight probe connects from a forked child after setuid, when it may no longer read
# Python's library directory: import the codec that socket uses for host names up front.
import encodings.idna  # noqa: F401
import os
import shutil
import socket
import subprocess
import threading
import time
import unittest

import harness

ELECTION_MS = 500
FLAGS = ("--elections", "--election-timeout", f"{ELECTION_MS}ms", "--heartbeat", "50ms")
NODES = (1, 2, 3)
HOSTS = {i: f"127.0.0.{10 + i}" for i in NODES}
# uids nobody else uses, derived from our pid like the table's name: node i runs as UID_BASE + i,
# and UID_BASE itself is the preflight probe's.
UID_BASE = 2_000_000_000 + (os.getpid() % 1_000_000) * 16
USERS = {i: UID_BASE + i for i in NODES}
TABLE = f"ddialab_part_{os.getpid()}"
# Most a majority may take to elect a new leader once cut off from the old one: a follower's
# election timer runs out 1 to 1.5 timeouts after the last heartbeat it heard (by then its lease
# has expired too), then PreVote and a vote. Measured on two cores, CPU saturated or not:
# 0.6-0.75 s. Generous, but still "a few election timeouts".
ELECTION_BOUND_S = 8 * ELECTION_MS / 1000


class Firewall:
    """The nftables table that cuts links between this run's nodes (by the sender's uid)."""

    def __init__(self, name=TABLE):
        self.name = name
        self.created = False

    def nft(self, script):
        """Runs an nft script atomically; returns (ok, what nft printed on failure)."""
        try:
            p = subprocess.run(["nft", "-f", "-"], input=script.encode(), capture_output=True,
                               timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, repr(e)
        return p.returncode == 0, (p.stderr or p.stdout).decode(errors="replace").strip()

    def create(self):
        """Creates (or empties, if a run with our pid left it behind) the table and its chain."""
        ok, err = self.nft(f"add table ip {self.name}\n"
                           f"flush table ip {self.name}\n"
                           f"add chain ip {self.name} output "
                           "{ type filter hook output priority 0; policy accept; }\n")
        if ok:
            self.created = True
            atexit.register(self.delete)
        return ok, err

    def drop(self, uid, daddr, comment):
        """Packets that uid's sockets send to daddr are dropped from now on."""
        ok, err = self.nft(f"add rule ip {self.name} output meta skuid {uid} ip daddr {daddr} "
                           f"counter drop comment \"{comment}\"\n")
        if not ok:
            raise AssertionError(f"nft refused a rule: {err}")

    def cut(self, src, dst):
        """One way: node src's messages no longer reach node dst."""
        self.drop(USERS[src], HOSTS[dst], f"kv-{src} -> kv-{dst}")

    def partition(self, *groups):
        """Cuts every link between nodes of different groups, both ways."""
        for g in groups:
            for h in groups:
                if g is not h:
                    for src in g:
                        for dst in h:
                            self.cut(src, dst)

    def heal(self):
        if self.created:
            self.nft(f"flush chain ip {self.name} output\n")

    def delete(self):
        if self.created:
            self.nft(f"delete table ip {self.name}\n")
            self.created = False

    def listing(self):
        try:
            p = subprocess.run(["nft", "list", "table", "ip", self.name], capture_output=True,
                               timeout=10)
            return p.stdout.decode(errors="replace")
        except (OSError, subprocess.TimeoutExpired) as e:
            return repr(e)


def _connects_as(uid, addr, timeout):
    """How a forked child running as uid fares connecting to addr: 0 connected, 1 timed out,
    2 refused by the local firewall (EPERM), 3 another error, 4 could not become uid."""
    pid = os.fork()
    if pid == 0:
        code = 4
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            code = 3
            with socket.create_connection(addr, timeout=timeout):
                code = 0
        except TimeoutError:
            code = 1
        except PermissionError:
            code = 2
        except BaseException:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


_preflight_result = []


def preflight(fw):
    """None when partitions can be made here, else why not (the reason tests skip with)."""
    if _preflight_result:
        return _preflight_result[0]
    reason = _preflight(fw)
    _preflight_result.append(reason)
    return reason


def _preflight(fw):
    if os.geteuid() != 0:
        return ("needs root: it installs nftables rules and runs each node as its own uid "
                "(run as root, e.g. in CI)")
    if shutil.which("nft") is None:
        return "needs nft: install the Debian package nftables (scripts/deps.sh test does)"
    ok, err = fw.create()
    if not ok:
        return f"nftables does not work here (no CAP_NET_ADMIN, or no nf_tables?): nft said: {err}"
    # Prove that a rule cuts what it should before trusting it: a process running as the probe
    # uid reaches a listener on a node address, and no longer once a rule drops its packets.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((HOSTS[2], 0))
        listener.listen(8)
        addr = listener.getsockname()
        code = _connects_as(UID_BASE, addr, 2.0)
        if code != 0:
            return (f"cannot run a process as uid {UID_BASE} and connect to {addr[0]} "
                    f"(exit {code}; a user namespace without that uid?)")
        fw.drop(UID_BASE, HOSTS[2], "preflight")
        code = _connects_as(UID_BASE, addr, 0.5)
        if code not in (1, 2):
            return (f"an nftables output rule on skuid did not cut a connection to {addr[0]} "
                    f"(probe exit {code}):\n{fw.listing()}")
    except AssertionError as e:
        return str(e)
    finally:
        listener.close()
        fw.heal()
    return None


class Call(threading.Thread):
    """Runs one blocking request in the background: a write to a minority node may wait."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def outcome(self, timeout=15):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"the request did not finish within {timeout}s")
        return self.result if self.error is None else self.error


class PartitionTest(unittest.TestCase):
    fw = Firewall()

    @classmethod
    def tearDownClass(cls):
        cls.fw.delete()

    def setUp(self):
        reason = preflight(self.fw)
        if reason:
            self.skipTest(reason)
        self.c = harness.Cluster(3, "majority", extra_flags=FLAGS, hosts=HOSTS, users=USERS)
        self.addCleanup(self.c.close)
        self.addCleanup(self.fw.heal)
        self.c.start_all()

    # -- helpers --

    def describe(self):
        return f"{self.c.describe()}\n--- nftables:\n{self.fw.listing()}"

    def wait_until(self, cond, timeout=harness.DEFAULT_TIMEOUT, what="condition"):
        return harness.wait_until(cond, timeout, what, self.describe)

    def st(self, i):
        return self.c.status(i, timeout=5)

    def new_leader(self, nodes, above_term):
        """The node of `nodes` that leads at a term above above_term, if any."""
        for i in nodes:
            s = self.st(i)
            if s["role"] == "leader" and s["term"] > above_term:
                return i
        return None

    def put_ok(self, i, key, value):
        """A write that must be acknowledged by node i now (it leads a connected majority)."""
        r = self.c.put(i, key, value, timeout=5)
        self.assertEqual(r.status, 200, f"PUT {key} on node {i}: {r}")
        return r.json()["index"]

    def assertRefusedWrite(self, r, node):
        """A write to a node that cannot reach a majority: redirected or refused, never 200."""
        self.assertNotIsInstance(r, Exception, f"PUT on node {node} raised {r!r}")
        self.assertIn(r.status, (307, 503),
                      f"node {node}, cut off from the majority, answered a write with {r}")

    def assertRefusedRead(self, r, node):
        """A linearizable read on a cut-off node: redirected or refused, never answered."""
        self.assertNotIsInstance(r, Exception, f"GET on node {node} raised {r!r}")
        self.assertNotEqual(r.status, 200,
                            f"node {node}, cut off from the majority, answered a linearizable "
                            f"read (possibly stale): {r}")
        self.assertIn(r.status, (307, 503), r)

    def wait_all_follow(self, leader, term):
        """Every node sees `leader` at `term`, and has applied what the leader applied."""
        def converged():
            target = self.st(leader)["applied_index"]
            for i in NODES:
                s = self.st(i)
                if (s["leader"], s["term"]) != (leader, term) or s["applied_index"] < target:
                    return False
            return True

        t0 = time.monotonic()
        self.wait_until(converged, what=f"every node to follow node {leader} at term {term} "
                                        "and apply what it applied")
        return time.monotonic() - t0

    def assertSameEverywhere(self, prefix, expected):
        """Every node holds exactly `expected` under prefix (stale reads: each node's own state)."""
        for i in NODES:
            self.assertEqual(self.c.list_keys(i, prefix, stale=True), expected,
                             f"node {i} holds different data under {prefix!r}")

    # -- scenarios --

    def test_leader_cut_off_from_both_followers(self):
        """The old leader, alone, acknowledges nothing and answers no linearizable or lease read,
        steps down (CheckQuorum) and campaigns without raising its term (PreVote); the two
        followers elect a new leader and go on writing; after the heal the old leader follows it
        and discards the entry it had appended but never committed."""
        c = self.c
        old = c.wait_until(c.leader, what="a leader")
        majority = [i for i in NODES if i != old]
        self.put_ok(old, "part/k", b"before")
        c.wait_converged()
        s = self.st(old)
        old_term, old_commit = s["term"], s["commit_index"]

        self.fw.partition([old], majority)
        t_cut = time.monotonic()
        # Sent at once, while the old leader still believes it leads: it appends the write but
        # can never commit it, and must not acknowledge it. The default read must be confirmed
        # by a majority (ReadIndex), which it cannot reach. Both wait in the background.
        minority_put = Call(lambda: c.put(old, "part/minority", b"never committed", timeout=10))
        first_read = Call(lambda: c.get(old, "part/k", timeout=10))

        new = self.wait_until(lambda: self.new_leader(majority, old_term), timeout=10,
                              what="the majority to elect a new leader")
        elected_after = time.monotonic() - t_cut
        self.assertLess(elected_after, ELECTION_BOUND_S,
                        f"the majority took {elected_after:.2f}s to elect a leader")
        new_term = self.st(new)["term"]
        # The majority carries on: it commits new writes, including one to the key the old leader
        # still holds its old value for.
        self.wait_until(lambda: c.put(new, "part/k", b"after", timeout=3).status == 200,
                        what=f"node {new} to acknowledge a write")
        # Usually the old leader has not noticed yet (CheckQuorum takes one to two election
        # timeouts), and `consistency=leader` shows it: it serves its own stale state, as
        # documented. A lease read must not: the lease ran out before the majority could elect.
        r = c.request(old, "GET", harness.key_path("part/k", "consistency=leader"), timeout=10)
        self.assertIn(r.status, (200, 307, 503), r)
        deposed_but_unaware = r.status == 200
        if deposed_but_unaware:
            self.assertEqual(r.body, b"before", r)
        self.assertRefusedRead(
            c.request(old, "GET", harness.key_path("part/k", "consistency=lease"), timeout=10), old)
        for k in range(10):
            self.put_ok(new, f"part/maj/{k}", b"majority")
        # The other follower follows the new leader; the old one heard nothing of it.
        other = [i for i in majority if i != new][0]
        self.wait_until(lambda: self.st(other)["leader"] == new, what="the majority's follower")

        self.assertRefusedRead(first_read.outcome(), old)
        self.assertRefusedWrite(minority_put.outcome(), old)
        # CheckQuorum: a leader that hears from no majority for an election timeout steps down;
        # an election timeout later it campaigns, with a pre-vote nobody answers.
        self.wait_until(lambda: self.st(old)["role"] == "pre-candidate", timeout=10,
                        what=f"node {old} to step down and campaign")
        s = self.st(old)
        # The minority committed nothing: the write it appended stays uncommitted...
        self.assertEqual(s["commit_index"], old_commit, s)
        self.assertGreater(s["last_index"], old_commit, s)
        # ...and PreVote keeps the isolated node from raising its term however often it campaigns.
        self.assertEqual(s["term"], old_term, s)
        # Its own state is really cut off: a stale read still shows the old value...
        r = c.get(old, "part/k", stale=True)
        self.assertEqual((r.status, r.body), (200, b"before"), r)
        # ...which the default read refuses to serve, and a write is still refused.
        self.assertRefusedRead(c.get(old, "part/k", timeout=10), old)
        self.assertRefusedWrite(c.put(old, "part/minority-2", b"no", timeout=10), old)

        self.fw.heal()
        healed_in = self.wait_all_follow(new, new_term)
        print(f"\n  new leader {new} elected {elected_after:.2f}s after the cut"
              f"{' (the old one still believed it led)' if deposed_but_unaware else ''}; "
              f"converged {healed_in:.2f}s after the heal", flush=True)
        s = self.st(old)
        self.assertEqual(s["role"], "follower", s)
        self.assertGreaterEqual(s["discarded_entries"], 1,
                                f"node {old} should have discarded its uncommitted entry: {s}")
        self.assertEqual(s["discarded_applied_entries"], 0,
                         f"majority replication never applies what it then discards: {s}")
        self.assertEqual(self.st(new)["term"], new_term, "the healed node disrupted the leader")
        expected = {"part/k": b"after", **{f"part/maj/{k}": b"majority" for k in range(10)}}
        self.assertSameEverywhere("part/", expected)
        r = c.get(new, "part/k")
        self.assertEqual((r.status, r.body), (200, b"after"), r)
        self.assertEqual(c.get(new, "part/minority").status, 404)

    def test_follower_cut_off_then_healed_catches_up_without_disruption(self):
        """A cut-off follower does not stop the leader and the other follower from committing;
        it campaigns in vain without raising its term (PreVote), so when the link heals it
        rejoins under the same leader at the same term and catches up."""
        c = self.c
        leader = c.wait_until(c.leader, what="a leader")
        lone, other = [i for i in NODES if i != leader]
        self.put_ok(leader, "part/f/k", b"before")
        c.wait_converged()
        term = self.st(leader)["term"]

        self.fw.partition([lone], [leader, other])
        # The majority commits at once: the leader and the other follower are two of three.
        for k in range(20):
            self.put_ok(leader, f"part/f/{k:02d}", b"majority")
        self.put_ok(leader, "part/f/k", b"after")
        # Wait (a condition, not a sleep) until the leader has not heard from the lone follower
        # for three election timeouts: long enough for it to have campaigned more than once.
        def silent_for(ms):
            f = next(f for f in self.st(leader)["followers"] if f["node"] == lone)
            return f["last_ack_ms_ago"] is not None and f["last_ack_ms_ago"] >= ms
        self.wait_until(lambda: silent_for(3 * ELECTION_MS), timeout=10,
                        what=f"the leader to hear nothing from node {lone} for a while")
        self.wait_until(lambda: self.st(lone)["role"] == "pre-candidate", timeout=10,
                        what=f"node {lone} to campaign")
        s = self.st(lone)
        self.assertEqual(s["term"], term, f"PreVote should hold node {lone}'s term: {s}")
        self.assertLess(s["applied_index"], self.st(leader)["applied_index"], s)
        r = c.get(lone, "part/f/k", stale=True)
        self.assertEqual((r.status, r.body), (200, b"before"), r)
        self.assertRefusedRead(c.get(lone, "part/f/k", timeout=10), lone)
        self.assertRefusedWrite(c.put(lone, "part/f/lone", b"no", timeout=10), lone)
        s = self.st(leader)
        self.assertEqual((s["role"], s["term"]), ("leader", term), s)

        self.fw.heal()
        healed_in = self.wait_all_follow(leader, term)
        print(f"\n  converged {healed_in:.2f}s after the heal", flush=True)
        self.assertEqual(c.leader(), leader)
        self.assertEqual(self.st(lone)["discarded_entries"], 0)
        expected = {"part/f/k": b"after", **{f"part/f/{k:02d}": b"majority" for k in range(20)}}
        self.assertSameEverywhere("part/f/", expected)
        r = c.get(lone, "part/f/k")  # redirected to the leader now, no longer refused
        self.assertEqual(r.status, 307, r)

    def test_leader_that_can_send_but_not_receive_steps_down(self):
        """One-way cut: the leader's heartbeats still reach the followers, but nothing they send
        reaches it. CheckQuorum makes it step down (it hears no majority), the followers then
        elect one of themselves, and the leader's write that they had received is committed by
        the new leader: the 503 it got meant "maybe", not "no"."""
        c = self.c
        old = c.wait_until(c.leader, what="a leader")
        followers = [i for i in NODES if i != old]
        self.put_ok(old, "part/1w/k", b"before")
        c.wait_converged()
        old_term = self.st(old)["term"]

        for f in followers:
            self.fw.cut(f, old)
        t_cut = time.monotonic()
        r = c.put(old, "part/1w/maybe", b"reached the followers", timeout=10)
        self.assertRefusedWrite(r, old)
        self.wait_until(lambda: self.st(old)["role"] != "leader", timeout=10,
                        what=f"node {old} to step down (CheckQuorum)")
        new = self.wait_until(lambda: self.new_leader(followers, old_term), timeout=10,
                              what="the followers to elect a new leader")
        elected_after = time.monotonic() - t_cut
        new_term = self.st(new)["term"]
        self.put_ok(new, "part/1w/k", b"after")
        # The old leader campaigns too: its pre-votes reach the others, their answers do not, and
        # its term stays where it was.
        self.wait_until(lambda: self.st(old)["role"] == "pre-candidate", timeout=10,
                        what=f"node {old} to campaign")
        s = self.st(old)
        self.assertEqual(s["term"], old_term, f"PreVote should hold node {old}'s term: {s}")
        self.assertRefusedRead(c.get(old, "part/1w/k", timeout=10), old)

        self.fw.heal()
        healed_in = self.wait_all_follow(new, new_term)
        print(f"\n  new leader {new} elected {elected_after:.2f}s after the cut; "
              f"converged {healed_in:.2f}s after the heal", flush=True)
        self.assertEqual(self.st(new)["term"], new_term, "the healed node disrupted the leader")
        self.assertSameEverywhere("part/1w/", {"part/1w/k": b"after",
                                               "part/1w/maybe": b"reached the followers"})


if __name__ == "__main__":
    harness.main()
