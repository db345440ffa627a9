"""`/v1/chat/completions` for released models: the request checked as OpenAI documents it
(`ChatRequest`), the replies generated with the job's inference hook applied, and the answer as
one `chat.completion` object or, with `stream`, as server-sent `chat.completion.chunk` events.

A streamed reply (`stream: true`, one choice, a model trained here) is sent as the model writes
it, in OpenAI's event format (a role chunk, content chunks, a chunk with `finish_reason`,
`data: [DONE]`; `stream_events`): the first words arrive while the rest is being generated. Text
that could be the start of a stop sequence, and trailing white space, wait for the next piece, so
the chunks join to exactly the reply a request without `stream` gets. Several choices (`n` > 1)
and models served by an upstream provider are generated whole first, then sent as chunks of a few
words (`chunks`). Parameters
tasksafe does not implement (tools, response_format, logprobs, ...) are refused with 400, never
ignored.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_TOKENS = 1024


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str
    name: str | None = None


class ChatRequest(BaseModel):
    """The parameters tasksafe serves; any other key is a 400 naming it."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[Turn] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=8)
    seed: int | None = Field(None, ge=0, lt=2**31)
    stop: list[str] = Field(default_factory=list, description="a string or up to 4")
    stream: bool = False
    stream_options: dict | None = None
    user: str | None = None
    metadata: dict | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else [] if value is None else value
        if not isinstance(stops, list) or len(stops) > 4 or any(not isinstance(s, str) or not s for s in stops):
            raise ValueError("stop: up to 4 non-empty strings")
        return stops

    def conversation(self) -> list[dict]:
        return [{"role": "system" if t.role == "developer" else t.role, "content": t.content} for t in self.messages]

    def limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 128


def parse(body: dict) -> ChatRequest | tuple[str, str]:
    """The checked request, or (param, message) for the first problem."""
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or "body"
        message = "is not supported by this server" if first["type"] == "extra_forbidden" else first["msg"]
        return param, f"{param}: {message.removeprefix('Value error, ')}"


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """`text` up to the first stop sequence, and whether one was found."""
    ends = [text.find(s) for s in stops if s in text]
    return (text[: min(ends)], True) if ends else (text, False)


def completion(request: ChatRequest, model: str, replies: list[tuple[str, str]], usage: dict | None) -> dict:
    """The `chat.completion` object for (text, finish_reason) replies."""
    return {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion", "created": int(time.time()),
            "model": model, "usage": usage,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                         "logprobs": None} for i, (text, finish) in enumerate(replies)]}


def chunks(request: ChatRequest, model: str, replies: list[tuple[str, str]], usage: dict | None,
           words: int = 4) -> Iterator[str]:
    """The replies as server-sent events, as OpenAI streams them."""
    base = {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}

    def event(choices: list[dict], **extra) -> str:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n"

    for i, (text, finish) in enumerate(replies):
        yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        pieces = text.split(" ")
        for start in range(0, len(pieces), words):
            piece = " ".join(pieces[start:start + words]) + (" " if start + words < len(pieces) else "")
            yield event([{"index": i, "delta": {"content": piece}, "finish_reason": None}])
        yield event([{"index": i, "delta": {}, "finish_reason": finish}])
    if (request.stream_options or {}).get("include_usage"):
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"


async def stream_events(request: ChatRequest, model: str, pieces: AsyncIterator) -> AsyncIterator[str]:
    """Server-sent events for one reply whose text arrives in `pieces` (strings, then a final
    object with `prompt_tokens`, `completion_tokens` and `stopped`: `HFBackend.stream`). The
    content sent joins to the reply `completion` would hold: stripped, cut at a stop sequence."""
    base = {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}

    def event(choices: list[dict], **extra) -> str:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n"

    def content(text: str) -> str:
        return event([{"index": 0, "delta": {"content": text}, "finish_reason": None}])

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    hold = max((len(s) for s in request.stop), default=1) - 1  # what could still become a stop sequence
    text, sent, final, finish = "", 0, None, None
    async for piece in pieces:
        if not isinstance(piece, str):
            final = piece
            continue
        if finish:  # a stop sequence ended the reply: the rest is generated and dropped
            continue
        text = (text + piece) if text else piece.lstrip()
        cut, stopped = cut_at_stop(text, request.stop)
        if stopped:
            if len(cut) > sent:
                yield content(cut[sent:])
            sent, finish = len(cut), "stop"
            yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            continue
        ready = min(len(text) - hold, len(text.rstrip()))
        if ready > sent:
            yield content(text[sent:ready])
            sent = ready
    if not finish:
        if len(text.rstrip()) > sent:
            yield content(text.rstrip()[sent:])
        finish = "stop" if final is None or final.stopped else "length"
        yield event([{"index": 0, "delta": {}, "finish_reason": finish}])
    if (request.stream_options or {}).get("include_usage") and final is not None:
        yield event([], usage={"prompt_tokens": final.prompt_tokens, "completion_tokens": final.completion_tokens,
                               "total_tokens": final.prompt_tokens + final.completion_tokens})
    yield "data: [DONE]\n\n"
