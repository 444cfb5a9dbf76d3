"""Bad requests get a JSON error with the right status; garbage on the peer port gets the
connection closed; and after all of it the node still serves and replicates.
"""

import json
import os
import random
import re
import socket
import struct

import harness
from harness import key_path

MAX_VALUE = 1024
WIRE_HELLO = 0x10


def crc32c(data):
    """CRC-32C (Castagnoli), as the peer frames carry it."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def frame(kind, body):
    """A peer frame: 'D' 'L' version kind, u32 body length, u32 CRC-32C of the body."""
    return b"DL\x01" + bytes([kind]) + struct.pack("<II", len(body), crc32c(body)) + body


def hello(node_id, cluster_id, http_addr="127.0.0.1:1"):
    cid, http = cluster_id.encode(), http_addr.encode()
    return frame(WIRE_HELLO, struct.pack("<Q", node_id) + bytes([len(cid)]) + cid
                 + bytes([len(http)]) + http)


class BadHttpInputTest(harness.ClusterTestCase):
    FLAGS = ("--max-value-bytes", str(MAX_VALUE))

    def test_value_at_the_limit_is_accepted_and_one_byte_more_is_413(self):
        c = self.cluster
        r = c.put(1, "bad/at-limit", b"a" * MAX_VALUE)
        self.assertEqual(r.status, 200, r)
        r = c.put(1, "bad/over-limit", b"a" * (MAX_VALUE + 1))
        body = self.assertJsonError(r, 413, "too_large")
        self.assertIn(str(MAX_VALUE), body["message"])
        self.assertEqual(c.get(1, "bad/over-limit").status, 404, "nothing was written")

    def test_large_body_gets_413_json_through_curl(self):
        # http.client sends the whole body before reading the answer and gets a broken pipe when
        # the server refuses early; curl reads the early answer, as a user would see it.
        c = self.cluster
        path = os.path.join(c.dir, "big.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(1 << 20))
        proc = harness.run(["curl", "-sS", "-X", "PUT", "--data-binary", "@" + path,
                            "-w", "\n%{http_code}", c.url(1) + "/kv/bad-big"], timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        body, _, code = proc.stdout.decode().rpartition("\n")
        self.assertEqual(code, "413", proc.stdout)
        self.assertEqual(json.loads(body)["error"], "too_large")
        self.assertEqual(c.get(1, "bad-big").status, 404)

    def test_key_of_4096_bytes_is_accepted_and_4097_is_413(self):
        c = self.cluster
        self.assertEqual(c.put(1, "k" * 4096, b"v").status, 200)
        # The limit is on the decoded key: 4096 slashes are 12288 bytes in the URL.
        self.assertEqual(c.put(1, "/" * 4096, b"v").status, 200)
        for key in ("k" * 4097, "/" * 4097, "x" * 20000):
            for method in ("PUT", "GET", "DELETE"):
                r = c.request(1, method, key_path(key), b"v" if method == "PUT" else None)
                body = self.assertJsonError(r, 413, "too_large")
                self.assertIn("4096", body["message"])

    def test_bad_percent_encoding_is_400(self):
        c = self.cluster
        for path in ("/kv/%ZZ", "/kv/%", "/kv/a%4", "/kv/%G0", "/kv?prefix=%ZZ",
                     "/kv/x?consistency=%Z"):
            for method in ("GET", "PUT", "DELETE"):
                if path.startswith("/kv?") and method != "GET":
                    continue
                r = c.request(1, method, path, b"v" if method == "PUT" else None)
                self.assertJsonError(r, 400, "bad_request")

    def test_bad_conditions_are_400(self):
        c = self.cluster
        cases = [
            {"If-Match": "abc"},
            {"If-Match": "0"},
            {"If-Match": "-3"},
            {"If-Match": '"7'},
            {"If-Match": "1", "If-None-Match": "*"},
            {"If-None-Match": "5"},
        ]
        for headers in cases:
            r = c.put(1, "bad/cond", b"v", headers)
            self.assertJsonError(r, 400, "bad_request")
            r = c.delete(1, "bad/cond", headers)
            self.assertJsonError(r, 400, "bad_request")
        self.assertEqual(c.get(1, "bad/cond").status, 404, "no bad conditional write applied")

    def test_unknown_path_is_404_json(self):
        for path in ("/", "/nope", "/kv/", "/kvx", "/status/x", "/admin"):
            self.assertJsonError(self.cluster.request(1, "GET", path), 404, "not_found")

    def test_wrong_method_is_405_json_with_allow(self):
        c = self.cluster
        for method, path in (("POST", "/kv/x"), ("POST", "/kv"), ("PUT", "/status"),
                             ("DELETE", "/metrics"), ("GET", "/admin/promote"),
                             ("PATCH", "/kv/x")):
            r = c.request(1, method, path, b"")
            self.assertJsonError(r, 405, "method_not_allowed")
            self.assertTrue(r.header("allow"), r)

    def test_405_message_names_the_method_used(self):
        r = self.cluster.request(1, "PATCH", "/kv/x", b"")
        self.assertIn("PATCH", r.json()["message"])

    def test_bad_list_parameters_are_400(self):
        c = self.cluster
        for query in ("limit=0", "limit=-1", "limit=abc", "limit=", "limit=10001",
                      "limit=1e3", "consistency=weird"):
            self.assertJsonError(c.request(1, "GET", "/kv?" + query), 400, "bad_request")
        self.assertJsonError(c.request(1, "GET", "/kv?prefix=" + "p" * 4097), 413, "too_large")
        self.assertEqual(c.request(1, "GET", "/kv?limit=10000").status, 200)

    def test_bad_consistency_on_a_read_is_400(self):
        for node in (1, 2):
            r = self.cluster.request(node, "GET", "/kv/x?consistency=eventual")
            self.assertJsonError(r, 400, "bad_request")

    def test_malformed_http_on_the_http_port_does_not_hurt_the_node(self):
        c = self.cluster
        port = c.http_ports[1]
        for junk in (b"GARBAGE\r\n\r\n", os.urandom(4096), b"GET /kv/x HTTP/1.1\r\nHost",
                     b"PUT /kv/x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                try:
                    s.sendall(junk)
                    s.shutdown(socket.SHUT_WR)
                    data = s.recv(65536)
                except OSError:
                    data = b""
            if data:
                self.assertTrue(data.startswith(b"HTTP/1.1 4"), data[:200])
        self.assertEqual(c.request(1, "GET", "/healthz").status, 200)


class PeerPortGarbageTest(harness.ClusterTestCase):
    def assert_closed_by_node(self, s, what):
        """The node closes the connection (EOF or reset) within the deadline."""
        s.settimeout(0.2)

        def closed():
            try:
                return s.recv(4096) == b""
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True

        self.cluster.wait_until(closed, 10, f"the node to close the connection after {what}")

    def rejected(self, node):
        m = re.search(r"^ddialab_kv_peer_frames_rejected_total(?:\{\})? (\S+)$",
                      self.cluster.metrics(node), re.M)
        self.assertIsNotNone(m, "ddialab_kv_peer_frames_rejected_total is exported")
        return float(m.group(1))

    def connect_peer(self, node):
        return socket.create_connection(("127.0.0.1", self.cluster.peer_ports[node]), timeout=5)

    def test_garbage_on_the_peer_port_is_rejected_and_replication_goes_on(self):
        c = self.cluster
        rng = random.Random(1234)
        before = {i: self.rejected(i) for i in (1, 2)}
        cases = [
            ("random bytes", bytes(rng.getrandbits(8) for _ in range(4096))),
            ("an HTTP request", b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("a bad version byte", b"DL\x63\x01" + b"\0" * 8),
            ("an oversized length", b"DL\x01\x01" + struct.pack("<I", 0xFFFFFFFF) + b"\0" * 4),
            ("a frame with a wrong checksum",
             b"DL\x01\x02" + struct.pack("<II", 16, 0xDEADBEEF) + b"\x01" * 16),
        ]
        for node in (1, 2):
            for what, junk in cases:
                with self.connect_peer(node) as s:
                    try:
                        s.sendall(junk)
                    except OSError:
                        pass  # already closed on the first bad byte: that is the point
                    self.assert_closed_by_node(s, what)
        # Half a frame, then we go away.
        for node in (1, 2, 3):
            with self.connect_peer(node) as s:
                s.sendall(b"DL\x01\x01" + struct.pack("<II", 100, 0) + b"\x00" * 20)
        # Many connections that say nothing, closed at once.
        for node in (1, 2):
            socks = [self.connect_peer(node) for _ in range(20)]
            for s in socks:
                s.close()
        for i in (1, 2):
            c.wait_until(lambda: self.rejected(i) >= before[i] + 1,
                         what=f"node {i} to count rejected peer connections")

        # Every node still serves and replicates.
        c.wait_ready()
        r = c.put(1, "peer-garbage/after", b"still replicating")
        self.assertEqual(r.status, 200, r)
        for i in (2, 3):
            c.wait_until(lambda: c.get(i, "peer-garbage/after", stale=True).status == 200,
                         what=f"node {i} to receive a write after the garbage")
        for i in (1, 2, 3):
            self.assertTrue(c.running(i), f"node {i} died\n" + c.describe())

    def test_hello_from_a_stranger_is_rejected(self):
        c = self.cluster
        self.assertEqual(crc32c(b"123456789"), 0xE3069283)
        # A well-formed HELLO from a member is accepted: the connection stays open. (This checks
        # that the frames below are rejected for what they say, not for how they are encoded.)
        # (It carries node 3's real HTTP address: node 2 believes what a HELLO says.)
        with self.connect_peer(2) as s:
            s.sendall(hello(3, "ddialab-kv", c.addr(3)))
            s.settimeout(0.3)
            with self.assertRaises(socket.timeout):
                s.recv(1)
        for what, data in (
            ("a HELLO from another cluster", hello(3, "another-cluster")),
            ("a HELLO from a node that is not a member", hello(9, "ddialab-kv")),
            ("a HELLO from node 0", hello(0, "ddialab-kv")),
            ("two HELLOs", hello(3, "ddialab-kv") + hello(3, "ddialab-kv")),
            ("a HELLO with trailing bytes", frame(WIRE_HELLO, hello(3, "ddialab-kv")[12:] + b"x")),
            ("an unknown frame kind", frame(0x7F, b"")),
            ("a message before HELLO", frame(0x01, b"\0" * 8)),
        ):
            with self.connect_peer(2) as s:
                s.sendall(data)
                self.assert_closed_by_node(s, what)
        self.assertEqual(c.put(1, "peer-hello/after", b"ok").status, 200)
        c.wait_until(lambda: c.get(2, "peer-hello/after", stale=True).status == 200,
                     what="node 2 to keep replicating")

    def test_a_slow_trickle_of_a_frame_header_is_closed_when_it_goes_bad(self):
        c = self.cluster
        with self.connect_peer(3) as s:
            for b in (b"D", b"L", b"\x01"):
                s.sendall(b)
            # The node waits for more: nothing is wrong yet.
            s.settimeout(0.3)
            with self.assertRaises(socket.timeout):
                s.recv(1)
            s.sendall(b"\x01" + b"\xff" * 8)  # a length beyond the maximum body
            self.assert_closed_by_node(s, "an impossible frame length")
        self.assertEqual(c.put(1, "peer-trickle/after", b"ok").status, 200)
        c.wait_until(lambda: c.get(3, "peer-trickle/after", stale=True).status == 200,
                     what="node 3 to keep replicating")


if __name__ == "__main__":
    harness.main()
