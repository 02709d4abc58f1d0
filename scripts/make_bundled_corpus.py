"""Generate the bundled corpus: a rule-based translation between two made-up languages.

The task is built to make padding matter and to need attention:

* lengths are long-tailed (1 to 80+ tokens): a sentence is a chain of clauses whose count is
  geometric, so most batches are short and a few are long;
* the target reorders the source: verbs move to the end of their clause (SVO -> SOV),
  adjectives move behind their noun and negation becomes a verb suffix word, so a decoder must
  look back at the right source position, which a fixed-size encoder state cannot hold for long
  sentences.

Words are made from syllables with a seeded generator, so the same command always writes the
same files. Run from the repository root::

    python scripts/make_bundled_corpus.py --out data/bundled
"""

from __future__ import annotations

import argparse
import gzip
import random
from dataclasses import dataclass
from pathlib import Path

from seq2seq.files import atomic_write

SRC_SYLLABLES = ["ba", "ko", "ri", "mu", "te", "sa", "lo", "ni", "pe", "du", "ka", "vi", "zo", "ge"]
TGT_SYLLABLES = ["ha", "ul", "ek", "yo", "im", "as", "or", "eb", "un", "if", "aj", "oz", "ew", "ip"]
WORD_CLASSES = {"noun": 48, "adj": 24, "verb": 32, "det": 6, "prep": 8, "conj": 4, "interj": 6}
SPLITS = {"train": 30_000, "valid": 500, "test": 1_000}


@dataclass(frozen=True)
class Lexicon:
    """Source words per class and their target translations (one target word per source word)."""

    src: dict[str, list[str]]
    tgt: dict[str, str]
    negation: tuple[str, str]  # (source word before the verb, target word after the verb)


def make_words(rng: random.Random, syllables: list[str], count: int, taken: set[str]) -> list[str]:
    """Draws `count` distinct words of one to three syllables that are not in `taken`."""
    words = []
    while len(words) < count:
        word = "".join(rng.choice(syllables) for _ in range(rng.choice([1, 2, 2, 3])))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def make_lexicon(rng: random.Random) -> Lexicon:
    src_taken: set[str] = set()
    tgt_taken: set[str] = set()
    src, tgt = {}, {}
    for word_class, count in WORD_CLASSES.items():
        src[word_class] = make_words(rng, SRC_SYLLABLES, count, src_taken)
        for word, translation in zip(
            src[word_class], make_words(rng, TGT_SYLLABLES, count, tgt_taken), strict=True
        ):
            tgt[word] = translation
    negation = (
        make_words(rng, SRC_SYLLABLES, 1, src_taken)[0],
        make_words(rng, TGT_SYLLABLES, 1, tgt_taken)[0],
    )
    return Lexicon(src, tgt, negation)


def geometric(rng: random.Random, p: float, cap: int) -> int:
    """Number of failures before the first success, capped: the source of the long tail."""
    n = 0
    while n < cap and rng.random() > p:
        n += 1
    return n


def noun_phrase(rng: random.Random, lex: Lexicon) -> tuple[list[str], list[str]]:
    """Source `det adj* noun`; target `det noun adj*` (adjectives follow the noun)."""
    det = [rng.choice(lex.src["det"])] if rng.random() < 0.7 else []
    adjs = [rng.choice(lex.src["adj"]) for _ in range(geometric(rng, 0.55, 3))]
    noun = rng.choice(lex.src["noun"])
    return det + adjs + [noun], det + [noun] + adjs


def clause(rng: random.Random, lex: Lexicon) -> tuple[list[str], list[str]]:
    """Source `S [neg] V [O] (prep NP)*` (SVO); target `S [O] (prep NP)* V [neg]` (SOV)."""
    src_subj, tgt_subj = noun_phrase(rng, lex)
    verb = rng.choice(lex.src["verb"])
    negated = rng.random() < 0.2
    src_rest, tgt_rest = [], []
    if rng.random() < 0.7:
        src_rest, tgt_rest = noun_phrase(rng, lex)
    for _ in range(geometric(rng, 0.6, 3)):
        prep = rng.choice(lex.src["prep"])
        src_np, tgt_np = noun_phrase(rng, lex)
        src_rest, tgt_rest = src_rest + [prep] + src_np, tgt_rest + [prep] + tgt_np
    neg_src, neg_tgt = ([lex.negation[0]], [lex.negation[1]]) if negated else ([], [])
    return src_subj + neg_src + [verb] + src_rest, tgt_subj + tgt_rest + [verb] + neg_tgt


def sentence(rng: random.Random, lex: Lexicon) -> tuple[str, str]:
    """One aligned pair: a lone interjection (length 1) or a chain of clauses joined by conjunctions."""
    if rng.random() < 0.04:
        src = [rng.choice(lex.src["interj"])]
        tgt = list(src)
    else:
        src, tgt = clause(rng, lex)
        for _ in range(geometric(rng, 0.5, 7)):
            conj = rng.choice(lex.src["conj"])
            more_src, more_tgt = clause(rng, lex)
            src, tgt = src + [conj] + more_src, tgt + [conj] + more_tgt
    translate = lex.tgt.get
    return " ".join(src), " ".join(translate(word, word) for word in tgt)


def write_gz(path: Path, lines: list[str]) -> None:
    """Writes atomically, with a fixed gzip mtime so that reruns give identical bytes."""
    with atomic_write(path) as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write("".join(line + "\n" for line in lines).encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("data/bundled"), help="output folder")
    parser.add_argument("--seed", type=int, default=13, help="seed of the lexicon and the sentences")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lex = make_lexicon(rng)
    args.out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()  # keep valid and test sentences out of train
    for split, size in reversed(SPLITS.items()):  # test and valid first, so train avoids them
        pairs: list[tuple[str, str]] = []
        while len(pairs) < size:
            src, tgt = sentence(rng, lex)
            if split == "train" and src in seen and len(src.split()) > 3:
                continue
            seen.add(src)
            pairs.append((src, tgt))
        write_gz(args.out / f"{split}.src.gz", [s for s, _ in pairs])
        write_gz(args.out / f"{split}.tgt.gz", [t for _, t in pairs])
        lengths = sorted(len(s.split()) for s, _ in pairs)
        print(
            f"{split}: {size} pairs, source words min {lengths[0]} median {lengths[size // 2]} max {lengths[-1]}"
        )


if __name__ == "__main__":
    main()
