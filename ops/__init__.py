"""Deploy and operate a deployment: deploy, bootstrap, destroy, status, logs, secrets.

The one place where ``builder`` (bundle, UI build and publish) and ``infra`` (the CDK
app) meet: ``cli → ops → builder, infra, adapter``. ``infra`` still never imports
``builder``; ``cli`` only parses and renders (see ``docs/deploy.md``).
"""
