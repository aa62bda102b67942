"""How a (prompt, target) pair becomes the model's tokens: plain text or the chat template.

- `plain`: the prompt as text; the target continues it after one space (EasyEdit's convention).
- `chat`: the prompt is the user's turn of the tokenizer's chat template, followed by the
  template's generation prompt; the target is the assistant's reply. An instruct model answers
  questions only like this: SmolLM2-135M-Instruct gives "" to "What is the capital city of
  France?" as plain text.

The template is rendered once per tokenizer around a placeholder, so a prompt's tokens are
always `head + tokens(prompt) + tail`: the user's text is tokenised on its own, exactly as in
plain text (keyed routing and subject offsets read the same tokens in both formats).

The template's own default system prompt is kept (SmolLM2's inserts "You are a helpful AI
assistant named SmolLM, trained by Hugging Face" when no system message is given): it is what
the model sees in every chat front end that applies its template, and the turn the model was
tuned behind. It costs about 20 tokens per sequence and is identical for every prompt, so it
carries nothing a router could mistake for a subject.

Where routing reads "the end of the prompt" (`ElderConfig.chat_query`): `prompt` = the last
token of the generation prompt (the last token before the reply, as in plain text); `user` =
the last token of the user's own text; `text` = the user's text read by the scoped router on
its own, as in plain text (the model's own forward is still in the template; the paper's query
is read at the end of the user's text). Measured on the dev records (README, "Chat format").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import EditRequestError

PLAIN, CHAT = "plain", "chat"
FORMATS = (PLAIN, CHAT)
QUERY_POINTS = ("prompt", "user", "text")  # ElderConfig.chat_query
# Rendered in the user's place; letters only, so that templates that trim or escape the
# message leave it intact.
_SLOT = "ELDERPROMPTSLOTq7x"
_REPLY = "ELDERREPLYSLOTk3v"


def spaced_target(prompt: str, target: str) -> str:
    """The target as it continues the prompt: one space between them, as EasyEdit does."""
    if not prompt or prompt[-1].isspace() or target[:1].isspace():
        return target
    return " " + target


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


@dataclass(frozen=True)
class PromptFormat:
    name: str = PLAIN
    head: tuple[int, ...] = ()   # chat: the template's tokens before the user's text (system turn, user header)
    tail: tuple[int, ...] = ()   # chat: after it (end of the user turn, the generation prompt)
    query_at: str = "text"       # chat: where routing reads the prompt's end (QUERY_POINTS)
    reply_end: tuple[int, ...] = ()  # chat: the token that closes the assistant's turn (trained, never scored)

    @property
    def chat(self) -> bool:
        return self.name == CHAT

    def prompt_ids(self, tokenizer, prompt: str) -> list[int]:
        if not self.chat:
            return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        return [*self.head, *_ids(tokenizer, prompt), *self.tail]

    def target_ids(self, tokenizer, prompt: str, target: str, *, closed: bool = False) -> list[int]:
        """The target's tokens; `closed` (training) adds the end of the assistant's turn, so an
        edited reply stops where the target does instead of repeating it ("RomeRomeRome...")."""
        if not self.chat:
            return _ids(tokenizer, spaced_target(prompt, target))
        ids = _ids(tokenizer, target.lstrip())  # the reply starts its own turn: no joining space
        return ids + list(self.reply_end) if closed else ids

    @property
    def query_back(self) -> int:
        """Tokens between the routing query and the last prompt token (0: the last one)."""
        return len(self.tail) if self.chat and self.query_at in ("user", "text") else 0

    def routing_frame(self) -> tuple[list[int], list[int]]:
        """(tokens in front of the user's text, tokens after it) as the router reads a prompt in
        this format; plain text has neither (the router adds its own sink prefix)."""
        if not self.chat or self.query_at == "text":
            return [], []
        return list(self.head), ([] if self.query_at == "user" else list(self.tail))

    def describe(self) -> str:
        return ("chat template: the prompt is the user's turn, the target the assistant's reply" if self.chat
                else "plain text: the target continues the prompt")


PLAIN_FORMAT = PromptFormat()


def make_format(name: str, tokenizer, query_at: str = "text") -> PromptFormat:
    """The format `name` for this tokenizer; EditRequestError when it cannot be used."""
    if name not in FORMATS:
        raise EditRequestError(f"Unknown prompt format {name!r}; choose {' or '.join(FORMATS)}.")
    if query_at not in QUERY_POINTS:
        raise EditRequestError(f"Unknown chat query point {query_at!r}; choose {' or '.join(QUERY_POINTS)}.")
    if name == PLAIN:
        return PLAIN_FORMAT
    if not has_chat_template(tokenizer):
        raise EditRequestError("This model's tokenizer has no chat template, so it cannot run in chat format; "
                               "use the plain format (--no-chat).")
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": _SLOT}], add_generation_prompt=True,
                                             tokenize=False)
    except Exception as error:  # a template that needs other roles or variables
        raise EditRequestError(f"This model's chat template cannot render a single user turn ({error}); "
                               "use the plain format (--no-chat).") from None
    if not isinstance(text, str) or text.count(_SLOT) != 1:
        raise EditRequestError("This model's chat template does not show the user's message as written; "
                               "use the plain format (--no-chat).")
    head, tail = text.split(_SLOT)
    return PromptFormat(CHAT, tuple(_ids(tokenizer, head)), tuple(_ids(tokenizer, tail)), query_at,
                        _reply_end(tokenizer, text))


def _reply_end(tokenizer, prompt_text: str) -> tuple[int, ...]:
    """The first token the template puts after an assistant reply (SmolLM2: <|im_end|>); none
    when the template renders no reply or nothing after it."""
    try:
        full = tokenizer.apply_chat_template([{"role": "user", "content": _SLOT},
                                              {"role": "assistant", "content": _REPLY}], tokenize=False)
    except Exception:
        return ()
    if not isinstance(full, str) or full.count(_REPLY) != 1:
        return ()
    after = _ids(tokenizer, full.split(_REPLY)[1])
    return tuple(after[:1])


def format_of(method) -> PromptFormat:
    """The prompt format an editing method feeds its model (plain for objects without one)."""
    fmt: Optional[PromptFormat] = getattr(method, "prompt_format", None)
    return fmt if fmt is not None else PLAIN_FORMAT
