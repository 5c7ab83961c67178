"""Lost and stolen devices: the headteacher told at once, lost mode, and the 72-hour clock."""
