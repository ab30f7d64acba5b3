#!/usr/bin/python3
"""scripts/bench: raftmq side by side with NATS JetStream and RabbitMQ on this machine and its
loopback, plus the machine's own limits measured in the same run. See docs/benchmarks.md.

Prints progress on stderr, the table and the ratio lines on stdout, and writes
bench/results/<stamp>-<quick|full>.{md,json,png}."""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))

import procs  # noqa: E402
import report  # noqa: E402
from peers import NatsCluster, RabbitCluster  # noqa: E402
from raftmq_cluster import RaftmqCluster  # noqa: E402

LOGS = None  # where the servers' logs of the last run are copied (set by main)
BIN = os.environ.get("RAFTMQ_BENCH_BIN", os.path.join(ROOT, "build", "bin"))
log = procs.log


class Settings:
    def __init__(self, quick):
        self.kind = "quick" if quick else "full"
        self.secs = 4 if quick else 15           # measurement window of each throughput run
        self.warm_ms = 1000 if quick else 2000
        self.lat_secs = 4 if quick else 15
        self.e2e_secs = 4 if quick else 15
        self.producers = 4                       # producers / publishers (own connections)
        self.partitions = 6                      # raftmq partitions of the throughput topics
        self.window = 2048                       # NATS / RabbitMQ outstanding acks per publisher
        self.machine_secs = 3 if quick else 10
        self.idle = not quick                    # 1,000 idle partitions
        self.overload = not quick
        self.phases = list(RAFTMQ_PHASES)        # --phases
        self.e2e_max_rate = 0                    # --e2e-max-rate (0: the measured 1 KiB rate)
        self.e2e_loads = [25, 50, 75]            # --e2e-loads (% of max)
        self.e2e_extra = True                    # the light and the linger.ms=1 rows


def keep_logs(src_dir, prefix, top_only=False):
    """Copies a stopped cluster's server logs (*.log; with top_only, those directly in src_dir:
    raftmq's data directories hold segment files named *.log) to
    bench/results/last-run-logs/ (not in git)."""
    if not LOGS:
        return
    os.makedirs(LOGS, exist_ok=True)
    for root, dirs, files in os.walk(src_dir):
        if top_only:
            dirs[:] = []
        for f in files:
            if f.endswith(".log"):
                rel = os.path.relpath(os.path.join(root, f), src_dir).replace(os.sep, "-")
                shutil.copy(os.path.join(root, f), os.path.join(LOGS, f"{prefix}-{rel}"))


def bin_path(name):
    return os.path.join(BIN, name)


# ---- machine limits ----

def machine_limits(s, data_base):
    out = {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}
    d = procs.make_temp_dir(data_base, "machine-bench-")
    log(f"[machine] sequential write bandwidth of {data_base} (fio, O_DIRECT, 1 MiB blocks)")
    if shutil.which("fio"):
        r = subprocess.run(["fio", "--name=seqwrite", f"--directory={d}", "--rw=write",
                            "--bs=1M", "--size=2G", "--direct=1", "--ioengine=psync",
                            f"--runtime={s.machine_secs}", "--time_based", "--end_fsync=1",
                            "--output-format=json"], capture_output=True, text=True, timeout=120)
        try:
            out["disk_write_mb_s"] = json.loads(r.stdout)["jobs"][0]["write"]["bw_bytes"] / 1e6
            out["disk_tool"] = "fio"
        except (ValueError, KeyError, IndexError):
            out["disk_error"] = (r.stderr or r.stdout).strip()[-200:]
    else:
        t = time.time()
        subprocess.run(["dd", "if=/dev/zero", f"of={d}/dd", "bs=1M", "count=1024",
                        "oflag=direct", "conv=fdatasync"], capture_output=True, timeout=300)
        out["disk_write_mb_s"] = 1024 * 1048576 / 1e6 / (time.time() - t)
        out["disk_tool"] = "dd oflag=direct"
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    log("[machine] fdatasync rate (4 KiB appends)")
    out["fsync"] = procs.run_client([bin_path("raftmq-bench-machine"), "fsync", "--dir", d,
                                     "--seconds", str(s.machine_secs)], 120)
    log("[machine] loopback round trip (64-byte TCP ping-pong)")
    out["rtt"] = procs.run_client([bin_path("raftmq-bench-machine"), "rtt", "--seconds",
                                   str(min(3, s.machine_secs))], 60)
    log("[machine] loopback TCP bandwidth (iperf3)")
    if shutil.which("iperf3"):
        out.update(iperf3(d, min(3, s.machine_secs)))
    else:
        out["loopback_error"] = "iperf3 is not installed"
    rtt_us, fsync_us = out["rtt"]["p50_us"], out["fsync"]["p50_us"]
    # The floor of one acks=all produce: client->leader->follower round trips plus one fsync.
    out["floor_us"] = 2 * rtt_us + fsync_us
    if "disk_write_mb_s" in out and "loopback_mb_s" in out:
        out["ceiling_mb_s"] = min(out["disk_write_mb_s"], out["loopback_mb_s"]) / 3
    return out


def iperf3(d, secs, port=4690):
    """Loopback TCP bandwidth: an iperf3 server (started once it says it listens; a connect
    probe would be taken for a test client) and one client run."""
    slog = os.path.join(d, "iperf3.log")
    srv = procs.start_server("iperf3", ["iperf3", "-s", "-p", str(port), "-B", "127.0.0.1"], slog)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and srv.poll() is None:
            with open(slog, errors="replace") as f:
                if "Server listening" in f.read():
                    break
            time.sleep(0.2)
        r = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(secs), "-J"],
                           capture_output=True, text=True, timeout=60 + secs)
        try:
            bps = json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"]
            return {"loopback_mb_s": bps / 8e6}
        except (ValueError, KeyError):
            with open(slog, errors="replace") as f:
                server_log = f.read()[-300:]
            return {"loopback_error": f"iperf3 client: {r.stdout[-300:]} server: {server_log}"}
    finally:
        procs.stop_server(srv)


# ---- raftmq ----

class CpuWatch:
    """CPU seconds of a set of server processes between start() and stop()."""

    def __init__(self, pids):
        self.pids = pids

    def __enter__(self):
        self.t0 = time.time()
        self.c0 = {n: procs.cpu_seconds(p) for n, p in self.pids.items()}
        return self

    def __exit__(self, *exc):
        self.wall = time.time() - self.t0
        self.per = {n: procs.cpu_seconds(p) - self.c0[n] for n, p in self.pids.items()}
        self.total = sum(self.per.values())


def sched_ns(pid):
    """(on-CPU ns, runnable-but-waiting ns) of all threads of `pid` (/proc/PID/task/*/schedstat;
    threads that exited are missing: (0, 0) when unreadable)."""
    run = wait = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, 0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                fields = f.read().split()
            run += int(fields[0])
            wait += int(fields[1])
        except (OSError, ValueError, IndexError):
            pass
    return run, wait


class SchedWatch:
    """Per server process between enter and exit: % of one core on CPU and % of wall time its
    threads spent runnable but waiting for a CPU (run-queue delay: CPU contention)."""

    def __init__(self, pids):
        self.pids = pids

    def __enter__(self):
        self.t0 = time.time()
        self.s0 = {n: sched_ns(p) for n, p in self.pids.items()}
        return self

    def __exit__(self, *exc):
        self.wall = max(1e-9, time.time() - self.t0)
        wall_ns = self.wall * 1e9
        self.cpu_pct, self.wait_pct = {}, {}
        for n, p in self.pids.items():
            r1, w1 = sched_ns(p)
            r0, w0 = self.s0[n]
            self.cpu_pct[n] = round((r1 - r0) / wall_ns * 100, 1)
            self.wait_pct[n] = round((w1 - w0) / wall_ns * 100, 1)


def with_cpu(result, watch, count_key="acked_total"):
    result["server_cpu_s"] = round(watch.total, 3)
    n = result.get(count_key) or 0
    result["cpu_us_per_msg"] = round(watch.total / n * 1e6, 2) if n else None
    return result


def run_consumer(argv, timeout, pids):
    """One consume client run (raftmq-loadgen, nats-bench): the servers' CPU per message
    (cpu_us_per_msg) and the client's own (client_cpu_us_per_msg, utime+stime of the client
    process, from RUSAGE_CHILDREN), so that a report shows which side a consume rate is
    limited by; and the load average at its end."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with CpuWatch(pids) as w:
        r = procs.run_client(argv, timeout)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    with_cpu(r, w, "msgs")
    n = r.get("msgs") or 0
    r["client_cpu_s"] = round(client_s, 3)
    r["client_cpu_us_per_msg"] = round(client_s / n * 1e6, 2) if n else None
    r["loadavg"] = round(os.getloadavg()[0], 2)
    return r


def phase(res, key, fn, *args):
    """Runs one measurement; a failure is recorded under `key` and the run goes on."""
    try:
        res[key] = fn(*args)
    except Exception as e:  # noqa: BLE001 - one failed measurement must not lose the others
        log(f"[{res['system']}] {key} FAILED: {e}")
        res[key] = {"failed": str(e)}
    return res[key]


RAFTMQ_PHASES = ("produce", "latency", "consume", "e2e")
# Producers' linger.ms in the e2e loads: that of the throughput runs (raftmq-loadgen produce),
# whose 1 KiB rate the loads are fractions of.
E2E_LINGER_MS = 5


def summarise_rdkafka_stats(lines):
    """librdkafka's statistics (loadgen e2e --stats-file: one JSON line per sender and
    interval) inside the measurement window, per broker connection with traffic:
    int_latency (message enqueued to batched into a request: linger and queueing),
    outbuf_latency (request ready to written to the socket), rtt (written to the response:
    the broker's produce path) in µs, as the cnt-weighted mean of the intervals' p50s and the
    largest interval p99; waitresp_max: the most requests one connection had in flight at a
    report; batch_msgs_avg: messages per partition batch."""
    hist = {k: {"w": 0, "p50": 0.0, "p99": 0.0} for k in ("int_latency", "outbuf_latency", "rtt")}
    waitresp, batch_cnt, batch_w, intervals = 0, 0.0, 0, 0
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a report cut short when the run ended
        if not rec.get("in_window"):
            continue
        intervals += 1
        st = rec.get("stats") or {}
        for b in (st.get("brokers") or {}).values():
            if b.get("nodeid", -1) < 0:
                continue  # bootstrap placeholder connections
            waitresp = max(waitresp, b.get("waitresp_cnt", 0))
            for k, acc in hist.items():
                h = b.get(k) or {}
                cnt = h.get("cnt", 0)
                if cnt <= 0:
                    continue
                acc["w"] += cnt
                acc["p50"] += h.get("p50", 0) * cnt
                acc["p99"] = max(acc["p99"], h.get("p99", 0))
        for t in (st.get("topics") or {}).values():
            h = t.get("batchcnt") or {}
            if h.get("cnt", 0) > 0:
                batch_cnt += h.get("avg", 0) * h["cnt"]
                batch_w += h["cnt"]
    out = {"intervals": intervals, "waitresp_max": waitresp,
           "batch_msgs_avg": round(batch_cnt / batch_w, 2) if batch_w else None}
    for k, acc in hist.items():
        out[f"{k}_p50_us"] = round(acc["p50"] / acc["w"], 1) if acc["w"] else None
        out[f"{k}_p99_us"] = acc["p99"] if acc["w"] else None
    return out


def run_e2e(argv, timeout, data_dir, pids):
    """One loadgen e2e run with librdkafka statistics every second, summarised into
    result["rdkafka"] (the raw reports are not kept), and where the CPU went over the whole
    run (warm-up and drain included): each broker's % of one core on CPU and % of the wall
    time its threads waited runnable for a CPU (run-queue delay), the loadgen's CPU seconds,
    and the brokers' and the loadgen's CPU µs per acknowledged message."""
    path = os.path.join(data_dir, f"rdkafka-stats-{os.getpid()}.jsonl")
    try:
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with SchedWatch(pids) as w:
            r = procs.run_client(argv + ["--stats-ms", "1000", "--stats-file", path], timeout)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(path, errors="replace") as f:
            r["rdkafka"] = summarise_rdkafka_stats(f)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    r["broker_cpu_pct"] = w.cpu_pct
    r["broker_runq_wait_pct"] = w.wait_pct
    client_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    r["loadgen_cpu_s"] = round(client_s, 2)
    n = r.get("acked_total") or 0
    if n:
        r["broker_cpu_us_per_msg"] = round(sum(w.cpu_pct.values()) / 100 * w.wall / n * 1e6, 1)
        r["loadgen_cpu_us_per_msg"] = round(client_s / n * 1e6, 1)
        # Is "X% of max" really X% of the machine? The CPU this load needs at the cost per
        # message measured in this run (brokers + load generator, producers and consumer), in
        # % of all the machine's CPUs: near 100 the run measures CPU queueing, not the broker.
        rate = r.get("rate") or 0
        per_msg = r["broker_cpu_us_per_msg"] + r["loadgen_cpu_us_per_msg"]
        r["cpu_demand_pct"] = round(per_msg * rate / 1e6 / (os.cpu_count() or 1) * 100, 1)
    r["loadavg"] = round(os.getloadavg()[0], 2)
    return r


def run_raftmq(s, data_base):
    res = {"system": "raftmq", "durability": "acks=all, RF=3, fsync before ack (default)"}
    c = RaftmqCluster(ROOT, data_base)
    log(f"[raftmq] starting 3 brokers (Kafka {c.bootstrap})")
    c.start()
    try:
        lg = bin_path("raftmq-loadgen")
        for t, parts in (("t1k", s.partitions), ("t100", s.partitions), ("lat", 1),
                         ("e2e", s.partitions)):
            c.create_topic(t, parts)
        base = [c.bootstrap]

        def produce(topic, size, keys, producers=s.producers, secs=s.secs):
            argv = [lg, "produce", "--bootstrap", base[0], "--topic", topic, "--size", str(size),
                    "--producers", str(producers), "--seconds", str(secs), "--warmup-ms",
                    str(s.warm_ms)] + (["--keys"] if keys else [])
            with CpuWatch(c.pids()) as w:
                r = procs.run_client(argv, secs + 120)
            return with_cpu(r, w)

        want = s.phases
        # The consume phase reads what produce 1 KiB wrote; e2e takes its rates from it
        # (or from --e2e-max-rate).
        if "produce" in want or "consume" in want or ("e2e" in want and not s.e2e_max_rate):
            log("[raftmq] produce 1 KiB, no keys")
            phase(res, "produce_1KiB", produce, "t1k", 1024, False)
        if "produce" in want:
            log("[raftmq] produce 100 B, no keys")
            phase(res, "produce_100B", produce, "t100", 100, False)
            log("[raftmq] produce 1 KiB, keyed")
            phase(res, "produce_1KiB_keys", produce, "t1k", 1024, True)
        if s.kind == "full" and "produce" in want:
            log("[raftmq] produce 100 B, keyed")
            phase(res, "produce_100B_keys", produce, "t100", 100, True)
        if "latency" in want:
            log("[raftmq] fdatasync probe next to the latency run (the disk is shared and varies)")
            phase(res, "fsync_adjacent", procs.run_client,
                  [bin_path("raftmq-bench-machine"), "fsync", "--dir", c.dir, "--seconds", "2"],
                  60)
            log("[raftmq] fdatasync of 3 files at once, time to 2 of 3 (the replicas share the disk)")
            phase(res, "fsync_majority", procs.run_client,
                  [bin_path("raftmq-bench-machine"), "fsync-majority", "--dir", c.dir,
                   "--seconds", "2", "--replicas", "3"], 60)
            log("[raftmq] single in-flight produce latency (1 KiB)")
            phase(res, "latency", procs.run_client,
                  [lg, "latency", "--bootstrap", base[0], "--topic", "lat", "--size", "1024",
                   "--seconds", str(s.lat_secs)], s.lat_secs + 60)

        def consume():
            return run_consumer([lg, "consume", "--bootstrap", base[0], "--topic", "t1k",
                                 "--seconds", "60"], 120, c.pids())
        if "consume" in want:
            log("[raftmq] consume t1k from the beginning")
            phase(res, "consume", consume)
        # No later phase reads the throughput topics: their data goes before the e2e rows (a
        # full run on a disk of 3 GB/s wrote 70 GB into them and the e2e rows found the file
        # system full, 2026-11-29). Here, not earlier: removing GBs of files must not overlap
        # the latency or consume phases.
        if "produce" in want or "consume" in want:
            for t in ("t100", "t1k"):
                drop_topic(c, res, t)
            procs.wait_free_space_settles(c.dir, 15)
        if "e2e" in want and s.e2e_extra:
            log("[raftmq] end-to-end latency at a light 200 msgs/s (the fetch path without load)")
            # One sender with linger.ms=1: a latency-tuned client (at linger.ms=5 every message
            # of a light load would wait the whole linger).
            phase(res, "e2e_light", run_e2e,
                  [lg, "e2e", "--bootstrap", base[0], "--topic", "e2e", "--size", "1024",
                   "--rate", "200", "--producers", "1", "--seconds", str(s.e2e_secs),
                   "--linger-ms", "1"],
                  s.e2e_secs + 90, c.dir, c.pids())
        peak = s.e2e_max_rate or _get_rate(res, "produce_1KiB")
        res["e2e"] = []
        for pct in s.e2e_loads if peak and "e2e" in want else ():
            rate = max(1, int(peak * pct / 100))
            log(f"[raftmq] end-to-end latency at {pct}% of max ({rate} msgs/s)")
            try:
                # The producers of the maximum's run (4 instances, linger.ms=5): a load of
                # pct% is pct% of what these clients reached.
                r = run_e2e([lg, "e2e", "--bootstrap", base[0], "--topic", "e2e",
                             "--size", "1024", "--rate", str(rate), "--producers",
                             str(s.producers), "--seconds", str(s.e2e_secs),
                             "--linger-ms", str(E2E_LINGER_MS)],
                            s.e2e_secs + 90, c.dir, c.pids())
            except RuntimeError as e:
                log(f"[raftmq] e2e at {pct}% FAILED: {e}")
                r = {"failed": str(e), "rate": rate}
            r["load_pct"] = pct
            res["e2e"].append(r)
        if peak and "e2e" in want and s.e2e_extra:
            # Information (no target): the 50% load with producers at linger.ms=1 (smaller
            # batches: more Raft entries and more CPU per message at the same rate).
            rate = max(1, int(peak * 50 / 100))
            log(f"[raftmq] end-to-end latency at 50% of max ({rate} msgs/s), linger.ms=1")
            phase(res, "e2e_linger1", run_e2e,
                  [lg, "e2e", "--bootstrap", base[0], "--topic", "e2e", "--size", "1024",
                   "--rate", str(rate), "--producers", str(s.producers), "--seconds",
                   str(s.e2e_secs), "--linger-ms", "1"], s.e2e_secs + 90, c.dir, c.pids())
        if s.overload:
            if "e2e" in want:  # the e2e rows wrote up to tens of GB too
                drop_topic(c, res, "e2e")
                procs.wait_free_space_settles(c.dir, 15)
            phase(res, "overload", overload, c, lg, s)
        res["brokers"] = {n: {"cpu_s": round(procs.cpu_seconds(p), 2),
                              "peak_rss_mib": round(procs.mem_kib(p, "VmHWM") / 1024, 1)}
                          for n, p in c.pids().items()}
        if not c.alive():
            res["warning"] = "a broker exited during the run:\n" + c.log_tail()
    finally:
        c.stop()
        keep_logs(c.dir, "raftmq", top_only=True)
    if s.idle:
        phase(res, "idle_1000", idle_partitions, data_base)
    return res


def _get_rate(res, key):
    r = res.get(key) or {}
    return r.get("msgs_per_s")


def drop_topic(c, res, name):
    """Deletes a throughput topic once no later phase reads it (bounded disk use); a failure
    goes into the run's notes."""
    log(f"[raftmq] deleting topic {name} (no later phase reads it)")
    err = c.delete_topic(name)
    if err:
        res.setdefault("topic_delete_errors", []).append(f"{name}: {err}")


def overload(c, lg, s):
    """Producers well beyond what the brokers sustain: memory must stay bounded."""
    log("[raftmq] overload: 12 unthrottled producers for 20 s, RSS sampled every 0.5 s")
    c.create_topic("over", s.partitions)
    rss0 = {n: procs.mem_kib(p, "VmRSS") for n, p in c.pids().items()}
    peak = dict(rss0)
    # Each producer may hold 256 MiB (not the throughput runs' 4 MiB): about 3 GiB offered
    # at once, far beyond what the brokers take in, so their back-pressure is what bounds it.
    argv = [lg, "produce", "--bootstrap", c.bootstrap, "--topic", "over", "--size", "1024",
            "--producers", "12", "--seconds", "20", "--warmup-ms", "1000",
            "--queue-kbytes", "262144"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs._clients.append(p)  # killed on Ctrl-C like the other clients
    deadline = time.time() + 150
    while p.poll() is None and time.time() < deadline:
        for n, pid in c.pids().items():
            peak[n] = max(peak[n], procs.mem_kib(pid, "VmRSS"))
        time.sleep(0.5)
    if p.poll() is None:
        p.kill()
    out, err = p.communicate()
    procs._clients.remove(p)
    lines = [l for l in out.splitlines() if l.startswith("{")]
    r = json.loads(lines[-1]) if lines else {"error": err.strip()[-300:]}
    r["rss_before_mib"] = {n: round(v / 1024, 1) for n, v in rss0.items()}
    r["rss_peak_mib"] = {n: round(v / 1024, 1) for n, v in peak.items()}
    r["brokers_alive"] = c.alive()
    return r


IDLE_SECS = 30  # the idle CPU window (--idle-secs)


def idle_partitions(data_base):
    """1,000 partitions RF=3 on 3 fresh brokers, no traffic: CPU % of one core (3 brokers
    together) and RSS growth per partition replica (1,000 replicas per broker)."""
    c = RaftmqCluster(ROOT, data_base)
    log("[raftmq] 1,000 idle partitions: fresh cluster")
    c.start()
    try:
        time.sleep(5)
        with CpuWatch(c.pids()) as w0:
            time.sleep(10)
        rss0 = {n: procs.mem_kib(p, "VmRSS") for n, p in c.pids().items()}
        log("[raftmq] 1,000 idle partitions: creating the topic")
        t = time.time()
        c.create_topic("idle1000", 1000, timeout=300)
        # Until every partition has a leader (the loadgen's metadata wait, at most 30 s).
        subprocess.run([bin_path("raftmq-loadgen"), "consume", "--bootstrap", c.bootstrap,
                        "--topic", "idle1000", "--seconds", "1", "--idle-ms", "100"],
                       capture_output=True, timeout=120)
        created_s = time.time() - t
        time.sleep(10)  # settle
        log(f"[raftmq] 1,000 idle partitions: measuring CPU for {IDLE_SECS} s")
        with CpuWatch(c.pids()) as w:
            time.sleep(IDLE_SECS)
        rss1 = {n: procs.mem_kib(p, "VmRSS") for n, p in c.pids().items()}
        per = [(rss1[n] - rss0[n]) / 1000 for n in rss0]
        return {"create_s": round(created_s, 1),
                "cpu_pct_of_one_core_empty": round(w0.total / w0.wall * 100, 2),
                "cpu_pct_of_one_core": round(w.total / w.wall * 100, 2),
                "rss_kib_per_replica": round(max(per), 1),
                "rss_mib_before": {n: round(v / 1024, 1) for n, v in rss0.items()},
                "rss_mib": {n: round(v / 1024, 1) for n, v in rss1.items()},
                "loadavg": round(os.getloadavg()[0], 2),
                "brokers_alive": c.alive()}
    finally:
        c.stop()
        keep_logs(c.dir, "raftmq-idle", top_only=True)


# ---- peers ----

def run_nats(s, data_base):
    res = {"system": "nats", "durability": "JetStream file storage, R=3, acknowledged without "
                                           "fsync (2.9 has no per-write fsync option)"}
    why = NatsCluster.missing() or (None if os.path.exists(bin_path("nats-bench"))
                                    else "nats-bench was not built (libnats-dev missing)")
    if why:
        return dict(res, skipped=why)
    c = NatsCluster(data_base)
    res["version"] = c.version()
    log("[nats] starting 3 JetStream servers")
    c.start()
    try:
        nb = [bin_path("nats-bench")]
        url = ["--url", c.url]

        def publish(size):
            procs.run_client(nb + ["setup"] + url + ["--replicas", "3"], 120)
            with CpuWatch(c.pids()) as w:
                r = procs.run_client(nb + ["publish"] + url + [
                    "--size", str(size), "--publishers", str(s.producers), "--window",
                    str(s.window), "--seconds", str(s.secs), "--warmup-ms", str(s.warm_ms)],
                    s.secs + 120)
            return with_cpu(r, w)

        log("[nats] async publish 100 B")
        res["produce_100B"] = publish(100)
        log("[nats] async publish 1 KiB")
        res["produce_1KiB"] = publish(1024)  # the stream keeps these for the consume run
        log("[nats] consume (ordered push consumer from the start)")
        res["consume"] = run_consumer(nb + ["consume"] + url + ["--seconds", "60"], 120,
                                      c.pids())
        log("[nats] sync publish latency (1 KiB)")
        res["latency"] = procs.run_client(nb + ["latency"] + url + [
            "--size", "1024", "--seconds", str(s.lat_secs)], s.lat_secs + 60)
        res["servers"] = {n: {"cpu_s": round(procs.cpu_seconds(p), 2),
                              "peak_rss_mib": round(procs.mem_kib(p, "VmHWM") / 1024, 1)}
                          for n, p in c.pids().items()}
    finally:
        c.stop()
        keep_logs(c.dir, "nats")
    return res


def run_rabbitmq(s, data_base):
    res = {"system": "rabbitmq", "durability": "quorum queue, 3 replicas, publisher confirms "
                                               "(fsync before confirm)"}
    why = RabbitCluster.missing() or (None if os.path.exists(bin_path("rabbitmq-bench"))
                                      else "rabbitmq-bench was not built (librabbitmq-dev missing)")
    if why:
        return dict(res, skipped=why)
    c = RabbitCluster(data_base)
    res["version"] = c.version()
    log("[rabbitmq] starting 3 nodes (this takes a while: Erlang VMs)")
    t = time.time()
    c.start()
    res["cluster_start_s"] = round(time.time() - t, 1)
    try:
        rb = [bin_path("rabbitmq-bench")]

        def publish(size):
            procs.run_client(rb + ["setup", "--port", "5601"], 120)
            with CpuWatch(c.pids()) as w:
                r = procs.run_client(rb + ["publish", "--port", "5601", "--size", str(size),
                                           "--publishers", str(s.producers), "--window",
                                           str(s.window), "--seconds", str(s.secs),
                                           "--warmup-ms", str(s.warm_ms)], s.secs + 120)
            return with_cpu(r, w)

        log("[rabbitmq] publish 100 B with confirms")
        res["produce_100B"] = publish(100)
        log("[rabbitmq] publish 1 KiB with confirms")
        res["produce_1KiB"] = publish(1024)
        log("[rabbitmq] consume (basic.consume, prefetch 2000)")
        with CpuWatch(c.pids()) as w:
            res["consume"] = procs.run_client(rb + ["consume", "--port", "5601", "--seconds",
                                                    "90"], 150)
        with_cpu(res["consume"], w, "msgs")
        log("[rabbitmq] single in-flight publish latency (1 KiB)")
        res["latency"] = procs.run_client(rb + ["latency", "--port", "5601", "--size", "1024",
                                                "--seconds", str(s.lat_secs)], s.lat_secs + 60)
        res["servers"] = {n: {"cpu_s": round(procs.cpu_seconds(p), 2),
                              "peak_rss_mib": round(procs.mem_kib(p, "VmHWM") / 1024, 1)}
                          for n, p in c.pids().items()}
    finally:
        c.stop()
        keep_logs(c.dir, "rabbitmq")
    return res


def guarded(name, fn, *args):
    """Runs one system's part; a failure is recorded and printed, and the run goes on."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - any failure of one system must not stop the others
        log(f"[{name}] FAILED: {e}")
        return {"system": name, "failed": str(e)}


def main():
    ap = argparse.ArgumentParser(description="raftmq vs NATS JetStream vs RabbitMQ")
    ap.add_argument("--quick", action="store_true", help="about 5 minutes")
    ap.add_argument("--only", default="machine,raftmq,nats,rabbitmq",
                    help="comma-separated subset of machine,raftmq,nats,rabbitmq; `idle` runs "
                         "only raftmq's 1,000 idle partitions phase")
    ap.add_argument("--idle-secs", type=int, default=30, help="idle CPU window (s)")
    ap.add_argument("--phases", default=",".join(RAFTMQ_PHASES),
                    help="raftmq phases to run, a subset of " + ",".join(RAFTMQ_PHASES) +
                         " (consume and e2e run produce 1 KiB first for their data and rates)")
    ap.add_argument("--e2e-max-rate", type=int, default=0,
                    help="msgs/s taken as 100%% for the e2e loads instead of the measured "
                         "produce 1 KiB rate (e.g. a quiet machine's figure)")
    ap.add_argument("--e2e-loads", default="",
                    help="comma-separated %% of max to run e2e at, only those (e.g. 50 for the "
                         "e2e_p99_at_50pct row alone, for A/B runs); default 25,50,75 plus the "
                         "light and linger.ms=1 rows")
    ap.add_argument("--data-dir", default=os.environ.get("RAFTMQ_BENCH_DIR", "/tmp"),
                    help="where the brokers' data directories go (its file system is measured)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    a = ap.parse_args()
    procs.install_cleanup()
    global LOGS
    LOGS = os.path.join(a.out, "last-run-logs")
    shutil.rmtree(LOGS, ignore_errors=True)
    s = Settings(a.quick)
    s.phases = sorted(set(a.phases.split(",")))  # a list: the settings go into the JSON
    unknown = set(s.phases) - set(RAFTMQ_PHASES)
    if unknown:
        ap.error("unknown --phases: " + ",".join(sorted(unknown)))
    s.e2e_max_rate = a.e2e_max_rate
    if a.e2e_loads:
        try:
            s.e2e_loads = [int(x) for x in a.e2e_loads.split(",")]
        except ValueError:
            ap.error("--e2e-loads: comma-separated integers expected")
        if any(not 0 < x <= 200 for x in s.e2e_loads):
            ap.error("--e2e-loads: each load must be in 1..200 (% of max)")
        s.e2e_extra = False
    global IDLE_SECS
    IDLE_SECS = a.idle_secs
    only = set(a.only.split(","))
    t0 = time.time()
    results = {"kind": s.kind, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "settings": vars(s), "host": os.uname().nodename}
    if "machine" in only:
        results["machine"] = guarded("machine", machine_limits, s, a.data_dir)
    for name, fn in (("raftmq", run_raftmq), ("nats", run_nats), ("rabbitmq", run_rabbitmq)):
        if name in only:
            results[name] = guarded(name, fn, s, a.data_dir)
    if "idle" in only and "raftmq" not in only:
        results["raftmq"] = {"system": "raftmq"}
        phase(results["raftmq"], "idle_1000", idle_partitions, a.data_dir)
    results["loadavg_end"] = os.getloadavg()[0]
    results["elapsed_s"] = round(time.time() - t0, 1)
    procs.cleanup()
    if only == {"idle"}:
        print(json.dumps(results.get("raftmq", {}).get("idle_1000"), indent=1), flush=True)
        return
    report.emit(results, a.out)


if __name__ == "__main__":
    main()
