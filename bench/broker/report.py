"""Turns one scripts/bench run into the printed table, the target check, the `ratio ...` lines
(last on stdout) and bench/results/<stamp>-<kind>.{md,json,png}."""
import json
import os
import time

SYSTEMS = (("raftmq", "raftmq"), ("nats", "NATS JetStream"), ("rabbitmq", "RabbitMQ"))


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d or d[p] is None:
            return None
        d = d[p]
    return d


def _num(x, fmt="{:,.0f}"):
    return "—" if x is None else fmt.format(x)


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def _status(r, sysname):
    if r is None:
        return "not run"
    if "skipped" in r:
        return "skipped: " + r["skipped"]
    if "failed" in r:
        return "FAILED: " + r["failed"]
    return None


def table_rows(res):
    rows = []

    def row(label, fn):
        rows.append([label] + [fn(res.get(k) or {}) for k, _ in SYSTEMS])

    def tput(key):
        def f(r):
            v = _get(r, key, "msgs_per_s")
            if v is None:
                return "FAILED" if _get(r, key, "failed") else "—"
            return f"{v:,.0f} msgs/s ({_get(r, key, 'mb_per_s'):.1f} MB/s)"
        return f

    row("produce 1 KiB", tput("produce_1KiB"))
    row("produce 100 B", tput("produce_100B"))
    row("produce 1 KiB, keyed", tput("produce_1KiB_keys"))
    if any(_get(res, k, "produce_100B_keys") for k, _ in SYSTEMS):
        row("produce 100 B, keyed", tput("produce_100B_keys"))
    row("consume (1 KiB messages)", tput("consume"))

    def lat(r):
        l = r.get("latency")
        if not l or "p50_us" not in l:
            return "FAILED" if l else "—"
        return f"{l['p50_us']:,.0f} / {l['p99_us']:,.0f} / {l['p999_us']:,.0f}"
    row("single in-flight produce p50 / p99 / p99.9 µs", lat)
    row("server CPU per message, produce 1 KiB (µs)",
        lambda r: _num(_get(r, "produce_1KiB", "cpu_us_per_msg"), "{:,.1f}"))
    row("server CPU per message, produce 100 B (µs)",
        lambda r: _num(_get(r, "produce_100B", "cpu_us_per_msg"), "{:,.1f}"))

    def servers(r):
        s = r.get("brokers") or r.get("servers")
        if not s:
            return "—"
        return ", ".join(f"{v['cpu_s']:.1f} s / {v['peak_rss_mib']:.0f} MiB" for v in s.values())
    row("CPU s / peak RSS per server (whole run)", servers)
    def e2e_cell(e):
        cell = (f"{e['p50_us']:,.0f} / {e['p99_us']:,.0f} / {e['p999_us']:,.0f}"
                f" ({e['received']:,}/{e['sent']:,} received)")
        # Where it goes (loadgen e2e): the acks=all acknowledgement from the same intended send
        # time, and the client's own lateness (a CPU-starved sender).
        if e.get("acked_p99_us") is not None:
            cell += (f"; acked p50/p99 {e['acked_p50_us']:,.0f} / {e['acked_p99_us']:,.0f}"
                     f", sender late p99 {e['send_lag_p99_us']:,.0f}")
        # librdkafka's view (harness.run_e2e): the broker round trip of a Produce request,
        # requests in flight on one connection, messages per batch; the CPU the brokers got.
        rk = e.get("rdkafka") or {}
        if rk.get("rtt_p50_us") is not None:
            cell += (f"; Produce rtt p50/p99 {rk['rtt_p50_us']:,.0f} / {rk['rtt_p99_us']:,.0f}"
                     f", ≤{rk['waitresp_max']} in flight, {rk['batch_msgs_avg'] or 0:.1f} msgs"
                     f"/batch")
        if e.get("broker_cpu_us_per_msg") is not None:
            cell += (f"; CPU µs/msg brokers {e['broker_cpu_us_per_msg']:.1f}, loadgen "
                     f"{e['loadgen_cpu_us_per_msg']:.1f}; brokers' run-queue wait "
                     f"{max(e['broker_runq_wait_pct'].values()):.0f}% max")
        if e.get("cpu_demand_pct") is not None:
            cell += f"; the load needs {e['cpu_demand_pct']:.0f}% of the machine's CPUs"
        return cell
    light = _get(res, "raftmq", "e2e_light")
    if light and "p50_us" in light:
        rows.append(["end-to-end p50 / p99 / p99.9 µs at 200 msgs/s (light load)",
                     e2e_cell(light), "", ""])
    for e in _get(res, "raftmq", "e2e") or []:
        if "p50_us" not in e:
            rows.append([f"end-to-end at {e['load_pct']}% ({e.get('rate', 0):,} msgs/s)",
                         "FAILED", "", ""])
            continue
        rows.append([f"end-to-end p50 / p99 / p99.9 µs at {e['load_pct']}% ({e['rate']:,} msgs/s)",
                     e2e_cell(e), "", ""])
    # Information rows at 50% with other producer settings ("e2e_linger5": results written
    # before the target loads used linger.ms=5 themselves).
    for key in ("e2e_linger1", "e2e_linger5"):
        extra = _get(res, "raftmq", key)
        if extra and "p50_us" in extra:
            rows.append([f"end-to-end p50 / p99 / p99.9 µs at 50% ({extra['rate']:,} msgs/s), "
                         f"producers linger.ms={extra.get('linger_ms', key[-1])} (information)",
                         e2e_cell(extra), "", ""])
    return rows


def machine_rows(res):
    m = res.get("machine")
    if not m:
        return [["machine limits", "not run"]]
    if "failed" in m:
        return [["machine limits", "FAILED: " + m["failed"]]]
    f, r = m.get("fsync", {}), m.get("rtt", {})
    return [
        ["cores / load average at start", f"{m['nproc']} / {m['loadavg_start']:.1f}"],
        ["sequential write, data dir (" + m.get("disk_tool", "?") + ")",
         _num(m.get("disk_write_mb_s"), "{:,.0f} MB/s")],
        ["fdatasync (4 KiB appends)", f"{f.get('syncs_per_s', 0):,.0f}/s, p50 {f.get('p50_us', 0):,.0f} µs,"
         f" p99 {f.get('p99_us', 0):,.0f} µs"],
        ["loopback TCP bandwidth (iperf3)", _num(m.get("loopback_mb_s"), "{:,.0f} MB/s")],
        ["loopback round trip (64 B)", f"p50 {r.get('p50_us', 0):.1f} µs, p99 {r.get('p99_us', 0):.1f} µs"],
        ["floor: 2 round trips + 1 fdatasync", _num(m.get("floor_us"), "{:,.0f} µs")],
        ["fdatasync p50 / floor next to raftmq's latency run",
         _num(_get(res, "raftmq", "fsync_adjacent", "p50_us"), "{:,.0f} µs") + " / "
         + _num(latency_floor(res), "{:,.0f} µs")],
        ["fdatasync of 3 files at once: any one / 2 of 3 done, p50",
         _num(_get(res, "raftmq", "fsync_majority", "any_sync_p50_us"), "{:,.0f} µs") + " / "
         + _num(_get(res, "raftmq", "fsync_majority", "p50_us"), "{:,.0f} µs")],
        ["shared-disk floor: 2 round trips + 2 of 3 fdatasyncs", _num(shared_disk_floor(res), "{:,.0f} µs")],
        ["ceiling: min(disk, loopback) / 3", _num(m.get("ceiling_mb_s"), "{:,.0f} MB/s")],
    ]


def latency_floor(res):
    """2 loopback round trips + 1 fdatasync (p50s); the fdatasync probed right before raftmq's
    latency run when there is one (the disk is shared, its sync latency drifts during a run)."""
    m = res.get("machine") or {}
    rtt = _get(m, "rtt", "p50_us")
    adj = _get(res, "raftmq", "fsync_adjacent", "p50_us")
    if rtt is not None and adj is not None:
        return 2 * rtt + adj
    return m.get("floor_us")


def shared_disk_floor(res):
    """2 loopback round trips + the p50 time until 2 of 3 concurrent fdatasyncs (one file each)
    ended: the best an acks=all produce can do when its three replicas share this machine's one
    disk, as in this benchmark (fdatasyncs of several files queue for the device). For
    information; the target's floor counts one lone fdatasync."""
    rtt = _get(res.get("machine") or {}, "rtt", "p50_us")
    maj = _get(res, "raftmq", "fsync_majority", "p50_us")
    return 2 * rtt + maj if rtt is not None and maj is not None else None


def ratios(res):
    """(name, value, target text, met?) for each headline ratio."""
    rq, na, rb, m = (res.get(k) or {} for k in ("raftmq", "nats", "rabbitmq", "machine"))
    p = lambda r, k="produce_1KiB": _get(r, k, "msgs_per_s")  # noqa: E731
    out = [
        ("produce_1KiB raftmq/nats", _ratio(p(rq), p(na)), ">= 5", lambda x: x >= 5),
        ("produce_1KiB raftmq/rabbitmq", _ratio(p(rq), p(rb)), ">= 10", lambda x: x >= 10),
        ("produce_100B raftmq/nats", _ratio(p(rq, "produce_100B"), p(na, "produce_100B")), "", None),
        ("produce_100B raftmq/rabbitmq", _ratio(p(rq, "produce_100B"), p(rb, "produce_100B")), "", None),
        ("produce_1KiB raftmq/ceiling", _ratio(_get(rq, "produce_1KiB", "mb_per_s"),
                                               m.get("ceiling_mb_s")), ">= 0.4", lambda x: x >= 0.4),
        ("cpu_per_msg nats/raftmq", _ratio(_get(na, "produce_1KiB", "cpu_us_per_msg"),
                                           _get(rq, "produce_1KiB", "cpu_us_per_msg")), ">= 10",
         lambda x: x >= 10),
        ("cpu_per_msg rabbitmq/raftmq", _ratio(_get(rb, "produce_1KiB", "cpu_us_per_msg"),
                                               _get(rq, "produce_1KiB", "cpu_us_per_msg")), "", None),
        ("produce_p50 raftmq/floor", _ratio(_get(rq, "latency", "p50_us"), latency_floor(res)),
         "<= 1.5", lambda x: x <= 1.5),
        ("produce_p50 raftmq/shared_disk_floor", _ratio(_get(rq, "latency", "p50_us"),
                                                        shared_disk_floor(res)), "", None),
        ("produce_p99 raftmq/nats", _ratio(_get(rq, "latency", "p99_us"), _get(na, "latency", "p99_us")),
         "<= 1", lambda x: x <= 1),
        ("consume raftmq/nats", _ratio(p(rq, "consume"), p(na, "consume")), ">= 5", lambda x: x >= 5),
    ]
    e50 = [e for e in rq.get("e2e") or [] if e["load_pct"] == 50 and "p99_us" in e]
    out.append(("e2e_p99_at_50pct raftmq/10ms", _ratio(e50[0]["p99_us"], 10000) if e50 else None,
                "<= 1", lambda x: x <= 1))
    idle = rq.get("idle_1000")
    if idle and "failed" not in idle:
        out.append(("idle_1000_cpu raftmq/5pct", idle["cpu_pct_of_one_core"] / 5, "<= 1",
                    lambda x: x <= 1))
        out.append(("idle_1000_rss_per_replica raftmq/200KiB", idle["rss_kib_per_replica"] / 200,
                    "<= 1", lambda x: x <= 1))
    return [(n, v, t, (ok(v) if ok and v is not None else None)) for n, v, t, ok in out]


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _text_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def notes(res):
    out = []
    for k, label in SYSTEMS:
        r = res.get(k)
        st = _status(r, k)
        if st:
            out.append(f"{label}: {st}")
        elif r:
            out.append(f"{label}: {r.get('durability', '')}" +
                       (f"; {r['version']}" if r.get("version") else ""))
        for key, v in (r or {}).items():
            if isinstance(v, dict) and "failed" in v:
                out.append(f"{label}: {key} FAILED: {v['failed']}")
        for err in (r or {}).get("topic_delete_errors") or []:
            out.append(f"{label}: deleting a throughput topic after its phases failed ({err}): "
                       "its data stayed on the disk")
        for key, v in (r or {}).items():
            if isinstance(v, dict) and v.get("in_flight_at_exit"):
                out.append(f"{label}: {key}: {v['in_flight_at_exit']:,} messages still "
                           "unacknowledged 15 s after the window closed (a stall)")
        e2e = [(f"{e['load_pct']}% of max", e) for e in (r or {}).get("e2e") or []]
        if (r or {}).get("e2e_light"):
            e2e.append(("200 msgs/s", r["e2e_light"]))
        settings = [e for _, e in e2e if "linger_ms" in e]
        if settings:
            lingers = {}
            for what, e in e2e:
                if "linger_ms" in e:
                    lingers.setdefault(e["linger_ms"], []).append(what)
            if len(lingers) == 1:
                linger = f"{settings[0]['linger_ms']}"
            else:  # e.g. the % of max rows at the throughput runs' 5, the light row at 1
                linger = "; ".join(f"{ms} ({', '.join(rows)})" for ms, rows in lingers.items())
            out.append(f"{label}: e2e client settings (librdkafka): producers linger.ms="
                       f"{linger}, acks=all; consumer fetch.wait.max.ms="
                       f"{settings[0]['fetch_wait_max_ms']}, fetch.min.bytes=1 (defaults "
                       "otherwise)" + (
                           f"; each sender wakes at most every {settings[0]['send_quantum_us']} "
                           "µs and sends what is due (that wait counts in the latency)"
                           if settings[0].get("send_quantum_us") else ""))
        for what, e in e2e:
            if e.get("sent") and e.get("received", 0) < e["sent"]:
                out.append(f"{label}: e2e at {what}: {e['sent'] - e['received']:,} of "
                           f"{e['sent']:,} messages not consumed within 5 s after the last send")
            if "failed" in e:
                out.append(f"{label}: e2e at {what} FAILED: {e['failed']}")
        if r and r.get("warning"):
            out.append(f"{label}: WARNING {r['warning']}")
    ov = _get(res, "raftmq", "overload")
    if ov and "failed" not in ov:
        out.append("raftmq overload (12 unthrottled producers, 20 s): "
                   f"{_num(ov.get('msgs_per_s'))} msgs/s acknowledged, errors {ov.get('errors')}"
                   f" (first: {ov.get('first_error') or 'none'}), client queue-full waits "
                   f"{ov.get('queue_full_waits')}, broker RSS before {ov.get('rss_before_mib')} MiB,"
                   f" peak {ov.get('rss_peak_mib')} MiB, brokers alive: {ov.get('brokers_alive')}")
    idle = _get(res, "raftmq", "idle_1000")
    if idle:
        if "failed" in idle:
            out.append(f"raftmq 1,000 idle partitions: FAILED: {idle['failed']}")
        else:
            out.append(f"raftmq 1,000 idle partitions RF=3 (fresh cluster): "
                       f"{idle['cpu_pct_of_one_core']}% of one core, 3 brokers together "
                       f"({idle['cpu_pct_of_one_core_empty']}% before the topic existed), "
                       f"{idle['rss_kib_per_replica']} KiB RSS per partition replica (largest "
                       f"broker), created in {idle['create_s']} s")
    load = _get(res, "machine", "loadavg_start")
    if load is not None and load > (res.get("machine") or {}).get("nproc", 1):
        out.append(f"WARNING: load average {load:.1f} at start (> cores): other jobs share this "
                   "machine; figures are lower and noisier than on an idle one")
    return out


def chart(res, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (python3-matplotlib): no chart"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    groups = [("produce_1KiB", "produce 1 KiB"), ("produce_100B", "produce 100 B"),
              ("consume", "consume")]
    colors = {"raftmq": "#1f77b4", "nats": "#2ca02c", "rabbitmq": "#ff7f0e"}
    width = 0.26
    for j, (k, label) in enumerate(SYSTEMS):
        vals = [_get(res, k, g, "msgs_per_s") or 0 for g, _ in groups]
        xs = [i + (j - 1) * width for i in range(len(groups))]
        bars = ax1.bar(xs, vals, width, label=label, color=colors[k])
        for b, v in zip(bars, vals):
            ax1.annotate(f"{v/1000:.1f}k", (b.get_x() + b.get_width() / 2, v), ha="center",
                         va="bottom", fontsize=8)
    ax1.set_xticks(range(len(groups)), [g for _, g in groups])
    ax1.set_ylabel("messages / s")
    ax1.set_title("Throughput (3 replicas, loopback, same machine)")
    ax1.legend()
    qs = [i / 100 for i in range(100)] + [0.999]
    curves = [("raftmq", "latency", "raftmq produce acks=all (fsync)"),
              ("nats", "latency", "NATS sync publish (no fsync)"),
              ("rabbitmq", "latency", "RabbitMQ publish+confirm (fsync)")]
    for k, key, label in curves:
        cdf = _get(res, k, key, "cdf_us")
        if cdf and cdf[0] >= 0:
            ax2.plot(cdf, qs, label=label, color=colors[k])
    for e in _get(res, "raftmq", "e2e") or []:
        if e["load_pct"] == 50 and e.get("cdf_us") and e["cdf_us"][0] >= 0:
            ax2.plot(e["cdf_us"], qs, "--", color=colors["raftmq"],
                     label=f"raftmq end-to-end at 50% load ({e['rate']:,}/s)")
    floor = latency_floor(res)
    if floor:
        ax2.axvline(floor, color="grey", linestyle=":", label=f"floor {floor:.0f} µs")
    ax2.set_xscale("log")
    ax2.set_xlabel("latency (µs)")
    ax2.set_ylabel("fraction of messages")
    ax2.set_title("Latency CDF, one message in flight (1 KiB)")
    ax2.legend(fontsize=8, loc="lower right")
    ax2.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"scripts/bench {res['kind']} — {res['started']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return None


def emit(res, outdir):
    os.makedirs(outdir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = os.path.join(outdir, f"{stamp}-{res['kind']}")
    header = ["metric"] + [label for _, label in SYSTEMS]
    rows = table_rows(res)
    mrows = machine_rows(res)
    rat = ratios(res)
    res["ratios"] = {n: (None if v is None else round(v, 3)) for n, v, _, _ in rat}
    rat_rows = [[n, "n/a" if v is None else f"{v:.2f}", t or "(info)",
                 "" if ok is None and not t else ("met" if ok else "NOT met" if ok is not None else "n/a")]
                for n, v, t, ok in rat]
    note_lines = notes(res)
    err = chart(res, base + ".png")
    if err:
        note_lines.append(err)
    with open(base + ".json", "w") as f:
        json.dump(res, f, indent=1)
    md = [f"# scripts/bench {res['kind']} run, {res['started']} ({res['elapsed_s']} s)", "",
          "## Machine limits (same run)", "", _md_table(["limit", "value"], mrows), "",
          "## Systems", "", _md_table(header, rows), "",
          "## Targets (issue 7)", "", _md_table(["ratio", "value", "target", ""], rat_rows), "",
          "## Notes", ""] + [f"- {n}" for n in note_lines] + [
          "", f"![chart]({os.path.basename(base)}.png)", ""]
    with open(base + ".md", "w") as f:
        f.write("\n".join(md))
    print()
    print(_text_table(["machine limit", "value"], mrows))
    print()
    print(_text_table(header, rows))
    print()
    for n in note_lines:
        print("note: " + n)
    print()
    print(_text_table(["target", "value", "wanted", ""], rat_rows))
    print(f"\nresults: {base}.md, {base}.json" + ("" if err else f", {base}.png"))
    print()
    for n, v, _, _ in rat:
        print(f"ratio {n}=" + ("n/a" if v is None else f"{v:.2f}"))
