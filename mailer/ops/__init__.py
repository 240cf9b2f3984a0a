"""Operations: the flask commands, configuration checks, backups and the development mailbox (P3, P5)."""
