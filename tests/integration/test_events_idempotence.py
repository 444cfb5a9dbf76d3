"""Idempotent producers on `ddialab events broker`: InitProducerId, then batches carrying a
producer id, an epoch and sequence numbers. A retried batch is stored once and answered with its
first offset, also after the broker was killed (the sequences are rebuilt from the log); a gap in
the sequence and a fenced (older) epoch are refused with Kafka's errors; and librdkafka's own
idempotent producer (kcat -X enable.idempotence=true) writes every record exactly once.
"""

import signal
import struct
import unittest

import harness
from test_events_kcat import Broker, frame, parse_produce_v3, produce_v3, record_batch, roundtrip

NONE, OUT_OF_ORDER, INVALID_EPOCH, INVALID_REQUEST = 0, 45, 47, 42


def init_producer_id(port, transactional_id=None):
    tid = struct.pack(">h", -1) if transactional_id is None else (
        struct.pack(">h", len(transactional_id)) + transactional_id.encode())
    resp = roundtrip(port, frame(22, 1, 3, tid + struct.pack(">i", 60000)))
    _throttle, error, pid, epoch = struct.unpack_from(">ihqh", resp, 0)
    return error, pid, epoch


class IdempotentProducers(unittest.TestCase):
    def setUp(self):
        self.broker = Broker("--default-partitions", "1")
        self.broker.start()

    def tearDown(self):
        self.broker.close()

    def produce(self, values, pid, epoch, seq):
        resp = roundtrip(self.broker.port,
                         produce_v3("ids", 0, record_batch(values, producer_id=pid, epoch=epoch,
                                                           sequence=seq)))
        ((_, error, base),) = parse_produce_v3(resp)
        return error, base

    def test_init_producer_id_hands_out_distinct_ids_and_refuses_transactions(self):
        e1, pid1, epoch1 = init_producer_id(self.broker.port)
        e2, pid2, _ = init_producer_id(self.broker.port)
        self.assertEqual((e1, e2, epoch1), (NONE, NONE, 0))
        self.assertNotEqual(pid1, pid2)
        self.assertEqual(init_producer_id(self.broker.port, "tx-1")[0], INVALID_REQUEST)
        # Ids are reserved on disk: a restart never hands one out again.
        self.broker.kill(signal.SIGKILL)
        self.broker.start()
        _, pid3, _ = init_producer_id(self.broker.port)
        self.assertNotIn(pid3, (pid1, pid2))

    def test_retries_are_stored_once_and_gaps_and_fenced_epochs_refused(self):
        self.broker.metadata("ids")
        _, pid, _ = init_producer_id(self.broker.port)
        self.assertEqual(self.produce([b"a", b"b"], pid, 0, 0), (NONE, 0))
        self.assertEqual(self.produce([b"a", b"b"], pid, 0, 0), (NONE, 0))  # a retry
        self.assertEqual(self.produce([b"c"], pid, 0, 2), (NONE, 2))
        self.assertEqual(self.produce([b"e"], pid, 0, 4)[0], OUT_OF_ORDER)  # seq 3 is missing
        # After kill -9 the broker still knows the last batches of the producer.
        self.broker.kill(signal.SIGKILL)
        self.broker.start()
        self.assertEqual(self.produce([b"c"], pid, 0, 2), (NONE, 2))  # a retry across restart
        self.assertEqual(self.produce([b"d"], pid, 0, 3), (NONE, 3))
        self.assertEqual(self.produce([b"x"], pid, 1, 0), (NONE, 4))  # a new epoch starts at 0
        self.assertEqual(self.produce([b"zombie"], pid, 0, 4)[0], INVALID_EPOCH)
        self.assertEqual(self.broker.consume("ids", "%s\\n"), ["a", "b", "c", "d", "x"])

    def test_librdkafka_idempotent_producer_writes_each_record_once(self):
        lines = [f"k{i}:value {i}" for i in range(2000)]
        self.broker.produce("exactly-once", lines, "-X", "enable.idempotence=true")
        got = self.broker.consume("exactly-once", "%k:%s\\n")
        self.assertEqual(got, lines)


if __name__ == "__main__":
    harness.main()
