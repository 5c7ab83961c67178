"""The loader: the profile language, its defaults, and precise errors (file, line, key path)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from device_profiles import (
    DEFAULT_AUTO_LOCK_MINUTES,
    Access,
    FilterMode,
    ProfileError,
    ProfileValidationError,
    SafeSearch,
    YouTubeMode,
    dump_profile,
    load_profile,
    load_profile_file,
)
from device_profiles.urls import MAX_URLS_PER_LIST
from tests.device_profiles.support import KITCHEN_SINK, errors_of, only_error, profile_from


def test_minimal_profile_gets_defaults() -> None:
    profile = profile_from("")
    assert profile.name == "Test profile"
    assert profile.slug == "test-profile"
    # P-PROFILE-2: ten minutes unless the profile says otherwise.
    assert profile.device.auto_lock_minutes == DEFAULT_AUTO_LOCK_MINUTES == 10
    assert profile.device.camera is None
    assert profile.web_filter.mode is FilterMode.NONE
    assert profile.kiosk is None
    assert profile.specified_settings() == ("device.auto_lock_minutes",)


def test_kitchen_sink_reads_every_section() -> None:
    profile = load_profile(KITCHEN_SINK, "kitchen.yaml")
    assert profile.slug == "kitchen-sink"
    assert profile.device.camera is Access.BLOCKED
    assert profile.device.auto_lock_minutes == 5
    assert profile.device.wipe_photos_on_return is True
    assert profile.apps.allow_list == ("com.apple.mobilesafari", "com.example.reader")
    assert profile.web_filter.mode is FilterMode.ALLOW_LIST_ONLY
    assert [s.title for s in profile.web_filter.allowed] == ["bbc.co.uk", "Maths"]
    assert profile.web_filter.safe_search is SafeSearch.ENFORCED
    assert profile.web_filter.youtube_restricted_mode is YouTubeMode.STRICT
    assert profile.passcode.required and profile.passcode.history == 5
    assert profile.kiosk is not None and profile.kiosk.app == "com.example.reader"
    assert profile.browser.extensions is not None
    assert profile.browser.extensions.allowed == ("aapbdbdomjkkjkaonfhkkikfgjllcleb",)
    assert len(profile.specified_settings()) == 30


def test_words_yaml_would_turn_into_booleans_are_read_as_words() -> None:
    profile = profile_from(
        """\
        web_filter:
          safe_search: off
          youtube_restricted_mode: off
        """
    )
    assert profile.web_filter.safe_search is SafeSearch.OFF
    assert profile.web_filter.youtube_restricted_mode is YouTubeMode.OFF


def test_unknown_key_names_the_nearest_valid_key() -> None:
    error = only_error(
        """\
        format: trolley-profile/1
        name: KS1
        device:
          camera: allowed
          screenshot: blocked
        """,
        filename="ks1.yaml",
    )
    assert (error.file, error.line, error.key_path) == ("ks1.yaml", 5, "device.screenshot")
    assert error.suggestion == "screenshots"
    assert "screenshots" in error.allowed
    assert "did you mean 'screenshots'?" in str(error)


def test_a_key_in_the_wrong_section_points_at_its_section() -> None:
    error = only_error(
        """\
        format: trolley-profile/1
        name: KS1
        airdrop: blocked
        """
    )
    assert (error.line, error.key_path, error.suggestion) == (3, "airdrop", "device.airdrop")


def test_wrong_type() -> None:
    error = only_error(
        """\
        format: trolley-profile/1
        name: KS1
        device:
          auto_lock_minutes: ten
        """,
        filename="ks1.yaml",
    )
    assert (error.file, error.line, error.key_path) == ("ks1.yaml", 4, "device.auto_lock_minutes")
    assert "expected a whole number" in error.message


def test_wrong_word_lists_allowed_values() -> None:
    error = only_error(
        """\
        format: trolley-profile/1
        name: KS1
        web_filter:
          mode: allowlist_only
        """
    )
    assert (error.line, error.key_path) == (4, "web_filter.mode")
    assert error.allowed == ("none", "allow_list_only", "block_list", "adult_content_filter")
    assert error.suggestion == "allow_list_only"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("device:\n  auto_lock_minutes", "16", "from 0 to 15"),
        ("device:\n  auto_lock_minutes", "-1", "from 0 to 15"),
        ("passcode:\n  required: true\n  min_length", "17", "from 0 to 16"),
        ("passcode:\n  required: true\n  max_failed_attempts", "1", "from 2 to 11"),
        ("passcode:\n  required: true\n  min_complex_chars", "5", "from 0 to 4"),
        ("passcode:\n  required: true\n  history", "0", "from 1 to 50"),
        ("passcode:\n  required: true\n  max_age_days", "731", "from 0 to 730"),
    ],
)
def test_out_of_range(key: str, value: str, message: str) -> None:
    text = f"format: trolley-profile/1\nname: KS1\n{key}: {value}\n"
    error = only_error(text, filename="range.yaml")
    leaf = key.rsplit("\n", 1)[-1].strip()
    section = key.split(":", 1)[0]
    assert error.file == "range.yaml"
    assert error.key_path == f"{section}.{leaf}"
    assert error.line == text.count("\n")  # the value is on the last line
    assert message in error.message


def test_malformed_url_is_located_at_its_list_item() -> None:
    error = only_error(
        """\
        format: trolley-profile/1
        name: KS1
        web_filter:
          mode: allow_list_only
          allowed_urls:
            - https://www.bbc.co.uk/bitesize
            - https://www.topmarks.co.uk
            - url: https://www.phonicsplay.co.uk
              title: Phonics
            - htps://cbeebies
        """,
        filename="ks1.yaml",
    )
    assert (error.file, error.line, error.key_path) == (
        "ks1.yaml",
        10,
        "web_filter.allowed_urls[3]",
    )
    assert "https://" in error.message


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("bbc.co.uk", "starting with https://"),
        ("https://bbc.co.uk/search?q=x", "'?'"),
        ("https://bbc.co.uk/#top", "'#'"),
        ("https://bbc", "not a valid site name"),
        ("https://user:pw@bbc.co.uk", "user name or password"),
        ("https://bbc.co.uk:99999", "not a valid web address"),
        ("https://bbc .co.uk", "spaces"),
        ("ftp://bbc.co.uk", "https://"),
    ],
)
def test_malformed_urls(url: str, fragment: str) -> None:
    error = only_error(
        f"format: trolley-profile/1\nname: X\nweb_filter:\n  mode: block_list\n"
        f"  blocked_urls:\n    - '{url}'\n"
    )
    assert (error.line, error.key_path) == (6, "web_filter.blocked_urls[0]")
    assert fragment in error.message


def test_allow_list_filter_without_urls() -> None:
    error = only_error(
        """\
        format: trolley-profile/1
        name: KS1
        web_filter:
          mode: allow_list_only
        """,
        filename="ks1.yaml",
    )
    assert (error.file, error.line, error.key_path) == ("ks1.yaml", 4, "web_filter.allowed_urls")
    assert "at least one address" in error.message


def test_allow_list_filter_with_an_empty_list() -> None:
    error = only_error(
        """\
        format: trolley-profile/1
        name: KS1
        web_filter:
          mode: allow_list_only
          allowed_urls: []
        """
    )
    assert (error.line, error.key_path) == (5, "web_filter.allowed_urls")


def test_urls_without_a_filter_mode_are_an_error_not_ignored() -> None:
    error = only_error(
        """\
        format: trolley-profile/1
        name: KS1
        web_filter:
          blocked_urls: [https://www.tiktok.com]
        """
    )
    assert (error.line, error.key_path) == (4, "web_filter.blocked_urls")
    assert "allow_list_only" in error.allowed


def test_too_many_urls() -> None:
    urls = "".join(f"    - https://site{i}.example.org\n" for i in range(MAX_URLS_PER_LIST + 1))
    text = "format: trolley-profile/1\nname: Big\nweb_filter:\n  mode: block_list\n"
    error = only_error(text + "  blocked_urls:\n" + urls, filename="big.yaml")
    assert (error.file, error.line, error.key_path) == ("big.yaml", 6, "web_filter.blocked_urls")
    assert f"{MAX_URLS_PER_LIST + 1} addresses" in error.message
    assert f"at most {MAX_URLS_PER_LIST}" in error.message


def test_exactly_the_limit_is_fine() -> None:
    urls = "".join(f"    - https://site{i}.example.org\n" for i in range(MAX_URLS_PER_LIST))
    profile = profile_from("web_filter:\n  mode: block_list\n  blocked_urls:\n" + urls)
    assert len(profile.web_filter.blocked_urls) == MAX_URLS_PER_LIST


def test_all_errors_are_collected_in_line_order() -> None:
    errors = errors_of(
        """\
        format: trolley-profile/1
        name: KS1
        device:
          camra: blocked
          auto_lock_minutes: 99
        apps:
          installation: maybe
        passcode:
          required: yes
        browser:
          extensions:
            mode: allow_list
            allowed: [not-an-extension]
        """
    )
    assert [(e.line, e.key_path) for e in errors] == [
        (4, "device.camra"),
        (5, "device.auto_lock_minutes"),
        (7, "apps.installation"),
        (9, "passcode.required"),
        (13, "browser.extensions.allowed[0]"),
    ]


def test_booleans_must_be_true_or_false() -> None:
    error = only_error("format: trolley-profile/1\nname: X\npasscode:\n  required: yes\n")
    assert error.allowed == ("true", "false")
    assert error.key_path == "passcode.required"


def test_repeated_keys_are_errors() -> None:
    error = only_error(
        """\
        format: trolley-profile/1
        name: KS1
        device:
          camera: blocked
          camera: allowed
        """
    )
    assert (error.line, error.key_path) == (5, "device.camera")
    assert "first given on line 4" in error.message


def test_repeated_urls_are_errors() -> None:
    error = only_error(
        """\
        format: trolley-profile/1
        name: KS1
        web_filter:
          mode: block_list
          blocked_urls:
            - https://www.tiktok.com
            - https://www.TikTok.com/
        """
    )
    assert (error.line, error.key_path) == (7, "web_filter.blocked_urls[1]")
    assert "blocked_urls[0]" in error.message


def test_yaml_syntax_error_has_a_line() -> None:
    error = only_error("format: trolley-profile/1\nname: [unclosed\ndevice: {}\n")
    assert error.line is not None and error.line >= 2
    assert "not valid YAML" in error.message


def test_empty_file() -> None:
    error = only_error("")
    assert error.line == 1


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("name: X\n", "format"),
        ("format: trolley-profile/2\nname: X\n", "format"),
        ("format: trolley-profile/1\n", "name"),
        ("format: trolley-profile/1\nname: '!!!'\n", "id"),
        ("format: trolley-profile/1\nname: X\nid: KS1 iPad\n", "id"),
        ("- a list\n", None),
    ],
)
def test_header_problems(text: str, path: str | None) -> None:
    error = only_error(text)
    assert error.key_path == path


def test_other_format_versions_are_named() -> None:
    error = only_error("format: trolley-profile/2\nname: X\ncamra: 1\n")
    assert error.allowed == ("trolley-profile/1",)
    assert "trolley-profile/2" in error.message


def test_kiosk_is_one_app_or_one_address() -> None:
    both = only_error(
        "format: trolley-profile/1\nname: X\nkiosk:\n  app: com.example.app\n"
        "  url: https://exam.example.org\n"
    )
    assert (both.line, both.key_path) == (5, "kiosk")
    neither = only_error("format: trolley-profile/1\nname: X\nkiosk: {}\n")
    assert (neither.line, neither.key_path) == (3, "kiosk")


def test_kiosk_address_may_carry_a_query() -> None:
    profile = profile_from("kiosk:\n  url: https://exam.example.org/start?centre=123\n")
    assert profile.kiosk is not None
    assert profile.kiosk.url == "https://exam.example.org/start?centre=123"


def test_kiosk_app_must_be_on_the_app_allow_list() -> None:
    error = only_error(
        "format: trolley-profile/1\nname: X\napps:\n  allow_list: [com.apple.mobilesafari]\n"
        "kiosk:\n  app: com.example.reader\n"
    )
    assert (error.line, error.key_path) == (6, "kiosk.app")


def test_passcode_rules_need_required_true() -> None:
    missing = only_error("format: trolley-profile/1\nname: X\npasscode:\n  min_length: 6\n")
    assert (missing.line, missing.key_path) == (3, "passcode.required")
    false = only_error(
        "format: trolley-profile/1\nname: X\npasscode:\n  required: false\n  min_length: 6\n"
    )
    assert (false.line, false.key_path) == (4, "passcode.required")


def test_empty_app_allow_list_is_refused() -> None:
    error = only_error("format: trolley-profile/1\nname: X\napps:\n  allow_list: []\n")
    assert error.key_path == "apps.allow_list"


def test_extensions_rules() -> None:
    block_all = only_error(
        "format: trolley-profile/1\nname: X\nbrowser:\n  extensions:\n    mode: block_all\n"
        "    allowed: [aapbdbdomjkkjkaonfhkkikfgjllcleb]\n"
    )
    assert (block_all.line, block_all.key_path) == (6, "browser.extensions.allowed")
    no_mode = only_error(
        "format: trolley-profile/1\nname: X\nbrowser:\n  extensions:\n"
        "    allowed: [aapbdbdomjkkjkaonfhkkikfgjllcleb]\n"
    )
    assert no_mode.key_path == "browser.extensions.mode"


def test_quoted_number_is_not_a_number() -> None:
    error = only_error("format: trolley-profile/1\nname: X\ndevice:\n  auto_lock_minutes: '5'\n")
    assert "text" in error.message


def test_empty_section_is_allowed() -> None:
    assert profile_from("browser:\n").browser.incognito is None


def test_validation_error_text_lists_every_problem() -> None:
    with pytest.raises(ProfileValidationError) as info:
        load_profile("format: trolley-profile/1\nname: X\ndevice:\n  camra: 1\n  x: 2\n", "a.yaml")
    text = str(info.value)
    assert text.splitlines()[0] == "a.yaml: 2 problems in the profile"
    assert "a.yaml:4: device.camra" in text and "a.yaml:5: device.x" in text
    assert info.value.errors[0].as_dict()["line"] == 4


def test_load_profile_file_reports_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "ks1.yaml"
    path.write_text("format: trolley-profile/1\nname: X\ndevice:\n  camera: on\n", "utf-8")
    with pytest.raises(ProfileValidationError) as info:
        load_profile_file(path)
    assert info.value.errors[0].file == "ks1.yaml"
    with pytest.raises(ProfileError) as missing:
        load_profile_file(tmp_path / "missing.yaml")
    assert missing.value.file == "missing.yaml"


def test_dump_then_load_gives_the_same_profile() -> None:
    profile = load_profile(KITCHEN_SINK)
    again = load_profile(dump_profile(profile))
    assert again == profile


def test_dumped_yaml_reads_like_the_source() -> None:
    profile = profile_from(
        """\
        web_filter:
          safe_search: off
        """
    )
    assert dump_profile(profile) == textwrap.dedent(
        """\
        format: trolley-profile/1
        id: test-profile
        name: Test profile
        description: ''
        device:
          auto_lock_minutes: 10
        web_filter:
          safe_search: 'off'
        """
    )
