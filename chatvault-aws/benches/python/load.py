"""The Python chatvault 0.1.0 on DynamoDB, for the `python` section of dynamo.rs.

A `MessagesBackend` for the Python package with the one-item layout its README's
DynamoDB example describes (one item per conversation, hash key `conversation_id`,
the JSON list of every message in `messages`, a GSI on `user_id`), on boto3, and a
driver that the Rust benchmark takes turns with.

Usage (the benchmark runs it with the interpreter of scripts/python-chatvault.sh):

    python load.py MESSAGES

It makes a table of its own on the DynamoDB endpoint and region of the environment
(AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION), writes one conversation of MESSAGES messages through the
package's `ChatVault` (built in memory, saved once: saving after every message would
write the growing item 2,000 times), loads it once untimed, and prints

    ready <table> <conversation id> <messages>

Then, for each line `load` on its standard input, it loads the conversation whole
through the package's API (`ChatVault.get_conversation`, then `get_messages`), timed
with `time.perf_counter`, and prints

    load <seconds> <messages>

On `quit` (or the end of its input) it deletes its table and exits. Any failure goes
to standard error with a non-zero exit.
"""

import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime

import boto3
from chatvault import ChatVault
from chatvault.backends import LocalFiles, MessagesBackend
from chatvault.conversation import Conversation, FileAttachment, Message


class DynamoMessages(MessagesBackend):
    """The Python README's one-item layout on boto3: one `PutItem` per save, one
    `GetItem` per load."""

    def __init__(self, table):
        self.table = table

    def save(self, conversation):
        self.table.put_item(
            Item={
                "conversation_id": conversation.conversation_id,
                "user_id": conversation.user_id or "",
                "title": conversation.title,
                "messages": json.dumps([m.to_dict() for m in conversation._messages]),
                "files": json.dumps([f.to_dict() for f in conversation._files]),
                "created_at": int(conversation.created_at.timestamp()),
                "last_active": int(conversation.last_active.timestamp()),
            }
        )

    def get(self, conversation_id):
        item = self.table.get_item(Key={"conversation_id": conversation_id}).get("Item")
        if not item:
            return None
        return Conversation(
            conversation_id=item["conversation_id"],
            user_id=item.get("user_id") or None,
            title=item.get("title", ""),
            created_at=datetime.fromtimestamp(int(item.get("created_at", 0))),
            messages=[Message.from_dict(m) for m in json.loads(item.get("messages", "[]"))],
            files=[FileAttachment.from_dict(f) for f in json.loads(item.get("files", "[]"))],
        )

    def get_by_user(self, user_id):
        out = self.table.query(
            IndexName="user_id-index",
            KeyConditionExpression="user_id = :uid",
            ExpressionAttributeValues={":uid": user_id},
        )
        return [self.get(item["conversation_id"]) for item in out.get("Items", [])]

    def delete(self, conversation_id):
        self.table.delete_item(Key={"conversation_id": conversation_id})
        return True


def text(k):
    """The benchmark's message `k` (the same text as dynamo.rs's `text`)."""
    return f"message {k}: " + "lorem ipsum " * 4


def make_table(dynamodb):
    name = f"chatvault-bench-py-{uuid.uuid4().hex[:12]}"
    table = dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "conversation_id", "AttributeType": "S"},
            {"AttributeName": "user_id", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "conversation_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "user_id-index",
                "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    table.wait_until_exists()
    return table


def load(vault, conversation_id):
    conversation = vault.get_conversation(conversation_id)
    if conversation is None:
        raise RuntimeError(f"conversation {conversation_id} is missing")
    return conversation.get_messages()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: load.py MESSAGES")
    count = int(sys.argv[1])
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
    # boto3 reads AWS_DEFAULT_REGION; the Rust SDK, and the emulators' environment, AWS_REGION.
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    dynamodb = boto3.resource("dynamodb", endpoint_url=endpoint, region_name=region)
    files = tempfile.TemporaryDirectory(prefix="chatvault-bench-")
    table = make_table(dynamodb)
    try:
        backend = DynamoMessages(table)
        vault = ChatVault(messages=backend, files=LocalFiles(base_path=files.name))
        conversation = Conversation.new(user_id="bench-user")
        for k in range(count):
            role = "user" if k % 2 == 0 else "assistant"
            conversation._messages.append(Message(role=role, content=text(k)))
        conversation._auto_title()
        backend.save(conversation)
        got = len(load(vault, conversation.conversation_id))
        if got != count:
            raise RuntimeError(f"wrote {count} messages, loaded {got}")
        print(f"ready {table.name} {conversation.conversation_id} {count}", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            if command != "load":
                raise RuntimeError(f"unknown command {command!r}")
            start = time.perf_counter()
            messages = load(vault, conversation.conversation_id)
            elapsed = time.perf_counter() - start
            print(f"load {elapsed:.9f} {len(messages)}", flush=True)
    finally:
        table.delete()
        files.cleanup()


if __name__ == "__main__":
    main()
