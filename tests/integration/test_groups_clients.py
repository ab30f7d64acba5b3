#!/usr/bin/python3
"""Consumer groups with kafka-python 2.0.2 and kafkajs 2.2.4 on a 3-broker raftmq cluster: each
client's group consumes a 3-partition topic to the end and commits; `raftmq group describe`
then shows every partition committed at its log end (zero lag), `raftmq group list` lists both
groups in state Empty (ListGroups v4), and `raftmq group reset-offsets` moves an Empty group's
offsets (earliest: lag = all, latest: lag 0; a group with live members refuses it)."""

import json
import os
import re
import subprocess
import sys
import time

import groups_util as gu
import harness

NODE_DIR = os.path.join(harness.HERE, "node")
PARTITIONS = 3
COUNT = 900


def cli(cluster, *args, check=True):
    out = subprocess.run([cluster.binary, "group", *args, "--bootstrap", cluster.bootstrap],
                         capture_output=True, timeout=120)
    text = out.stdout.decode()
    if check and out.returncode != 0:
        raise AssertionError("raftmq group %s failed: %s %s" % (args, text, out.stderr.decode()))
    return out.returncode, text, out.stderr.decode()


def describe_rows(cluster, group):
    """{partition: (committed, log end, lag)} and the total lag, from `raftmq group describe`."""
    _, text, _ = cli(cluster, "describe", group)
    rows = {}
    total = None
    for line in text.splitlines():
        m = re.match(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s", line + " ")
        if m:
            rows[int(m.group(2))] = (int(m.group(3)), int(m.group(4)), int(m.group(5)))
        m = re.match(r"^total lag (\d+)", line)
        if m:
            total = int(m.group(1))
    return rows, total, text


def expect_zero_lag(cluster, group):
    rows, total, text = describe_rows(cluster, group)
    if sorted(rows) != list(range(PARTITIONS)) or total != 0 or any(
            c != end or lag != 0 for c, end, lag in rows.values()):
        raise AssertionError("%s: expected zero lag on every partition:\n%s" % (group, text))
    harness.log(group, "describe: zero lag on", len(rows), "partitions")


def kafka_python_group(cluster, topic, group):
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(topic, group_id=group, bootstrap_servers=cluster.bootstrap.split(","),
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=10000, heartbeat_interval_ms=1000,
                             )
    seen = set()
    deadline = time.monotonic() + 90
    # poll() advances the positions past every record it returns (breaking out of the
    # iterator would leave the last record's position behind), then commit() commits them.
    while len(seen) < COUNT and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for m in records:
                # kafka-python 2.0.2 hands out the records of control batches too (raftmq
                # stores Raft's no-ops as those): count the produced data only.
                if m.value and b":" in m.value:
                    seen.add((m.partition, m.offset))
    consumer.commit()
    consumer.close()
    if len(seen) != COUNT:
        raise AssertionError("kafka-python consumed %d of %d" % (len(seen), COUNT))
    harness.log("kafka-python group consumed", len(seen), "and committed")


def kafkajs_group(cluster, topic, group):
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "kafkajs")):
        raise AssertionError("kafkajs not installed; run `npm ci` in tests/integration/node")
    env = dict(os.environ, BOOTSTRAP=cluster.bootstrap, TOPIC=topic, GROUP=group,
               EXPECTED=str(COUNT))
    out = subprocess.run(["node", "groups.js"], cwd=NODE_DIR, env=env, capture_output=True,
                         timeout=180)
    if out.returncode != 0:
        raise AssertionError("kafkajs group failed: %s" % out.stderr.decode(errors="replace"))
    result = json.loads(out.stdout)
    if result["unique"] != COUNT:
        raise AssertionError("kafkajs consumed %s" % result)
    harness.log("kafkajs group consumed", result["unique"], "and committed")


def main():
    # Raft RPC ports below the ephemeral range (32768+): outgoing connections elsewhere on the
    # machine cannot hold them.
    with harness.Cluster(rpc_base=30092) as cluster:
        gu.wait_offsets_topic(cluster)
        topic = "events"
        harness.create_topic_cli(cluster, topic, partitions=PARTITIONS, replication=3)
        gu.produce_numbered(cluster.bootstrap, topic, PARTITIONS, 0, COUNT)
        kafka_python_group(cluster, topic, "kp-group")
        expect_zero_lag(cluster, "kp-group")
        kafkajs_group(cluster, topic, "js-group")
        expect_zero_lag(cluster, "js-group")
        _, listing, _ = cli(cluster, "list")
        for g in ("kp-group", "js-group"):
            # ListGroups v4 (librdkafka's ListConsumerGroups) carries each group's state; every
            # member of both groups has left.
            if not re.search(r"^%s\s+Empty\s*$" % g, listing, re.M):
                raise AssertionError("group list lacks %s in state Empty:\n%s" % (g, listing))
        cli(cluster, "reset-offsets", "kp-group", "--topic", topic, "--to-earliest")
        rows, total, text = describe_rows(cluster, "kp-group")
        # Lag counts offsets, and Raft's no-ops occupy offsets too: lag = log end here.
        if sorted(rows) != list(range(PARTITIONS)) or total < COUNT or any(
                c != 0 or lag != end for c, end, lag in rows.values()):
            raise AssertionError("after reset to earliest (expected offset 0, lag = log end):\n%s"
                                 % text)
        cli(cluster, "reset-offsets", "kp-group", "--topic", topic, "--to-latest")
        expect_zero_lag(cluster, "kp-group")
        cli(cluster, "reset-offsets", "kp-group", "--topic", topic, "--to-offset", "1")
        rows, _, text = describe_rows(cluster, "kp-group")
        if any(c != 1 for c, _, _ in rows.values()):
            raise AssertionError("after reset to offset 1:\n%s" % text)
        # A group with a live member refuses an external reset (UNKNOWN_MEMBER_ID).
        shared = gu.Shared()
        live = gu.Member("live", cluster.bootstrap, "js-group", topic, shared)
        live.start()
        gu.wait_partitioned([live], PARTITIONS, shared)
        rc, _, err = cli(cluster, "reset-offsets", "js-group", "--topic", topic, "--to-earliest",
                         check=False)
        live.stop()
        if rc == 0:
            raise AssertionError("reset-offsets of a group with a live member succeeded")
        harness.log("reset of a live group refused:", err.strip().splitlines()[-1])
    print("PASS test_groups_clients")


if __name__ == "__main__":
    sys.exit(main())
