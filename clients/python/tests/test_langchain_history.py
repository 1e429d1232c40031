"""RecollectChatMessageHistory: LangChain messages both ways, and a chain that remembers
through RunnableWithMessageHistory around langchain-core's fake chat model, live."""

from __future__ import annotations

import asyncio
import warnings

from langchain_core._api.deprecation import LangChainDeprecationWarning
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda

from recollect_client import AsyncRecollect, Message, Recollect, StoredMessage
from recollect_client.langchain import RecollectChatMessageHistory, from_recollect, to_recollect

CONVERSATION: list[BaseMessage] = [
    SystemMessage(content="You are terse."),
    HumanMessage(content="Weather in Paris?", additional_kwargs={"metadata": {"channel": "web"}}),
    AIMessage(
        content="",
        tool_calls=[
            {"name": "weather", "args": {"city": "Paris", "days": 2}, "id": "call_1", "type": "tool_call"}
        ],
    ),
    ToolMessage(content='{"temp": 18}', tool_call_id="call_1", name="weather"),
    AIMessage(content="18 degrees."),
    ChatMessage(role="narrator", content="Later that day..."),
]


def essence(message: BaseMessage) -> tuple:
    """What a round trip must keep (ids and timestamps are the server's)."""
    return (
        type(message).__name__,
        message.content,
        getattr(message, "role", None),
        message.name,
        getattr(message, "tool_call_id", None),
        [(c["name"], c["args"], c["id"]) for c in getattr(message, "tool_calls", [])],
        message.additional_kwargs.get("metadata"),
    )


def stored(message: Message, message_id: int) -> StoredMessage:
    return StoredMessage(
        id=message_id,
        created_at="2026-12-02T10:00:00.000Z",
        token_count=1,
        **message.model_dump(exclude_none=True, exclude={"content"}),
        content=message.content or "",
    )


def test_each_message_type_round_trips_offline():
    recollect = [to_recollect(m) for m in CONVERSATION]
    assert [m.role for m in recollect] == ["system", "user", "assistant", "tool", "assistant", "narrator"]
    assert recollect[2].tool_calls[0].function.model_dump() == {
        "name": "weather",
        "arguments": '{"city": "Paris", "days": 2}',
    }
    assert (recollect[3].tool_call_id, recollect[3].name) == ("call_1", "weather")
    back = [from_recollect(stored(m, n)) for n, m in enumerate(recollect, start=1)]
    assert [essence(m) for m in back] == [essence(m) for m in CONVERSATION]
    assert back[1].id == "2" and back[1].response_metadata == {"created_at": "2026-12-02T10:00:00.000Z"}


def test_motorhead_roles_and_unparsable_tool_arguments_are_read():
    human = from_recollect(StoredMessage(id=1, role="Human", content="hi", created_at="t", token_count=1))
    ai = from_recollect(
        StoredMessage(
            id=2,
            role="AI",
            content="",
            created_at="t",
            token_count=1,
            tool_calls=[{"id": "c", "function": {"name": "f", "arguments": "not json"}}],
        )
    )
    assert isinstance(human, HumanMessage) and isinstance(ai, AIMessage)
    assert ai.tool_calls == [] and ai.invalid_tool_calls[0]["args"] == "not json"
    assert to_recollect(ai).tool_calls[0].function.arguments == "not json"  # kept as the model sent it


def test_content_blocks_are_stored_as_their_text():
    message = HumanMessage(content=[{"type": "text", "text": "look "}, {"type": "image_url"}, "here"])
    assert to_recollect(message).content == "look here"


def test_add_messages_posts_once_and_messages_read_back_oldest_first(live, tenant, recording):
    transport = recording()
    with Recollect(live.url, tenant.api_key, transport=transport) as client:
        history = RecollectChatMessageHistory("lc", client, metadata={"app": "demo"})
        history.add_messages(CONVERSATION)
        assert [r.method for r in transport.requests] == ["POST"]
        assert [essence(m) for m in history.messages] == [
            essence(m)[:-1] + ({"app": "demo", **(m.additional_kwargs.get("metadata") or {})},)
            for m in CONVERSATION
        ]
        history.add_user_message("and tomorrow?")
        assert history.messages[-1].content == "and tomorrow?"
        assert client.get_memory("lc").messages[0].role == "user"
        history.clear()
        assert history.messages == []


def test_the_summary_is_exposed_and_optionally_comes_first(live, tenant):
    with Recollect(live.url, tenant.api_key) as client:
        client.append("sum", [Message(role="Human", content="hello")], context="They greeted each other.")
        plain = RecollectChatMessageHistory("sum", client)
        assert plain.summary == "They greeted each other."
        assert [type(m).__name__ for m in plain.messages] == ["HumanMessage"]
        with_summary = RecollectChatMessageHistory("sum", client, summary_as_system_message=True)
        first, second = with_summary.messages
        assert isinstance(first, SystemMessage) and first.content == "They greeted each other."
        assert second.content == "hello"
        assert [
            m.content for m in RecollectChatMessageHistory("sum", client, full_history=True).messages
        ] == ["hello"]


def test_the_async_methods_use_the_async_client(live, tenant):
    async def run() -> list[BaseMessage]:
        async with AsyncRecollect(live.url, tenant.api_key) as client:
            history = RecollectChatMessageHistory("async-lc", async_client=client)
            await history.aadd_messages([HumanMessage(content="hi"), AIMessage(content="hello")])
            messages = await history.aget_messages()
            assert await history.aget_summary() is None
            await history.aclear()
            assert await history.aget_messages() == []
            return messages

    assert [essence(m)[:2] for m in asyncio.run(run())] == [("HumanMessage", "hi"), ("AIMessage", "hello")]


def test_a_chain_remembers_through_runnable_with_message_history(live, tenant):
    from langchain_core.runnables.history import RunnableWithMessageHistory

    seen: list[list[BaseMessage]] = []

    def record(prompt):  # what the model is sent, to check the history reached it
        seen.append(prompt.to_messages())
        return prompt

    model = GenericFakeChatModel(
        messages=iter([AIMessage(content="Hi Ada!"), AIMessage(content="You are Ada.")])
    )
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{input}")])
    with Recollect(live.url, tenant.api_key) as client:
        with warnings.catch_warnings():
            # LangChain deprecates this class in favour of LangGraph persistence (1.x); it
            # still works, and existing code uses it.
            warnings.simplefilter("ignore", LangChainDeprecationWarning)
            chain = RunnableWithMessageHistory(
                prompt | RunnableLambda(record) | model,
                lambda session_id: RecollectChatMessageHistory(session_id, client),
                input_messages_key="input",
                history_messages_key="history",
            )
        config = {"configurable": {"session_id": "chain"}}
        assert chain.invoke({"input": "I am Ada."}, config=config).content == "Hi Ada!"
        assert chain.invoke({"input": "Who am I?"}, config=config).content == "You are Ada."
        assert [(type(m).__name__, m.content) for m in seen[1]] == [
            ("HumanMessage", "I am Ada."),
            ("AIMessage", "Hi Ada!"),
            ("HumanMessage", "Who am I?"),
        ]
        stored = client.get_memory("chain").messages[::-1]
        assert [(m.role, m.content) for m in stored] == [
            ("user", "I am Ada."),
            ("assistant", "Hi Ada!"),
            ("user", "Who am I?"),
            ("assistant", "You are Ada."),
        ]
