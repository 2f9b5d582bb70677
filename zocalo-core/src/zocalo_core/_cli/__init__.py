"""The `zocalo` command line."""
