"""The fake Google the tests use: the product's stand-in, which checks every request."""

from __future__ import annotations

from server.chromebooks.stand_in import GoogleStandIn as FakeGoogle

__all__ = ["FakeGoogle"]
