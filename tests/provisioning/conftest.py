"""Fixtures for the provisioning tests: the test school's CA and another school's."""

from __future__ import annotations

import pytest

from provisioning.ca import SchoolCA, create_school_ca
from tests.provisioning.support import NOW, SCHOOL, fixed_ec_key


@pytest.fixture
def school_ca() -> SchoolCA:
    """The deterministic CA of the test school."""
    return create_school_ca(SCHOOL, now=NOW, key=fixed_ec_key(1))


@pytest.fixture
def other_ca() -> SchoolCA:
    """Another school's CA, to prove certificates do not cross schools."""
    return create_school_ca("Elm Tree Primary School", now=NOW, key=fixed_ec_key(2))
