"""The control plane's SQL store.

The control plane is untrusted: the store holds ciphertext references, wrapped keys, signatures and
metadata, and the enclave re-checks all of it. ``Store`` is the only entry point; it returns frozen
records and raises :class:`Conflict` / :class:`NotFound` (both :class:`StoreError`).
"""

from teeflow.server.audit import AuditEntry, AuditRecord
from teeflow.server.store._flow import LeaseFacts
from teeflow.server.store._lease import Finishing, NewOutput
from teeflow.server.store._records import (
    TASK_STATES,
    ApprovalRecord,
    Conflict,
    DatasetRecord,
    EventRecord,
    ExecutorRecord,
    FunctionRecord,
    NotFound,
    OutputRecord,
    StoreError,
    TaskRecord,
    UserRecord,
)
from teeflow.server.store._store import Store
from teeflow.server.store._tasks import DatasetFacts, input_dataset_ids

__all__ = [
    "TASK_STATES",
    "ApprovalRecord",
    "AuditEntry",
    "AuditRecord",
    "Conflict",
    "DatasetFacts",
    "DatasetRecord",
    "EventRecord",
    "ExecutorRecord",
    "Finishing",
    "FunctionRecord",
    "LeaseFacts",
    "NewOutput",
    "NotFound",
    "OutputRecord",
    "Store",
    "StoreError",
    "TaskRecord",
    "UserRecord",
    "input_dataset_ids",
]
