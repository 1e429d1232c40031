"""gunicorn's gthread worker, with a listening socket of its own beside the master's.

With one listening socket shared by every worker, whichever worker wakes first can accept a
whole burst of connections (wrk's 32, nginx's keep-alive pool) and leave the others idle.
With ``reuse_port`` each worker also listens on a socket of its own in the same
``SO_REUSEPORT`` group, and the kernel hashes each new connection to one socket of the
group, so most connections are spread over the workers. The master's socket stays in the
group (``on_starting`` in ``config/gunicorn.conf.py`` creates it), and every worker accepts
from it too: while all workers are down (a restart, a simultaneous recycle) connections wait
there instead of being refused.

A connection hashed to a worker's own socket can only be accepted by that worker, so the
socket exists only while the worker accepts: gunicorn binds it before the app is imported
and warmed (a second or two), and would keep it while a stopping worker finishes its
requests. Here it is opened when the worker starts accepting and closed when it stops.

This module is imported by gunicorn only (``worker_class`` in ``config/gunicorn.conf.py``).
"""

from __future__ import annotations

from typing import Any

from gunicorn import sock, util
from gunicorn.workers.gthread import TConn, ThreadWorker


class OwnSocketThreadWorker(ThreadWorker):
    def __init__(self, age: int, ppid: int, sockets: list[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(age, ppid, sockets, *args, **kwargs)
        self._shared = list(sockets)  # the master's, before gunicorn swaps in this worker's own
        self._own: list[Any] = []

    def init_process(self) -> None:
        if self.cfg.reuse_port:
            for listener in self.sockets:
                if listener not in self._shared:
                    listener.close()
            self.sockets = list(self._shared)
        super().init_process()

    def run(self) -> None:
        # After post_worker_init: the app is loaded, the tokenizer warm, the pools started.
        if self.cfg.reuse_port:
            self._own = sock.create_sockets(self.cfg, self.log)
            for listener in self._own:
                util.close_on_exec(listener)
            self.sockets = self._shared + self._own
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
        listener.setblocking(False)
        while True:
            try:
                client, address = listener.accept()
            except OSError:  # nothing more queued
                return
            self.nr_conns += 1
            client.setblocking(True)
            self.enqueue_req(TConn(self.cfg, client, address, listener.getsockname()))
