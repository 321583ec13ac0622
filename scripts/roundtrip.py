#!/usr/bin/env python3
"""The host's floor for one request's round trip, to set B3's p99 against.

Sends a GET every 5 ms (B3's pace) on one keep-alive loopback connection and prints the
round-trip percentiles. Without a URL it answers itself from a minimal Python server in
another process, which does no work at all: what that server's p99 is, no server on this
host can beat. With a URL (e.g. http://127.0.0.1:8080/healthz of a running Vigil) it
times that.

    python3 scripts/roundtrip.py [URL] [--count N]
"""
import argparse
import multiprocessing
import socket
import time
import urllib.parse

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def echo_server(listener):
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while conn.recv(65536):
        conn.sendall(ANSWER)


def read_answer(sock):
    """Reads one HTTP answer with a Content-Length body; returns its status line."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
        head, sep, body = buf.partition(b"\r\n\r\n")
        if not sep:
            continue
        lines = head.split(b"\r\n")
        length = next(
            (int(l.split(b":", 1)[1]) for l in lines[1:] if l.lower().startswith(b"content-length:")),
            0,
        )
        if len(body) >= length:
            return lines[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="time GETs of this URL instead of the echo server")
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    if args.url:
        url = urllib.parse.urlsplit(args.url)
        address, path, what = (url.hostname, url.port or 80), url.path or "/", args.url
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        multiprocessing.Process(target=echo_server, args=(listener,), daemon=True).start()
        address, path, what = listener.getsockname(), "/", "a Python echo server"
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = f"GET {path} HTTP/1.1\r\nHost: {address[0]}\r\n\r\n".encode()
    took = []
    for _ in range(args.count):
        start = time.perf_counter()
        sock.sendall(request)
        status = read_answer(sock)
        took.append((time.perf_counter() - start) * 1000)
        if b" 200 " not in status:
            raise SystemExit(f"{what} answered {status.decode(errors='replace')}")
        while time.perf_counter() < start + 0.005:
            time.sleep(max(0.0, start + 0.0045 - time.perf_counter()))
    took.sort()
    at = lambda q: took[min(len(took) - 1, int(q * len(took)))]
    print(f"{what}: {len(took)} round trips, p50 {at(0.5):.2f}  p90 {at(0.9):.2f}  "
          f"p99 {at(0.99):.2f}  max {took[-1]:.2f} ms")


if __name__ == "__main__":
    main()
