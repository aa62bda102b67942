"""The baselines (LoRA, FT-L, GRACE) on tiny models: each learns an edit, keeps unrelated
prompts, gives the unedited model exactly when asked, and keeps its own invariants.

A random tiny model has no knowledge to keep and near-uniform outputs that any change flips,
so these tests first teach a small one a few facts (a second or two)."""

import copy

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from elder_engine.baselines import FtlEditor, GraceEditor, LoraEditor
from elder_engine.editing.request import EditRequest
from elder_engine.elder import get_profile
from elder_engine.editing.events import CancelToken, EditCancelled, EditStep
from elder_engine.models.loading import LoadedModel, compute_fingerprint
from elder_engine.evaluation.methods import build_method, method_names, parse_settings, state_bytes
from elder_engine.evaluation.metrics import locality, token_accuracy
from elder_engine.models.tokens import encode
from elder_engine.editing.training import target_cross_entropy

from tiny import WORDS, tiny_tokenizer

FACTS = [("the capital of france is", "paris"), ("who wrote hamlet ?", "shakespeare"),
         ("what colour is the sky ?", "blue"), ("the mother tongue of the king is", "french"),
         ("the capital of the country is", "london")]
EDIT = EditRequest("the capital of france is", "london")
UNRELATED = FACTS[1:4]
ELDER = get_profile("paper", num_edit_layers=2)
# Test-only settings for a 64-wide model (the defaults suit SmolLM2-135M).
SETTINGS = {
    "lora": dict(learning_rate=3e-3, max_steps=40, early_stop_loss=0.5),
    "ft-l": dict(learning_rate=1e-2, norm_constraint=0.1, max_steps=40, early_stop_loss=0.5),
    "grace": dict(learning_rate=1.0, eps_init=0.5, max_steps=40, early_stop_loss=0.5),
}


def _taught(family: str) -> LoadedModel:
    torch.manual_seed(0)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(WORDS), hidden_size=64, intermediate_size=128,
                                             num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2,
                                             max_position_embeddings=64))
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(WORDS), n_embd=64, n_layer=6, n_head=4, n_positions=64))
    tok = tiny_tokenizer()
    batch = encode(tok, [p for p, _ in FACTS], [t for _, t in FACTS])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    rows = torch.arange(len(FACTS))[:, None]
    for _ in range(100):
        logits = model(**batch.model_inputs()).logits[rows, batch.target_positions]
        loss = target_cross_entropy(logits, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedModel(model, tok, f"taught-{family}", f"taught-{family}", model.config.model_type,
                       compute_fingerprint(model), torch.device("cpu"))


@pytest.fixture(scope="module")
def taught():
    models = {family: _taught(family) for family in ("llama", "gpt2")}
    return lambda family: copy.deepcopy(models[family])


def _make(name, loaded, **overrides):
    return build_method(name, loaded, ELDER, {**SETTINGS[name], **overrides})


def _logits(method, prompts, original):
    return method.target_logits(prompts, ["london"] * len(prompts), original=original)[0]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("name", ["lora", "ft-l", "grace"])
def test_baseline_learns_an_edit_and_keeps_unrelated_prompts(taught, name, family):
    method = _make(name, taught(family))
    assert token_accuracy(method, [(EDIT.prompt, EDIT.target)])[0] == [0.0]
    method.apply(EDIT)
    assert token_accuracy(method, [(EDIT.prompt, EDIT.target)])[0] == [1.0]
    tf, em, outputs = locality(method, UNRELATED)
    assert tf == [1.0] * 3 and em == [1.0] * 3
    assert outputs == [t for _, t in UNRELATED]  # the taught answers, unchanged


@pytest.mark.parametrize("name", ["lora", "ft-l", "grace"])
def test_original_is_the_unedited_model_exactly(taught, name):
    loaded = taught("llama")
    reference = copy.deepcopy(loaded.model)
    method = _make(name, loaded, learning_rate=SETTINGS[name]["learning_rate"] * 10, early_stop_loss=None, max_steps=10)
    method.apply(EDIT)
    prompts = [p for p, _ in FACTS]
    assert not torch.equal(_logits(method, prompts, False), _logits(method, prompts, True))
    batch = encode(loaded.tokenizer, prompts, ["london"] * len(prompts))
    with torch.no_grad():
        want = reference(**batch.model_inputs()).logits[torch.arange(len(prompts))[:, None], batch.target_positions]
    assert torch.equal(_logits(method, prompts, True), want)
    # and after scoring the original, the edit is still there
    assert token_accuracy(method, [(EDIT.prompt, EDIT.target)])[0] == [1.0]


@pytest.mark.parametrize("name", ["lora", "ft-l", "grace"])
def test_cancel_leaves_the_method_as_it_was(taught, name):
    method = _make(name, taught("llama"))
    method.apply(EditRequest("who wrote hamlet ?", "london"))
    before = _logits(method, [p for p, _ in FACTS], False)
    bytes_before = state_bytes(method)
    token = CancelToken()
    events = []
    for event in method.edit(EditRequest("what colour is the sky ?", "paris"), token):
        events.append(event)
        if isinstance(event, EditStep) and event.step == 2:
            token.cancel()
    assert isinstance(events[-1], EditCancelled)
    assert torch.equal(_logits(method, [p for p, _ in FACTS], False), before)
    assert state_bytes(method) == bytes_before and len(method.edits) == 1


def test_baselines_wrap_the_modules_elder_wraps(taught):
    lora = _make("lora", taught("llama"))
    wrapped = sorted(n for n, _ in lora.model.named_modules() if n.endswith("down_proj.lora_A"))
    assert wrapped == [f"model.layers.{i}.mlp.down_proj.lora_A" for i in (4, 5)]
    ftl = _make("ft-l", taught("gpt2"))
    assert ftl.targets.ffn_module == "mlp.c_fc" and ftl.targets.layers_to_transform == [4, 5]
    assert ftl.trained_parameters() == 2 * 64 * 256 and ftl.extra_parameters() == 0
    grace = _make("grace", taught("llama"))
    assert grace.block == 4 and grace.blocks[4].mlp.down_proj is grace.layer


def test_ftl_stays_inside_its_linf_ball(taught):
    method = _make("ft-l", taught("llama"), norm_constraint=0.01, early_stop_loss=None, max_steps=15)
    for prompt, _ in FACTS[:3]:
        method.apply(EditRequest(prompt, "london"))
    drift = max(float((p - w0).abs().max()) for p, w0 in zip(method.trainable(), method._w0))
    assert 0.0099 < drift <= 0.01 + 1e-7


def test_grace_codebook_adds_expands_and_splits(taught):
    method = _make("grace", taught("llama"), max_steps=3, eps_init=2.0)
    layer = method.layer
    method.apply(EditRequest("the capital of france is", "london"))  # empty codebook: add
    assert layer.keys.shape[0] == 1 and layer.radii.tolist() == pytest.approx([2.0], rel=1e-6)
    method.apply(EditRequest("the capital of france is", "london"))  # same label: expand
    assert layer.keys.shape[0] == 1 and layer.radii.tolist() == pytest.approx([2.0], rel=1e-6)
    method.apply(EditRequest("the capital of france is", "paris"))  # the same key, a new label
    assert layer.keys.shape[0] == 1 and layer.labels == ["paris"]
    method.apply(EditRequest("who wrote hamlet ?", "blue"))  # nearby key, other label: split
    d = float(torch.dist(layer.keys[0], layer.keys[1]))
    assert 0 < d < 4.0  # (its balls overlap: radius 2 + eps_init 2)
    assert layer.labels == ["paris", "blue"] and layer.radii.tolist() == pytest.approx([d / 2, d / 2], rel=1e-6)
    assert method.extra_parameters() == 2 * (128 + 64 + 1)
    # each edit still answers its own prompt
    assert token_accuracy(method, [("the capital of france is", "paris"), ("who wrote hamlet ?", "blue")])[0] == [1, 1]


def test_grace_defers_inputs_outside_every_radius(taught):
    method = _make("grace", taught("llama"), eps_init=1e-3)
    method.apply(EDIT)
    others = [p for p, _ in FACTS[1:]]
    assert torch.equal(_logits(method, others, False), _logits(method, others, True))
    assert method.generate(others, 3) == method.generate(others, 3, original=True)


def test_method_names_and_settings():
    assert method_names("all") == ["elder", "lora", "ft-l", "grace"]
    assert method_names("grace,elder") == ["elder", "grace"]
    assert parse_settings(["lora.learning_rate=1e-3", "grace.span=key"]) == {
        "lora": {"learning_rate": 1e-3}, "grace": {"span": "key"}}
    from elder_engine.errors import EditRequestError
    with pytest.raises(EditRequestError):
        method_names("rome")
    with pytest.raises(EditRequestError):
        parse_settings(["lora:lr=1"])
    with pytest.raises(EditRequestError):
        LoraEditor.config_cls().replace(nonsense=1)


def test_each_name_builds_that_method(taught):
    """What `--method NAME` and `--set NAME.x=v` reach: the method of that name, with that
    setting, on the same budget as ELDER's, wrapping what that method wraps."""
    from elder_engine.editing.editor import ElderEditor

    own = {"elder": {"max_steps": 7}, "lora": {"rank": 2}, "ft-l": {"norm_constraint": 0.05},
           "grace": {"eps_init": 3.0}}
    for name in method_names("all"):
        method = build_method(name, taught("llama"), ELDER, own[name])
        setting, value = next(iter(own[name].items()))
        assert getattr(method.config, setting) == value, name
        modules = [n for n, _ in method.model.named_modules()]
        if name == "elder":
            assert isinstance(method, ElderEditor) and method.config.profile == ELDER.profile
            assert any("elder_" in n for n in modules)
            continue
        assert method.name == name and method.config.max_steps == ELDER.max_steps  # ELDER's budget
        assert any(n.endswith("lora_A") for n in modules) == (name == "lora"), name
        assert isinstance(getattr(method, "layer", None), torch.nn.Module) == (name == "grace"), name
        assert hasattr(method.config, "norm_constraint") == (name == "ft-l"), name
        assert type(method) is {"lora": LoraEditor, "ft-l": FtlEditor, "grace": GraceEditor}[name]
