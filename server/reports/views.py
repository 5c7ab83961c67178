"""The governors' report: the termly figures as a page and as a PDF."""

from __future__ import annotations

import re

from flask import Blueprint, render_template, request
from flask_login import current_user
from werkzeug.wrappers import Response

from server.auth.permissions import Permission, requires
from server.extensions import db_session
from server.reports import services
from server.reports.pages import GovernorsReport

bp = Blueprint("reports", __name__)


def _report() -> GovernorsReport:
    """The report for the term chosen in the address (by default the current or last one)."""
    return services.governors_report(
        db_session(), current_user.school, term_id=request.args.get("term", type=int)
    )


@bp.get("/reports/governors")
@requires(Permission.GOVERNORS_REPORT)
def governors() -> str:
    return render_template("reports/governors.html", report=_report())


@bp.get("/reports/governors.pdf")
@requires(Permission.GOVERNORS_REPORT)
def governors_pdf() -> Response:
    report = _report()
    term = re.sub(r"[^a-z0-9]+", "-", report.period.term.name.lower()).strip("-")
    return Response(
        services.render_pdf(report),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="governors-report-{term}.pdf"'},
    )
