"""Nemesis faults for the chaos suite. Each episode: inject a fault, hold it, heal it, wait for
the cluster to recover, then compare the Raft terms at the heal with the terms a few seconds
after recovery (a healed partition or a restarted broker must cause no extra election:
PreVote and CheckQuorum, thesis §9.6). Every random choice comes from the run's seeded Random.
"""

import subprocess
import time

import cluster as chaos_cluster

log = chaos_cluster.log

KINDS = ["kill-leader", "kill-random", "kill-minority", "pause", "partition-majority",
         "partition-leader", "partition-bridge", "partition-asymmetric", "crash-all",
         "disk-full", "corrupt", "corrupt-then-kill-leader", "move"]
ALIASES = {
    "all": KINDS,
    "kill": ["kill-leader", "kill-random", "kill-minority"],
    "partition": ["partition-majority", "partition-leader", "partition-bridge",
                  "partition-asymmetric"],
}
CUT_MODES = ["refuse", "drop", "blackhole"]
SETTLE_S = 3.0


def parse_kinds(text):
    kinds = []
    for word in text.split(","):
        word = word.strip()
        if not word:
            continue
        if word in ALIASES:
            kinds += ALIASES[word]
        elif word in KINDS:
            kinds.append(word)
        else:
            raise ValueError("unknown nemesis '%s' (kinds: %s; groups: %s)" % (
                word, ", ".join(KINDS), ", ".join(ALIASES)))
    return list(dict.fromkeys(kinds))


class Episode:
    def __init__(self, number, kind):
        self.number = number
        self.kind = kind
        self.description = ""
        self.brokers = []          # brokers the fault touched
        self.partitions = []       # partitions with a replica on them (availability)
        self.t_inject = None
        self.t_heal = None
        self.recovered = None      # seconds from heal to a healthy cluster, None if never
        self.terms_at_heal = {}
        self.terms_after = {}
        self.leaders_at_heal = {}
        self.leaders_after = {}
        self.inherited = None      # what was already wrong when the episode started
        self.extra_elections = []  # (tp, term at heal, term after)
        self.quorumless_at_heal = set()  # partitions without a live majority at the heal
        self.unelected_at_heal = set()   # old leader down, no new term yet at the heal
        self.down_at_heal = set()        # brokers killed or paused when the heal began
        self.check_elections = True
        self.notes = []

    def summary(self):
        rec = "recovered in %.1fs" % self.recovered if self.recovered is not None else \
            "NOT RECOVERED"
        extra = (" EXTRA LEADER CHANGE %s" % self.extra_elections) if self.extra_elections \
            else ""
        return "#%d %s: %s; %s%s%s" % (self.number, self.kind, self.description, rec, extra,
                                       "".join("; " + n for n in self.notes))


class Nemesis:
    def __init__(self, cluster, monitor, partitions, rng, recovery_timeout_s):
        self.recovery_timeout_s = recovery_timeout_s
        self.cluster = cluster
        self.monitor = monitor
        self.partitions = partitions
        self.rng = rng
        self.replicas = cluster.replicas(partitions)
        self.skipped = {}      # kind -> reason
        self.crashes = []      # (broker id, exit code, log tail) of exits nobody caused
        self.can_move = chaos_cluster.binary_supports_partition_move(cluster.binary)
        if not cluster.disks_mounted:
            self.skipped["disk-full"] = ("no size-limited tmpfs per broker (mount failed): "
                                         "disk-full skipped")
        if cluster.direct:
            for kind in ALIASES["partition"]:
                self.skipped[kind] = "--no-proxy: brokers dial each other, no link to cut"
        if not self.can_move:
            self.skipped["move"] = ("this raftmq has no `partition move` command: "
                                    "membership changes skipped")

    # ---- helpers ----

    def touched(self, brokers):
        ids = {b.id for b in brokers}
        return [tp for tp in self.partitions if ids & set(self.replicas.get(tp, []))]

    def random_leader(self):
        leaders = self.cluster.leaders(self.partitions)
        if not leaders:
            return self.rng.choice(self.cluster.brokers), None
        tp = self.rng.choice(sorted(leaders))
        return self.cluster.broker(leaders[tp]), tp

    def cut(self, pairs, mode):
        for src, dst in pairs:
            self.cluster.set_link(src, dst, mode)

    def both_ways(self, group_a, group_b):
        return [(a.id, b.id) for a in group_a for b in group_b] + \
               [(b.id, a.id) for a in group_a for b in group_b]

    def poll_crashes(self):
        """A broker that exited by itself is a finding: record it, then restart it (as a
        supervisor would) so that the run goes on."""
        for b in self.cluster.brokers:
            if b.check_crash():
                self.crashes.append((b.id, b.proc.returncode, b.tail(60)))
                log("broker %d crashed (exit %s); log tail:\n%s" % (b.id, b.proc.returncode,
                                                                    b.tail(60)))
                b.start()

    def sleep(self, seconds):
        deadline = time.monotonic() + seconds
        while True:
            self.poll_crashes()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.25))

    def healthy(self):
        if any(not b.alive() or b.paused for b in self.cluster.brokers):
            return False
        if not self.cluster.wait_kafka_up(self.cluster.brokers, 2):
            return False
        # Every broker serves every partition (a restarted broker first answers Metadata
        # before it caught up with the controller) and every partition has a leader.
        views = self.cluster.epochs()
        if len(views) < len(self.cluster.brokers) or not all(
                tp in v for v in views.values() for tp in self.partitions):
            return False
        # ... and every replica is back in its leader's ISR (caught up) ...
        if self.cluster.out_of_sync(self.partitions):
            return False
        # ... and every broker's controller replica runs and follows the one controller
        # leader (a replica stopped by a storage error would leave the controller quorum
        # short of a member without any partition showing it).
        return not self.cluster.controller_out_of_sync()

    def controller_laggards(self):
        """Brokers whose Metadata names another controller than most brokers do."""
        views = self.cluster.controller_out_of_sync()
        if not views:
            return set()
        counts = {}
        for c in views.values():
            counts[c] = counts.get(c, 0) + 1
        usual = max(counts, key=lambda c: (counts[c], c is not None))
        return {b for b, c in views.items() if c != usual}

    def quorumless(self):
        """Partitions whose running, unpaused replicas are no majority of their replicas
        (kill-minority on 5 brokers kills two of an RF=3 partition's three replicas)."""
        down = {b.id for b in self.cluster.brokers if not b.alive() or b.paused}
        if not down:
            return set()
        out = set()
        for tp, replicas in self.cluster.replicas(self.partitions).items():
            live = [r for r in replicas if r not in down]
            if 2 * len(live) <= len(replicas):
                out.add(tp)
        return out

    def unelected(self, leaders_at_inject, terms_at_inject, terms_at_heal):
        """Partitions whose leader at the injection is down at the heal while their term has
        not risen since: no replica has been elected yet (a new leader needs a new term,
        Raft 5.2), so what Metadata names at the heal is the survivors' expected winner
        (node_failover.cc), not a leader, and the election that follows is the fault's own
        failover (e.g. corrupt-then-kill-leader: the truncated follower abstains, so the
        partition waits for its old leader)."""
        down = {b.id for b in self.cluster.brokers if not b.alive() or b.paused}
        return {tp for tp, leader in leaders_at_inject.items()
                if leader in down and tp in terms_at_inject and
                terms_at_heal.get(tp, -1) <= terms_at_inject[tp]}

    def wait_healthy(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_crashes()
            if self.healthy():
                return True
            time.sleep(0.25)
        return False

    # ---- one episode ----

    def run(self, number, kind, hold_s):
        ep = Episode(number, kind)
        if kind in self.skipped:
            ep.description = "SKIPPED: " + self.skipped[kind]
            return ep
        inject = getattr(self, "inject_" + kind.replace("-", "_"))
        if not self.healthy():
            # An earlier failure to recover: this episode's recovery is not its own.
            ctrl = self.cluster.controller_out_of_sync()
            ep.inherited = self.cluster.out_of_sync(self.partitions) or \
                ({"controller named per broker": ctrl} if ctrl else "brokers down")
            ep.notes.append("started on an unhealthy cluster: %s" % (ep.inherited,))
        leaders_at_inject = self.cluster.leaders(self.partitions)
        terms_at_inject = self.monitor.terms_now()
        ep.t_inject = time.monotonic()
        heal = inject(ep)
        log("nemesis #%d %s: %s (hold %.1fs)" % (number, kind, ep.description, hold_s))
        self.sleep(hold_s)
        ep.leaders_at_heal = self.cluster.leaders(self.partitions)
        ep.terms_at_heal = self.monitor.terms_now()
        ep.quorumless_at_heal = self.quorumless()
        ep.unelected_at_heal = self.unelected(leaders_at_inject, terms_at_inject,
                                              ep.terms_at_heal)
        if ep.unelected_at_heal and ep.check_elections:
            ep.notes.append("no leader elected yet at the heal for %s (old leader down, term "
                            "unchanged: the election after it is the fault's failover)" %
                            sorted(ep.unelected_at_heal))
        if ep.quorumless_at_heal and ep.check_elections:
            ep.notes.append("no live majority at the heal for %s (their election after it is "
                            "required, not counted as extra)" % sorted(ep.quorumless_at_heal))
        ep.down_at_heal = {b.id for b in self.cluster.brokers if not b.alive() or b.paused}
        ep.t_heal = time.monotonic()
        heal()
        if not self.wait_healthy(self.recovery_timeout_s):
            self.repair(ep)
        else:
            ep.recovered = time.monotonic() - ep.t_heal
            self.sleep(SETTLE_S)
            ep.terms_after = self.monitor.terms_now()
            ep.leaders_after = self.cluster.leaders(self.partitions)
            if ep.check_elections:
                for tp in self.partitions:
                    # Only partitions that had a leader when the fault was healed: their
                    # term must not move because a broker or a link came back.
                    if tp not in ep.leaders_at_heal or tp not in ep.terms_at_heal:
                        continue
                    # No live majority at the heal: no leader could be elected until the
                    # dead replicas came back, so the election after the heal is required,
                    # not extra (a broker still claiming it is a leader that has not yet
                    # stepped down by CheckQuorum, thesis 6.2).
                    if tp in ep.quorumless_at_heal or tp in ep.unelected_at_heal:
                        continue
                    before, after = ep.terms_at_heal[tp], ep.terms_after.get(tp, -1)
                    if after > before:
                        ep.extra_elections.append((tp, before, after))
        log("nemesis %s (at heal: leaders %s terms %s; after: leaders %s terms %s)" % (
            ep.summary(), ep.leaders_at_heal, ep.terms_at_heal, ep.leaders_after,
            ep.terms_after))
        return ep

    def repair(self, ep):
        """The cluster did not recover by itself: restart the brokers whose replicas are out of
        sync (or that are down) so that the next episodes start from a whole cluster."""
        lagging = self.cluster.out_of_sync(self.partitions)
        bad = {b for missing in lagging.values() for b in missing if isinstance(b, int)}
        bad |= {b.id for b in self.cluster.brokers if not b.alive() or b.paused}
        controllers = self.cluster.controller_out_of_sync()
        ctrl_bad = self.controller_laggards()
        bad |= ctrl_bad
        ctrl_note = ("; controller named per broker: %s (restarting %s)" % (
            controllers, sorted(ctrl_bad))) if controllers else ""
        ep.notes.append("NOT RECOVERED within %ds (out of sync: %s%s); repaired by restarting "
                        "brokers %s" % (self.recovery_timeout_s, lagging, ctrl_note, sorted(bad)))
        log("episode #%d did not recover: %s" % (ep.number, ep.notes[-1]))
        for bid in sorted(bad):
            b = self.cluster.broker(bid)
            b.kill()
            cut = chaos_cluster.cut_unopenable_segments(b)
            if cut:
                # FINDINGS.md F8: the broker never re-opens a replica whose tail segment has a
                # damaged entry followed by valid ones; the operator's repair is the cut a torn
                # tail gets (what the truncate form of this nemesis does), then the leader
                # re-sends the rest (§5.3).
                ep.notes.append("broker %d could not open %s: cut by the harness" % (bid, cut))
                log("episode #%d: %s" % (ep.number, ep.notes[-1]))
            b.start()
        if self.wait_healthy(self.recovery_timeout_s):
            return
        # Second step: restart the leaders of the partitions still out of sync, so that a new
        # leader (fresh replication progress) catches the lagging replicas up.
        lagging = self.cluster.out_of_sync(self.partitions)
        leaders = self.cluster.leaders(list(lagging))
        ep.notes.append("still not recovered after the repair: %s; restarting their leaders "
                        "%s" % (lagging, sorted(set(leaders.values()))))
        for bid in sorted(set(leaders.values())):
            b = self.cluster.broker(bid)
            b.kill()
            b.start()
        if not self.wait_healthy(self.recovery_timeout_s):
            ep.notes.append("STILL NOT RECOVERED: %s%s" % (
                self.cluster.out_of_sync(self.partitions),
                "; controller named per broker: %s" % self.cluster.controller_out_of_sync()
                if self.cluster.controller_out_of_sync() else ""))

    def inject_kill_leader(self, ep):
        victim, tp = self.random_leader()
        return self._kill(ep, [victim], "SIGKILL leader %d (of %s)" % (victim.id, tp))

    def inject_kill_random(self, ep):
        victim = self.rng.choice(self.cluster.brokers)
        return self._kill(ep, [victim], "SIGKILL broker %d" % victim.id)

    def inject_kill_minority(self, ep):
        k = (len(self.cluster.brokers) - 1) // 2
        victims = self.rng.sample(self.cluster.brokers, k)
        return self._kill(ep, victims, "SIGKILL minority %s" % [v.id for v in victims])

    def _kill(self, ep, victims, description):
        ep.description = description
        ep.brokers = [v.id for v in victims]
        ep.partitions = self.touched(victims)
        for v in victims:
            v.kill()

        def heal():
            for v in victims:
                v.start()
        return heal

    def inject_pause(self, ep):
        if self.rng.random() < 0.5:
            victim, tp = self.random_leader()
            what = "leader %d (of %s)" % (victim.id, tp)
        else:
            victim = self.rng.choice(self.cluster.brokers)
            what = "broker %d" % victim.id
        ep.description = "SIGSTOP " + what
        ep.brokers = [victim.id]
        ep.partitions = self.touched([victim])
        victim.pause()
        return victim.resume

    def _partition(self, ep, pairs, description):
        mode = self.rng.choice(CUT_MODES)
        ep.description = "%s [%s]" % (description, mode)
        touched = {s for s, _ in pairs} | {d for _, d in pairs}
        ep.brokers = sorted(touched)
        ep.partitions = self.touched([self.cluster.broker(b) for b in touched])
        self.cut(pairs, mode)
        return self.cluster.heal_links

    def inject_partition_majority(self, ep):
        brokers = list(self.cluster.brokers)
        self.rng.shuffle(brokers)
        k = (len(brokers) - 1) // 2
        minority, majority = brokers[:k], brokers[k:]
        return self._partition(ep, self.both_ways(minority, majority),
                               "partition minority %s | majority %s" % (
                                   sorted(b.id for b in minority), sorted(b.id for b in majority)))

    def inject_partition_leader(self, ep):
        leader, tp = self.random_leader()
        others = [b for b in self.cluster.brokers if b is not leader]
        return self._partition(ep, self.both_ways([leader], others),
                               "isolate leader %d (of %s)" % (leader.id, tp))

    def inject_partition_bridge(self, ep):
        brokers = list(self.cluster.brokers)
        self.rng.shuffle(brokers)
        half = len(brokers) // 2
        left, bridge, right = brokers[:half], brokers[half], brokers[half + 1:]
        return self._partition(ep, self.both_ways(left, right),
                               "bridge %s - %d - %s" % (sorted(b.id for b in left), bridge.id,
                                                        sorted(b.id for b in right)))

    def inject_partition_asymmetric(self, ep):
        if self.rng.random() < 0.5:
            victim, tp = self.random_leader()
            what = "leader %d (of %s)" % (victim.id, tp)
        else:
            victim = self.rng.choice(self.cluster.brokers)
            what = "broker %d" % victim.id
        others = [b for b in self.cluster.brokers if b is not victim]
        if self.rng.random() < 0.5:
            pairs = [(victim.id, o.id) for o in others]
            direction = "cannot send"
        else:
            pairs = [(o.id, victim.id) for o in others]
            direction = "cannot receive"
        return self._partition(ep, pairs, "asymmetric: %s %s" % (what, direction))

    def inject_crash_all(self, ep):
        ep.description = "SIGKILL every broker at once (%s)" % (
            "un-fsynced writes dropped" if chaos_cluster.binary_supports_drop_unsynced(
                self.cluster.binary) else
            "%s not supported by this binary: page cache survives" %
            chaos_cluster.DROP_UNSYNCED_VAR)
        ep.brokers = [b.id for b in self.cluster.brokers]
        ep.partitions = list(self.partitions)
        ep.check_elections = False   # every group must elect after a full restart
        for b in self.cluster.brokers:
            b.kill()

        def heal():
            for b in self.cluster.brokers:
                b.start()
        return heal

    def inject_disk_full(self, ep):
        victim = self.rng.choice(self.cluster.brokers)
        self.cluster.fill_disk(victim)
        ep.description = "disk of broker %d full" % victim.id
        ep.brokers = [victim.id]
        ep.partitions = self.touched([victim])

        def heal():
            self.cluster.free_disk(victim)
        return heal

    def inject_corrupt(self, ep):
        victim = self.rng.choice(self.cluster.brokers)
        victim.kill()
        segment = self.cluster.newest_segment(victim, self.rng)
        what = chaos_cluster.corrupt_segment(segment, self.rng) if segment else \
            "no segment to corrupt"
        ep.description = "SIGKILL broker %d, %s" % (victim.id, what)
        ep.brokers = [victim.id]
        ep.partitions = self.touched([victim])
        return victim.start

    def inject_corrupt_then_kill_leader(self, ep):
        """Raft assumes a replica never loses what it acknowledged; this breaks that on one
        replica and then takes the leader away. For one partition: SIGSTOP the followers a
        quorum does not need (they lag), let writes commit on the leader and the remaining
        followers for 1 s, stop one of those followers (SIGTERM: in the power-loss mode a
        SIGKILL would add a power loss to the corruption, two faults on one replica, which its
        sync ledger is not meant to survive: FINDINGS.md F11), truncate its newest segment of
        the partition, SIGKILL the leader, SIGCONT the laggards and restart the truncated
        follower.
        The entries of that last second were acknowledged by a quorum but are now only on the
        dead leader: the truncated replica must not help the laggards elect a leader without
        them (the old leader would then lose them when it comes back) (issue 6: "a corrupted or truncated minority replica never becomes
        leader with missing data"; protocol-aware recovery, Alagappan et al., FAST 2018)."""
        leaders = self.cluster.leaders(self.partitions)
        if not leaders:
            return self.inject_corrupt(ep)
        tp = self.rng.choice(sorted(leaders))
        leader = self.cluster.broker(leaders[tp])
        replicas = self.replicas.get(tp, [])
        followers = [b for b in replicas if b != leader.id]
        laggards = self.rng.sample(followers, len(replicas) - (len(replicas) // 2 + 1))
        victim = self.cluster.broker(self.rng.choice([b for b in followers
                                                      if b not in laggards]))
        for b in laggards:
            self.cluster.broker(b).pause()
        self.sleep(1.0)
        victim.stop()
        segment = self.cluster.newest_segment(victim, self.rng, tp)
        what = chaos_cluster.corrupt_segment(segment, self.rng, truncate=True) if segment else \
            "no segment of %s to truncate" % (tp,)
        leader.kill()
        for b in laggards:
            self.cluster.broker(b).resume()
        victim.start()
        ep.description = ("SIGSTOP followers %s of %s for 1 s, SIGTERM follower %d, %s, "
                          "SIGKILL leader %d, SIGCONT, restart %d" % (
                              laggards, tp, victim.id, what, leader.id, victim.id))
        ep.brokers = sorted({victim.id, leader.id} | set(laggards))
        ep.partitions = self.touched([self.cluster.broker(b) for b in ep.brokers])
        return leader.start

    def inject_move(self, ep):
        """A membership change (joint consensus, thesis §4.3) of one partition. Where a broker
        holds no replica of it, one replica moves there; where every broker already holds one
        (RF 3 on 3 brokers), one replica is removed and then added back, so that the re-added
        replica catches up from the others (both steps are `partition move`)."""
        n = len(self.cluster.brokers)
        candidates = [tp for tp in self.partitions if len(self.replicas.get(tp, [])) < n]
        if candidates:
            tp = self.rng.choice(candidates)
            old = self.replicas[tp]
            outside = [b.id for b in self.cluster.brokers if b.id not in old]
            new = list(old)
            new[self.rng.randrange(len(new))] = self.rng.choice(outside)
            steps = [new]
        else:
            tp = self.rng.choice(self.partitions)
            old = self.replicas[tp]
            dropped = self.rng.choice(old)
            steps = [[b for b in old if b != dropped], list(old)]
        done, codes = list(old), []
        for target in steps:
            args = [self.cluster.binary, "partition", "move", "%s/%d" % tp, "--to",
                    ",".join(map(str, target)), "--bootstrap", self.cluster.bootstrap]
            r = subprocess.run(args, capture_output=True, timeout=60)
            codes.append(r.returncode)
            if r.returncode != 0:
                ep.notes.append("move to %s failed: %s" % (target, (r.stdout + r.stderr).decode(
                    errors="replace").strip()[:300]))
                break
            done = target
        self.replicas[tp] = done
        ep.description = "move %s/%d from %s %s: exit %s" % (
            tp[0], tp[1], old, " then ".join("to %s" % t for t in steps),
            ",".join(map(str, codes)))
        ep.brokers = sorted(set(old) | {b for t in steps for b in t})
        ep.partitions = [tp]
        return lambda: None
