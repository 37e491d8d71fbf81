"""Jobs: the ``@job`` decorator and the registry a worker performs from.

A job module marks its functions with ``@job("ClassName")``; nothing is registered at import time.
The worker builds its registry from the modules named in ``PAYQ_JOBS`` (plus payq's built-in jobs),
so two workers in one process, or two tests, never share hidden state.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from workers.errors import JobLoadError, UnknownJob
from workers.retry import RetryPolicy

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__payq_job__"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A performable job: its Resque class name, the function that performs it, and how it is retried
    and time-limited (None: the worker's defaults apply)."""

    name: str
    func: Callable[..., Any]
    retry: RetryPolicy | None = None
    timeout_s: float | None = None
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.func))  # asked for every job


def job(
    name: str | None = None, *, retry: RetryPolicy | None = None, timeout_s: float | None = None
) -> Callable[[F], F]:
    """Mark a function as the job for Resque class ``name`` (the function's name by default), with
    its retry policy and time limit in seconds, if it has them."""

    def mark(func: F) -> F:
        setattr(func, _MARK, JobSpec(name or func.__name__, func, retry, timeout_s))
        return func

    return mark


class Registry:
    """Jobs by Resque class name."""

    def __init__(self, specs: Iterable[JobSpec] = ()) -> None:
        self._specs: dict[str, JobSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: JobSpec) -> None:
        self._specs[spec.name] = spec

    def register(
        self,
        func: Callable[..., Any],
        name: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.add(JobSpec(name or func.__name__, func, retry, timeout_s))

    def get(self, name: str) -> JobSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownJob(f'No job defined for class "{name}"') from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[JobSpec]:
        return iter(self._specs.values())

    def names(self) -> list[str]:
        return sorted(self._specs)


def specs_in(module: ModuleType) -> list[JobSpec]:
    """The jobs a module marked with ``@job``."""
    return [spec for value in vars(module).values() if isinstance(spec := getattr(value, _MARK, None), JobSpec)]


def load_registry(module_names: Iterable[str] = ()) -> Registry:
    """payq's built-in jobs plus every job in the named modules."""
    from workers import builtin_jobs

    registry = Registry(specs_in(builtin_jobs))
    for module_name in module_names:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise JobLoadError(f"cannot import jobs module {module_name!r}: {exc}") from exc
        for spec in specs_in(module):
            registry.add(spec)
    return registry
