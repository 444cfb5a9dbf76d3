"""The command-line client (ddialab kv get|put|del|status) against a real cluster, its exit codes
and one-line errors, and the node's own refusals (foreign data directory, bad flags).
"""

import os
import unittest

import harness

MAX_VALUE = 65536


def one_line(test, text, what):
    """stderr holds exactly one non-empty line."""
    text = text.decode(errors="replace")
    test.assertTrue(text.endswith("\n"), f"{what}: {text!r}")
    test.assertEqual(text.count("\n"), 1, f"{what}: not one line: {text!r}")
    test.assertTrue(text.strip(), f"{what}: empty message")
    return text.strip()


class CliTest(harness.ClusterTestCase):
    FLAGS = ("--max-value-bytes", str(MAX_VALUE))

    def cli(self, *args, endpoints=None, input=None):
        """Runs ddialab kv ARGS --endpoints ...; returns the CompletedProcess."""
        if endpoints is None:
            endpoints = [1, 2, 3]
        urls = ",".join(e if isinstance(e, str) else self.cluster.url(e) for e in endpoints)
        # The flag goes right after the verb: after "--" everything is positional.
        argv = [harness.BIN, "kv", args[0], "--endpoints", urls, *args[1:]]
        return harness.run(argv, timeout=60, input=input)

    def assert_ok(self, proc, stdout=None):
        self.assertEqual(proc.returncode, 0, proc.stderr)
        if stdout is not None:
            self.assertEqual(proc.stdout, stdout)
        return proc

    def dead_endpoint(self):
        (port,) = harness.free_ports(1)
        return f"127.0.0.1:{port}"

    # -- get, put, del --

    def test_put_get_del_round_trip(self):
        p = self.assert_ok(self.cli("put", "cli/greeting", "hello"))
        line = p.stdout.decode()
        self.assertRegex(line, r"^OK version=\d+ index=\d+\n$")
        self.assert_ok(self.cli("get", "cli/greeting"), b"hello")
        r = self.cluster.get(1, "cli/greeting")
        self.assertEqual((r.status, r.body), (200, b"hello"))
        p = self.assert_ok(self.cli("del", "cli/greeting"))
        self.assertRegex(p.stdout.decode(), r"^OK index=\d+\n$")
        p = self.cli("get", "cli/greeting")
        self.assertEqual(p.returncode, 1, "a missing key exits 1")
        self.assertEqual(p.stdout, b"")
        msg = one_line(self, p.stderr, "missing key")
        self.assertIn("404", msg)
        p = self.cli("del", "cli/greeting")
        self.assertEqual(p.returncode, 1, "deleting a missing key exits 1")
        one_line(self, p.stderr, "delete of a missing key")

    def test_a_follower_listed_first_finds_the_leader(self):
        for endpoints in ([2, 1], [3], [2]):
            key = "cli/via-" + "-".join(map(str, endpoints))
            self.assert_ok(self.cli("put", key, "redirected", endpoints=endpoints))
            r = self.cluster.get(1, key)
            self.assertEqual((r.status, r.body), (200, b"redirected"), endpoints)
            self.assert_ok(self.cli("get", key, endpoints=endpoints), b"redirected")
            self.assert_ok(self.cli("del", key, endpoints=endpoints))
            self.assertEqual(self.cluster.get(1, key).status, 404)

    def test_an_unreachable_endpoint_is_skipped(self):
        dead = self.dead_endpoint()
        self.assert_ok(self.cli("put", "cli/skip", "v", endpoints=[dead, 3]))
        self.assert_ok(self.cli("get", "cli/skip", endpoints=[dead, 2]), b"v")

    def test_no_reachable_endpoint_exits_3_naming_every_endpoint(self):
        dead = [self.dead_endpoint(), self.dead_endpoint()]
        for args in (("get", "k"), ("put", "k", "v"), ("del", "k"), ("status",)):
            p = self.cli(*args, endpoints=dead)
            self.assertEqual(p.returncode, 3, args)
            msg = one_line(self, p.stderr.splitlines(keepends=True)[-1], args)
            for e in dead:
                self.assertIn(e, msg)
            if args[0] == "status":
                self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)

    def test_stale_get_reads_a_followers_copy(self):
        self.assert_ok(self.cli("put", "cli/stale", "copy"))
        for node in (2, 3):
            self.cluster.wait_until(
                lambda: self.cli("get", "cli/stale", "--consistency", "stale",
                                 endpoints=[node]).stdout == b"copy",
                what=f"node {node} to serve the stale read")

    def test_conditional_puts(self):
        p = self.assert_ok(self.cli("put", "cli/cas", "one", "--if-none-match"))
        version = int(p.stdout.decode().split()[1].split("=")[1])
        p = self.cli("put", "cli/cas", "again", "--if-none-match")
        self.assertEqual(p.returncode, 1)
        one_line(self, p.stderr, "if-none-match on an existing key")
        p = self.cli("put", "cli/cas", "two", "--if-match", str(version + 1000))
        self.assertEqual(p.returncode, 1)
        self.assertIn("412", one_line(self, p.stderr, "if-match"))
        self.assert_ok(self.cli("put", "cli/cas", "two", "--if-match", f'"{version}"'))
        p = self.assert_ok(self.cli("get", "cli/cas", "--show-version"), b"two")
        new_version = int(p.stderr.decode())
        self.assertGreater(new_version, version)
        self.assertEqual(self.cluster.get(1, "cli/cas").header("etag"), f'"{new_version}"')

    def test_failed_if_match_names_the_current_version(self):
        p = self.assert_ok(self.cli("put", "cli/cas-msg", "one"))
        version = int(p.stdout.decode().split()[1].split("=")[1])
        p = self.cli("put", "cli/cas-msg", "two", "--if-match", str(version + 1))
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"current version is {version}", one_line(self, p.stderr, "if-match"))

    def test_binary_value_from_stdin_round_trips(self):
        value = bytes(range(256)) + os.urandom(4000) + b"\n\x00"
        self.assert_ok(self.cli("put", "cli/binary", "--file", "-", input=value))
        self.assert_ok(self.cli("get", "cli/binary"), value)
        self.assertEqual(self.cluster.get(1, "cli/binary").body, value)

    def test_odd_keys_round_trip(self):
        for key in ("a/b c", "--looks-like-a-flag", "100%", "\u00e9t\u00e9?#&"):
            self.assert_ok(self.cli("put", "--", key, "odd"))
            r = self.cluster.get(1, key)
            self.assertEqual((r.status, r.body), (200, b"odd"), key)
            self.assert_ok(self.cli("get", "--", key), b"odd")

    def test_value_over_the_limit_reports_the_servers_413(self):
        path = os.path.join(self.cluster.dir, "too-big.bin")
        with open(path, "wb") as f:
            f.write(b"x" * (1 << 20))
        p = self.cli("put", "cli/too-big", "--file", path)
        self.assertEqual(p.returncode, 3)
        msg = one_line(self, p.stderr, "value over the limit")
        self.assertIn("413", msg)
        self.assertNotIn("may or may not have been applied", msg)

    def test_value_just_over_the_limit_reports_413(self):
        path = os.path.join(self.cluster.dir, "a-bit-big.bin")
        with open(path, "wb") as f:
            f.write(b"x" * (MAX_VALUE + 1))
        p = self.cli("put", "cli/a-bit-big", "--file", path)
        self.assertEqual(p.returncode, 3)
        self.assertIn("413", one_line(self, p.stderr, "value just over the limit"))

    # -- status --

    def test_status_lists_every_node(self):
        p = self.assert_ok(self.cli("status"))
        lines = p.stdout.decode().splitlines()
        self.assertEqual(len(lines), 4, lines)
        self.assertEqual(lines[0].split(), ["ENDPOINT", "NODE", "ROLE", "TERM", "LEADER", "LAST",
                                            "COMMIT", "APPLIED", "LAG"])
        rows = {int(line.split()[1]): line.split() for line in lines[1:]}
        self.assertEqual(set(rows), {1, 2, 3})
        self.assertEqual(rows[1][2], "leader")
        self.assertEqual(rows[2][2], "follower")
        self.assertEqual(rows[1][8], "-")
        for node in (1, 2, 3):
            self.assertEqual(rows[node][0], self.cluster.url(node))
            self.assertEqual(rows[node][4], "1")

    def test_status_with_a_node_down_exits_0_and_says_which(self):
        c = self.cluster
        dead = self.dead_endpoint()
        p = self.assert_ok(self.cli("status", endpoints=[1, 2, dead]))
        lines = p.stdout.decode().splitlines()
        self.assertEqual(len(lines), 4)
        self.assertIn("unreachable", lines[3])
        msg = one_line(self, p.stderr, "status with one endpoint down")
        self.assertIn(dead, msg)
        self.assertEqual(c.status(1)["role"], "leader")

    # -- usage errors --

    def test_usage_errors_exit_2_with_one_line(self):
        for args in (
            ("get",),
            ("get", "a", "b"),
            ("put", "k"),
            ("put", "k", "v", "extra"),
            ("put", "k", "v", "--file", "/dev/null"),
            ("put", "k", "--file", "/nonexistent/file"),
            ("put", "k", "v", "--if-match", "abc"),
            ("put", "k", "v", "--if-match", "1", "--if-none-match"),
            ("get", "k", "--consistency", "eventual"),
            ("get", "k", "--timeout", "0s"),
            ("get", "k", "--timeout", "soon"),
            ("get", "k", "--bogus"),
            ("del",),
            ("status", "extra"),
            ("get", ""),
        ):
            p = self.cli(*args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertEqual(p.stdout, b"", args)
            msg = one_line(self, p.stderr, str(args))
            self.assertIn("see --help", msg, args)

    def test_unknown_flag_message_says_see_help_once(self):
        p = self.cli("put", "k", "v", "--bogus")
        self.assertEqual(p.stderr.decode().count("(see --help)"), 1, p.stderr)

    def test_help_exits_0(self):
        for verb in ("get", "put", "del", "status"):
            p = harness.run([harness.BIN, "kv", verb, "--help"])
            self.assertEqual(p.returncode, 0, verb)
            self.assertIn(b"--endpoints", p.stdout)


class CliDeadLeaderTest(unittest.TestCase):
    """The leader is dead and nobody promoted another: writes fail, saying where they went."""

    def test_write_fails_naming_the_dead_leader_and_stale_reads_still_work(self):
        c = harness.Cluster(3)
        self.addCleanup(c.close)
        c.start_all()
        self.assertEqual(c.put(1, "dead/k", b"before").status, 200)
        c.wait_converged()
        c.kill(1)
        urls = ",".join(c.url(i) for i in (2, 3))
        p = harness.run([harness.BIN, "kv", "put", "dead/k", "after", "--endpoints", urls,
                         "--timeout", "2s"])
        self.assertEqual(p.returncode, 3, p.stderr)
        msg = one_line(self, p.stderr, "write with the leader dead")
        self.assertIn(f"redirected to {c.url(1)}/kv/dead%2Fk", msg)
        for i in (2, 3):
            self.assertIn(c.url(i), msg)
        p = harness.run([harness.BIN, "kv", "get", "dead/k", "--consistency", "stale",
                         "--endpoints", urls])
        self.assertEqual((p.returncode, p.stdout), (0, b"before"), p.stderr)


class NodeRefusalTest(unittest.TestCase):
    """The node itself: a data directory of another node, and bad flags."""

    def setUp(self):
        self.c = harness.Cluster(3)
        self.addCleanup(self.c.close)

    def node_argv(self, node, data_dir, *extra):
        http, peer = harness.free_ports(2)
        return [harness.BIN, "kv", "--node", str(node), "--http", f"127.0.0.1:{http}",
                "--peer", f"127.0.0.1:{peer}", "--peers", self.c.peers_flag(),
                "--data-dir", data_dir, *extra]

    def test_a_node_refuses_another_nodes_data_directory(self):
        c = self.c
        c.start_all()
        self.assertEqual(c.put(1, "refuse/k", b"v").status, 200)
        for argv in (self.node_argv(2, c.data_dir(1)),
                     self.node_argv(1, c.data_dir(1), "--cluster-id", "another")):
            p = harness.run(argv, timeout=30)
            self.assertNotEqual(p.returncode, 0, argv)
            msg = one_line(self, p.stderr, "foreign data directory")
            self.assertIn("refusing to start", msg)
            self.assertIn(c.data_dir(1), msg)
        # Node 1 was not disturbed.
        r = c.get(1, "refuse/k")
        self.assertEqual((r.status, r.body), (200, b"v"))
        # Its directory still works for node 1 itself after a restart.
        c.restart(1)
        c.wait_ready()
        self.assertEqual(c.get(1, "refuse/k").body, b"v")

    def test_bad_node_flags_exit_2_with_one_line(self):
        d = os.path.join(self.c.dir, "bad-flags")
        cases = [
            [harness.BIN, "kv"],  # no --node
            self.node_argv(1, d, "--bogus"),
            self.node_argv(1, d, "--replication", "weird"),
            self.node_argv(1, d, "--replication", "quorum=4"),
            self.node_argv(1, d, "--fsync", "sometimes"),
            self.node_argv(1, d, "--write-timeout", "soon"),
            self.node_argv(1, d, "--max-value-bytes", "0"),
            self.node_argv(1, d, "--leader", "7"),
            self.node_argv(1, d, "--log-level", "loud"),
            self.node_argv(1, d, "stray-argument"),
            self.node_argv(5, d),  # not in --peers
            self.node_argv(1, d, "--http", "nope"),
            self.node_argv(1, d, "--peers", "1=127.0.0.1"),
        ]
        for argv in cases:
            p = harness.run(argv, timeout=30)
            self.assertEqual(p.returncode, 2, (argv, p.stderr))
            msg = one_line(self, p.stderr, " ".join(argv[2:]))
            self.assertTrue(msg.startswith("ddialab kv: "), msg)
        self.assertFalse(os.path.exists(d), "a refused start creates no data directory")

    def test_config_file_gives_defaults_and_flags_override_it(self):
        path = os.path.join(self.c.dir, "node.conf")
        with open(path, "w") as f:
            f.write("# a comment\nreplication = async\nmax-value-bytes = 100\n")
        c = harness.Cluster(3, replication=None,
                            extra_flags=["--config", path, "--max-value-bytes", "200"])
        self.addCleanup(c.close)
        c.start_all()
        s = c.status(1)
        self.assertEqual((s["replication"], s["commit_quorum"]), ("async", 1))
        self.assertEqual(c.put(1, "conf/k", b"x" * 200).status, 200)
        self.assertEqual(c.put(1, "conf/k", b"x" * 201).status, 413)

    def test_an_http_port_in_use_is_a_one_line_error(self):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            taken = s.getsockname()[1]
            argv = self.node_argv(1, os.path.join(self.c.dir, "port-taken"))
            argv[argv.index("--http") + 1] = f"127.0.0.1:{taken}"
            p = harness.run(argv, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(str(taken), p.stderr.decode().splitlines()[-1])


if __name__ == "__main__":
    harness.main()
