"""Fixtures for the end-to-end and interop tests.

Function-scoped fixtures (fresh per test):
    origin, echo_server          stdlib origin servers on 127.0.0.1
    pk_relay                     Debian pagekite.py relay on a free port
    our_relay                    our pagekiter on a free port
    our_connector(frontend, kites, extra_args=())   factory: pagekitec
    pk_connector(frontend, kites, extra_args=())    factory: pagekite.py connector
    group                        a harness.Group for anything else (tear-down
                                 stops everything it started)
    tls_pki                      test CA + relay cert + untrusted cert (session)
Module-scoped: module_group, for stacks shared by the tests of one file.

Processes are stopped by PID at teardown (SIGTERM, wait, SIGKILL on
timeout).  Their stdout/stderr go to files under the test's tmp dir, and the
tails of every process still running are attached to the report of a
failing test.
"""

import pytest

import harness
from harness import Group, TestPKI, free_port


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when in ("setup", "call") and rep.failed:
        logs = harness.live_logs()
        if logs:
            rep.sections.append(("pagekite process logs", logs))


def pytest_terminal_summary(terminalreporter):
    if harness.MEASUREMENTS:
        terminalreporter.section("e2e measurements")
        for label, text in harness.MEASUREMENTS:
            terminalreporter.write_line("%s: %s" % (label, text))


@pytest.fixture
def group(tmp_path):
    g = Group(tmp_path)
    yield g
    g.close()


@pytest.fixture(scope="module")
def module_group(request, tmp_path_factory):
    g = Group(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    yield g
    g.close()


@pytest.fixture
def origin(group):
    return group.origin()


@pytest.fixture
def echo_server(group):
    return group.echo()


@pytest.fixture
def pk_relay(group):
    return group.pk_relay()


@pytest.fixture
def our_relay(group):
    return group.our_relay()


@pytest.fixture
def our_connector(group):
    def start(frontend, kites, extra_args=()):
        return group.our_connector(frontend, kites, extra_args)
    return start


@pytest.fixture
def pk_connector(group):
    def start(frontend, kites, extra_args=()):
        return group.pk_connector(frontend, kites, extra_args)
    return start


@pytest.fixture(scope="session")
def tls_pki(tmp_path_factory):
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def port():
    return free_port()
