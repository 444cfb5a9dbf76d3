"""The kv HTTP API on a healthy three-node cluster: writes on the leader reach the followers,
followers redirect to the leader, conditional writes, listing, and keys and values of any bytes.
"""

import base64
import http.client
import json
import os
import threading

import harness
from harness import key_path


class ReplicationTest(harness.ClusterTestCase):
    REPLICATION = "majority"

    def followers(self):
        return [i for i in range(1, self.cluster.n + 1) if i != self.leader_id]

    def wait_stale_value(self, node, key, value):
        def has_value():
            r = self.cluster.get(node, key, stale=True)
            return r.status == 200 and r.body == value

        self.cluster.wait_until(has_value, what=f"node {node} to serve {key!r} (stale)")

    def wait_stale_absent(self, node, key):
        self.cluster.wait_until(lambda: self.cluster.get(node, key, stale=True).status == 404,
                                what=f"node {node} to forget {key!r} (stale)")

    def test_leader_is_node_1_of_a_fresh_cluster(self):
        self.assertEqual(self.leader_id, 1)
        s = self.cluster.status(1)
        self.assertEqual(s["role"], "leader")
        self.assertEqual(s["commit_quorum"], 2)
        for f in self.followers():
            fs = self.cluster.status(f)
            self.assertEqual(fs["role"], "follower")
            self.assertEqual(fs["leader"], 1)
            self.assertEqual(fs["term"], s["term"])

    def test_put_on_leader_answers_key_version_index_and_reaches_followers(self):
        c = self.cluster
        r = c.put(self.leader_id, "repl-greeting", b"hello")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["key"], "repl-greeting")
        self.assertIsInstance(body["version"], int)
        self.assertIsInstance(body["index"], int)
        self.assertGreater(body["index"], 0)
        self.assertEqual(r.header("etag"), f'"{body["version"]}"')
        # The leader's own linearizable read sees it at once.
        g = c.get(self.leader_id, "repl-greeting")
        self.assertEqual((g.status, g.body), (200, b"hello"), g)
        for f in self.followers():
            self.wait_stale_value(f, "repl-greeting", b"hello")
            c.wait_applied(f, body["index"])

    def test_follower_redirects_a_linearizable_read_to_the_leader(self):
        c = self.cluster
        self.assertEqual(c.put(self.leader_id, "repl-redirect", b"v1").status, 200)
        leader_url = c.url(self.leader_id)
        for f in self.followers():
            r = c.get(f, "repl-redirect")
            body = self.assertJsonError(r, 307, "not_leader")
            self.assertEqual(r.header("location"), leader_url + "/kv/repl-redirect")
            self.assertEqual(body["leader"], self.leader_id)
            self.assertEqual(body["leader_url"], leader_url)
            # Following the Location by hand gives the value.
            g = harness.request(r.header("location"), "GET", "/kv/repl-redirect")
            self.assertEqual((g.status, g.body), (200, b"v1"), g)

    def test_redirect_keeps_an_encoded_key_and_the_query(self):
        c = self.cluster
        f = self.followers()[0]
        path = key_path("dir/with space", "consistency=linearizable")
        r = c.request(f, "GET", path)
        self.assertEqual(r.status, 307, r)
        self.assertEqual(r.header("location"), c.url(self.leader_id) + path)

    def test_follower_redirects_writes_too(self):
        c = self.cluster
        f = self.followers()[0]
        for method, body in (("PUT", b"x"), ("DELETE", None)):
            r = c.request(f, method, key_path("repl-redirected-write"), body)
            self.assertJsonError(r, 307, "not_leader")
            self.assertEqual(r.header("location"),
                             c.url(self.leader_id) + "/kv/repl-redirected-write")
        # Nothing was written by the redirected requests.
        self.assertEqual(c.get(self.leader_id, "repl-redirected-write").status, 404)

    def test_curl_follows_a_put_redirect_from_a_follower(self):
        c = self.cluster
        f = self.followers()[-1]
        proc = harness.run(["curl", "-sS", "-L", "-X", "PUT", "--data-binary", "via-curl",
                            "-w", "\n%{http_code} %{num_redirects}",
                            c.url(f) + "/kv/repl-curl"], timeout=20)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        text = proc.stdout.decode()
        body, _, tail = text.rpartition("\n")
        self.assertEqual(tail, "200 1", text)
        self.assertEqual(json.loads(body)["key"], "repl-curl")
        g = c.get(self.leader_id, "repl-curl")
        self.assertEqual((g.status, g.body), (200, b"via-curl"))
        self.wait_stale_value(f, "repl-curl", b"via-curl")

    def test_delete_removes_the_key_everywhere(self):
        c = self.cluster
        self.assertEqual(c.put(self.leader_id, "repl-del", b"doomed").status, 200)
        for f in self.followers():
            self.wait_stale_value(f, "repl-del", b"doomed")
        r = c.delete(self.leader_id, "repl-del")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["key"], "repl-del")
        self.assertGreater(body["index"], 0)
        self.assertJsonError(c.get(self.leader_id, "repl-del"), 404, "not_found")
        for f in self.followers():
            self.wait_stale_absent(f, "repl-del")
        # Deleting what is not there says so.
        self.assertJsonError(c.delete(self.leader_id, "repl-del"), 404, "not_found")

    def test_get_of_a_missing_key_is_404_json(self):
        self.assertJsonError(self.cluster.get(self.leader_id, "repl-never-written"), 404,
                             "not_found")
        for f in self.followers():
            self.assertJsonError(self.cluster.get(f, "repl-never-written", stale=True), 404,
                                 "not_found")

    def test_list_returns_keys_in_order_with_limit_and_more(self):
        c = self.cluster
        names = ["list/d", "list/a", "list/c", "list/e", "list/b", "lisz", "list"]
        for k in names:
            self.assertEqual(c.put(self.leader_id, k, k.upper()).status, 200)
        r = c.request(self.leader_id, "GET", "/kv?prefix=list/&limit=2")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual([i["key"] for i in body["items"]], ["list/a", "list/b"])
        self.assertEqual([i["value"] for i in body["items"]], ["LIST/A", "LIST/B"])
        self.assertTrue(all(isinstance(i["version"], int) for i in body["items"]))
        self.assertIs(body["more"], True)
        r = c.request(self.leader_id, "GET", "/kv?prefix=list%2F&limit=5")
        body = r.json()
        self.assertEqual([i["key"] for i in body["items"]],
                         ["list/a", "list/b", "list/c", "list/d", "list/e"])
        self.assertIs(body["more"], False)
        # The default limit covers these; the prefix "list" also matches "list" itself.
        body = c.request(self.leader_id, "GET", "/kv?prefix=list").json()
        self.assertEqual([i["key"] for i in body["items"]],
                         ["list", "list/a", "list/b", "list/c", "list/d", "list/e"])
        # A follower lists from its own copy when asked for a stale read, else redirects.
        f = self.followers()[0]
        c.wait_until(lambda: len(c.request(f, "GET", "/kv?prefix=list/&consistency=stale")
                                 .json()["items"]) == 5, what="the follower to list 5 keys")
        self.assertEqual(c.request(f, "GET", "/kv?prefix=list/").status, 307)

    def test_etag_is_the_version_and_if_match_checks_it(self):
        c = self.cluster
        L = self.leader_id
        r1 = c.put(L, "repl-cas", b"one")
        v1 = r1.json()["version"]
        g = c.get(L, "repl-cas")
        self.assertEqual(g.header("etag"), f'"{v1}"')
        # Right version: written, with a new version.
        r2 = c.put(L, "repl-cas", b"two", {"If-Match": str(v1)})
        self.assertEqual(r2.status, 200, r2)
        v2 = r2.json()["version"]
        self.assertGreater(v2, v1)
        self.assertEqual(c.get(L, "repl-cas").header("etag"), f'"{v2}"')
        # Wrong (old) version: 412 naming the current one; the value is unchanged.
        r3 = c.put(L, "repl-cas", b"three", {"If-Match": str(v1)})
        body = self.assertJsonError(r3, 412, "precondition_failed")
        self.assertEqual(body["current_version"], v2)
        self.assertEqual(c.get(L, "repl-cas").body, b"two")
        # The ETag exactly as sent back (quoted) is accepted too.
        r4 = c.put(L, "repl-cas", b"four", {"If-Match": f'"{v2}"'})
        self.assertEqual(r4.status, 200, r4)
        # If-Match on a key that does not exist: 412 with no current version.
        r5 = c.put(L, "repl-cas-missing", b"x", {"If-Match": "1"})
        body = self.assertJsonError(r5, 412, "precondition_failed")
        self.assertIsNone(body["current_version"])
        # A conditional delete with the wrong version keeps the key.
        v4 = r4.json()["version"]
        self.assertJsonError(c.delete(L, "repl-cas", {"If-Match": str(v1)}), 412)
        self.assertEqual(c.delete(L, "repl-cas", {"If-Match": str(v4)}).status, 200)
        self.assertEqual(c.get(L, "repl-cas").status, 404)

    def test_if_none_match_star_creates_only_absent_keys(self):
        c = self.cluster
        L = self.leader_id
        r = c.put(L, "repl-create", b"first", {"If-None-Match": "*"})
        self.assertEqual(r.status, 200, r)
        r = c.put(L, "repl-create", b"second", {"If-None-Match": "*"})
        body = self.assertJsonError(r, 412, "precondition_failed")
        g = c.get(L, "repl-create")
        self.assertEqual(g.body, b"first")
        self.assertEqual(g.header("etag"), f'"{body["current_version"]}"')

    def test_keys_with_slashes_and_encoded_bytes_round_trip(self):
        c = self.cluster
        L = self.leader_id
        f = self.followers()[0]
        keys = [
            "a/b/c",
            "/leading/and/trailing/",
            "space and+plus",
            "100% sure?#frag&x=y",
            "unicode-\u00e9\u4e2d\U0001F600",
            b"bytes-\x01\x7f\x80\xfe\xff",
            "..",
            "%2F-literally",
        ]
        for i, key in enumerate(keys):
            value = f"value-{i}".encode()
            r = c.put(L, key, value)
            self.assertEqual(r.status, 200, (key, r))
            body = r.json()
            if isinstance(key, str):
                self.assertEqual(body["key"], key)
            else:
                self.assertIn("key_base64", body)
            g = c.get(L, key)
            self.assertEqual((g.status, g.body), (200, value), key)
            self.wait_stale_value(f, key, value)
        # The listing shows the decoded keys, each once.
        listed = c.request(L, "GET", "/kv?prefix=a%2Fb").json()["items"]
        self.assertEqual([i["key"] for i in listed], ["a/b/c"])
        listed = c.request(L, "GET", "/kv?prefix=" + "%25").json()["items"]
        self.assertEqual([i["key"] for i in listed], ["%2F-literally"])

    def test_binary_value_round_trips_byte_for_byte(self):
        c = self.cluster
        L = self.leader_id
        value = bytes(range(256)) * 8 + os.urandom(8192) + b"\x00\r\n\r\n\x00"
        r = c.put(L, "repl-binary", value)
        self.assertEqual(r.status, 200, r)
        g = c.get(L, "repl-binary")
        self.assertEqual(g.status, 200)
        self.assertEqual(g.header("content-type"), "application/octet-stream")
        self.assertEqual(g.body, value)
        for f in self.followers():
            self.wait_stale_value(f, "repl-binary", value)
        # An empty value is a value, not a missing one.
        self.assertEqual(c.put(L, "repl-empty", b"").status, 200)
        g = c.get(L, "repl-empty")
        self.assertEqual((g.status, g.body), (200, b""))

    def test_binary_value_in_a_listing_is_base64(self):
        c = self.cluster
        L = self.leader_id
        value = b"\xff\xfe\x00binary"
        self.assertEqual(c.put(L, "repl-b64/k", value).status, 200)
        items = c.request(L, "GET", "/kv?prefix=repl-b64/").json()["items"]
        self.assertEqual(len(items), 1)
        self.assertEqual(base64.b64decode(items[0]["value_base64"]), value)

    def test_concurrent_compare_and_set_loses_no_increment(self):
        # Eight clients increment one counter with read, then PUT If-Match: the version read.
        # Each successful PUT must have seen the previous value: the final count is exact.
        c = self.cluster
        L = self.leader_id
        self.assertEqual(c.put(L, "repl-counter", b"0").status, 200)
        per_client = 15
        conflicts = []

        errors = []

        def client():
            done = 0
            while done < per_client:
                g = c.get(L, "repl-counter")
                version = g.header("etag")
                r = c.put(L, "repl-counter", str(int(g.body) + 1), {"If-Match": version})
                if r.status == 200:
                    done += 1
                elif r.status == 412:
                    conflicts.append(r.json()["current_version"])
                else:
                    errors.append(r)
                    return

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertEqual(errors, [])
        self.assertEqual(c.get(L, "repl-counter").body, str(8 * per_client).encode())
        for f in self.followers():
            self.wait_stale_value(f, "repl-counter", str(8 * per_client).encode())

    def test_one_keep_alive_connection_serves_many_requests(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.cluster.http_ports[self.leader_id],
                                          timeout=10)
        try:
            for i in range(50):
                conn.request("PUT", f"/kv/repl-keepalive-{i}", body=str(i).encode())
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
                conn.request("GET", f"/kv/repl-keepalive-{i}")
                r = conn.getresponse()
                self.assertEqual((r.status, r.read()), (200, str(i).encode()))
                # A 404 and a redirect-free error keep the connection too.
                conn.request("GET", "/kv/repl-keepalive-missing")
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, 404)
        finally:
            conn.close()

    def test_head_gives_the_headers_of_a_get(self):
        c = self.cluster
        L = self.leader_id
        v = c.put(L, "repl-head", b"twelve bytes").json()["version"]
        r = c.request(L, "HEAD", key_path("repl-head"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("etag"), f'"{v}"')
        self.assertEqual(r.body, b"")

    def test_versions_increase_with_every_write(self):
        c = self.cluster
        L = self.leader_id
        seen = []
        for i in range(5):
            seen.append(c.put(L, "repl-versions", str(i)).json()["version"])
        self.assertEqual(seen, sorted(set(seen)))


if __name__ == "__main__":
    harness.main()
