"""Schemathesis against the live OpenAPI document: no request, however wrong, gets a 5xx."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from server.auth.models import Role
from tests.security.conftest import LiveTrolley, start_live

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency")

# Per operation and mode: about 5,000 requests in all. Generating them is most of what the pair
# costs (Hypothesis, not the server), and 25 each put `make test` past its fifteen minutes.
# Every operation runs, however slow the machine: a time budget that stopped early would fail a
# correct server on a busy machine (the test's timeout is the only limit).
EXAMPLES = {"positive": 15, "negative": 15}
SETTINGS = settings(
    derandomize=True,  # the same examples every run: a failure here is reproducible
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: we report, we do not minimise
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveTrolley]:
    """A server of its own: generated requests change and delete real data."""
    yield from start_live(tmp_path_factory.mktemp("fuzzed"))


# Revoking the fuzzer's own token would turn the rest of the run into 401s.
SKIPPED = {("DELETE", "/api/v1/tokens/{token_id}")}


def _server_errors(
    live: LiveTrolley,
    operation: Any,
    mode: Any,
    headers: dict[str, str],
    statuses: Counter[int],
    with_our_token: Counter[int],
) -> list[str]:
    """Every 5xx this operation gives for generated requests, as 'METHOD path -> status' lines;
    `with_our_token` counts the answers to requests that still carried the role's own token."""
    found: list[str] = []

    @settings(SETTINGS, max_examples=EXAMPLES[mode.value])
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=live.url, headers=headers, timeout=10)
        statuses[response.status_code] += 1
        if response.request.headers.get("Authorization") == headers["Authorization"]:
            with_our_token[response.status_code] += 1
        if response.status_code >= 500:
            found.append(
                f"{case.method} {case.formatted_path} ({mode.value}) -> "
                f"{response.status_code}\n  {case.as_curl_command()}"
            )

    try:
        run()
    except Unsatisfiable:
        pass  # a schema with no invalid form has no negative examples; not a failure
    return found


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode_name", ["positive", "negative"])
def test_no_generated_request_gets_a_server_error(fuzzed: LiveTrolley, mode_name: str) -> None:
    """Issue 2 §5: anything a client sends that is wrong gets a 4xx, never a 500. Valid and
    invalid requests are separate tests, so two processes can share the work."""
    from schemathesis import GenerationMode
    from schemathesis.openapi import from_url

    live = fuzzed
    mode = GenerationMode(mode_name)
    schema = from_url(f"{live.url}/api/v1/openapi.json")
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if (op.method.upper(), op.path) not in SKIPPED
    ]
    assert len(operations) >= 10, "the OpenAPI document lists too few operations"
    started = time.monotonic()
    errors: list[str] = []
    statuses: Counter[int] = Counter()
    with_our_token: Counter[int] = Counter()
    # The two roles take turns, and swap turns between the modes, so each sees both kinds.
    for n, operation in enumerate(operations):
        role = (Role.SBM, Role.TECHNICIAN)[(n + (mode is GenerationMode.NEGATIVE)) % 2]
        errors += _server_errors(live, operation, mode, live.tokens[role], statuses, with_our_token)
    elapsed = time.monotonic() - started
    print(
        f"{len(operations)} operation runs, {statuses.total()} requests in {elapsed:.0f}s: "
        f"{statuses}; with the role's own token: {with_our_token}"
    )
    assert not errors, f"{len(errors)} server errors:\n" + "\n".join(errors)
    # The tokens must have worked: an API that answered only 401 was never really exercised.
    # Counted over the requests that still carried the role's token (invalid requests may
    # replace it, and get a 401 rightly); some are expected even so, as generated requests may
    # retire a person or a token on the way.
    assert with_our_token[401] < with_our_token.total() // 3, with_our_token
    if mode is GenerationMode.POSITIVE:
        assert sum(n for status, n in statuses.items() if status < 300) > len(operations)
