"""Helpers shared by the consumer-group integration tests (test_groups*.py): a librdkafka
(confluent-kafka) group member that commits synchronously and records what it was given, and
checks over what a group consumed."""

import collections
import os
import re
import threading
import time

import harness

OFFSETS_TOPIC = "__consumer_offsets"


def wait_offsets_topic(cluster, timeout=60):
    """The controller leader creates __consumer_offsets by itself (docs/groups.md)."""
    return harness.wait_topic_ready(cluster.bootstrap, OFFSETS_TOPIC, 16, timeout=timeout)


def produce_numbered(bootstrap, topic, partitions, start, count):
    """count messages "p:n" spread round-robin over the partitions; returns when all are
    acknowledged (acks=all)."""
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failures = []

    def on_delivery(err, _msg):
        if err is not None:
            failures.append(err)

    for i in range(start, start + count):
        p = i % partitions
        while True:
            try:
                producer.produce(topic, value=("%d:%d" % (p, i)).encode(), partition=p,
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(60)
    if left or failures:
        raise RuntimeError("produce: %d unacknowledged, errors %s" % (left, failures[:3]))


def data_offsets(bootstrap, topic, partitions):
    """{partition: [offsets of data records]} read without a group (Raft's no-op control
    batches occupy offsets that consumers never see)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-reader",
                  "enable.auto.commit": False})
    out = {}
    for p in range(partitions):
        low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        out[p] = []
        c.assign([TopicPartition(topic, p, low)])
        deadline = time.monotonic() + 60
        idle = 0
        # Ends at the last offset, or after 3 s without records (the tail may be Raft no-ops).
        while high > 0 and time.monotonic() < deadline and idle < 6:
            m = c.poll(0.5)
            if m is None:
                idle += 1
                continue
            idle = 0
            if m.error():
                continue
            out[p].append(m.offset())
            if m.offset() >= high - 1:
                break
    c.close()
    return out


class ClientLog:
    """A logging.Logger stand-in for confluent-kafka's `logger` option: keeps the members'
    librdkafka lines (with the debug contexts DEBUG below: which broker answered Metadata,
    which leader it named, broker state changes) in a bounded ring, so a test that waited in
    vain can show what the client believed (wait_consumed)."""

    DEBUG = "metadata,topic,broker"
    SHOWN = re.compile(r"Received metadata|partition \d+ Leader|leader|Leader|state |DOWN|"
                       r"Disconnected|Connect to|FAIL|Delegat|migrat", re.I)

    def __init__(self, maxlen=50000):
        self.lock = threading.Lock()
        self.lines = collections.deque(maxlen=maxlen)

    def log(self, level, fmt, *args):
        del level
        line = harness.client_log_text(fmt, args)
        with self.lock:
            self.lines.append("%.3f %s" % (time.monotonic(), line))

    def dump(self, since, limit=400):
        """The kept lines from monotonic time `since` that say where the client routes."""
        with self.lock:
            lines = [l for l in self.lines if float(l.split(" ", 1)[0]) >= since]
        shown = [l for l in lines if self.SHOWN.search(l)]
        harness.log("client log since %.1f: %d lines, %d shown (last %d)" %
                    (since, len(lines), len(shown), limit))
        for line in shown[-limit:]:
            print("  " + line[:300], flush=True)


class Shared:
    def __init__(self, client_log=None):
        self.lock = threading.Lock()
        self.delivered = {}   # partition -> [(offset, member name)]
        self.committed = {}   # partition -> highest committed next offset
        self.received = {}    # partition -> [(monotonic time, member name)], as delivered
        self.errors = []
        self.client_log = client_log  # a ClientLog the members write to, or None
        self.mark = 0.0       # wait_consumed shows the client log from this time on


class Member(threading.Thread):
    """One consumer of a group in its own thread: consumes, commits synchronously after each
    batch and on revocation (so a partition's next owner starts exactly at the commit)."""

    def __init__(self, name, bootstrap, group, topic, shared, strategy="range",
                 extra=None, api="poll"):
        super().__init__(daemon=True)
        from confluent_kafka import Consumer
        conf = {"bootstrap.servers": bootstrap, "group.id": group,
                "enable.auto.commit": False, "auto.offset.reset": "earliest",
                "partition.assignment.strategy": strategy,
                "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                "client.id": name}
        if os.environ.get("RAFTMQ_GROUPS_DEBUG"):  # e.g. "cgrp,fetch": librdkafka's log on stderr
            conf["debug"] = os.environ["RAFTMQ_GROUPS_DEBUG"]
        elif shared.client_log is not None:
            conf["debug"] = ClientLog.DEBUG
            conf["logger"] = shared.client_log
        conf.update(extra or {})
        self.name = name
        self.topic = topic
        self.shared = shared
        self.consumer = Consumer(conf)
        self.assigned = set()
        self.pending = {}
        self.stop_flag = threading.Event()
        self.started_at = None
        self.assigned_at = None
        self.first_message_at = None
        self.commit_failures = 0
        self.commits_retried = 0
        # "poll": batches gathered with poll() (one message per call); "batch": consume(n),
        # i.e. rd_kafka_consume_batch_queue, which in librdkafka < 2.1.0 advances the
        # application position over messages that a pause then purges, so the fetcher resumes
        # past them: skipped messages after a cooperative rebalance (librdkafka PR #4208;
        # docs/groups.md).
        self.api = api
        self.revoked_in_batch = set()  # partitions revoked or lost while a batch is gathered

    def _commit(self, partitions=None, revoking=False):
        from confluent_kafka import KafkaError, KafkaException, TopicPartition
        todo = {p: o for p, o in self.pending.items() if partitions is None or p in partitions}
        if not todo:
            return
        offsets = [TopicPartition(self.topic, p, o) for p, o in todo.items()]
        try:
            result = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() == KafkaError.REBALANCE_IN_PROGRESS and not revoking:
                # Kafka's answer to a commit between JoinGroup and SyncGroup (the group is
                # CompletingRebalance): the offsets stay pending and are committed later. On
                # revocation there is no later: the next owner re-reads them (a failure).
                self.commits_retried += 1
                return
            self.commit_failures += 1
            harness.log(self.name, "commit failed:", e)
            return
        with self.shared.lock:
            for tp in result:
                if tp.error is None:
                    self.shared.committed[tp.partition] = max(
                        self.shared.committed.get(tp.partition, 0), tp.offset)
                    self.pending.pop(tp.partition, None)
                else:
                    self.commit_failures += 1

    def _on_assign(self, _consumer, partitions):
        if partitions and self.assigned_at is None:
            self.assigned_at = time.monotonic()
        with self.shared.lock:
            self.assigned.update(p.partition for p in partitions)

    def _on_revoke(self, _consumer, partitions):
        revoked = {p.partition for p in partitions}
        self.revoked_in_batch |= revoked
        self._commit(revoked, revoking=True)
        for p in revoked:
            self.pending.pop(p, None)  # not committed (error): the next owner re-reads it
        with self.shared.lock:
            self.assigned.difference_update(revoked)

    def _on_lost(self, _consumer, partitions):
        lost = {p.partition for p in partitions}
        self.revoked_in_batch |= lost
        for p in lost:
            self.pending.pop(p, None)
        with self.shared.lock:
            self.assigned.difference_update(lost)

    def run(self):
        self.started_at = time.monotonic()
        self.revoked_in_batch = set()
        self.consumer.subscribe([self.topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        while not self.stop_flag.is_set():
            for m in self._next_batch(200, 0.2):
                if m.error():
                    continue
                if self.first_message_at is None:
                    self.first_message_at = time.monotonic()
                with self.shared.lock:
                    self.shared.delivered.setdefault(m.partition(), []).append(
                        (m.offset(), self.name))
                    self.shared.received.setdefault(m.partition(), []).append(
                        (time.monotonic(), self.name))
                self.pending[m.partition()] = m.offset() + 1
            self._commit()
        self._commit()
        self.consumer.close()  # revokes (commits) and leaves the group

    def _next_batch(self, count, timeout):
        if self.api == "batch":
            return self.consumer.consume(count, timeout=timeout)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            m = self.consumer.poll(max(0.0, deadline - time.monotonic()) if not out else 0)
            if self.revoked_in_batch:
                # The rebalance callbacks ran inside this poll(): messages gathered before it
                # from partitions this member no longer owns are not processed (their next
                # owner starts at the commit made on revocation, so processing them here would
                # deliver them twice). The message poll() returned comes after the callbacks.
                out = [x for x in out if x.partition() not in self.revoked_in_batch]
                self.revoked_in_batch = set()
            if m is None:
                break
            out.append(m)
        return out

    def join_to_first_fetch(self):
        if self.first_message_at is None:
            return None
        return self.first_message_at - self.started_at

    def join_to_assignment(self):
        if self.assigned_at is None:
            return None
        return self.assigned_at - self.started_at

    def stop(self):
        self.stop_flag.set()
        self.join(timeout=60)
        if self.is_alive():
            raise RuntimeError("member %s did not stop" % self.name)


def wait_partitioned(members, partitions, shared, timeout=60, settle=1.5, poll=0.1):
    """Until every partition is owned by exactly one member (and stays so for `settle` s)."""
    deadline = time.monotonic() + timeout
    stable_since = None
    last = None
    while time.monotonic() < deadline:
        with shared.lock:
            sets = [set(m.assigned) for m in members]
        union = set().union(*sets) if sets else set()
        disjoint = sum(len(s) for s in sets) == len(union)
        ok = union == set(range(partitions)) and disjoint and all(sets)
        last = {m.name: sorted(s) for m, s in zip(members, sets)}
        if ok:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= settle:
                return last
        else:
            stable_since = None
        time.sleep(poll)
    raise AssertionError("partitions not owned exactly once: %s" % last)


def flowing_after(shared, owners, since):
    """Seconds from `since` until every partition delivered a message to its owner in `owners`
    ({member name: [partitions]}), i.e. until the whole group consumes again; None if some
    partition did not. Meaningful while data arrives on every partition (Trickle)."""
    worst = 0.0
    with shared.lock:
        for name, parts in owners.items():
            for p in parts:
                t = next((t for t, m in shared.received.get(p, []) if t >= since and m == name),
                         None)
                if t is None:
                    return None
                worst = max(worst, t - since)
    return worst


def offsets_partition(group, partitions=16):
    """The __consumer_offsets partition of a group: abs(javaHashCode(group)) % partitions, as
    Kafka and raftmq compute it (docs/groups.md)."""
    h = 0
    units = group.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


def coordinator_elections(cluster, group, since_ms):
    """Times (epoch ms) at which a broker was elected leader of the group's __consumer_offsets
    partition, i.e. became its coordinator, since `since_ms` (from the brokers' logs)."""
    pattern = re.compile(r"elected leader of %s-%d at (\d+)" %
                         (OFFSETS_TOPIC, offsets_partition(group)))
    out = []
    for b in cluster.brokers:
        try:
            with open(b.log_path, errors="replace") as f:
                for line in f:
                    m = pattern.search(line)
                    if m and int(m.group(1)) >= since_ms:
                        out.append(int(m.group(1)))
        except OSError:
            continue
    return sorted(out)


def wait_consumed(shared, expected_total, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with shared.lock:
            n = sum(len(v) for v in shared.delivered.values())
        if n >= expected_total:
            return n
        time.sleep(0.2)
    with shared.lock:
        per = {p: (len(v), max(o for o, _ in v)) for p, v in sorted(shared.delivered.items())}
        for p, v in sorted(shared.delivered.items()):
            got = {o for o, _ in v}
            missing = sorted(set(range(1, max(got) + 1)) - got)
            harness.log("partition", p, "missing", missing[:30])
            harness.log("partition", p, "sequence", [(o, m) for o, m in v][-60:])
    if shared.client_log is not None:
        shared.client_log.dump(shared.mark)
    raise AssertionError("consumed %d of %d; per partition (count, max offset): %s" %
                         (n, expected_total, per))


def check_exactly_once(shared, all_offsets):
    """Every data offset delivered exactly once over the group's life: nothing committed is
    delivered again, nothing is skipped."""
    errors = []
    with shared.lock:
        for p, offsets in all_offsets.items():
            got = [o for o, _ in shared.delivered.get(p, [])]
            dup = len(got) - len(set(got))
            missing = sorted(set(offsets) - set(got))
            extra = sorted(set(got) - set(offsets))
            if dup:
                seen = set()
                dups = [o for o in got if o in seen or seen.add(o)]
                errors.append("partition %d: %d delivered twice (e.g. %s)" % (p, dup, dups[:5]))
            if missing:
                errors.append("partition %d: %d skipped (e.g. %s)" % (p, len(missing), missing[:5]))
            if extra:
                errors.append("partition %d: unknown offsets %s" % (p, extra[:5]))
    if errors:
        raise AssertionError("\n".join(errors))


class Trickle(threading.Thread):
    """A producer writing one numbered message to every partition every `interval` s (acks=all)
    in its own thread, so that the group rebalances while data arrives on every partition.
    `acked` counts the messages the brokers acknowledged."""

    def __init__(self, bootstrap, topic, partitions, start, interval=0.05):
        super().__init__(daemon=True)
        from confluent_kafka import Producer
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "linger.ms": 1, "client.id": "trickle"})
        self.topic = topic
        self.partitions = partitions
        self.next = start
        self.interval = interval
        self.acked = 0
        self.failures = []
        self.stop_flag = threading.Event()

    def _on_delivery(self, err, _msg):
        if err is None:
            self.acked += 1
        else:
            self.failures.append(err)

    def run(self):
        while not self.stop_flag.is_set():
            for p in range(self.partitions):
                self.producer.produce(self.topic, value=("%d:%d" % (p, self.next)).encode(),
                                      partition=p, on_delivery=self._on_delivery)
                self.next += 1
            self.producer.poll(self.interval)
        left = self.producer.flush(60)
        if left:
            self.failures.append("%d unacknowledged" % left)

    def stop(self):
        """Stops producing; returns the number of acknowledged messages."""
        self.stop_flag.set()
        self.join(timeout=90)
        if self.is_alive() or self.failures:
            raise RuntimeError("trickle producer: %s" % (self.failures[:3] or "did not stop"))
        return self.acked
