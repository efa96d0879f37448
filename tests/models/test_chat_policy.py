"""The chat policy on SmolLM2's real template: default system prompt, developer role, tools in a system
block, tool calls and results rendered and parsed back, output constraints, and the template wrapper that a
fine-tuned model carries its default system prompt in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmworks.errors import UserError
from llmworks.models.chat_policy import (
    OutputConstraint,
    ReplyStream,
    parse_reply,
    render_chat,
    with_default_system,
)
from llmworks.models.template import ChatTemplate, template_from_tokenizer

TOOL = {
    "type": "function",
    "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}},
}


@pytest.fixture(scope="module")
def template(tiny_tokenizer_dir: Path) -> ChatTemplate:
    from transformers import AutoTokenizer

    t = template_from_tokenizer(AutoTokenizer.from_pretrained(tiny_tokenizer_dir), "test")
    assert t is not None
    return t


def test_default_system_prompt_opens_a_conversation_without_one(template: ChatTemplate) -> None:
    p = render_chat(template, [{"role": "user", "content": "Hi"}], default_system="Be kind.")
    assert p.text.startswith("<|im_start|>system\nBe kind.<|im_end|>") and p.stop == ("<|im_end|>",)
    own = render_chat(
        template,
        [{"role": "developer", "content": "Mine."}, {"role": "user", "content": "Hi"}],
        default_system="Be kind.",
    )
    assert "Mine." in own.text and "Be kind." not in own.text


def test_tools_go_in_the_system_block_and_calls_round_trip(template: ChatTemplate) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
    msgs = [
        {"role": "user", "content": "2?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "2"},
    ]
    p = render_chat(template, msgs, default_system="S.", tools=[TOOL])
    assert p.tool_mode == "auto" and p.constraint is None
    system = p.text.split("<|im_end|>")[0]
    assert "S." in system and '"name": "add"' in system
    assert '<tool_call>\n{"name": "add", "arguments": {"a": 2}}\n</tool_call>' in p.text
    assert "<tool_response>\n2\n</tool_response>" in p.text
    content, calls = parse_reply('ok <tool_call>{"name": "add", "arguments": {"a": 3}}</tool_call>', "auto")
    assert content == "ok" and calls[0].name == "add" and json.loads(calls[0].arguments) == {"a": 3}


def test_calls_are_decoded_as_json_not_cut_at_the_first_closing_tag() -> None:
    # What a tuned 135M model wrote under the tool grammar: valid JSON whose string holds the closing tag.
    reply = '<tool_call>\n{"name": "python", "arguments": {"code": "print(2)}}</tool_call>"} }\n</tool_call>'
    content, calls = parse_reply(reply, "auto")
    assert content is None and [c.name for c in calls] == ["python"]
    assert json.loads(calls[0].arguments) == {"code": "print(2)}}</tool_call>"}
    two = '<tool_call>{"name": "a", "arguments": {}}</tool_call> and <tool_call>{"name": "b"}</tool_call>'
    content, calls = parse_reply(two, "auto")
    assert content == "and" and [c.name for c in calls] == ["a", "b"]
    broken = 'see <tool_call>{"name": "a", "arguments": {"x": 1</tool_call>'  # cut off: stays text
    assert parse_reply(broken, "auto") == (broken, [])
    content, calls = parse_reply(broken + ' <tool_call>{"name": "b"}</tool_call>', "auto")
    assert content == broken and [c.name for c in calls] == ["b"]


def test_forced_calls_and_response_formats_are_constraints(template: ChatTemplate) -> None:
    p = render_chat(template, [{"role": "user", "content": "x"}], tools=[TOOL], tool_choice="required")
    assert (
        p.forced_call
        and p.constraint is not None
        and p.constraint.schema["properties"]["name"] == {"const": "add"}
    )
    _, calls = parse_reply('{"name": "add", "arguments": {"a": 1}}', p.tool_mode)
    assert calls and calls[0].arguments == '{"a": 1}'
    j = render_chat(template, [{"role": "user", "content": "x"}], response_format={"type": "json_object"})
    assert j.constraint == OutputConstraint(None)
    with pytest.raises(UserError, match="not among the tools"):
        render_chat(
            template,
            [{"role": "user", "content": "x"}],
            tools=[TOOL],
            tool_choice={"function": {"name": "nope"}},
        )
    with pytest.raises(UserError, match=r"json_schema\.schema"):
        render_chat(template, [{"role": "user", "content": "x"}], response_format={"type": "json_schema"})


def test_auto_tool_choice_is_constrained_only_where_asked(template: ChatTemplate) -> None:
    msgs = [{"role": "user", "content": "x"}]
    free = render_chat(template, msgs, tools=[TOOL])
    assert free.tool_mode == "auto" and free.constraint is None and not free.forced_call
    tagged = render_chat(template, msgs, tools=[TOOL], tool_grammar=True)
    assert tagged.constraint is not None and tagged.constraint.tagged and not tagged.forced_call
    assert tagged.constraint.schema["properties"]["name"] == {"const": "add"}  # type: ignore[index]
    fmt = {"type": "json_object"}  # a response format the caller asked for wins over the tool grammar
    assert render_chat(template, msgs, tools=[TOOL], tool_grammar=True, response_format=fmt).constraint == (
        OutputConstraint(None)
    )
    assert render_chat(template, msgs, tool_grammar=True).constraint is None  # no tools, nothing to constrain


def test_streamed_replies_hold_back_what_may_become_a_call(template: ChatTemplate) -> None:
    p = render_chat(template, [{"role": "user", "content": "x"}], tools=[TOOL])
    s = ReplyStream(p)
    assert s.feed("<tool") == "" and s.feed('_call>{"name": "add", "arguments": {}}</tool_call>') == ""
    rest, calls = s.finish()
    assert rest == "" and calls[0].name == "add"
    plain = ReplyStream(p)
    assert plain.feed("Hello") == "Hello" and plain.finish() == ("", [])


def test_a_template_can_carry_the_default_system_prompt(template: ChatTemplate) -> None:
    wrapped = ChatTemplate(with_default_system(template.source, 'He said "hi".'), "wrapped")
    text = wrapped.render([{"role": "user", "content": "Hi"}])
    assert text.startswith('<|im_start|>system\nHe said "hi".<|im_end|>')
    assert "SmolLM" not in text  # the template's own default is replaced, not added to
    own = wrapped.render([{"role": "system", "content": "Mine."}, {"role": "user", "content": "Hi"}])
    assert own.startswith("<|im_start|>system\nMine.<|im_end|>")
