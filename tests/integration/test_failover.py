#!/usr/bin/python3
"""Failover under load: a confluent-kafka producer streams acks=all writes into a 1-partition
RF-3 topic while the partition leader's broker is SIGKILLed. Checks that the producer carries on
by itself, that every acknowledged message is readable afterwards at its acknowledged offset,
and that the restarted broker catches up (is back in the ISR). Prints the pause between each
kill and the next acknowledged write.

    test_failover.py [--kills N]   (default 3; 20 for the full measurement)
                     [--settle-s S]      kill only S seconds after the previous restart (default
                                         11; 0: as soon as the restarted broker is in sync)

Each kill is a single failure: the next one comes --settle-s after the previous restart. With
librdkafka's default reconnect.backoff.max.ms (10 s), a client whose connection attempt was
refused while a broker was down may not try that broker again for up to 10 s after its
restart; a kill within that time is a second failure while the client still cannot reach the
restarted survivor, and its pause measures that back-off (docs/cluster.md, Failover).
                     [--debug-log FILE]  librdkafka debug log (broker,topic,metadata,msg) with
                                         wall-clock times, and the kill times, for tracing a pause
                     [--keep-logs DIR]   copy the broker logs to DIR at the end
"""

import argparse
import logging
import os
import shutil
import statistics
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

import harness

TOPIC = "failover"


class Stream:
    """Produces sequence-numbered messages until stopped; records every acknowledgement."""

    def __init__(self, bootstrap, debug_logger=None):
        # Default client settings (what a user gets) except acks=all and a message timeout
        # long enough that nothing is failed by the client during the test.
        config = {"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 120000}
        if debug_logger is not None:   # tracing only: changes no client behaviour
            config.update({"debug": "broker,topic,metadata,msg", "logger": debug_logger})
        self.producer = Producer(config)
        self.acked = {}          # seq -> offset
        self.ack_times = []      # (monotonic time of the delivery report, seq), in order
        self.sent_at = []        # seq -> monotonic time produce() was called
        self.failed = 0
        self.local_refusals = 0
        self.lock = threading.Lock()
        self.stop_flag = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_delivery(self, err, msg):
        now = time.monotonic()
        with self.lock:
            if err is not None:
                self.failed += 1
                return
            seq = int(msg.value().decode().split("|")[0])
            self.acked[seq] = msg.offset()
            self.ack_times.append((now, seq))

    def run(self):
        seq = 0
        while not self.stop_flag:
            if len(self.producer) > 2000:   # bounded in flight: pace to the acks
                self.producer.poll(0.01)
                continue
            with self.lock:
                self.sent_at.append(time.monotonic())
            try:
                self.producer.produce(TOPIC, key=b"k", value=("%d|payload" % seq).encode(),
                                      on_delivery=self.on_delivery)
            except KafkaException as e:
                # Known issue: a broker that just restarted may answer Metadata before it has
                # caught up with the controller and call the topic unknown; librdkafka then
                # refuses produce() locally until its next metadata refresh. Counted, reported.
                self.local_refusals += 1
                if self.local_refusals <= 3:
                    harness.log("produce() refused locally:", e)
                with self.lock:
                    self.sent_at.pop()
                self.producer.poll(0.1)
                continue
            seq += 1
            self.producer.poll(0)
            if seq % 100 == 0:
                time.sleep(0.005)
        self.producer.flush(120)

    def first_ack_after(self, t, timeout):
        """The acknowledgement time of the first write issued after t: only a new leader can
        acknowledge it, so this measures the failover pause as a producer sees it (delivery
        reports of writes acknowledged before the kill may still be arriving)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                later = [a for a, seq in self.ack_times[-20000:] if self.sent_at[seq] >= t]
            if later:
                return min(later)
            time.sleep(0.005)
        return None


def election_ms(broker, t_kill_wall):
    """When a surviving broker logged "elected leader of failover-0 at <wall ms>" after the
    kill: milliseconds since the kill, or None."""
    best = None
    try:
        with open(broker.log_path, "rb") as f:
            for line in f.read().decode(errors="replace").splitlines():
                if ("elected leader of %s-0 at " % TOPIC) not in line:
                    continue
                at = int(line.rsplit(" ", 1)[1]) / 1000.0
                if at >= t_kill_wall and (best is None or at < best):
                    best = at
    except (OSError, ValueError):
        return None
    return None if best is None else (best - t_kill_wall) * 1000


def wait_isr(cluster, replicas, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            md = harness.metadata(cluster.live_bootstrap(), TOPIC)
            if md and md[0][0] >= 0 and len(md[0][2]) >= replicas:
                return md[0]
        except Exception:  # noqa: BLE001 - retried
            pass
        time.sleep(0.2)
    raise RuntimeError("ISR of %s not back to %d in %ds" % (TOPIC, replicas, timeout))


def wait_acks_flowing(stream, count=200, timeout=60):
    """Waits until `count` more writes were acknowledged (the producer is streaming)."""
    deadline = time.monotonic() + timeout
    with stream.lock:
        start = len(stream.acked)
    while time.monotonic() < deadline:
        with stream.lock:
            if len(stream.acked) >= start + count:
                return
        time.sleep(0.01)
    raise RuntimeError("the producer is not getting acknowledgements")


def read_back(cluster, end_offset):
    """Reads the partition from offset 0 up to end_offset; gives up only when no progress is
    made for 30 s (a long run holds hundreds of thousands of messages)."""
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "fetch.max.bytes": 8 << 20,
                         "max.partition.fetch.bytes": 4 << 20})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    by_offset = {}
    highest = -1
    last_progress = time.monotonic()
    errors = 0
    while time.monotonic() - last_progress < 30 and highest < end_offset:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            errors += 1
            if errors <= 5:
                harness.log("read back:", msg.error())
            continue
        by_offset[msg.offset()] = int(msg.value().decode().split("|")[0])
        highest = max(highest, msg.offset())
        last_progress = time.monotonic()
    consumer.close()
    if highest < end_offset:
        harness.log("read back stalled at offset %d of %d" % (highest, end_offset))
    return by_offset


def debug_logger(path):
    """A logger writing librdkafka's debug lines to `path`, each with its wall-clock time (ms,
    the same clock as the brokers' "elected leader ... at <ms>" lines). The lines are delivered
    by the producer's poll(), which the stream calls after every message (at most ~10 ms late)."""
    logger = logging.getLogger("failover-trace")
    logger.setLevel(logging.DEBUG)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(created).3f %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--debug-log", help="librdkafka debug log file (tracing a pause)")
    parser.add_argument("--keep-logs", help="directory to copy the broker logs to at the end")
    # See the module docstring: 11 s > librdkafka's reconnect.backoff.max.ms (10 s).
    parser.add_argument("--settle-s", type=float, default=11.0,
                        help="seconds between a restart and the next kill")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="extra `raftmq serve` argument for every broker (repeatable), e.g. "
                             "--serve-arg=--metadata-leader-wait-ms=0 for an A/B")
    options = parser.parse_args()
    trace = debug_logger(options.debug_log) if options.debug_log else None
    extra = [a for arg in options.serve_arg for a in arg.split("=", 1)] if options.serve_arg \
        else None
    with harness.Cluster(extra_args=extra) as cluster:
        try:
            run(cluster, options, trace)
        finally:
            if options.keep_logs:
                os.makedirs(options.keep_logs, exist_ok=True)
                for b in cluster.brokers:
                    shutil.copy(b.log_path, options.keep_logs)
    print("PASS test_failover")


def run(cluster, options, trace):
    harness.create_topic_cli(cluster, TOPIC, 1, 3)
    stream = Stream(cluster.bootstrap, trace)
    stream.thread.start()
    pauses = []
    elections = []
    rejoins = []   # ms from a restart until the broker is back in the ISR
    restarted_at = None
    for kill in range(options.kills):
        wait_isr(cluster, 3)
        if restarted_at is not None:
            time.sleep(max(0.0, restarted_at + options.settle_s - time.monotonic()))
        wait_acks_flowing(stream)   # steady state: writes are being acknowledged
        leader = harness.agreed_leader(cluster, TOPIC)
        with stream.lock:
            before = len(stream.acked)
        t_kill = time.monotonic()
        t_kill_wall = time.time()
        cluster.broker(leader).kill()
        if trace is not None:
            trace.info("KILL %d broker %d at %.3f", kill + 1, leader, t_kill_wall)
        acked_at = stream.first_ack_after(t_kill, 60)
        if acked_at is None:
            raise AssertionError("no acknowledged write within 60 s of killing leader %d"
                                 % leader)
        pause_ms = (acked_at - t_kill) * 1000
        pauses.append(pause_ms)
        elected = [election_ms(b, t_kill_wall) for b in cluster.brokers if b.id != leader]
        elected = min([e for e in elected if e is not None], default=None)
        if elected is not None:
            elections.append(elected)
        harness.log("kill %d: leader %d SIGKILLed, %d acked before, new leader elected after "
                    "%s ms, next ack after %.0f ms"
                    % (kill + 1, leader, before,
                       "?" if elected is None else "%.0f" % elected, pause_ms))
        if trace is not None:
            trace.info("RESTART broker %d", leader)
        cluster.broker(leader).start()
        restarted_at = time.monotonic()
        cluster.wait_ready(brokers=[cluster.broker(leader)])
        wait_isr(cluster, 3)   # the restarted broker caught up and is in sync again
        rejoins.append((time.monotonic() - restarted_at) * 1000)
        harness.log("broker %d restarted and back in the ISR after %.0f ms"
                    % (leader, rejoins[-1]))
    stream.stop_flag = True
    stream.thread.join(timeout=180)
    assert not stream.thread.is_alive(), "producer did not finish flushing"
    acked = dict(stream.acked)
    assert acked, "nothing acknowledged"
    by_offset = read_back(cluster, max(acked.values()))
    lost = [(s, o) for s, o in acked.items() if by_offset.get(o) != s]
    duplicates = len(by_offset) - len(set(by_offset.values()))
    harness.log("acked %d, read %d, lost %d, duplicates %d, failed deliveries %d"
                % (len(acked), len(by_offset), len(lost), duplicates, stream.failed))
    assert not lost, "acknowledged messages missing: %s" % lost[:10]
    ordered = sorted(pauses)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    print("FAILOVER kills=%d settle_s=%g pause_ms min=%.0f median=%.0f p99=%.0f max=%.0f all=%s "
          "election_ms=%s rejoin_ms=%s lost=%d local_produce_refusals=%d" % (
              len(pauses), options.settle_s, min(pauses), statistics.median(pauses), p99,
              max(pauses),
              [round(p) for p in pauses], [round(e) for e in elections],
              [round(r) for r in rejoins], len(lost),
              stream.local_refusals), flush=True)


if __name__ == "__main__":
    sys.exit(main())
