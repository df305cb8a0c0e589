"""Every code block of the documentation runs (or, for set-up commands, is checked)
as the page shows it; see guide_blocks for what each kind of block means."""
import pytest

import guide_blocks

PAGES = sorted([*guide_blocks.DOCS.glob("*.md"), *guide_blocks.DOCS.glob("guides/*.md"),
                *guide_blocks.DOCS.glob("reference/*.md")])


def test_there_is_a_guide_per_capability():
    names = {page.stem for page in guide_blocks.guide_pages()}
    assert names == {"quickstart", "low_precision_training", "ops_and_formats", "numpy_core",
                     "loop_controller", "neural_arithmetic", "instrumented_trainer",
                     "building", "troubleshooting"}


@pytest.mark.parametrize("page", guide_blocks.guide_pages(), ids=lambda p: p.stem)
def test_every_guide_has_a_runnable_example(page):
    kinds = [block.kind for block in guide_blocks.blocks(page)]
    assert {"python", "pycon", "console"} & set(kinds), kinds


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(guide_blocks.DOCS)))
def test_every_block_is_of_a_known_kind(page):
    unknown = [b.where for b in guide_blocks.blocks(page) if b.kind not in guide_blocks.KINDS]
    assert not unknown, f"blocks of no known kind {guide_blocks.KINDS}: {unknown}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(guide_blocks.DOCS)))
def test_the_code_blocks_run(page, tmp_path):
    guide_blocks.run_page(page, tmp_path)
