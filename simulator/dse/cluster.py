"""Connecting to a Dask scheduler given by ``--cluster``, with clear errors and a hard time limit.

Contract: ``connect(address, timeout_s)`` returns a ``distributed.Client`` connected to the
scheduler at ``address`` (``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``HOST:PORT``), or raises a
``ConfigError`` at ``--cluster`` saying what was expected and what was found; it never hangs and
never lets another exception through. In order:

1. the address is checked (scheme, host, a port in 1..65535) before any connection is made;
2. for ``tcp://``, a plain socket connects and waits for the scheduler's greeting: a Dask
   server writes its handshake (an 8-byte frame length, then msgpack) as soon as it accepts a
   connection, so a listener that stays silent (an HTTP server, such as the Dask dashboard on
   port 8787, waits for a request) or answers something else is told apart without speaking
   the Dask protocol to it (a Dask client would read an HTTP reply as a frame length of
   exabytes and try to allocate it);
3. ``distributed.Client`` is created in a daemon thread joined with a deadline; a client that
   does not finish connecting by then is abandoned (closed if it ever connects) and reported;
4. a scheduler without workers (none joins within the deadline) is reported too: points sent
   to it would wait forever.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any
from urllib.parse import urlparse

from workloads.errors import ConfigError, Problem

__all__ = ["scheduler_address", "probe_scheduler", "connect", "DEFAULT_PORT", "MAX_GREETING_BYTES"]

DEFAULT_PORT = 8786  # the Dask scheduler's default port (its dashboard is 8787)
MAX_GREETING_BYTES = 1 << 20  # a Dask handshake is a few hundred bytes


def _error(message: str) -> ConfigError:
    return ConfigError(Problem(None, "--cluster", message))


def scheduler_address(address: str) -> tuple[str, str, int]:
    """(full address, host, port) of ``--cluster``; ConfigError if it is not a scheduler address."""
    expected = "expected tcp://HOST:PORT of a Dask scheduler (or 'local' to start a local cluster)"
    full = address if "://" in address else f"tcp://{address}"
    u = urlparse(full)
    if u.scheme not in ("tcp", "tls") or not u.hostname:
        raise _error(f"'{address}' is not a Dask scheduler address; {expected}")
    try:
        port = u.port
    except ValueError:
        port_text = u.netloc.rsplit(":", 1)[-1]
        raise _error(f"'{address}': port '{port_text}' is not a port number (1..65535); {expected}") from None
    if port == 0:
        raise _error(f"'{address}': port 0 is not a port a scheduler listens on (1..65535); {expected}")
    if u.path not in ("", "/") or u.query or u.fragment:
        raise _error(f"'{address}' has a path or query after the port; {expected}")
    return full, u.hostname, port or DEFAULT_PORT


def _shown(data: bytes) -> str:
    text = data[:40].decode("latin-1")
    return "".join(c if c.isprintable() else "." for c in text)


def probe_scheduler(full: str, host: str, port: int, timeout_s: float) -> None:
    """Connect with a plain socket and check the peer greets like a Dask server (module docstring)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        raise _error(f"cannot reach the Dask scheduler at {full} within {timeout_s:g} s ({exc}); start one "
                     f"with 'dask scheduler' and workers with 'dask worker {full}', or use --cluster local") from None
    with sock:
        head = b""
        try:
            sock.settimeout(timeout_s)
            while len(head) < 8:
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    break
                head += chunk
        except OSError:  # socket.timeout included
            pass
        if len(head) == 8:
            sizes = struct.unpack("<Q", head) + struct.unpack(">Q", head)  # either byte order
            if any(0 < size <= MAX_GREETING_BYTES for size in sizes):
                return
            raise _error(f"{full} answered '{_shown(head)}...', not a Dask scheduler's greeting; expected "
                         f"the address of a Dask scheduler (default port {DEFAULT_PORT})")
        if head:
            raise _error(f"{full} sent {len(head)} byte(s) ('{_shown(head)}') and stopped; expected a Dask "
                         f"scheduler's greeting (default port {DEFAULT_PORT})")
        found = _what_listens(sock)
        raise _error(f"{full} accepted the connection but sent no Dask greeting within {timeout_s:g} s "
                     f"({found}); expected the address of a Dask scheduler, which greets every "
                     f"connection at once (default port {DEFAULT_PORT}; its dashboard is on {DEFAULT_PORT + 1})")


def _what_listens(sock: socket.socket) -> str:
    """A guess at a silent listener: ask it an HTTP question (what a browser would send)."""
    try:
        sock.settimeout(1.0)
        sock.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
        reply = sock.recv(64)
    except OSError:
        return "it does not answer HTTP either"
    if reply.startswith(b"HTTP/"):
        status = reply.split(b"\r\n", 1)[0]
        return f"it is an HTTP server: '{_shown(status)}'"
    if reply:
        return f"it answers '{_shown(reply)}'"
    return "it closed the connection when asked over HTTP"


def connect(address: str, timeout_s: float) -> Any:
    """A ``distributed.Client`` for ``address``, or ConfigError within about ``7 * timeout_s + 2`` s."""
    import distributed

    full, host, port = scheduler_address(address)
    if full.startswith("tcp://"):
        probe_scheduler(full, host, port, timeout_s)
    limit = 3 * timeout_s  # the client's own timeout; the thread gets a little more
    box: dict[str, Any] = {}
    gave_up = threading.Event()

    def create() -> None:
        try:
            client = distributed.Client(full, timeout=f"{limit:g}s")
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a ConfigError below
            box["error"] = exc
            return
        if gave_up.is_set():  # too late: nobody will use it
            try:
                client.close(timeout=2)
            except Exception:  # noqa: BLE001 - closing an abandoned client is best effort
                pass
            return
        box["client"] = client

    thread = threading.Thread(target=create, name="tessera-dask-connect", daemon=True)
    thread.start()
    thread.join(limit + 1.0)
    if thread.is_alive():
        gave_up.set()
        raise _error(f"{full} greeted like a Dask server but the client did not finish connecting within "
                     f"{limit + 1:g} s; expected a Dask scheduler that answers (is it overloaded, or "
                     "a Dask worker's or nanny's port rather than the scheduler's?)")
    if "error" in box:
        exc = box["error"]
        raise _error(f"connected to {full} but it did not answer as a Dask scheduler "
                     f"({type(exc).__name__}: {exc}); expected the address of a running 'dask scheduler'")
    client = box["client"]
    try:
        if not client.nthreads():
            client.wait_for_workers(1, timeout=limit)
    except Exception:  # noqa: BLE001 - TimeoutError, or the scheduler went away
        client.close(timeout=2)
        raise _error(f"the Dask scheduler at {full} has no workers (none joined within {limit:g} s); "
                     f"start some with 'dask worker {full}'") from None
    return client
