"""API shapes for label sheets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LabelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    asset_tags: list[str] = Field(default_factory=list, max_length=2000)
    home_location_id: int | None = Field(
        default=None, description="Also label every device that lives in this place"
    )
    location_ids: list[int] = Field(
        default_factory=list,
        max_length=500,
        description="Places (trolleys, safes, rooms) that get a label of their own",
    )
    every_device: bool = False
    layout: Literal["L7160", "L7163", "single"] = "L7160"
    start_position: int = Field(
        default=1, ge=1, le=21, description="First unused label on a part-used sheet"
    )
    format: Literal["pdf", "html"] = "pdf"


class LabelSheetOut(BaseModel):
    filename: str
    media_type: str
    labels: int
    urls: list[str] = Field(description="What each label's QR code opens, in print order")
    content_base64: str
