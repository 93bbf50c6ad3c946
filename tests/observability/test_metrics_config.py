"""The metrics settings: -m and --metrics-port from flags, environment and file."""

from __future__ import annotations

import pytest

from lrukv_server.config import ConfigError, load_config


def test_metrics_port_comes_from_flag_and_environment() -> None:
    config = load_config(["-m", "--metrics-port", "9108"], env={})
    assert (config.observability.metrics, config.observability.metrics_port) == (True, 9108)
    from_env = load_config([], env={"LRUKV_METRICS": "true", "LRUKV_METRICS_PORT": "9109"})
    assert from_env.observability.metrics_port == 9109
    assert load_config([], env={}).observability.metrics_port == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics-port", "9108"], "--metrics-port needs -m"),
        (["-m", "--metrics-port", "8080"], "--metrics-port 8080 is also the HTTP or gRPC port"),
        (["-m", "--metrics-port", "70000"], "metrics_port must be an int between 0 and 65535"),
    ],
)
def test_bad_metrics_settings_are_refused_with_the_reason(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(argv, env={})
