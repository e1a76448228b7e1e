"""Built-in recipes, algorithms and feature transformations (spec §8.1, §9).

Every recipe Personalize lists is listed here, trainable or not, so ListRecipes looks
the same as on AWS; CreateSolution refuses the ones this version cannot train yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pertinent.errors import InvalidInputException, ResourceNotFoundException
from pertinent.recipes.registry import TRAINABLE
from pertinent.resources._common import Context, decode_token, encode_token, operation

# Built-ins carry a fixed date, as on AWS where they predate every account.
BUILTIN_TIME = 1546300800.0  # 2019-01-01
BUILTIN_PREFIX = "arn:aws:personalize:::"


@dataclass(frozen=True)
class RecipeInfo:
    name: str
    recipe_type: str
    description: str
    algorithm: str
    feature_transformation: str | None = None
    domain: str | None = None

    @property
    def arn(self) -> str:
        return f"{BUILTIN_PREFIX}recipe/{self.name}"

    @property
    def algorithm_arn(self) -> str:
        return f"{BUILTIN_PREFIX}algorithm/{self.algorithm}"

    @property
    def trainable(self) -> bool:
        return self.name in TRAINABLE


_CUSTOM = [
    RecipeInfo(
        "aws-user-personalization-v2",
        "USER_PERSONALIZATION",
        "Transformer-based user personalization for large catalogues.",
        "aws-user-personalization-v2",
    ),
    RecipeInfo(
        "aws-user-personalization",
        "USER_PERSONALIZATION",
        "Predicts the items a user will interact with, exploring new and cold items.",
        "aws-user-personalization",
    ),
    RecipeInfo(
        "aws-personalized-ranking-v2",
        "PERSONALIZED_RANKING",
        "Transformer-based reranking of a list of items for a user.",
        "aws-personalized-ranking-v2",
    ),
    RecipeInfo(
        "aws-personalized-ranking",
        "PERSONALIZED_RANKING",
        "Reranks a list of items for a user.",
        "aws-personalized-ranking",
        "JSON-percentile-filtering",
    ),
    RecipeInfo(
        "aws-popularity-count",
        "POPULAR_ITEMS",
        "The items with the most interactions from unique users.",
        "aws-popularity-count",
        "sims",
    ),
    RecipeInfo(
        "aws-trending-now",
        "POPULAR_ITEMS",
        "The items whose interactions grow fastest.",
        "aws-trending-now-custom",
    ),
    RecipeInfo(
        "aws-sims",
        "RELATED_ITEMS",
        "Items that co-occur with an item in user histories.",
        "aws-sims",
        "sims",
    ),
    RecipeInfo(
        "aws-similar-items",
        "RELATED_ITEMS",
        "Similar items from co-occurrence and item metadata.",
        "aws-similar-items",
    ),
    RecipeInfo(
        "aws-semantic-similarity",
        "RELATED_ITEMS",
        "Similar items from the meaning of their text.",
        "aws-semantic-similarity",
        "aws-semantic-similarity",
    ),
    RecipeInfo(
        "aws-next-best-action",
        "PERSONALIZED_ACTIONS",
        "The actions a user is most likely to take.",
        "aws-next-best-action",
    ),
    RecipeInfo(
        "aws-item-affinity",
        "USER_SEGMENTATION",
        "Segments of users most likely to interact with each item.",
        "aws-item-affinity",
        "item-affinity",
    ),
    RecipeInfo(
        "aws-item-attribute-affinity",
        "USER_SEGMENTATION",
        "Segments of users most likely to interact with items of given attributes.",
        "aws-item-attribute-affinity",
        "item-attribute-affinity",
    ),
    RecipeInfo(
        "aws-hrnn",
        "USER_PERSONALIZATION",
        "Legacy hierarchical recurrent network over user sessions.",
        "aws-hrnn",
        "JSON-percentile-filtering",
    ),
    RecipeInfo(
        "aws-hrnn-metadata",
        "USER_PERSONALIZATION",
        "Legacy HRNN with user, item and context features.",
        "aws-hrnn-metadata",
        "featurize_metadata",
    ),
    RecipeInfo(
        "aws-hrnn-coldstart",
        "USER_PERSONALIZATION",
        "Legacy HRNN with metadata and exploration of cold items.",
        "aws-hrnn-coldstart",
        "featurize_coldstart",
    ),
]


def _domain(name: str, domain: str, recipe_type: str, description: str) -> RecipeInfo:
    return RecipeInfo(name, recipe_type, description, name, None, domain)


_DOMAIN = [
    _domain("aws-ecomm-popular-items-by-views", "ECOMMERCE", "POPULAR_ITEMS", "Most viewed items."),
    _domain("aws-ecomm-popular-items-by-purchases", "ECOMMERCE", "POPULAR_ITEMS", "Best sellers."),
    _domain(
        "aws-ecomm-frequently-bought-together",
        "ECOMMERCE",
        "RELATED_ITEMS",
        "Items frequently bought together.",
    ),
    _domain(
        "aws-ecomm-customers-who-viewed-x-also-viewed",
        "ECOMMERCE",
        "RELATED_ITEMS",
        "Customers who viewed X also viewed.",
    ),
    _domain(
        "aws-ecomm-recommended-for-you",
        "ECOMMERCE",
        "USER_PERSONALIZATION",
        "Recommended for you.",
    ),
    _domain(
        "aws-vod-because-you-watched-x",
        "VIDEO_ON_DEMAND",
        "RELATED_ITEMS",
        "Because you watched X.",
    ),
    _domain("aws-vod-more-like-x", "VIDEO_ON_DEMAND", "RELATED_ITEMS", "More like X."),
    _domain("aws-vod-most-popular", "VIDEO_ON_DEMAND", "POPULAR_ITEMS", "Most popular."),
    _domain("aws-vod-trending-now", "VIDEO_ON_DEMAND", "POPULAR_ITEMS", "Trending now."),
    _domain("aws-vod-top-picks", "VIDEO_ON_DEMAND", "USER_PERSONALIZATION", "Top picks for you."),
]

RECIPES: dict[str, RecipeInfo] = {r.arn: r for r in _CUSTOM + _DOMAIN}

# Recipes whose campaigns explore cold items through itemExplorationConfig (spec §4.12).
EXPLORING_RECIPES = frozenset({"aws-user-personalization", "aws-hrnn-coldstart"})
# Recipes whose campaigns return metadata without enableMetadataWithRecommendations.
AUTO_METADATA = frozenset(
    {"aws-user-personalization-v2", "aws-personalized-ranking-v2", "aws-semantic-similarity"}
)


def recipe_by_arn(arn: str) -> RecipeInfo:
    try:
        return RECIPES[arn]
    except KeyError:
        raise ResourceNotFoundException(f"Could not find the recipe {arn}.") from None


def trainable_recipe(arn: str) -> RecipeInfo:
    """The recipe at ``arn`` if solutions can use it, else InvalidInputException."""
    info = RECIPES.get(arn)
    if info is None:
        raise InvalidInputException(
            f"Could not find the recipe {arn}. ListRecipes gives the available recipe ARNs."
        )
    if info.domain is not None:
        raise InvalidInputException(
            f"The recipe {arn} is a {info.domain} domain use case: use it with "
            "CreateRecommender, not CreateSolution."
        )
    if not info.trainable:
        ready = ", ".join(sorted(r.arn for r in RECIPES.values() if r.trainable))
        raise InvalidInputException(
            f"The recipe {info.name} is not trainable yet in this version of Pertinent. "
            f"Trainable recipes: {ready}."
        )
    return info


def _summary(r: RecipeInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": r.name,
        "recipeArn": r.arn,
        "status": "ACTIVE",
        "creationDateTime": BUILTIN_TIME,
        "lastUpdatedDateTime": BUILTIN_TIME,
    }
    if r.domain:
        out["domain"] = r.domain
    return out


@operation("ListRecipes")
def list_recipes(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    domain = req.get("domain")
    chosen = [r for r in RECIPES.values() if domain is None or r.domain == domain]
    limit = int(req.get("maxResults") or 100)
    start = 0
    after = decode_token(req.get("nextToken"), "recipe")
    if after is not None:
        arns = [r.arn for r in chosen]
        start = arns.index(after[1]) + 1 if after[1] in arns else len(arns)
    page = chosen[start : start + limit]
    out: dict[str, Any] = {"recipes": [_summary(r) for r in page]}
    if start + limit < len(chosen):
        out["nextToken"] = encode_token("recipe", 0.0, page[-1].arn)
    return out


@operation("DescribeRecipe")
def describe_recipe(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    r = recipe_by_arn(req["recipeArn"])
    recipe: dict[str, Any] = {
        "name": r.name,
        "recipeArn": r.arn,
        "algorithmArn": r.algorithm_arn,
        "status": "ACTIVE",
        "description": r.description,
        "creationDateTime": BUILTIN_TIME,
        "lastUpdatedDateTime": BUILTIN_TIME,
        "recipeType": r.recipe_type,
    }
    if r.feature_transformation:
        recipe["featureTransformationArn"] = (
            f"{BUILTIN_PREFIX}feature-transformation/{r.feature_transformation}"
        )
    return {"recipe": recipe}


@operation("DescribeAlgorithm")
def describe_algorithm(ctx: Context, req: dict[str, Any]) -> dict[str, Any]:
    arn = req["algorithmArn"]
    match = [r for r in RECIPES.values() if r.algorithm_arn == arn]
    if not match:
        raise ResourceNotFoundException(f"Could not find the algorithm {arn}.")
    r = match[0]
    algorithm: dict[str, Any] = {
        "name": r.algorithm,
        "algorithmArn": arn,
        "algorithmImage": {"name": r.algorithm, "dockerURI": f"pertinent/{r.algorithm}"},
        "trainingInputMode": "File",
        "creationDateTime": BUILTIN_TIME,
        "lastUpdatedDateTime": BUILTIN_TIME,
    }
    if r.trainable:
        defaults = TRAINABLE[r.name].Params()
        algorithm["defaultHyperParameters"] = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in defaults.model_dump().items()
        }
    return {"algorithm": algorithm}
