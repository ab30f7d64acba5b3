#!/usr/bin/python3
"""Runs the librdkafka C client (rdkafka_roundtrip, built by CMake) against a 3-broker cluster."""

import os
import subprocess
import sys

import harness


def main():
    program = os.environ.get("RDKAFKA_ROUNDTRIP")
    if not program or not os.access(program, os.X_OK):
        print("FAIL: set RDKAFKA_ROUNDTRIP to the built rdkafka_roundtrip", flush=True)
        return 1
    with harness.Cluster() as cluster:
        out = subprocess.run([program, cluster.bootstrap], timeout=300)
        if out.returncode != 0:
            raise RuntimeError("rdkafka_roundtrip exited with %d" % out.returncode)
    print("PASS test_librdkafka")


if __name__ == "__main__":
    sys.exit(main())
