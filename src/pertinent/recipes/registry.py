"""The recipes that can be trained, by Personalize recipe name.

The control plane looks a recipe up here at CreateSolution (to validate its
hyperparameters) and the training job at CreateSolutionVersion.
"""

from __future__ import annotations

from pertinent.recipes.base import Recipe
from pertinent.recipes.hrnn import Hrnn, HrnnColdstart, HrnnMetadata
from pertinent.recipes.popularity import PopularityCount
from pertinent.recipes.sims import Sims
from pertinent.recipes.trending import TrendingNow
from pertinent.recipes.user_personalization import (
    PersonalizedRanking,
    PersonalizedRankingV2,
    UserPersonalization,
    UserPersonalizationV2,
)

__all__ = ["TRAINABLE", "get_recipe"]

TRAINABLE: dict[str, type[Recipe]] = {
    recipe.name: recipe
    for recipe in (
        PopularityCount,
        Sims,
        TrendingNow,
        UserPersonalization,
        UserPersonalizationV2,
        PersonalizedRanking,
        PersonalizedRankingV2,
        Hrnn,
        HrnnMetadata,
        HrnnColdstart,
    )
}
"""Every recipe this build can train, keyed by its name (e.g. ``"aws-sims"``)."""


def get_recipe(name: str) -> type[Recipe]:
    """The recipe class called ``name``; KeyError when no trainable recipe has that name."""
    try:
        return TRAINABLE[name]
    except KeyError:
        known = ", ".join(sorted(TRAINABLE))
        raise KeyError(f"No trainable recipe named {name!r}. Trainable recipes: {known}.") from None
