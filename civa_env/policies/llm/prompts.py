"""The LLM policy's prompt files: one folder per version under ``prompts/``.

A version folder holds one ``string.Template`` text per phase (``combined``, ``perception``,
``communication``, ``action``, ``memory``), the ``system`` prompt, the ``retry`` prompt that
carries an unusable answer's error, and the annotator's prompt. Prompts are files so that a
run's prompts can be versioned and recorded (``llm_prompts.json``) apart from the code.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

PROMPT_DIR = Path(__file__).parent / "prompts"


def load_prompts(version: str) -> dict[str, Template]:
    """The templates of ``prompts/<version>/*.txt``, by file stem.

    Raises:
        ValueError: no such version folder (naming the known ones).
    """
    folder = PROMPT_DIR / version
    if not folder.is_dir():
        known = sorted(p.name for p in PROMPT_DIR.iterdir() if p.is_dir())
        raise ValueError(f"unknown prompt version {version!r}; known: {', '.join(known)}")
    return {p.stem: Template(p.read_text()) for p in folder.glob("*.txt")}
