"""What the events broker does when fsync fails, with fdatasync made to fail on demand by a small
LD_PRELOAD library this test compiles: a produce waiting for the failed fsync is never
acknowledged (its connection is closed), the partition then refuses every produce, retries of
an idempotent producer included, consumers never see the records that were not made durable,
and a restart re-reads the disk and serves again.
"""

import os
import signal
import struct
import subprocess
import unittest

import harness
from test_events_kcat import Broker, frame, parse_produce_v3, produce_v3, record_batch, roundtrip

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
/* fdatasync fails with EIO while the file named by DDIALAB_TEST_FAIL_FSYNC exists. */
int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    const char *trigger = getenv("DDIALAB_TEST_FAIL_FSYNC");
    if (trigger && access(trigger, F_OK) == 0) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}
"""

STORAGE_ERROR = 56


def init_producer_id(port):
    resp = roundtrip(port, frame(22, 1, 3, struct.pack(">hi", -1, 60000)))
    return struct.unpack_from(">ihqh", resp, 0)[2]


class FsyncFailure(unittest.TestCase):
    def setUp(self):
        self.dir = harness.make_temp_dir("ddialab-fsync-shim-")
        source = os.path.join(self.dir, "shim.c")
        with open(source, "w") as f:
            f.write(SHIM)
        shim = os.path.join(self.dir, "shim.so")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", shim, source, "-ldl"], check=True)
        self.trigger = os.path.join(self.dir, "fail")
        env = dict(os.environ, LD_PRELOAD=shim, DDIALAB_TEST_FAIL_FSYNC=self.trigger,
                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
        self.broker = Broker("--default-partitions", "1", env=env)
        self.broker.start()

    def tearDown(self):
        if os.path.exists(self.trigger):
            os.unlink(self.trigger)
        self.broker.close()
        harness.remove_temp_dir(self.dir)

    def produce(self, values, **ids):
        resp = roundtrip(self.broker.port, produce_v3("t", 0, record_batch(values, **ids)))
        return None if resp is None else parse_produce_v3(resp)[0][1:]

    def test_a_failed_fsync_acknowledges_nothing_and_fences_the_partition(self):
        self.broker.metadata("t")
        pid = init_producer_id(self.broker.port)
        self.assertEqual(self.produce([b"durable"], producer_id=pid, epoch=0, sequence=0), (0, 0))
        open(self.trigger, "w").close()
        # The fsync of this batch fails: no answer at all, the connection is closed.
        self.assertIsNone(self.produce([b"lost"], producer_id=pid, epoch=0, sequence=1))
        os.unlink(self.trigger)
        # fsync works again, but the log may have dropped what it had: the partition refuses
        # writes, and a retry of the batch is not answered from memory either.
        self.assertEqual(self.produce([b"lost"], producer_id=pid, epoch=0, sequence=1),
                         (STORAGE_ERROR, -1))
        self.assertEqual(self.produce([b"after"]), (STORAGE_ERROR, -1))
        # Consumers see only what was made durable.
        self.assertEqual(self.broker.consume("t", "%s\\n"), ["durable"])
        self.assertIn("fsync failed", self.broker.log_tail(100))
        # A restart re-reads the disk: the partition serves again.
        self.broker.kill(signal.SIGKILL)
        self.broker.start()
        self.assertEqual(self.produce([b"again"])[0], 0)


if __name__ == "__main__":
    harness.main()
