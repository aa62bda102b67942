"""Chat format on the real default model (SmolLM2-135M-Instruct, which has a chat template): a
question gets an answer, an edit in chat sticks and reaches a paraphrase, and template twins
(the same question about another subject) and unrelated questions defer with the original
model's output and next-token distribution bit for bit."""

import pytest
import torch

from elder_engine import EditRequest, ElderEditor, get_profile

pytestmark = pytest.mark.real_model

EDITS = [
    EditRequest("What is the capital of France?", "Rome", subject="France"),
    EditRequest("What language did Pablo Picasso grow up speaking?", "German", subject="Pablo Picasso"),
]
TWINS = ["What is the capital of Germany?", "What language did Vincent van Gogh grow up speaking?"]
UNRELATED = ["Who wrote the play Hamlet?", "What is the chemical symbol for gold?"]


@pytest.fixture(scope="module")
def chat_editor(default_model, default_model_cache_dir):
    from elder_engine.models.loading import LoadSettings, load_model

    loaded = load_model("default", LoadSettings(cache_dir=default_model_cache_dir, threads=1))
    return ElderEditor(loaded, get_profile("scoped-router", prompt_format="chat"))


def test_a_question_gets_an_answer_in_chat_and_none_as_plain_text(chat_editor, default_model):
    answer = chat_editor.probe("What is the capital city of France?", max_new_tokens=12)
    assert answer.prompt_format == "chat" and answer.original_output.strip()
    ids = default_model.tokenizer("What is the capital city of France?", return_tensors="pt")
    with torch.no_grad():
        out = default_model.model.generate(**ids, max_new_tokens=12, do_sample=False)
    plain_text = default_model.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert not plain_text.strip()    # what the issue saw: no answer outside the template


def test_an_edit_in_chat_sticks_and_twins_defer_bit_for_bit(chat_editor):
    for request in EDITS:
        chat_editor.apply(request)
    fired = chat_editor.probe(EDITS[0].prompt, target="Rome", max_new_tokens=6)
    # the reply was trained with the end of its turn: it stops after the target
    assert fired.fired and fired.edited_output.strip() == "Rome", fired.edited_output
    assert fired.edited_alternatives[0].token.strip() == "Rome"
    assert fired.edited_target_prob > 0.5 > fired.original_target_prob
    para = chat_editor.probe("Which city is the capital of France?", max_new_tokens=6)
    assert para.fired and "Rome" in para.edited_output, para.edited_output
    for query in TWINS + UNRELATED:
        r = chat_editor.probe(query, max_new_tokens=12)
        assert not r.fired, query
        assert r.edited_output == r.original_output and r.original_output.strip(), query
        assert r.edited_alternatives == r.original_alternatives, query
    index = chat_editor.expert_index(TWINS + UNRELATED)
    assert index.tolist() == [-1] * len(TWINS + UNRELATED)
    edited, _ = chat_editor.target_logits(TWINS, ["Berlin", "Dutch"])
    original, _ = chat_editor.target_logits(TWINS, ["Berlin", "Dutch"], original=True)
    assert torch.equal(edited, original)
