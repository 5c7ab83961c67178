"""The SBM's spreadsheet in and out of the register (P-REG-1).

Reading: an Excel workbook's first sheet, or a CSV file's bytes decoded (UTF-8 with or without
a byte-order mark, UTF-16 from Excel's "Unicode text", else the single-byte encoding that reads
most like text — Windows-1252, Mac Roman… — named in the preview with the first row that was
not UTF-8); anything else is refused. The heading row is found near the top (a title above it
is skipped), the columns are guessed from their headings (the person can change the guess), each
date column's order and the cost column's decimal mark are decided from the whole column, and
every row is checked against the register loaded once — never a query per row. Any problem
stops the whole import: it is written in one transaction or not at all. Re-importing the same
file matches devices by asset tag; a new tag on a known serial re-tags that device only when the
person chose "Re-tag" for the row.

Writing: the export has the same columns the import reads, so export → import changes nothing,
and no cell ever starts with a character a spreadsheet would run as a formula.
"""

from server.imports.pages import Options, Plan, PlannedRow, Problem
from server.imports.services.cells import guess_platform, parse_platform, parse_status
from server.imports.services.checking import _Checker, check_mapping, plan_import, preview
from server.imports.services.columns import (
    ATTRS,
    BY_KEY,
    COLUMNS,
    EXPORT_KEYS,
    FORMULA_START,
    FREE_TEXT,
    MAKERS,
    MAX_TEXT,
    PLATFORM_LABELS,
    PLATFORM_NAMES,
    Column,
    apply_column_map,
    column_letter,
    guess_mapping,
    normalise_heading,
)
from server.imports.services.exporting import (
    MEDIA_TYPES,
    ExportFile,
    export_csv,
    export_filename,
    export_register,
    export_values,
    export_xlsx,
    safe_cell,
)
from server.imports.services.places import Places
from server.imports.services.reading import MAX_FILE_BYTES, MAX_ROWS, Sheet, decode_text, read_sheet
from server.imports.services.shared import CHUNK, PROGRESS_EVERY, Progress
from server.imports.services.uploads import (
    UPLOAD_LIFETIME,
    choose_options,
    commit_upload,
    get_upload,
    options_of,
    preview_upload,
    purge_expired_uploads,
    start_upload,
)
from server.imports.services.writing import ImportResult, apply_plan, import_file

__all__ = [
    "ATTRS",
    "BY_KEY",
    "CHUNK",
    "COLUMNS",
    "EXPORT_KEYS",
    "FORMULA_START",
    "FREE_TEXT",
    "MAKERS",
    "MAX_FILE_BYTES",
    "MAX_ROWS",
    "MAX_TEXT",
    "MEDIA_TYPES",
    "PLATFORM_LABELS",
    "PLATFORM_NAMES",
    "PROGRESS_EVERY",
    "UPLOAD_LIFETIME",
    "Column",
    "ExportFile",
    "ImportResult",
    "Options",
    "Places",
    "Plan",
    "PlannedRow",
    "Problem",
    "Progress",
    "Sheet",
    "_Checker",
    "apply_column_map",
    "apply_plan",
    "check_mapping",
    "choose_options",
    "column_letter",
    "commit_upload",
    "decode_text",
    "export_csv",
    "export_filename",
    "export_register",
    "export_values",
    "export_xlsx",
    "get_upload",
    "guess_mapping",
    "guess_platform",
    "import_file",
    "normalise_heading",
    "options_of",
    "parse_platform",
    "parse_status",
    "plan_import",
    "preview",
    "preview_upload",
    "purge_expired_uploads",
    "read_sheet",
    "safe_cell",
    "start_upload",
]
