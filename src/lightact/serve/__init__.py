"""``lightact serve``: a web page and an HTTP API for trained recognisers (docs/serve.md).

FastAPI with uvicorn, an optional extra (``pip install 'lightact[serve]'``): a typed API whose
OpenAPI schema and ``/docs`` page come with it, a small dependency, and a page that is one plain
HTML/JS/CSS file set shipped in the package (no frontend framework, nothing fetched at run time).

* ``models``: each work directory's recogniser, loaded once, and what it takes;
* ``limits``: the limits, the file's kind told from its content, the bounded worker pool;
* ``app``: the application (:func:`~lightact.serve.app.create_app`);
* ``static/``: the page.

This module imports none of them: :func:`serve` does, after :func:`missing_dependencies` has said
the extra is installed.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["INSTALL_HINT", "is_loopback", "missing_dependencies", "serve"]

# Import name -> the distribution that provides it.
_REQUIRED = {
    "fastapi": "fastapi",
    "fastapi_offline": "fastapi-offline",
    "uvicorn": "uvicorn",
    "python_multipart": "python-multipart",
}
INSTALL_HINT = "pip install 'lightact[serve]'"


def missing_dependencies() -> list[str]:
    """The distributions of the ``serve`` extra that are not installed."""
    return [dist for module, dist in _REQUIRED.items() if importlib.util.find_spec(module) is None]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def serve(
    work_dirs: Sequence[str | Path],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    device: str = "cpu",
    backend: str = "torch",
    threads: int = 1,
    echo: Callable[[str], Any] = print,
    warn: Callable[[str], Any] | None = None,
    **limits: Any,
) -> None:
    """Load each work directory's recogniser and serve them until interrupted. ``limits`` are
    :class:`~lightact.serve.limits.Limits` fields; ``threads`` is torch's intra-op threads per
    worker; ``echo`` prints where it serves, ``warn`` (default: stderr) the warning for an address
    other than loopback. Raises ``ImportError`` naming the extra when FastAPI, uvicorn or python-multipart is
    missing, and the loaders' ``ValueError``/``OSError`` for a bad work directory."""
    missing = missing_dependencies()
    if missing:
        raise ImportError(f"lightact serve needs {', '.join(missing)}: {INSTALL_HINT}")
    import uvicorn

    from lightact.serve.app import create_app
    from lightact.serve.limits import Limits
    from lightact.serve.models import load_models

    settings = Limits(**limits)
    set_threads(threads)
    models = load_models(work_dirs, device=device, backend=backend)
    if not is_loopback(host):
        (warn or _to_stderr)(
            f"warning: serving on {host}, which other machines may reach: anyone who can reach port "
            f"{port} can upload files and use this machine's CPU (there is no login); the default, "
            "127.0.0.1, is reachable from this machine only"
        )
    echo(
        f"serving {', '.join(models)} on http://{_url_host(host)}:{port}/ "
        f"({settings.workers} workers, queue {settings.queue}, uploads up to {settings.max_upload_mb:g} MB); "
        "Ctrl-C stops"
    )
    uvicorn.run(create_app(models, settings), host=host, port=port, log_level="warning")


def set_threads(threads: int) -> None:
    """torch's intra-op threads (shared by every worker thread), where torch is installed."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if "torch" in sys.modules or importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(threads)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
