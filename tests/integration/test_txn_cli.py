"""ddialab txn run and demo: scenario scripts replayed step by step, the anomaly matrix, and clear
errors (one line, non-zero exit) for bad scripts and flags."""

import json
import os
import unittest

import harness

LEVELS = ["read-uncommitted", "read-committed", "snapshot", "serial", "2pl", "ssi"]


def txn(*args):
    r = harness.run([harness.BIN, "txn", *args])
    r.stdout = r.stdout.decode("utf-8", "replace")
    r.stderr = r.stderr.decode("utf-8", "replace")
    return r


class TxnCli(unittest.TestCase):
    def setUp(self):
        self.dir = harness.make_temp_dir("ddialab-txn-cli-")

    def tearDown(self):
        harness.remove_temp_dir(self.dir)

    def script(self, text):
        path = os.path.join(self.dir, f"s{len(os.listdir(self.dir))}.txn")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_lost_update_step_by_step_in_text(self):
        r = txn("run", "lost-update", "--isolation", "read-committed")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("blocked: waits for T1", r.stdout)
        self.assertIn("resumed after line 14 (T1 commit): ok", r.stdout)
        self.assertIn("final state: counter=11", r.stdout)
        self.assertIn("verdict: anomaly", r.stdout)
        r = txn("run", "lost-update", "--isolation", "repeatable-read")
        self.assertIn("could not serialize access due to concurrent update", r.stdout)
        self.assertIn("verdict: prevented (aborted)", r.stdout)

    def test_json_events_name_the_releasing_step(self):
        r = txn("run", "lost-update", "--isolation", "read-committed", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        events = [json.loads(line) for line in r.stdout.splitlines()]
        blocked = [e for e in events if e.get("status") == "blocked"]
        self.assertEqual(len(blocked), 1)
        self.assertEqual(blocked[0]["transaction"], "T2")
        self.assertEqual(blocked[0]["waiting_for"], "T1")
        resumed = [e for e in events if e.get("status") == "resumed"]
        self.assertEqual(resumed[0]["step"], blocked[0]["step"])
        self.assertEqual(resumed[0]["released_by"]["step"], 14)
        self.assertEqual(resumed[0]["result"], "ok")
        reads = [e for e in events if e.get("op") == "get"]
        self.assertEqual([e["value"] for e in reads], ["10", "10"])
        final = events[-1]
        self.assertEqual(final["event"], "final")
        self.assertEqual(final["state"], {"counter": "11"})
        self.assertEqual(final["verdict"], "anomaly")

    def test_all_levels_runs_each_level_once(self):
        r = txn("run", "write-skew", "--all-levels", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        finals = [json.loads(l) for l in r.stdout.splitlines() if '"final"' in l]
        self.assertEqual([f["level"] for f in finals], LEVELS)
        verdicts = {f["level"]: f["verdict"] for f in finals}
        self.assertEqual(verdicts["snapshot"], "anomaly")
        self.assertEqual(verdicts["ssi"], "prevented (aborted)")

    def test_demo_matrix_shows_what_each_level_allows(self):
        r = txn("demo", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = {row["scenario"]: row for row in json.loads(r.stdout)}
        self.assertGreaterEqual(len(rows), 10)
        for row in rows.values():
            self.assertEqual(sorted(row["levels"]), sorted(LEVELS))
            self.assertTrue(row["explain"])
#No serializable implementation lets any anomaly through.
            for level in ("serial", "2pl", "ssi"):
                self.assertTrue(row["levels"][level].startswith("prevented"), (row, level))
        self.assertEqual(rows["dirty-read-aborted"]["levels"]["read-uncommitted"], "anomaly")
        self.assertEqual(rows["write-skew"]["levels"]["snapshot"], "anomaly")
        self.assertEqual(rows["phantom-read"]["levels"]["2pl"], "prevented (blocked)")
        text = txn("demo")
        self.assertEqual(text.returncode, 0)
        self.assertIn("read-only transaction anomaly", text.stdout)

    def test_a_users_script_with_update_where_and_autocommit(self):
        path = self.script(
            "setup 1=3 2=4 3=6\n"
            "T1 begin\n"
            "T1 update set value = value + 10 where value % 3 == 0\n"
            "scan where value > 10   # autocommit: T1 has not committed\n"
            "T1 commit\n"
            "get 1 3\n")
        r = txn("run", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok, 2 rows", r.stdout)
        self.assertIn("(nothing)", r.stdout)
        self.assertIn("1=13 3=16", r.stdout)
        self.assertIn("final state: 1=13 2=4 3=16", r.stdout)

    def test_strict_mode_refuses_a_line_for_a_blocked_transaction(self):
        path = self.script("setup 1=10\nT1 begin\nT2 begin\nT1 put 1 1\nT2 put 1 2\nT2 commit\n")
        r = txn("run", path, "--strict")
        self.assertEqual(r.returncode, 1)
        self.assertIn("line 6: T2 is blocked (since line 5)", r.stderr)
        r = txn("run", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("queued: T2 is blocked", r.stdout)

    def test_bad_input_gets_one_line_and_a_non_zero_exit(self):
        cases = [
            (["run"], "which script"),
            (["run", os.path.join(self.dir, "missing.txn")], "cannot open"),
            (["run", "lost-update", "--isolation", "chaos"], "unknown isolation level 'chaos'"),
            (["run", "lost-update", "--all-levels", "--isolation", "ssi"], "exclude each other"),
            (["run", self.script("T1 begin\nT1 put 1\n")], "line 2"),
            (["run", self.script("T1 begin nonsense\n")], "line 1"),
            (["run", self.script("\x00\x01")], "line 1"),
            (["demo", "--bogus"], "unknown argument"),
            (["frobnicate"], "unknown verb"),
        ]
        for args, message in cases:
            r = txn(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(message, r.stderr, args)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, (args, r.stderr))


if __name__ == "__main__":
    harness.main()
