#!/usr/bin/python3
"""A sequence gap behind a failed head request does not make librdkafka bump its epoch
(tests/chaos/FINDINGS.md F9, librdkafka issue #4953; docs/cluster.md "Idempotent producer").

The pattern of the chaos runs, made deterministic: a real librdkafka idempotent producer
(confluent-kafka, debug "eos") has 5 Produce requests R1..R5 in flight for one partition; R1
fails with NOT_LEADER_FOR_PARTITION (not written) and R2..R5 reach the leader, which finds a
sequence GAP (their first sequence is above the expected one). A proxy between the client and
a 1-broker raftmq makes it happen: the broker listens on 127.0.0.2 and advertises 127.0.0.1
with the same port, where the proxy listens; once armed, the proxy holds the next 5 Produce
requests, answers R1 itself with NOT_LEADER_FOR_PARTITION and forwards R2..R5 (responses go
back in request order).

Kafka (and raftmq before the fix) answers R2..R5 OUT_OF_ORDER_SEQUENCE_NUMBER: librdkafka
logs ERRSEQ "skipped sequence numbers", drains and bumps the producer's epoch (every
partition's sequences restart at 0; with another partition's possibly-persisted requests at
that moment, the duplicates of F9). raftmq now answers NOT_ENOUGH_REPLICAS while the gap can
close: librdkafka re-queues R2..R5 behind R1 (same sequences, no bump) and re-sends R1 first.

Checks: every message delivered, each exactly once and in order in the partition; no ERRSEQ
line, no epoch bump (the producer id keeps epoch 0) and the broker answered the gap with
NOT_ENOUGH_REPLICAS (the client's MSGSET/REQERR lines). With --expect-bump the test instead
requires the old behaviour (for a binary without the fix: RAFTMQ_BIN=... --expect-bump).

Ports: the harness's (Kafka 29092 on 127.0.0.2 for the broker and on 127.0.0.1 for the proxy,
RPC 30092), moved by RAFTMQ_TEST_PORT_OFFSET.
"""

import argparse
import logging
import os
import queue
import re
import socket
import struct
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

import harness
from kafka_wire import Reader, read_frame

TOPIC = "seqgap"
PRODUCE = 0
NOT_LEADER_FOR_PARTITION = 6
HOLD = 5  # R1..R5: librdkafka's max in flight for an idempotent producer
PROXY_HOST = "127.0.0.1"   # what the broker advertises
BROKER_HOST = "127.0.0.2"  # where it listens


def not_leader_response(request):
    """The Produce response refusing every partition of `request` with
    NOT_LEADER_FOR_PARTITION (Produce v3..v8: non-flexible; Kafka protocol guide)."""
    r = Reader(request)
    api_key, version, correlation = r.take(">h"), r.take(">h"), r.take(">i")
    assert api_key == PRODUCE
    if not 3 <= version <= 8:
        raise RuntimeError("Produce v%d: the proxy answers v3..v8 only" % version)
    r.raw_string()        # client id (request header v1)
    r.raw_string()        # transactional id
    r.take(">h")          # acks
    r.take(">i")          # timeout
    topics = []
    for _ in range(r.take(">i")):
        name = r.raw_string()
        partitions = []
        for _ in range(r.take(">i")):
            partitions.append(r.take(">i"))
            r.bytes_()    # records
        topics.append((name, partitions))
    out = struct.pack(">ii", correlation, len(topics))
    for name, partitions in topics:
        out += struct.pack(">h", len(name)) + name + struct.pack(">i", len(partitions))
        for p in partitions:
            out += struct.pack(">ihqq", p, NOT_LEADER_FOR_PARTITION, -1, -1)
            if version >= 5:
                out += struct.pack(">q", -1)          # log start offset
            if version >= 8:
                out += struct.pack(">ih", 0, -1)      # record errors, error message
    out += struct.pack(">i", 0)                       # throttle time
    return struct.pack(">i", len(out)) + out


class GapProxy:
    """Forwards client connections to the broker; once armed, holds the next HOLD Produce
    requests of a connection, answers the first with NOT_LEADER_FOR_PARTITION and forwards the
    others. Responses return in request order."""

    def __init__(self, port):
        self.port = port
        self.server = socket.create_server((PROXY_HOST, port))
        self.armed = threading.Event()
        self.fired = threading.Event()
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def close(self):
        self.stopping = True
        self.server.close()

    def accept_loop(self):
        while not self.stopping:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection((BROKER_HOST, self.port), timeout=10)
                broker.settimeout(None)
            except OSError:
                client.close()
                continue
            order = queue.Queue()  # ("fwd", None) | ("inj", bytes), in request order
            threading.Thread(target=self.requests, args=(client, broker, order),
                             daemon=True).start()
            threading.Thread(target=self.responses, args=(client, broker, order),
                             daemon=True).start()

    def claim(self):
        with self.lock:
            if self.armed.is_set() and not self.fired.is_set():
                self.armed.clear()
                return True
            return False

    def requests(self, client, broker, order):
        try:
            while True:
                frame = read_frame(client)
                api_key = struct.unpack_from(">h", frame, 0)[0]
                if api_key != PRODUCE or not self.claim():
                    order.put(("fwd", None))
                    broker.sendall(struct.pack(">i", len(frame)) + frame)
                    continue
                held = [frame]
                deadline = time.monotonic() + 10
                client.settimeout(0.5)
                while len(held) < HOLD and time.monotonic() < deadline:
                    try:
                        more = read_frame(client)
                    except socket.timeout:
                        continue
                    if struct.unpack_from(">h", more, 0)[0] != PRODUCE:
                        raise RuntimeError("a non-Produce request among the held ones")
                    held.append(more)
                client.settimeout(None)
                harness.log("proxy: holding %d Produce requests: R1 -> NOT_LEADER_FOR_PARTITION, "
                            "the rest forwarded" % len(held))
                order.put(("inj", not_leader_response(held[0])))
                for f in held[1:]:
                    order.put(("fwd", None))
                    broker.sendall(struct.pack(">i", len(f)) + f)
                self.held_count = len(held)
                self.fired.set()
        except (EOFError, OSError):
            pass
        finally:
            order.put(("end", None))

    def responses(self, client, broker, order):
        try:
            while True:
                kind, payload = order.get()
                if kind == "end":
                    break
                if kind == "inj":
                    client.sendall(payload)
                    continue
                frame = read_frame(broker)
                client.sendall(struct.pack(">i", len(frame)) + frame)
        except (EOFError, OSError):
            pass
        finally:
            for s in (client, broker):
                try:
                    s.close()
                except OSError:
                    pass


class EosLog(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []
        self.mutex = threading.Lock()  # not `lock`: logging.Handler holds that one in emit()

    def emit(self, record):
        with self.mutex:
            self.lines.append(record.getMessage())

    def snapshot(self):
        with self.mutex:
            return list(self.lines)


class ProxiedBroker(harness.Broker):
    """Listens on BROKER_HOST; advertises PROXY_HOST (the default --advertised-host), same port:
    clients reach it only through the proxy."""

    def args(self):
        return super().args() + ["--kafka-host", BROKER_HOST]


def produce_one(producer, value, results):
    def on_delivery(err, msg):
        results.append((value, err, msg.offset() if err is None else None))
    producer.produce(TOPIC, value=value.encode(), partition=0, on_delivery=on_delivery)
    producer.poll(0)


def run(args):
    cluster = harness.Cluster(size=1)
    proxied = ProxiedBroker(cluster, 1)
    cluster.brokers = [proxied]
    proxy = GapProxy(proxied.kafka_port)
    bootstrap = "%s:%d" % (PROXY_HOST, proxied.kafka_port)
    try:
        with cluster:
            harness.create_topic_cli(cluster, TOPIC, partitions=1, replication=1)
            harness.wait_topic_ready(bootstrap, TOPIC, 1)
            harness.log("topic %s ready" % TOPIC)
            eos = EosLog()
            logger = logging.getLogger("seqgap-producer")
            logger.setLevel(logging.DEBUG)
            logger.addHandler(eos)
            producer = Producer({
                "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                "linger.ms": 0, "batch.num.messages": 1, "retry.backoff.ms": 100,
                "max.in.flight.requests.per.connection": HOLD, "message.timeout.ms": 60000,
                "debug": "eos,msg", "logger": logger})
            results = []
            sent = []

            def send(n):
                for _ in range(n):
                    value = "m%d" % len(sent)
                    sent.append(value)
                    produce_one(producer, value, results)
                    time.sleep(0.02)

            send(10)  # the broker learns the producer (epoch 0, sequences 0..9)
            if producer.flush(30) != 0:
                raise AssertionError("warm-up messages not delivered")
            harness.log("warm-up delivered; proxy armed")
            proxy.armed.set()
            send(HOLD)
            deadline = time.monotonic() + 20
            while not proxy.fired.is_set() and time.monotonic() < deadline:
                producer.poll(0.1)
            if not proxy.fired.is_set():
                raise AssertionError("the proxy never held %d Produce requests" % HOLD)
            send(10)
            remaining = producer.flush(60)
            lines = eos.snapshot()
            errors = [(v, str(e)) for v, e, _ in results if e is not None]
            harness.log("proxy held %d requests; deliveries %d, errors %d, undelivered %d" %
                        (proxy.held_count, len(results), len(errors), remaining))
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "seqgap-check",
                                 "enable.auto.commit": False, "auto.offset.reset": "earliest"})
            consumer.assign([TopicPartition(TOPIC, 0, 0)])
            stored = []
            deadline = time.monotonic() + 30
            while len(stored) < len(sent) and time.monotonic() < deadline:
                for m in consumer.consume(100, 0.5):
                    if m.error() is None:
                        stored.append(m.value().decode())
            consumer.close()
            producer = None
        return check(args, sent, stored, errors, remaining, lines, proxy.held_count)
    finally:
        proxy.close()


def check(args, sent, stored, errors, remaining, lines, held):
    errseq = [l for l in lines if "skipped sequence numbers" in l]
    bumps = [l for l in lines if re.search(r"epoch bump", l)]
    epochs = sorted({int(e) for l in lines for e in re.findall(r"PID\{Id:\d+,Epoch:(\d+)\}", l)})
    refused = [l for l in lines if "NOT_ENOUGH_REPLICAS" in l or "Not enough in-sync" in l]
    out_of_order = [l for l in lines if "OUT_OF_ORDER_SEQUENCE_NUMBER" in l or
                    "out of order sequence" in l.lower()]
    print("sent %d, stored %d, delivery errors %d, undelivered %d, held %d" %
          (len(sent), len(stored), len(errors), remaining, held))
    print("client eos log: %d lines, ERRSEQ %d, epoch-bump lines %d, epochs seen %s, "
          "NOT_ENOUGH_REPLICAS lines %d, OUT_OF_ORDER lines %d" %
          (len(lines), len(errseq), len(bumps), epochs, len(refused), len(out_of_order)))
    for l in (errseq + bumps + refused)[:6]:
        print("   ", l[:400])
    failures = []
    if held != HOLD:
        failures.append("the proxy held %d requests, not %d" % (held, HOLD))
    if errors or remaining:
        failures.append("delivery errors %s, undelivered %d" % (errors[:3], remaining))
    if stored != sent:
        dup = sorted({v for v in stored if stored.count(v) > 1})
        failures.append("partition content differs from what was sent: %d stored, %d sent, "
                        "duplicated %s, missing %s" % (len(stored), len(sent), dup[:5],
                                                        sorted(set(sent) - set(stored))[:5]))
    if args.expect_bump:
        if not errseq or epochs == [0]:
            failures.append("expected librdkafka's ERRSEQ and an epoch bump (old behaviour)")
    else:
        if errseq or bumps or epochs != [0]:
            failures.append("librdkafka bumped its epoch (ERRSEQ %d, bump lines %d, epochs %s)" %
                            (len(errseq), len(bumps), epochs))
        if not refused:
            failures.append("no NOT_ENOUGH_REPLICAS answer in the client's log")
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("PASS")
    return 1 if failures else 0


def main():
    if os.environ.get("SEQGAP_DEBUG"):
        import faulthandler
        faulthandler.dump_traceback_later(int(os.environ["SEQGAP_DEBUG"]), exit=True)
    p = argparse.ArgumentParser()
    p.add_argument("--expect-bump", action="store_true",
                   help="require the old behaviour (a binary without the gap answer)")
    sys.exit(run(p.parse_args()))


if __name__ == "__main__":
    main()
