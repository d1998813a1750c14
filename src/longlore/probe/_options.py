"""Typer options from config dataclasses, for the probe CLI (same interface as the shared helper
``longlore.core.config_cli.config_options`` of issue #16, which replaces this module once it lands).

``@config_options(config=ProbeConfig, args=TrainArgs)`` turns each dataclass field into ``--field-name``
with the dataclass default and ``metadata["help"]``; tuples are one comma-separated value; bools are
``--x/--no-x``. The command receives built instances.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any

import typer
from rich.markup import escape

from longlore.core.errors import LongloreError


def _converter(tp: Any, flag: str) -> tuple[Callable[[Any], Any], Any]:
    origin = typing.get_origin(tp)
    if origin is tuple:
        item = typing.get_args(tp)[0]

        def convert(text: Any) -> tuple:
            if isinstance(text, tuple):
                return text
            parts = [p.strip() for p in str(text).split(",") if p.strip()]
            try:
                return tuple(item(p) for p in parts)
            except ValueError:
                raise LongloreError(f"{flag} '{text}': expected comma-separated {item.__name__} values") from None

        return convert, str
    return (lambda value: value), tp


def config_options(exclude: Iterable[str] = (), **configs: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: expand each ``param=ConfigClass`` of a typer command into one option per field."""
    skip = frozenset(exclude)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name not in configs]
        fields = []  # (config param, field name, option param, converter)
        generated = []
        for param, cls in configs.items():
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if not f.init or f.name in skip or f.name == "version":
                    continue
                flag = "--" + f.name.replace("_", "-")
                convert, annotation = _converter(hints[f.name], flag)
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
                shown = ",".join(str(x) for x in default) if isinstance(default, tuple) else default
                decls = [f"{flag}/--no-{flag[2:]}"] if hints[f.name] is bool else [flag]
                option = typer.Option(shown, *decls, help=escape(f.metadata.get("help", "")))
                generated.append(
                    inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
                )
                fields.append((param, f.name, convert))

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            for param, cls in configs.items():
                values = {name: convert(kwargs.pop(name)) for p, name, convert in fields if p == param}
                kwargs[param] = cls(**values)
            return func(**kwargs)

        del command.__wrapped__  # typer must read the generated signature
        command.__signature__ = signature.replace(parameters=[*own, *generated])  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in [*own, *generated]}
        return command

    return decorate
