"""`rtgenre-train fit` as a user would run it: 12 training tracks of each of 4 genres under labels of
their own, on one pinned core from an empty cache, then the bundle's accuracy on unseen tracks.

The tree takes the train split's tracks of blues, classical, jazz and pop (the genres complete in the
shared copy) round-robin over their artists, relabelled delta, orchestral, swing and chart, with a
groups file of their artists. The bundle is then scored, through the library API (the path of
`rtgenre classify`), on every valid-split track of those genres: artist-disjoint from training.

    python bench/fit.py [--data ../shared/data] [--tracks 12] [--folds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELS = {"blues": "delta", "classical": "orchestral", "jazz": "swing", "pop": "chart"}


def split_of(gtzan: Path, split: str) -> set[str]:
    return {
        Path(line).with_suffix("").as_posix() for line in (gtzan / f"splits/{split}_filtered.txt").read_text().split()
    }


def make_tree(gtzan: Path, out: Path, per_label: int) -> Path:
    """Symlinks of ``per_label`` train tracks of each genre (round-robin over artists) and their groups file."""
    train = split_of(gtzan, "train")
    artists = dict(line.split("\t") for line in (gtzan / "splits/artists.tsv").read_text().splitlines()[1:])
    rows = ["file\tartist"]
    for genre, label in LABELS.items():
        by_artist = defaultdict(list)
        for p in sorted((gtzan / genre).glob("*.ogg")):
            if f"{genre}/{p.stem}" in train:
                by_artist[artists[f"{genre}/{p.name}"]].append(p)
        picked: list[Path] = []
        while len(picked) < per_label and any(by_artist.values()):
            picked += [by_artist[a].pop(0) for a in sorted(by_artist) if by_artist[a]][: per_label - len(picked)]
        (out / label).mkdir(parents=True)
        for p in picked:
            (out / label / p.name).symlink_to(p)
            rows.append(f"{label}/{p.name}\t{artists[f'{genre}/{p.name}']}")
    (out.parent / "groups.tsv").write_text("\n".join(rows) + "\n")
    return out.parent / "groups.tsv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--tracks", type=int, default=12, help="training tracks per label")
    ap.add_argument("--folds", type=int, default=4, help="CV folds (blues has 4 artists in the train split)")
    ap.add_argument("--core", type=int, default=sorted(os.sched_getaffinity(0))[-1])
    args = ap.parse_args()
    gtzan = args.data / "gtzan"
    wheel = sorted((ROOT / ".musicnn").glob("musicnn-0.1.0-*.whl"))
    with tempfile.TemporaryDirectory() as d:
        tree = Path(d) / "tree"
        groups = make_tree(gtzan, tree, args.tracks)
        cmd = ["taskset", "-c", str(args.core), sys.executable, "-m", "training", "fit", str(tree), "--groups",
               str(groups), "--out", f"{d}/bundle", "--folds", str(args.folds), "--cache", f"{d}/cache"]  # fmt: skip
        cmd += ["--wheel", str(wheel[0])] if wheel else []
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        fitted = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        wall = time.perf_counter() - t0
        if fitted.returncode:
            sys.exit(f"fit failed: {fitted.stderr.strip().splitlines()[-1]}")
        summary = json.loads(fitted.stdout.strip().splitlines()[-1])

        import rtgenre

        model = rtgenre.load_model(f"{d}/bundle")
        valid = sorted(split_of(gtzan, "valid"))
        hits: dict[str, list[bool]] = defaultdict(list)
        for key in valid:
            genre = key.split("/")[0]
            if genre in LABELS:
                hits[LABELS[genre]].append(model.classify(gtzan / f"{key}.ogg").genre == LABELS[genre])
    total = [h for v in hits.values() for h in v]
    print(f"fit of {summary['files']} files ({args.tracks} per label), one core, empty cache: {wall:.1f} s wall")
    print(f"CV ({args.folds} folds grouped by artist): file accuracy {summary['cv_track_acc']:.3f}, "
          f"macro-F1 {summary['cv_macro_f1']:.3f}, recall {summary['cv_recall']}")  # fmt: skip
    print(
        f"valid split (unseen artists): {sum(total)}/{len(total)} = {sum(total) / len(total):.3f}; "
        + ", ".join(f"{label} {sum(h)}/{len(h)}" for label, h in hits.items())
    )


if __name__ == "__main__":
    main()
