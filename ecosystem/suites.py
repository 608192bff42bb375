"""The libraries whose own test suites `make ecosystem` runs, each at a pinned version.

A suite's tests come from the library's PyPI sdist (unpacked without the library's own package
directory, so the tests import the installed release) or from ecosystem/vendor/ when the sdist has
none. The library itself is installed from PyPI at the same version, with its test requirements,
into a venv of its own. Requirements are pinned where a newer release of a test tool breaks the
suite at that version (their own requirement files pin the same way); otherwise the newest release.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Suite:
    """One library's test suite."""

    #: the name used on the command line (`make ecosystem SUITES="uvicorn anyio"`)
    name: str
    #: the PyPI distribution and version whose tests run
    dist: str
    version: str
    #: what the table says the suite is
    title: str
    #: pip requirements besides the library itself (its extras belong in `install`)
    deps: tuple[str, ...]
    #: the test paths pytest runs (a run with ARGS= runs those instead)
    paths: tuple[str, ...]
    #: pytest options for every run of the suite: serial (xdist's workers would not inherit
    #: `python -m oxloop`'s loop), its own markers' selection
    options: tuple[str, ...] = ()
    #: what pip installs for the library (default: dist==version)
    install: str | None = None
    #: directories of the sdist not to unpack (the library's own sources, shadowing the release)
    drop: tuple[str, ...] = ()
    #: a directory of ecosystem/vendor/ holding the tests when the sdist has none
    vendor: str | None = None
    #: per-test time limit (pytest-timeout), seconds
    timeout: int = 60
    #: extra environment variables for the run
    env: dict[str, str] = field(default_factory=dict)
    #: run pytest as this unprivileged user (created if missing) instead of the caller
    user: str | None = None
    #: the interpreter for the suite's venv instead of --python (one the user can execute)
    python: str | None = None

    @property
    def requirement(self) -> str:
        return self.install or f"{self.dist}=={self.version}"


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite(
            name="uvicorn",
            dist="uvicorn",
            version="0.54.0",
            title="uvicorn 0.54.0",
            # uvicorn[standard] without uvloop: with uvloop installed, `--loop auto` picks it.
            deps=(
                "httptools>=0.8.0",
                "python-dotenv>=0.13",
                "PyYAML>=5.1",
                "watchfiles>=0.20",
                "websockets>=13.0",
                "pytest>=9.1.1",
                "pytest-mock==3.15.1",
                "pytest-xdist==3.8.0",
                "pytest-timeout",
                "trustme==1.2.1",
                "cryptography>=44.0.3",
                "httpx2",
                "a2wsgi==1.10.10",
                "wsproto==1.3.2",
                "zttp>=0.0.34",
            ),
            paths=("tests",),
            options=("-n", "0", "--ignore=tests/benchmarks"),
            drop=("uvicorn",),
        ),
        Suite(
            name="anyio",
            dist="anyio",
            version="4.16.0",
            title="AnyIO 4.16.0 (asyncio backend)",
            # Neither trio nor uvloop: their parametrisations skip, the asyncio backend runs.
            deps=(
                "blockbuster>=1.5.29",
                "hypothesis>=4.18.2",
                "psutil>=5.9",
                "pytest>=9.0",
                "pytest-mock>=3.14",
                "pytest-timeout>=2.4.0",
                "trustme>=1.0.0",
                "truststore>=0.9.1",
            ),
            paths=("tests",),
            options=("-m", "not network"),
            drop=("src",),
        ),
        Suite(
            name="websockets",
            dist="websockets",
            version="17.0.1",
            title="websockets 17.0.1 (tests/asyncio, tests/legacy)",
            deps=("pytest", "pytest-timeout", "mitmproxy", "python-socks[asyncio]"),
            paths=("tests/asyncio", "tests/legacy"),
            vendor="websockets-17.0.1",
        ),
        Suite(
            name="httpx",
            dist="httpx",
            version="0.28.1",
            title="httpx 0.28.1",
            install="httpx[brotli,cli,http2,socks,zstd]==0.28.1",
            # httpx 0.28.1's requirements.txt pins its test tools so.
            deps=(
                "chardet==5.2.0",
                "cryptography",
                "pytest==8.3.4",
                "pytest-timeout",
                "trio==0.27.0",
                "trustme==1.2.0",
                "uvicorn==0.32.1",
            ),
            paths=("tests",),
            drop=("httpx",),
        ),
        Suite(
            name="httpcore",
            dist="httpcore",
            version="1.0.9",
            title="httpcore 1.0.9",
            install="httpcore[asyncio,trio,http2,socks]==1.0.9",
            deps=(
                "pytest==8.3.5",
                "pytest-timeout",
                "pytest-httpbin==2.1.0",
                "pytest-trio==0.8.0",
                "trio==0.29.0",
                "uvicorn",
                "urllib3",
            ),
            paths=("tests",),
            options=("--ignore=tests/benchmark",),
            drop=("httpcore",),
        ),
        Suite(
            name="aiohttp",
            dist="aiohttp",
            version="3.14.5",
            title="aiohttp 3.14.5",
            install="aiohttp[speedups]==3.14.5",
            # requirements/test-common.txt of 3.14.5, less coverage, mypy, codspeed and docker.
            deps=(
                "blockbuster==1.5.26",
                "coverage",
                "freezegun==1.5.5",
                "isal==1.8.0",
                "zlib-ng==1.0.0",
                "proxy.py==2.4.10",
                "pytest==9.0.3",
                "pytest-mock==3.15.1",
                "pytest-timeout==2.4.0",
                "pytest-xdist==3.8.0",
                "trustme==1.2.1",
                "pkgconfig==1.6.0",
                "setuptools-git==1.2",
                "python-dateutil",
                "pydantic",
                "rich",
            ),
            # pytest.ini's addopts ask for xdist, coverage and doctests of the sources: replaced
            # by its test selection alone.
            paths=("tests",),
            options=(
                "-o",
                "addopts=",
                "-m",
                "not dev_mode and not autobahn and not internal",
                "--strict-markers",
            ),
            drop=("aiohttp", "vendor", "docs", "examples"),
            timeout=120,
        ),
        Suite(
            name="asyncpg",
            dist="asyncpg",
            version="0.32.0",
            title="asyncpg 0.32.0 (PostgreSQL 15 from Debian)",
            deps=("pytest", "pytest-timeout", "distro~=1.9.0"),
            paths=("tests",),
            drop=("asyncpg",),
            timeout=120,
            # Its test clusters are made with initdb, which refuses root; Debian's Python, since
            # pyenv's lives under /root, which other users cannot enter.
            user="oxloop-eco",
            python="/usr/bin/python3",
            env={"PGINSTALLATION": "/usr/lib/postgresql/15/bin"},
        ),
    )
}
