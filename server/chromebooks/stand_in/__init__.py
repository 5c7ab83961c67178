"""A stand-in for Google on 127.0.0.1, for the demo and the tests: the same APIs, checked."""

from __future__ import annotations

from server.chromebooks.stand_in.catalogue import CUSTOMER, SCHEMAS
from server.chromebooks.stand_in.service import GoogleStandIn, StandInCommand

__all__ = ["CUSTOMER", "SCHEMAS", "GoogleStandIn", "StandInCommand"]
