"""Admins: admin accounts and their passwords (V4)."""
