"""What every model card says about use: the "Intended use", "Out-of-scope use" and "Limitations" sections.

Every card that unmask writes gets them: the default card of :class:`unmask.hub.HubModel`, the cards that
``save_pretrained(model_card=...)`` is given (training runs), and the cards of converted public weights
(``python -m unmask.convert``). The shipped cards in ``weights/teaching`` carry the same text; a test
checks it, and that the numbers quoted here are those of docs/results.md (``python -m unmask.evaluate unmasking`` and
``python -m demo.make_screenshots`` produce them; update both when the models change).
"""

from __future__ import annotations

#: The published finding every card cites.
COOPER_FARID = ('Cooper & Farid, "AI-Powered Facial Mask Removal Is Not Suitable For Identification" '
                "([arXiv 2603.27747](https://arxiv.org/abs/2603.27747), 2026)")

#: Section heading → the text every card carries under it.
SECTIONS: dict[str, str] = {
    "Intended use": (
        "- Research and teaching: how masked-face recovery by GAN inversion works, and how far it helps or hurts "
        "face recognition.\n"
        "- 1:1 verification against a reference photo that the user supplies: does the recovered face come "
        "closer to an unmasked photo of the same person that the user already has? The score is a similarity "
        "to that reference, computed on a synthesised face; it is not proof of identity."
    ),
    "Out-of-scope use": (
        "- Identifying an unknown masked person: naming someone, searching photo collections or the web with a "
        "recovered face (reverse image search), matching against a watch list.\n"
        "- Evidence of any kind (police, courts, journalism, employers): a recovered face is a guess, not a "
        "photograph of the person.\n"
        "- Surveillance or search for people."
    ),
    "Limitations": (
        "A recovered lower face is drawn by a generator from what the rest of the face suggests: a guess, not "
        "the person's face.\n\n"
        f"- Published: {COOPER_FARID} analyse AI unmasking at scale and find that the unmasked faces cannot be "
        "reliably matched to the true identities; their motivating case was an AI-unmasked image matched by "
        "reverse image search to an unrelated person.\n"
        "- Measured here: under dlib's face ResNet (trained on real photos, independent of this project), the "
        "teaching bundle's recovery widens the verification gap instead of closing it, gap closed −21 % on "
        "held-out teaching faces (`python -m unmask.evaluate unmasking --faces 128 --pairs-per-fold 20 "
        "--optimize-faces 8 --steps 30`); on a real photo, the masked astronaut against her unmasked original, "
        "the distance to the reference rose from 0.435 to 0.481 (same person below 0.6; "
        "`python -m demo.make_screenshots`).\n"
        "- Every image unmask writes says in its XMP metadata that the face region is synthesised (IPTC "
        "DigitalSourceType `compositeWithTrainedAlgorithmicMedia`, the bundle, the mode, the region's box)."
    ),
}


def responsible_use_sections(limits: str = "") -> str:
    """The three sections as Markdown; ``limits``, the model's own limits, comes first under "Limitations"."""
    parts = []
    for heading, body in SECTIONS.items():
        own = f"{limits.strip()}\n\n" if heading == "Limitations" and limits.strip() else ""
        parts.append(f"## {heading}\n\n{own}{body}\n")
    return "\n".join(parts)


def has_responsible_use(card: str) -> bool:
    """Whether ``card`` carries every section with its text."""
    return all(f"## {heading}" in card and body in card for heading, body in SECTIONS.items())


def with_responsible_use(card: str) -> str:
    """``card`` with the sections added (before a trailing fenced config block, if any); unchanged if it has them."""
    if has_responsible_use(card):
        return card
    sections = responsible_use_sections()
    marker = card.rfind("\n```json")
    if marker >= 0:
        return f"{card[:marker].rstrip()}\n\n{sections}{card[marker:]}"
    return f"{card.rstrip()}\n\n{sections}"


__all__ = ["SECTIONS", "COOPER_FARID", "responsible_use_sections", "has_responsible_use", "with_responsible_use"]
