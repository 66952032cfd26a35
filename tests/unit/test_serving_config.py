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
