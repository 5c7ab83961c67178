"""Taking in the school's spreadsheet and writing the register back out (P-REG-1)."""
