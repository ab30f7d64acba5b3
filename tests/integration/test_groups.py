#!/usr/bin/python3
"""Consumer groups with librdkafka (confluent-kafka) on a 3-broker raftmq cluster:
two members split a 6-partition topic, a third joins, one leaves; after each rebalance every
partition is owned by exactly one member. Members commit synchronously (after each batch and on
revocation); over the group's life, and across a restart of the whole group, every message is
delivered exactly once (nothing committed is delivered again, nothing is skipped). Run once
with the eager `range` assignor and once with `cooperative-sticky` (incremental rebalances).
Prints the rebalance times (subscribe -> first message) it measured."""

import sys
import time

import groups_util as gu
import harness

PARTITIONS = 6
BATCH = 600


def run_group(cluster, strategy, topic):
    group = "g-" + strategy
    shared = gu.Shared()
    harness.create_topic_cli(cluster, topic, partitions=PARTITIONS, replication=3)
    total = 0
    gu.produce_numbered(cluster.bootstrap, topic, PARTITIONS, total, BATCH)
    total += BATCH
    times = {}
    a = gu.Member("a", cluster.bootstrap, group, topic, shared, strategy)
    b = gu.Member("b", cluster.bootstrap, group, topic, shared, strategy)
    a.start()
    b.start()
    owners = gu.wait_partitioned([a, b], PARTITIONS, shared)
    harness.log(strategy, "two members:", owners)
    gu.wait_consumed(shared, total)
    times["first two members: to first message (slower)"] = max(
        t for t in (a.join_to_first_fetch(), b.join_to_first_fetch()) if t is not None)

    c = gu.Member("c", cluster.bootstrap, group, topic, shared, strategy)
    c.start()
    gu.produce_numbered(cluster.bootstrap, topic, PARTITIONS, total, BATCH)
    total += BATCH
    owners = gu.wait_partitioned([a, b, c], PARTITIONS, shared)
    harness.log(strategy, "three members:", owners)
    gu.wait_consumed(shared, total)
    # Its partitions' backlog is usually consumed by a and b before c is assigned, so the
    # join of c is timed to its assignment (JoinGroup + SyncGroup rounds, every member's).
    times["third member joins: to assignment"] = c.join_to_assignment()

    a.stop()  # leaves (LeaveGroup) after committing its partitions
    left_at = time.monotonic()
    gu.produce_numbered(cluster.bootstrap, topic, PARTITIONS, total, BATCH)
    total += BATCH
    owners = gu.wait_partitioned([b, c], PARTITIONS, shared)
    times["after a member leaves (until owned)"] = time.monotonic() - left_at
    harness.log(strategy, "after a leaves:", owners)
    gu.wait_consumed(shared, total)
    b.stop()
    c.stop()

    # The whole group restarts: it resumes at the committed offsets.
    gu.produce_numbered(cluster.bootstrap, topic, PARTITIONS, total, BATCH)
    total += BATCH
    d = gu.Member("d", cluster.bootstrap, group, topic, shared, strategy)
    d.start()
    gu.wait_consumed(shared, total)
    time.sleep(1.0)  # anything delivered twice would arrive now
    times["restarted group: to first message"] = d.join_to_first_fetch()
    d.stop()
    failures = sum(m.commit_failures for m in (a, b, c, d))
    if failures:
        raise AssertionError("%d commits failed" % failures)
    gu.check_exactly_once(shared, gu.data_offsets(cluster.bootstrap, topic, PARTITIONS))
    with shared.lock:
        n = sum(len(v) for v in shared.delivered.values())
    if n != total:
        raise AssertionError("delivered %d messages, produced %d" % (n, total))
    for what, t in times.items():
        harness.log("REBALANCE %s %s: %s" % (strategy, what,
                                             "n/a" if t is None else "%.3f s" % t))
    return times


def main():
    # Raft RPC ports below the ephemeral range (32768+): outgoing connections elsewhere on the
    # machine cannot hold them.
    with harness.Cluster(rpc_base=30092) as cluster:
        gu.wait_offsets_topic(cluster)
        for strategy in ("range", "cooperative-sticky"):
            run_group(cluster, strategy, "orders-" + strategy)
            harness.log("group with", strategy, "ok")
    print("PASS test_groups")


if __name__ == "__main__":
    sys.exit(main())
