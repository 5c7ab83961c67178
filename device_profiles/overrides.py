"""Temporary filter exceptions (P-PROFILE-3) applied to a profile before it is compiled."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from device_profiles.errors import ProfileError, ProfileValidationError
from device_profiles.model import AllowedSite, FilterMode, Profile
from device_profiles.urls import MAX_URLS_PER_LIST, default_title, url_problem


def _key(url: str) -> str:
    return url.lower().rstrip("/")


def with_filter_exceptions(profile: Profile, urls: Sequence[str]) -> Profile:
    """A copy of `profile` in which each address in `urls` is reachable.

    The server decides which exceptions are active (it owns requester, reason, approver and
    expiry); this only applies them: an address is added to the allowed list and taken off the
    block list. With no filter there is nothing to unblock and the profile is returned unchanged.
    """
    errors = [
        ProfileError(
            f"'{url}' is not a usable web address: {problem}",
            key_path=f"filter_exceptions[{index}]",
        )
        for index, url in enumerate(urls)
        if (problem := url_problem(url)) is not None
    ]
    if errors:
        raise ProfileValidationError(errors)
    wf = profile.web_filter
    if wf.mode is FilterMode.NONE or not urls:
        return profile
    known = {_key(site.url) for site in wf.allowed}
    added = [
        AllowedSite(url, default_title(url))
        for url in dict.fromkeys(urls)
        if _key(url) not in known
    ]
    allowed = (*wf.allowed, *added)
    if len(allowed) > MAX_URLS_PER_LIST:
        raise ProfileValidationError(
            [
                ProfileError(
                    f"with these exceptions the allow list would hold {len(allowed)} addresses; "
                    f"at most {MAX_URLS_PER_LIST}",
                    key_path="filter_exceptions",
                )
            ]
        )
    unblocked = {_key(url) for url in urls}
    blocked = tuple(url for url in wf.blocked_urls if _key(url) not in unblocked)
    new_filter = dataclasses.replace(wf, allowed=allowed, blocked_urls=blocked)
    return dataclasses.replace(profile, web_filter=new_filter)
