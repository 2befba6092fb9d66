"""Test support: real servers on loopback (Dovecot, aiosmtpd, PostgreSQL)."""
