"""The async clients against the live server: every method, as the sync tests use them."""

from __future__ import annotations

import asyncio
import time

import pytest

from recollect_client import (
    AsyncRecollect,
    AsyncRecollectAdmin,
    AuthenticationError,
    Message,
    NotFoundError,
    TenantPolicy,
    ToolCall,
    ToolFunction,
    ValidationError,
)
from recollect_client.models import CurrentKey


def test_every_tenant_method(live, tenant):
    call = ToolCall(id="call_9", function=ToolFunction(name="lookup", arguments="{}"))

    async def run() -> None:
        async with AsyncRecollect(live.url, tenant.api_key) as sdk:
            appended = await sdk.append(
                "a",
                [
                    Message(role="user", content="find the launch date", metadata={"team": "x"}),
                    Message(role="assistant", content=None, tool_calls=[call]),
                    Message(role="tool", content="the 14th", tool_call_id="call_9"),
                ],
                context="about a launch",
            )
            assert appended.message_ids == [1, 2, 3] and not appended.replayed
            again = await sdk.append("a", [], idempotency_key="k-1")
            assert (await sdk.append("a", [], idempotency_key="k-1")).replayed and not again.replayed

            memory = await sdk.get_memory("a")
            assert [m.id for m in memory.messages] == [3, 2, 1] and memory.context == "about a launch"
            assert memory.messages[1].tool_calls == [call]
            assert await sdk.list_sessions(page=1, size=10) == ["a"]
            assert (await sdk.get_message("a", 3)).tool_call_id == "call_9"

            page = await sdk.history("a", limit=2)
            assert [m.id for m in page.messages] == [3, 2] and page.next_before == 2
            assert [m.id async for m in sdk.iter_history("a", page_size=2)] == [3, 2, 1]

            deadline = time.monotonic() + 10
            while (await sdk.get_memory("a")).pending_index:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            hits = await sdk.retrieve("a", "launch date", k=2, mode="keyword")
            assert hits[0].id == 1
            assert [(h.session_id, h.id) for h in await sdk.search("launch", metadata={"team": "x"})] == [
                ("a", 1)
            ]

            context = await sdk.get_context("a", model="gpt-4o", max_tokens=500, query="launch", k=2)
            assert [m.role for m in context.messages] == ["system", "user", "assistant", "tool"]
            assert await sdk.current_key() == CurrentKey(tenant_id=tenant.id, key_id=tenant.key_id)
            assert (await sdk.usage()).messages.total == 3

            await sdk.delete_message("a", 1)
            with pytest.raises(NotFoundError):
                await sdk.get_message("a", 1)
            await sdk.delete_memory("a")
            assert (await sdk.get_memory("a")).messages == []

    asyncio.run(run())


def test_errors_raise_the_same_classes(live, tenant):
    async def run() -> None:
        async with AsyncRecollect(live.url, "rk_wrong") as stranger:
            with pytest.raises(AuthenticationError) as caught:
                await stranger.usage()
            assert caught.value.code == "unauthorized" and caught.value.request_id
        async with AsyncRecollect(live.url, tenant.api_key) as sdk:
            with pytest.raises(ValidationError):
                await sdk.retrieve("s", "")

    asyncio.run(run())


def test_every_admin_method(live, admin_token):
    async def run() -> None:
        async with AsyncRecollectAdmin(live.url, admin_token) as admin:
            created = await admin.create_tenant(
                "async-admin", name="Async", policy=TenantPolicy(window_size=20)
            )
            assert created.tenant.policy == {"window_size": 20} and created.api_key.startswith("rk_")
            assert "async-admin" in [t.id for t in await admin.list_tenants()]
            assert (await admin.get_tenant("async-admin")).effective_policy["window_size"] == 20
            updated = await admin.update_tenant("async-admin", name="Renamed", policy={"window_size": None})
            assert updated.name == "Renamed" and updated.policy == {}
            key = await admin.create_key("async-admin", label="second")
            assert {k.label for k in await admin.list_keys("async-admin")} == {None, "second"}
            await admin.revoke_key("async-admin", key.key_id)
            assert [k.key_id for k in await admin.list_keys("async-admin")] == [created.key_id]
            assert (await admin.tenant_usage("async-admin")).sessions == 0
            assert (await admin.delete_tenant("async-admin")).status == "Ok"
            with pytest.raises(NotFoundError) as caught:
                await admin.get_tenant("async-admin")
            assert caught.value.code == "tenant_not_found"

    asyncio.run(run())


def test_async_export_and_import(live, tenant, admin_token):
    if not live.has_route("/sessions/<sid:session_id>/export"):
        pytest.skip("this server has no export/import routes (api.md §10) yet")

    async def run() -> None:
        async with AsyncRecollect(live.url, tenant.api_key) as sdk:
            await sdk.append("e", [Message(role="user", content="kept")])
            async with sdk.export_session("e") as stream:
                lines = [line async for line in stream]
            await sdk.delete_memory("e")
            await sdk.import_session("e", lines)
            assert [m.content for m in (await sdk.get_memory("e")).messages] == ["kept"]
        async with AsyncRecollectAdmin(live.url, admin_token) as admin:
            exported = [line async for line in admin.export_tenant(tenant.id)]
            assert [line["type"] for line in exported] == ["session", "message"]

    asyncio.run(run())
