"""`config.toml` validation: unknown keys, wrong types and ranges each named by their setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk_client.config import (
    CONFIG_NAME,
    DEFAULT_REPORT_INTERVAL,
    SECRETS_NAME,
    LinuxSettings,
    Platform,
    load_config,
    write_config,
)
from kiosk_client.errors import ConfigError

VALID = """\
format = "trolley-kiosk-config/1"
device_id = "dev-0042"
platform = "simulated"
server_url = "https://trolley.school.example"
broker_url = "mqtt://broker.school.example:1883"
"""


def data_dir(tmp_path: Path, extra: str = "", *, base: str = VALID) -> Path:
    """A data directory whose config is `base` followed by `extra`."""
    (tmp_path / CONFIG_NAME).write_text(base + extra)
    (tmp_path / SECRETS_NAME).write_text('broker_password = "secret"\n')
    return tmp_path


def problems(tmp_path: Path, extra: str = "", *, base: str = VALID) -> list[str]:
    """The problems one `ConfigError` lists, one a line."""
    with pytest.raises(ConfigError) as caught:
        load_config(data_dir(tmp_path, extra, base=base), {})
    first, *rest = str(caught.value).splitlines()
    assert first.endswith(f"{CONFIG_NAME} is invalid:")
    return [line.strip() for line in rest]


def test_a_minimal_config_loads_with_defaults_and_round_trips(tmp_path: Path) -> None:
    config = load_config(data_dir(tmp_path), {})
    assert config.platform is Platform.SIMULATED and config.username == "dev-0042"
    assert config.report_interval == DEFAULT_REPORT_INTERVAL and config.http_timeout == 10.0
    assert config.simulated is not None and config.simulated.root == tmp_path / "device"
    assert config.linux is None and config.tls is None and config.password == "secret"
    write_config(config)
    assert load_config(tmp_path, {}) == config


def test_a_linux_config_resolves_paths_and_keeps_defaults(tmp_path: Path) -> None:
    base = VALID.replace('"simulated"', '"linux"')
    extra = '[linux]\nphoto_dirs = ["photos"]\nstart_url = ""\napps_dir = ""\n'
    linux = load_config(data_dir(tmp_path, extra, base=base), {}).linux
    assert linux == LinuxSettings(
        photo_dirs=(tmp_path / "photos",),
        screens_dir=tmp_path / "screens",
        apps_dir=None,
    )


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('colour = "blue"\n', "colour: unknown setting"),
        ("[http]\ntimout = 5\n", "http.timout: unknown setting"),
        ("[linux]\nphoto_dir = []\n", "linux.photo_dir: unknown setting"),
    ],
)
def test_an_unknown_key_is_refused_by_name(tmp_path: Path, extra: str, problem: str) -> None:
    assert problems(tmp_path, extra) == [problem]


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('keepalive = "30"\n', "keepalive: must be a whole number"),
        ("keepalive = 30.5\n", "keepalive: must be a whole number"),
        ("report_interval = true\n", "report_interval: must be a whole number"),
        ('fsync = "yes"\n', "fsync: must be true or false"),
        ("school = 7\n", "school: must be a string"),
        ("http = 3\n", "http: must be a table"),
        ('[http]\ntimeout = "10"\n', "http.timeout: must be a number"),
        (
            '[linux]\nphoto_dirs = "~/Pictures"\n',
            "linux.photo_dirs: must be a list of non-empty strings",
        ),
        (
            '[linux]\nbrowser_command = ["chromium", ""]\n',
            "linux.browser_command: must be a list of non-empty strings",
        ),
    ],
)
def test_a_wrong_type_is_named_by_its_setting(tmp_path: Path, extra: str, problem: str) -> None:
    assert problems(tmp_path, extra) == [problem]


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("keepalive = 2\n", "keepalive: must be between 5 and 3600"),
        ("report_interval = -1\n", "report_interval: must be between 0 and 604800"),
        ("[http]\ntimeout = 0\n", "http.timeout: must be between 0.1 and 300.0"),
        (
            "[simulated]\noperation_delay = 601\n",
            "simulated.operation_delay: must be between 0.0 and 600.0",
        ),
    ],
)
def test_a_value_out_of_range_is_refused(tmp_path: Path, extra: str, problem: str) -> None:
    assert problems(tmp_path, extra) == [problem]


def test_a_missing_setting_and_rules_across_settings(tmp_path: Path) -> None:
    assert problems(tmp_path, base=VALID.replace('device_id = "dev-0042"\n', "")) == [
        "device_id: missing"
    ]
    assert problems(tmp_path, 'username = "dev-0043"\n') == [
        "username: must equal device_id (the broker pins one to the other)"
    ]
    assert problems(tmp_path, '[tls]\nca_file = "tls/ca.pem"\n') == [
        "tls: given, but broker_url is plain mqtt://",
        f"tls.ca_file: {tmp_path / 'tls' / 'ca.pem'} does not exist",
    ]
    base = VALID.replace('"simulated"', '"linux"')
    extra = "[linux]\nbrowser_command = []\nrestart_delay = 10.0\nmax_restart_delay = 5.0\n"
    assert problems(tmp_path, extra, base=base) == [
        "linux.browser_command: must name a program",
        "linux.max_restart_delay: must not be below restart_delay",
    ]
