"""One problem found in a workflow file, and where it is."""

import dataclasses

from pinball_core.workflow.definition import did_you_mean

__all__ = ["Problem", "did_you_mean"]


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in a definition, with the place a person has to fix.

    ``line`` and ``column`` count from 1, as editors show them; they are 0
    when the problem has no single place (a file that cannot be read).
    """

    file: str
    line: int
    column: int
    reason: str
    workflow: str | None = None
    job: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        parts = []
        if self.workflow is not None:
            parts.append(f"workflow {self.workflow}")
        if self.job is not None:
            parts.append(f"job {self.job}")
        context = f" {', '.join(parts)}:" if parts else ""
        return f"{where}:{context} {self.reason}"
