"""The llamaws app server: config, the ASGI app and (later) the Lambda entrypoint.

This package ships inside the Lambda bundle: it imports none of llamaws's other
packages and keeps its import light.
"""

import sys

# ``import httpx`` (llama-agents-server imports it) also imports httpx's command-line
# client, and with it click, rich and pygments when they are installed: ~60 ms of
# every server start with bytecode cached, ~130 ms without. Nothing here uses
# ``httpx.main``; a ``None`` entry makes that import fail at once and httpx falls back
# to a stub ``main``. (No effect when httpx is already imported.)
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
