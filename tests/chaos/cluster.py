"""The chaos suite's cluster: 3 or 5 `raftmq serve` processes on loopback whose broker-to-broker
links all go through the harness's proxies (proxy.py), each broker's data directory on its own
size-limited tmpfs when the machine allows mounting (for the disk-full nemesis), and the raw
Kafka requests the harness needs (ApiVersions, Metadata v7 with leader epochs = Raft terms)."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402  (find_binary, metadata, log, SKIP)
import kafka_wire  # noqa: E402  (frames and fields of hand-made requests)

log = harness.log
DROP_UNSYNCED_VAR = "RAFTMQ_STORAGE_TEST_DROP_UNSYNCED"
TMPFS_BYTES = 512 << 20


# ---- raw Kafka requests (big-endian, non-flexible versions) ----

def _favour_proxy():
    """The proxy stands for the network, which does not compete with the brokers for CPU: it
    runs 10 nice levels above the harness where the system allows it (a starved proxy
    silences every link at once, and the elections that follow say nothing about the brokers;
    its own stalls are logged, proxy.py)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) - 10)
    except OSError:
        pass


def _request(port, api_key, version, body, timeout):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        client_id = b"chaos"
        header = struct.pack(">hhih", api_key, version, 11, len(client_id)) + client_id
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        payload = kafka_wire.read_frame(s)
    if struct.unpack(">i", payload[:4])[0] != 11:
        raise OSError("correlation id mismatch")
    return payload[4:]


class _Reader(kafka_wire.Reader):
    def string(self):
        """Decoded; None for a null string."""
        raw = self.raw_string()
        return None if raw is None else raw.decode()

    def array(self, item):
        n = self.take(">i")
        return [item() for _ in range(max(n, 0))]


def api_versions(port, timeout=2.0):
    """{api_key: (min, max)} from ApiVersions v0."""
    r = _Reader(_request(port, 18, 0, b"", timeout))
    if r.take(">h") != 0:
        raise OSError("ApiVersions error")
    out = {}
    for _ in range(r.take(">i")):
        key, lo, hi = r.take(">h"), r.take(">h"), r.take(">h")
        out[key] = (lo, hi)
    return out


def metadata_epochs(port, timeout=1.0):
    """Metadata v7 for all topics as one broker sees it:
    {(topic, partition): (leader, leader_epoch, replicas, isr)}; leader_epoch is the Raft
    term; the ISR is meaningful on the leader (replicas caught up with its commit index)."""
    r = _Reader(_request(port, 3, 7, struct.pack(">ib", -1, 0), timeout))
    r.take(">i")  # throttle
    r.array(lambda: (r.take(">i"), r.string(), r.take(">i"), r.string()))
    r.string()
    r.take(">i")  # controller
    out = {}

    def partition(topic):
        r.take(">h")
        index, leader, epoch = r.take(">i"), r.take(">i"), r.take(">i")
        replicas = r.array(lambda: r.take(">i"))
        isr = r.array(lambda: r.take(">i"))
        r.array(lambda: r.take(">i"))
        out[(topic, index)] = (leader, epoch, replicas, isr)

    def topic():
        r.take(">h")
        name = r.string()
        r.take(">b")
        r.array(lambda: partition(name))
    r.array(topic)
    return out


def metadata_controller(port, timeout=1.0):
    """The controller id of one broker's Metadata v7 (no topics asked): the controller leader
    its controller replica knows, or its own id when it knows none, e.g. while its controller
    replica is stopped by a storage error (src/cluster/node_admin.cc, Node::metadata)."""
    r = _Reader(_request(port, 3, 7, struct.pack(">ib", 0, 0), timeout))
    r.take(">i")  # throttle
    r.array(lambda: (r.take(">i"), r.string(), r.take(">i"), r.string()))
    r.string()
    return r.take(">i")


# ---- the cluster ----

class Broker:
    def __init__(self, cluster, broker_id):
        self.cluster = cluster
        self.id = broker_id
        self.kafka_port = cluster.kafka_base + broker_id - 1
        self.rpc_port = cluster.rpc_base + broker_id - 1
        self.mount = os.path.join(cluster.workdir, "disk-%d" % broker_id)
        self.data_dir = os.path.join(self.mount, "data")
        self.log_path = os.path.join(cluster.workdir, "broker-%d.log" % broker_id)
        self.proc = None
        self.paused = False
        self.expected_down = False   # killed by the nemesis: an exit is not a crash
        self.crashes = []            # (time, exit code) of exits nobody caused

    def peers_arg(self):
        items = []
        for b in self.cluster.brokers:
            port = b.rpc_port if b is self or self.cluster.direct else \
                self.cluster.proxy_port(self.id, b.id)
            items.append("%d@127.0.0.1:%d:%d" % (b.id, port, b.kafka_port))
        return ",".join(items)

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        env = dict(os.environ)
        env[DROP_UNSYNCED_VAR] = "1"
        out = open(self.log_path, "ab")
        out.write(b"==== chaos: start at %.3f ====\n" % time.monotonic())
        out.flush()
        self.proc = subprocess.Popen(
            [self.cluster.binary, "serve", "--broker-id", str(self.id),
             "--kafka-port", str(self.kafka_port), "--rpc-port", str(self.rpc_port),
             "--data-dir", self.data_dir, "--peers", self.peers_arg(),
             "--cluster-id", "raftmq-chaos",
             # Leader balancing moves leaders back to a restarted broker on purpose (a new
             # term); the leader-change check counts every term change after a heal, so it
             # is off here (docs/chaos.md "Leader changes").
             "--leader-rebalance-interval-ms", "0"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        out.close()
        self.paused = False
        self.expected_down = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_crash(self):
        """Records an exit the harness did not cause (a crash); returns True once per exit."""
        if self.proc is None or self.expected_down or self.proc.poll() is None:
            return False
        self.crashes.append((time.monotonic(), self.proc.returncode))
        self.expected_down = True
        log("BROKER %d EXITED UNEXPECTEDLY with %s" % (self.id, self.proc.returncode))
        return True

    def kill(self):
        self.expected_down = True
        if self.alive():
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.paused = False

    def stop(self, timeout=30):
        """SIGTERM and wait: a graceful stop (the broker syncs its logs and its sync ledger),
        so unlike kill() it is no power loss in the power-loss mode. SIGKILL after `timeout`."""
        self.expected_down = True
        if self.alive():
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log("broker %d ignored SIGTERM for %d s: killing it" % (self.id, timeout))
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.paused = False

    def pause(self):
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.alive() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""


class ChaosCluster:
    def __init__(self, size, kafka_base, rpc_base, keep=False, direct=False):
        self.binary = harness.find_binary()
        self.workdir = tempfile.mkdtemp(prefix="raftmq-chaos-")
        self.kafka_base, self.rpc_base = kafka_base, rpc_base
        self.size = size
        self.keep = keep
        self.direct = direct   # no proxies: brokers dial each other (no partition nemeses)
        self.brokers = [Broker(self, i) for i in range(1, size + 1)]
        self.mounted = []
        self.proxy = None
        self.link_modes = {}

    # Proxy of the directed link src -> dst: rpc_base + 10 + (src-1)*size + (dst-1).
    def proxy_port(self, src, dst):
        return self.rpc_base + 10 + (src - 1) * self.size + (dst - 1)

    def broker(self, broker_id):
        return self.brokers[broker_id - 1]

    @property
    def bootstrap(self):
        return ",".join("127.0.0.1:%d" % b.kafka_port for b in self.brokers)

    def setup_disks(self):
        """A tmpfs per broker if mounting works (the disk-full nemesis needs it)."""
        can_mount = True
        for b in self.brokers:
            os.makedirs(b.mount, exist_ok=True)
            if not can_mount:
                continue
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % TMPFS_BYTES,
                                "tmpfs", b.mount], capture_output=True, timeout=10)
            if r.returncode == 0:
                self.mounted.append(b.mount)
            else:
                can_mount = False
                log("cannot mount a tmpfs (%s): data on the plain file system; the disk-full "
                    "nemesis will be skipped" % r.stderr.decode().strip())
        return can_mount and len(self.mounted) == len(self.brokers)

    def start(self):
        probe = subprocess.run([self.binary, "serve", "--help"], capture_output=True, timeout=10)
        if probe.returncode != 0 or b"no cluster layer" in probe.stdout:
            print("SKIP: this raftmq has no cluster layer", flush=True)
            sys.exit(harness.SKIP)
        self.disks_mounted = self.setup_disks()
        if self.direct:
            for b in self.brokers:
                b.start()
            self.wait_kafka_up(self.brokers, 60)
            return
        specs = ["%d:%d:%d:%d" % (s.id, d.id, self.proxy_port(s.id, d.id), d.rpc_port)
                 for s in self.brokers for d in self.brokers if s is not d]
        env = dict(os.environ, RAFTMQ_PROXY_STALL_LOG=os.path.join(self.workdir, "proxy.log"))
        self.proxy = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "proxy.py"), "127.0.0.1"] + specs,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
            env=env, preexec_fn=_favour_proxy)
        ready = self.proxy.stdout.readline()
        if not ready.startswith("ready"):
            raise RuntimeError("proxy did not start: %r" % ready)
        for s in self.brokers:
            for d in self.brokers:
                if s is not d:
                    self.link_modes[(s.id, d.id)] = "up"
        for b in self.brokers:
            b.start()
        self.wait_kafka_up(self.brokers, 60)

    def set_link(self, src, dst, mode):
        self.proxy.stdin.write("mode %d %d %s\n" % (src, dst, mode))
        self.proxy.stdin.flush()
        answer = self.proxy.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError("proxy: %s" % answer)
        self.link_modes[(src, dst)] = mode

    def heal_links(self):
        for (src, dst), mode in list(self.link_modes.items()):
            if mode != "up":
                self.set_link(src, dst, "up")

    def wait_kafka_up(self, brokers, timeout):
        deadline = time.monotonic() + timeout
        pending = [b for b in brokers if b.alive()]
        while pending and time.monotonic() < deadline:
            pending = [b for b in pending if b.alive() and not harness.api_versions_ok(
                b.kafka_port, timeout=0.5)]
            if pending:
                time.sleep(0.1)
        return not pending

    def live(self):
        return [b for b in self.brokers if b.alive() and not b.paused]

    def epochs(self):
        """Each live broker's Metadata v7 view: {broker id: {(topic, p): (leader, epoch, reps,
        isr)}}."""
        views = {}
        for b in self.live():
            try:
                views[b.id] = metadata_epochs(b.kafka_port, timeout=1.0)
            except (OSError, struct.error):
                pass
        return views

    def leaders(self, topics):
        """{(topic, p): leader} agreed on by the live brokers that host the partition (the
        leader itself must claim it); partitions without an agreed leader are absent."""
        views = self.epochs()
        out = {}
        for tp in topics:
            claims = {}
            for bid, view in views.items():
                if tp in view and view[tp][0] == bid:
                    claims[bid] = view[tp][1]
            if claims:
                # The claimant with the highest term is the current leader.
                out[tp] = max(claims, key=lambda k: claims[k])
        return out

    def out_of_sync(self, topics):
        """{(topic, p): [replicas missing from the leader's ISR]} for partitions not fully in
        sync (or without a leader)."""
        views = self.epochs()
        out = {}
        for tp in topics:
            best = None
            for bid, view in views.items():
                if tp in view and view[tp][0] == bid and (best is None or
                                                          view[tp][1] > best[1]):
                    best = view[tp]
            if best is None:
                out[tp] = ["no leader"]
            elif not set(best[2]) <= set(best[3]):
                out[tp] = sorted(set(best[2]) - set(best[3]))
        return out

    def controllers(self):
        """{broker id: the controller it names} for the live brokers (None: no answer)."""
        views = {}
        for b in self.live():
            try:
                views[b.id] = metadata_controller(b.kafka_port, timeout=1.0)
            except (OSError, struct.error):
                views[b.id] = None
        return views

    def controller_out_of_sync(self):
        """{} when the controller group looks healthy: every live broker names the same
        controller, a live broker that names itself. Otherwise {broker id: the controller it
        names} (a broker whose controller replica is stopped knows no leader and names
        itself; FINDINGS.md F1)."""
        views = self.controllers()
        named = set(views.values())
        if len(named) == 1:
            c = next(iter(named))
            if c is not None and views.get(c) == c:
                return {}
        return views

    def replicas(self, topics):
        for view in self.epochs().values():
            if all(tp in view for tp in topics):
                return {tp: view[tp][2] for tp in topics}
        return {}

    def newest_segment(self, broker, rng, tp=None):
        """The newest segment file of a random partition replica on `broker` (of partition
        `tp` if given); None if there is none. Replica directories are
        partitions/<topic>-<partition>-g<group> (src/cluster/node_reconcile.cc)."""
        root = os.path.join(broker.data_dir, "partitions")
        prefix = "%s-%d-g" % tp if tp is not None else ""
        try:
            dirs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                          and d.startswith(prefix))
        except OSError:
            return None
        rng.shuffle(dirs)
        for d in dirs:
            segs = sorted(f for f in os.listdir(os.path.join(root, d)) if f.endswith(".log"))
            for seg in reversed(segs):
                path = os.path.join(root, d, seg)
                if os.path.getsize(path) > 64:
                    return path
        return None

    def fill_disk(self, broker):
        """Fills the broker's tmpfs to the last byte with a filler file."""
        path = os.path.join(broker.mount, "chaos-filler")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 4096, 1):
                block = b"\0" * size
                try:
                    while True:
                        os.write(fd, block)
                except OSError:
                    pass
        finally:
            os.close(fd)
        return path

    def free_disk(self, broker):
        try:
            os.unlink(os.path.join(broker.mount, "chaos-filler"))
        except FileNotFoundError:
            pass

    def shutdown(self):
        """SIGTERM every broker; returns {id: exit code or None}."""
        codes = {}
        for b in self.brokers:
            b.resume()
        for b in self.brokers:
            if b.alive():
                b.proc.send_signal(signal.SIGTERM)
                b.expected_down = True
        deadline = time.monotonic() + 30
        for b in self.brokers:
            if b.proc is None:
                continue
            try:
                codes[b.id] = b.proc.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log("broker %d ignored SIGTERM for 30 s: killing it" % b.id)
                b.proc.kill()
                b.proc.wait(timeout=10)
                codes[b.id] = None
        return codes

    def cleanup(self, failed, keep_data=False):
        """keep_data: also copy every broker's partition directories (segments, indexes, hard
        state, sync ledger) next to the logs, for a post-mortem of a safety failure."""
        for b in self.brokers:
            if b.alive():
                b.kill()
        if self.proxy is not None and self.proxy.poll() is None:
            try:
                self.proxy.stdin.write("quit\n")
                self.proxy.stdin.flush()
                self.proxy.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proxy.kill()
        if failed or self.keep:
            # Keep the logs next to nothing else: copy them out of the tmpfs mounts.
            keep_dir = self.workdir + "-logs"
            os.makedirs(keep_dir, exist_ok=True)
            for b in self.brokers:
                if os.path.exists(b.log_path):
                    shutil.copy(b.log_path, keep_dir)
                if keep_data and os.path.isdir(b.data_dir):
                    shutil.copytree(b.data_dir, os.path.join(keep_dir, "data-%d" % b.id),
                                    ignore=shutil.ignore_patterns("chaos-filler"),
                                    dirs_exist_ok=True)
            log("broker logs%s kept in" % (" and data" if keep_data else ""), keep_dir)
        for m in self.mounted:
            subprocess.run(["umount", "-l", m], capture_output=True, timeout=30)
        shutil.rmtree(self.workdir, ignore_errors=True)


UNOPENABLE = re.compile(
    r"cannot open (\S+): Corruption: log \S+ segment (\S+) position (\d+): entry \d+ fails "
    r"its checksum but a valid entry follows")


def cut_unopenable_segments(broker):
    """For each replica the (stopped) broker's log says it cannot open because a damaged entry
    is followed by valid ones (FINDINGS.md F8): truncate that segment at the damaged entry.
    Only messages of the broker's latest run count, the latest per segment, and only a file
    still longer than the position. Returns ["<replica> at <position>"]."""
    try:
        with open(broker.log_path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    # Only the broker's latest run counts (its log holds every run, each after a start
    # marker): an older message names a segment that has been cut and has grown since.
    marker = text.rfind("==== chaos: start at ")
    if marker >= 0:
        text = text[marker:]
    latest = {}
    for m in UNOPENABLE.finditer(text):
        latest[m.group(2)] = (m.group(1), int(m.group(3)))
    done = []
    for path, (name, position) in sorted(latest.items()):
        try:
            if os.path.getsize(path) > position:
                os.truncate(path, position)
                done.append("%s at %d" % (name, position))
        except OSError:
            continue
    return done


SEGMENT_HEADER_BYTES = 32   # docs/formats/segment_format.md
ENTRY_HEADER_BYTES = 56


def segment_data_end(path):
    """Where the segment's entries end: the file may go on with pre-written zeros (up to the
    broker's zero-fill window, 2 MiB by default), which are no data. Walks the entry headers
    (payload_length: u32 little-endian at offset 8) up to the first all-zero header or one that
    would run past the file."""
    with open(path, "rb") as f:
        data = f.read()
    pos = SEGMENT_HEADER_BYTES
    while pos + ENTRY_HEADER_BYTES <= len(data):
        header = data[pos:pos + ENTRY_HEADER_BYTES]
        if not any(header):
            break
        end = pos + ENTRY_HEADER_BYTES + int.from_bytes(header[8:12], "little")
        if end > len(data):
            break
        pos = end
    return min(pos, len(data))


def corrupt_segment(path, rng, truncate=None):
    """Truncates the segment's entries in their last quarter or flips one bit in their last
    4 KiB (at random unless `truncate` says which). Measured from the end of the entries, not
    of the file: with a zero-filled tail, a cut in the file's last quarter mostly removed zeros
    or only the newest entries, which made the nemesis two faults at once (FINDINGS.md F11)."""
    size = os.path.getsize(path)
    end = max(2, segment_data_end(path))
    if truncate if truncate is not None else rng.random() < 0.5:
        cut = rng.randint(max(1, end * 3 // 4), end - 1)
        os.truncate(path, cut)
        return "truncated %s from %d (entries end at %d) to %d bytes" % (
            os.path.basename(path), size, end, cut)
    pos = rng.randint(max(0, end - 4096), end - 1)
    bit = rng.randint(0, 7)
    with open(path, "r+b") as f:
        f.seek(pos)
        byte = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([byte ^ (1 << bit)]))
    return "flipped bit %d of byte %d of %s (%d bytes)" % (bit, pos, os.path.basename(path), size)


def binary_supports_drop_unsynced(binary):
    try:
        with open(binary, "rb") as f:
            return DROP_UNSYNCED_VAR.encode() in f.read()
    except OSError:
        return False


def binary_supports_partition_move(binary):
    r = subprocess.run([binary, "--help"], capture_output=True, timeout=10)
    text = (r.stdout + r.stderr).decode(errors="replace")
    return "partition move" in text

