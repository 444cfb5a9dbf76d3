"""The events broker's HTTP API, as curl would use it: records posted as JSON (stored durably,
keyed ones where Kafka's default partitioner puts them), topics with their offsets and sizes,
records as JSON (text as strings, binary as base64, compressed batches decompressed), consumer
groups with their members' assignments, committed offsets and lag, clear JSON errors, and
Prometheus metrics that promtool accepts.
"""

import json
import signal
import subprocess
import unittest

PROMTOOL = "/usr/bin/promtool"

import harness
from test_events_kafkajs import PROJECT as KAFKAJS
from test_events_kafkajs import ensure_kafkajs
from test_events_kcat import KCAT, Broker, produce_v3, record_batch, roundtrip


class HttpApi(unittest.TestCase):
    def setUp(self):
        self.broker = Broker("--default-partitions", "2")
        self.broker.start()

    def tearDown(self):
        self.broker.close()

    def test_topics_and_records_as_json_for_every_codec(self):
        for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
            with self.subTest(codec=codec):
                topic = f"t-{codec}"
                self.broker.produce(topic, [f"k{i}:{codec} {i}" for i in range(30)], "-z",
                                    codec, "-p", "1", "-H", "h=v")
                status, body = self.broker.http(f"/topics/{topic}")
                self.assertEqual(status, 200)
                self.assertEqual([(p["partition"], p["earliest_offset"], p["latest_offset"])
                                  for p in body["partitions"]], [(0, 0, 0), (1, 0, 30)])
                status, body = self.broker.http(
                    f"/topics/{topic}/partitions/1/records?offset=5&limit=10")
                self.assertEqual(status, 200, body)
                self.assertEqual([r["offset"] for r in body["records"]], list(range(5, 15)))
                self.assertEqual(body["next_offset"], 15)
                first = body["records"][0]
                self.assertEqual((first["key"], first["value"]), ("k5", f"{codec} 5"))
                self.assertEqual(first["headers"], [{"key": "h", "value": "v"}])
                self.assertGreater(first["timestamp"], 1_600_000_000_000)
        status, body = self.broker.http("/topics")
        self.assertEqual(status, 200)
        self.assertEqual(sorted(t["name"] for t in body["topics"]),
                         [f"t-{c}" for c in sorted(("none", "gzip", "snappy", "lz4", "zstd"))])
        self.assertTrue(all(t["records"] == 30 for t in body["topics"]))

    def test_binary_values_come_as_base64_and_bad_requests_as_json_errors(self):
        self.broker.metadata("bin")
        roundtrip(self.broker.port, produce_v3("bin", 0, record_batch([b"\xff\x00\x01", b"ok"])))
        status, body = self.broker.http("/topics/bin/partitions/0/records")
        self.assertEqual(status, 200)
        binary, text = body["records"]
        self.assertEqual((binary["value"], binary["value_base64"]), (None, "/wAB"))
        self.assertEqual((text["value"], text["key"]), ("ok", None))
        for path, want in (("/topics/nope", 404), ("/topics/bin/partitions/7/records", 404),
                           ("/topics/bin/partitions/0/records?offset=99", 404),
                           ("/topics/bin/partitions/0/records?limit=0", 400),
                           ("/topics/bin/partitions/0/records?offset=x", 400),
                           ("/topics/bin/whatever", 404), ("/groups/none", 404)):
            with self.subTest(path=path):
                status, body = self.broker.http(path)
                self.assertEqual(status, want)
                self.assertIn("error", body)
                self.assertIn("message", body)

    def test_a_groups_members_assignment_offsets_and_lag(self):
        self.broker.produce("orders", [f"k{i}:v{i}" for i in range(10)], "-p", "0")
        member = harness.spawn([KCAT, "-b", self.broker.bootstrap, "-G", "shop", "orders", "-q",
                                "-X", "auto.offset.reset=earliest",
                                "-X", "auto.commit.interval.ms=100"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def consumed():
                status, body = self.broker.http("/groups/shop")
                committed = {o["partition"]: o for o in body.get("offsets", [])}
                return status == 200 and body["state"] == "Stable" and \
                    committed.get(0, {}).get("committed") == 10 and body
            body = harness.wait_until(consumed, what="the group to consume and commit")
            (m,) = body["members"]
            self.assertEqual(m["assignment"], {"orders": [0, 1]})
            self.assertEqual(m["client_host"], "/127.0.0.1")
            self.broker.produce("orders", ["k:late-1", "k:late-2"], "-p", "1")

            def lag_seen():
                _, body = self.broker.http("/groups/shop")
                return {o["partition"]: o["lag"] for o in body["offsets"]}.get(1) == 0
            harness.wait_until(lag_seen, what="the group to catch up on partition 1")
            status, body = self.broker.http("/groups")
            self.assertEqual([(g["group"], g["state"]) for g in body["groups"]],
                             [("shop", "Stable")])
        finally:
            member.kill()
            harness.reap(member)
        status, body = self.broker.http("/status")
        self.assertEqual((status, body["kafka"], body["groups"]), (200, self.broker.bootstrap, 1))

    def test_metrics_are_valid_prometheus_text_that_counts_what_happened(self):
        self.broker.produce("m", [f"k{i}:v{i}" for i in range(25)], "-p", "0")
        self.broker.consume("m", "%s\\n", "-p", "0")
        r = harness.request(f"127.0.0.1:{self.broker.http_port}", "GET", "/metrics")
        self.assertEqual(r.status, 200)
        text = r.body.decode()
        proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                              capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stdout.decode() + proc.stderr.decode())
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        self.assertEqual(samples["ddialab_events_produced_records_total"], 25)
        self.assertEqual(samples["ddialab_events_log_records"], 25)
        self.assertGreaterEqual(samples['ddialab_events_requests_total{api="Produce"}'], 1)
        self.assertGreaterEqual(samples['ddialab_events_requests_total{api="Fetch"}'], 1)
        self.assertGreaterEqual(samples["ddialab_events_fsync_rounds_total"], 1)
        self.assertGreater(samples["ddialab_events_fetched_bytes_total"], 0)
        self.assertEqual(samples["ddialab_events_partitions"], 2)

    def post(self, path, body):
        r = harness.request(f"127.0.0.1:{self.broker.http_port}", "POST", path,
                            body=json.dumps(body) if not isinstance(body, str) else body)
        return r.status, r.json()

    def test_posted_records_are_stored_durably_and_read_back_by_kafka_clients(self):
        status, body = self.post("/topics/posted/records", {"records": [
            {"key": "order-1", "value": "created", "headers": {"source": "curl"}},
            {"key": "order-1", "value": "paid"},
            {"value_base64": "/wAB"},
            {"key": "x", "value": "to two", "partition": 1}]})
        self.assertEqual(status, 200, body)
        offsets = [(o["partition"], o["offset"]) for o in body["offsets"]]
        self.assertEqual(offsets[0][0], offsets[1][0])  # one key, one partition
        self.assertEqual(offsets[1][1], offsets[0][1] + 1)
        self.assertEqual(offsets[3], (1, offsets[3][1]))
        self.broker.kill(signal.SIGKILL)  # acknowledged means fsynced
        self.broker.start()
        p0 = offsets[0][0]
        got = self.broker.consume("posted", "%k=%s|%h\\n", "-p", str(p0))
        self.assertEqual(got[offsets[0][1]:offsets[1][1] + 1],
                         ["order-1=created|source=curl", "order-1=paid|"])
        _, rec = self.broker.http(f"/topics/posted/partitions/{offsets[2][0]}/records"
                                  f"?offset={offsets[2][1]}&limit=1")
        self.assertEqual(rec["records"][0]["value_base64"], "/wAB")

    def test_keyed_records_go_where_kafkas_default_partitioner_puts_them(self):
        ensure_kafkajs()
        keys = [f"customer-{i}" for i in range(40)]
        self.broker.metadata("keyed")  # 2 partitions
        status, body = self.post("/topics/keyed/records",
                                 {"records": [{"key": k, "value": "v"} for k in keys]})
        self.assertEqual(status, 200, body)
        script = ("const p = require('kafkajs').Partitioners.DefaultPartitioner();"
                  "const keys = JSON.parse(process.argv[1]);"
                  "console.log(JSON.stringify(keys.map(k => p({topic: 't', partitionMetadata:"
                  " [{partitionId: 0}, {partitionId: 1}], message: {key: k}}))));")
        out = subprocess.run(["node", "-e", script, json.dumps(keys)], cwd=KAFKAJS,
                             capture_output=True, text=True, timeout=60, check=True).stdout
        self.assertEqual([o["partition"] for o in body["offsets"]], json.loads(out))

    def test_bad_posts_get_json_errors_and_store_nothing(self):
        for body, want in (("not json", 400), ({"records": []}, 400), ({"rows": [1]}, 400),
                           ({"records": [{"key": 5}]}, 400),
                           ({"records": [{"value": "a", "partition": 9}]}, 400),
                           ({"records": [{"value": "a", "value_base64": "YQ=="}]}, 400),
                           ({"records": [{"value_base64": "not base64!"}]}, 400),
                           ({"records": [{"value": "a", "headers": {"h": 1}}]}, 400)):
            with self.subTest(body=body):
                status, reply = self.post("/topics/strict/records", body)
                self.assertEqual(status, want, reply)
                self.assertIn("message", reply)
        status, reply = self.post("/topics/bad%20name/records", {"records": [{"value": "a"}]})
        self.assertEqual(status, 400)
        status, reply = self.post("/topics/strict/other", {"records": [{"value": "a"}]})
        self.assertEqual(status, 404)
        status, topics = self.broker.http("/topics")
        self.assertEqual(sum(t["records"] for t in topics["topics"]), 0)


if __name__ == "__main__":
    harness.main()
