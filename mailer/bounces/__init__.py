"""Bounces: taking bounce reports in (SMTP port, IMAP mailbox) and recording what they mean (S4)."""
