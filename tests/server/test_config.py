"""Settings are validated at start-up with one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, load_settings


def test_production_needs_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TROLLEY_SECRET_KEY is not set"):
        load_settings(env={"TROLLEY_INSTANCE_DIR": str(tmp_path)})


def test_production_needs_data_keys(tmp_path: Path) -> None:
    env = {"TROLLEY_INSTANCE_DIR": str(tmp_path), "TROLLEY_SECRET_KEY": "x" * 40}
    with pytest.raises(ConfigError, match="TROLLEY_DATA_KEYS"):
        load_settings(env=env)


def test_bad_data_key_is_named(tmp_path: Path) -> None:
    env = {
        "TROLLEY_INSTANCE_DIR": str(tmp_path),
        "TROLLEY_SECRET_KEY": "x" * 40,
        "TROLLEY_DATA_KEYS": "not-a-key",
    }
    with pytest.raises(ConfigError, match="not a valid key"):
        load_settings(env=env)


def test_unknown_database_is_refused(tmp_path: Path) -> None:
    env = {"TROLLEY_INSTANCE_DIR": str(tmp_path), "TROLLEY_DATABASE_URL": "mysql://x/y"}
    with pytest.raises(ConfigError, match="TROLLEY_DATABASE_URL"):
        load_settings(env=env, overrides={"demo": True})


def test_demo_makes_and_keeps_its_secrets_outside_the_database(tmp_path: Path) -> None:
    first = load_settings(env={"TROLLEY_INSTANCE_DIR": str(tmp_path)}, overrides={"demo": True})
    second = load_settings(env={"TROLLEY_INSTANCE_DIR": str(tmp_path)}, overrides={"demo": True})
    assert first.secret_key == second.secret_key and first.data_keys == second.data_keys
    assert (tmp_path / "data.key").stat().st_mode & 0o777 == 0o600
    assert first.database_url == f"sqlite:///{tmp_path.resolve() / 'trolley.db'}"
    assert first.secure_cookies is False


def test_production_cookies_are_secure(tmp_path: Path) -> None:
    env = {
        "TROLLEY_INSTANCE_DIR": str(tmp_path),
        "TROLLEY_SECRET_KEY": "x" * 40,
        "TROLLEY_DATA_KEYS": "Xz7bq0q4bq4w1Xn2l3uQx1m5yV6f0k3d7R9sT2uV4wA=",
    }
    assert load_settings(env=env).secure_cookies is True


def test_passkeys_belong_to_the_base_url_unless_told_otherwise(tmp_path: Path) -> None:
    """The site passkeys are made for is checked at start-up, not at someone's first passkey."""
    env = {"TROLLEY_INSTANCE_DIR": str(tmp_path), "TROLLEY_BASE_URL": "https://it.oak.example/"}
    settings = load_settings(env=env, overrides={"demo": True})
    assert (settings.passkey_origin, settings.passkey_rp_id) == (
        "https://it.oak.example",
        "it.oak.example",
    )
    parent = load_settings(
        env={**env, "TROLLEY_PASSKEY_RP_ID": "oak.example"}, overrides={"demo": True}
    )
    assert parent.passkey_rp_id == "oak.example"
    with pytest.raises(ConfigError, match=r"TROLLEY_PASSKEY_RP_ID must be it\.oak\.example"):
        load_settings(
            env={**env, "TROLLEY_PASSKEY_RP_ID": "evil.example"}, overrides={"demo": True}
        )
    with pytest.raises(ConfigError, match="TROLLEY_PASSKEY_ORIGIN"):
        load_settings(env={**env, "TROLLEY_PASSKEY_ORIGIN": "trolley"}, overrides={"demo": True})
