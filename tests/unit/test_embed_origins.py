"""MAILER_EMBED_ORIGINS (R2, issue 20 part 5): only plain web origins are taken, so each goes into the
Content-Security-Policy's frame-ancestors as it is; anything else stops the start with one line naming the key."""

from __future__ import annotations

import pytest

from mailer.config import ConfigurationError
from support.settings import settings_for


def test_origins_are_read_folded_and_deduplicated():
    """Space-separated origins, any case, an optional trailing slash and port; repeats kept once; empty is none."""
    settings = settings_for(
        MAILER_EMBED_ORIGINS=" https://Forum.Example\thttps://forum.example/ http://localhost:5000 https://a-b.c.org:8443"
    )
    assert settings.embed_origins == ("https://forum.example", "http://localhost:5000", "https://a-b.c.org:8443")
    assert settings_for().embed_origins == ()
    assert settings_for(MAILER_EMBED_ORIGINS="   ").embed_origins == ()


@pytest.mark.parametrize(
    "value",
    [
        "forum.example",  # no scheme
        "*",
        "https://*.forum.example",
        "'self'",
        "https://forum.example/join",  # a path
        "https://forum.example?x=1",
        "https://forum.example#top",
        "https://user@forum.example",
        "ftp://forum.example",
        "javascript:alert(1)",
        "https://forum.example;script-src",  # would end the CSP directive
        "https://forum.example:99999",
        "https://forum.example:0",
        "https://",
        "https://bücher.example",  # IDNs must be written in punycode
        "https://-bad-.example",
        "data:",
    ],
)
def test_anything_but_an_origin_is_refused(value):
    """Paths, wildcards, quotes, other schemes, user names and bad ports stop the start, naming the key."""
    with pytest.raises(ConfigurationError, match="MAILER_EMBED_ORIGINS must be web origins"):
        settings_for(MAILER_EMBED_ORIGINS=f"https://ok.example {value}")


def test_a_value_that_is_not_text_is_refused():
    """A list or number from instance/config.py is a mistake, not an origin."""
    with pytest.raises(ConfigurationError, match="MAILER_EMBED_ORIGINS"):
        settings_for(MAILER_EMBED_ORIGINS=["https://forum.example"])
