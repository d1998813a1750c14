"""Typer options generated from config dataclasses (as TRL's ``HfArgumentParser`` does for argparse).

A system's ``XConfig`` dataclass is the one place where a knob, its type, its default and its help
live. A command takes the config as a parameter and :func:`config_options` turns every field into
an option, so no default is typed twice::

    @app.command()
    @config_options(config=RAMConfig, args=TrainArgs, exclude={"version"})
    def train(config: RAMConfig, args: TrainArgs, data: Path = typer.Option(..., help="...")) -> None:
        ...  # config and args arrive as instances built from the options

Field -> option rules: ``name_x`` -> ``--name-x``; the default is the dataclass default; the help is
``metadata["help"]`` (rich markup escaped, so ``[system]`` renders). ``bool`` -> ``--x/--no-x``
(a field already named ``no_x`` becomes ``--no-x/--x``, never ``--no-no-x``); ``Optional[T]`` ->
``T`` with default ``None``; ``Literal[...]`` -> a choice; ``tuple[...]`` / ``list[...]`` -> one
comma-separated value (``--ratio-range 0.1,0.5``; an empty string is the empty sequence);
``Path`` and ``Enum`` are kept. A field type outside these raises ``TypeError`` at import time.
Two configs with a field of the same name need a ``prefix`` for one of them.

Every decorated command is registered (:data:`CONFIG_COMMANDS`); a hand-written command can be
registered with :func:`register_config_command`. One test walks the registry with
:func:`check_config_command`: every field exposed, with the dataclass default and a help text.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

import typer
from rich.markup import escape

from longlore.core.devices import DEVICE_HELP, DTYPE_CHOICES, DTYPE_HELP

_SCALARS = (int, float, str)


def help_text(text: str | None) -> str:
    """Help as typer's rich renderer shows it: square brackets kept literally."""
    return escape(" ".join((text or "").split()))


def device_option(default: str = "auto") -> Any:
    """The ``--device`` option every model-loading verb takes."""
    return typer.Option(default, "--device", help=help_text(DEVICE_HELP))


def dtype_option(default: str = "auto") -> Any:
    """The ``--dtype`` option every model-loading verb takes (checked by ``resolve_dtype``)."""
    return typer.Option(default, "--dtype", help=help_text(DTYPE_HELP), metavar="|".join(DTYPE_CHOICES))


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
        raise TypeError(f"unions other than Optional[T] are not supported: {tp}")
    return tp, False


@dataclass(frozen=True)
class FieldOption:
    """How one config field appears on the command line and how its value comes back."""

    config_param: str  # the command parameter that receives the config instance
    config_class: type
    field: str
    option_param: str  # python name of the generated option
    flag: str  # "--name-x"
    annotation: Any
    option: Any  # typer OptionInfo
    convert: Callable[[Any], Any]


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return ...  # required


def _sequence_converter(tp: Any, flag: str) -> tuple[Callable[[Any], Any], str, Any]:
    """(str -> sequence converter, metavar, element type) for tuple[...] / list[...] fields."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    container = tuple if origin is tuple else list
    if origin is tuple and args and args[-1] is not Ellipsis:
        elems, fixed = list(args), len(args)
    else:
        elems, fixed = [args[0] if args else str], None
    for e in elems:
        if not (e in _SCALARS or e is Path):
            raise TypeError(f"{flag}: sequence elements must be int, float, str or Path, got {e}")

    def convert(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (tuple, list)):  # a default, or a value that is already parsed
            parts = list(value)
        else:
            parts = [p.strip() for p in str(value).split(",")] if str(value).strip() else []
        if fixed is not None and len(parts) != fixed:
            raise typer.BadParameter(f"expected {fixed} comma-separated values, got {value!r}", param_hint=flag)
        out = []
        for i, part in enumerate(parts):
            elem = elems[i] if fixed is not None else elems[0]
            try:
                out.append(elem(part))
            except (TypeError, ValueError):
                raise typer.BadParameter(
                    f"{part!r} is not a valid {elem.__name__} (value {value!r})", param_hint=flag
                ) from None
        return container(out)

    names = [e.__name__.upper() for e in elems]
    metavar = ",".join(names) if fixed is not None else f"{names[0]},..."
    return convert, metavar, elems


def _to_text(value: Any) -> Any:
    if value is None or value is ...:
        return value
    return ",".join(str(v) for v in value)


def field_option(
    config_param: str, config_class: type, f: dataclasses.Field, field_type: Any, prefix: str = ""
) -> FieldOption:
    """The typer option for one dataclass field (see the module docstring for the rules)."""
    name = prefix + f.name
    flag = "--" + name.replace("_", "-")
    default = _default_of(f)
    tp, optional = _unwrap_optional(field_type)
    help_ = help_text(f.metadata.get("help", ""))
    origin = typing.get_origin(tp)
    identity: Callable[[Any], Any] = lambda v: v
    if tp is bool:
        if optional:
            raise TypeError(f"{config_class.__name__}.{f.name}: Optional[bool] has no flag form; use bool")
        if name.startswith("no_"):
            positive = name[3:].replace("_", "-")
            decls = (f"--no-{positive}/--{positive}",)
        else:
            decls = (f"{flag}/--no-{name.replace('_', '-')}",)
        option = typer.Option(default, *decls, help=help_)
        return FieldOption(config_param, config_class, f.name, name, flag, bool, option, identity)
    if origin is Literal:
        annotation = Optional[tp] if optional else tp
        option = typer.Option(default, flag, help=help_)
        return FieldOption(config_param, config_class, f.name, name, flag, annotation, option, identity)
    if origin in (tuple, list) or tp in (tuple, list):
        convert, metavar, _ = _sequence_converter(tp, flag)
        annotation = Optional[str] if optional else str
        option = typer.Option(_to_text(default), flag, help=help_, metavar=metavar)
        return FieldOption(config_param, config_class, f.name, name, flag, annotation, option, convert)
    if tp in _SCALARS or tp is Path or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        annotation = Optional[tp] if optional else tp
        option = typer.Option(default, flag, help=help_)
        return FieldOption(config_param, config_class, f.name, name, flag, annotation, option, identity)
    raise TypeError(
        f"{config_class.__name__}.{f.name}: type {field_type} has no command-line form; "
        "use int/float/str/bool/Path/Enum/Literal/tuple/list (Optional allowed) or exclude the field"
    )


def options_for(
    config_param: str, config_class: type, exclude: Iterable[str] = (), prefix: str = ""
) -> list[FieldOption]:
    """The :class:`FieldOption` of every init field of ``config_class`` not in ``exclude``."""
    if not dataclasses.is_dataclass(config_class):
        raise TypeError(f"{config_class!r} is not a dataclass")
    hints = typing.get_type_hints(config_class)
    skip = set(exclude)
    return [
        field_option(config_param, config_class, f, hints[f.name], prefix)
        for f in dataclasses.fields(config_class)
        if f.init and f.name not in skip
    ]


@dataclass
class ConfigCommand:
    """A (config class, typer command) pair whose options must mirror the config's fields."""

    config_class: type
    command: Callable[..., Any]
    exclude: frozenset[str] = frozenset()
    prefix: str = ""

    @property
    def name(self) -> str:
        return f"{getattr(self.command, '__module__', '?')}.{getattr(self.command, '__qualname__', '?')}"


CONFIG_COMMANDS: list[ConfigCommand] = []


def register_config_command(
    config_class: type, command: Callable[..., Any], exclude: Iterable[str] = (), prefix: str = ""
) -> None:
    """Register a (config, command) pair for the registry test (decorated commands register
    themselves; call this for a command whose options are written by hand)."""
    entry = ConfigCommand(config_class, command, frozenset(exclude), prefix)
    if not any(e.config_class is config_class and e.command is command for e in CONFIG_COMMANDS):
        CONFIG_COMMANDS.append(entry)


def config_options(
    exclude: Iterable[str] = (), prefix: dict[str, str] | None = None, **configs: type
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: expand each ``param=ConfigClass`` of a typer command into one option per field.

    ``exclude``: field names left out (the command passes the dataclass default); ``prefix``:
    ``{param: "world_"}`` to disambiguate two configs sharing a field name.
    """
    prefix = prefix or {}
    skip = frozenset(exclude)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        missing = [p for p in configs if p not in signature.parameters]
        if missing:
            raise TypeError(f"{func.__qualname__}: config_options names {missing}, which are not its parameters")
        own = [p for n, p in signature.parameters.items() if n not in configs]
        fields = [fo for param, cls in configs.items() for fo in options_for(param, cls, skip, prefix.get(param, ""))]
        taken: dict[str, str] = {p.name: "the command itself" for p in own}
        for fo in fields:
            if fo.option_param in taken:
                raise TypeError(
                    f"{func.__qualname__}: option --{fo.option_param} from {fo.config_class.__name__} clashes with "
                    f"{taken[fo.option_param]}; pass prefix={{'{fo.config_param}': '...'}} or exclude it"
                )
            taken[fo.option_param] = fo.config_class.__name__
        generated = [
            inspect.Parameter(
                fo.option_param, inspect.Parameter.KEYWORD_ONLY, default=fo.option, annotation=fo.annotation
            )
            for fo in fields
        ]
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is p.VAR_KEYWORD else p for p in own]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            for param, cls in configs.items():
                values = {
                    fo.field: fo.convert(kwargs.pop(fo.option_param)) for fo in fields if fo.config_param == param
                }
                kwargs[param] = cls(**values)
            return func(**kwargs)

        del command.__wrapped__  # typer must read the generated signature, not the original one
        command.__signature__ = signature.replace(parameters=[*own, *generated])  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in [*own, *generated] if p.annotation is not p.empty}
        command.__config_options__ = fields  # type: ignore[attr-defined]
        for param, cls in configs.items():
            register_config_command(cls, command, skip, prefix.get(param, ""))
        return command

    return decorate


def _click_command(command: Callable[..., Any]) -> Any:
    app = typer.Typer()
    app.command()(command)
    return typer.main.get_command(app)


def check_config_command(entry: ConfigCommand) -> list[str]:
    """Problems with one registered pair: a field not exposed as ``--field``, an option whose
    default is not the dataclass default, or an option without help. Empty when all is well."""
    click_cmd = _click_command(entry.command)
    params = {p.name: p for p in click_cmd.params}
    problems = []
    hints = typing.get_type_hints(entry.config_class)
    for f in dataclasses.fields(entry.config_class):
        if not f.init or f.name in entry.exclude:
            continue
        expected = field_option("config", entry.config_class, f, hints[f.name], entry.prefix)
        where = f"{entry.name}: {entry.config_class.__name__}.{f.name}"
        param = params.get(expected.option_param)
        if param is None:
            problems.append(f"{where}: no option {expected.flag}")
            continue
        if expected.flag not in [*param.opts, *param.secondary_opts]:
            problems.append(f"{where}: option is spelled {param.opts}, expected {expected.flag}")
        default = _default_of(f)
        shown = param.default
        try:
            same = shown == default or expected.convert(shown) == default
        except Exception:  # a hand-written option whose default does not even parse
            same = False
        if default is ... and param.required:
            same = True
        if not same:
            problems.append(f"{where}: CLI default {shown!r} != dataclass default {default!r}")
        if not (getattr(param, "help", None) or "").strip():
            problems.append(f"{where}: {expected.flag} has no help")
    return problems
