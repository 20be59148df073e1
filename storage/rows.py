"""What both backends' row code shares: state lists written into statements, the column lists in
the order ``batch_of``/``job_of`` unpack them, and the enum lookups used while unpacking."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from enum import StrEnum

from storage.models import Batch, Job
from storage.states import BatchState, JobKind, JobState


def states_sql(states: Iterable[StrEnum]) -> str:
    """``('a', 'b')``: a state list written into a statement rather than bound. The values are
    the enums' own, never outside text; both databases use a partial index only for a condition
    they can see implies the index's, which bound values hide."""
    return "(" + ", ".join(f"'{state.value}'" for state in sorted(states)) + ")"


#: Column lists in the order of each dataclass's fields, which ``batch_of`` and ``job_of`` unpack.
BATCH_SELECT = ", ".join(field.name for field in dataclasses.fields(Batch))
JOB_SELECT = ", ".join(field.name for field in dataclasses.fields(Job))
BATCH_STATES = {state.value: state for state in BatchState}
JOB_STATES = {state.value: state for state in JobState}
JOB_KINDS = {kind.value: kind for kind in JobKind}
