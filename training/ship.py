"""`rtgenre-train train`: one log-mel family judged by the protocol, trained on every track, shipped as a bundle."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .card import model_card
from .data import GENRES
from .evaluate import Scores, plot_confusion, plot_curves
from .export import write_bundle
from .protocol import EVAL_HOP_S, Collection, checkpoint_path, cross_validate, fit, log, valid_split
from .train import TrainConfig


@dataclass(frozen=True)
class ShipConfig:
    train: TrainConfig
    folds: int = 5  # 0: no cross-validation (or it comes from ``comparison``)
    folds_by: str = "artist"
    hop_s: float = 0.5  # the default runtime hop written to the bundle
    checkpoints: Path | None = None  # every epoch saved here; a rerun resumes the runs it finds


@dataclass(frozen=True)
class Comparison:
    """A compare run's figures standing in for this family's CV, and every given table for the card."""

    results: dict[str, Scores]
    tables: list[tuple[str, str]]
    seeds: dict[int, float]


def ship(c: Collection, cfg: ShipConfig, out: Path, comparison: Comparison | None = None) -> dict[str, Scores]:
    """CV (unless a comparison gives it), the valid split at every input level, the final model, the bundle."""
    t = cfg.train
    if cfg.checkpoints:
        cfg.checkpoints.mkdir(parents=True, exist_ok=True)
    histories: dict[str, list[dict]] = {}
    if comparison:
        results = dict(comparison.results)
    else:
        results, histories = cross_validate(c, t, cfg.folds, cfg.checkpoints, cfg.folds_by) if cfg.folds else ({}, {})
    levels: dict[str, float] = {}
    if (v := valid_split(c, t, cfg.checkpoints, by_level=True)) is not None:
        results.setdefault("valid", v[0])
        levels = v[1]
        log(f"valid split by input level: {levels}")
    log(f"{t.family}: final model on all tracks")
    model, history = fit(c, range(len(c.tracks)), t, checkpoint_path(cfg.checkpoints, t, "final"))
    histories["final (all tracks)"] = history
    extra = {
        "family": t.family,
        "training": {"config": asdict(t), "data": c.data, "eval_hop_seconds": EVAL_HOP_S, "folds_by": cfg.folds_by,
                     "epochs_run": len(history),
                     # the final model's epochs by their own clocks, which checkpoints keep: a resumed run says it too
                     "final_train_seconds": round(sum(e["seconds"] for e in history), 1)},
        "validation": {k: v.to_json() for k, v in results.items()},
        "valid_track_acc_by_input_level": levels,
    }  # fmt: skip
    tables, seeds = (comparison.tables, comparison.seeds) if comparison else ([], {})
    card = model_card(out.name, t.family, t, c.params, c.data, results, tables, seeds, cfg.folds_by, levels)
    write_bundle(out, model, out.name, GENRES, c.params, c.filterbank, t.window_s, cfg.hop_s, extra, card)
    plot_curves(histories, out / "learning_curve.png")
    if "cv" in results:
        plot_confusion(results["cv"].confusion, out / "confusion.png", f"{t.family}, cross-validation, seed {t.seed}")
    print(json.dumps({k: {"track_acc": v.track_acc, "macro_f1": v.macro_f1} for k, v in results.items()}))
    return results
