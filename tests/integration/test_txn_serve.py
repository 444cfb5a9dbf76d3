"""`ddialab txn serve`: sessions over HTTP, driven as two terminals with curl would drive them.

A statement that must wait for another transaction hangs (its request gets no answer) until that
transaction ends; these tests run such a request in a thread, wait until GET /sessions shows its
session blocked, act in the other session, and then check what the hanging request answered.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import unittest
import urllib.parse

import harness

LEVELS = ("read-uncommitted", "read-committed", "snapshot", "serial", "2pl", "ssi")


class Server:
    """One `ddialab txn serve` on a free port, its log in a temporary directory."""

    def __init__(self, *flags):
        self.flags = list(flags)
        self.dir = harness.make_temp_dir("ddialab-txn-serve-")
        self.log_path = os.path.join(self.dir, "serve.log")
        self.proc = None
        self.addr = None

    def start(self):
        def launch(new_ports):
            self.addr = f"127.0.0.1:{harness.free_ports(1)[0]}"
            argv = [harness.BIN, "txn", "serve", "--listen", self.addr] + self.flags
            with open(self.log_path, "ab") as log:
                self.proc = harness.spawn(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT)
        harness.start_server(launch, self._answers, "the server to answer GET /sessions",
                             self.log_tail)

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"the server exited with {self.proc.returncode}:\n"
                               + self.log_tail())
        return harness.request(self.addr, "GET", "/sessions", timeout=2).status == 200

    def log_tail(self, lines=30):
        return harness.log_tail(self.log_path, "serve", lines)

    def request(self, method, path, body=None, headers=None, timeout=harness.HTTP_TIMEOUT):
        return harness.request(self.addr, method, path, body, headers, timeout)

    def call(self, method, path, body=None, status=200, headers=None):
        """A request whose status must be `status`; returns its JSON body."""
        if isinstance(body, dict):
            body = json.dumps(body)
            headers = dict(headers or {}, **{"Content-Type": "application/json"})
        r = self.request(method, path, body, headers)
        assert r.status == status, f"{method} {path}: expected {status}, got {r}\n" \
            + self.log_tail()
        return r.json()

    def stop(self, timeout=15):
        """SIGTERM; returns the exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        return harness.reap(self.proc, timeout=timeout)

    def close(self):
        """Stops the server and removes its directory; fails if it did not exit cleanly (with a
        sanitizer build, a leak or an error report makes the exit code non-zero)."""
        rc = 0
        if self.proc is not None:
            try:
                rc = self.stop(timeout=15) if self.proc.poll() is None else self.proc.returncode
            except subprocess.TimeoutExpired:
                rc = "still running 15 s after SIGTERM"
        tail = self.log_tail(60)
        harness.remove_temp_dir(self.dir)
        if rc != 0 or "runtime error" in tail:
            raise AssertionError(f"the server did not exit cleanly ({rc}):\n{tail}")

    # -- the API --

    def session(self, isolation=None):
        body = {"isolation": isolation} if isolation else None
        return self.call("POST", "/sessions", body, status=201)["id"]

    def sessions(self):
        return {s["id"]: s for s in self.call("GET", "/sessions")["sessions"]}

    def state(self):
        return {row["key"]: (row["value"], row["writer"]) for row in self.call("GET", "/state")["rows"]}

    def begin(self, sid, isolation=None):
        body = {"isolation": isolation} if isolation else None
        return self.call("POST", f"/sessions/{sid}/begin", body)["txn"]

    def kv(self, sid, key):
        return f"/sessions/{sid}/kv/{urllib.parse.quote(key, safe='')}"

    def wait_blocked(self, sid, on=None):
        """Waits until session sid is blocked (on transaction `on`, if given); returns it."""
        def blocked():
            s = self.sessions()[sid]
            return s if s["state"] == "blocked" and (on is None or s["waiting_for"] == on) \
                else None
        return harness.wait_until(blocked, what=f"session {sid} to be blocked",
                                  describe=self.log_tail)


class InBackground(threading.Thread):
    """One request in a thread: for a statement that hangs until another session acts."""

    def __init__(self, server, method, path, body=None):
        super().__init__(daemon=True)
        self.args = (method, path, body)
        self.server = server
        self.response = None
        self.error = None
        self.start()

    def run(self):
        try:
            self.response = self.server.request(*self.args, timeout=60)
        except Exception as e:  # reported by result()
            self.error = e

    def result(self, timeout=harness.DEFAULT_TIMEOUT):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"{self.args[0]} {self.args[1]} is still waiting")
        if self.error is not None:
            raise self.error
        return self.response


class ServeTestCase(unittest.TestCase):
    FLAGS = ("--setup", "1=10 2=20 3=30")

    @classmethod
    def setUpClass(cls):
        cls.server = Server(*cls.FLAGS)
        cls.addClassCleanup(cls.server.close)
        cls.server.start()

    def setUp(self):
        # Fresh data (the --setup) and every session idle; sessions of earlier tests stay.
        self.server.call("POST", "/reset")

    def assertJsonError(self, resp, status, code):
        self.assertEqual(resp.status, status, resp)
        self.assertTrue(resp.header("content-type", "").startswith("application/json"), resp)
        body = resp.json()
        self.assertEqual(body.get("error"), code, resp)
        self.assertIsInstance(body.get("message"), str, resp)
        self.assertTrue(body["message"], resp)
        return body


class TwoSessionsTest(ServeTestCase):

    def test_at_snapshot_the_second_writer_waits_then_fails_with_serialization_failure(self):
        s = self.server
        a, b = s.session("snapshot"), s.session("snapshot")
        ta, tb = s.begin(a), s.begin(b)
        self.assertEqual(s.call("GET", s.kv(a, "1"))["value"], "10")
        self.assertEqual(s.call("GET", s.kv(b, "1"))["value"], "10")
        self.assertEqual(s.call("PUT", s.kv(a, "1"), "11")["value"], "11")

        put = InBackground(s, "PUT", s.kv(b, "1"), "11")
        blocked = s.wait_blocked(b, on=ta)
        self.assertEqual(blocked["txn"], tb)
        self.assertIn(f"waiting for T{ta}", blocked["summary"])
        self.assertTrue(put.is_alive(), "the second PUT hangs while the first writer runs")

        s.call("POST", f"/sessions/{a}/commit")
        body = self.assertJsonError(put.result(), 409, "serialization_failure")
        self.assertEqual(body["message"], "could not serialize access due to concurrent update")
        self.assertEqual(body["waited_for"], [ta])
        self.assertGreaterEqual(body["waited_ms"], 0)
        self.assertTrue(body["rolled_back"])

        # As in a PostgreSQL transaction block after an error: commands fail until it ends.
        self.assertEqual(s.sessions()[b]["state"], "aborted")
        self.assertJsonError(s.request("GET", s.kv(b, "2")), 409, "in_failed_transaction")
        done = s.call("POST", f"/sessions/{b}/commit")
        self.assertEqual((done["committed"], done["rolled_back"]), (False, True))
        self.assertEqual(s.sessions()[b]["state"], "idle")
        self.assertEqual(s.state()["1"], ("11", ta))

    def test_at_read_committed_the_second_writer_goes_on_and_an_update_is_lost(self):
        s = self.server
        a, b = s.session(), s.session()
        self.assertEqual(s.sessions()[a]["isolation"], "read-committed", "the default level")
        ta, tb = s.begin(a), s.begin(b)
        # Both read the counter at 10 and write 10 + 1.
        self.assertEqual(s.call("GET", s.kv(a, "1"))["value"], "10")
        self.assertEqual(s.call("GET", s.kv(b, "1"))["value"], "10")
        s.call("PUT", s.kv(a, "1"), "11")
        put = InBackground(s, "PUT", s.kv(b, "1"), "11")
        s.wait_blocked(b, on=ta)
        s.call("POST", f"/sessions/{a}/commit")
        r = put.result()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["waited_for"], [ta])
        self.assertEqual(r.json()["txn"], tb)
        s.call("POST", f"/sessions/{b}/commit")
        self.assertEqual(s.state()["1"], ("11", tb), "two increments of 10 left 11: one was lost")

    def test_write_skew_commits_at_snapshot_and_fails_at_ssi(self):
        s = self.server
        for level, second_commit in (("snapshot", 200), ("ssi", 409)):
            s.call("POST", "/reset", {"setup": "alice=1 bob=1"})
            a, b = s.session(level), s.session(level)
            s.begin(a), s.begin(b)
            for sid in (a, b):
                scan = s.call("GET", f"/sessions/{sid}/scan?where=value%20%3D%3D%201")
                self.assertEqual(scan["count"], 2, "both doctors are on call")
            s.call("PUT", s.kv(a, "alice"), "0")
            s.call("PUT", s.kv(b, "bob"), "0")
            s.call("POST", f"/sessions/{a}/commit")
            r = s.request("POST", f"/sessions/{b}/commit")
            if second_commit == 200:
                self.assertEqual(r.status, 200, r)
                self.assertEqual(s.state()["alice"][0] + s.state()["bob"][0], "00",
                                 "nobody is left on call")
            else:
                self.assertJsonError(r, 409, "serialization_failure")
                self.assertEqual(s.sessions()[b]["state"], "idle", "a failed commit ends it")
                self.assertEqual(s.state()["bob"][0], "1")

    def test_a_deadlock_rolls_back_one_and_wakes_the_other(self):
        s = self.server
        a, b = s.session("2pl"), s.session("2pl")
        ta, tb = s.begin(a), s.begin(b)
        s.call("GET", s.kv(a, "1"))
        s.call("GET", s.kv(b, "1"))  # both hold a shared lock on 1
        put = InBackground(s, "PUT", s.kv(a, "1"), "11")
        s.wait_blocked(a, on=tb)
        # b's write would wait for a, which waits for b: b closes the cycle and is rolled back.
        self.assertJsonError(s.request("PUT", s.kv(b, "1"), "12"), 409, "deadlock_detected")
        r = put.result()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["waited_for"], [tb])
        s.call("POST", f"/sessions/{a}/commit")
        s.call("POST", f"/sessions/{b}/abort")
        self.assertEqual(s.state()["1"], ("11", ta))

    def test_waiting_statements_resume_in_arrival_order(self):
        s = self.server
        a, b, c = s.session(), s.session(), s.session()
        ta = s.begin(a)
        s.call("PUT", s.kv(a, "2"), "21")
        first = InBackground(s, "PUT", s.kv(b, "2"), "22")  # autocommit
        s.wait_blocked(b, on=ta)
        second = InBackground(s, "PUT", s.kv(c, "2"), "23")
        s.wait_blocked(c)
        s.call("POST", f"/sessions/{a}/commit")
        self.assertEqual(first.result().status, 200)
        self.assertEqual(second.result().status, 200)
        self.assertEqual(s.state()["2"][0], "23", "b wrote before c")

    def test_a_session_with_a_waiting_statement_refuses_a_second_one(self):
        s = self.server
        a, b = s.session(), s.session()
        s.begin(a)
        s.call("PUT", s.kv(a, "3"), "31")
        put = InBackground(s, "PUT", s.kv(b, "3"), "32")
        s.wait_blocked(b)
        for method, path in (("GET", s.kv(b, "1")), ("POST", f"/sessions/{b}/commit"),
                             ("POST", f"/sessions/{b}/begin")):
            self.assertJsonError(s.request(method, path), 409, "session_busy")
        self.assertEqual(s.call("GET", f"/sessions/{b}")["state"], "blocked")
        s.call("POST", f"/sessions/{a}/abort")
        self.assertEqual(put.result().status, 200)

    def test_a_client_that_goes_away_while_waiting_leaves_its_transaction_open(self):
        s = self.server
        a, b = s.session(), s.session()
        ta, tb = s.begin(a), s.begin(b)
        s.call("PUT", s.kv(a, "1"), "11")
        s.call("PUT", s.kv(b, "2"), "22")
        host, port = s.addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"PUT {s.kv(b, '1')} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n12"
                         .encode())
            s.wait_blocked(b, on=ta)
        # Like a cancelled psql query: the statement is gone, the transaction goes on.
        harness.wait_until(lambda: s.sessions()[b]["state"] == "in_transaction",
                           what="the cancelled statement to be forgotten", describe=s.log_tail)
        self.assertEqual(s.sessions()[b]["txn"], tb)
        s.call("POST", f"/sessions/{a}/commit")
        self.assertEqual(s.call("GET", s.kv(b, "2"))["value"], "22")
        s.call("POST", f"/sessions/{b}/commit")
        self.assertEqual(s.state()["1"], ("11", ta), "the cancelled write never happened")
        self.assertEqual(s.state()["2"], ("22", tb))

    def test_deleting_a_session_answers_its_waiting_statement_and_aborts_its_transaction(self):
        s = self.server
        a, b = s.session(), s.session()
        ta, tb = s.begin(a), s.begin(b)
        s.call("PUT", s.kv(a, "1"), "11")
        put = InBackground(s, "PUT", s.kv(b, "1"), "12")
        s.wait_blocked(b, on=ta)
        gone = s.call("DELETE", f"/sessions/{b}")
        self.assertEqual(gone["aborted_txn"], tb)
        self.assertJsonError(put.result(), 409, "session_deleted")
        self.assertNotIn(b, s.sessions())
        self.assertJsonError(s.request("GET", s.kv(b, "1")), 404, "not_found")
        s.call("POST", f"/sessions/{a}/commit")


class StatementsTest(ServeTestCase):

    def test_outside_begin_each_statement_is_its_own_transaction(self):
        s = self.server
        a = s.session()
        put = s.call("PUT", s.kv(a, "k/with slash"), "v")
        self.assertTrue(put["autocommit"])
        self.assertEqual(s.state()["k/with slash"], ("v", put["txn"]))
        self.assertEqual(s.sessions()[a]["state"], "idle")
        self.assertEqual(s.call("DELETE", s.kv(a, "k/with slash"))["deleted"], True)
        self.assertEqual(s.call("DELETE", s.kv(a, "k/with slash"))["deleted"], False)
        self.assertJsonError(s.request("GET", s.kv(a, "k/with slash")), 404, "not_found")

    def test_get_reports_the_writer_and_a_missing_key_is_404(self):
        s = self.server
        a = s.session()
        t = s.begin(a)
        self.assertEqual(s.call("GET", s.kv(a, "1")), {"key": "1", "value": "10", "writer": 0,
                                                       "txn": t})
        s.call("PUT", s.kv(a, "new"), {"value": 7})
        self.assertEqual(s.call("GET", s.kv(a, "new"))["writer"], t)
        body = self.assertJsonError(s.request("GET", s.kv(a, "nope")), 404, "not_found")
        self.assertEqual(body["key"], "nope")
        self.assertEqual(s.sessions()[a]["state"], "in_transaction", "a miss is no error")
        s.call("POST", f"/sessions/{a}/abort")
        self.assertNotIn("new", s.state())

    def test_scan_with_a_modulo_predicate_returns_rows_with_their_writers(self):
        s = self.server
        a = s.session()
        s.call("PUT", s.kv(a, "4"), "40")
        where = urllib.parse.quote("value % 20 == 0")
        rows = s.call("GET", f"/sessions/{a}/scan?where={where}")["rows"]
        self.assertEqual([(r["key"], r["value"]) for r in rows], [("2", "20"), ("4", "40")])
        self.assertEqual(rows[0]["writer"], 0)
        self.assertGreater(rows[1]["writer"], 0)
        every = s.call("GET", f"/sessions/{a}/scan")
        self.assertEqual(every["count"], 4)
        for clause, keys in (("key >= 2", ["2", "3", "4"]), ("value != 10", ["2", "3", "4"]),
                             ("key<2", ["1"]), ("value <= '20'", ["1", "2"])):
            got = s.call("GET", f"/sessions/{a}/scan?" + urllib.parse.urlencode({"where": clause}))
            self.assertEqual([r["key"] for r in got["rows"]], keys, clause)

    def test_update_and_delete_where(self):
        s = self.server
        a = s.session()
        t = s.begin(a)
        r = s.call("POST", f"/sessions/{a}/update",
                   {"where": "value >= 20", "set": "value + 1"})
        self.assertEqual(r["updated"], 2)  # 2=21 3=31
        q = urllib.parse.urlencode({"where": "key == 1", "set": "value = 4"})
        self.assertEqual(s.call("POST", f"/sessions/{a}/update?{q}")["updated"], 1)
        q = urllib.parse.urlencode({"where": "value % 2 == 1"})
        self.assertEqual(s.call("POST", f"/sessions/{a}/delete?{q}")["deleted"], 2)
        self.assertEqual(s.state()["2"], ("20", 0), "nothing is visible before the commit")
        s.call("POST", f"/sessions/{a}/commit")
        self.assertEqual(s.state(), {"1": ("4", t)})

    def test_insert_of_an_existing_key_is_refused_and_the_transaction_goes_on(self):
        s = self.server
        a = s.session()
        s.begin(a)
        self.assertJsonError(s.request("POST", s.kv(a, "1"), "x"), 409, "duplicate_key")
        self.assertJsonError(s.request("PUT", s.kv(a, "2"), "x", {"If-None-Match": "*"}), 409,
                             "duplicate_key")
        self.assertTrue(s.call("POST", s.kv(a, "9"), "90")["inserted"])
        s.call("POST", f"/sessions/{a}/commit")
        self.assertEqual(s.state()["9"][0], "90")

    def test_begin_commit_and_abort_out_of_place_answer_as_postgresql_does(self):
        s = self.server
        a = s.session()
        self.assertIn("no transaction in progress", s.call("POST", f"/sessions/{a}/commit")["warning"])
        self.assertIn("no transaction in progress", s.call("POST", f"/sessions/{a}/abort")["warning"])
        t = s.begin(a, "serial")
        again = s.call("POST", f"/sessions/{a}/begin")
        self.assertEqual(again["txn"], t)
        self.assertIn("already a transaction in progress", again["warning"])
        self.assertEqual(s.sessions()[a]["txn_isolation"], "serial")
        s.call("POST", f"/sessions/{a}/rollback")

    def test_every_level_can_be_named(self):
        s = self.server
        for level in LEVELS:
            a = s.session(level)
            self.assertEqual(s.sessions()[a]["isolation"], level)
        a = s.session("serializable")
        self.assertEqual(s.sessions()[a]["isolation"], "ssi")

    def test_a_raw_value_loses_one_trailing_newline(self):
        s = self.server
        a = s.session()
        s.call("PUT", s.kv(a, "n"), "41\n")
        s.call("PUT", s.kv(a, "m"), "a b\r\n")
        self.assertEqual(s.state()["n"][0], "41")
        self.assertEqual(s.state()["m"][0], "a b")

    def test_reset_loads_new_data_and_answers_waiting_statements(self):
        s = self.server
        a, b = s.session(), s.session()
        s.begin(a)
        s.call("PUT", s.kv(a, "1"), "11")
        put = InBackground(s, "PUT", s.kv(b, "1"), "12")
        s.wait_blocked(b)
        s.call("POST", "/reset", {"setup": "x=1"})
        self.assertJsonError(put.result(), 409, "reset")
        self.assertEqual(s.state(), {"x": ("1", 0)})
        self.assertEqual({s.sessions()[a]["state"], s.sessions()[b]["state"]}, {"idle"})


class BadInputTest(ServeTestCase):

    def test_unknown_sessions_and_endpoints_are_404(self):
        s = self.server
        a = s.session()
        for method, path in (("GET", "/sessions/999999"), ("POST", "/sessions/999999/begin"),
                             ("GET", "/sessions/abc/kv/1"), ("GET", "/sessions/999999/kv/1"),
                             ("GET", f"/sessions/{a}/nothing"), ("GET", "/nothing")):
            self.assertJsonError(s.request(method, path), 404, "not_found")

    def test_wrong_methods_are_405(self):
        s = self.server
        a = s.session()
        r = s.request("GET", f"/sessions/{a}/begin")
        self.assertJsonError(r, 405, "method_not_allowed")
        self.assertEqual(r.header("allow"), "POST")
        self.assertJsonError(s.request("POST", f"/sessions/{a}/scan"), 405, "method_not_allowed")
        self.assertJsonError(s.request("PUT", f"/sessions/{a}"), 405, "method_not_allowed")

    def test_bad_levels_predicates_and_bodies_are_400(self):
        s = self.server
        a = s.session()
        bad = [
            ("POST", "/sessions", {"isolation": "sometimes"}),
            ("POST", "/sessions", "not json"),
            ("POST", "/sessions", {"isolation": 3}),
            ("POST", f"/sessions/{a}/begin", {"isolation": "eventual"}),
            ("GET", f"/sessions/{a}/scan?where=" + urllib.parse.quote("colour == red"), None),
            ("GET", f"/sessions/{a}/scan?where=" + urllib.parse.quote("value % 0 == 1"), None),
            ("GET", f"/sessions/{a}/scan?where=" + urllib.parse.quote("value % 3 == x"), None),
            ("GET", f"/sessions/{a}/scan?where=" + urllib.parse.quote("key ~ 1"), None),
            ("GET", f"/sessions/{a}/scan?where=" + urllib.parse.quote("key =="), None),
            ("POST", f"/sessions/{a}/update?where=key%3D%3D1", None),  # no set
            ("POST", f"/sessions/{a}/update?where=key%3D%3D1&set=value+1", None),  # '+' = ' '
            ("POST", f"/sessions/{a}/update", {"set": "value + x"}),
            ("PUT", s.kv(a, "1"), b"a\0b"),
            ("GET", f"/sessions/{a}/kv/a%00b", None),
            ("GET", f"/sessions/{a}/kv/%ZZ", None),
        ]
        for method, path, body in bad:
            headers = None
            if isinstance(body, dict):
                body, headers = json.dumps(body), {"Content-Type": "application/json"}
            r = s.request(method, path, body, headers)
            self.assertJsonError(r, 400, "bad_request")
        r = s.request("PUT", s.kv(a, "1"), '{"value": [1]}', {"Content-Type": "application/json"})
        self.assertJsonError(r, 400, "bad_request")
        self.assertEqual(s.state()["1"][0], "10", "nothing was written")
        self.assertEqual(s.sessions()[a]["state"], "idle")

    def test_oversized_values_and_keys_are_413(self):
        s = self.server
        a = s.session()
        self.assertEqual(s.request("PUT", s.kv(a, "big"), "v" * 60000).status, 200)
        # One byte over the limit is read in full and refused (far larger bodies are refused
        # from the Content-Length alone; see docs/http.md).
        self.assertJsonError(s.request("PUT", s.kv(a, "big"), "v" * (64 * 1024 + 1)), 413,
                             "too_large")
        self.assertJsonError(s.request("GET", s.kv(a, "k" * 1025)), 413, "too_large")
        self.assertEqual(s.state()["big"][0], "v" * 60000)


class LockTimeoutTest(ServeTestCase):
    FLAGS = ("--setup", "1=10 2=20", "--lock-timeout", "300ms")

    def test_a_statement_that_waits_too_long_fails_and_its_transaction_is_rolled_back(self):
        s = self.server
        a, b = s.session(), s.session()
        ta, tb = s.begin(a), s.begin(b)
        s.call("PUT", s.kv(a, "1"), "11")
        s.call("PUT", s.kv(b, "2"), "22")
        body = self.assertJsonError(s.request("PUT", s.kv(b, "1"), "12"), 409, "lock_timeout")
        self.assertEqual(body["waited_for"], [ta])
        self.assertGreaterEqual(body["waited_ms"], 250)
        self.assertTrue(body["rolled_back"])
        session = s.sessions()[b]
        self.assertEqual((session["state"], session["error"]), ("aborted", "lock_timeout"))
        self.assertJsonError(s.request("GET", s.kv(b, "2")), 409, "in_failed_transaction")
        s.call("POST", f"/sessions/{b}/abort")
        s.call("POST", f"/sessions/{a}/commit")
        self.assertEqual(s.state(), {"1": ("11", ta), "2": ("20", 0)}, f"T{tb} left nothing")

    def test_an_autocommit_statement_that_times_out_leaves_the_session_idle(self):
        s = self.server
        a, b = s.session(), s.session()
        s.begin(a)
        s.call("PUT", s.kv(a, "2"), "21")
        body = self.assertJsonError(s.request("DELETE", s.kv(b, "2")), 409, "lock_timeout")
        self.assertTrue(body["autocommit"])
        self.assertEqual(s.sessions()[b]["state"], "idle")
        s.call("POST", f"/sessions/{a}/commit")
        self.assertEqual(s.call("DELETE", s.kv(b, "2"))["deleted"], True)


class ShutdownTest(unittest.TestCase):

    def test_sigterm_answers_waiting_statements_and_exits_0(self):
        s = Server("--setup", "1=10")
        self.addCleanup(s.close)
        s.start()
        a, b = s.session(), s.session()
        s.begin(a)
        s.call("PUT", s.kv(a, "1"), "11")
        put = InBackground(s, "PUT", s.kv(b, "1"), "12")
        s.wait_blocked(b)
        self.assertEqual(s.stop(), 0, s.log_tail())
        r = put.result()
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["error"], "shutting_down")

    def test_bad_flags_exit_2(self):
        for flags in (["--listen", "nowhere"], ["--isolation", "sometimes"],
                      ["--setup", "novalue"], ["--lock-timeout", "soon"], ["extra"]):
            proc = harness.run([harness.BIN, "txn", "serve"] + flags)
            self.assertEqual(proc.returncode, 2, (flags, proc.stderr))
            self.assertIn(b"ddialab txn serve", proc.stderr + proc.stdout, flags)


if __name__ == "__main__":
    harness.main()
