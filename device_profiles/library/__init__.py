"""The built-in profile library: YAML files in the profile language (loaded by builtin.py)."""
