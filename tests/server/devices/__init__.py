"""Register tests."""
