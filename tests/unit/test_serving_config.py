"""Serving configuration: operator-set env first, CLI flags override, missing pointer is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from index_serving.config import ServingConfig
from index_serving.errors import ConfigError

ENV = {"FAISS_POINTER_BUCKET": "artifacts", "FAISS_POINTER_KEY": "faiss-indexes/ns/idx/6h/pointer.json"}


def test_defaults_apply_when_only_the_pointer_is_configured() -> None:
    config = ServingConfig.from_env(ENV)
    assert (config.host, config.port, config.poll_seconds, config.cache_dir) == ("0.0.0.0", 8080, 2.0, Path("/tmp/faiss-cache"))
    assert config.endpoint is None


def test_the_pod_ip_is_the_bind_address_and_env_values_are_parsed() -> None:
    config = ServingConfig.from_env({**ENV, "POD_IP": "127.0.0.7", "FAISS_SERVING_PORT": "9000", "FAISS_POLL_SECONDS": "0.5",
                                     "FAISS_CACHE_DIR": "/cache", "FAISS_S3_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert (config.host, config.port, config.poll_seconds, config.cache_dir, config.endpoint) == (
        "127.0.0.7", 9000, 0.5, Path("/cache"), "http://127.0.0.1:9000")


def test_flags_override_the_environment_and_none_flags_do_not() -> None:
    config = ServingConfig.from_env({**ENV, "FAISS_SERVING_PORT": "9000"}, port=9100, host=None)
    assert (config.port, config.host) == (9100, "0.0.0.0")


def test_a_missing_pointer_location_names_both_the_env_var_and_the_flag() -> None:
    with pytest.raises(ConfigError, match="FAISS_POINTER_KEY / --pointer-key"):
        ServingConfig.from_env({"FAISS_POINTER_BUCKET": "artifacts"})


@pytest.mark.parametrize(("name", "value"), [("FAISS_SERVING_PORT", "http"), ("FAISS_POLL_SECONDS", "soon"), ("FAISS_SERVING_PORT", "70000")])
def test_malformed_numbers_are_config_errors(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        ServingConfig.from_env({**ENV, name: value})


def test_versions_are_looked_up_next_to_the_pointer() -> None:
    assert ServingConfig.from_env(ENV).versions_prefix == "faiss-indexes/ns/idx/6h/versions"


def test_the_serving_feature_flag_shadow_queue_and_memory_factor_come_from_the_environment() -> None:
    config = ServingConfig.from_env({**ENV, "FAISS_SERVING_ENABLED": "false", "FAISS_SHADOW_QUEUE": "8",
                                     "FAISS_MEMORY_HEADROOM_FACTOR": "0"})
    assert (config.enabled, config.shadow_queue_size, config.memory_headroom_factor) == (False, 8, 0.0)
    assert ServingConfig.from_env(ENV).enabled is True


@pytest.mark.parametrize(("name", "value", "message"), [
    ("FAISS_SERVING_ENABLED", "maybe", "FAISS_SERVING_ENABLED='maybe' is not a boolean"),
    ("FAISS_SHADOW_QUEUE", "0", "shadow queue size must be >= 1"),
    ("FAISS_MEMORY_HEADROOM_FACTOR", "-1", "0 disables the check"),
])
def test_a_malformed_flag_queue_size_or_memory_factor_is_a_config_error(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServingConfig.from_env({**ENV, name: value})
