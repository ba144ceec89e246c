"""The summary every engine produces: one pydantic model, the single source of the JSON schema."""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ActorKind(StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"
    GROUP = "group"
    COUNTRY = "country"
    OTHER = "other"


class KeyActor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The actor's fullest name as written in the article.")
    kind: ActorKind
    role: str = Field(description="Short role, e.g. 'leader of the resistance front'.")
    action: str = Field(description="What they did or said in this article.")
    evidence: str = Field(description="One sentence quoted verbatim from the article that shows it.")


class ArticleSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    headline: str = Field(max_length=90, description="Neutral rewritten headline.")
    summary: str = Field(description="2-4 sentences, at most 80 words, only facts from the article.")
    why_it_matters: str = Field(description="One sentence.")
    key_actors: list[KeyActor] = Field(description="3-7 actors (fewer only if the article has fewer).")
    topics: list[str] = Field(description="1-3 short topic labels.")
    flags: list[str] = Field(default_factory=list, description="Problems noticed; empty if none.")
