"""Config problems, collected per file and reported together.

kohya shows one schema error at a time, so users fix configs by whack-a-mole. We gather every problem of a
file (and of the command line) and raise once, one line per problem: `FILE:LINE: message`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UserError

@dataclass(frozen=True)
class Where:
    """Where a value came from: a file and line (None when unknown, e.g. JSON), or the command line."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file] + [str(n) for n in (self.line, self.column) if n is not None]
        return ":".join(parts)

    @property
    def in_file(self) -> bool:
        """True for a config file (its folder is where relative paths may be found), False for the command line."""
        return self != CLI


CLI = Where("command line")


@dataclass(frozen=True)
class Problem:
    where: Where
    message: str
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ConfigError(UserError):
    """Everything wrong with a config, one problem per line, so all of it can be fixed in one go."""

    def __init__(self, problems: list[Problem], what: str = "the training config"):
        self.problems = list(problems)
        lines = [str(p) for p in self.problems]
        head = "" if len(lines) == 1 else f"{len(lines)} problems in {what}:\n"
        super().__init__(head + "\n".join(lines))


@dataclass
class Report:
    """Problems and notes gathered while reading one source; `raise_if_any` ends the step if needed."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, where: Where, message: str, key: str | None = None) -> None:
        self.problems.append(Problem(where, message, key))

    def note(self, where: Where, message: str) -> None:
        self.notes.append(f"{where}: note: {message}")

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)
