"""python -m pagekite connect names things as pagekitec does (doc/CLI.md):
--tls wraps the tunnel (--ssl is a deprecated alias that says so), and
X-Forwarded-For / X-Forwarded-Proto are added unless -H or
--no-forwarding-headers turns them off (--forwarding-headers, the old way
to turn them on, is a deprecated no-op)."""

from __future__ import annotations

import pytest

CONNECT = ["connect", "--frontend", "127.0.0.1:9", "8000", "http", "cli.example.test", "0",
           "SECRET"]


@pytest.fixture
def cli(pk):
    from pagekite import _cli
    return _cli


def connect_args(cli, *options):
    return cli._parser().parse_args(CONNECT[:1] + list(options) + CONNECT[1:])


def test_tls_is_the_name_and_ssl_a_deprecated_alias(cli, capsys):
    assert connect_args(cli).tls is False
    assert connect_args(cli, "--tls").tls is True
    assert capsys.readouterr().err == ""
    assert connect_args(cli, "--ssl").tls is True
    assert "--ssl is deprecated: use --tls" in capsys.readouterr().err
    help_text = cli._parser()._subparsers._group_actions[0].choices["connect"].format_help()
    assert "--tls" in help_text and "--ssl" not in help_text


def test_forwarding_headers_on_unless_turned_off(cli, capsys):
    assert connect_args(cli).forwarding_headers is True
    assert connect_args(cli, "-H").forwarding_headers is False
    assert connect_args(cli, "--no-forwarding-headers").forwarding_headers is False
    assert capsys.readouterr().err == ""
    assert connect_args(cli, "--forwarding-headers").forwarding_headers is True
    assert "--forwarding-headers is deprecated" in capsys.readouterr().err


@pytest.mark.parametrize("options, headers, tls", [
    ([], True, False), (["-H"], False, False), (["--tls", "--insecure"], True, True)])
def test_connect_applies_them(cli, monkeypatch, options, headers, tls):
    seen = {}
    real_init = cli.Connector.__init__

    def init(self, *a, **kw):
        seen["flags"] = kw["flags"]
        real_init(self, *a, **kw)
    monkeypatch.setattr(cli.Connector, "__init__", init)
    monkeypatch.setattr(cli.Connector, "enable_http_forwarding_headers",
                        lambda self, enable=True: seen.__setitem__("headers", enable))
    monkeypatch.setattr(cli, "_run", lambda pk: pk.close() or 0)
    assert cli.main(CONNECT[:1] + options + CONNECT[1:]) == 0
    assert seen["headers"] is headers
    assert bool(seen["flags"] & cli.api.PK_WITH_SSL) is tls
