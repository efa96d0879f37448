"""A chat session: the conversation so far, and the turn loop behind `llmworks chat`.

Turns go through the one client (`llmworks.client`), so the model sees exactly what `llmworks serve` would
send it for the same conversation.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from llmworks.client import ChatChunk, Client, RequestFailed
from llmworks.errors import UserError

HELP = "Commands: /system TEXT (set the system prompt, starts over), /reset (forget the conversation), /exit"


@dataclass
class ChatSession:
    client: Client
    options: dict[str, Any] = field(default_factory=dict)
    """Sampling options for every turn (max_tokens, temperature, ...: the client's GenOptions)."""
    system: str | None = None
    """Replaces the model's default system prompt when set."""
    messages: list[dict[str, str]] = field(default_factory=list)

    def reset(self) -> None:
        self.messages = []

    def conversation(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.messages

    def ask(self, text: str, on_text: Callable[[str], None]) -> Stats:
        """Send a user turn, stream the reply through `on_text`, and keep both in the history."""
        self.messages.append({"role": "user", "content": text})
        try:
            stats = stream_reply(self.client.chat_stream(self.conversation(), **self.options), on_text)
        except BaseException:
            self.messages.pop()  # a failed or interrupted turn leaves the history as it was
            raise
        self.messages.append({"role": "assistant", "content": stats.text})
        return stats


@dataclass
class Stats:
    text: str
    tokens: int
    seconds: float
    finish_reason: str

    def line(self) -> str:
        rate = self.tokens / self.seconds if self.seconds > 0 else 0.0
        return f"[{self.tokens} tokens, {rate:.1f} tok/s, finish: {self.finish_reason}]"


def stream_reply(chunks: Iterable[ChatChunk], on_text: Callable[[str], None]) -> Stats:
    start, parts, tokens, reason = time.perf_counter(), [], 0, "length"
    for c in chunks:
        if c.content:
            on_text(c.content)
            parts.append(c.content)
        if c.usage is not None:
            tokens = c.usage.completion_tokens
        reason = c.finish_reason or reason
    return Stats("".join(parts), tokens, time.perf_counter() - start, reason)


def run_repl(
    session: ChatSession, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> None:
    """Read turns until /exit or end of input. Errors in a turn are shown and the loop goes on."""
    interactive = stdin.isatty()
    print(f"Chatting with {session.client.name}. {HELP}", file=err)

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    while True:
        if interactive:
            write("\n> ")
        line = stdin.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            cmd, _, arg = line.partition(" ")
            if cmd == "/exit":
                break
            if cmd == "/reset":
                session.reset()
                print("(conversation cleared)", file=err)
            elif cmd == "/system":
                session.system = arg.strip() or None
                session.reset()
                print(
                    f"(system prompt {'set' if session.system else 'cleared'}; conversation cleared)",
                    file=err,
                )
            else:
                print(f"unknown command {cmd}. {HELP}", file=err)
            continue
        try:
            stats = session.ask(line, write)
        except RequestFailed as e:
            print(f"error: {e.message}", file=err)
            if e.fatal:
                break
            continue
        except UserError as e:
            print(f"error: {e.problem} {e.fix}".rstrip(), file=err)
            continue
        except KeyboardInterrupt:
            print("\n(interrupted)", file=err)
            continue
        write("\n")
        print(stats.line(), file=err)
