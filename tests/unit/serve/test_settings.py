"""ServeSettings: PQC_* environment variables, flags over environment, refusals."""

from __future__ import annotations

import pytest

from pqcompress.errors import ConfigError

# the settings model is pydantic-settings (the serve extra): each test imports it
pytestmark = pytest.mark.requires("pydantic_settings")


def test_env_is_parsed_and_flags_win():
    from pqcompress.serve.settings import ServeSettings

    env = {
        "PQC_MODEL": "m.pqz",
        "PQC_PORT": "9000",
        "PQC_MAX_BATCH": "8",
        "PQC_REQUEST_TIMEOUT_S": "2.5",
        "PQC_INT8": "auto",
        "PQC_DEBUG": "yes",
        "OTHER": "ignored",
    }
    s = ServeSettings.from_env(env, port=None, max_batch=16)
    assert (s.model, s.port, s.max_batch, s.request_timeout_s) == ("m.pqz", 9000, 16, 2.5)
    assert s.int8 is None and s.debug is True
    assert ServeSettings.from_env({"PQC_INT8": "0"}, model="x.onnx").int8 is False


def test_to_env_round_trips():
    from pqcompress.serve.settings import ServeSettings

    s = ServeSettings(model="m.pqz", runtime="torch", int8=False, workers=3, debug_delay_s=0.5)
    assert ServeSettings.from_env(s.to_env()) == s
    s = ServeSettings(model="m.pqz", int8=True, inference_threads=2)
    assert ServeSettings.from_env(s.to_env()) == s


def test_int8_with_the_torch_runtime_is_refused_and_auto_threads_parse():
    from pqcompress.serve.settings import ServeSettings

    with pytest.raises(ConfigError, match=r"int8=true .* needs runtime onnxruntime"):
        ServeSettings(model="m.pqz", runtime="torch", int8=True)
    env = {"PQC_MODEL": "m.pqz", "PQC_INFERENCE_THREADS": "auto"}
    assert ServeSettings.from_env(env).inference_threads is None
    with pytest.raises(ConfigError, match="PQC_INFERENCE_THREADS"):
        ServeSettings.from_env({**env, "PQC_INFERENCE_THREADS": "many"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PQC_PORT": "eighty"}, "PQC_PORT='eighty' is not a valid int"),
        ({"PQC_INT8": "maybe"}, "PQC_INT8"),
        ({"PQC_RUNTIME": "tensorflow"}, "runtime='tensorflow' is not accepted"),
        ({"PQC_MAX_IN_FLIGHT": "0"}, "max_in_flight=0 must be >= 1"),
        ({"PQC_REQUEST_TIMEOUT_S": "0"}, "request_timeout_s=0 must be > 0"),
        ({"PQC_PORT": "70000"}, "port=70000"),
    ],
)
def test_bad_values_are_refused_with_what_is_expected(env, message):
    from pqcompress.serve.settings import ServeSettings

    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        ServeSettings.from_env({"PQC_MODEL": "m.pqz", **env})


def test_a_model_is_required():
    from pqcompress.serve.settings import ServeSettings

    with pytest.raises(ConfigError, match="no model"):
        ServeSettings.from_env({})


def test_the_process_environment_is_read_and_named_in_errors(monkeypatch):
    from pqcompress.serve.settings import ServeSettings

    monkeypatch.setenv("PQC_MODEL", "env.pqz")
    monkeypatch.setenv("PQC_MAX_BATCH", "4")
    monkeypatch.setenv("PQC_MEMORY_LIMIT_BYTES", "auto")
    s = ServeSettings.from_env(port=9001)
    assert (s.model, s.max_batch, s.port, s.memory_limit_bytes) == ("env.pqz", 4, 9001, None)
    monkeypatch.setenv("PQC_THREADS", "two")
    with pytest.raises(ConfigError, match="PQC_THREADS='two' is not a valid int for 'threads'"):
        ServeSettings.from_env()
    monkeypatch.delenv("PQC_THREADS")
    monkeypatch.setenv("PQC_REQUEST_MEMORY_BYTES", "1000")
    with pytest.raises(ConfigError, match=r"request_memory_bytes=1000 must be >= 1048576 or auto"):
        ServeSettings.from_env()


def test_unknown_settings_and_an_empty_model_are_refused():
    from pqcompress.serve.settings import ServeSettings

    with pytest.raises(ConfigError, match="unknown serve setting 'max_batches'"):
        ServeSettings(model="m.pqz", max_batches=3)
    with pytest.raises(ConfigError, match=r"model: a \.pqz or \.onnx path is required"):
        ServeSettings(model="")
    with pytest.raises(ConfigError, match="log_level='loud' is not accepted; use critical, error"):
        ServeSettings(model="m.pqz", log_level="loud")
