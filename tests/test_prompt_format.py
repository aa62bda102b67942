"""Chat format on tiny models: the template's tokens, where routing reads the prompt's end,
edits and exact deferral inside the template, the format a history keeps, the CLI's
--chat/--no-chat, and the probe's next-token alternatives."""

import json

import pytest
import torch
from transformers import AutoTokenizer

from elder_engine import EditRequest, EditRequestError, ElderEditor, ElderError, HistoryError, get_profile
from elder_engine.cli.main import main as cli_main
from elder_engine.history import EditHistory
from elder_engine.evaluation.metrics import token_accuracy
from elder_engine.errors import StateFormatError
from elder_engine.models.prompt_format import make_format
from elder_engine.models.tokens import encode

from tiny import CHAT_TEMPLATE, tiny_loaded, tiny_tokenizer

QUESTION = "what colour sky ?"


def chat_editor(profile="scoped-router", seed=0, **overrides):
    settings = {"num_edit_layers": 2, "learning_rate": 5e-2, "max_steps": 20, "prompt_format": "chat", **overrides}
    return ElderEditor(tiny_loaded("llama", seed=seed, chat=True), get_profile(profile, **settings))


# ------------------------------------------------------------------ tokens
def test_chat_tokens_are_the_templates_own_and_plain_tokens_are_unchanged():
    tok = tiny_tokenizer(chat=True)
    fmt = make_format("chat", tok, query_at="prompt")
    rendered = tok.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                       tokenize=False)
    assert fmt.prompt_ids(tok, QUESTION) == tok(rendered, add_special_tokens=False)["input_ids"]
    assert tok.decode(fmt.head).startswith("<|system|> you are a helpful assistant")  # the default system turn
    # the reply starts its own turn: no joining space, whatever the user typed
    assert fmt.target_ids(tok, QUESTION, " blue") == fmt.target_ids(tok, QUESTION, "blue") == [tok.convert_tokens_to_ids("blue")]
    # training closes the reply with the token the template puts after an assistant turn
    rendered_reply = tok.apply_chat_template([{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "blue"}],
                                             tokenize=False)
    after = tok(rendered_reply.split("blue")[-1], add_special_tokens=False)["input_ids"]
    assert len(fmt.reply_end) == 1 and fmt.reply_end[0] == after[0]
    assert fmt.target_ids(tok, QUESTION, "blue", closed=True) == [tok.convert_tokens_to_ids("blue"), after[0]]
    plain = make_format("plain", tok)
    assert plain.target_ids(tok, QUESTION, "blue", closed=True) == plain.target_ids(tok, QUESTION, "blue")
    assert plain.prompt_ids(tok, QUESTION) == tok(QUESTION)["input_ids"]
    batch = encode(tok, [QUESTION, "the capital of france is"], ["blue", "paris london"], fmt)
    for row in range(2):  # the target follows the generation prompt; its first token is predicted there
        first = int(batch.target_positions[row, 0])
        assert int(batch.input_ids[row, first]) == fmt.tail[-1]
        assert int(batch.query_positions[row]) == first


def test_a_template_from_a_tokenizer_config_survives_saving_and_loading(tmp_path):
    tiny_tokenizer(chat=True).save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.chat_template == CHAT_TEMPLATE
    assert make_format("chat", loaded).prompt_ids(loaded, QUESTION) == \
        make_format("chat", tiny_tokenizer(chat=True)).prompt_ids(tiny_tokenizer(chat=True), QUESTION)


@pytest.mark.parametrize("query_at", ["user", "text"])
def test_the_user_query_point_reads_the_last_token_of_the_users_text(query_at):
    tok = tiny_tokenizer(chat=True)
    fmt = make_format("chat", tok, query_at=query_at)
    batch = encode(tok, [QUESTION], ["blue"], fmt)
    q = int(batch.query_positions[0])
    assert int(batch.input_ids[0, q]) == tok.convert_tokens_to_ids("?")
    assert int(batch.target_positions[0, 0]) == q + len(fmt.tail)


def test_chat_without_a_template_is_refused_with_a_clear_message():
    with pytest.raises(EditRequestError, match="no chat template.*plain"):
        make_format("chat", tiny_tokenizer())
    with pytest.raises(EditRequestError, match="no chat template"):
        ElderEditor(tiny_loaded("llama"), get_profile("scoped-router", num_edit_layers=2, prompt_format="chat"))
    with pytest.raises(EditRequestError, match="Unknown prompt format"):
        make_format("markdown", tiny_tokenizer(chat=True))


# ------------------------------------------------------------------ editing in the template
@pytest.mark.parametrize("profile", ["scoped-router", "paper"])
def test_an_edit_in_chat_sticks_and_deferred_queries_get_the_original_output_exactly(profile):
    editor = chat_editor(profile, **({"max_steps": 30} if profile == "paper" else {}))
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    scores, _ = token_accuracy(editor, [("the capital of france is", "london")])
    assert scores == [1.0]
    if profile == "scoped-router":  # a tiny random model routes arbitrarily: check those that defer
        other = [p for p in ("what colour is the sky ?", "who wrote hamlet ?")
                 if int(editor.expert_index([p])[0]) == -1]
        assert other, "an unrelated prompt must defer"
        edited, _ = editor.target_logits(other, ["blue"] * len(other))
        original, _ = editor.target_logits(other, ["blue"] * len(other), original=True)
        assert torch.equal(edited, original)
        assert editor.generate(other, 4) == editor.generate(other, 4, original=True)
    fired, _ = editor.target_logits(["the capital of france is"], ["london"])
    base, _ = editor.target_logits(["the capital of france is"], ["london"], original=True)
    assert not torch.equal(fired, base)


def test_the_router_reads_the_prompt_inside_the_template():
    editor = chat_editor(chat_query="prompt")
    tok, fmt = editor.tokenizer, editor.prompt_format
    (item,) = editor.scope.states([QUESTION])
    n_text = len(tok(QUESTION, add_special_tokens=False)["input_ids"])
    assert item.states.shape[0] == n_text + len(fmt.tail) == len(item.offsets)
    assert item.offsets[n_text:] == [(len(QUESTION), len(QUESTION))] * len(fmt.tail)
    # its reading in the template is that of the model's own forward (same tokens, same context)
    user = chat_editor(chat_query="user")
    (short,) = user.scope.states([QUESTION])
    assert short.states.shape[0] == n_text
    torch.testing.assert_close(short.states, item.states[:n_text])
    # `text`: the router reads the user's text on its own, exactly as in plain text
    (bare,) = chat_editor(chat_query="text").scope.states([QUESTION])
    (plain,) = chat_editor(prompt_format="plain").scope.states([QUESTION])
    assert torch.equal(bare.states, plain.states) and not torch.equal(bare.states, item.states[:n_text])


def test_the_format_is_fixed_once_an_engine_has_edits():
    editor = chat_editor()
    editor.set_prompt_format("plain")
    assert editor.prompt_format.name == "plain"
    editor.set_prompt_format("chat")
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    with pytest.raises(EditRequestError, match="1 edit.*chat format.*new history"):
        editor.set_prompt_format("plain")
    assert editor.prompt_format.name == "chat"


def test_a_state_keeps_its_format_and_refuses_a_tokenizer_without_a_template(tmp_path):
    editor = chat_editor()
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    path = tmp_path / "s.safetensors"
    editor.save(path)
    again = ElderEditor.from_state(tiny_loaded("llama", chat=True), path)
    assert again.prompt_format == editor.prompt_format
    assert again.generate(["the capital of france is"], 3) == editor.generate(["the capital of france is"], 3)
    plain_tok = tiny_loaded("llama", chat=True)
    plain_tok.tokenizer.chat_template = None
    with pytest.raises(ElderError, match="no chat template"):
        ElderEditor.from_state(plain_tok, path)
    plain = ElderEditor(plain_tok, get_profile("scoped-router", num_edit_layers=2))
    with pytest.raises(StateFormatError, match="chat format.*no chat template"):
        plain.load(path)
    assert plain.prompt_format.name == "plain" and not plain.edits


# ------------------------------------------------------------------ a history keeps its format
def test_a_history_records_its_format_and_reopening_restores_it(tmp_path):
    db = tmp_path / "h.elderdb"
    history = EditHistory.open(db, chat_editor())
    history_edits = list(history.edit(EditRequest("the capital of france is", "london", subject="france")))
    assert history_edits and history.prompt_format == "chat"
    history.close()
    plain_engine = chat_editor(prompt_format="plain")
    reopened = EditHistory.open(db, plain_engine)
    try:
        assert plain_engine.prompt_format.name == "chat"        # the history's format, not the engine's
        assert reopened.prompt_format == "chat"
        list(reopened.rollback_to(0))
        plain_engine.set_prompt_format("plain")                  # allowed on an engine without edits...
        with pytest.raises(HistoryError, match="chat format.*switched to plain"):
            list(reopened.redo())                                # ...but the history refuses to go on in it
    finally:
        reopened.close()


# ------------------------------------------------------------------ the CLI
def _tiny_folder(tmp_path):
    folder = tmp_path / "tiny-chat"
    loaded = tiny_loaded("llama", chat=True)
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder


def test_cli_chat_flag_follows_and_guards_the_history(tmp_path, capsys):
    folder, db = _tiny_folder(tmp_path), tmp_path / "h.elderdb"
    base = ["--db", str(db), "--model", str(folder), "--profile", "paper"]
    assert cli_main(["edit", *base, "--chat", "--prompt", "the capital of france is", "--target", "london"]) == 0
    capsys.readouterr()
    assert cli_main(["probe", *base, "--query", "the capital of france is"]) == 0   # follows the history
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["prompt_format"] == "chat" and len(out["edited_alternatives"]) == 5
    assert cli_main(["probe", *base, "--no-chat", "--query", "the capital of france is"]) == 2
    err = capsys.readouterr().err
    assert "--no-chat: the history" in err and "chat format" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ alternatives
def _check_distribution(alternatives):
    probs = [a.probability for a in alternatives]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)
    assert all(0.0 < p <= 1.0 for p in probs) and sum(probs) <= 1.0 + 1e-6
    assert len({a.token_id for a in alternatives}) == 5


@pytest.mark.parametrize("chat", [False, True])
def test_probe_alternatives_are_a_distribution_equal_under_deferral(chat):
    editor = chat_editor(prompt_format="chat" if chat else "plain")
    editor.apply(EditRequest("the capital of france is", "london", subject="france"))
    deferred = editor.probe("what colour is the sky ?")
    assert not deferred.fired and deferred.prompt_format == ("chat" if chat else "plain")
    _check_distribution(deferred.edited_alternatives)
    assert deferred.edited_alternatives == deferred.original_alternatives
    fired = editor.probe("the capital of france is", target="london")
    assert fired.fired and fired.edited_alternatives != fired.original_alternatives
    assert fired.edited_alternatives[0].token.strip() == "london"   # the edit's answer is now the likeliest
    as_json = fired.to_dict()["edited_alternatives"][0]
    assert set(as_json) == {"token", "token_id", "probability"}
