"""Location tree and term tests."""
