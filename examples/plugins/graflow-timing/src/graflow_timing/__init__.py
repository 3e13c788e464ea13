"""Example third-party Graflow plugin (see README.md)."""
