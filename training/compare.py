"""The family comparison: every family over seeds by the protocol, its cost per window, the results table, and
reading it back."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from rtgenre.frontend import MelParams

from .augment import RECIPES
from .data import GENRES
from .evaluate import SLICE_SECONDS, Scores, plot_confusion, plot_curves
from .export import export_onnx, onnx_ms_per_window
from .protocol import Collection, cross_validate, valid_split
from .train import TrainConfig


def window_cost(family: str, params: MelParams, window_s: float) -> float:
    """Milliseconds per window of a family's graph in ONNX Runtime on one thread, batches of 32."""
    from .models import build

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.onnx"
        export_onnx(build(family, params.n_mels, len(GENRES)).eval(), path, params.frames(window_s), params.n_mels)
        return onnx_ms_per_window(path, params.frames(window_s), params.n_mels)


def budget_of(cfg: TrainConfig) -> dict:
    """What makes two runs of a family comparable: the same window, training budget and recipe."""
    keys = ("window_s", "epochs", "windows_per_epoch", "patience", "val_fraction")
    variant = {k: getattr(cfg, k) for k in ("level_norm", "distill") if getattr(cfg, k)}  # absent: as before them
    return json.loads(json.dumps({**{k: getattr(cfg, k) for k in keys}, "augment": asdict(cfg.augment), **variant}))


def recipe_text(cfg: TrainConfig) -> str:
    augment = next((k for k, v in RECIPES.items() if v == cfg.augment), "custom")
    stopping = (f"early stopping on {cfg.val_fraction:.0%} inner-validation tracks, patience {cfg.patience}"
                if cfg.val_fraction else "no early stopping (every training track, the last epoch kept)")  # fmt: skip
    variant = (", per-window level normalisation" if cfg.level_norm else "") + (
        f", {cfg.distill:.0%} of each target from a musicnn teacher's soft labels" if cfg.distill else ""
    )
    return (f"at most {cfg.epochs} epochs of {cfg.windows_per_epoch} windows, {stopping}, `{augment}` augmentation"
            f"{variant}")  # fmt: skip


def read_saved(folder: Path, budget: dict | None = None) -> dict:
    """An earlier compare output's results.json, refused unless it states its recipe, budget and families
    (and, given ``budget``, was run at it)."""
    try:
        saved = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{folder}: not a compare output ({e})") from None
    if missing := {"recipe", "budget", "families"} - set(saved if isinstance(saved, dict) else ()):
        raise ValueError(f"{folder}/results.json lacks {', '.join(sorted(missing))}: not a compare output")
    if budget is not None and saved["budget"] != budget:
        raise ValueError(f"{folder} was run at {saved['budget']}, not at {budget}")
    return saved


def saved_rows(saved: dict) -> dict:
    """results.json back into the rows ``write_results`` takes: runs made side by side merge into one table."""

    def scores(x: dict | None) -> Scores | None:
        return Scores(**x) if x else None

    return {f: {"ms_per_window": r["ms_per_window"],
                "runs": [{"seed": x["seed"], "wall_s": x["wall_s"], "scores": scores(x["cv"]),
                          "full": scores(x["cv_full_tracks"]), "valid": scores(x.get("valid"))} for x in r["runs"]]}
            for f, r in saved["families"].items()}  # fmt: skip


def results_table(folder: Path) -> tuple[dict, str]:
    """A compare output's results.json and its family table (Markdown)."""
    saved = read_saved(folder)
    try:
        lines = (folder / "RESULTS.md").read_text().splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("| family |"))
    except (OSError, StopIteration) as e:
        raise ValueError(f"{folder}: not a compare output ({e!r})") from None
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return saved, "\n".join(lines[first:end])


def folds_of_saved(saved: dict) -> str:
    """How a compare output grouped its folds; outputs from before artist folds were by track."""
    return saved.get("folds_by", "track")


def load_comparison(
    folders: tuple[Path, ...], cfg: TrainConfig, folds_by: str
) -> tuple[dict[str, Scores], list[tuple[str, str]], dict[int, float]]:
    """The cross-validation of ``cfg``'s family and seed from the first ``compare`` output run at the same
    budget and recipe, the CV track accuracy of every seed there, and every output's table under its recipe:
    ``train --comparison`` ships a model without running that CV a second time, with the tables in its card."""
    outputs = [results_table(folder) for folder in folders]
    tables = [(f"{saved['recipe']}; {folds_of_saved(saved)}-grouped folds", table) for saved, table in outputs]
    for saved, _ in outputs:
        family_runs = saved["families"].get(cfg.family, {}).get("runs", [])
        runs = [r for r in family_runs if r["seed"] == cfg.seed]
        if saved["budget"] == budget_of(cfg) and folds_of_saved(saved) == folds_by and runs:
            seeds = {r["seed"]: r["cv"]["track_acc"] for r in family_runs}
            return {k: Scores(**runs[0][k]) for k in ("cv", "cv_full_tracks", "valid") if runs[0].get(k)}, tables, seeds
    raise ValueError(
        f"none of {', '.join(map(str, folders))} was run at this recipe and {folds_by} folds with "
        f"{cfg.family} seed {cfg.seed}"
    )


def plot_best_confusion(family: str, runs: list[dict], out: Path) -> None:
    best = max(runs, key=lambda r: r["scores"].track_acc)
    plot_confusion(best["scores"].confusion, out / f"confusion_{family}.png", f"{family}, CV, seed {best['seed']}")


def write_results(
    out: Path, rows: dict, folds: int, folds_by: str, tracks: list, cfg: TrainConfig, note: str = ""
) -> None:
    def stat(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ({max(values):.3f})"

    head = "| family | " + " | ".join(f"{s:g} s slices" for s in SLICE_SECONDS)
    lines = [head + " | track acc | track macro-F1 | valid split track acc | ms / window | × real time | "
             "train time / seed | seeds |", "|---|" + "---|" * (len(SLICE_SECONDS) + 7)]  # fmt: skip
    for family, row in rows.items():
        runs = row["runs"]
        slices = [stat([r["scores"].slice_acc.get(f"{s:g}s", float("nan")) for r in runs]) for s in SLICE_SECONDS]
        realtime = 500 / row["ms_per_window"]  # one window per 0.5 s hop
        scored = [r["valid"].track_acc for r in runs if r.get("valid")]
        valid = stat(scored) if scored else "–"
        lines.append(f"| {family} | " + " | ".join(slices) + f" | {stat([r['scores'].track_acc for r in runs])} | "
                     f"{stat([r['scores'].macro_f1 for r in runs])} | {valid} | {row['ms_per_window']:.2f} | "
                     f"{realtime:.0f}× | "
                     f"{np.mean([r['wall_s'] for r in runs]) / 60:.1f} min | {len(runs)} |")  # fmt: skip
    per_genre = ["| genre | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for g in GENRES:
        cells = [f"{np.mean([r['scores'].per_genre_f1.get(g, float('nan')) for r in row['runs']]):.2f}"
                 for row in rows.values()]  # fmt: skip
        per_genre.append(f"| {g} | " + " | ".join(cells) + " |")
    n = len(tracks)
    seeds = " or ".join(sorted({str(len(r["runs"])) for r in rows.values()}, reverse=True))
    budget = recipe_text(cfg)
    grouped = ("grouped by artist (every track of an artist in one fold)" if folds_by == "artist"
               else "by track (artists straddle folds: these figures flatter the models on new music)")  # fmt: skip
    (out / "RESULTS.md").write_text(f"""# Model families on GTZAN ({folds_by}-grouped {folds}-fold cross-validation)

{n} tracks of the fault-filtered train + valid parts ({sum(t.kind == "clip" for t in tracks)} of them 2–3 s clips),
stratified {folds}-fold cross-validation {grouped}, {seeds} seed(s) per family (the seeds column);
training budget per run: {budget}. Cells are the mean over seeds
with the best seed in brackets. Slice accuracy scores non-overlapping slices of the 30 s tracks
with the model trained on 3 s windows; track accuracy averages a track's 3 s windows (1.5 s hop;
a clip is one looped window). The valid split column trains each seed on the train part and scores
the artist-disjoint valid part (where split lists exist; tables before the sixth session scored seed 0
only). ms / window is ONNX Runtime on one CPU thread in batches of 32; × real time is what one core
sustains at the runtime's 0.5 s hop. Train time is the sum of the epochs' times over all folds of one
seed ({cfg.threads} torch thread(s)).{chr(10) * 2 + note if note else ""}

{chr(10).join(lines)}

Per-genre track-level F1 (mean over seeds):

{chr(10).join(per_genre)}

Confusion matrices (best seed): `confusion_<family>.png`; training curves: `curves_<family>.png`.
""")
    families = {f: {"ms_per_window": r["ms_per_window"],
                    "runs": [{"seed": x["seed"], "wall_s": x["wall_s"], "cv": x["scores"].to_json(),
                              "cv_full_tracks": x["full"].to_json(),
                              "valid": x["valid"].to_json() if x.get("valid") else None} for x in r["runs"]]}
                for f, r in rows.items()}  # fmt: skip
    saved = {"folds": folds, "folds_by": folds_by, "budget": budget_of(cfg), "recipe": budget, "families": families}
    (out / "results.json").write_text(json.dumps(saved, indent=1))


def merge(
    out: Path, folders: tuple[Path, ...], families: list[str], folds: int, folds_by: str, tracks: list,
    cfg: TrainConfig, params: MelParams, note: str = "",
) -> None:  # fmt: skip
    """One table (and its plots) from compare outputs over disjoint families or seeds at the same recipe; a
    family's confusion matrix is its best seed's over all outputs, its curves those of the first output."""
    found: dict[str, tuple[Path, dict]] = {}
    for folder in folders:
        saved = read_saved(folder, budget_of(cfg))
        if (saved["folds"], folds_of_saved(saved)) != (folds, folds_by):
            got = f"{saved['folds']} {folds_of_saved(saved)}"
            raise ValueError(f"{folder} has {got} folds, not {folds} {folds_by} folds")
        for family, row in saved_rows(saved).items():
            if family not in found:
                found[family] = (folder, row)
                continue
            seeds = {r["seed"] for r in found[family][1]["runs"]}
            if seeds & {r["seed"] for r in row["runs"]}:
                raise ValueError(f"{family} has runs of the same seed in both {found[family][0]} and {folder}")
            found[family][1]["runs"] = sorted(found[family][1]["runs"] + row["runs"], key=lambda r: r["seed"])
    if missing := [f for f in families if f not in found]:
        raise ValueError(f"no results for {', '.join(missing)}")
    rows = {f: found[f][1] for f in families}
    for family in families:
        plot_best_confusion(family, rows[family]["runs"], out)
        curves = found[family][0] / f"curves_{family}.png"  # the histories stay in the checkpoints, not the json
        if curves.resolve() != (out / curves.name).resolve():
            shutil.copyfile(curves, out / curves.name)
    for family, row in rows.items():  # timed again, all in one quiet moment: runs side by side time each other
        row["ms_per_window"] = window_cost(family, params, cfg.window_s)
    write_results(out, rows, folds, folds_by, tracks, cfg, note)


def compare_families(c: Collection, base: TrainConfig, families: list[str], seeds: range, folds: int, folds_by: str,
                     checkpoints: Path | None, out: Path, note: str = "") -> None:  # fmt: skip
    """Every family over ``seeds`` by the protocol (CV and the valid split for each seed), into one table."""
    rows = {}
    for family in families:
        runs, curves = [], {}
        for seed in seeds:
            cfg = replace(base, family=family, seed=seed)
            scores, histories = cross_validate(c, cfg, folds, checkpoints, folds_by)
            # training time from the epochs' own clocks, which checkpoints keep: a resumed run reports it too
            wall = sum(epoch["seconds"] for history in histories.values() for epoch in history)
            run = {"seed": seed, "scores": scores["cv"], "full": scores["cv_full_tracks"], "wall_s": wall}
            if (valid := valid_split(c, cfg, checkpoints)) is not None:
                run["valid"] = valid[0]
            runs.append(run)
            curves.update({f"seed {seed} {k}": h for k, h in histories.items()})
        plot_best_confusion(family, runs, out)
        plot_curves(curves, out / f"curves_{family}.png")
        rows[family] = {"runs": runs, "ms_per_window": window_cost(family, c.params, base.window_s)}
        write_results(out, rows, folds, folds_by, c.tracks, cfg, note)
