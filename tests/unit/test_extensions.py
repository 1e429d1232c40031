"""The per-process handles (app/extensions.py): a forked child builds its own."""

from __future__ import annotations

import os

from app.extensions import Resources, current_pid
from config import load_settings


def in_a_forked_child(work) -> str:  # noqa: ANN001
    """``work()``'s result, computed in a child process forked from this one."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's cleanup
        try:
            os.write(write, str(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as answer:
        return answer.read() + f"|{pid}"


def test_current_pid_is_the_childs_after_a_fork():
    seen, child = in_a_forked_child(current_pid).split("|")
    assert int(seen) == int(child) != os.getpid()
    assert current_pid() == os.getpid()


def test_a_forked_child_builds_its_own_redis_client():
    resources = Resources(load_settings(redis_url="redis://127.0.0.1:1/0", admin_token="x" * 32))
    parents = id(resources.redis)
    assert id(resources.redis) == parents, "built once per process"
    childs, _ = in_a_forked_child(lambda: id(resources.redis)).split("|")
    assert int(childs) != parents
