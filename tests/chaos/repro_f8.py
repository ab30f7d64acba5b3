#!/usr/bin/python3
"""Reproduction of FINDINGS.md F8 (about a minute, 3 brokers on loopback, ports moved by
RAFTMQ_TEST_PORT_OFFSET + 70): a follower replica whose tail segment has one flipped bit in
an entry followed by valid entries is never re-opened by its broker, so it never catches up.

    RAFTMQ_BIN=build/bin/raftmq tests/chaos/repro_f8.py

Steps: a 1-partition RF-3 topic gets 400 acknowledged writes; a follower is SIGKILLed, one bit
in the middle of its newest segment of the partition is flipped, the follower restarts while
writes go on. Exit 0 if the replica is back in the leader's ISR within 20 s (fixed), 1 if not
(F8 present; then the harness's operator repair, a cut at the damaged entry, is shown to
work), 2 on a setup failure."""

import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import chaos  # noqa: E402
import cluster as chaos_cluster  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

TOPIC = "f8"


def writer(bootstrap, stop):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "log_level": 0})
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            p.produce(TOPIC, value=b"after the flip", partition=0)
        except BufferError:
            pass
        p.poll(0.02)
    p.flush(10)


def main():
    offset = int(os.environ.get("RAFTMQ_TEST_PORT_OFFSET", "0") or 0) + 70
    c = chaos_cluster.ChaosCluster(3, 9500 + offset, 19500 + offset)
    stop = threading.Event()
    t = None
    try:
        c.start()
        parts = chaos.create_topics(c, [(TOPIC, 1, 3)])
        if not chaos.wait_for(lambda: len(c.leaders(parts)) == 1, 60):
            print("setup: no leader")
            return 2
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 0,
                      "log_level": 0})
        for i in range(400):
            p.produce(TOPIC, value=b"x" * 100 + str(i).encode(), partition=0)
            if i % 50 == 0:
                p.flush(10)
        if p.flush(30):
            print("setup: writes not acknowledged")
            return 2
        leader = c.leaders(parts)[(TOPIC, 0)]
        victim = next(b for b in c.brokers if b.id != leader)
        victim.kill()
        seg = c.newest_segment(victim, random.Random(1), (TOPIC, 0))
        with open(seg, "r+b") as f:
            data = bytearray(f.read())
            at = len(data) // 2   # mid-segment: valid entries follow the damaged one
            data[at] ^= 0x04
            f.seek(0)
            f.write(bytes(data))
        print("broker %d: flipped bit 2 of byte %d of %s (%d bytes)" % (victim.id, at, seg,
                                                                       len(data)))
        t = threading.Thread(target=writer, args=(c.bootstrap, stop), daemon=True)
        t.start()
        victim.start()
        time.sleep(3)
        healed = chaos.wait_for(lambda: not c.out_of_sync(parts), 20, 1.0)
        with open(victim.log_path, errors="replace") as f:
            errors = [line for line in f if "cannot open %s-0" % TOPIC in line]
        print("replica back in the leader's ISR by itself within 20 s: %s" % healed)
        if errors:
            print("broker log (%d such lines): %s" % (len(errors), errors[0].strip()))
        if healed:
            return 0
        victim.kill()
        print("operator repair (cut at the damaged entry): %s" %
              chaos_cluster.cut_unopenable_segments(victim))
        victim.start()
        print("in the ISR after the cut: %s" % chaos.wait_for(
            lambda: not c.out_of_sync(parts), 30, 1.0))
        return 1
    finally:
        stop.set()
        if t is not None:
            t.join(20)
        c.shutdown()
        c.cleanup(False)


if __name__ == "__main__":
    sys.exit(main())
