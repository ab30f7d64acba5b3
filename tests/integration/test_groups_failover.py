#!/usr/bin/python3
"""Consumer groups under failure and bad input, on a 3-broker raftmq cluster.

1. Bad input (raw Kafka requests, so the exact error codes are checked): for an unknown group a
   commit with a generation (ILLEGAL_GENERATION, and no offset appears), a heartbeat and a sync
   (UNKNOWN_MEMBER_ID); in the group of a live librdkafka member, a commit of an unknown member
   (UNKNOWN_MEMBER_ID), a commit of the live member's id with a wrong generation
   (ILLEGAL_GENERATION), a heartbeat of an unknown member (UNKNOWN_MEMBER_ID) and a JoinGroup
   with 2 MiB of metadata (INVALID_REQUEST): the group's committed offsets do not move, and the
   live member keeps its assignment and keeps consuming; librdkafka's captured OffsetFetch v7
   "all topics" request (3 stray bytes after its body) gets every committed offset, and so does
   an OffsetFetch v8 naming two groups (each with its own error); commits
   with 5000 bytes of metadata (OFFSET_METADATA_TOO_LARGE) or for an unknown partition
   (UNKNOWN_TOPIC_OR_PARTITION) change nothing; a member that never heartbeats is gone after
   its session timeout (UNKNOWN_MEMBER_ID).
2. Coordinator failover: a librdkafka member consumes and commits; the coordinator's broker is
   SIGKILLed; the group carries on with another coordinator, the committed offsets are intact,
   nothing is skipped, and a restarted group resumes exactly at the committed offsets."""

import socket
import struct
import sys
import time

import groups_util as gu
import harness
from kafka_wire import Reader, read_frame

UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
INVALID_REQUEST = 42


class Raw:
    """A minimal Kafka client connection for exact error checks (non-flexible versions)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.correlation = 0

    def call(self, api_key, version, body):
        self.correlation += 1
        client = b"raw-test"
        header = struct.pack(">hhih", api_key, version, self.correlation, len(client)) + client
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        payload = read_frame(self.sock)
        assert struct.unpack(">i", payload[:4])[0] == self.correlation
        return Reader(payload[4:])

    def close(self):
        self.sock.close()


def s16(text):
    b = text.encode()
    return struct.pack(">h", len(b)) + b


def b32(data):
    return struct.pack(">i", len(data)) + data


def find_coordinator(port, group):
    r = Raw(port).call(10, 0, s16(group))
    return r.take(">h"), r.take(">i")


def coordinator_port(cluster, group, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for b in cluster.brokers:
            if not b.alive():
                continue
            try:
                error, node = find_coordinator(b.kafka_port, group)
            except OSError:
                continue
            if error == 0 and cluster.broker(node).alive():
                return node, cluster.broker(node).kafka_port
        time.sleep(0.2)
    raise AssertionError("no coordinator for %s" % group)


def join_v1(raw, group, member="", session=6000, metadata=b"\x00\x01sub"):
    body = (s16(group) + struct.pack(">ii", session, session) + s16(member) + s16("consumer") +
            struct.pack(">i", 1) + s16("range") + b32(metadata))
    r = raw.call(11, 1, body)
    error, generation = r.take(">h"), r.take(">i")
    r.string()  # protocol
    r.string()  # leader
    return error, generation, r.string()


def sync_v0(raw, group, generation, member, assignment=b""):
    body = s16(group) + struct.pack(">i", generation) + s16(member) + struct.pack(">i", 1) + \
        s16(member) + b32(assignment)
    return raw.call(14, 0, body).take(">h")


def heartbeat_v0(raw, group, generation, member):
    return raw.call(12, 0, s16(group) + struct.pack(">i", generation) + s16(member)).take(">h")


def commit_v2(raw, group, generation, member, topic, partition, offset, metadata=""):
    body = (s16(group) + struct.pack(">i", generation) + s16(member) + struct.pack(">q", -1) +
            struct.pack(">i", 1) + s16(topic) + struct.pack(">i", 1) +
            struct.pack(">iq", partition, offset) + s16(metadata))
    r = raw.call(8, 2, body)
    assert r.take(">i") == 1
    r.string()
    assert r.take(">i") == 1
    r.take(">i")
    return r.take(">h")


def fetch_offsets_v1(raw, group, topic, partitions):
    """OffsetFetch v1: {partition: (offset, error)}."""
    body = s16(group) + struct.pack(">i", 1) + s16(topic) + struct.pack(">i", len(partitions))
    body += b"".join(struct.pack(">i", p) for p in partitions)
    r = raw.call(9, 1, body)
    out = {}
    for _ in range(r.take(">i")):
        r.string()
        for _ in range(r.take(">i")):
            p, offset = r.take(">i"), r.take(">q")
            r.string()  # metadata
            out[p] = (offset, r.take(">h"))
    return out


def describe_v0(raw, group):
    """DescribeGroups v0 of one group: (error, state, generation-less member ids)."""
    r = raw.call(15, 0, struct.pack(">i", 1) + s16(group))
    assert r.take(">i") == 1
    error = r.take(">h")
    r.string()  # group id
    state = r.string()
    r.string()  # protocol type
    r.string()  # protocol
    members = []
    for _ in range(r.take(">i")):
        members.append(r.string())
        r.string()  # client id
        r.string()  # client host
        r.bytes_()  # metadata
        r.bytes_()  # assignment
    return error, state, members


class FlexReader:
    """Reads a flexible (KIP-482) response: compact strings and arrays, tagged fields."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0]

    def uvarint(self):
        shift = value = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    def string(self):
        n = self.uvarint() - 1
        text = self.data[self.pos:self.pos + max(n, 0)].decode()
        self.pos += max(n, 0)
        return text

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()

    def offsets(self):
        """Topics of an OffsetFetch v6+ response: {(topic, partition): offset}."""
        out = {}
        for _ in range(self.uvarint() - 1):
            topic = self.string()
            for _ in range(self.uvarint() - 1):
                partition, offset = self.take(">i"), self.take(">q")
                self.take(">i")  # committed leader epoch
                self.string()    # metadata
                self.take(">h")  # partition error
                self.skip_tags()
                out[(topic, partition)] = offset
            self.skip_tags()
        return out


def flexible_call(port, api_key, version, body, client=b"rdkafka", correlation=4):
    """Sends one request with header v2 and returns a FlexReader after response header v1."""
    frame = struct.pack(">hhih", api_key, version, correlation, len(client)) + client + b"\x00"
    frame += body
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        data = read_frame(sock)
    finally:
        sock.close()
    r = FlexReader(data)
    assert r.take(">i") == correlation
    r.skip_tags()
    return r


def compact(text):
    b = text.encode()
    return bytes([len(b) + 1]) + b


def offsets_v7_all_topics(port, group):
    """librdkafka 2.0.2's own OffsetFetch v7 "all topics" request, byte for byte as captured
    (src/protocol/testdata/librdkafka_offset_fetch_v7.hex) with `group` spliced in: a compact
    null topics array followed by the 3 stray bytes of its unfinalized 4-byte placeholder,
    RequireStable 0, no tagged fields. Returns (error, {(topic, partition): offset})."""
    r = flexible_call(port, 9, 7, compact(group) + b"\x00\x00\x00\x00" + b"\x00" + b"\x00")
    r.take(">i")  # throttle time
    offsets = r.offsets()
    return r.take(">h"), offsets


def offsets_v8(port, groups):
    """OffsetFetch v8 (KIP-709, as the Java client sends it): several groups, all topics each.
    Returns {group: (error, {(topic, partition): offset})}."""
    body = bytes([len(groups) + 1])
    for g in groups:
        body += compact(g) + b"\x00" + b"\x00"  # null topics = all, no tagged fields
    body += b"\x00" + b"\x00"  # RequireStable, no tagged fields
    r = flexible_call(port, 9, 8, body, client=b"java-like")
    r.take(">i")  # throttle time
    out = {}
    for _ in range(r.uvarint() - 1):
        group = r.string()
        offsets = r.offsets()
        out[group] = (r.take(">h"), offsets)
        r.skip_tags()
    return out


RETRIABLE = (14, 15, 16)  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR


def settled(call, timeout=20):
    """Calls `call` until its error (or first element) is not a retriable coordinator error,
    as clients do (a broker's coordinator loads its partitions on its first group request)."""
    deadline = time.monotonic() + timeout
    while True:
        result = call()
        error = result[0] if isinstance(result, tuple) else result
        if error not in RETRIABLE or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def expect(what, got, want):
    if got != want:
        raise AssertionError("%s: error %s, expected %s" % (what, got, want))
    harness.log("ok:", what, "->", got)


def bad_input(cluster, topic):
    shared = gu.Shared()
    live = gu.Member("live", cluster.bootstrap, "busy", topic, shared)
    live.start()
    before = gu.wait_partitioned([live], 3, shared)
    gu.produce_numbered(cluster.bootstrap, topic, 3, 0, 300)
    gu.wait_consumed(shared, 300)

    _, port = coordinator_port(cluster, "ghost")
    raw = Raw(port)
    expect("commit for an unknown group with a generation",
           settled(lambda: commit_v2(raw, "ghost", 3, "m", topic, 0, 1)), ILLEGAL_GENERATION)
    expect("heartbeat for an unknown group", heartbeat_v0(raw, "ghost", 3, "m"), UNKNOWN_MEMBER_ID)
    expect("sync for an unknown group", sync_v0(raw, "ghost", 3, "m"), UNKNOWN_MEMBER_ID)
    if fetch_offsets_v1(raw, "ghost", topic, [0]) != {0: (-1, 0)}:
        raise AssertionError("the refused commit created offsets for ghost")
    _, port = coordinator_port(cluster, "busy")
    raw = Raw(port)
    # The live member is idle (everything consumed and committed): its offsets must not move.
    committed_before = settled(lambda: fetch_offsets_v1(raw, "busy", topic, [0, 1, 2]))
    expect("commit for an unknown member of a live group",
           settled(lambda: commit_v2(raw, "busy", 1, "nobody", topic, 0, 1)), UNKNOWN_MEMBER_ID)
    error, state, members = describe_v0(raw, "busy")
    if error != 0 or state != "Stable" or len(members) != 1:
        raise AssertionError("busy: error %d state %s members %s" % (error, state, members))
    expect("commit of the live member with a wrong generation",
           commit_v2(raw, "busy", 1000, members[0], topic, 0, 1), ILLEGAL_GENERATION)
    expect("heartbeat of an unknown member of a live group",
           heartbeat_v0(raw, "busy", 1, "nobody"), UNKNOWN_MEMBER_ID)
    error, _, _ = join_v1(raw, "busy", metadata=b"\x00" * (2 << 20))
    expect("join with 2 MiB of metadata", error, INVALID_REQUEST)
    committed_after = fetch_offsets_v1(raw, "busy", topic, [0, 1, 2])
    if committed_after != committed_before:
        raise AssertionError("refused requests changed busy's offsets: %s -> %s" %
                             (committed_before, committed_after))
    harness.log("ok: busy's committed offsets unchanged:", committed_after)
    # librdkafka 2.0.2's all-topics OffsetFetch v7 (3 stray bytes after its body) is answered
    # like Kafka answers it: every committed offset of the group.
    error, every = offsets_v7_all_topics(port, "busy")
    want = {(topic, p): o for p, (o, _) in committed_after.items()}
    if error != 0 or every != want:
        raise AssertionError("OffsetFetch v7 all topics: error %d, %s, expected %s" %
                             (error, every, want))
    harness.log("ok: librdkafka's OffsetFetch v7 for all topics ->", every)
    # v8, several groups in one request, each answered on its own: "ghost" has no offsets (the
    # refused commit made none) or, coordinated elsewhere, NOT_COORDINATOR for it alone.
    busy_node, _ = coordinator_port(cluster, "busy")
    ghost_node, _ = coordinator_port(cluster, "ghost")
    both = offsets_v8(port, ["busy", "ghost"])
    ghost_want = (0, {}) if ghost_node == busy_node else (16, {})
    if both != {"busy": (0, want), "ghost": ghost_want}:
        raise AssertionError("OffsetFetch v8 for busy and ghost: %s, expected busy %s ghost %s"
                             % (both, want, ghost_want))
    harness.log("ok: OffsetFetch v8 for two groups ->", both)
    gu.produce_numbered(cluster.bootstrap, topic, 3, 300, 300)
    gu.wait_consumed(shared, 600)
    after = gu.wait_partitioned([live], 3, shared, settle=0.5)
    if after != before or live.commit_failures:
        raise AssertionError("the live member was disturbed: %s -> %s, %d commit failures" %
                             (before, after, live.commit_failures))
    live.stop()
    harness.log("ok: the live member kept its assignment and consumed everything")

    _, port = coordinator_port(cluster, "solo")
    raw = Raw(port)
    error, generation, member = settled(lambda: join_v1(raw, "solo"))
    expect("join of a raw member", error, 0)
    expect("sync of a raw member", sync_v0(raw, "solo", generation, member), 0)
    expect("commit with a wrong generation",
           commit_v2(raw, "solo", generation + 7, member, topic, 0, 1), ILLEGAL_GENERATION)
    expect("commit with the right generation",
           commit_v2(raw, "solo", generation, member, topic, 0, 1), 0)
    expect("commit with 5000 bytes of offset metadata",
           commit_v2(raw, "solo", generation, member, topic, 0, 2, metadata="m" * 5000),
           OFFSET_METADATA_TOO_LARGE)
    expect("commit for an unknown partition",
           commit_v2(raw, "solo", generation, member, topic, 99, 2), UNKNOWN_TOPIC_OR_PARTITION)
    if fetch_offsets_v1(raw, "solo", topic, [0]) != {0: (1, 0)}:
        raise AssertionError("a refused commit changed solo's offset")
    expect("heartbeat in time", heartbeat_v0(raw, "solo", generation, member), 0)
    time.sleep(6000 / 1000 + 1.5)  # the session timeout passes without a heartbeat
    got = heartbeat_v0(raw, "solo", generation, member)
    for _ in range(3):
        if got == 16:  # NOT_COORDINATOR: the offsets partition changed leader meanwhile
            # The new coordinator loaded the group and restarted its session timers: find it and
            # let the session time out there.
            harness.log("coordinator of solo moved; asking the new one after a session timeout")
            raw.close()
            _, port = coordinator_port(cluster, "solo")
            raw = Raw(port)
        elif got == 14:  # COORDINATOR_LOAD_IN_PROGRESS (retriable): it took over meanwhile
            # Sessions restart when the load ends: wait for that (OffsetFetch does not touch the
            # member's session, a heartbeat would), then for a session timeout.
            harness.log("coordinator of solo still loading; waiting for it, then a session timeout")
            deadline = time.monotonic() + 30
            while fetch_offsets_v1(raw, "solo", topic, [0]).get(0, (0, 14))[1] == 14:
                assert time.monotonic() < deadline, "solo's coordinator still loading after 30 s"
                time.sleep(0.2)
        else:
            break
        time.sleep(6000 / 1000 + 1.5)
        got = heartbeat_v0(raw, "solo", generation, member)
    expect("heartbeat after the session timeout", got, UNKNOWN_MEMBER_ID)
    raw.close()


def committed(cluster, group, topic, partitions):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": cluster.live_bootstrap(), "group.id": group,
                  "enable.auto.commit": False})
    got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    c.close()
    return {tp.partition: tp.offset for tp in got}


def failover(cluster, topic):
    group = "fo"
    # The members' librdkafka log (metadata, topic, broker) is kept: a partition never
    # consumed after the kill shows which leader the client was told, and by whom.
    shared = gu.Shared(client_log=gu.ClientLog())
    # librdkafka 2.0.2 asks for Metadata once when a broker goes down, and that request may go
    # to the dead broker itself (seen in this test's client log: "127.0.0.1:29792/1: Request
    # metadata ... broker down" then "MetadataRequest failed: Local: Broker transport
    # failure"). A partition whose leader died then stays with the dead broker until the
    # periodic refresh (default 5 minutes): this test checks the group's failover, not that
    # client race, so the periodic refresh is 10 s; a late re-route is reported with the
    # client log below.
    member_conf = {"topic.metadata.refresh.interval.ms": 10000}
    m = gu.Member("m1", cluster.bootstrap, group, topic, shared, extra=member_conf)
    m.start()
    gu.wait_partitioned([m], 3, shared)
    gu.produce_numbered(cluster.bootstrap, topic, 3, 0, 900)
    gu.wait_consumed(shared, 900)
    time.sleep(0.5)
    node, _ = coordinator_port(cluster, group)
    with shared.lock:
        before = dict(shared.committed)
    harness.log("coordinator of", group, "is broker", node, "; committed", before)
    shared.mark = time.monotonic()
    cluster.broker(node).kill()
    killed_at = time.monotonic()
    new_node, _ = coordinator_port(cluster, group)
    harness.log("new coordinator: broker %d after %.2f s" % (new_node, time.monotonic() - killed_at))
    if new_node == node:
        raise AssertionError("coordinator did not move")
    after = committed(cluster, group, topic, 3)
    if any(after.get(p, -1) < o for p, o in before.items()):
        raise AssertionError("committed offsets lost: before %s, after %s" % (before, after))
    harness.log("ok: committed offsets intact after failover:", after)
    live = ",".join("127.0.0.1:%d" % b.kafka_port for b in cluster.brokers if b.alive())
    produced_at = time.monotonic()
    gu.produce_numbered(live, topic, 3, 900, 900)
    gu.wait_consumed(shared, 1800, timeout=120)
    late = time.monotonic() - produced_at
    harness.log("all 900 produced after the kill consumed in %.1f s" % late)
    if late > 8:
        harness.log("late: the client re-routed a partition only at its periodic refresh?")
        shared.client_log.dump(shared.mark)
    m.stop()
    # The group resumes at its commits: only what is produced now is delivered.
    gu.produce_numbered(live, topic, 3, 1800, 300)
    m2 = gu.Member("m2", live, group, topic, shared, extra=member_conf)
    m2.start()
    gu.wait_consumed(shared, 2100, timeout=120)
    time.sleep(1.0)
    m2.stop()
    offsets = gu.data_offsets(live, topic, 3)
    with shared.lock:
        dup = sum(len(v) - len({o for o, _ in v}) for v in shared.delivered.values())
    harness.log("failover: %d commit failures, %d redeliveries" % (m.commit_failures, dup))
    if m.commit_failures == 0 and m2.commit_failures == 0:
        gu.check_exactly_once(shared, offsets)
    else:
        # A commit refused while the coordinator moved is retried by the next batch; what it
        # covered may be delivered again, but never skipped.
        with shared.lock:
            for p, want in offsets.items():
                got = {o for o, _ in shared.delivered.get(p, [])}
                if set(want) - got:
                    raise AssertionError("partition %d: skipped %s" % (p, sorted(set(want) - got)[:5]))
    cluster.broker(node).start()
    cluster.wait_ready()


def main():
    # Raft RPC ports below the ephemeral range (32768+): outgoing connections elsewhere on the
    # machine cannot hold them.
    with harness.Cluster(rpc_base=30092) as cluster:
        gu.wait_offsets_topic(cluster)
        harness.create_topic_cli(cluster, "bad", partitions=3, replication=3)
        bad_input(cluster, "bad")
        harness.create_topic_cli(cluster, "fo-topic", partitions=3, replication=3)
        failover(cluster, "fo-topic")
    print("PASS test_groups_failover")


if __name__ == "__main__":
    sys.exit(main())
