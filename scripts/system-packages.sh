#!/usr/bin/env bash
# Debian packages the tests need: Chromium for browser tests, PostgreSQL for multi-worker tests,
# nginx for the production test, Dovecot for the IMAP bounce mailbox test, openssl for test certificates, poppler-utils for the poster tests.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v make >/dev/null 2>&1 || missing+=(make)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)  # the production test runs deploy/nginx-mailer.conf
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)  # the bounce mailbox tests run a throwaway Dovecot (issue 8)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # the SMTP TLS tests make a throwaway CA and certificates
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)  # the poster tests render the PDF (pdftoppm) and read its text (pdftotext)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "system-packages: please install: ${missing[*]} (needs root)" >&2
    exit 1
  fi
  echo "system-packages: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
