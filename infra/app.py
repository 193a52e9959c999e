"""Build the CDK app for one deployment and synthesize it into a cloud assembly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, IStackSynthesizer

from .stack import LlamawsStack, StackInputs

__all__ = ["CLI_CONTEXT", "Synthesis", "build_app", "synthesize"]

CLI_CONTEXT: dict[str, object] = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:version-reporting": False,
    "aws:cdk:disable-stack-trace": True,
    "aws:cdk:disable-creation-stack-traces": True,
}
"""What the CDK CLI passes by default (with cdk.json's ``versionReporting: false``), so
``llamaws synth`` and ``npx cdk synth`` write the same template."""


@dataclass(frozen=True)
class Synthesis:
    """A synthesized deployment."""

    outdir: Path
    stack_name: str
    template: Path
    metadata: Path
    """``<stack>.metadata.json``: construct metadata, acknowledgements included."""


def build_app(
    inputs: StackInputs,
    *,
    outdir: Path | None = None,
    synthesizer: IStackSynthesizer | None = None,
) -> tuple[App, LlamawsStack]:
    """The app and its one stack; ``outdir`` None: ``$CDK_OUTDIR`` (under the CDK CLI)."""
    app = App(
        outdir=None if outdir is None else str(outdir),
        context=dict(CLI_CONTEXT),
        analytics_reporting=False,
    )
    stack = LlamawsStack(app, inputs, synthesizer=synthesizer)
    return app, stack


def synthesize(app: App, stack: LlamawsStack) -> Synthesis:
    """Write the cloud assembly (template and assets)."""
    assembly = app.synth()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    outdir = Path(assembly.directory)
    return Synthesis(
        outdir=outdir,
        stack_name=stack.stack_name,
        template=outdir / artifact.template_file,
        metadata=outdir / f"{stack.artifact_id}.metadata.json",
    )


def under_cdk_cli() -> bool:
    """Whether the CDK CLI runs this process (it sets ``CDK_OUTDIR``)."""
    return bool(os.environ.get("CDK_OUTDIR"))
