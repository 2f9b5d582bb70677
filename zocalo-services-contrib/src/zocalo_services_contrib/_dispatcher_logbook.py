"""The Dispatcher's logbook: one text file per started recipe, for later inspection.

An entry lives at `<logbook>/<YYYY-MM>/<id[:2]>/<id[2:]>`, where `id` is the recipe ID
with every character but letters, digits and `-` removed. An entry is never
overwritten: a second one for the same ID gets the suffix `.1`, then `.2`, ...
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zocalo_core import SiteConfiguration

from zocalo_services_contrib._dispatcher_request import site_path

logger = logging.getLogger(__name__)

#: The storage key naming the logbook folder.
LOGBOOK_KEY = "zocalo.dispatcher.logbook_location"

#: How many entries one recipe ID may have before the logbook gives up on it.
MAX_ENTRIES_PER_ID = 100

_NOT_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9-]")
_FOLDER_MODE = 0o775
_FILE_MODE = 0o664


class Logbook:
    """Writes logbook entries into `directory`; with None, writes nothing."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    @classmethod
    def from_site(cls, site: SiteConfiguration | None) -> Logbook:
        """The logbook the site configures; disabled (logged at INFO) if unusable."""
        directory = site_path(site, LOGBOOK_KEY)
        if directory is None:
            logger.info(
                "Dispatcher logbook disabled: storage key %s is not set", LOGBOOK_KEY
            )
            return cls(None)
        try:
            directory.mkdir(mode=_FOLDER_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            logger.info(
                "Dispatcher logbook disabled: cannot create %s: %s", directory, exc
            )
            return cls(None)
        if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
            logger.info("Dispatcher logbook disabled: cannot write to %s", directory)
            return cls(None)
        logger.info("Dispatcher logbook in %s", directory)
        return cls(directory)

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def write(
        self,
        recipe_id: str,
        *,
        headers: Mapping[str, Any],
        incoming: Any,
        parsed: Any,
        recipe: Any,
    ) -> Path | None:
        """Write one entry; returns its path, or None when nothing was written.

        Failures are logged as WARNINGs: the logbook never stops a recipe.
        """
        if self.directory is None:
            return None
        cleaned = _NOT_IN_FILE_NAMES.sub("", str(recipe_id))
        if len(cleaned) < 3:
            logger.warning(
                "recipe ID %r has fewer than 3 usable characters; not written to the "
                "logbook",
                recipe_id,
            )
            return None
        sections = {
            "Incoming message header": headers,
            "Incoming message body": incoming,
            "Parsed message body": parsed,
            "Recipe object": recipe,
        }
        text = "".join(
            f"{title}:\n{_pretty(value)}\n\n" for title, value in sections.items()
        )
        folder = self.directory / time.strftime("%Y-%m") / cleaned[:2]
        try:
            folder.mkdir(mode=_FOLDER_MODE, parents=True, exist_ok=True)
            return _write_new(folder, cleaned[2:], text)
        except OSError as exc:
            logger.warning(
                "could not write the logbook entry of recipe %s in %s: %s",
                recipe_id,
                folder,
                exc,
            )
            return None


def _write_new(folder: Path, name: str, text: str) -> Path:
    """Write `text` to `folder/name`, or `name.1`, `name.2`, ... if that exists."""
    for number in range(MAX_ENTRIES_PER_ID):
        path = folder / (name if number == 0 else f"{name}.{number}")
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        except FileExistsError:
            continue
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
        return path
    message = f"{MAX_ENTRIES_PER_ID} entries named {name} exist already"
    raise FileExistsError(message)


def _pretty(value: Any) -> str:
    return json.dumps(_plain(value), indent=2, sort_keys=True)


def _plain(value: Any) -> Any:
    # Keys become text so that they can be sorted; anything JSON cannot hold is
    # shown as its str(), since an entry is for people to read.
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
