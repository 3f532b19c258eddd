"""The loopback front-end every emulator shares (`Emulator.serve`)."""

from __future__ import annotations

import socket
import struct
import time

import httpx

from catalogsync.testing import Emulator


class Echo(Emulator):
    """Answers every request with a small JSON body."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"path": request.url.path})


def test_served_answers_do_not_stall_on_small_writes():
    """Sequential requests on one kept-alive connection are answered at once, not after the
    ~40 ms a Nagle / delayed-ACK stall adds when headers and body go out as separate writes.
    """
    emulator = Echo()
    with emulator.serve() as url, httpx.Client(base_url=url) as client:
        client.get("/warm-up").raise_for_status()
        start = time.perf_counter()
        for n in range(40):
            assert client.put(f"/items/{n}", json={"n": n}).json() == {"path": f"/items/{n}"}
        elapsed = time.perf_counter() - start

    assert emulator.count("PUT") == 40
    assert elapsed < 1.0, f"40 requests took {elapsed:.2f} s (a stall is ~40 ms each: 1.6 s)"


def test_a_client_dying_mid_request_is_not_reported_as_a_server_error(capfd):
    """A client that resets its connection (a SIGKILLed worker) leaves no traceback on stderr."""
    emulator = Echo()
    with emulator.serve() as url:
        host, port = url.removeprefix("http://").split(":")
        for _ in range(3):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"PUT /items/1 HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # SO_LINGER 0: the peer sees a reset, as when a process is killed
        time.sleep(0.3)  # let the handler threads hit the reset
        with httpx.Client(base_url=url) as client:
            assert client.get("/still/up").status_code == 200

    assert "Traceback" not in capfd.readouterr().err
