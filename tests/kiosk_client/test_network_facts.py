"""The Linux kiosk reads its Wi-Fi name and gateway from the system (P-REG-3)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kiosk_client.adapters.linux_system import NetworkFacts

# /proc/net/route as the kernel writes it: the default route's gateway 192.168.1.254.
ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0
wlan0\t00000000\tFE01A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
"""


def answers(replies: dict[str, str]) -> tuple[list[str], object]:
    asked: list[str] = []

    def run(argv: Sequence[str]) -> str:
        asked.append(argv[0])
        return replies.get(argv[0], "")

    return asked, run


def test_the_gateway_comes_from_the_default_route(tmp_path: Path) -> None:
    (tmp_path / "route").write_text(ROUTES)
    asked, run = answers({"iwgetid": "OAKFIELD-STAFF\n"})
    facts = NetworkFacts(tmp_path / "route", run=run)  # type: ignore[arg-type]
    assert facts.read() == {"ssid": "OAKFIELD-STAFF", "gateway": "192.168.1.254"}
    assert asked == ["iwgetid"]


def test_network_manager_names_the_wifi_when_iwgetid_cannot(tmp_path: Path) -> None:
    (tmp_path / "route").write_text(ROUTES)
    asked, run = answers({"nmcli": "no:Neighbour\nyes:Costa Guest\n"})
    facts = NetworkFacts(tmp_path / "route", run=run)  # type: ignore[arg-type]
    assert facts.ssid() == "Costa Guest"
    assert asked == ["iwgetid", "nmcli"]


def test_a_wired_kiosk_without_routes_reports_nothing_it_cannot_read(tmp_path: Path) -> None:
    """Not known is left out, never guessed."""
    _asked, run = answers({})
    facts = NetworkFacts(tmp_path / "missing", run=run)  # type: ignore[arg-type]
    assert facts.read() == {}
