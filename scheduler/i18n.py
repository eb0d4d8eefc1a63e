"""The operator's language: the command line's messages in Korean or English, from gettext
catalogues.

The catalogues are ``.po`` sources under ``scheduler/locale/`` (what translators and reviewers
read; ``scheduler.pot`` is the template). ``polib`` turns one into the bytes of a ``.mo`` file
once, on the first message, and the standard ``gettext.GNUTranslations`` reads those: no build
step, and no compiled file that can fall behind its source. English is the msgids themselves.

The language is chosen the way ``gettext.find`` chooses it: the first of ``LANGUAGE``,
``LC_ALL``, ``LC_MESSAGES``, ``LANG`` that is set; ``LANGUAGE`` may list several
(``ko:en``); ``C`` or ``POSIX`` ends the list. A language without a catalogue falls through to
the next one, and in the end to English. English has no catalogue (it is the msgids), so a
listed English ends the list as ``C`` does: ``LANGUAGE=en:ko`` asks for English first.

The daemon's messages (API errors, logs) stay English on purpose: clients match their ``code``
and ``field``, and translate those themselves.
"""

from __future__ import annotations

import argparse
import functools
import gettext
import io
import locale
import os
from collections.abc import Mapping
from pathlib import Path

import polib

DOMAIN = "scheduler"
LOCALE_DIR = Path(__file__).parent / "locale"
_ENV = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def N_(message: str) -> str:  # noqa: N802 - gettext's name for a marker that only extracts
    """Mark a string for the catalogue without translating it here (``gettext_noop``)."""
    return message


#: argparse's own words in ``--help`` and its errors: argparse asks ``gettext.gettext``, which
#: reads only compiled ``.mo`` files, so ``localize_argparse`` hands it this catalogue instead.
ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("expected one argument"),
    N_("invalid %(type)s value: %(value)r"),
)


def languages(environ: Mapping[str, str]) -> list[str]:
    """The catalogue names to try, in order: ``ko_KR.UTF-8`` gives ``ko_KR``, then ``ko``."""
    value = next((environ[name] for name in _ENV if environ.get(name)), "")
    names: list[str] = []
    for item in value.split(":"):
        normal = locale.normalize(item) if item else ""
        if normal in ("C", "POSIX") or normal.startswith("C."):
            break
        lang = normal.split(".")[0].split("@")[0]
        if lang.split("_")[0] == "en":
            break
        names += [name for name in (lang, lang.split("_")[0]) if name and name not in names]
    return names


def translation(environ: Mapping[str, str] | None = None) -> gettext.NullTranslations:
    """The catalogue ``environ`` (default: this process's) asks for; English without one."""
    for name in languages(os.environ if environ is None else environ):
        source = LOCALE_DIR / name / "LC_MESSAGES" / f"{DOMAIN}.po"
        if source.is_file():
            return _compiled(source)
    return gettext.NullTranslations()


@functools.cache
def _compiled(source: Path) -> gettext.GNUTranslations:
    return gettext.GNUTranslations(io.BytesIO(polib.pofile(str(source)).to_binary()))


@functools.cache
def _current() -> gettext.NullTranslations:
    """Chosen once per process, on the first message: the locale does not change under us."""
    return translation()


def _(message: str) -> str:
    """``message`` in the operator's language."""
    return _current().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural of a message for ``n``, in the operator's language."""
    return _current().ngettext(singular, plural, n)


def localize_argparse() -> None:
    """Let argparse's ``usage:``, ``options`` and errors speak the operator's language.

    argparse binds ``gettext.gettext`` at import and calls the module's ``_``/``ngettext`` by
    name, so rebinding those two names is the hook it leaves (as ``gettext.install`` rebinds
    ``builtins._``); English keeps argparse's own text untouched.
    """
    current = _current()
    if not isinstance(current, gettext.GNUTranslations):
        return
    vars(argparse).update(_=current.gettext, ngettext=current.ngettext)
