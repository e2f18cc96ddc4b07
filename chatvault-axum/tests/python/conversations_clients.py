"""The official OpenAI Python SDKs, unmodified, against ChatVault's Conversations routes.

Usage: python conversations_clients.py BASE_URL NATIVE_CONVERSATION_ID

BASE_URL is the router's /v1; the API key is the user id (the test server's resolver reads
the bearer token). NATIVE_CONVERSATION_ID is a conversation the Rust test wrote through
ChatVault's own API. Exits non-zero (an AssertionError or an SDK error) on any mismatch,
and prints one line per step to stdout.
"""

import asyncio
import sys

import openai
from agents.memory import OpenAIConversationsSession
from openai import AsyncOpenAI, OpenAI

BASE_URL, NATIVE_ID = sys.argv[1], sys.argv[2]


def step(name):
    print(f"ok: {name}", flush=True)


def user(text):
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def sdk():
    client = OpenAI(base_url=BASE_URL, api_key="alice", max_retries=0)

    conv = client.conversations.create(metadata={"topic": "demo"}, items=[user("Hello")])
    assert conv.id.startswith("conv_"), conv
    assert conv.object == "conversation" and conv.metadata == {"topic": "demo"}, conv
    assert isinstance(conv.created_at, int) and conv.created_at > 1_600_000_000, conv
    step("conversations.create")

    got = client.conversations.retrieve(conv.id)
    assert got.id == conv.id and got.created_at == conv.created_at, got
    step("conversations.retrieve")

    updated = client.conversations.update(conv.id, metadata={"topic": "changed"})
    assert updated.metadata == {"topic": "changed"}, updated
    assert client.conversations.retrieve(conv.id).metadata == {"topic": "changed"}
    step("conversations.update")

    created = client.conversations.items.create(
        conv.id,
        items=[
            user("What time is it?"),
            {"type": "function_call", "call_id": "call_1", "name": "clock", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "09:30"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "It is 09:30.", "annotations": []}],
            },
        ],
    )
    assert [i.type for i in created.data] == ["message", "function_call", "function_call_output", "message"]
    assert created.first_id == created.data[0].id and created.last_id == created.data[-1].id
    assert created.has_more is False
    step("conversations.items.create")

    item = client.conversations.items.retrieve(created.data[1].id, conversation_id=conv.id)
    assert item.type == "function_call" and item.call_id == "call_1" and item.name == "clock", item
    step("conversations.items.retrieve")

    # 250 more, 20 at a time (the API's batch limit), then read back by auto-pagination.
    for start in range(0, 250, 20):
        client.conversations.items.create(
            conv.id, items=[user(f"n{i}") for i in range(start, min(start + 20, 250))]
        )
    texts = [
        i.content[0].text
        for i in client.conversations.items.list(conv.id, order="asc", limit=17)
        if i.type == "message"
    ]
    assert texts[:3] == ["Hello", "What time is it?", "It is 09:30."], texts[:3]
    assert texts[3:] == [f"n{i}" for i in range(250)], texts[3:8]
    newest = list(client.conversations.items.list(conv.id))  # desc, 20 a page
    assert len(newest) == 255 and newest[0].content[0].text == "n249", len(newest)
    page = client.conversations.items.list(conv.id, limit=5)
    assert len(page.data) == 5 and page.has_more is True and page.last_id == page.data[-1].id
    step("conversations.items.list (auto-pagination over 255 items, both orders)")

    after = client.conversations.items.delete(created.data[0].id, conversation_id=conv.id)
    assert after.id == conv.id and after.object == "conversation", after
    try:
        client.conversations.items.retrieve(created.data[0].id, conversation_id=conv.id)
        raise AssertionError("a deleted item was still found")
    except openai.NotFoundError:
        pass
    step("conversations.items.delete")

    # Someone else's conversation is not found; errors parse as the SDK's classes.
    mallory = OpenAI(base_url=BASE_URL, api_key="mallory", max_retries=0)
    try:
        mallory.conversations.retrieve(conv.id)
        raise AssertionError("mallory read alice's conversation")
    except openai.NotFoundError as err:
        assert err.status_code == 404 and isinstance(err.body, dict) and err.body.get("message"), err.body
    try:
        client.conversations.items.list(conv.id, limit=1000)
        raise AssertionError("limit 1000 was accepted")
    except openai.BadRequestError as err:
        assert err.body.get("param") == "limit", err.body
    step("errors: NotFoundError, BadRequestError")

    # A conversation written through ChatVault's own API reads as items.
    native = list(client.conversations.items.list(f"conv_{NATIVE_ID}", order="asc"))
    assert [i.type for i in native] == ["message", "message"], native
    assert native[0].content[0].text == "Written by ChatVault", native
    client.conversations.items.create(f"conv_{NATIVE_ID}", items=[user("Written by the SDK")])
    step("ChatVault's own conversation through the SDK")

    deleted = client.conversations.delete(conv.id)
    assert deleted.id == conv.id and deleted.deleted is True and deleted.object == "conversation.deleted"
    try:
        client.conversations.retrieve(conv.id)
        raise AssertionError("a deleted conversation was still found")
    except openai.NotFoundError:
        pass
    step("conversations.delete")


async def agents_session():
    client = AsyncOpenAI(base_url=BASE_URL, api_key="alice", max_retries=0)
    session = OpenAIConversationsSession(openai_client=client)
    items = [user("first")]
    items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "second", "annotations": []}]})
    items.append({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"x\": 1}"})
    items.append({"type": "function_call_output", "call_id": "c1", "output": "done"})
    items.append({"type": "reasoning", "id": "rs_opaque", "summary": [], "encrypted_content": "gAAA/+=opaque"})
    items += [user(f"u{i}") for i in range(30)]  # more than one request of 20
    await session.add_items(items)
    step("OpenAIConversationsSession.add_items")

    got = await session.get_items()
    assert len(got) == 35, len(got)
    assert got[0]["content"][0]["text"] == "first" and got[-1]["content"][0]["text"] == "u29"
    assert got[2]["type"] == "function_call" and got[2]["arguments"] == "{\"x\": 1}", got[2]
    reasoning = got[4]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"] == "gAAA/+=opaque", reasoning
    last3 = await session.get_items(limit=3)
    assert [i["content"][0]["text"] for i in last3] == ["u27", "u28", "u29"], last3
    step("OpenAIConversationsSession.get_items (with and without limit)")

    popped = await session.pop_item()
    assert popped["content"][0]["text"] == "u29", popped
    assert len(await session.get_items()) == 34
    assert (await session.get_items(limit=1))[0]["content"][0]["text"] == "u28"
    step("OpenAIConversationsSession.pop_item")

    conversation_id = session.session_id
    await session.clear_session()
    try:
        await client.conversations.retrieve(conversation_id)
        raise AssertionError("clear_session left the conversation")
    except openai.NotFoundError:
        pass
    step("OpenAIConversationsSession.clear_session")


sdk()
asyncio.run(agents_session())
print("all steps passed", flush=True)
