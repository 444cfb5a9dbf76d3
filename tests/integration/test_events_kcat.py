"""`ddialab events broker` driven by kcat (librdkafka 2.0.2) and by raw Kafka frames.

kcat is a real Kafka client: what works here works for any librdkafka application. The raw frames
check what kcat never sends: a flexible ApiVersions v3, a corrupt batch, garbage, an oversized
frame; after each the broker must go on serving everyone else.
"""

import json
import os
import signal
import socket
import struct
import subprocess
import time
import unittest
import zlib

import harness

KCAT = "kcat"
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


class Broker:
    """One broker on a free port, its data and log in a temporary directory."""

    def __init__(self, *flags, env=None):
        self.flags = list(flags)
        self.env = env
        self.dir = harness.make_temp_dir("ddialab-events-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.proc = None
        self.port = self.http_port = None

    def start(self):
        def launch(new_ports):
            if self.port is None or new_ports:
                self.port, self.http_port = harness.free_ports(2)
            argv = [harness.BIN, "events", "broker", "--listen", f"127.0.0.1:{self.port}",
                    "--http", f"127.0.0.1:{self.http_port}", "--data-dir", self.data] + self.flags
            with open(self.log_path, "ab") as log:
                self.proc = harness.spawn(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=self.env)
        harness.start_server(launch, self._listening, "the broker to listen", self.log_tail)

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"the broker exited with {self.proc.returncode}:\n"
                               + self.log_tail())
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def http(self, path):
        """GET path from the HTTP API: (status, JSON body)."""
        r = harness.request(f"127.0.0.1:{self.http_port}", "GET", path)
        return r.status, r.json()

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        return harness.reap(self.proc)

    def close(self):
        """Stops the broker with SIGTERM, which must end it cleanly (exit 0: under the
        sanitizers, no leak and no error either)."""
        rc = 0
        if self.proc is not None and self.proc.poll() is None:
            rc = self.kill(signal.SIGTERM)
        tail = self.log_tail()
        harness.remove_temp_dir(self.dir)
        if rc != 0:
            raise AssertionError(f"the broker exited {rc} on SIGTERM:\n{tail}")

    def log_tail(self, lines=30):
        return harness.log_tail(self.log_path, "broker", lines)

    def kcat(self, *args, input=None, timeout=30):
        """Runs kcat against this broker; its stdout (raises with stderr on failure)."""
        argv = [KCAT, "-b", self.bootstrap] + list(args)
        p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {p.returncode}:\n"
                                 f"{p.stderr.decode(errors='replace')}\n{self.log_tail()}")
        return p.stdout.decode(errors="replace")

    def produce(self, topic, lines, *args):
        """Produces key:value lines (keys split at the first ':') with acks=all."""
        data = "".join(line + "\n" for line in lines).encode()
        self.kcat("-P", "-t", topic, "-K:", "-X", "acks=all", *args, input=data)

    def consume(self, topic, fmt="%k=%s@%o\\n", *args):
        out = self.kcat("-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt, *args)
        return out.splitlines()

    def metadata(self, topic=None):
        args = ["-L", "-J"] + (["-t", topic] if topic else [])
        return json.loads(self.kcat(*args))


# ------------------------------------------------------------------------------------------------
# Raw Kafka frames


def frame(api_key, version, correlation_id, body, flexible_header=False):
    header = struct.pack(">hhi", api_key, version, correlation_id) + struct.pack(">h", 4) + b"test"
    if flexible_header:
        header += b"\x00"  # no tagged fields
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def roundtrip(port, raw):
    """Sends raw bytes, returns one response frame's body (after the correlation id), or None
    when the broker closed the connection instead."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        try:
            size = struct.unpack(">i", recv_exact(s, 4))[0]
            return recv_exact(s, size)[4:]
        except (ConnectionError, ConnectionResetError):
            return None


def record_batch(values, corrupt=False, producer_id=-1, epoch=-1, sequence=-1):
    """A record batch v2 with one record per value (null keys), CRC-32C over attributes on;
    an idempotent producer's when producer_id, epoch and sequence are given."""
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + zigzag(0) + zigzag(i) + zigzag(-1) + zigzag(len(v)) + v + zigzag(0)
        records += zigzag(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, 1000, 1000, producer_id, epoch,
                            sequence, len(values)) + records
    crc = crc32c(after_crc) ^ (1 if corrupt else 0)
    rest = struct.pack(">ibI", 0, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(rest)) + rest


def zigzag(n):
    n = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def produce_v3(topic, partition, batch):
    body = struct.pack(">h", -1)  # transactional_id null
    body += struct.pack(">hi", -1, 10000)  # acks, timeout
    body += struct.pack(">i", 1) + struct.pack(">h", len(topic)) + topic.encode()
    body += struct.pack(">i", 1) + struct.pack(">i", partition)
    body += struct.pack(">i", len(batch)) + batch
    return frame(0, 3, 7, body)


def parse_produce_v3(resp):
    """[(partition, error, base_offset)] of the single topic in a Produce v3 response."""
    off = 4  # topic count
    (n,) = struct.unpack_from(">h", resp, off)
    off += 2 + n
    (count,) = struct.unpack_from(">i", resp, off)
    off += 4
    out = []
    for _ in range(count):
        p, err, base, _append_time = struct.unpack_from(">ihqq", resp, off)
        off += 22
        out.append((p, err, base))
    return out


class EventsBrokerWithKcat(unittest.TestCase):
    def setUp(self):
        self.broker = Broker("--default-partitions", "3")
        self.broker.start()

    def tearDown(self):
        self.broker.close()

    def test_metadata_names_the_broker_and_creates_a_topic_on_first_use(self):
        meta = self.broker.metadata("orders")
        self.assertEqual(meta["brokers"], [{"id": 1, "name": self.broker.bootstrap}])
        (topic,) = meta["topics"]
        self.assertEqual(topic["topic"], "orders")
        self.assertEqual([p["partition"] for p in topic["partitions"]], [0, 1, 2])
        self.assertTrue(all(p["leader"] == 1 for p in topic["partitions"]))
        listed = [t["topic"] for t in self.broker.metadata()["topics"]]
        self.assertEqual(listed, ["orders"])

    def test_every_codec_round_trips_keys_values_and_headers(self):
        for codec in CODECS:
            with self.subTest(codec=codec):
                topic = f"codec-{codec}"
                lines = [f"key{i}:{codec} value {i} " + "x" * (i % 50) for i in range(200)]
                self.broker.produce(topic, lines, "-z", codec, "-p", "0", "-H", "origin=test",
                                    "-H", "codec=" + codec)
                got = self.broker.consume(topic, "%k:%s|%h|%o\\n", "-p", "0")
                self.assertEqual(len(got), 200)
                for i, line in enumerate(got):
                    kv, headers, offset = line.split("|")
                    self.assertEqual(kv, lines[i])
                    self.assertEqual(headers, f"origin=test,codec={codec}")
                    self.assertEqual(int(offset), i)

    def test_records_survive_kill_9_after_acks_all(self):
        lines = [f"k{i}:acknowledged {i}" for i in range(1000)]
        self.broker.produce("durable", lines, "-p", "1")
        self.broker.kill(signal.SIGKILL)  # no clean stop: only what was fsynced remains
        self.broker.start()
        got = self.broker.consume("durable", "%k:%s\\n", "-p", "1")
        self.assertEqual(got, lines)
        more = [f"k{i}:after restart {i}" for i in range(1000, 1010)]
        self.broker.produce("durable", more, "-p", "1")
        offsets = self.broker.consume("durable", "%o\\n", "-p", "1")
        self.assertEqual([int(o) for o in offsets], list(range(1010)))

    def test_a_waiting_consumer_gets_records_produced_after_it_asked(self):
        self.broker.produce("live", ["a:before"], "-p", "0")
        consumer = subprocess.Popen(
            [KCAT, "-b", self.broker.bootstrap, "-C", "-t", "live", "-p", "0", "-o", "end",
             "-c", "1", "-q", "-f", "%s\\n"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # The consumer has asked once it has its offset; produce until it answers, so
            # that the record cannot race ahead of its first fetch.
            def received():
                if consumer.poll() is not None:
                    return True
                self.broker.produce("live", ["b:after"], "-p", "0")
                return False
            harness.wait_until(received, what="the waiting consumer to get a new record")
            out, err = consumer.communicate(timeout=10)
            self.assertEqual(consumer.returncode, 0, err)
            self.assertEqual(out.decode(), "after\n")
        finally:
            if consumer.poll() is None:
                consumer.kill()
                consumer.wait()

    def test_api_versions_v3_gets_unsupported_version_with_a_v0_body(self):
        resp = roundtrip(self.broker.port, frame(18, 3, 1, b"\x00\x00\x00", True))
        self.assertIsNotNone(resp)
        error, count = struct.unpack_from(">hi", resp, 0)
        self.assertEqual(error, 35)
        apis = {struct.unpack_from(">h", resp, 6 + 6 * i)[0]: struct.unpack_from(">hh", resp,
                                                                                 8 + 6 * i)
                for i in range(count)}
        self.assertEqual(apis[18], (0, 2))
        self.assertEqual(apis[0], (0, 7))
        self.assertEqual(apis[1], (0, 11))

    def test_a_corrupt_batch_is_refused_and_a_good_one_stored(self):
        self.broker.metadata("raw")  # creates it
        resp = roundtrip(self.broker.port, produce_v3("raw", 0, record_batch([b"x"], True)))
        self.assertEqual(parse_produce_v3(resp), [(0, 2, -1)])  # CORRUPT_MESSAGE
        resp = roundtrip(self.broker.port, produce_v3("raw", 0, record_batch([b"x", b"y"])))
        self.assertEqual(parse_produce_v3(resp), [(0, 0, 0)])
        resp = roundtrip(self.broker.port, produce_v3("raw", 9, record_batch([b"z"])))
        self.assertEqual(parse_produce_v3(resp), [(9, 3, -1)])  # UNKNOWN_TOPIC_OR_PARTITION
        self.assertEqual(self.broker.consume("raw", "%s\\n", "-p", "0"), ["x", "y"])

    def test_a_fetch_with_an_error_is_answered_at_once_not_after_its_wait(self):
        # Fetch v11, max wait 10 s, min bytes 1, for a topic that does not exist.
        body = struct.pack(">iiiibii", -1, 10000, 1, 1 << 20, 0, 0, -1)
        body += struct.pack(">i", 1) + struct.pack(">h", 4) + b"nope" + struct.pack(">i", 1)
        body += struct.pack(">iiqqi", 0, -1, 0, -1, 1 << 20) + struct.pack(">i", 0)
        body += struct.pack(">h", 0)
        started = time.monotonic()
        resp = roundtrip(self.broker.port, frame(1, 11, 5, body))
        self.assertLess(time.monotonic() - started, 5)  # far less than the 10 s it could wait
        # throttle, error, session, topics: 1, "nope", partitions: 1, index 0, error 3
        error = struct.unpack_from(">h", resp, 4 + 2 + 4 + 4 + 2 + 4 + 4 + 4)[0]
        self.assertEqual(error, 3)

    def test_garbage_and_oversized_frames_close_only_their_connection(self):
        bad = [
            b"\x00\x00\x00\x05hello",  # an unknown API key
            struct.pack(">i", 1 << 30) + b"\x00" * 8,  # a frame far over the limit
            frame(3, 99, 1, b""),  # Metadata v99
            frame(3, 1, 1, b"\x7f\xff\xff\xff"),  # an array count past the frame
            struct.pack(">i", 2) + b"\x00\x00",  # a header cut short
        ]
        for raw in bad:
            with self.subTest(raw=raw[:16]):
                self.assertIsNone(roundtrip(self.broker.port, raw))
        self.assertEqual(self.broker.metadata("still-serving")["topics"][0]["topic"],
                         "still-serving")
        self.assertIsNone(self.broker.proc.poll())


class Retention(unittest.TestCase):
    def setUp(self):
        self.broker = Broker("--segment-bytes", "4096", "--retention-bytes", "16384",
                             "--retention-check", "100ms")
        self.broker.start()

    def tearDown(self):
        self.broker.close()

    def test_retention_by_bytes_drops_the_oldest_segments_and_consumers_start_later(self):
        lines = [f"k{i}:{i:05d} " + "x" * 90 for i in range(1000)]
        # Small batches, so that segments of 4 KiB fill up one after the other.
        self.broker.produce("short", lines, "-p", "0", "-X", "linger.ms=0",
                            "-X", "batch.num.messages=20")

        def first_offset():
            offsets = self.broker.consume("short", "%o\n", "-p", "0")
            return int(offsets[0]) if int(offsets[0]) > 0 else None
        start = harness.wait_until(first_offset, what="retention to drop the first segments",
                                   describe=self.broker.log_tail)
        offsets = [int(o) for o in self.broker.consume("short", "%o\n", "-p", "0")]
        self.assertEqual(offsets, list(range(start, 1000)))  # a suffix, without a hole
        kept = sum(len(line) for line in lines[start:])
        self.assertLess(kept, 16384 + 2 * 4096)  # the limit, give or take whole segments
        self.assertIn("retention: short-0 dropped", self.broker.log_tail(200))


if __name__ == "__main__":
    harness.main()
