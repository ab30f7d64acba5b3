"""Test harness for raftmq integration tests: starts, stops and kills real `raftmq serve`
processes on loopback and waits for readiness. Standard library only (the clients under test
are imported by the tests themselves). Ports default to 29092+ (Kafka) and 30092+ (Raft RPC, below the ephemeral range 32768+) so
that a `scripts/run` cluster on 9092-9094 is not disturbed.

Exit code 77 means "skipped" to ctest (SKIP_RETURN_CODE)."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))


def log(*args):
    print("[harness %.1f]" % time.monotonic(), *args, flush=True)


def client_log_text(fmt, args):
    """The text of one librdkafka log line as confluent-kafka hands it to a `logger` option's
    log(level, fmt, *args): "<facility> [<client name>] <text>"."""
    try:
        return fmt % args if args else fmt
    except (TypeError, ValueError):
        return str(fmt)


def find_binary():
    for candidate in (os.environ.get("RAFTMQ_BIN"),
                      os.path.join(HERE, "..", "..", "build", "bin", "raftmq")):
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    print("raftmq binary not found (set RAFTMQ_BIN)", file=sys.stderr)
    sys.exit(1)


def api_versions_ok(port, timeout=1.0):
    """Sends ApiVersions v0 and checks for a well-formed answer with error code 0."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            client_id = b"harness"
            body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
            s.sendall(struct.pack(">i", len(body)) + body)
            header = b""
            while len(header) < 4:
                chunk = s.recv(4 - len(header))
                if not chunk:
                    return False
                header += chunk
            size = struct.unpack(">i", header)[0]
            payload = b""
            while len(payload) < size:
                chunk = s.recv(size - len(payload))
                if not chunk:
                    return False
                payload += chunk
            correlation_id, error_code = struct.unpack(">ih", payload[:6])
            return correlation_id == 7 and error_code == 0
    except OSError:
        return False


class Broker:
    def __init__(self, cluster, broker_id):
        self.cluster = cluster
        self.id = broker_id
        self.kafka_port = cluster.kafka_base + broker_id - 1
        self.rpc_port = cluster.rpc_base + broker_id - 1
        self.data_dir = os.path.join(cluster.workdir, "broker-%d" % broker_id)
        self.log_path = os.path.join(cluster.workdir, "broker-%d.log" % broker_id)
        self.proc = None

    def args(self):
        prefix = []
        if os.environ.get("RAFTMQ_GDB"):
            prefix = ["gdb", "-batch", "-ex", "run", "-ex", "bt", "--args"]
        peers = ",".join("%d@127.0.0.1:%d:%d" % (b.id, b.rpc_port, b.kafka_port)
                         for b in self.cluster.brokers)
        return prefix + [self.cluster.binary, "serve", "--broker-id", str(self.id),
                "--kafka-port", str(self.kafka_port), "--rpc-port", str(self.rpc_port),
                "--data-dir", self.data_dir, "--peers", peers,
                "--cluster-id", "raftmq-integration"] + self.cluster.extra_args

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        out.close()
        log("started broker", self.id, "pid", self.proc.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            log("SIGKILLed broker", self.id)

    def stop(self, timeout=20):
        if not self.alive():
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log("broker", self.id, "ignored SIGTERM for", timeout, "s; killing it")
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None

    def tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""


class Cluster:
    def __init__(self, size=3, kafka_base=29092, rpc_base=30092, extra_args=None):
        # RAFTMQ_TEST_PORT_OFFSET moves both port ranges, so that several checkouts can run
        # their integration tests at the same time on one machine.
        offset = int(os.environ.get("RAFTMQ_TEST_PORT_OFFSET", "0"))
        kafka_base += offset
        rpc_base += offset
        self.binary = find_binary()
        self.workdir = tempfile.mkdtemp(prefix="raftmq-it-")
        self.kafka_base = kafka_base
        self.rpc_base = rpc_base
        self.extra_args = extra_args or []
        self.brokers = []
        for i in range(1, size + 1):
            self.brokers.append(Broker(self, i))

    @property
    def bootstrap(self):
        return ",".join("127.0.0.1:%d" % b.kafka_port for b in self.brokers)

    def broker(self, broker_id):
        return self.brokers[broker_id - 1]

    def __enter__(self):
        self.skip_if_serve_unavailable()
        for b in self.brokers:
            b.start()
        self.wait_ready()
        return self

    def __exit__(self, kind, value, tb):
        failed = kind is not None
        for b in self.brokers:
            code = b.stop()
            if code not in (0, None):
                log("broker", b.id, "exited with", code)
                failed = True
        if failed:
            for b in self.brokers:
                print("---- broker %d log tail ----\n%s" % (b.id, b.tail()), flush=True)
        if not failed or not os.environ.get("RAFTMQ_KEEP_DATA"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        if failed and kind is None:
            raise AssertionError("a broker did not shut down cleanly (see above)")
        return False

    def skip_if_serve_unavailable(self):
        """A raftmq built without the cluster layer says so in `serve --help`: skip."""
        probe = subprocess.run([self.binary, "serve", "--help"], capture_output=True, timeout=10)
        if probe.returncode != 0:
            print("FAIL: `raftmq serve --help`:", probe.stderr.decode(), flush=True)
            sys.exit(1)
        if b"no cluster layer" in probe.stdout:
            print("SKIP: this build of raftmq has no cluster layer (cluster::Node); the "
                  "integration tests need a real broker", flush=True)
            sys.exit(SKIP)

    def wait_ready(self, timeout=60, brokers=None):
        """Every broker answers ApiVersions, a Metadata request names all of them and one
        controller, and every partition (internal ones included) has a leader."""
        deadline = time.monotonic() + timeout
        pending = list(brokers or self.brokers)
        while pending:
            for b in list(pending):
                if not b.alive():
                    raise RuntimeError("broker %d exited during startup:\n%s" % (b.id, b.tail()))
                if api_versions_ok(b.kafka_port):
                    pending.remove(b)
            if pending and time.monotonic() > deadline:
                raise RuntimeError("brokers %s not ready in %ds" % ([b.id for b in pending],
                                                                   timeout))
            time.sleep(0.1)
        # Then the cluster view: every live broker lists all live brokers and all of them name
        # the same controller (before the controller group has a leader each names itself).
        live = [b for b in self.brokers if b.alive()]
        last = None
        while True:
            try:
                views = [metadata("127.0.0.1:%d" % b.kafka_port, timeout=5) for b in live]
                last = [(md.controller_id, len(md.brokers)) for md in views]
                controllers = {md.controller_id for md in views}
                # Every partition known (the internal __consumer_offsets topic included, which
                # the controller creates once all brokers are up) has a leader: a client or
                # `raftmq cluster status` run right after this sees a settled cluster.
                leaderless = sorted({"%s-%d" % (t.topic, p.id) for md in views
                                     for t in md.topics.values()
                                     for p in t.partitions.values() if p.leader < 0})
                offsets_topic = (len(live) < len(self.brokers) or
                                 all("__consumer_offsets" in md.topics for md in views))
                last = [(md.controller_id, len(md.brokers), leaderless[:5], offsets_topic)
                        for md in views]
                if (len(controllers) == 1 and min(controllers) >= 0 and
                        all(len(md.brokers) >= len(live) for md in views) and
                        not leaderless and offsets_topic):
                    break
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last = repr(e)
            if time.monotonic() > deadline:
                raise RuntimeError("no agreed controller / brokers missing after %ds: %s" %
                                   (timeout, last))
            time.sleep(0.2)
        log("brokers ready:", [b.id for b in (brokers or self.brokers)], "controller",
            last[0][0])

    def live_bootstrap(self):
        return ",".join("127.0.0.1:%d" % b.kafka_port for b in self.brokers if b.alive())


def metadata(bootstrap, topic=None, timeout=10):
    """Metadata via confluent-kafka's AdminClient: {partition: (leader, replicas, isrs)}."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(topic=topic, timeout=timeout)
    if topic is None:
        return md
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return {}
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}


def create_topic_retrying(cluster, name, partitions=1, replication_factor=2, timeout=60):
    """`raftmq topic create` against the live brokers, retried until it succeeds (a controller
    election or a broker change may be under way), then waits for its leaders."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run([cluster.binary, "topic", "create", name, "--bootstrap",
                              cluster.live_bootstrap(), "--partitions", str(partitions),
                              "--replication-factor", str(replication_factor)],
                             capture_output=True, timeout=60)
        if out.returncode == 0:
            break
        assert time.monotonic() < deadline, out.stderr
        time.sleep(1)
    wait_topic_ready(cluster.live_bootstrap(), name, partitions)


def agreed_leader(cluster, topic, partition=0, timeout=30):
    """The partition's leader as every live broker reports it, the same twice in a row (no
    election in progress)."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        try:
            views = {metadata("127.0.0.1:%d" % b.kafka_port, topic)[partition][0]
                     for b in cluster.brokers if b.alive()}
        except Exception:  # noqa: BLE001 - retried
            views = set()
        if len(views) == 1 and min(views) >= 0:
            leader = min(views)
            if leader == previous:
                return leader
            previous = leader
        time.sleep(0.2)
    raise RuntimeError("brokers do not agree on the leader of %s/%d" % (topic, partition))


def wait_topic_ready(bootstrap, topic, partitions, replicas=None, timeout=60):
    """All partitions have a leader (and, if replicas is given, that many in-sync replicas)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = metadata(bootstrap, topic)
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = repr(e)
        if isinstance(last, dict) and len(last) == partitions and all(
                leader >= 0 and (replicas is None or len(isrs) >= replicas)
                for leader, _, isrs in last.values()):
            return last
        time.sleep(0.2)
    raise RuntimeError("topic %s not ready: %s" % (topic, last))


def create_topic_cli(cluster, topic, partitions=3, replication=3, configs=()):
    args = [cluster.binary, "topic", "create", topic, "--bootstrap", cluster.bootstrap,
            "--partitions", str(partitions), "--replication-factor", str(replication)]
    for c in configs:
        args += ["--config", c]
    for attempt in range(20):
        out = subprocess.run(args, capture_output=True, timeout=60)
        if out.returncode == 0:
            break
        # A controller election right after startup: the client is told NOT_CONTROLLER.
        if b"NOT_CONTROLLER" not in out.stderr or attempt == 19:
            raise RuntimeError("topic create failed: %s %s" % (out.stdout, out.stderr))
        log("topic create: NOT_CONTROLLER, retrying")
        time.sleep(0.5)
    return wait_topic_ready(cluster.bootstrap, topic, partitions, replication)


def keyed_messages(prefix, count=10000, keys=64):
    """(key, value) pairs; value carries the key and a per-key sequence number."""
    seq = {}
    out = []
    for i in range(count):
        key = "%s-key-%d" % (prefix, i % keys)
        n = seq.get(key, 0)
        seq[key] = n + 1
        out.append((key, "%s|%d|%s" % (key, n, "x" * (i % 50))))
    return out


def check_roundtrip(produced, consumed):
    """produced: [(key, value)]; consumed: [(key, value, partition, offset)]. Checks that every
    message came back exactly once, that a key always maps to one partition, and that each
    key's messages are in production order within its partition (per-partition order)."""
    errors = []
    want = sorted(produced)
    got = sorted((k, v) for k, v, _, _ in consumed)
    if want != got:
        missing = len(set(want) - set(got))
        extra = len(got) - len(want)
        errors.append("content differs: %d produced, %d consumed, %d missing" %
                      (len(want), len(got), missing))
        del extra
    partition_of = {}
    last_seq = {}
    for k, v, p, o in sorted(consumed, key=lambda m: (m[2], m[3])):
        if partition_of.setdefault(k, p) != p:
            errors.append("key %s in partitions %d and %d" % (k, partition_of[k], p))
        n = int(v.split("|")[1])
        if n != last_seq.get(k, -1) + 1:
            errors.append("key %s: sequence %d after %d (partition %d offset %d)" %
                          (k, n, last_seq.get(k, -1), p, o))
        last_seq[k] = n
    offsets = {}
    for _, _, p, o in consumed:
        offsets.setdefault(p, []).append(o)
    for p, os_ in offsets.items():
        if len(set(os_)) != len(os_):
            errors.append("partition %d: duplicate offsets" % p)
    if errors:
        raise AssertionError("\n".join(errors[:20]))
    log("round trip ok: %d messages over %d partitions" % (len(consumed), len(offsets)))
