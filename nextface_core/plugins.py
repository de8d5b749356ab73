"""Plugin discovery and name resolution.

A :class:`PluginRegistry` owns one pluggy ``PluginManager``. It loads every entry point
of group ``nextface`` (each one its own try: a plugin that fails to import is recorded in
:attr:`PluginRegistry.broken` and the others still load), calls the registry hooks, and
resolves ``(kind, name)`` to a :class:`Registration`. There is no module-global registry:
the CLI builds one per command and tests build their own.

Environment variables:

- ``NEXTFACE_PLUGINS``: comma-separated entry-point names; when set, only these load.
- ``NEXTFACE_BLOCK_PLUGINS``: comma-separated entry-point names that never load.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable, Mapping

import pluggy

from . import builtin as core_plugin
from . import hookspecs
from .errors import NextFaceError, PluginImportError, PluginNotFoundError, UsageError
from .naming import distribution_name, entry_point_name
from .install import install_command, installable
from .options import OptionInfo, describe_options, parse_options
from .project import PROJECT, Availability

ENTRY_POINT_GROUP = PROJECT
ENV_SELECT = "NEXTFACE_PLUGINS"
ENV_BLOCK = "NEXTFACE_BLOCK_PLUGINS"

#: kind -> name of the hook that registers it
KIND_HOOKS: dict[str, str] = {
    "model": "nextface_register_models",
    "detector": "nextface_register_landmark_detectors",
    "renderer": "nextface_register_renderers",
    "loss": "nextface_register_losses",
    "stage": "nextface_register_stages",
}


@dataclass(frozen=True)
class Registration:
    """One named thing a plugin registered."""

    kind: str
    name: str
    factory: Callable[[Any], Any]
    plugin: str
    description: str = ""
    check: Callable[[], Availability] | None = None
    options: type | None = None

    def option_infos(self) -> list[OptionInfo]:
        """The declared options (empty when the plugin declared none)."""
        return describe_options(self.options) if self.options is not None else []

    def parse_options(self, config: Any) -> Any:
        """The options instance from ``[plugins.<plugin>]`` of ``config`` (defaults for a None
        config); :class:`ConfigError` for a bad table. None when no options were declared."""
        if self.options is None:
            return None
        if config is None:
            return self.options()
        return parse_options(self.options, config.plugins.get(self.plugin, {}), self.plugin, config.plugin_source(self.plugin))

    def build(self, config: Any) -> Any:
        """Call the factory: ``factory(config, options)`` when options were declared, else
        ``factory(config)``."""
        if self.options is None:
            return self.factory(config)
        return self.factory(config, self.parse_options(config))

    def availability(self) -> Availability:
        """Run the plugin's check; a check that raises counts as unavailable."""
        if self.check is None:
            return Availability(True, "available")
        try:
            result = self.check()
        except Exception as exc:  # a broken check must not break listing
            return Availability(False, f"check failed: {exc}")
        return result if isinstance(result, Availability) else Availability(bool(result.ok), str(result.detail))


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that raised while importing or registering."""

    name: str
    distribution: str | None
    version: str | None
    error: str
    traceback: str


@dataclass
class PluginInfo:
    """What ``nextface plugins list`` shows for one loaded plugin."""

    name: str
    distribution: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)


def _own_version() -> str | None:
    try:
        return metadata.version("nextface")
    except metadata.PackageNotFoundError:
        return None


def _split_env(value: str | None) -> set[str] | None:
    if value is None or not value.strip():
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


class PluginRegistry:
    """Loads plugins into a private pluggy manager and resolves registered names.

    ``plugins``: extra plugin objects (modules or instances with hookimpls) to register,
    e.g. in tests. ``entry_points``: load installed distributions (default True).
    ``builtin``: register the core's own plugin (the ``file`` detector, the standard losses).
    ``env``: where to read ``NEXTFACE_PLUGINS`` / ``NEXTFACE_BLOCK_PLUGINS`` from.
    """

    def __init__(
        self,
        plugins: Iterable[tuple[str, object]] = (),
        *,
        entry_points: bool = True,
        builtin: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self._select = _split_env(env.get(ENV_SELECT))
        self._block = _split_env(env.get(ENV_BLOCK)) or set()
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.broken: list[BrokenPlugin] = []
        self._dists: dict[str, tuple[str | None, str | None]] = {}
        self._registrations: dict[str, dict[str, Registration]] | None = None
        if builtin:
            self.add("core", core_plugin, distribution="nextface", version=_own_version())
        if entry_points:
            self._load_entry_points()
        for name, plugin in plugins:
            self.add(name, plugin)

    def _wanted(self, name: str) -> bool:
        return name not in self._block and (self._select is None or name in self._select)

    def _load_entry_points(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if not self._wanted(ep.name) or self.pm.has_plugin(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            dist_info = (dist.metadata["Name"], dist.version) if dist is not None else (None, None)
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
                self._check_hooks(ep.name)
            except Exception as exc:
                if self.pm.has_plugin(ep.name):
                    self.pm.unregister(name=ep.name)
                self.broken.append(
                    BrokenPlugin(ep.name, *dist_info, f"{type(exc).__name__}: {exc}", traceback.format_exc())
                )
                continue
            self._dists[ep.name] = dist_info

    def add(self, name: str, plugin: object, distribution: str | None = None, version: str | None = None) -> None:
        """Register a plugin object directly (tests, notebooks, embedding applications).

        A hook implementation that matches no hook spec (a misspelled name) is a
        :class:`UsageError` naming it; the plugin is not kept.
        """
        if not self._wanted(name):
            return
        self.pm.register(plugin, name=name)
        try:
            self._check_hooks(name)
        except UsageError:
            self.pm.unregister(name=name)
            raise
        self._dists[name] = (distribution, version)
        self._registrations = None

    def _check_hooks(self, name: str) -> None:
        """pluggy's ``check_pending`` for the plugin just registered: every ``@hookimpl`` must
        implement a hook spec; a misspelled one would otherwise be ignored without a word."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            unknown = [
                hook.name
                for hook in self.pm.get_hookcallers(self.pm.get_plugin(name)) or []
                if not hook.has_spec()
            ]
            raise UsageError(
                f"plugin '{name}' implements {', '.join(repr(h) for h in unknown) or 'a hook'} that is no NextFace hook ({exc})",
                f"rename it to one of: {', '.join(sorted(KIND_HOOKS.values()))}",
            ) from None

    # -- registration -------------------------------------------------------------------

    def _collect(self) -> dict[str, dict[str, Registration]]:
        if self._registrations is not None:
            return self._registrations
        table: dict[str, dict[str, Registration]] = {kind: {} for kind in KIND_HOOKS}
        for plugin_name, _plugin in list(self.pm.list_name_plugin()):
            staged: list[Registration] = []
            try:
                for kind, hook_name in KIND_HOOKS.items():
                    for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                        if impl.plugin_name == plugin_name:
                            impl.function(register=self._registrar(kind, plugin_name, staged))
            except Exception as exc:
                dist, version = self._dists.get(plugin_name, (None, None))
                self.broken.append(
                    BrokenPlugin(plugin_name, dist, version, f"{type(exc).__name__}: {exc}", traceback.format_exc())
                )
                self.pm.unregister(name=plugin_name)
                continue
            for reg in staged:
                other = table[reg.kind].get(reg.name)
                if other is not None:
                    raise UsageError(
                        f"{reg.kind} '{reg.name}' is registered by both '{other.plugin}' and '{reg.plugin}'",
                        f"block one of them with {ENV_BLOCK}={reg.plugin}",
                    )
                table[reg.kind][reg.name] = reg
        self._registrations = table
        return table

    @staticmethod
    def _registrar(kind: str, plugin: str, staged: list[Registration]) -> hookspecs.Register:
        def register(
            name: str,
            factory: Callable[[Any], Any],
            *,
            description: str = "",
            check: Callable[[], Availability] | None = None,
            options: type | None = None,
        ) -> None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"plugin '{plugin}' registered a {kind} with an empty or non-string name")
            if not callable(factory):
                raise TypeError(f"plugin '{plugin}' registered {kind} '{name}' with a non-callable factory")
            if options is not None:
                describe_options(options)  # a malformed options class breaks the plugin at load, not at run
            staged.append(Registration(kind, name, factory, plugin, description, check, options))

        return register

    # -- queries ------------------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind`` ("model", "detector", "renderer", "loss")."""
        return sorted(self._collect()[self._check_kind(kind)])

    def resolve(self, kind: str, name: str) -> Registration:
        """The registration of ``name``; raises :class:`PluginNotFoundError` with an install hint.

        The hint names the distribution NextFace's naming convention gives ``name``
        (:mod:`nextface_core.naming`); a broken plugin of that name, entry point or
        distribution is reported with its error instead.
        """
        table = self._collect()[self._check_kind(kind)]
        if name in table:
            return table[name]
        distribution = distribution_name(kind, name)
        for broken in self.broken:
            if broken.name in (name, entry_point_name(kind, name)) or broken.distribution == distribution:
                raise PluginImportError(
                    f"{kind} '{name}' is installed but its plugin '{broken.name}' failed to load: {broken.error}",
                    "run 'nextface plugins list' for details, or reinstall the plugin",
                )
        raise PluginNotFoundError(kind, name, list(table), distribution, install_command(distribution),
                                  installable(distribution))

    def create(self, kind: str, name: str, config: Any) -> Any:
        """Resolve ``name``, check its options in ``config`` and build it (:meth:`Registration.build`).

        A bad ``[plugins.<entry point>]`` table is a :class:`ConfigError`; a factory raising
        anything but a :class:`NextFaceError` (a plugin bug, a broken backend) becomes a
        :class:`PluginImportError` naming the plugin.
        """
        reg = self.resolve(kind, name)
        try:
            return reg.build(config)
        except NextFaceError:
            raise
        except Exception as exc:
            raise PluginImportError(
                f"{kind} '{name}' (plugin '{reg.plugin}') failed to start: {type(exc).__name__}: {exc}",
                f"choose another {kind} (nextface plugins list), or reinstall or report the plugin",
            ) from exc

    def check_options(self, config: Any) -> None:
        """Check every ``[plugins.<name>]`` table of ``config`` that belongs to a loaded plugin
        with declared options (:class:`ConfigError` for the first bad one), so a typo in the
        options of a plugin this run does not build is reported too. Tables of plugins that
        are not installed are left alone (a config may be shared between machines)."""
        for kind in self._collect().values():
            for reg in kind.values():
                reg.parse_options(config)

    def plugins(self) -> list[PluginInfo]:
        """Every loaded plugin with its distribution, version, hooks and registrations."""
        table = self._collect()
        infos = []
        for plugin_name, plugin in self.pm.list_name_plugin():
            dist, version = self._dists.get(plugin_name, (None, None))
            hooks = sorted(h.name for h in (self.pm.get_hookcallers(plugin) or []))
            regs = [r for kind in table.values() for r in kind.values() if r.plugin == plugin_name]
            infos.append(PluginInfo(plugin_name, dist, version, hooks, sorted(regs, key=lambda r: (r.kind, r.name))))
        return sorted(infos, key=lambda p: p.name)

    @staticmethod
    def _check_kind(kind: str) -> str:
        if kind not in KIND_HOOKS:
            raise ValueError(f"unknown plugin kind {kind!r}; expected one of {sorted(KIND_HOOKS)}")
        return kind
