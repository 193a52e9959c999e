"""The llamaws app server: config, the ASGI app and (later) the Lambda entrypoint.

This package ships inside the Lambda bundle: it imports none of llamaws's other
packages and keeps its import light.
"""
