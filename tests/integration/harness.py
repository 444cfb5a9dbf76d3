"""Shared helpers for the ddialab kv integration tests.

Every test drives real `ddialab kv` processes on 127.0.0.1 over their real HTTP API. This module
gives the tests:

- BIN: the binary under test (env DDIALAB_BIN, else build/ddialab);
- free_ports(n): ports the kernel just handed out (bound to port 0 and read back);
- Cluster: N nodes in a temporary directory, one log file per node, started, stopped, killed,
  paused and restarted by pid; it removes every process and file it made when closed;
- request(): one HTTP request over http.client with a timeout -> Response;
- wait_until(): polls a condition until a deadline (never a bare sleep as synchronisation);
- main(): runs a test file's unittest cases and exits non-zero on failure.

Python 3.11 standard library only.
"""

import atexit
import base64
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("DDIALAB_BIN") or os.path.join(ROOT, "build", "ddialab")

# Generous for a loaded 2-core CI machine; conditions usually hold within milliseconds.
DEFAULT_TIMEOUT = 15.0
HTTP_TIMEOUT = 10.0
POLL_INTERVAL = 0.02

# Every process started through this module, so that nothing outlives the test run.
_live_processes = set()
_live_dirs = set()


def _reap_everything():
    for proc in list(_live_processes):
        _force_kill(proc)
    for path in list(_live_dirs):
        shutil.rmtree(path, ignore_errors=True)


atexit.register(_reap_everything)


def _force_kill(proc):
    """SIGKILLs one process we started (it may be stopped) and reaps it."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    _live_processes.discard(proc)


def spawn(argv, **kwargs):
    """subprocess.Popen that the module kills at exit if the test did not."""
    proc = subprocess.Popen(argv, **kwargs)
    _live_processes.add(proc)
    return proc


def reap(proc, timeout=10.0):
    """Waits for a spawned process to exit; returns its exit code (negative: killed by signal)."""
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is not None:
            _live_processes.discard(proc)
    return rc


def make_temp_dir(prefix="ddialab-integ-"):
    """A temporary directory removed at exit (or earlier with remove_temp_dir)."""
    path = tempfile.mkdtemp(prefix=prefix)
    _live_dirs.add(path)
    return path


def remove_temp_dir(path):
    if os.environ.get("DDIALAB_KEEP_TMP"):
        print(f"keeping {path} (DDIALAB_KEEP_TMP)", file=sys.stderr)
    else:
        shutil.rmtree(path, ignore_errors=True)
    _live_dirs.discard(path)


# ------------------------------------------------------------------------------------------------
# Ports


def free_ports(n):
    """n distinct TCP ports on 127.0.0.1 that were free a moment ago.

    All n sockets are held open together so that the kernel cannot hand out the same port twice,
    then closed right before returning. Another process may still grab one before we bind it;
    Cluster.start_all() retries with new ports when a node reports the address in use.
    """
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_is_free(port):
    """Whether a listener could bind port now. Like our servers, it sets SO_REUSEADDR, so a port
    whose old connections linger in TIME_WAIT (common after load tests) counts as free."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port_block(count, avoid=(), attempts=200):
    """A base B such that ports B+1..B+count are all free now (for --http-base style flags).

    Blocks come from below the kernel's ephemeral range: there, client connections never take a
    port, so none lingers in TIME_WAIT (which even SO_REUSEADDR cannot bind over when the
    lingering socket did not set it, as a client's does not)."""
    low, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(attempts):
        base = rng.randrange(10000, max(10001, low - count - 1))
        if base + count >= 65535 or base < 1024:
            continue
        ports = range(base + 1, base + count + 1)
        if any(p in avoid for p in ports):
            continue
        if all(port_is_free(p) for p in ports):
            return base
    raise RuntimeError(f"no block of {count} free ports found")


# ------------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # {lower-case name: value}
        self.body = body  # bytes

    def json(self):
        return json.loads(self.body)

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        body = self.body[:300]
        return f"<HTTP {self.status} {dict(self.headers)} {body!r}>"


def request(base, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
    """One HTTP/1.1 request to base ("127.0.0.1:8001" or "http://..."); returns a Response.

    Connection errors propagate (ConnectionRefusedError, socket.timeout, ...).
    """
    if "://" in base:
        base = urllib.parse.urlsplit(base).netloc
    host, port = base.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return Response(resp.status, hdrs, data)
    finally:
        conn.close()


def key_path(key, query=None):
    """/kv/<key> with every byte but the unreserved ones percent-encoded (str or bytes key)."""
    path = "/kv/" + urllib.parse.quote(key, safe="")
    if query:
        path += "?" + (query if isinstance(query, str) else urllib.parse.urlencode(query))
    return path


# ------------------------------------------------------------------------------------------------
# Waiting


class WaitTimeout(AssertionError):
    pass


def log_tail(path, prefix, lines=30):
    """The last lines of a process's log file, each behind "  prefix | "."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(f"  {prefix} | " + line for line in text.splitlines()[-lines:])


def start_server(launch, ready, what, describe, attempts=3):
    """Starts a server that picks its own free ports: launch(new_ports) spawns it (new_ports is
    true for every attempt but a first that may reuse the ports it had), then ready() is waited
    for. When the server dies reporting its address in use (another process took the free port
    first), it is launched again on new ports, up to attempts times."""
    for attempt in range(attempts):
        launch(attempt > 0)
        try:
            wait_until(ready, what=what, describe=describe)
            return
        except RuntimeError as e:
            if "in use" not in str(e) or attempt + 1 == attempts:
                raise


def wait_until(cond, timeout=DEFAULT_TIMEOUT, what="condition", describe=None):
    """Polls cond() until it returns a truthy value, which is returned.

    Exceptions raised by cond (a node not listening yet, a JSON field missing) count as "not yet";
    the last one is shown if the deadline passes. describe() may add context (e.g. node logs) to
    the failure message.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = cond()
            if value:
                return value
            last_error = None
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as e:
            last_error = e
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout:.1f}s waiting for {what}"
            if last_error is not None:
                msg += f" (last error: {last_error!r})"
            if describe is not None:
                msg += "\n" + describe()
            raise WaitTimeout(msg)
        time.sleep(POLL_INTERVAL)


# ------------------------------------------------------------------------------------------------
# Cluster


class NodeStartError(RuntimeError):
    def __init__(self, msg, addr_in_use=False):
        super().__init__(msg)
        self.addr_in_use = addr_in_use


class Cluster:
    """n `ddialab kv` nodes on 127.0.0.1 with fresh ports and data in a temporary directory.

    Nodes are numbered 1..n like the node ids; replication=None leaves --replication out.
    hosts={i: "127.0.0.1N"} binds node i's HTTP and peer listeners to its own loopback address
    (Linux routes all of 127/8 to lo); users={i: uid} runs node i as that uid (the harness must
    run as root; node i's data directory is made its own). Both exist so that firewall rules can
    tell the nodes' traffic apart (test_kv_partition.py); nodes left out keep 127.0.0.1 and
    the harness's own user. Usage:

        c = Cluster(3, replication="majority")
        self.addCleanup(c.close)
        c.start_all()          # starts every node and waits until the cluster is ready
        c.put(1, "k", b"v")
    """

    def __init__(self, n=3, replication="majority", extra_flags=(), node_flags=None, hosts=None,
                 users=None):
        self.n = n
        self.replication = replication
        self.extra_flags = list(extra_flags)
        self.node_flags = dict(node_flags or {})  # {i: [flags only node i gets]}
        self.hosts = dict(hosts or {})  # {i: the address node i listens on}, else 127.0.0.1
        self.users = dict(users or {})  # {i: the uid node i runs as}, else ours
        self.dir = make_temp_dir()
        self.procs = {}  # i -> Popen while started
        self.exit_codes = {}  # i -> exit code of the last run
        self._alloc_ports()
        self.closed = False

    # -- configuration --

    def _alloc_ports(self):
        ports = free_ports(2 * self.n)
        self.http_ports = {i: ports[i - 1] for i in range(1, self.n + 1)}
        self.peer_ports = {i: ports[self.n + i - 1] for i in range(1, self.n + 1)}

    def host(self, i):
        return self.hosts.get(i, "127.0.0.1")

    def peers_flag(self):
        return ",".join(f"{i}={self.host(i)}:{self.peer_ports[i]}" for i in range(1, self.n + 1))

    def data_dir(self, i):
        return os.path.join(self.dir, f"kv-{i}")

    def log_path(self, i):
        return os.path.join(self.dir, f"kv-{i}.log")

    def argv(self, i):
        return [
            BIN, "kv",
            "--node", str(i),
            "--http", f"{self.host(i)}:{self.http_ports[i]}",
            "--peer", f"{self.host(i)}:{self.peer_ports[i]}",
            "--peers", self.peers_flag(),
            "--data-dir", self.data_dir(i),
        ] + (["--replication", self.replication] if self.replication else []) \
            + self.mode_flags() + self.extra_flags + self.node_flags.get(i, [])

    def mode_flags(self):
        """The foundation's tests exercise the static-leader mode (node 1 leads, operators
        promote); tests of elections pass --elections in their flags."""
        flags = list(self.extra_flags) + [f for fl in self.node_flags.values() for f in fl]
        return [] if "--elections" in flags or "--no-elections" in flags else ["--no-elections"]

    def addr(self, i):
        return f"{self.host(i)}:{self.http_ports[i]}"

    def url(self, i):
        return f"http://{self.addr(i)}"

    # -- processes --

    def start(self, i, wait=True):
        """Starts node i (its log file is appended to); with wait, until /healthz answers."""
        assert i not in self.procs or self.procs[i].poll() is not None, f"node {i} is running"
        log = open(self.log_path(i), "ab")
        log.write(f"=== harness: starting node {i}: {' '.join(self.argv(i))}\n".encode())
        log.flush()
        user = {}
        if i in self.users:
            # The node needs its data directory to itself and a way into the temporary directory.
            uid = self.users[i]
            os.chmod(self.dir, 0o711)
            os.makedirs(self.data_dir(i), exist_ok=True)
            os.chown(self.data_dir(i), uid, uid)
            user = {"user": uid, "group": uid, "extra_groups": []}
        try:
            self.procs[i] = spawn(self.argv(i), stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, **user)
        finally:
            log.close()
        if wait:
            self.wait_healthy(i)

    def wait_healthy(self, i, timeout=DEFAULT_TIMEOUT):
        proc = self.procs[i]

        def healthy():
            if proc.poll() is not None:
                tail = self.log_tail(i)
                raise NodeStartError(
                    f"node {i} exited with {proc.returncode} while starting:\n{tail}",
                    addr_in_use="address already in use" in tail.lower() or "EADDRINUSE" in tail)
            return request(self.addr(i), "GET", "/healthz", timeout=2).status == 200

        wait_until(healthy, timeout, f"node {i} to answer /healthz", self.describe)

    def start_all(self, ready=True, attempts=3):
        """Starts every node; retries with new ports if one was taken meanwhile."""
        for attempt in range(attempts):
            try:
                for i in range(1, self.n + 1):
                    self.start(i, wait=False)
                for i in range(1, self.n + 1):
                    self.wait_healthy(i)
                break
            except NodeStartError as e:
                if not e.addr_in_use or attempt + 1 == attempts:
                    raise
                for i in list(self.procs):
                    self.kill(i)
                shutil.rmtree(self.dir, ignore_errors=True)
                os.makedirs(self.dir)
                self._alloc_ports()
        if ready:
            self.wait_ready()

    def pid(self, i):
        return self.procs[i].pid

    def running(self, i):
        return i in self.procs and self.procs[i].poll() is None

    def send_signal(self, i, sig):
        """Sends sig to node i's pid (SIGSTOP / SIGCONT / ...)."""
        os.kill(self.procs[i].pid, sig)

    def kill(self, i, sig=signal.SIGKILL):
        """Sends sig (SIGKILL by default) and reaps the node; returns its exit code."""
        proc = self.procs[i]
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            if sig != signal.SIGKILL:
                os.kill(proc.pid, signal.SIGCONT)  # a paused node must run to handle sig
        rc = reap(proc, timeout=15)
        self.exit_codes[i] = rc
        return rc

    def stop(self, i, timeout=15):
        """Graceful stop: SIGTERM, then wait. Returns the exit code."""
        proc = self.procs[i]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGTERM)
        try:
            rc = reap(proc, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"node {i} did not stop within {timeout}s of SIGTERM\n"
                                 + self.log_tail(i))
        self.exit_codes[i] = rc
        return rc

    def restart(self, i, sig=signal.SIGTERM, wait=True):
        if self.running(i):
            if sig == signal.SIGTERM:
                self.stop(i)
            else:
                self.kill(i, sig)
        self.start(i, wait=wait)

    def close(self):
        """Stops every node (SIGTERM, SIGKILL if slow) and removes the temporary directory."""
        if self.closed:
            return
        self.closed = True
        for i, proc in self.procs.items():
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for i, proc in self.procs.items():
            try:
                reap(proc, timeout=5)
            except subprocess.TimeoutExpired:
                _force_kill(proc)
        remove_temp_dir(self.dir)

    # -- logs --

    def log_tail(self, i, lines=25):
        try:
            with open(self.log_path(i), "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return f"(no log for node {i})"
        return "\n".join(f"  kv-{i} | {line}" for line in text.splitlines()[-lines:])

    def log_text(self, i):
        with open(self.log_path(i), "rb") as f:
            return f.read().decode(errors="replace")

    def describe(self):
        parts = []
        for i in range(1, self.n + 1):
            state = "not started"
            if i in self.procs:
                rc = self.procs[i].poll()
                state = f"pid {self.procs[i].pid} " + ("running" if rc is None else f"exited {rc}")
            parts.append(f"--- node {i} ({state}), last log lines:\n{self.log_tail(i)}")
        return "\n".join(parts)

    # -- HTTP --

    def request(self, i, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
        return request(self.addr(i), method, path, body, headers, timeout)

    def status(self, i, timeout=HTTP_TIMEOUT):
        r = self.request(i, "GET", "/status", timeout=timeout)
        if r.status != 200:
            raise AssertionError(f"/status on node {i}: {r}")
        return r.json()

    def put(self, i, key, value, headers=None, timeout=HTTP_TIMEOUT):
        return self.request(i, "PUT", key_path(key), value, headers, timeout)

    def get(self, i, key, stale=False, headers=None, timeout=HTTP_TIMEOUT):
        return self.request(i, "GET", key_path(key, "consistency=stale" if stale else None),
                            None, headers, timeout)

    def delete(self, i, key, headers=None, timeout=HTTP_TIMEOUT):
        return self.request(i, "DELETE", key_path(key), None, headers, timeout)

    def list_keys(self, i, prefix, stale=False):
        """{key: value bytes} of every key under prefix on node i (at most 10000)."""
        query = {"prefix": prefix, "limit": "10000"}
        if stale:
            query["consistency"] = "stale"
        r = self.request(i, "GET", "/kv?" + urllib.parse.urlencode(query))
        if r.status != 200:
            raise AssertionError(f"listing {prefix!r} on node {i}: {r}")
        body = r.json()
        assert not body["more"], "more than 10000 keys"
        out = {}
        for item in body["items"]:
            value = item["value"].encode() if "value" in item else \
                base64.b64decode(item["value_base64"])
            out[item["key"]] = value
        return out

    def metrics(self, i):
        r = self.request(i, "GET", "/metrics")
        if r.status != 200:
            raise AssertionError(f"/metrics on node {i}: {r}")
        return r.body.decode()

    # -- conditions --

    def wait_until(self, cond, timeout=DEFAULT_TIMEOUT, what="condition"):
        """wait_until() that shows every node's log tail on timeout."""
        return wait_until(cond, timeout, what, self.describe)

    def leader(self):
        """The running node that says it leads at the highest term, or None."""
        best = None
        for i in range(1, self.n + 1):
            if not self.running(i):
                continue
            try:
                s = self.status(i, timeout=2)
            except (OSError, http.client.HTTPException):
                continue
            if s["role"] == "leader" and (best is None or s["term"] > best[1]):
                best = (i, s["term"])
        return best[0] if best else None

    def wait_ready(self, timeout=DEFAULT_TIMEOUT, nodes=None):
        """Every running node answers /healthz and the leader sees every follower connected.

        Returns the leader's id.
        """
        nodes = nodes or [i for i in range(1, self.n + 1) if self.running(i)]

        def ready():
            for i in nodes:
                if self.request(i, "GET", "/healthz", timeout=2).status != 200:
                    return None
            leader = self.leader()
            if leader is None:
                return None
            followers = self.status(leader)["followers"]
            want = {i for i in nodes if i != leader}
            connected = {f["node"] for f in followers if f["connected"]}
            return leader if want <= connected else None

        return self.wait_until(ready, timeout, "the leader to see every follower connected")

    def wait_applied(self, i, index, timeout=DEFAULT_TIMEOUT):
        """Node i's applied_index reaches index."""
        return self.wait_until(lambda: self.status(i)["applied_index"] >= index, timeout,
                               f"node {i} to apply index {index}")

    def wait_converged(self, nodes=None, timeout=DEFAULT_TIMEOUT):
        """Every listed node has applied everything the leader has applied."""
        nodes = nodes or [i for i in range(1, self.n + 1) if self.running(i)]

        def converged():
            leader = self.leader()
            if leader is None:
                return False
            target = self.status(leader)["applied_index"]
            return all(self.status(i)["applied_index"] >= target for i in nodes)

        self.wait_until(converged, timeout, f"nodes {nodes} to apply what the leader applied")


class ClusterTestCase(unittest.TestCase):
    """A test class sharing one cluster, started in setUpClass and closed after the class.

    Subclasses set N, REPLICATION and FLAGS; tests use distinct keys so that they do not
    interfere.
    """

    N = 3
    REPLICATION = "majority"
    FLAGS = ()

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(cls.N, cls.REPLICATION, cls.FLAGS)
        cls.addClassCleanup(cls.cluster.close)
        cls.cluster.start_all()
        cls.leader_id = cls.cluster.leader()

    def assertJsonError(self, resp, status, code=None):
        """resp has the status and a JSON body with string "error" (== code) and "message"."""
        self.assertEqual(resp.status, status, resp)
        self.assertTrue(resp.header("content-type", "").startswith("application/json"), resp)
        body = resp.json()
        self.assertIsInstance(body.get("error"), str, resp)
        self.assertIsInstance(body.get("message"), str, resp)
        self.assertTrue(body["message"], resp)
        if code is not None:
            self.assertEqual(body["error"], code, resp)
        return body


class Writer(threading.Thread):
    """A thread that PUTs prefix0, prefix1, ... to one node until stopped.

    acked maps each key answered 200 to (value, index); every other outcome (an error status, a
    refused or broken connection) is counted in failed and the key is not retried. A refused
    connection backs off briefly so that a dead node does not make the thread spin.
    """

    def __init__(self, cluster, node, prefix, timeout=5.0):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.node = node
        self.prefix = prefix
        self.timeout = timeout
        self.acked = {}
        self.failed = 0
        self.attempted = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            key = f"{self.prefix}{i:06d}"
            value = f"value of {key}".encode()
            i += 1
            self.attempted += 1
            try:
                r = self.cluster.put(self.node, key, value, timeout=self.timeout)
            except (OSError, http.client.HTTPException):
                self.failed += 1
                self.stopping.wait(0.02)
                continue
            with self.lock:
                if r.status == 200:
                    self.acked[key] = (value, r.json()["index"])
                else:
                    self.failed += 1
            if r.status != 200:
                self.stopping.wait(0.02)

    def count(self):
        with self.lock:
            return len(self.acked)

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)
        if self.is_alive():
            raise AssertionError("the writer thread did not stop")
        return dict(self.acked)


# ------------------------------------------------------------------------------------------------
# Running external programs


def run(argv, timeout=30, input=None, env=None):
    """Runs a program to completion; returns CompletedProcess with bytes stdout/stderr."""
    proc = spawn(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _force_kill(proc)
        raise
    _live_processes.discard(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)



# ------------------------------------------------------------------------------------------------
# Test-file entry point


def main():
    """Runs the calling module's tests verbosely, prints a summary line, exits 1 on failure."""
    if not os.access(BIN, os.X_OK):
        print(f"{BIN} is not an executable file; build it or set DDIALAB_BIN", file=sys.stderr)
        sys.exit(2)
    started = time.monotonic()
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    result = prog.result
    _reap_everything()
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    xfail = len(result.expectedFailures)
    passed = result.testsRun - failed - skipped - xfail
    extra = ""
    if xfail:
        extra += f", {xfail} expected failures (known bugs)"
    if skipped:
        extra += f", {skipped} skipped"
    print(f"{passed} passed, {failed} failed{extra} in {time.monotonic() - started:.1f}s")
    sys.exit(0 if failed == 0 and result.testsRun > 0 else 1)
