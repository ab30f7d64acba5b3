#!/usr/bin/python3
"""Records the Produce request a real librdkafka producer (kcat -P) sends, as a golden fixture.

  capture_produce.py OUT.hex CODEC [legacy|legacy0]    CODEC: none gzip snappy lz4 zstd

Plays a minimal one-broker Kafka cluster on 127.0.0.1 (hand-encoded ApiVersions v3,
Metadata v4 and Produce v7 responses; Python standard library only), runs
`kcat -P -b 127.0.0.1:PORT -t t -z CODEC` with two messages, and writes the Produce request
payload (without the size prefix) in hex. With `legacy`, only Produce 0-2 and Fetch 0-2 are
advertised, so librdkafka falls back to the legacy message set v1 (magic 1) and Produce v2;
with `legacy0` Fetch is not advertised at all and it sends message set v0 (magic 0). With
`metadata` it advertises current versions and records `kcat -L -t t`'s Metadata request.
"""
import socket
import struct
import subprocess
import sys
import threading
import time


def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)
def string(s): return i16(len(s)) + s.encode()
def uvarint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def api_versions_v3(corr, legacy):
    if legacy == "metadata":  # advertise the newest Metadata to capture a flexible request
        apis = [(0, 0, 11), (1, 0, 17), (3, 0, 12), (10, 0, 6), (18, 0, 4)]
        body = i16(0) + uvarint(len(apis) + 1)
        for key, lo, hi in apis:
            body += i16(key) + i16(lo) + i16(hi) + b"\x00"
        return i32(corr) + body + i32(0) + b"\x00"
    apis = [(0, 0, 2 if legacy else 7), (3, 0, 4), (10, 0, 2), (18, 0, 3)]  # 10: lz4 feature
    if legacy == "legacy":
        apis.append((1, 0, 2))  # Produce 2 + Fetch 2: legacy message set v1 (magic 1)
    elif not legacy:
        apis.append((1, 0, 10))  # Fetch 4 + Produce 3: record batch v2; Fetch 10 + Produce 7: zstd
    body = i16(0) + uvarint(len(apis) + 1)
    for key, lo, hi in sorted(apis):
        body += i16(key) + i16(lo) + i16(hi) + b"\x00"
    body += i32(0) + b"\x00"
    return i32(corr) + body  # response header v0 for ApiVersions


def metadata_v4(corr, port):
    body = i32(0)  # throttle
    body += i32(1) + i32(1) + string("127.0.0.1") + i32(port) + i16(-1)  # brokers, rack null
    body += i16(-1) + i32(1)  # cluster id null, controller 1
    part = i16(0) + i32(0) + i32(1) + i32(1) + i32(1) + i32(1) + i32(1)
    body += i32(1) + i16(0) + string("t") + b"\x00" + i32(1) + part
    return i32(corr) + body


def produce_response(corr, version):
    part = i32(0) + i16(0) + i64(0)
    if version >= 2:
        part += i64(-1)
    if version >= 5:
        part += i64(0)
    body = i32(1) + string("t") + i32(1) + part
    if version >= 1:
        body += i32(0)
    return i32(corr) + body


def serve(conn, port, legacy, captured):
    buf = b""
    conn.settimeout(0.2)
    end = time.time() + 15
    while time.time() < end and not captured.get("done"):
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return
        if not chunk:
            return
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
            n = int.from_bytes(buf[:4], "big")
            frame, buf = buf[4:4 + n], buf[4 + n:]
            key, ver, corr = struct.unpack(">hhi", frame[:8])
            if key == 18:
                resp = api_versions_v3(corr, legacy)
            elif key == 3 and legacy == "metadata":
                captured["frame"] = frame
                captured["done"] = True
                return
            elif key == 3:
                resp = metadata_v4(corr, port)
            elif key == 0:
                captured["frame"] = frame
                resp = produce_response(corr, ver)
            else:
                return
            conn.sendall(i32(len(resp)) + resp)
            if key == 0:
                captured["done"] = True


def main():
    out_path, codec = sys.argv[1], sys.argv[2]
    # "legacy" (magic 1), "legacy0" (magic 0), "metadata" (capture kcat -L's Metadata request)
    legacy = sys.argv[3] if len(sys.argv) > 3 else ""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    captured = {}
    cmd = ["kcat", "-P", "-b", f"127.0.0.1:{port}", "-t", "t", "-p", "0", "-z", codec,
           "-X", "api.version.request=true", "-K", ":"]
    if legacy == "metadata":
        cmd = ["kcat", "-L", "-b", f"127.0.0.1:{port}", "-t", "t"]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Compressible values: librdkafka sends uncompressed when compression would not shrink.
    proc.stdin.write(b"key1:" + b"hello " * 40 + b"\n:" + b"value without key " * 10 + b"\n")
    proc.stdin.close()
    srv.settimeout(0.5)
    threads = []
    end = time.time() + 15
    while time.time() < end and not captured.get("done"):
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        t = threading.Thread(target=serve, args=(conn, port, legacy, captured), daemon=True)
        t.start()
        threads.append(t)
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    srv.close()
    if "frame" not in captured:
        print("no Produce request captured", file=sys.stderr)
        return 1
    frame = captured["frame"]
    key, ver = struct.unpack(">hh", frame[:4])
    name = "Metadata" if key == 3 else "Produce"
    what = "`kcat -L -t t`" if key == 3 else f"`kcat -P -z {codec}`, two messages"
    with open(out_path, "w") as f:
        f.write(f"# Captured from kcat 1.7 / librdkafka 2.0.2 ({what})\n")
        f.write(f"# by capture_produce.py: {name} v{ver} request payload (no size prefix).\n")
        for i in range(0, len(frame), 32):
            f.write(frame[i:i + 32].hex() + "\n")
    print(f"{out_path}: {name} v{ver}, {len(frame)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
