"""A Lambda container in its own process, driving one run (killed by fault tests).

Usage: ``python -m tests.lambda_driver_process HANDLER_ID`` with the handler's
environment (``LLAMAWS_TABLE``, ``LLAMAWS_APP_DIR``, endpoints ...).
"""

from __future__ import annotations

import sys

from llamaws.adapter.lambda_runtime.container import Container

from .lambda_service import FakeContext

if __name__ == "__main__":
    container = Container.from_env()
    payload = {"llamaws": {"kind": "continue", "handler_id": sys.argv[1]}}
    print(container.invoke(payload, FakeContext(120.0)), flush=True)
