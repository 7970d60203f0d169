"""The prose of book/*.md (markdown, not code cells): the source tutorials are named "seed 000" to
"seed 004", the training pages take their seconds from glued measurements, and the corrections of
issue 16 (factual errors and the seeds' slips) are on their pages.

Reads the sources only, so it needs no build and runs in well under a second.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
PAGES = sorted(p.stem for p in BOOK.glob("*.md"))
TRAINING_PAGES = ["mnist-cnn", "dense-vs-cnn", "lenet5"]
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)(?::[^`]*)?`")


def split_page(page: str) -> tuple[str, str]:
    """(prose, code) of book/<page>.md: code is every {code-cell} block, prose everything else."""
    prose, code, fence = [], [], None
    text = (BOOK / f"{page}.md").read_text(encoding="utf-8")
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)  # jupytext front matter
    for line in text.splitlines():
        opening = re.match(r"^(`{3,})\{code-cell\}", line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        else:
            (prose if fence is None else code).append(line)
    return "\n".join(prose), "\n".join(code)


def prose_of(page: str) -> str:
    """The page's prose with every run of white space made one space, so phrases match across
    line breaks."""
    return " ".join(split_page(page)[0].split())


def is_glued(name: str, code: str) -> bool:
    """Whether the page's code can glue ``name``: it appears there as a string literal, or an
    f-string passed to glue() matches it (its {...} parts match anything)."""
    if re.search(rf"""(["']){re.escape(name)}\1""", code):
        return True
    templates = re.findall(r"""glue\(\s*f(["'])(.+?)\1""", code)
    patterns = [re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(t)) for _, t in templates]
    return any(re.fullmatch(p, name) for p in patterns)


def test_the_pages_are_found():
    assert {"intro", "mnist-cnn", "dense-vs-cnn", "transposed-convolution"} <= set(PAGES)
    prose, code = split_page("conv-by-hand")
    assert "## Way 1: a loop you can follow" in prose and "def conv2d_by_hand" not in prose
    assert "def conv2d_by_hand" in code and "## Way 1" not in code


# A vague name for a source tutorial, and why it is wrong; each must name its seed instead.
VAGUE_NAMES = [
    (r"\b(first|second|third|fourth|fifth) seed\b", "an ordinal ('the second seed')"),
    (r"\bseed tutorial\b(?!s)", "'the seed tutorial' / 'one seed tutorial'"),
    (r"\bseed's\b", "'the seed's'"),
    (r"\bseeds'", "'the seeds'' (which ones?)"),
]


@pytest.mark.parametrize("page", PAGES)
def test_seeds_are_named_by_number(page):
    prose = prose_of(page)
    for pattern, what in VAGUE_NAMES:
        found = [m.group(0) for m in re.finditer(pattern, prose, flags=re.I)]
        assert not found, (
            f"book/{page}.md names a source tutorial vaguely, {what}: {found}; "
            "write 'seed 000' to 'seed 004' after the file names in shared/seeds/"
        )
    lists = re.findall(r"\bseeds? (\d+(?:(?:,| and|, and) \d+)*)", prose, flags=re.I)
    named = {n for found in lists for n in re.findall(r"\d+", found)}
    wrong = sorted(named - {"000", "001", "002", "003", "004"})
    assert not wrong, f"book/{page}.md names seeds that do not exist: {wrong}"


def test_the_vague_name_check_can_fail():
    samples = ["as the first seed tutorial shows", "the seed's numbers", "One seed tutorial says"]
    for sample in samples:
        assert any(re.search(p, sample, flags=re.I) for p, _ in VAGUE_NAMES), sample
    assert not any(re.search(p, "Seed 001's numbers", flags=re.I) for p, _ in VAGUE_NAMES)


# A measured duration written into the text: digits followed by s / sec / seconds.
SECONDS = re.compile(r"\b\d+(?:\.\d+)? ?(?:s|sec|seconds?)\b")


def test_the_seconds_check_can_fail():
    assert SECONDS.findall("took 123 s, then 179 seconds") == ["123 s", "179 seconds"]
    assert SECONDS.findall(GLUE_ROLE.sub("GLUED", "took {glue:text}`port_seconds:.0f` s")) == []


@pytest.mark.parametrize("page", TRAINING_PAGES)
def test_training_pages_write_no_measured_seconds(page):
    prose = GLUE_ROLE.sub("GLUED", prose_of(page))
    found = SECONDS.findall(prose)
    assert not found, (
        f"book/{page}.md writes measured seconds into its text: {found}; "
        "use {glue:text}`<name>_seconds:.0f` s (the same run's measurement) or drop the figure"
    )


@pytest.mark.parametrize(
    "page, names",
    [
        ("mnist-cnn", ["port_seconds", "improved_seconds"]),
        (
            "dense-vs-cnn",
            ["net1_seconds", "net2_seconds", "net2_scaled_seconds", "improved_seconds"],
        ),
    ],
)
def test_training_seconds_in_the_text_are_glued(page, names):
    used = GLUE_ROLE.findall(prose_of(page))
    assert set(names) <= set(used), f"book/{page}.md: no {{glue:text}} for {set(names) - set(used)}"


@pytest.mark.parametrize("page", PAGES)
def test_every_glue_role_has_a_glued_value(page):
    """A {glue:text}`name` whose name no code cell glues breaks the build (a missing key)."""
    code = split_page(page)[1]
    for name in GLUE_ROLE.findall(prose_of(page)):
        assert is_glued(name, code), (
            f"book/{page}.md uses {{glue:text}}`{name}` but no code cell calls glue({name!r}, ...)"
        )


# (page, what the correction is, a phrase that must be in the prose). Phrases are compared after
# white space is collapsed, so they may span line breaks in the source.
CORRECTIONS = [
    # naming scheme and the intro's table of seeds
    ("intro", "the seed table", "| seed 004 |"),
    ("intro", "the naming scheme", "*seed 000* to *seed 004*"),
    # factual errors
    (
        "transposed-convolution",
        "seed 000's pasted docstring",
        "Seed 000 pasted `Conv2DTranspose`'s docstring under a `Conv2D` title",
    ),
    (
        "conv-by-hand",
        "eager execution is a default",
        "In TensorFlow 2 eager execution is on by default",
    ),
    ("conv-by-hand", "graphs still exist", "decorated with `tf.function` is traced into a graph"),
    ("tf1-to-tf2", "eager execution is a default", "runs operations eagerly by default"),
    (
        "dense-vs-cnn",
        "Adam normalises the gradient's scale",
        "Adam divides each weight's step by a running estimate of the size of that weight's "
        "gradient",
    ),
    (
        "dense-vs-cnn",
        "the pre-activation change for a given step",
        "the same step moves $z$ 255 times as far as with pixels up to 1",
    ),
    (
        "tf1-to-tf2",
        "the printed cost is one mini-batch's",
        "the cost of one mini-batch of 100 images, and that number varies from batch to batch "
        "at any learning rate",
    ),
    # seed slips
    (
        "conv-by-hand",
        "seeds 001 and 004 lose the batch bracket",
        "Seeds 001 and 004 lose this axis without noticing",
    ),
    (
        "conv-by-hand",
        "the literal's real shape",
        "three opening brackets, so its shape is `(3, 3, 1)`",
    ),
    (
        "many-filters",
        "`filter` is a builtin",
        "`filter` is one of Python's built-in functions, not a keyword",
    ),
    (
        "feature-maps",
        "seed 001's `# (7,7)` comment",
        "Seed 001 comments its `print(pool.shape)` with `# (7,7)`",
    ),
    ("feature-maps", "the pooled shape", "its shape is `(1, 7, 7, 5)`"),
    ("conv2d-layer", "seed 003: filters are not tied to channels", "The number of filters is free"),
    (
        "conv2d-layer",
        "seed 003: parameters do not simply grow with in_channels",
        "the third has fewer than the second",
    ),
    ("conv-by-hand", "seed 000's 'weight' axis", "the first axis is the filter's *height*"),
    (
        "conv-by-hand",
        "seed 002's weights[1] is added",
        "`weights[1]` is the bias, and it is *added*",
    ),
    (
        "padding-and-stride",
        "seed 004's half padding",
        '"half padding" is a fair name for SAME with an odd filter at stride 1, and only there',
    ),
    (
        "pooling",
        "seed 004's reason for max pooling",
        "Seed 004 says max pooling is the one mostly used",
    ),
    (
        "feature-maps",
        "seed 004's extract-then-classify summary",
        "the split is not built in. All the layers are trained together",
    ),
    # the transposed-convolution page is optional and says where learning comes in
    ("transposed-convolution", "optional reading", "```{admonition} Optional reading"),
    (
        "transposed-convolution",
        "where learning is explained",
        "this book first trains a network on {ref}`mnist-cnn`",
    ),
]

# Sentences the corrections replace: none may come back.
RETRACTED = [
    ("conv-by-hand", "eager execution is always on"),
    ("dense-vs-cnn", "Adam's first steps overshoot"),
    ("tf1-to-tf2", "the seed's printed costs go up and down"),
    ("transposed-convolution", "quotes the docstring of the Keras layer"),
    ("mnist-cnn", "123 s"),
    ("dense-vs-cnn", "76 s for `net1`"),
]


@pytest.mark.parametrize(
    "page, item, phrase", CORRECTIONS, ids=[f"{c[0]}: {c[1]}" for c in CORRECTIONS]
)
def test_correction_is_on_its_page(page, item, phrase):
    prose = prose_of(page)
    assert " ".join(phrase.split()) in prose, f"book/{page}.md lacks the correction '{item}'"


@pytest.mark.parametrize("page, sentence", RETRACTED, ids=[r[1] for r in RETRACTED])
def test_corrected_sentence_is_gone(page, sentence):
    assert sentence not in prose_of(page), f"book/{page}.md still says {sentence!r}"


def test_optional_reading_note_opens_the_transposed_convolution_page():
    prose = prose_of("transposed-convolution")
    note, overview = prose.find("{admonition} Optional reading"), prose.find("## Overview")
    assert 0 <= note < overview, "the 'Optional reading' admonition must come before ## Overview"
