"""What a fine-tune minimises, as a typed setting: a protected set's sidecar names it
(`training`, written from the mitigation's options) and `tasksafe finetune` reads it back
through `TrainingObjective`, so a misspelt or unknown objective is an error, not plain SFT.

- `loss`: how the token losses are averaged: over all trained tokens of the batch
  (`per-token`, the usual) or per example first (`per-example`, so a short reply weighs as
  much as a long one);
- `constrained`: Qi et al.'s token-wise constrained objective (ICLR 2025, "Safety Alignment
  Should Be Made More Than Just a Few Tokens Deep", eq. 3) against the model the run starts
  from: each reply token t costs

      (2 / beta_t) * -log sigmoid(beta_t * (log p(y_t) - log p_aligned(y_t)))

  With a small beta_t it is the usual cross-entropy; with a large one its gradient fades once
  the token's probability has moved away from the aligned model's, so the first tokens of a
  reply (where refusing or complying is decided) stay close to the aligned model while later
  ones learn the task. Their schedule: beta 0.5 on a reply's first token, 2 on tokens 2-5, 0.1
  after. `kl` adds, as an ablation, a KL term to the aligned model at every reply token, or
  (`kl_tokens`) at each reply's first tokens only.

>>> TrainingObjective.model_validate({"loss": "per-example"}).constrained is None
True
>>> TokenConstraint().beta_schedule(7)
[0.5, 2.0, 2.0, 2.0, 2.0, 0.1, 0.1]
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tasksafe.settings import Settings


class TokenConstraint(Settings):
    """The token-wise constraint's strengths, by a token's position in its reply (1 = first)."""

    beta_first: float = Field(0.5, gt=0, le=100, description="beta of a reply's first token")
    beta_early: float = Field(2.0, gt=0, le=100, description="beta of the early tokens after the first")
    early_tokens: int = Field(5, ge=1, le=512, description="the last position that gets beta_early")
    beta_rest: float = Field(0.1, gt=0, le=100, description="beta of every later token")
    kl: float = Field(0.0, ge=0, le=100, description="weight of a KL term to the aligned model at every reply "
                                                      "token (0: none)")
    kl_tokens: int = Field(0, ge=0, le=512, description="the KL term only on each reply's first N tokens, where "
                                                        "refusing or complying is decided (0: on every token)")

    def beta_schedule(self, length: int) -> list[float]:
        """The beta of positions 1..length."""
        return [self.beta_first if t == 1 else self.beta_early if t <= self.early_tokens else self.beta_rest
                for t in range(1, length + 1)]


class TrainingObjective(Settings):
    """What `tasksafe finetune` minimises; the default is plain SFT (per-token mean)."""

    loss: Literal["per-token", "per-example"] = Field("per-token", description="average the token losses over the "
                                                                                 "batch's tokens, or per example first")
    constrained: TokenConstraint | None = Field(None, description="the token-wise constrained objective against "
                                                                  "the starting model (None: plain cross-entropy)")

    @property
    def plain(self) -> bool:
        return self.loss == "per-token" and self.constrained is None

    def to_sidecar(self) -> dict | None:
        """What a protected set's sidecar records (None: plain SFT, as sidecars without it read)."""
        if self.plain:
            return None
        return {**({"loss": self.loss} if self.loss != "per-token" else {}),
                **({"constrained": self.constrained.model_dump(mode="json")} if self.constrained else {})}
