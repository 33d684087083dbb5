"""Checking uploaded documents and reading their text in worker processes.

`DocumentReaders` (the service's side) sends a job naming a temporary file and
its family to a child process (`python -m documents.reader_worker`, through
vcbridge/core/worker_pool.py) and waits at most `budget_seconds`: a document
that stalls the parser has its worker killed and is refused as unreadable.
The child limits its own address space, so a document that would make a
parser allocate gigabytes fails there (refused as malformed), not in the
service. Text reading stops by itself after three quarters of the budget
(documents/inspection.py `Limits.soft_seconds`) and keeps what it has."""

from __future__ import annotations

import logging
import resource
from dataclasses import asdict
from pathlib import Path
from typing import Any

from documents.file_types import Family, WrongType
from documents.inspection import Inspection, Limits, inspect
from documents.refusals import DocumentRefused, RefusalReason
from vcbridge.core.worker_pool import WorkerPool, WorkerStopped, WorkerTimeout, serve

MODULE = "documents.reader_worker"
# A worker's address space: enough for pypdf on a 50 MB file, not for a bomb.
MEMORY_LIMIT_BYTES = 2 * 1024**3
# An answer carries up to Limits.max_chars characters as JSON (\\u escapes: 6 bytes each).
_LINE_LIMIT = 16 * 1024 * 1024


class DocumentReaders:
    """Inspects documents in worker processes, each within `budget_seconds` of wall time."""

    def __init__(self, budget_seconds: float, workers: int = 2) -> None:
        self.budget_seconds = budget_seconds
        self._pool = WorkerPool(MODULE, workers=workers, line_limit=_LINE_LIMIT)

    def pids(self) -> list[int]:
        """The running workers' process ids (for tests)."""
        return self._pool.pids()

    async def inspect(self, path: Path, family: Family) -> Inspection:
        """`documents.inspection.inspect` in a worker: DocumentRefused or WrongType if the
        file is refused, DocumentRefused(UNREADABLE) past the budget."""
        job = {"path": str(path), "family": family.value,
               "soft_seconds": self.budget_seconds * 0.75}
        try:
            answer = await self._pool.run(job, self.budget_seconds)
        except WorkerTimeout:
            raise DocumentRefused(RefusalReason.UNREADABLE, f"the document could not be read "
                                  f"within {self.budget_seconds:g} s") from None
        except WorkerStopped:
            raise DocumentRefused(RefusalReason.UNREADABLE, "reading the document failed (it "
                                  "needed more memory than allowed)") from None
        if "refused" in answer:
            raise DocumentRefused(RefusalReason(answer["refused"]["reason"]),
                                  str(answer["refused"]["message"]))
        if "wrong_type" in answer:
            raise WrongType(str(answer["wrong_type"]))
        if "error" in answer:
            raise DocumentRefused(RefusalReason.UNREADABLE, "reading the document failed")
        return Inspection(**answer["inspection"])

    async def close(self) -> None:
        """Stop the workers (the application's cleanup)."""
        await self._pool.close()


def handle(job: dict[str, Any]) -> dict[str, Any]:
    """One job: the inspection, or why the file is refused."""
    limits = Limits(soft_seconds=float(job["soft_seconds"]))
    try:
        found = inspect(Path(job["path"]), Family(job["family"]), limits)
    except DocumentRefused as exc:
        return {"refused": {"reason": exc.reason.value, "message": exc.message}}
    except WrongType as exc:
        return {"wrong_type": str(exc)}
    except MemoryError:
        return {"refused": {"reason": RefusalReason.MALFORMED.value,
                            "message": "the document needs more memory than allowed to read"}}
    return {"inspection": asdict(found)}


def main() -> None:
    """The worker process: a bounded address space, quiet parsers, jobs until stdin closes."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    logging.basicConfig(level=logging.WARNING)
    # A hostile PDF makes pypdf warn at length; its problems are the document's, not ours.
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    serve(handle)


if __name__ == "__main__":
    main()
