"""Pasted web addresses reduced to what a filter can match."""

from __future__ import annotations

import pytest

from device_profiles.urls import filterable_address, url_problem


@pytest.mark.parametrize(
    ("pasted", "address", "cut"),
    [
        ("https://www.youtube.com/watch?v=abc123", "https://www.youtube.com/watch", "?v=abc123"),
        ("  https://www.bbc.co.uk/bitesize#top ", "https://www.bbc.co.uk/bitesize", "#top"),
        ("https://scratch.mit.edu/", "https://scratch.mit.edu", ""),
        ("scratch.mit.edu/projects", "https://scratch.mit.edu/projects", ""),
        (
            "www.example.com?next=https://x.example",
            "https://www.example.com",
            "?next=https://x.example",
        ),
        ("ftp://files.example.com/a", "ftp://files.example.com/a", ""),
        ("", "", ""),
    ],
)
def test_a_pasted_address_keeps_the_site_and_path(pasted: str, address: str, cut: str) -> None:
    assert filterable_address(pasted) == (address, cut)


def test_what_cannot_be_filtered_is_still_named_by_the_usual_checks() -> None:
    for pasted in ("ftp://files.example.com", "not a site", "https://intranet/page"):
        assert url_problem(filterable_address(pasted)[0]) is not None
