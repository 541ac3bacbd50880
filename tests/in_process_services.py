"""The calculator's and projector's loops run as tasks in the test's own process, against the
real broker: the one way integration tests build a stack."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import services.calculator.__main__ as calculator
import services.projector.__main__ as projector
from services.shared.settings import CalculatorSettings, KafkaSettings, ProjectorSettings
from services.shared.view import ViewStore

# Ops endpoints on any free port, so these run beside `make run`.
ANY_PORT_CALCULATOR = CalculatorSettings(pi_jobs_calculator_ops_port=0)
ANY_PORT_PROJECTOR = ProjectorSettings(pi_jobs_projector_ops_port=0)


@contextlib.asynccontextmanager
async def running(*loops: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Each loop a task for the block, cancelled and awaited after it."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def calculator_and_projector(
    kafka: KafkaSettings, view: ViewStore
) -> contextlib.AbstractAsyncContextManager[None]:
    """One calculator and one projector writing to `view`, as `make run` has them."""
    return running(
        calculator.run(kafka, ANY_PORT_CALCULATOR), projector.run(kafka, view, ANY_PORT_PROJECTOR)
    )
