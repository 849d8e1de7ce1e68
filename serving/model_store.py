"""The served model: resolved from a registry alias, reloaded when the alias moves.

`ModelStore.current` is one immutable `LoadedModel`; a request reads it once and uses that
object to the end, so swapping in a new champion (an attribute assignment) never affects a
request in flight and never leaves a moment without a model. A new version is downloaded,
checksum-verified and warmed up in the background before the swap; if it fails to load, the
current model keeps serving and the failure is counted and logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from models.bundle import ModelBundle

log = logging.getLogger(__name__)

_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)/?$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)/?$")
_FIRST_RETRY_SECONDS = 5.0
_MAX_RETRY_SECONDS = 300.0


class ModelNotReadyError(RuntimeError):
    """No model has been loaded yet (or none is configured)."""


@dataclass(frozen=True)
class LoadedModel:
    """One loaded bundle and where it came from."""

    bundle: ModelBundle
    uri: str
    name: str | None
    version: str | None
    loaded_at: datetime


def parse_alias_uri(uri: str) -> tuple[str, str] | None:
    """(name, alias) of a `models:/NAME@ALIAS` URI, else None."""
    match = _ALIAS_URI.match(uri)
    return (match["name"], match["alias"]) if match else None


def resolve_alias(name: str, alias: str) -> str:
    """The version number the registry alias points at now."""
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_by_alias(name, alias).version)


def _default_loader(uri: str) -> ModelBundle:
    """The bundle at `uri`, refused (never served) when its risk bands cannot place a score."""
    from models.pyfunc import load_bundle
    from serving.risk_bands import bundle_bands

    bundle = load_bundle(uri)
    bundle_bands(bundle)
    return bundle


class ModelStore:
    """Holds the served model and swaps in a new version when its registry alias moves."""

    def __init__(
        self,
        uri: str,
        *,
        poll_seconds: float = 30.0,
        loader: Callable[[str], ModelBundle] | None = None,
        resolver: Callable[[str, str], str] | None = None,
        on_swap: Callable[[LoadedModel], None] | None = None,
        on_failure: Callable[[Exception], None] | None = None,
        retry_seconds: float = _FIRST_RETRY_SECONDS,
    ) -> None:
        self.uri = uri
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self._loader = loader or _default_loader
        self._resolver = resolver or resolve_alias
        self._on_swap = on_swap
        self._on_failure = on_failure
        self._current: LoadedModel | None = None
        #: Why the last load attempt failed (None after a success).
        self.last_error: str | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def fixed(cls, bundle: ModelBundle, *, uri: str = "memory") -> ModelStore:
        """A store serving one already loaded bundle, never reloading (tests, embedding)."""
        store = cls(uri, poll_seconds=0.0)
        store._current = LoadedModel(bundle, uri, None, None, datetime.now(UTC))
        return store

    @property
    def current(self) -> LoadedModel:
        """The model to use for one request (read it once per request)."""
        model = self._current
        if model is None:
            raise ModelNotReadyError(f"model {self.uri} is not loaded yet")
        return model

    @property
    def ready(self) -> bool:
        """Whether a model is loaded."""
        return self._current is not None

    @property
    def alias(self) -> tuple[str, str] | None:
        """(name, alias) when the store follows a registry alias."""
        return parse_alias_uri(self.uri)

    def start(self, *, block: bool = True) -> None:
        """Load the model, then follow the alias in a background thread.

        With `block` the first load happens now and its failure raises; without it the
        background thread retries the first load with growing pauses until it succeeds.
        """
        if block and self._current is None:
            self.refresh()
        follow = self.alias is not None and self.poll_seconds > 0
        if self._thread is None and (follow or self._current is None):
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="govrisk-model", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop following the alias."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)

    def refresh(self) -> bool:
        """Load the alias's version if it changed; returns whether a new model was swapped in.

        Raises when the first load fails; later failures keep the current model and return
        False.
        """
        with self._reload_lock:
            try:
                name, version, pinned = self._target()
                current = self._current
                if current is not None and current.version == version and version is not None:
                    return False
                if current is not None and version is None:
                    return False  # a fixed URI never changes
                started = time.perf_counter()
                bundle = self._loader(pinned)
                bundle.warm_up()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self._current is None:
                    raise
                log.exception(
                    "could not load a new version of %s; still serving the old one", self.uri
                )
                if self._on_failure is not None:
                    self._on_failure(exc)
                return False
            loaded = LoadedModel(bundle, pinned, name, version, datetime.now(UTC))
            self._current = loaded  # the swap: one reference assignment
            self.last_error = None
            log.info(
                "serving %s (version %s) after %.2fs load",
                pinned,
                version,
                time.perf_counter() - started,
            )
            if self._on_swap is not None:
                self._on_swap(loaded)
            return True

    def _target(self) -> tuple[str | None, str | None, str]:
        """(registered name, version, URI pinned to that version) of what to serve now."""
        alias = self.alias
        if alias is not None:
            name, alias_name = alias
            version = self._resolver(name, alias_name)
            return name, version, f"models:/{name}/{version}"
        match = _VERSION_URI.match(self.uri)
        if match:
            return match["name"], match["version"], self.uri
        return None, None, self.uri

    def _run(self) -> None:
        delay = self.retry_seconds
        while self._current is None and not self._stop.is_set():
            try:
                self.refresh()
            except Exception:
                log.exception("could not load model %s; retrying in %.0fs", self.uri, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, _MAX_RETRY_SECONDS)
        if self.alias is None or self.poll_seconds <= 0:
            return
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # refresh already logs; never let the poller die
                log.exception("model poll failed")
