"""Announcements: drafts, audience, scheduling, templates, documents and every change of state (J3, S1)."""
