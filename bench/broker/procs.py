"""Process bookkeeping for scripts/bench: every server the harness starts is registered here and
stopped on exit (normal end, exception, Ctrl-C or SIGTERM); CPU seconds and memory are read
from /proc (utime+stime of a process and its live descendants; VmHWM / VmRSS)."""
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")
_servers = []    # (name, Popen) stopped in reverse order
_temp_dirs = []  # removed after the servers stopped
_clients = []    # benchmark clients running now (killed first on cleanup)
_cleaned = False


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def start_server(name, argv, log_path, env=None, cwd=None):
    """Starts a long-running server in its own session (a terminal Ctrl-C reaches only the
    harness, which then stops it once)."""
    out = open(log_path, "ab")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                         start_new_session=True)
    out.close()
    _servers.append((name, p))
    return p


def stop_server(p, grace=10.0):
    """SIGTERM the process and its descendants, SIGKILL what is left after `grace` seconds."""
    if p.poll() is not None:
        return
    pids = [p.pid] + descendants(p.pid)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
    for pid in pids + descendants(p.pid):
        _signal(pid, signal.SIGKILL)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def make_temp_dir(base, prefix):
    import tempfile
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    _temp_dirs.append(d)
    return d


def cleanup():
    global _cleaned
    if _cleaned:
        return
    _cleaned = True
    for p in list(_clients):
        _signal(p.pid, signal.SIGKILL)
    for name, p in reversed(_servers):
        stop_server(p)
    for d in _temp_dirs:
        shutil.rmtree(d, ignore_errors=True)


def _on_signal(signum, _frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    log(f"\nscripts/bench: signal {signum}: stopping every server and removing temp dirs")
    cleanup()
    os._exit(130)


def install_cleanup():
    atexit.register(cleanup)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


def _children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid):
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pid):
    """utime+stime of pid and its live descendants (reaped children's time is included via
    cutime+cstime of the parent)."""
    total = 0.0
    for p in [pid] + descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / TICKS
        except (OSError, IndexError, ValueError):
            pass
    return total


def mem_kib(pid, field):
    """Sum of `field` (VmHWM, VmRSS) in KiB over pid and its live descendants."""
    total = 0
    for p in [pid] + descendants(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


def run_client(argv, timeout, env=None):
    """Runs a benchmark client and returns the JSON object it printed last on stdout; raises
    RuntimeError with its stderr tail when it fails."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _clients.append(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise RuntimeError(f"{os.path.basename(argv[0])} {argv[1]} timed out after {timeout} s")
    finally:
        _clients.remove(p)
    r = subprocess.CompletedProcess(argv, p.returncode, out, err)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(f"{os.path.basename(argv[0])} {argv[1]} failed (exit {r.returncode}): "
                           + " | ".join(tail))
    return json.loads(lines[-1])


def wait_port(port, timeout, host="127.0.0.1"):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def wait_free_space_settles(path, timeout):
    """Waits (at least 3 s, at most `timeout` s) until the free space of `path`'s file system
    stops growing: deleted topics' files are removed by the brokers shortly after the
    deletion commits."""
    started = time.time()
    last = shutil.disk_usage(path).free
    while time.time() - started < timeout:
        time.sleep(1)
        now = shutil.disk_usage(path).free
        if now <= last and time.time() - started >= 3:
            return
        last = max(last, now)
