"""book/glossary.md: the page is built, holds the seeds' Korean terms, and links resolve to
pages."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.slow

TERMS = [
    "합성곱",
    "필터",
    "커널",
    "특성 맵",
    "피처 맵",
    "활성화 맵",
    "패딩",
    "스트라이드",
    "풀링",
    "최대 풀링",
    "평균 풀링",
    "채널",
    "편향",
    "가중치",
    "배치",
    "은닉층",
    "완전 연결층",
    "전결합층",
    "드롭아웃",
    "정확도",
    "손실",
    "초기화",
    "정규화",
    "규제",
    "원-핫 인코딩",
    "학습",
    "훈련",
    "평가",
    "서브샘플링",
    "전치 합성곱",
    "팽창 합성곱",
    "세션",
    "플레이스홀더",
]


@pytest.fixture(scope="module")
def html(book):
    path = book.html / "book" / "glossary.html"
    assert path.is_file(), "book/glossary.md was not built"
    return path.read_text()


@pytest.mark.parametrize("term", TERMS)
def test_korean_term_present(html, term):
    assert term in html, f"the glossary does not mention {term}"


def test_english_terms_present(html):
    for term in (
        "convolution",
        "feature map",
        "transposed convolution",
        "dilated",
        "regularizer",
        "normalisation",
    ):
        assert term in html


def test_links_point_to_built_pages(book, html):
    targets = set(re.findall(r'class="reference internal" href="([^"#]+)\.html#', html))
    assert {"conv2d-layer", "transposed-convolution", "feature-maps", "tf1-to-tf2"} <= targets, (
        targets
    )
    for target in targets:
        assert (book.html / "book" / f"{target}.html").is_file(), (
            f"glossary links to a missing page {target}"
        )


def test_intro_links_to_glossary(book):
    intro = (book.html / "book" / "intro.html").read_text()
    assert 'href="glossary.html' in intro
