"""The paired audio + lyrics experiment on the tcc_ceds songs, written up as a Markdown report.

Every model sees the same stratified folds: audio alone (an MLP over the six Spotify audio
descriptors of the recording), lyrics alone (a head on the frozen MiniLM sentence embedding), and
the two fusion layers over both. The report says whether fusion helped, by how much, and in how
many folds (each model's per-fold scores go to ``fusion.json`` beside it); the plots show the
gate's trust in each modality per genre and which lyric tokens drive a lyrics-only prediction.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .fusion import CVResult, FitConfig, Fusion, MLPEncoder, Single, cross_validate, fit
from .lyrics import DESCRIPTORS, LyricEncoder, Song, TopLayers

FINETUNE_LAYERS = 2  # of MiniLM's 6: the top layers the fine-tuned variant trains
FINETUNE_EPOCHS = 4  # the pretrained layers move little; a few epochs at batch 16 suffice
FINETUNED = f"lyrics only (MiniLM, top {FINETUNE_LAYERS} layers fine-tuned)"


def run(songs: list[Song], encoder: LyricEncoder, cache: Path | None, folds: int, cfg: FitConfig) -> dict:
    genres = sorted({s.genre for s in songs})
    labels = np.array([genres.index(s.genre) for s in songs])
    desc = np.array([s.descriptors for s in songs], np.float32)
    desc = (desc - desc.mean(0)) / desc.std(0)
    emb = encoder.embed([s.lyrics for s in songs], cache)
    has = np.ones(len(songs), np.float32)
    d, e = desc.shape[1], emb.shape[1]
    results = {
        "audio only (descriptors)": cross_validate(
            "audio", lambda: Single(MLPEncoder(d), len(genres)), [desc], labels, genres, folds, cfg),
        "lyrics only (frozen MiniLM)": cross_validate(
            "lyrics", lambda: Single(MLPEncoder(e), len(genres)), [emb], labels, genres, folds, cfg),
        FINETUNED: cross_validate(
            "lyrics-ft", lambda: Single(TopLayers(encoder, FINETUNE_LAYERS), len(genres)),
            list(encoder.below([s.lyrics for s in songs], FINETUNE_LAYERS)), labels, genres, folds,
            replace(cfg, epochs=FINETUNE_EPOCHS, batch_size=16)),
        "fusion: concat + MLP": cross_validate(
            "concat", lambda: Fusion(MLPEncoder(d), e, len(genres), "concat"), [desc, emb, has], labels, genres,
            folds, cfg),
        "fusion: gated": cross_validate(
            "gated", lambda: Fusion(MLPEncoder(d), e, len(genres), "gated"), [desc, emb, has], labels, genres,
            folds, cfg),
        "fusion: gated, lyrics withheld at test": cross_validate(
            "gated-audio", lambda: AudioAtTest(Fusion(MLPEncoder(d), e, len(genres), "gated")),
            [desc, emb, has], labels, genres, folds, cfg),
    }  # fmt: skip
    return {"genres": genres, "results": results, "embeddings": emb, "labels": labels}


class AudioAtTest(torch.nn.Module):
    """Wraps a fusion model so evaluation hides the lyrics: does it still work on audio alone?"""

    def __init__(self, model: Fusion):
        super().__init__()
        self.model = model

    def forward(self, a: torch.Tensor, t: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
        return self.model(a, t, has if self.training else torch.zeros_like(has))


def tables(genres: list[str], results: dict[str, CVResult], folds: int) -> tuple[str, str, str]:
    """Markdown: the summary table, the verdict on fusion, and per-genre F1."""
    rows = ["| model | accuracy | macro-F1 |", "|---|---|---|"]
    for name, r in results.items():
        m, s, fm, fs = r.summary()
        rows.append(f"| {name} | {m:.3f} ± {s:.3f} | {fm:.3f} ± {fs:.3f} |")
    per = ["| genre | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for g in genres:
        per.append(f"| {g} | " + " | ".join(f"{np.mean(r.per_genre_f1[g]):.2f}" for r in results.values()) + " |")
    best_fusion = max(("fusion: concat + MLP", "fusion: gated"), key=lambda k: np.mean(results[k].acc))
    best_single = max((k for k in results if k.startswith(("audio only", "lyrics only"))),
                      key=lambda k: np.mean(results[k].acc))  # fmt: skip
    diff = np.array(results[best_fusion].acc) - np.array(results[best_single].acc)
    wins = int((diff > 0).sum())
    verdict = (
        f"**Fusion {'helped' if diff.mean() > 0 else 'did not help'}**: the better fusion layer ({best_fusion}) "
        f"scored {diff.mean():+.3f} accuracy against the better single modality ({best_single}), "
        f"{diff.mean() / max(np.mean(results[best_single].acc), 1e-9):+.1%} relative, winning {wins} of {folds} "
        f"folds (per-fold difference {diff.mean():+.3f} ± {diff.std():.3f})."
    )
    return "\n".join(rows), verdict, "\n".join(per)


def report(out: Path, run_: dict, folds: int, n: int) -> str:
    genres, results = run_["genres"], run_["results"]
    summary, verdict, per_genre = tables(genres, results, folds)
    frozen, tuned = results["lyrics only (frozen MiniLM)"].summary(), results[FINETUNED].summary()
    helped = "helped" if tuned[0] > frozen[0] else "did not help"
    finetuning = (f"Fine-tuning the top {FINETUNE_LAYERS} layers {helped} the lyrics-only model: accuracy "
                  f"{tuned[0]:.3f} against {frozen[0]:.3f} for the frozen encoder, macro-F1 {tuned[2]:.3f} against "
                  f"{frozen[2]:.3f}, on about {n * (folds - 1) // folds} training songs per fold.")  # fmt: skip
    text = f"""# Does audio + lyrics beat either alone?

Data: {n} songs of "Music Dataset: Lyrics and Metadata from 1950 to 2019" (Moura et al. 2020,
the shared `tcc_ceds_music_sample1000.csv`), each with its lyrics (pre-processed: lower-cased,
stop words removed, lemmatised) and six Spotify audio descriptors of the same recording
({", ".join(DESCRIPTORS)}): a real paired two-modality set. Seven genres: {", ".join(genres)}.

Protocol: stratified {folds}-fold cross-validation, the same folds for every model; mean ± std over
folds. Lyrics are encoded by all-MiniLM-L6-v2 (mean-pooled, normalised): frozen, and in the
fine-tuned variant with its top {FINETUNE_LAYERS} of 6 transformer layers trained together with the head
({FINETUNE_EPOCHS} epochs, batch 16, those layers at 1/20 of the head's learning rate; the layers below stay
frozen, which is what fine-tuning costs on a CPU). The fused models use the frozen embedding. The audio
encoder is an MLP over the standardised descriptors; heads and fusion layers are small MLPs with
class-weighted cross-entropy. The fused models drop the lyrics of 30 % of training songs and learn
an empty-lyrics embedding, so the last row evaluates the gated model with every test song's
lyrics withheld.

{summary}

{verdict}

{finetuning}

Per-genre F1 (mean over folds):

{per_genre}

`fusion_gates.png`: the gated model's weight on audio versus lyrics for the test songs of each
genre. `lyric_tokens.png`: the tokens that move a lyrics-only prediction most (gradient × input
through the encoder) for one song of each genre.

Caveats: 1000 songs, hip hop only 31; the descriptors are six numbers, a thin audio view compared
with a spectrogram; the lyrics are pre-processed, which removes some stylistic cues. GTZAN has no
lyrics, so the log-mel fusion model (`python -m training fusion-mel`, the same fusion module over
the CNN's embedding) has no paired data here to be measured on; it runs on a collection that has a
`lyrics.json`.
"""
    (out / "FUSION.md").write_text(text)
    scores = {name: {"acc": r.acc, "macro_f1": r.macro_f1} for name, r in results.items()}
    (out / "fusion.json").write_text(json.dumps({"folds": folds, "songs": n, "per_fold": scores}, indent=1))
    plot_gates(results["fusion: gated"], genres, out / "fusion_gates.png")
    return verdict


def plot_gates(r: CVResult, genres: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = np.concatenate(r.gates)
    audio = [g[g[:, 2] == i, 0].mean() for i in range(len(genres))]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(genres, audio, label="audio")
    ax.bar(genres, 1 - np.array(audio), bottom=audio, label="lyrics")
    ax.set(ylabel="mean gate weight", ylim=(0, 1), title="gated fusion: trust in each modality, by true genre")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tokens(encoder: LyricEncoder, songs: list[Song], run_: dict, cfg: FitConfig, path: Path) -> None:
    """Gradient × input of the token embeddings for a lyrics-only model trained on all songs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genres = run_["genres"]
    head = fit(Single(MLPEncoder(run_["embeddings"].shape[1]), len(genres)),
               [torch.as_tensor(run_["embeddings"])], torch.as_tensor(run_["labels"]), cfg)  # fmt: skip
    picks = [next(i for i, s in enumerate(songs) if s.genre == g) for g in genres]
    fig, axes = plt.subplots(1, len(picks), figsize=(3 * len(picks), 4))
    embeddings = encoder.model.get_input_embeddings()
    for ax, i in zip(axes, picks, strict=True):
        t = encoder.tokenize([songs[i].lyrics])
        x = embeddings(t["input_ids"]).detach().requires_grad_(True)
        hidden = encoder.model(inputs_embeds=x, attention_mask=t["attention_mask"]).last_hidden_state
        pooled = torch.nn.functional.normalize(hidden.mean(dim=1), dim=1)
        logit = head(pooled)[0, genres.index(songs[i].genre)]
        logit.backward()
        score = (x.grad * x).sum(-1)[0].detach().numpy()
        tokens = encoder.tokenizer.convert_ids_to_tokens(t["input_ids"][0])
        top = np.argsort(-np.abs(score))[:10][::-1]
        ax.barh([tokens[j] for j in top], score[top], color=["tab:red" if score[j] < 0 else "tab:blue" for j in top])
        ax.set_title(songs[i].genre, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("lyric tokens driving a lyrics-only prediction (gradient × input)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
