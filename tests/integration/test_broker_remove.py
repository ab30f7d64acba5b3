#!/usr/bin/python3
"""Removing a broker (docs/cluster.md "Removing a broker", "Controller voters") with the real
binary: a 3-broker cluster takes broker 4 with `raftmq serve --join` (it becomes a controller
voter once caught up); a topic is written with confluent-kafka (acks=all); then

  * `raftmq broker remove 2` cannot drain broker 2 while a topic has 4 replicas on the 4
    brokers: exit 1 with the reason, and nothing changed (broker 2 listed, the topic's
    replicas as before, no reassignment in progress);
  * once that topic is deleted, `raftmq broker remove 2` alone drains broker 2 (progress
    lines) and removes it;
  * Metadata no longer lists broker 2, asked of every remaining broker with librdkafka
    (confluent-kafka) and with kcat (`kcat -L`), and broker 2's process stops by itself with
    "removed from the cluster";
  * broker 2 restarted on its old data directory exits 1 with the same reason;
  * broker 1 is killed: the controller (voters 1, 3, 4) keeps a quorum, a topic is created,
    and every acknowledged write is read back.

Ports: 29220+ / 30220+ (plus RAFTMQ_TEST_PORT_OFFSET), apart from the other tests."""

import socket
import struct
import subprocess
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

import harness
from test_broker_join import wait_listed, with_joining_broker
from test_membership import cli

TOPIC = "removing"


def produce(bootstrap, prefix, count):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "message.timeout.ms": 60000})
    acked = {}
    failed = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(err)
        else:
            acked[msg.value().decode()] = msg.offset()

    for i in range(count):
        producer.produce(TOPIC, value=("%s-%d" % (prefix, i)).encode(), on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(90)
    assert not failed and len(acked) == count, (len(acked), failed[:3])
    return acked


def read_all(bootstrap, end):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    seen = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(seen) < end:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            seen[msg.value().decode()] = msg.offset()
    consumer.close()
    return seen


def unregister(port, broker_id):
    """A raw UnregisterBroker v0 (key 64, flexible: request header v2, response header v1),
    as `kafka-cluster.sh unregister` sends it, bypassing the CLI's own Metadata checks:
    (error_code, error_message)."""
    client = b"it"
    body = struct.pack(">hhih", 64, 0, 11, len(client)) + client + b"\x00"  # header v2
    body += struct.pack(">i", broker_id) + b"\x00"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        payload = recv_exact(s, size)
    correlation, = struct.unpack(">i", payload[:4])
    assert correlation == 11 and payload[4] == 0, payload  # no tagged fields
    _throttle, error = struct.unpack(">ih", payload[5:11])
    length = payload[11] - 1  # compact nullable string, a one-byte uvarint here (< 127)
    assert payload[11] < 0x80, payload
    message = payload[12:12 + length].decode() if length >= 0 else None
    return error, message


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def wait_unlisted(port, broker_id, timeout=30):
    """Metadata asked of the broker at `port` (librdkafka, then kcat) no longer lists it."""
    bootstrap = "127.0.0.1:%d" % port
    deadline = time.monotonic() + timeout
    brokers = None
    while time.monotonic() < deadline:
        try:
            brokers = sorted(harness.metadata(bootstrap, timeout=5).brokers)
            if broker_id not in brokers:
                break
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            brokers = repr(e)
        time.sleep(0.2)
    else:
        raise AssertionError("broker %d still in Metadata from %s: %s" % (broker_id, bootstrap,
                                                                           brokers))
    out = subprocess.run(["kcat", "-L", "-b", bootstrap, "-m", "10"], capture_output=True,
                         timeout=30)
    text = out.stdout.decode(errors="replace")
    assert out.returncode == 0, out.stderr
    assert " brokers:" in text, text
    assert "broker %d at" not in text, text
    return brokers


def wait_exit(broker, timeout=30):
    deadline = time.monotonic() + timeout
    while broker.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not broker.alive(), "broker %d still running:\n%s" % (broker.id, broker.tail(20))
    return broker.proc.returncode


def main():
    with_joining_broker(29220, 30220, 1, run)
    print("PASS test_broker_remove")


def run(cluster, newcomer):
    newcomer.start()
    deadline = time.monotonic() + 60
    while not harness.api_versions_ok(newcomer.kafka_port):
        assert newcomer.alive(), "broker 4 exited:\n" + newcomer.tail(40)
        assert time.monotonic() < deadline, "broker 4 not serving:\n" + newcomer.tail(40)
        time.sleep(0.1)
    for b in cluster.brokers + [newcomer]:
        wait_listed("127.0.0.1:%d" % b.kafka_port, 4)
    deadline = time.monotonic() + 30
    while True:
        with open(cluster.broker(1).log_path, "rb") as f1, open(cluster.broker(2).log_path,
                                                                  "rb") as f2, \
                open(cluster.broker(3).log_path, "rb") as f3:
            logs = f1.read() + f2.read() + f3.read()
        if b"promoting broker 4 from learner to voter" in logs:
            break
        assert time.monotonic() < deadline, "broker 4 never promoted to controller voter"
        time.sleep(0.2)

    harness.create_topic_cli(cluster, TOPIC, 1, 3)
    md = harness.wait_topic_ready(cluster.live_bootstrap(), TOPIC, 1, 3)
    replicas = md[0][1]
    leaving = 2 if 2 in replicas else replicas[0]
    acked = produce(cluster.live_bootstrap(), "a", 500)

    # A drain that cannot be done (4 replicas on 4 brokers): refused, nothing changed.
    harness.create_topic_cli(cluster, "wide", 1, 4)
    wide_before = harness.wait_topic_ready(cluster.live_bootstrap(), "wide", 1, 4)
    out = cli(cluster, "broker", "remove", str(leaving))
    assert out.returncode == 1, out
    assert b"cannot drain broker %d" % leaving in out.stderr, out.stderr
    assert b"nothing was changed" in out.stderr, out.stderr
    assert leaving in harness.metadata(cluster.live_bootstrap(), timeout=10).brokers
    wide_after = harness.wait_topic_ready(cluster.live_bootstrap(), "wide", 1, 4)
    assert sorted(wide_after[0][1]) == sorted(wide_before[0][1]), (wide_before, wide_after)
    out = cli(cluster, "partition", "reassignments")
    assert out.returncode == 0 and b"no reassignment in progress" in out.stdout, out.stdout
    out = cli(cluster, "topic", "delete", "wide")
    assert out.returncode == 0, out.stderr
    out = cli(cluster, "broker", "remove", "9")
    assert out.returncode == 1 and b"not in the cluster" in out.stderr, out.stderr
    # The broker's own checks, through the Kafka API (asked of broker 4, a non-controller
    # most likely: forwarded to the controller leader).
    error, message = unregister(newcomer.kafka_port, 9)
    harness.log("UnregisterBroker 9 ->", error, message)
    assert error == 102, (error, message)  # BROKER_ID_NOT_REGISTERED
    error, message = unregister(newcomer.kafka_port, leaving)
    harness.log("UnregisterBroker", leaving, "->", error, message)
    assert error == 42 and "still holds" in message, (error, message)  # INVALID_REQUEST

    # One command: drain (progress lines), then unregister.
    removed = cli(cluster, "broker", "remove", str(leaving), "--timeout", "120")
    assert removed.returncode == 0, removed.stderr
    assert b"draining broker %d: moving" % leaving in removed.stdout, removed.stdout
    assert b"partitions moved" in removed.stdout, removed.stdout
    assert b"broker %d removed from the cluster" % leaving in removed.stdout, removed.stdout

    gone = cluster.broker(leaving)
    code = wait_exit(gone)
    assert code == 1, (code, gone.tail(20))
    assert "removed from the cluster" in gone.tail(40), gone.tail(40)
    harness.log("broker", leaving, "exited with", code, ":", gone.tail(1))
    remaining = [b for b in cluster.brokers if b.id != leaving] + [newcomer]
    for b in remaining:
        harness.log("Metadata from broker", b.id, "lists",
                    wait_unlisted(b.kafka_port, leaving))

    # Its old data directory is refused when it comes back.
    gone.start()
    code = wait_exit(gone)
    assert code == 1, (code, gone.tail(20))
    assert "removed from the cluster" in gone.tail(10), gone.tail(20)
    assert "empty data directory and --join" in gone.tail(10), gone.tail(20)

    acked.update(produce(cluster.live_bootstrap(), "b", 200))
    # Kill another original broker: the controller voters are now the two others and 4.
    victim = [b for b in cluster.brokers if b.id != leaving][0]
    victim.kill()
    harness.create_topic_retrying(cluster, "after-removal")
    harness.log("topic created with broker", leaving, "removed and broker", victim.id, "killed")

    seen = read_all(cluster.live_bootstrap(), len(acked))
    lost = [(v, o) for v, o in acked.items() if seen.get(v) != o]
    harness.log("acked %d, read %d, lost %d" % (len(acked), len(seen), len(lost)))
    assert not lost, lost[:10]


if __name__ == "__main__":
    sys.exit(main())
