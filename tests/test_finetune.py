"""The back end's training rules: the within-genre artist adversary and its guards."""

import numpy as np
import pytest
import torch

from training import finetune, musicnn


def test_the_artist_adversary_only_tells_artists_of_a_patchs_own_genre_apart():
    artists, labels = np.array([0, 0, 1, 2]), np.array([0, 0, 0, 1])  # artists 0 and 1 play genre 0, artist 2 genre 1
    adversary = finetune.ArtistAdversary(4, artists, labels, n_classes=2)
    assert adversary.allowed.tolist() == [[True, True, False], [False, False, True]]
    embedding = torch.randn(4, 4, requires_grad=True)
    idx, y = np.arange(4), torch.from_numpy(labels)
    loss = adversary.loss(embedding, idx, y)
    assert torch.isfinite(loss)
    # artist 2 is alone in its genre: nothing to tell apart, so its patch adds no loss
    alone = adversary.loss(embedding[3:], idx[3:], y[3:])
    assert alone.item() == pytest.approx(0.0, abs=1e-6)
    # the embedding gets the reversed gradient of what the adversary learns from
    loss.backward()
    reversed_grad = embedding.grad.clone()
    embedding.grad = None
    masked = adversary.linear(embedding).masked_fill(~adversary.allowed[y], float("-inf"))
    torch.nn.functional.cross_entropy(masked, adversary.artist_of[idx]).backward()
    torch.testing.assert_close(reversed_grad, -embedding.grad)


def test_the_adversary_needs_artists_and_does_not_mix():
    feats, labels = [np.zeros((2, 1506), np.float32)], [0]
    with pytest.raises(ValueError, match="needs each track's artist"):
        finetune.fit(musicnn.Musicnn(), feats, labels, finetune.FinetuneConfig(adversary=0.3))
    with pytest.raises(ValueError, match="one or the other"):
        finetune.fit(musicnn.Musicnn(), feats, labels, finetune.FinetuneConfig(adversary=0.3, mixup=0.4), groups=["a"])
