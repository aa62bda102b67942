"""Shared pytest set-up: one torch thread (the machine's cores are shared), the `real_model`
marker, and the embedded default model loaded once per session."""

import os

import pytest
import torch

torch.set_num_threads(1)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "real_model: uses the embedded SmolLM2-135M default model (the first load "
        "per cache folder converts its GGUF, ~30 s)")


@pytest.fixture(scope="session")
def default_model_cache_dir(tmp_path_factory):
    """$ELDER_CACHE_DIR when set (a conversion there survives the session), else a temp dir."""
    return os.environ.get("ELDER_CACHE_DIR") or str(tmp_path_factory.mktemp("elder_cache"))


@pytest.fixture(scope="session")
def default_model_load_messages():
    """Progress messages of the session's first load of the default model."""
    return []


@pytest.fixture(scope="session")
def default_model(default_model_cache_dir, default_model_load_messages):
    """The default model, loaded once per session. Shared by every test: do not change its
    weights or tokenizer in place (remove anything you attach before the test ends)."""
    from elder_engine.errors import ModelLoadError
    from elder_engine.models.loading import LoadSettings, default_model_path, load_model

    try:
        default_model_path()
    except ModelLoadError as error:
        pytest.skip(str(error))
    settings = LoadSettings(cache_dir=default_model_cache_dir, threads=1)
    return load_model("default", settings, progress=default_model_load_messages.append)


@pytest.fixture
def fresh_default_model(default_model, default_model_cache_dir):
    """A private copy of the default model (from the conversion cache, ~0.5 s) for tests that
    attach ELDER or otherwise change the model in place."""
    from elder_engine.models.loading import LoadSettings, load_model

    return load_model("default", LoadSettings(cache_dir=default_model_cache_dir, threads=1))
