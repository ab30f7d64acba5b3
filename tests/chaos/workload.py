"""The chaos workload: rate-bounded producers whose every message is a unique recorded value,
consumers that record every read, and a monitor of Raft terms and committed offsets.

Two modes, chosen from what the brokers advertise in ApiVersions:
- idempotent producers (InitProducerId, key 22) with librdkafka's retries, else
  non-idempotent producers with retries disabled in the library (message.send.max.retries=0),
  so that the library itself cannot write a value twice; a failed delivery is "indeterminate"
  (it may or may not have been written);
- consumer-group members that commit offsets (JoinGroup 11, SyncGroup 14, Heartbeat 12,
  OffsetCommit 8, OffsetFetch 9, FindCoordinator 10), else assign()-based consumers that track
  their own positions."""

import collections
import os
import re
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition

import cluster as chaos_cluster
import harness  # noqa: E402  (tests/integration, on the path through cluster)

log = chaos_cluster.log

GROUP_APIS = (8, 9, 10, 11, 12, 14)
IDEMPOTENT_API = 22
GROUP_ID = "chaos-group"

# A producer gives a message up after this long (librdkafka message.timeout.ms).
MESSAGE_TIMEOUT_S = 15.0
# librdkafka's log tags of its "metadata" and "topic" debug contexts: kept apart from the
# idempotence (eos) tag counts; their routing lines go to ProducerWorker.route_trail.
ROUTE_TAGS = frozenset(("METADATA", "TOPICUPD", "BRKDELGT", "BRKMIGR", "PARTCNT", "TOPIC",
                        "TOPBRK", "LEADER", "CONTROLLERID", "CLUSTERID", "NODENAME", "NODEID",
                        "UPDATE", "TOPPARNEW", "TOPPARREMOVE", "DESP", "DESIRED", "PARTSTATE",
                        "QRYLEADER", "FASTQUERY", "NOINFO", "UAS", "BROKERUA", "FETCHADD"))


def detect_features(brokers):
    for b in brokers:
        try:
            apis = chaos_cluster.api_versions(b.kafka_port)
        except OSError:
            continue
        return {"idempotent": IDEMPOTENT_API in apis,
                "groups": all(k in apis for k in GROUP_APIS)}
    raise RuntimeError("no broker answers ApiVersions")


class ProducerWorker:
    """One producer thread. Records: sent {value: (tp, send time)}, acked {value: (tp, offset,
    ack time)}, failed {value: error}; values are `run-pN-seq`, partitions chosen round-robin
    so every value's partition is known at send time."""

    def __init__(self, index, bootstrap, partitions, rate, idempotent, run_id):
        self.index = index
        self.partitions = partitions
        self.rate = rate
        self.run_id = run_id
        config = {
            "bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "topic.metadata.refresh.interval.ms": 1000, "retry.backoff.ms": 100,
            "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 1000,
            "socket.timeout.ms": 5000, "request.timeout.ms": 5000,
            "message.timeout.ms": int(MESSAGE_TIMEOUT_S * 1000),
            "queue.buffering.max.messages": 20000,
            "client.id": "chaos-p%d" % index, "log_level": 2,
        }
        if idempotent:
            config["enable.idempotence"] = True
            # librdkafka's idempotence log (debug context "eos": PID/epoch changes, sequence
            # errors, implicit acknowledgements), low volume: its lines tell the client's own
            # decisions from the broker's answers (FINDINGS.md F7). Kept: counts per tag and
            # the first lines of the tags below.
            config["debug"] = "eos"
        else:
            config["enable.idempotence"] = False
            config["message.send.max.retries"] = 0
        # Where the client routes each partition (debug contexts "metadata,topic"): which broker
        # answered each Metadata request and the leader it named, and each move of a partition
        # to another broker (route_trail). A delivery-failure burst is then explained from both
        # sides: the brokers' error answers and the client's beliefs (report.route_summary).
        config["debug"] = ",".join(filter(None, [config.get("debug"), "metadata,topic"]))
        config["logger"] = self.EosLog(self)
        config["error_cb"] = self.on_error
        self.lock = threading.Lock()
        self.eos_tags = {}       # librdkafka eos debug tag -> count
        self.eos_lines = []      # first lines of the tags in EOS_KEEP
        self.eos_trail = []      # (time, tag, line) of every EOS_TRAIL line, bounded
        self.failed_at = {}      # value -> time its delivery failure was reported
        self.no_offset_acks = []  # (value, tp, ack time) of acknowledgements without offset
        self.offsetless_by_client = []  # (time, tp) of IMPLICITACK/DUPSEQ client log lines
        self.fatal_errors = []   # (time, text): the library gave up (FINDINGS.md F6)
        # (time, kind, (topic, partition), a, b): ("said", tp, answering broker, leader named)
        # per partition of each Metadata answer, ("moved", tp, from broker, to broker).
        self.route_trail = collections.deque(maxlen=self.ROUTE_TRAIL_MAX)
        self.metadata_from = None  # the broker whose Metadata answer is being logged
        self.config = config
        self.producer = Producer(config)
        self.sent = {}
        self.acked = {}
        self.failed = {}
        self.local_refusals = 0
        self.errors_by_code = {}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="producer%d" % index)

    # librdkafka eos debug tags worth keeping a few lines of: an implicit acknowledgement (a
    # message whose own request failed or timed out is reported delivered, without an offset,
    # because a later batch of the same producer and partition was acknowledged: the broker's
    # sequence check implies the earlier ones are in the log), a duplicate-sequence answer
    # (also delivered without an offset), sequence errors, epoch bumps.
    EOS_KEEP = ("IMPLICITACK", "DUPSEQ", "ERRSEQ", "REQERR", "DRAINBUMP", "FATALERR")
    EOS_LINES_MAX = 40
    # Every line of the tags that change the producer's id, epoch or sequences (drains before
    # an epoch bump and their reason, new ids, sequence resets): a duplicate is explained (or
    # not) by the bump before its second copy (report.print_duplicate_detail, FINDINGS.md F9).
    EOS_TRAIL = EOS_KEEP + ("DRAIN", "NEWPID", "RESETSEQ")
    EOS_TRAIL_MAX = 50000

    ROUTE_TRAIL_MAX = 300000

    RECEIVED = re.compile(r"/(\d+): ===== Received metadata")
    LEADER = re.compile(r"Topic (\S+) partition (\d+) Leader (-?\d+)")
    MIGRATED = re.compile(r"Topic (\S+) \[(\d+)\]: migrating from broker (-?\d+) to (-?\d+)")

    def note_route(self, now, line):
        """Keeps a librdkafka metadata/topic debug line if it tells where a partition goes
        (caller holds the lock). True if the line was one of those contexts' lines."""
        m = ProducerWorker.RECEIVED.search(line)
        if m:
            self.metadata_from = int(m.group(1))
            return True
        m = ProducerWorker.LEADER.search(line)
        if m:
            self.route_trail.append((now, "said", (m.group(1), int(m.group(2))),
                                     self.metadata_from, int(m.group(3))))
            return True
        m = ProducerWorker.MIGRATED.search(line)
        if m:
            self.route_trail.append((now, "moved", (m.group(1), int(m.group(2))),
                                     int(m.group(3)), int(m.group(4))))
            return True
        return False

    class EosLog:
        """A logging.Logger stand-in for confluent-kafka's `logger` option."""

        def __init__(self, worker):
            self.worker = worker

        def log(self, level, fmt, *args):
            del level
            line = harness.client_log_text(fmt, args)
            # confluent-kafka calls log(level, "%s [%s] %s", facility, client name, text).
            tag = str(args[0]) if args else "?"
            w = self.worker
            with w.lock:
                if tag in ROUTE_TAGS:
                    w.note_route(time.monotonic(), line)
                    return
                w.eos_tags[tag] = w.eos_tags.get(tag, 0) + 1
                # The tag names are librdkafka's; the text is matched too in case a version
                # logs an implicit acknowledgement under another tag.
                offsetless = tag in ("IMPLICITACK", "DUPSEQ") or \
                    "implicit" in line.lower() or "duplicate sequence" in line.lower()
                now = time.monotonic()
                if (tag in w.EOS_KEEP or offsetless) and len(w.eos_lines) < w.EOS_LINES_MAX:
                    w.eos_lines.append("%.3f %s" % (now, line[:400]))
                if tag in w.EOS_TRAIL and len(w.eos_trail) < w.EOS_TRAIL_MAX:
                    w.eos_trail.append((now, tag, line[:400]))
                if offsetless:
                    # "... <topic> [<partition>] ...": the partition whose messages the
                    # client reports delivered without an offset.
                    m = re.search(r"(\S+) \[(\d+)\]", line)
                    if m:
                        w.offsetless_by_client.append(
                            (time.monotonic(), (m.group(1), int(m.group(2)))))

    def on_delivery(self, err, msg):
        now = time.monotonic()
        value = msg.value().decode()
        with self.lock:
            if err is not None:
                self.failed[value] = err.name()
                self.failed_at[value] = now
                self.errors_by_code[err.name()] = self.errors_by_code.get(err.name(), 0) + 1
            else:
                self.acked[value] = ((msg.topic(), msg.partition()), msg.offset(), now)
                if msg.offset() is None or msg.offset() < 0:
                    self.no_offset_acks.append((value, (msg.topic(), msg.partition()), now))

    def on_error(self, err):
        if err.fatal():
            self.fatal_pending = err

    fatal_pending = None
    FATAL_REPLACEMENTS_MAX = 50

    def replace_after_fatal(self, err):
        """A fatal error of the idempotent producer (librdkafka 2.0.2's sequence
        desynchronization after a possibly-persisted error, librdkafka PR #4438, fixed in 2.3.0:
        FINDINGS.md F6) ends that producer instance: its queued messages get _FATAL delivery
        errors (indeterminate). The worker records it and goes on with a new instance (a new
        producer id), as an application would; bounded so a broker that keeps causing it
        cannot loop the run."""
        now = time.monotonic()
        with self.lock:
            self.fatal_errors.append((now, str(err)))
        log("producer %d: fatal client error, replaced by a new producer: %s" % (self.index,
                                                                                  err))
        old, self.producer = self.producer, None
        try:
            old.flush(5)   # delivers the failure reports of what it still held
        except KafkaException:
            pass
        if len(self.fatal_errors) > self.FATAL_REPLACEMENTS_MAX:
            self.stop_flag.set()
            return
        self.producer = Producer(self.config)

    def poll(self, timeout):
        """producer.poll(); a fatal client error it raises is replaced by a new producer at the
        top of the loop (every poll: a fatal error raised by the one after a full queue once
        ended the producer thread of a 2 h run)."""
        try:
            self.producer.poll(timeout)
        except KafkaException as e:
            if not e.args[0].fatal():
                raise
            self.fatal_pending = e.args[0]

    def run(self):
        seq = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stop_flag.is_set():
            if self.fatal_pending is not None:
                err, self.fatal_pending = self.fatal_pending, None
                self.replace_after_fatal(err)
                continue
            now = time.monotonic()
            if now < next_at:
                self.poll(min(next_at - now, 0.05))
                continue
            next_at = max(next_at + interval, now - 1.0)  # no bursts after a stall
            topic, partition = self.partitions[seq % len(self.partitions)]
            value = "%s-p%d-%d" % (self.run_id, self.index, seq)
            try:
                self.producer.produce(topic, value=value.encode(), partition=partition,
                                      on_delivery=self.on_delivery)
            except BufferError:
                self.poll(0.1)
                continue
            except KafkaException as e:
                if e.args[0].fatal():
                    self.fatal_pending = e.args[0]
                    continue
                self.local_refusals += 1   # refused before sending: not "sent"
                if self.local_refusals <= 3:
                    log("producer %d: produce() refused locally: %s" % (self.index, e))
                self.poll(0.1)
                continue
            with self.lock:
                self.sent[value] = ((topic, partition), now)
            seq += 1
            self.poll(0)
        if self.producer is None:
            return
        remaining = self.producer.flush(30)
        if remaining:
            log("producer %d: %d messages still undelivered after flush" % (self.index,
                                                                          remaining))

    def ack_times(self):
        """[(tp, send time, ack time)] of acknowledged writes."""
        with self.lock:
            return [(tp, self.sent[v][1], t) for v, (tp, _, t) in self.acked.items()]


class ConsumerWorker:
    """One consumer thread. Records reads [(session, tp, offset, value)]; a session starts at
    every (re)assignment. Group mode also commits every second and records the commits."""

    def __init__(self, index, bootstrap, topics, partitions, group_mode):
        self.index = index
        self.group_mode = group_mode
        self.topics = topics
        self.partitions = partitions
        config = {"bootstrap.servers": bootstrap, "enable.auto.commit": False,
                  "auto.offset.reset": "error", "client.id": "chaos-c%d" % index,
                  "topic.metadata.refresh.interval.ms": 1000, "socket.timeout.ms": 5000,
                  "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 1000,
                  "fetch.wait.max.ms": 200, "isolation.level": "read_uncommitted",
                  "log_level": 2}
        config["group.id"] = GROUP_ID if group_mode else "chaos-unused-%d" % index
        if group_mode:
            config["session.timeout.ms"] = 10000
            config["heartbeat.interval.ms"] = 1000
        self.consumer = Consumer(config)
        self.lock = threading.Lock()
        self.reads = []
        self.session = 0
        self.commits = []        # (time, tp, offset) acknowledged commits
        self.commit_failures = 0
        self.errors = {}
        self.positions = {}      # tp -> next offset
        # OFFSET_OUT_OF_RANGE for a position this consumer reached by reading (Kafka: out of
        # range only below the log start or above the log end): (time, tp, position). The
        # consumer then seeks back to its own position instead of resetting.
        self.out_of_range = []
        self.pending_seeks = {}  # tp -> time to seek back to our position
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="consumer%d" % index)

    def on_assign(self, consumer, partitions):
        with self.lock:
            self.session += 1
            for p in partitions:
                self.positions.pop((p.topic, p.partition), None)

    def on_revoke(self, consumer, partitions):
        self.commit()
        with self.lock:
            self.session += 1
            for p in partitions:   # no longer ours: never commit them again
                self.positions.pop((p.topic, p.partition), None)

    def commit(self):
        with self.lock:
            positions = dict(self.positions)
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            result = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException:
            self.commit_failures += 1
            return
        now = time.monotonic()
        with self.lock:
            for tp in result or []:
                if tp.error is None and tp.offset >= 0:
                    self.commits.append((now, (tp.topic, tp.partition), tp.offset))

    def run(self):
        if self.group_mode:
            self.consumer.subscribe(self.topics, on_assign=self.on_assign,
                                    on_revoke=self.on_revoke)
        else:
            self.consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING)
                                  for t, p in self.partitions])
            self.session = 1
        last_commit = time.monotonic()
        while not self.stop_flag.is_set():
            msgs = self.consumer.consume(500, 0.2)
            with self.lock:
                for m in msgs:
                    if m.error():
                        code = m.error().name()
                        if os.environ.get("CHAOS_DEBUG_CONSUMER"):
                            log("consumer %d: %s %s" % (self.index, code, m.error().str()))
                        if m.error().code() == KafkaError._AUTO_OFFSET_RESET:
                            tp = (m.topic(), m.partition())
                            # A group member's first assignment of a partition without a
                            # committed offset also lands here (auto.offset.reset=error):
                            # that is no broker answer, just where to start (the beginning).
                            if "no previously committed offset" not in m.error().str():
                                self.out_of_range.append((time.monotonic(), tp,
                                                          self.positions.get(tp, 0)))
                            self.pending_seeks[tp] = time.monotonic() + 0.2
                        elif m.error().code() != KafkaError._PARTITION_EOF:
                            self.errors[code] = self.errors.get(code, 0) + 1
                        continue
                    tp = (m.topic(), m.partition())
                    self.reads.append((self.session, tp, m.offset(), m.value().decode()))
                    self.positions[tp] = m.offset() + 1
            self.seek_back()
            if self.group_mode and time.monotonic() - last_commit >= 1.0:
                self.commit()
                last_commit = time.monotonic()
        if self.group_mode:
            self.commit()
        try:
            self.consumer.close()
        except KafkaException:
            pass

    def seek_back(self):
        now = time.monotonic()
        for tp, at in list(self.pending_seeks.items()):
            if at > now:
                continue
            with self.lock:
                position = self.positions.get(tp, OFFSET_BEGINNING)
            try:
                self.consumer.seek(TopicPartition(tp[0], tp[1], position))
                del self.pending_seeks[tp]
                continue
            except KafkaException as e:
                state_error = e.args[0].code() == KafkaError._STATE
            if state_error and self.reassign():
                return
            self.pending_seeks[tp] = now + 0.5   # not fetching yet: retry

    def reassign(self):
        """librdkafka stops fetching a partition after an auto.offset.reset=error answer and then
        refuses seek() (_STATE); a group member's first assignment of a partition without a
        committed offset gets there too. assign() (the eager protocol allows no incremental
        change) of the whole assignment restarts it: each partition at this consumer's own
        position, the partitions waiting for a seek without one at the beginning, the others
        at the committed offset. A new session: positions restart from there."""
        try:
            current = self.consumer.assignment()
            with self.lock:
                parts = []
                for p in current:
                    tp = (p.topic, p.partition)
                    if tp in self.positions:
                        parts.append(TopicPartition(p.topic, p.partition, self.positions[tp]))
                    elif tp in self.pending_seeks:
                        parts.append(TopicPartition(p.topic, p.partition, OFFSET_BEGINNING))
                    else:
                        parts.append(TopicPartition(p.topic, p.partition))
                self.consumer.assign(parts)
                self.session += 1
                self.pending_seeks.clear()
            return True
        except KafkaException as e:
            if os.environ.get("CHAOS_DEBUG_CONSUMER"):
                log("consumer %d: re-assign: %s" % (self.index, e))
            return False

    def position_of(self, tp):
        with self.lock:
            return self.positions.get(tp, -1)


class Monitor:
    """Every 0.5 s: each live broker's Raft term per partition (Metadata v7 leader epoch; the
    max over brokers is the partition's term) and, in group mode, the group's committed
    offsets as OffsetFetch returns them."""

    def __init__(self, cluster, partitions, group_mode):
        self.cluster = cluster
        self.partitions = partitions
        self.group_mode = group_mode
        self.lock = threading.Lock()
        self.terms = {}          # tp -> highest term seen
        self.term_log = []       # (time, tp, term) on every increase
        self.committed_log = []  # (time, tp, offset)
        self.fetcher = None
        if group_mode:
            self.fetcher = Consumer({"bootstrap.servers": cluster.bootstrap,
                                     "group.id": GROUP_ID, "enable.auto.commit": False,
                                     "log_level": 2})
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="monitor")

    def sample_terms(self):
        now = time.monotonic()
        for view in self.cluster.epochs().values():
            for tp in self.partitions:
                if tp not in view:
                    continue
                term = view[tp][1]
                with self.lock:
                    if term > self.terms.get(tp, -1):
                        self.terms[tp] = term
                        self.term_log.append((now, tp, term))

    def sample_commits(self):
        try:
            got = self.fetcher.committed([TopicPartition(t, p) for t, p in self.partitions],
                                         timeout=2)
        except KafkaException:
            return
        now = time.monotonic()
        with self.lock:
            for tp in got:
                if tp.error is None and tp.offset >= 0:
                    self.committed_log.append((now, (tp.topic, tp.partition), tp.offset))

    def run(self):
        while not self.stop_flag.is_set():
            self.sample_terms()
            if self.fetcher is not None:
                self.sample_commits()
            self.stop_flag.wait(0.5)
        if self.fetcher is not None:
            self.fetcher.close()

    def terms_now(self):
        self.sample_terms()
        with self.lock:
            return dict(self.terms)


def final_read(bootstrap, partitions, deadline_s=120):
    """Reads every partition from its start to its high watermark (assign(), no group).
    Returns ({tp: [(offset, value)]}, {tp: high watermark}, incomplete tps)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-final",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.max.bytes": 8 << 20, "enable.partition.eof": True,
                         "log_level": 2})
    ends = {}
    deadline = time.monotonic() + deadline_s
    for tp in partitions:
        while True:
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=5)
                ends[tp] = high
                break
            except KafkaException as e:
                if time.monotonic() > deadline:
                    raise RuntimeError("final read: no high watermark for %s: %s" % (tp, e))
                time.sleep(0.5)
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in partitions])
    out = {tp: [] for tp in partitions}
    pending = {tp for tp in partitions if ends[tp] > 0}
    while pending and time.monotonic() < deadline:
        for m in consumer.consume(1000, 0.5):
            tp = (m.topic(), m.partition())
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF and m.offset() >= ends[tp]:
                    pending.discard(tp)
                continue
            out[tp].append((m.offset(), m.value().decode()))
            if m.offset() + 1 >= ends[tp]:
                pending.discard(tp)
    consumer.close()
    return out, ends, sorted(pending)
