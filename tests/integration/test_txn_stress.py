"""ddialab txn stress: real threads on one engine. The weak levels must really show their
anomalies under load (lost updates, read skew, write skew, phantoms), and the history checker must
name them (G-single, G2-item, G2); every serializable implementation must show none. Bad flags get
one line and exit 2.

Each run is bounded (about a second); the workloads use few keys so that transactions collide.
"""

import json
import unittest

import harness

WORKLOADS = ["bank", "counter", "write-skew", "phantom"]
SERIALIZABLE = ["ssi", "2pl", "serial"]


def stress(*args, duration="1s"):
    """Runs ddialab txn stress ARGS --duration D; returns the CompletedProcess (text)."""
    r = harness.run([harness.BIN, "txn", "stress", "--duration", duration, *args], timeout=120)
    r.stdout = r.stdout.decode("utf-8", "replace")
    r.stderr = r.stderr.decode("utf-8", "replace")
    return r


class TxnStress(unittest.TestCase):
    def run_json(self, workload, level, *extra, duration="1s"):
        """One run with --json --check; returns the parsed object."""
        r = stress("--workload", workload, "--isolation", level, "--json", "--check", "--seed", "7",
                   *extra, duration=duration)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual((out["workload"], out["level"]), (workload, level))
        self.assertGreater(out["committed"], 100, f"{workload} at {level} barely ran: {out}")
        return out

    def anomalies(self, out):
        return {name: a["count"] for name, a in out["check"]["anomalies"].items()}

    def assert_cycle_examples(self, out, anomaly):
        """The anomaly has named cycles: two or more transactions, closed, with edge kinds."""
        examples = out["check"]["anomalies"][anomaly]["examples"]
        self.assertTrue(examples, f"{anomaly} counted but not named")
        for ex in examples:
            self.assertGreaterEqual(len(ex["txns"]), 2, ex)
            first = f"T{ex['txns'][0]}"
            self.assertTrue(ex["text"].startswith(first + " -"), ex)
            self.assertTrue(ex["text"].endswith("-> " + first), ex)
            for t in ex["txns"]:
                self.assertIn(f"T{t} -", ex["text"])

    # -- weak levels show their anomalies --

    def test_read_committed_counter_loses_updates_and_check_names_g_single(self):
        out = self.run_json("counter", "read-committed")
        lost = out["violations"].get("lost_updates", 0)
        self.assertGreater(lost, 0, out)
        self.assertEqual(out["increments"] - out["final_value"], lost)
        found = self.anomalies(out)
        self.assertGreater(found["G-single"], 0, found)
        self.assert_cycle_examples(out, "G-single")
        self.assertEqual(found["impossible-read"], 0, found)

    def test_read_committed_bank_breaks_the_total(self):
        out = self.run_json("bank", "read-committed")
        self.assertGreater(out["violations_total"], 0, out)
        self.assertTrue({"read_skew", "total_changed"} & set(out["violations"]), out)
        self.assertGreater(self.anomalies(out)["G-single"], 0)

    def test_read_uncommitted_bank_reads_data_of_rolled_back_transfers(self):
        out = self.run_json("bank", "read-uncommitted")
        self.assertGreater(out["violations_total"], 0, out)
        found = self.anomalies(out)
        self.assertGreater(found["G1a"], 0, found)
        ex = out["check"]["anomalies"]["G1a"]["examples"][0]
        self.assertIn("which aborted", ex["text"])

    def test_snapshot_write_skew_leaves_shifts_uncovered_and_check_names_g2_item(self):
        out = self.run_json("write-skew", "snapshot")
        self.assertGreater(out["violations_total"], 0, out)
        found = self.anomalies(out)
        self.assertGreater(found["G2-item"], 0, found)
        self.assert_cycle_examples(out, "G2-item")
        # Snapshot isolation proscribes everything below G2: no lost update, no read skew.
        for below in ["G0", "G1a", "G1b", "G1c", "G-single", "impossible-read"]:
            self.assertEqual(found[below], 0, found)

    def test_snapshot_phantom_double_books_and_check_names_g2(self):
        out = self.run_json("phantom", "snapshot")
        self.assertGreater(out["violations_total"], 0, out)
        found = self.anomalies(out)
        self.assertGreater(found["G2"], 0, found)
        self.assert_cycle_examples(out, "G2")
        self.assertTrue(any("rw(value ==" in ex["text"]
                            for ex in out["check"]["anomalies"]["G2"]["examples"]))
        self.assertEqual(found["G-single"], 0, found)

    def test_snapshot_keeps_the_bank_and_the_counters_right(self):
        for workload in ["bank", "counter"]:
            with self.subTest(workload=workload):
                out = self.run_json(workload, "snapshot")
                self.assertEqual(out["violations_total"], 0, out)
                self.assertEqual(out["check"]["total"], 0, out["check"])
                self.assertGreater(out["aborts"].get("serialization", 0), 0, out)

    # -- serializable levels show none --

    def test_serializable_levels_show_no_anomaly_in_any_workload(self):
        for level in SERIALIZABLE:
            for workload in WORKLOADS:
                with self.subTest(level=level, workload=workload):
                    r = stress("--workload", workload, "--isolation", level, "--check",
                               "--expect-none", "--seed", "11", duration="700ms")
                    self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                    self.assertIn("violations  none", r.stdout)
                    self.assertRegex(r.stdout, r"none of +G0 G1a G1b G1c G-single G2-item G2 "
                                               r"impossible-read")

    # -- the command line --

    def test_summary_names_the_run_throughput_and_aborts(self):
        r = stress("--workload", "counter", "--isolation", "snapshot", "--threads", "3",
                   "--seed", "5", duration="300ms")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"stress +counter at snapshot: 3 threads for [\d.]+ s, "
                                   r"seed 5, yielding between statements")
        self.assertRegex(r.stdout, r"committed +\d+ transactions, \d+/s")
        self.assertRegex(r.stdout, r"aborted +\d+ attempts, [\d.]+% \(retried\): could not "
                                   r"serialize access due to concurrent update \d+")
        self.assertNotIn("check ", r.stdout, "no history without --check")

    def test_expect_none_exits_1_when_the_run_found_anomalies(self):
        r = stress("--workload", "counter", "--isolation", "read-committed", "--expect-none",
                   duration="500ms")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("lost_updates", r.stdout)

    def test_json_is_one_object_with_the_run_and_its_aborts(self):
        r = stress("--workload", "bank", "--isolation", "ssi", "--json", "--seed", "3",
                   "--no-yield", "--keys", "3", duration="300ms")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        for key in ["committed", "aborted", "txn_per_s", "abort_rate", "aborts", "violations",
                    "violations_total", "duration_s", "threads"]:
            self.assertIn(key, out)
        self.assertEqual((out["seed"], out["keys"], out["yield"]), (3, 3, False))
        self.assertNotIn("check", out)
        self.assertAlmostEqual(out["abort_rate"],
                               out["aborted"] / max(1, out["aborted"] + out["committed"]))
        self.assertEqual(sum(out["aborts"].values()), out["aborted"])

    def test_bad_flags_get_one_line_and_exit_2(self):
        cases = [
            (["--workload", "bakery"], "unknown workload"),
            (["--isolation", "eventual"], "unknown isolation level"),
            (["--threads", "0"], "--threads"),
            (["--duration", "0"], "--duration"),
            (["--duration", "soon"], "--duration"),
            (["--workload", "bank", "--keys", "1"], "--keys"),
            (["--audits", "101"], "--audits"),
            (["--frobnicate"], "unknown flag"),
            (["extra"], "unexpected argument"),
        ]
        for args, words in cases:
            with self.subTest(args=args):
                r = harness.run([harness.BIN, "txn", "stress", *args])
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 2, err)
                self.assertEqual(err.count("\n"), 1, err)
                self.assertIn(words, err)
                self.assertEqual(r.stdout, b"")


if __name__ == "__main__":
    harness.main()
