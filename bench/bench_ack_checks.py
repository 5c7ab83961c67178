"""What checking a fleet's acks costs the worker: every ack's envelope opened and its Ed25519
signature verified, as the worker does (a canonical envelope read by the C parser alone, the
signature checked by libsodium), against the same checks as the worker made them two rounds
ago (a hook per JSON object, the body walked again for its canonical form, the signature
checked by OpenSSL through `cryptography`), in the same run.

A fleet-wide command brings two acks a device, each checked before it is recorded; on this
2-core machine the checks were the largest single cost of recording them. Each round opens
2,000 acks of 1,000 devices (as `bench/light_responders.py` signs them); rounds alternate and
medians of CPU time are compared. Prints the ratio first and writes
bench/results/ack_checks.json.

    .venv/bin/python bench/bench_ack_checks.py [--devices N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bench.common import median, write_result
from mqtt import envelope
from mqtt.messages import AckState, build_ack

TARGET = 0.7  # at most seven tenths of the CPU the OpenSSL checks take

# A signed ack, the device it claims to come from, and that device's trusted key.
Signed = tuple[bytes, str, dict[str, Ed25519PublicKey]]


def _acks(devices: int, now: int) -> list[Signed]:
    """Two signed acks per device, each with the sender's id and its trusted key."""
    out = []
    for n in range(devices):
        key = Ed25519PrivateKey.generate()
        kid, mqtt_id = envelope.key_id(key.public_key()), f"dev-bench-{n:05d}"
        for state in (AckState.RECEIVED, AckState.DONE):
            ack = build_ack(f"cmd-{n}", state, device_id=mqtt_id, kid=kid, now=now)
            out.append((envelope.sign(ack.to_body(), key), mqtt_id, {kid: key.public_key()}))
    return out


def _before(raw: bytes, keys: dict[str, Ed25519PublicKey], device_id: str, now: int) -> Any:
    """The same checks in the same order as the worker made them two rounds ago: the envelope
    parsed with a hook per object, the body walked for its canonical form, and the signature
    verified by OpenSSL."""
    parsed = json.loads(
        raw.decode("utf-8"),
        object_pairs_hook=envelope._object_without_duplicates,
        parse_float=envelope._refuse_float,
        parse_constant=envelope._refuse_constant,
    )
    body, sig = envelope._shape(parsed)
    signature = envelope._b64url_decode(sig, 64, "sig")
    envelope._check_header(body)
    keys[body["kid"]].verify(signature, envelope.canonical_json(body))
    assert body["device_id"] == device_id and body["iat"] - 60 <= now < body["exp"]
    return body


def _round(acks: list[Signed], now: int, old: bool) -> float:
    """CPU seconds to open every ack."""
    started = time.process_time()
    for raw, mqtt_id, keys in acks:
        if old:
            _before(raw, keys, mqtt_id, now)
        else:
            envelope.open_envelope(raw, keys, device_id=mqtt_id, now=now)
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    now = int(time.time())
    acks = _acks(args.devices, now)
    _round(acks, now, old=False)  # warm both sides
    _round(acks, now, old=True)
    measured, baseline = [], []
    for _run in range(args.runs):  # alternated, so both sides see the same machine
        measured.append(_round(acks, now, old=False))
        baseline.append(_round(acks, now, old=True))
    value, base = median(measured), median(baseline)
    ratio = value / base
    write_result(
        "ack_checks",
        value=value * 1e6 / len(acks),
        unit="µs CPU per ack opened and verified",
        baseline=base * 1e6 / len(acks),
        ratio=ratio,
        target=f"<= {TARGET}",
        details={"devices": args.devices, "acks": len(acks), "runs": args.runs},
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
