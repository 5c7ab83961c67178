"""The governors' termly report: its figures and its PDF."""

from server.reports.services.figures import (
    audit_figures,
    compliance_figures,
    governors_report,
    loss_figures,
    period_of,
    photo_figures,
    register_figures,
    report_terms,
    reset_figures,
)
from server.reports.services.pdf import render_pdf

__all__ = [
    "audit_figures",
    "compliance_figures",
    "governors_report",
    "loss_figures",
    "period_of",
    "photo_figures",
    "register_figures",
    "render_pdf",
    "report_terms",
    "reset_figures",
]
