"""Plugin registry: finds `*.py` files in the plugin folders, loads and reloads them.

A file is reloaded when its mtime or size changes, checked on each lookup, so an edit
in `plugins/` takes effect on the next request in every gunicorn worker. A file that
fails to load is kept as unavailable with its error; it never stops the server.

Files whose names start with `_` are not plugins but helpers that plugins import by
name (`import _common`); a plugin is reloaded when a helper it imported changes.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import logging
import os
import re
import sys
import threading
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from stat import S_ISREG
from typing import Any

from flask import Flask

from bridge.config import Config
from bridge.errors import BridgeError, PluginNotFound, PluginUnavailable
from bridge.plugin import BasePlugin, PluginSettings

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,100}")
# One plugin import at a time (helpers are shared in sys.modules); lookups of plugins
# already loaded, and /health, never wait for it.
_IMPORTS = threading.Lock()


class HelperFinder(importlib.abc.MetaPathFinder):
    """Finds `_name` modules in the plugin folders, after every other finder: a helper
    can shadow nothing, and plugin files are not importable as modules."""

    def __init__(self) -> None:
        self.dirs: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if path is not None or not name.startswith("_") or not self.dirs:
            return None
        return importlib.machinery.PathFinder.find_spec(name, self.dirs)


def _helper_finder(dirs: list[Path]) -> HelperFinder:
    finder = next((f for f in sys.meta_path if isinstance(f, HelperFinder)), None)
    if finder is None:
        finder = HelperFinder()
        sys.meta_path.append(finder)
    # The newest registry's folders first (tests build many apps in one process).
    mine = [str(d.resolve()) for d in dirs]
    finder.dirs[:] = mine + [d for d in finder.dirs if d not in mine]
    return finder


def is_plugin_name(name: str) -> bool:
    """A valid plugin name; files starting with `_` are helpers, not plugins."""
    return bool(NAME_PATTERN.fullmatch(name)) and not name.startswith("_")


@dataclass(frozen=True)
class LoadedPlugin:
    """One plugin file as last seen: its class and settings, or why it failed."""

    name: str
    path: Path
    mtime_ns: int
    size: int
    plugin_class: type[BasePlugin] | None
    settings: PluginSettings | None
    error: str | None
    # The helper files (`_*.py`) its import loaded, as (path, mtime_ns, size).
    helpers: tuple[tuple[Path, int, int], ...] = ()

    @property
    def is_available(self) -> bool:
        return self.plugin_class is not None

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.plugin_class) if self.plugin_class else None
        if not doc or self.plugin_class is None or doc == inspect.getdoc(BasePlugin):
            return ""
        return doc.strip().splitlines()[0]

    @cached_property
    def supported_methods(self) -> tuple[str, ...]:
        """Worked out once per load: every delivery checks its method against it."""
        if self.settings is None or self.plugin_class is None:
            return ()
        if self.settings.methods:
            return tuple(self.settings.methods)
        return tuple(self.plugin_class.supported_methods())

    @property
    def last_modified(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns / 1e9, tz=UTC)


def _find_plugin_class(module: Any) -> type[BasePlugin] | None:
    """`Plugin` if the module defines it, else the first BasePlugin subclass defined there."""
    candidate = getattr(module, "Plugin", None)
    if inspect.isclass(candidate) and issubclass(candidate, BasePlugin):
        return candidate
    for value in vars(module).values():
        if (
            inspect.isclass(value)
            and issubclass(value, BasePlugin)
            and value is not BasePlugin
            and value.__module__ == module.__name__
        ):
            return value
    return None


class PluginRegistry:
    """Plugins by name across the configured folders; the first folder wins a name clash."""

    def __init__(self, config: Config) -> None:
        self.dirs = config.plugin_dirs
        self.overrides = config.plugins.settings
        self._plugins: dict[str, LoadedPlugin] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._candidates: dict[str, list[Path]] = {}
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.registry"] = self
        _helper_finder(self.dirs)
        for folder in self.missing_dirs():
            log.warning(
                "Plugin folder %s does not exist: no plugins are loaded from it (relative "
                "plugins.dirs entries are read from the config file's folder)",
                folder,
            )
        for plugin in self.all():
            if plugin.error:
                log.warning("Plugin %s unavailable: %s", plugin.name, plugin.error.splitlines()[0])
        log.info(
            "Loaded %d plugins from %s", len(self._plugins), ", ".join(str(d) for d in self.dirs)
        )

    def _locate(self, name: str) -> tuple[Path, os.stat_result] | None:
        """The first folder's `<name>.py` that is a file, with its stat: one stat call
        per folder looked in (this runs on every request)."""
        candidates = self._candidates.get(name)
        if candidates is None:
            candidates = [folder / f"{name}.py" for folder in self.dirs]
        for path in candidates:
            try:
                stat = os.stat(path)
            except OSError:
                continue
            if S_ISREG(stat.st_mode):
                if name not in self._candidates:  # only names that are files: bounded
                    self._candidates[name] = candidates
                return path, stat
        return None

    def _load(self, name: str, path: Path, stat: Any) -> LoadedPlugin:
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
        module_name = f"bridge_plugins.{name.replace('-', '_')}_{digest}"
        plugin_class = settings = error = None
        helpers: tuple[tuple[Path, int, int], ...] = ()
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            with _IMPORTS:
                # Helpers are imported afresh for each plugin, so that what its import
                # adds to sys.modules is exactly the helpers it uses.
                for old in self._helper_modules(sys.modules):
                    del sys.modules[old]
                try:
                    spec.loader.exec_module(module)
                finally:
                    helpers = tuple(
                        _file_state(Path(sys.modules[m].__file__))
                        for m in self._helper_modules(sys.modules)
                    )
            plugin_class = _find_plugin_class(module)
            if plugin_class is None:
                raise ImportError("no plugin class: define a class that subclasses BasePlugin")
            settings = PluginSettings.for_plugin(plugin_class, name, self.overrides.get(name))
        except BridgeError as exc:
            plugin_class, error = None, exc.message
        except SyntaxError as exc:  # the file, line and message first: the log shows one line
            plugin_class = None
            error = f"{type(exc).__name__}: {exc.msg} ({exc.filename}, line {exc.lineno})"
            if exc.text:
                error += f"\n    {exc.text.strip()}"
        except BaseException as exc:  # a plugin file can raise anything, SystemExit included
            plugin_class = None
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            log.debug("Plugin %s failed to load", name, exc_info=True)
        return LoadedPlugin(
            name, path, stat.st_mtime_ns, stat.st_size, plugin_class, settings, error, helpers
        )

    def _helper_modules(self, modules: dict[str, Any]) -> list[str]:
        """Names of the loaded modules that are helper files in the plugin folders."""
        folders = tuple(f"{d.resolve()}{os.sep}" for d in self.dirs)
        return [
            name
            for name, module in list(modules.items())
            if name.startswith("_")
            and isinstance(getattr(module, "__file__", None), str)
            and module.__file__.startswith(folders)
        ]

    def lookup(self, name: str) -> LoadedPlugin | None:
        """The plugin called `name` as its file is now, reloading it if it changed."""
        if not is_plugin_name(name):
            return None
        found = self._locate(name)
        if found is None:
            with self._lock:
                self._plugins.pop(name, None)
            return None
        path, stat = found
        cached = self._plugins.get(name)
        if _current(cached, path, stat):
            return cached
        # One import of a file at a time, under that plugin's own lock: a slow import
        # holds up only the requests for that plugin, never the others or /health.
        with self._lock:
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:
            cached = self._plugins.get(name)
            if not _current(cached, path, stat):
                if cached is not None:
                    log.info("Reloading plugin %s (%s changed)", name, path)
                cached = self._load(name, path, stat)
                with self._lock:
                    self._plugins[name] = cached
            return cached

    def get(self, name: str) -> LoadedPlugin:
        """An available plugin, or PluginNotFound / PluginUnavailable."""
        plugin = self.lookup(name)
        if plugin is None:
            raise PluginNotFound(name)
        if not plugin.is_available:
            raise PluginUnavailable(name, (plugin.error or "").splitlines()[0])
        return plugin

    def names(self) -> list[str]:
        seen: list[str] = []
        for folder in self.dirs:
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.py")):
                if path.stem not in seen and is_plugin_name(path.stem):
                    seen.append(path.stem)
        return sorted(seen)

    def missing_dirs(self) -> list[Path]:
        return [d for d in self.dirs if not d.is_dir()]

    def known(self) -> list[LoadedPlugin]:
        """The plugins as last loaded, without looking at the folders or importing."""
        with self._lock:
            return sorted(self._plugins.values(), key=lambda p: p.name)

    def all(self) -> list[LoadedPlugin]:
        """Every plugin file now in the folders, each as currently loaded."""
        names = self.names()
        with self._lock:
            for gone in set(self._plugins) - set(names):
                del self._plugins[gone]
                self._loading.pop(gone, None)
        return [p for p in (self.lookup(n) for n in names) if p is not None]


def _current(cached: LoadedPlugin | None, path: Path, stat: os.stat_result) -> bool:
    """Whether `cached` was loaded from the file as it is now (same path, mtime, size),
    and from the helpers it imported as they are now."""
    return (
        cached is not None
        and cached.path == path
        and cached.mtime_ns == stat.st_mtime_ns
        and cached.size == stat.st_size
        and all(_file_state(helper[0]) == helper for helper in cached.helpers)
    )


def _file_state(path: Path) -> tuple[Path, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return path, -1, -1
    return path, stat.st_mtime_ns, stat.st_size
