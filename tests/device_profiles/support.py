"""Helpers shared by the device_profiles tests."""

from __future__ import annotations

import textwrap

import pytest

from device_profiles import ProfileError, ProfileValidationError, load_profile
from device_profiles.model import Profile

HEADER = "format: trolley-profile/1\nname: Test profile\n"


def profile_from(body: str, *, filename: str = "test.yaml") -> Profile:
    """Load a profile whose first two lines are the standard header."""
    return load_profile(HEADER + textwrap.dedent(body), filename)


def errors_of(text: str, *, filename: str = "test.yaml") -> list[ProfileError]:
    """Every error the loader reports for `text` (which must fail to load)."""
    with pytest.raises(ProfileValidationError) as info:
        load_profile(textwrap.dedent(text), filename)
    return list(info.value.errors)


def only_error(text: str, *, filename: str = "test.yaml") -> ProfileError:
    """The single error the loader reports for `text`."""
    errors = errors_of(text, filename=filename)
    assert len(errors) == 1, [e.describe() for e in errors]
    return errors[0]


# A profile that manages every setting the language has, so each writer's coverage is visible.
KITCHEN_SINK = """\
format: trolley-profile/1
id: kitchen-sink
name: Every setting
description: Exercises every key of the language.
device:
  camera: blocked
  screenshots: blocked
  airdrop: blocked
  bluetooth_changes: blocked
  auto_lock_minutes: 5
  wipe_photos_on_return: true
apps:
  installation: blocked
  removal: blocked
  allow_list: [com.apple.mobilesafari, com.example.reader]
  explicit_content: blocked
  safari: allowed
web_filter:
  mode: allow_list_only
  allowed_urls:
    - https://www.bbc.co.uk/bitesize
    - url: https://Example.org:8443/maths/
      title: Maths
  blocked_urls:
    - https://www.bbc.co.uk/bitesize/games
  safe_search: enforced
  youtube_restricted_mode: strict
passcode:
  required: true
  min_length: 6
  simple_allowed: false
  alphanumeric_required: true
  min_complex_chars: 1
  max_failed_attempts: 10
  max_age_days: 365
  history: 5
kiosk:
  app: com.example.reader
browser:
  incognito: blocked
  developer_tools: blocked
  camera: allowed
  microphone: blocked
  extensions:
    mode: allow_list
    allowed: [aapbdbdomjkkjkaonfhkkikfgjllcleb]
"""
