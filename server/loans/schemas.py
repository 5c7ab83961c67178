"""API shapes for loans and scans."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from server.loans.models import ConditionFlag

MAX_ID = 2**31 - 1


def _plain_text(value: str) -> str:
    """Refuse text no database can store (lone surrogates, NUL) with a clear message."""
    if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("contains characters that cannot be stored")
    return value


Text = Annotated[str, AfterValidator(_plain_text)]

Key = Field(
    default=None,
    pattern=r"^[A-Za-z0-9_-]{8,64}$",
    description="Made by the client for each scan; re-sending the same key never records twice",
)
Code = Field(min_length=1, max_length=512, description="A label URL (<base>/d/<tag>) or a tag")


class ScanIn(BaseModel):
    """One scan at the trolley: take a device out, or put it back."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str | None = Key
    mode: Literal["out", "in"]
    trolley: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="The trolley, safe or cupboard's id; without it a device comes out of the "
        "trolley it is in and goes back into the one it lives in",
    )
    code: Text = Code
    class_label: Text = Field(default="", max_length=64, examples=["Year 4 Oak"])
    due_at: AwareDatetime | None = None
    due_time: time | None = Field(default=None, description="Due today at this school time")
    transfer: bool = Field(default=False, description="Take it over from whoever has it")
    condition: list[ConditionFlag] = Field(default_factory=list, max_length=4)
    condition_note: Text | None = Field(default=None, max_length=500)
    put_in_repair: bool = False


class CountsOut(BaseModel):
    trolley_id: int
    trolley: str
    out: int
    total: int
    here: int
    text: str = Field(examples=["12 of 30 out"])


class ScanOut(BaseModel):
    outcome: Literal["out", "returned", "put_back", "transferred", "already_out", "already_in"]
    message: str
    tone: Literal["ok", "warn"]
    asset_tag: str
    model: str
    loan_id: int | None
    warnings: list[str]
    wipe: str | None
    counts: CountsOut | None
    idempotency_key: str | None
    recorded: bool = Field(description="False when nothing changed (already out, already in)")
    replayed: bool = Field(description="True when this key was seen before: nothing new recorded")
    can_undo: bool


class UndoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")


class UndoOut(BaseModel):
    message: str
    asset_tag: str
    counts: CountsOut | None


class LoanIn(BaseModel):
    """Take devices out: a list of tags (or label URLs), or the whole trolley."""

    model_config = ConfigDict(extra="forbid")

    trolley: int = Field(ge=1, le=MAX_ID)
    class_label: Text = Field(default="", max_length=64)
    asset_tags: list[Text] = Field(default_factory=list, max_length=200)
    all: bool = Field(default=False, description="Every device in the trolley now")
    due_at: AwareDatetime | None = None
    due_time: time | None = None
    idempotency_key: str | None = Key

    @model_validator(mode="after")
    def _one_way(self) -> LoanIn:
        if self.all == bool(self.asset_tags):
            raise ValueError("send either asset_tags or all: true")
        return self


class ReturnIn(BaseModel):
    """Put devices of a loan back (into its trolley unless another is named)."""

    model_config = ConfigDict(extra="forbid")

    asset_tags: list[Text] = Field(min_length=1, max_length=200)
    trolley: int | None = Field(default=None, ge=1, le=MAX_ID)
    condition: list[ConditionFlag] = Field(default_factory=list, max_length=4)
    condition_note: Text | None = Field(default=None, max_length=500)
    put_in_repair: bool = False
    idempotency_key: str | None = Key


class PlaceRef(BaseModel):
    id: int
    name: str


class ItemOut(BaseModel):
    asset_tag: str
    model: str
    state: Literal["out", "returned", "transferred"]
    out_at: datetime
    returned_at: datetime | None
    returned_to: PlaceRef | None
    wrong_trolley: bool
    condition: list[ConditionFlag]
    wipe_state: Literal["done", "pending", "failed", "by_hand", "by_hand_done", "none"]
    wipe: str = Field(examples=["wiped (3 photos deleted)", "wipe pending"])
    photos_deleted: int | None
    wipe_unconfirmed_at_out: bool
    wipe_outstanding: bool = Field(
        description="Photos not yet confirmed gone, by the device or by a person's record"
    )
    checked_by_hand_by: str | None = Field(description="Who recorded checking it by hand")
    checked_by_hand_at: datetime | None
    photos_left: int | None = Field(description="Photos left, as that person counted them")


class ByHandIn(BaseModel):
    """A person checked a device's photos by hand."""

    model_config = ConfigDict(extra="forbid")

    photos_left: int | None = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Photos still on the device afterwards; null if they could not be counted",
    )
    saw: Text = Field(default="", max_length=500, description="What the person saw")


class RefusalOut(BaseModel):
    asset_tag: str
    code: str
    message: str


class LoanOut(BaseModel):
    id: int
    kind: Literal["lesson", "home"]
    teacher: str
    class_label: str
    trolley: PlaceRef | None
    started_at: datetime
    due_at: datetime
    closed_at: datetime | None
    overdue: bool
    approval: Literal["requested", "approved", "declined"] | None
    items: list[ItemOut]
    still_out: list[str]
    refused: list[RefusalOut] = Field(default_factory=list)
    counts: CountsOut | None = None
    replayed: bool = False


class LoanQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    open: bool = Field(default=True, description="Only loans with devices still out")
    mine: bool = Field(default=True, description="Only my loans")
    limit: int = Field(default=50, ge=1, le=200)


class LoanList(BaseModel):
    items: list[LoanOut]


class StillOut(BaseModel):
    asset_tag: str
    holder: str
    class_label: str
    due_at: datetime
    overdue: bool


class TrolleyOut(BaseModel):
    counts: CountsOut
    still_out: list[StillOut]


class HomeLoanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset_tags: list[Text] = Field(min_length=1, max_length=5)
    return_by: date
    reason: Text = Field(min_length=1, max_length=500)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    note: Text = Field(default="", max_length=500)
