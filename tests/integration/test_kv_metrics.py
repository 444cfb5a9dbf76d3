"""GET /metrics: valid Prometheus text (promtool agrees) whose numbers match what happened."""

import os
import re
import subprocess

import harness

PROMTOOL = "/usr/bin/promtool"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def parse(text):
    """{(name, labels): value} of every sample; labels as the sorted 'k="v",...' text."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m is None:
            raise AssertionError(f"not a sample line: {line!r}")
        labels = m.group(2) or ""
        labels = ",".join(sorted(re.findall(r'[a-zA-Z_]+="[^"]*"', labels)))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


class MetricsTest(harness.ClusterTestCase):
    def scrape(self, node):
        return parse(self.cluster.metrics(node))

    def promtool_check(self, text):
        self.assertTrue(os.access(PROMTOOL, os.X_OK), f"{PROMTOOL} is missing (apt-get install "
                        "prometheus, or see the deps script)")
        proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                              capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0,
                         f"promtool check metrics: {proc.stdout.decode()}{proc.stderr.decode()}")

    def traffic(self):
        c = self.cluster
        for i in range(5):
            self.assertEqual(c.put(1, f"metrics/{i}", b"v").status, 200)
        self.assertEqual(c.delete(1, "metrics/0").status, 200)
        self.assertEqual(c.get(1, "metrics/missing").status, 404)
        self.assertEqual(c.get(2, "metrics/1").status, 307)
        self.assertEqual(c.put(1, "metrics/1", b"v", {"If-Match": "999999"}).status, 412)
        self.assertEqual(c.request(1, "POST", "/kv/x").status, 405)

    def test_metrics_pass_promtool_after_traffic_on_every_node(self):
        c = self.cluster
        self.traffic()
        c.wait_converged()
        for node in (1, 2, 3):
            r = c.request(node, "GET", "/metrics")
            self.assertEqual(r.status, 200)
            self.assertTrue(r.header("content-type").startswith("text/plain; version=0.0.4"), r)
            text = r.body.decode()
            self.promtool_check(text)
            names = {name for name, _ in parse(text)}
            for family in ("ddialab_kv_term", "ddialab_kv_follower_lag_entries",
                           "ddialab_http_requests_total", "ddialab_kv_applied_index",
                           "ddialab_kv_is_leader", "process_resident_memory_bytes"):
                self.assertIn(family, names, f"node {node}")

    def test_gauges_agree_with_status(self):
        c = self.cluster
        self.traffic()
        c.wait_converged()
        for node in (1, 2, 3):
            s = c.status(node)
            m = self.scrape(node)
            self.assertEqual(m[("ddialab_kv_term", "")], s["term"])
            self.assertEqual(m[("ddialab_kv_is_leader", "")], 1 if node == 1 else 0)
            self.assertEqual(m[("ddialab_kv_applied_index", "")], s["applied_index"])
            self.assertEqual(m[("ddialab_kv_last_index", "")], s["last_index"])
        m = self.scrape(1)
        for peer in (2, 3):
            self.assertEqual(m[("ddialab_kv_follower_lag_entries", f'peer="{peer}"')], 0)
            self.assertEqual(m[("ddialab_kv_peer_connected", f'peer="{peer}"')], 1)

    def test_counters_count_the_requests_and_writes(self):
        c = self.cluster
        before1, before2 = self.scrape(1), self.scrape(2)
        self.traffic()
        after1, after2 = self.scrape(1), self.scrape(2)

        def delta(before, after, name, labels=""):
            return after.get((name, labels), 0) - before.get((name, labels), 0)

        http = "ddialab_http_requests_total"
        self.assertEqual(delta(before1, after1, http, 'code="200",method="PUT"'), 5)
        self.assertEqual(delta(before1, after1, http, 'code="200",method="DELETE"'), 1)
        self.assertEqual(delta(before1, after1, http, 'code="404",method="GET"'), 1)
        self.assertEqual(delta(before1, after1, http, 'code="412",method="PUT"'), 1)
        self.assertEqual(delta(before1, after1, http, 'code="405",method="POST"'), 1)
        self.assertEqual(delta(before2, after2, http, 'code="307",method="GET"'), 1)
        self.assertEqual(delta(before2, after2, "ddialab_kv_redirects_total"), 1)
        writes = "ddialab_kv_writes_total"
        self.assertEqual(delta(before1, after1, writes, 'result="ok"'), 6)
        self.assertEqual(delta(before1, after1, writes, 'result="rejected"'), 1)
        self.assertGreaterEqual(
            delta(before1, after1, "ddialab_http_request_duration_seconds_count"), 9)

    def test_follower_lag_shows_a_stopped_follower(self):
        c = self.cluster
        c.stop(3)
        try:
            c.wait_until(lambda: self.scrape(1)[("ddialab_kv_peer_connected", 'peer="3"')] == 0,
                         what="node 1 to see node 3 disconnected")
            for i in range(10):
                self.assertEqual(c.put(1, f"metrics-lag/{i}", b"v").status, 200)
            m = self.scrape(1)
            self.assertGreaterEqual(m[("ddialab_kv_follower_lag_entries", 'peer="3"')], 10)
            self.assertEqual(m[("ddialab_kv_follower_lag_entries", 'peer="2"')], 0)
            self.promtool_check(c.metrics(1))
        finally:
            c.start(3)
        c.wait_until(lambda: self.scrape(1)[("ddialab_kv_follower_lag_entries", 'peer="3"')] == 0,
                     what="node 3's lag to return to 0")


if __name__ == "__main__":
    harness.main()
