"""The README's "Servers and frameworks" recipes, each run as a user would run it.

Each server recipe starts the server on loopback in its own process, checks that a request is
answered by code running on oxloop (the app reports its running loop's class), and stops the server
with the signal its process manager would send. The test-framework recipes run a small pytest
session in a subprocess with the recipe as its conftest.py. The packages come from
requirements-dev.txt; a test skips only when its package is absent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

#: an ASGI app answering every request with its running loop's class and its process id
ASGI_APP = """
import asyncio
import os


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    loop = type(asyncio.get_running_loop())
    body = f"{loop.__module__}.{loop.__qualname__} {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""

STARTUP = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str = "/") -> str:
    """GET a page, retrying while the server is still starting."""
    deadline = time.monotonic() + STARTUP
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Server:
    """A server process started from a command line, stopped with a signal, output kept."""

    def __init__(self, cmd: list[str], cwd) -> None:
        self.log = open(os.path.join(cwd, "server.log"), "w+")  # noqa: SIM115
        env = dict(os.environ, PYTHONPATH=str(cwd))
        # A session of its own: a process manager's signals to its group stay inside it.
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig=signal.SIGINT, timeout: float = STARTUP) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server did not stop:\n{self.output()}") from None
        return code


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(cmd: list[str]) -> Server:
        server = Server(cmd, tmp_path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()
        server.log.close()


def answers_on_oxloop(server: Server, port: int, requests: int = 1) -> set[str]:
    """Send requests; each must be served on oxloop. Return the serving process ids."""
    pids = set()
    for _ in range(requests):
        try:
            body = get(port)
        except OSError as exc:
            raise AssertionError(f"no answer ({exc}); server output:\n{server.output()}") from None
        loop_class, pid = body.split()
        assert loop_class == "oxloop._loop.Loop", server.output()
        pids.add(pid)
    return pids


def test_uvicorn_loop_option(serve, tmp_path):
    pytest.importorskip("uvicorn")
    (tmp_path / "app.py").write_text(ASGI_APP)
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "app:app", "--loop", "oxloop:new_event_loop"]
    server = serve([*cmd, "--host", "127.0.0.1", "--port", str(port)])
    answers_on_oxloop(server, port)
    assert server.stop(signal.SIGINT) == 0, server.output()


def test_uvicorn_workers(serve, tmp_path):
    pytest.importorskip("uvicorn")
    (tmp_path / "app.py").write_text(ASGI_APP)
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "app:app", "--loop", "oxloop:new_event_loop"]
    server = serve([*cmd, "--host", "127.0.0.1", "--port", str(port), "--workers", "2"])
    pids = answers_on_oxloop(server, port, requests=4)
    assert str(server.proc.pid) not in pids  # served by the workers, not the supervisor
    assert server.stop(signal.SIGTERM) == 0, server.output()


GUNICORN_WORKER = """
from uvicorn_worker import UvicornWorker


class OxloopUvicornWorker(UvicornWorker):
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "loop": "oxloop:new_event_loop"}
"""


def test_gunicorn_uvicorn_worker(serve, tmp_path):
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn_worker")
    (tmp_path / "app.py").write_text(ASGI_APP)
    (tmp_path / "workers.py").write_text(GUNICORN_WORKER)
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "app:app", "-k", "workers.OxloopUvicornWorker"]
    server = serve([*cmd, "--workers", "2", "--bind", f"127.0.0.1:{port}"])
    answers_on_oxloop(server, port, requests=4)
    assert server.stop(signal.SIGTERM) == 0, server.output()


AIOHTTP_RUN_APP = """
import asyncio
import sys

import oxloop
from aiohttp import web


async def handler(request):
    loop = type(asyncio.get_running_loop())
    return web.Response(text=f"{loop.__module__}.{loop.__qualname__} 0")


app = web.Application()
app.router.add_get("/", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), loop=oxloop.new_event_loop())
"""


def test_aiohttp_run_app(serve, tmp_path):
    pytest.importorskip("aiohttp")
    (tmp_path / "server.py").write_text(AIOHTTP_RUN_APP)
    port = free_port()
    server = serve([sys.executable, "server.py", str(port)])
    answers_on_oxloop(server, port)
    assert server.stop(signal.SIGINT) == 0, server.output()


def test_aiohttp_app_runner_on_asyncio_runner():
    web = pytest.importorskip("aiohttp.web")
    aiohttp = pytest.importorskip("aiohttp")
    import asyncio

    import oxloop

    async def handler(request):
        return web.Response(text=type(asyncio.get_running_loop()).__module__)

    async def main():
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/") as resp:
                    return resp.status, await resp.text()
        finally:
            await runner.cleanup()

    with asyncio.Runner(loop_factory=oxloop.new_event_loop) as runner:
        assert runner.run(main()) == (200, "oxloop._loop")


def run_pytest(tmp_path, conftest: str, test: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(conftest))
    (tmp_path / "test_recipe.py").write_text(textwrap.dedent(test))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


LOOP_TEST = """
    import asyncio

    import oxloop
    import pytest


    @pytest.mark.{marker}
    async def test_runs_on_oxloop():
        assert isinstance(asyncio.get_running_loop(), oxloop.Loop)
        await asyncio.sleep(0.001)
"""


def test_pytest_asyncio_loop_factories_hook(tmp_path):
    pytest.importorskip("pytest_asyncio")
    conftest = """
        import oxloop


        def pytest_asyncio_loop_factories(config, item):
            return {"oxloop": oxloop.new_event_loop}
    """
    result = run_pytest(tmp_path, conftest, LOOP_TEST.format(marker="asyncio"), "-p", "asyncio")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_anyio_backend_fixture(tmp_path):
    pytest.importorskip("anyio")
    conftest = """
        import oxloop
        import pytest


        @pytest.fixture
        def anyio_backend():
            return ("asyncio", {"loop_factory": oxloop.new_event_loop})
    """
    result = run_pytest(tmp_path, conftest, LOOP_TEST.format(marker="anyio"), "-p", "anyio")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


SANIC_APP = """
import asyncio
import os
import sys

import oxloop
from sanic import Sanic
from sanic.response import text

oxloop.install()  # Sanic's workers make their loops through asyncio's policy
app = Sanic("oxloop_app")
app.config.USE_UVLOOP = False  # otherwise Sanic installs uvloop's policy when uvloop is present


@app.get("/")
async def index(request):
    loop = type(asyncio.get_running_loop())
    return text(f"{loop.__module__}.{loop.__qualname__} {os.getpid()}")


if __name__ == "__main__":
    # single_process: Sanic's default multi-process mode hangs in its main process when SIGINT
    # comes before every worker acknowledged start-up, on asyncio's loop as on oxloop.
    app.run(host="127.0.0.1", port=int(sys.argv[1]), access_log=False, single_process=True)
"""


def test_sanic(serve, tmp_path):
    pytest.importorskip("sanic")
    (tmp_path / "app.py").write_text(SANIC_APP)
    port = free_port()
    server = serve([sys.executable, "app.py", str(port)])
    answers_on_oxloop(server, port)
    code = server.stop(signal.SIGINT)
    output = server.output()
    assert code == 0 and "Traceback" not in output, output
