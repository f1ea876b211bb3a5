"""Where people read about unmask, they read what a recovered face is and is not for: every model card (shipped,
generated, given, converted, bundled), the README, its responsible-use page and the app's page; and the numbers
they quote are those of the measured results (docs/results.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from unmask.cards import COOPER_FARID, SECTIONS, has_responsible_use, responsible_use_sections, with_responsible_use
from unmask.models.stylegan2 import Generator, GeneratorConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RESPONSIBLE_USE = (ROOT / "docs" / "responsible_use.md").read_text(encoding="utf-8")
RESULTS = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
SHIPPED_CARDS = sorted(path for bundle in ("teaching", "digiface")
                       for path in (ROOT / "weights" / bundle).glob("*/README.md"))


@pytest.fixture(scope="module")
def tiny_generator() -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(size=16, style_dim=16, n_mlp=1, channel_max=16))


def test_the_sections_are_the_ones_hugging_face_cards_use():
    assert list(SECTIONS) == ["Intended use", "Out-of-scope use", "Limitations"]
    assert "1:1 verification against a reference photo" in SECTIONS["Intended use"]
    for never in ("Identifying an unknown masked person", "Evidence of any kind", "search for people"):
        assert never in SECTIONS["Out-of-scope use"]
    assert "arXiv 2603.27747" in COOPER_FARID and COOPER_FARID in SECTIONS["Limitations"]


@pytest.mark.parametrize("card", SHIPPED_CARDS, ids=lambda p: p.parent.name)
def test_every_shipped_card_has_the_sections(card):
    text = card.read_text(encoding="utf-8")
    assert has_responsible_use(text), f"{card}: add unmask.cards.responsible_use_sections()"
    assert text.index("## Limitations") < text.index("```json")  # the config stays last
    assert "## Limits" not in text  # the model's own limits are under "Limitations"


def test_a_card_without_a_section_is_caught():
    card = responsible_use_sections()
    assert has_responsible_use(card)
    assert not has_responsible_use(card.replace("## Out-of-scope use", "## Other uses"))
    assert not has_responsible_use(card.replace("Surveillance or search for people.", ""))


def test_generated_and_given_cards_get_the_sections(tiny_generator, tmp_path):
    tiny_generator.save_pretrained(tmp_path / "generated")
    generated = (tmp_path / "generated" / "README.md").read_text(encoding="utf-8")
    assert has_responsible_use(generated) and "Generator" in generated and "parameters" in generated

    tiny_generator.save_pretrained(tmp_path / "given", model_card="# My run\n\nTrained on my data.\n")
    given = (tmp_path / "given" / "README.md").read_text(encoding="utf-8")
    assert given.startswith("# My run\n\nTrained on my data.") and has_responsible_use(given)
    assert with_responsible_use(given) == given  # added once
    with_config = with_responsible_use("# Card\n\n```json\n{}\n```\n")
    assert with_config.index("## Limitations") < with_config.index("```json")


def test_converted_cards_get_the_sections(tiny_generator):
    from unmask.convert import model_card

    card = model_card(tiny_generator, "stylegan2", Path("stylegan2-ffhq-config-f.pt"))
    assert has_responsible_use(card) and "non-commercial" in card.lower()


def test_the_readme_and_the_page_say_it_with_the_measured_numbers():
    from demo.handlers import RESPONSIBLE_USE_NOTE

    # The README keeps the essentials and links the whole statement; the statement has every detail.
    short = README[README.index("## Responsible use"):README.index("## Documentation")]
    for words in ("Intended use", "Out-of-scope use", "Limitations", "1:1 verification", "arXiv 2603.27747",
                  "identifying an unknown masked person", "docs/responsible_use.md"):
        assert words in short, words
    for words in ("Intended use", "Out-of-scope use", "Limitations", "1:1 verification", "arXiv 2603.27747",
                  "compositeWithTrainedAlgorithmicMedia", "identifying an unknown masked person"):
        assert words in RESPONSIBLE_USE, words
    assert "arXiv 2603.27747" in RESPONSIBLE_USE_NOTE and "1:1 verification" in RESPONSIBLE_USE_NOTE
    # The measured numbers quoted in the cards, on the page and in both statements are those of the results'
    # tables and text, which `python -m unmask.evaluate unmasking` and `python -m demo.make_screenshots` produce.
    dlib_rows = [line for line in RESULTS.splitlines() if line.startswith("| **unmasking (a)**")]
    assert dlib_rows and dlib_rows[0].rstrip(" |").endswith("−21 %")
    assert "distance 0.435 → 0.481" in RESULTS
    for text in (SECTIONS["Limitations"], RESPONSIBLE_USE_NOTE, short, RESPONSIBLE_USE):
        quoted = set(re.findall(r"−\d+ %|0\.\d{3}", text))
        assert quoted == {"−21 %", "0.435", "0.481"}, quoted
