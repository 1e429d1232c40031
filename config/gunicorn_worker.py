"""gunicorn's gthread worker, with a listening socket of its own beside the master's.

With one listening socket shared by every worker, whichever worker wakes first can accept a
whole burst of connections (wrk's 32, nginx's keep-alive pool) and leave the others idle.
Here each worker also listens on a socket of its own in the same ``SO_REUSEPORT`` group as
the master's, and the kernel hashes each new connection to one socket of the group, so most
connections are spread over the workers. The master's socket stays in the group
(``on_starting`` in ``config/gunicorn.conf.py`` makes it), and every worker accepts from it
too: while all workers are down (a restart, a simultaneous recycle) connections wait there
instead of being refused.

A connection hashed to a worker's own socket can only be accepted by that worker, so the
socket exists only while the worker accepts: it is opened once the app is loaded and warm,
and drained and closed as the worker stops. (gunicorn's own ``reuse_port`` binds a worker's
socket before the app is imported, makes none in the master, and keeps a stopping worker's
socket until it exits — connections then wait, or are refused or reset.)

This module is imported by gunicorn's master and workers only (``config/gunicorn.conf.py``).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from gunicorn import sock, util
from gunicorn.workers.gthread import ThreadWorker


def socket_per_worker(binds: list[str]) -> bool:
    """On unless ``GUNICORN_REUSE_PORT=0``; TCP addresses only (a unix socket cannot be
    shared this way)."""
    return os.environ.get("GUNICORN_REUSE_PORT", "1") != "0" and not any(
        bind.startswith(("unix:", "fd://")) for bind in binds
    )


def reuse_port_sockets(cfg: Any, log: Any) -> list[Any]:
    """A listening socket for every bound address, in that address's ``SO_REUSEPORT`` group."""
    listeners = []
    for address in cfg.address:
        kind = sock.TCP6Socket if util.is_ipv6(address[0]) else sock.TCPSocket
        raw = socket.socket(kind.FAMILY, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        raw.bind(address)
        listeners.append(kind(address, cfg, log, fd=raw.detach()))  # gunicorn's wrapper listens
    return listeners


class OwnSocketThreadWorker(ThreadWorker):
    def __init__(self, age: int, ppid: int, sockets: list[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(age, ppid, sockets, *args, **kwargs)
        self._own: list[Any] = []

    def run(self) -> None:
        # After post_worker_init: the app is loaded, the tokenizer warm, the pools started.
        if socket_per_worker(self.cfg.bind):
            self._own = reuse_port_sockets(self.cfg, self.log)
            self.sockets = self.sockets + self._own
        super().run()

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            # Stopping (a recycle, a restart): serve what is queued here already, then close,
            # so the kernel routes no new connection to this worker.
            for listener in self._own:
                self._drain(listener)
                listener.close()
            self._own = []

    def _drain(self, listener: Any) -> None:
        # gthread's own accept takes one connection, or none once the queue is empty.
        while True:
            accepted = self.nr_conns
            self.accept(listener)
            if self.nr_conns == accepted:
                return
