"""Kafka wire helpers for the tests that speak the protocol by hand (a proxy that rewrites
answers, a raw client): exact socket reads, size-prefixed frames and a reader of the classic
(non-flexible) big-endian fields."""

import struct


def read_exact(sock, n):
    """n bytes from sock; ConnectionError when the peer closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def read_frame(sock):
    """One size-prefixed Kafka frame (without its 4-byte size)."""
    size = struct.unpack(">i", read_exact(sock, 4))[0]
    return read_exact(sock, size)


class Reader:
    """Fields of a non-flexible request or response, from `pos`."""

    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0]

    def raw_string(self):
        """INT16-prefixed STRING as bytes; None for a null string (length -1)."""
        n = self.take(">h")
        s = self.data[self.pos:self.pos + max(n, 0)]
        self.pos += max(n, 0)
        return s if n >= 0 else None

    def string(self):
        """The same, decoded; "" for a null string."""
        return (self.raw_string() or b"").decode()

    def bytes_(self):
        """INT32-prefixed BYTES; b"" for null."""
        n = self.take(">i")
        b = self.data[self.pos:self.pos + max(n, 0)]
        self.pos += max(n, 0)
        return b
