"""Newsdigest's state. The database is the source of truth; the broker only nudges.

Every model with a `status` declares its moves in one place, `TRANSITIONS` ({from: {to, ...}}), and
its docstring draws the same moves, one per line (tests/structure/test_transitions.py keeps the two equal).
Every status change goes through the model's guarded helper: `Model.transition(pk, ...)` for one row,
`Model.objects.filter(...).transition(...)` for many, `Model.row_transition(...)` for one row moved
again and again in a hot loop (compiled once). It refuses a move the model does not declare
and is one UPDATE ... WHERE status IN (from) whose row count says whether this worker won, so
redelivered tasks and double triggers are harmless.
"""

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.backends.utils import CursorWrapper
from django.db.models.functions import Lower
from django.utils.timezone import now


class UndeclaredTransition(ValueError):
    """A status move the model's TRANSITIONS does not allow: a bug in the caller, never a race."""


class StatusQuerySet(models.QuerySet):
    def transition(self, *, from_status: str | Iterable[str], to_status: str, **fields) -> int:
        """Move the rows of this queryset still in `from_status` to `to_status`; returns how many moved.

        0 means another worker got there first (or the row was never in that state). Every
        from -> to pair must be declared in the model's TRANSITIONS, else UndeclaredTransition
        is raised before the database is touched.
        """
        sources = [from_status] if isinstance(from_status, str) else list(from_status)
        self.model.check_transition(sources, to_status)
        return self.filter(status__in=sources).update(status=to_status, **fields)

    # Not copied to the manager: `Model.objects.transition(...)` would move every row of the table.
    transition.queryset_only = True


class StatusModel(models.Model):
    """A model whose `status` only moves along its declared TRANSITIONS (see the module docstring)."""

    TRANSITIONS: ClassVar[dict[str, set[str]]] = {}

    objects = StatusQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def check_transition(cls, sources: Iterable[str], target: str) -> None:
        undeclared = [source for source in sources if target not in cls.TRANSITIONS.get(source, ())]
        if undeclared:
            raise UndeclaredTransition(f"{cls.__name__}: {', '.join(undeclared)} -> {target} is not a declared "
                                       f"transition (see {cls.__name__}.TRANSITIONS)")

    @classmethod
    def transition(cls, pk: int, *, from_status: str | Iterable[str], to_status: str, **fields) -> int:
        """The one-row form of StatusQuerySet.transition: 1 if row `pk` moved, 0 if it was not in `from_status`."""
        return cls.objects.filter(pk=pk).transition(from_status=from_status, to_status=to_status, **fields)

    @classmethod
    def row_transition(cls, *, from_status: str | Iterable[str], to_status: str, match: Iterable[str] = (),
                       fields: Iterable[str] = (), fixed: Mapping[str, Any] | None = None) -> "RowTransition":
        """`transition(pk, ...)` compiled once: returns `move(pk, **values)` -> 1 if row `pk` moved, else 0.

        The same guarded UPDATE ... WHERE pk AND status IN (from) [AND each `match` column = its value],
        setting each of `fields`; the move is checked here, before any row is touched. `fixed` gives the
        values of some of those columns once (prepared here), `move` takes the others (and may be given an
        open `cursor` to run on). It exists for the
        send loop, whose per-message `sent` mark paid more for building the ORM query than for running it.
        """
        sources = [from_status] if isinstance(from_status, str) else list(from_status)
        cls.check_transition(sources, to_status)
        meta, quote = cls._meta, connection.ops.quote_name
        setting = [meta.get_field(name) for name in fields]
        matching = [meta.get_field(name) for name in match]
        fixed = dict(fixed or {})
        if unknown := fixed.keys() - {field.name for field in setting + matching}:
            raise TypeError(f"{cls.__name__}.row_transition: {sorted(unknown)} are neither set nor matched")

        status = meta.get_field("status")
        placeholders = ", ".join(["%s"] * len(sources))
        sql = (f"UPDATE {quote(meta.db_table)} SET {quote(status.column)} = %s"
               + "".join(f", {quote(field.column)} = %s" for field in setting)
               + f" WHERE {quote(meta.pk.column)} = %s AND {quote(status.column)} IN ({placeholders})"
               + "".join(f" AND {quote(field.column)} = %s" for field in matching))
        # The parameters in statement order, the fixed ones prepared here; a row fills in only its pk and the
        # variable values (each slot: its position, its field, whether the value is saved or compared).
        positions = ([(1 + i, field, True) for i, field in enumerate(setting)]
                     + [(2 + len(setting) + len(sources) + i, field, False) for i, field in enumerate(matching)])
        template: list[Any] = [to_status, *([None] * len(setting)), None, *sources, *([None] * len(matching))]
        slots = []
        for at, field, saved in positions:
            if field.name in fixed:
                template[at] = _prepare(field, fixed[field.name], saved=saved)
            else:
                slots.append((at, field, saved))
        return RowTransition(cls.__name__, sql, template, 1 + len(setting), slots)


def _prepare(field: models.Field, value: Any, *, saved: bool) -> Any:
    return field.get_db_prep_save(value, connection) if saved else field.get_db_prep_value(value, connection)


class RowTransition:
    """A compiled `StatusModel.row_transition`: `move(pk, **values)` runs it, `statement(pk, **values)` gives
    the SQL and parameters for a caller that sends them itself (the send loop's asynchronous `sent` marks)."""

    def __init__(self, model: str, sql: str, template: list[Any], pk_at: int,
                 slots: list[tuple[int, models.Field, bool]]):
        self.model, self.sql, self.template, self.pk_at, self.slots = model, sql, template, pk_at, slots
        self.needed = {field.name for _, field, _ in slots}

    def statement(self, pk: int, **values: Any) -> tuple[str, list[Any]]:
        if values.keys() != self.needed:
            raise TypeError(f"{self.model}.row_transition needs exactly {sorted(self.needed)}")
        params = self.template.copy()
        params[self.pk_at] = pk
        for at, field, saved in self.slots:
            params[at] = _prepare(field, values[field.name], saved=saved)
        return self.sql, params

    def __call__(self, pk: int, *, cursor: CursorWrapper | None = None, **values: Any) -> int:
        sql, params = self.statement(pk, **values)
        if cursor is not None:  # a caller's open cursor: a new one per statement cost as much as the UPDATE
            cursor.execute(sql, params)
            return cursor.rowcount
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount


def new_token() -> str:
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    """API tokens are stored as their SHA-256: a database leak does not hand out working keys.
    (Random 192-bit tokens need no slow hash: there is nothing to brute-force.)"""
    return hashlib.sha256(token.encode()).hexdigest()


def unusable_token_hash() -> str:
    """The default of a source's token: the hash of a key nobody was ever shown."""
    return hash_token(secrets.token_urlsafe(32))


class Source(models.Model):
    class Kind(models.TextChoices):
        FILE = "file"
        URL = "url"
        FEED = "feed"
        API = "api"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FILE)
    url = models.URLField(max_length=2000, blank=True)
    newsletter = models.ForeignKey("Newsletter", null=True, blank=True, on_delete=models.SET_NULL)
    # SHA-256 of the bearer token of POST /api/articles; the token itself is shown once (issue_api_token).
    api_token = models.CharField(max_length=64, default=unusable_token_hash, unique=True)
    weight = models.FloatField(default=1.0)
    etag = models.CharField(max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_interval_minutes = models.PositiveIntegerField(default=30)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return self.name

    def issue_api_token(self) -> str:
        """A new bearer token for this source (the old one stops working); returned once, stored hashed."""
        token = new_token()
        self.api_token = hash_token(token)
        Source.objects.filter(pk=self.pk).update(api_token=self.api_token)
        return token


class IngestRejection(models.Model):
    """Every input that did not become an article, with the reason, for admins to see."""

    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.CASCADE, related_name="rejections")
    target = models.CharField(max_length=2000, help_text="file, URL or feed entry that was refused")
    reason = models.TextField()
    created_at = models.DateTimeField(default=now, db_index=True)


class Story(models.Model):
    """A cluster of articles telling the same story; the digest shows it once."""

    created_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name_plural = "stories"


class Article(StatusModel):
    """One article as ingested; summarized again whenever its text changes.

    new, failed         --summarized (a failed one when an editor retries: summarize --article ID)--> summarized
    new, failed         --LLM failed (again)--> failed
    summarized, failed  --text changed on re-ingest--> new
    """

    class Status(models.TextChoices):
        NEW = "new"
        SUMMARIZED = "summarized"
        FAILED = "failed"

    TRANSITIONS = {
        Status.NEW: {Status.SUMMARIZED, Status.FAILED},
        Status.FAILED: {Status.SUMMARIZED, Status.FAILED, Status.NEW},
        Status.SUMMARIZED: {Status.NEW},
    }

    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL)
    story = models.ForeignKey(Story, null=True, blank=True, on_delete=models.SET_NULL, related_name="articles")
    url = models.URLField(max_length=2000, blank=True)
    canonical_url = models.URLField(max_length=2000, blank=True, db_index=True)
    guid = models.CharField(max_length=1000, blank=True, db_index=True)
    title = models.CharField(max_length=500)
    author = models.CharField(max_length=300, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    language = models.CharField(max_length=16, blank=True, help_text="ISO 639-1; detected at summarize time if blank")
    text = models.TextField()
    content_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NEW, db_index=True)
    last_error = models.TextField(blank=True)
    # LLM tokens spent on attempts that produced no summary (a failed article still costs money).
    failed_prompt_tokens = models.PositiveIntegerField(default=0)
    failed_completion_tokens = models.PositiveIntegerField(default=0)
    # MinHash signature (near-duplicate detection); its LSH buckets live in LshBucket.
    minhash = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.title

    def current_summary(self) -> "Summary | None":
        return self.summaries.filter(content_hash=self.content_hash).order_by("-created_at").first()


class LshBucket(models.Model):
    """One LSH band of one article's MinHash: articles sharing a (band, bucket) are candidates,
    so a new article is compared with a handful of others, not with all of them, in every process."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="lsh_buckets")
    band = models.PositiveSmallIntegerField()
    bucket = models.CharField(max_length=40)

    class Meta:
        indexes = [models.Index(fields=["band", "bucket"])]


class Summary(models.Model):
    """One engine's reading of one version of an article.

    Unique on (content_hash, engine, model, prompt_version): that tuple is the cache
    key, so re-running costs no tokens.
    """

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="summaries")
    content_hash = models.CharField(max_length=64)
    engine = models.CharField(max_length=20)
    model = models.CharField(max_length=100, blank=True)
    prompt_version = models.CharField(max_length=40, blank=True)
    headline = models.CharField(max_length=300, blank=True)
    summary = models.TextField()
    why_it_matters = models.TextField(blank=True)
    # [{name, kind, role, action, evidence}]
    key_actors = models.JSONField(default=list)
    topics = models.JSONField(default=list)
    flags = models.JSONField(default=list)
    trimmed = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    created_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name_plural = "summaries"
        constraints = [
            models.UniqueConstraint(
                fields=["content_hash", "engine", "model", "prompt_version"], name="summary_cache_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.engine}: {self.headline or self.article.title}"


def validate_language_code(code: str) -> None:
    import pycountry

    if code and pycountry.languages.get(alpha_2=code) is None:
        raise ValidationError(f"{code!r} is not an ISO 639-1 language code (e.g. en, fr, de)")


class SummaryLength(models.TextChoices):
    SHORT = "short", "short (1-2 sentences)"
    STANDARD = "standard", "standard (2-4 sentences)"
    LONG = "long", "long (4-6 sentences)"


class Newsletter(models.Model):
    class Cadence(models.TextChoices):
        DAILY = "daily"
        WEEKDAYS = "weekdays"
        WEEKLY = "weekly"
        CRON = "cron"
        MANUAL = "manual"

    class Approval(models.TextChoices):
        AUTO = "auto", "send automatically"
        EDITOR = "editor", "wait for an editor"

    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    from_email = models.EmailField(blank=True)
    reply_to = models.EmailField(blank=True)
    postal_address = models.CharField(max_length=300, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    cadence = models.CharField(max_length=10, choices=Cadence.choices, default=Cadence.DAILY)
    send_time = models.TimeField(default="07:00")
    weekday = models.PositiveSmallIntegerField(default=0, help_text="0 = Monday, for weekly cadence")
    cron = models.CharField(max_length=100, blank=True, help_text="minute hour day month weekday")
    approval = models.CharField(max_length=10, choices=Approval.choices, default=Approval.EDITOR)
    approval_deadline_minutes = models.PositiveIntegerField(
        default=120, help_text="in editor mode, how long a draft waits for approval")
    send_if_unapproved = models.BooleanField(
        default=False, help_text="at the deadline: send the unapproved draft (else skip it)")
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="newsletter")
    max_stories = models.PositiveSmallIntegerField(default=12)
    # accent colour, fonts, logo URL; see templates/email/digest.mjml
    theme = models.JSONField(default=dict, blank=True)
    public_archive = models.BooleanField(default=True)
    # Reader signals (worker/clicks.py): aggregate click counts through a signed redirect; off = bare links.
    click_tracking = models.BooleanField(
        default=True, help_text="count clicks per story through a signed redirect (off: links are mailed bare)")
    click_history = models.BooleanField(
        default=False, help_text="also keep which subscriber clicked what (off: aggregate counts only)")
    # The voice of its summaries (worker/voice.py); part of the summary cache key.
    summary_language = models.CharField(
        max_length=8, blank=True, validators=[validate_language_code],
        help_text="ISO 639-1 code (en, fr, de ...) the summaries are written in; blank = each article's own")
    summary_length = models.CharField(max_length=10, choices=SummaryLength.choices, default=SummaryLength.STANDARD)
    summary_tone = models.CharField(max_length=200, blank=True, help_text="e.g. 'plain and warm'; blank = neutral")
    summary_instructions = models.TextField(
        blank=True, max_length=2000, help_text="extra editorial instructions given to the model with every article")
    created_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return self.name

    @property
    def sender_name(self) -> str:
        return self.from_name or self.name

    @property
    def sender_email(self) -> str:
        from django.conf import settings

        return self.from_email or settings.DEFAULT_FROM_EMAIL


class Subscriber(StatusModel):
    """One address; bounced and complained are suppressed until an operator decides otherwise.

    pending, unsubscribed              --confirms a sign-up (pending also: a confirmed import)--> active
    pending, active, unsubscribed      --hard bounce, or soft bounces over the limit--> bounced
    pending, active, unsubscribed, bounced  --spam complaint--> complained
    bounced, complained                --an operator un-suppresses the address--> active
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        ACTIVE = "active"
        UNSUBSCRIBED = "unsubscribed"
        BOUNCED = "bounced"
        COMPLAINED = "complained"

    TRANSITIONS = {
        Status.PENDING: {Status.ACTIVE, Status.BOUNCED, Status.COMPLAINED},
        Status.UNSUBSCRIBED: {Status.ACTIVE, Status.BOUNCED, Status.COMPLAINED},
        Status.ACTIVE: {Status.BOUNCED, Status.COMPLAINED},
        Status.BOUNCED: {Status.COMPLAINED, Status.ACTIVE},
        Status.COMPLAINED: {Status.ACTIVE},
    }

    class Format(models.TextChoices):
        HTML = "html"
        TEXT = "text"

    email = models.EmailField(unique=True)
    # The address as matched on import and sign-up (case-insensitively), kept by the database itself so
    # every write path (bulk inserts included) fills it; its unique index makes a lookup one index probe.
    email_key = models.GeneratedField(expression=Lower("email"), output_field=models.CharField(max_length=254),
                                      db_persist=True, unique=True)
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    timezone = models.CharField(max_length=64, blank=True)
    format = models.CharField(max_length=4, choices=Format.choices, default=Format.HTML)
    send_time = models.TimeField(null=True, blank=True, help_text="preferred local send time")
    paused = models.BooleanField(default=False)
    soft_bounces = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=now)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.email


class Subscription(StatusModel):
    """One subscriber to one newsletter (double opt-in).

    unsubscribed     --signs up again (a new opt-in)--> pending
    pending          --confirms (or a confirmed import)--> active
    pending, active  --unsubscribes (link, mail, preferences page, ESP report)--> unsubscribed
    unsubscribed     --re-subscribes on the signed preferences page--> active
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        ACTIVE = "active"
        UNSUBSCRIBED = "unsubscribed"

    TRANSITIONS = {
        Status.UNSUBSCRIBED: {Status.PENDING, Status.ACTIVE},
        Status.PENDING: {Status.ACTIVE, Status.UNSUBSCRIBED},
        Status.ACTIVE: {Status.UNSUBSCRIBED},
    }

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="subscriptions")
    newsletter = models.ForeignKey(Newsletter, on_delete=models.CASCADE, related_name="subscriptions")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=now)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "newsletter"], name="one_subscription")
        ]


class Digest(StatusModel):
    """One issue of a newsletter, from draft to sent.

    draft                             --approve (an editor, or the deadline when unapproved ones go out)--> approved
    approved                          --send starts--> sending
    sending                           --its start could not be published, no delivery row yet--> approved
    sending                           --all rows final--> sent
    sending                           --pause (an operator; auto-pause on errors or bounce rates)--> paused
    paused                            --resume--> sending
    sent                              --an operator retries its failed deliveries--> sending
    draft, approved, sending, paused  --cancel (a draft also: its approval deadline passed)--> cancelled
    """

    class Status(models.TextChoices):
        DRAFT = "draft"
        APPROVED = "approved"
        SENDING = "sending"
        PAUSED = "paused"
        SENT = "sent"
        CANCELLED = "cancelled"

    TRANSITIONS = {
        Status.DRAFT: {Status.APPROVED, Status.CANCELLED},
        Status.APPROVED: {Status.SENDING, Status.CANCELLED},
        Status.SENDING: {Status.APPROVED, Status.SENT, Status.PAUSED, Status.CANCELLED},
        Status.PAUSED: {Status.SENDING, Status.CANCELLED},
        Status.SENT: {Status.SENDING},
    }

    newsletter = models.ForeignKey(Newsletter, on_delete=models.CASCADE, related_name="digests")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(default=now)
    subject = models.CharField(max_length=300)
    intro = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True)
    # The compiled email, rendered once per digest and personalised per recipient.
    html_template = models.TextField(blank=True)
    text_template = models.TextField(blank=True)
    rendered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    approval_deadline = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    pause_reason = models.TextField(blank=True)
    send_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.newsletter.slug} #{self.pk}: {self.subject}"


class DigestItem(models.Model):
    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="items")
    article = models.ForeignKey(Article, on_delete=models.PROTECT)
    summary = models.ForeignKey(Summary, null=True, on_delete=models.SET_NULL)
    position = models.PositiveIntegerField(default=0)
    # Editor overrides; blank/null means "use the summary".
    headline_override = models.CharField(max_length=300, blank=True)
    summary_override = models.TextField(blank=True)
    why_override = models.TextField(blank=True)
    actors_override = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [models.UniqueConstraint(fields=["digest", "article"], name="article_once_per_digest")]

    @property
    def headline(self) -> str:
        return self.headline_override or (self.summary and self.summary.headline) or self.article.title

    @property
    def summary_text(self) -> str:
        return self.summary_override or (self.summary.summary if self.summary else "")

    @property
    def why_it_matters(self) -> str:
        return self.why_override or (self.summary.why_it_matters if self.summary else "")

    @property
    def key_actors(self) -> list[dict]:
        if self.actors_override is not None:
            return self.actors_override
        return self.summary.key_actors if self.summary else []


class Regeneration(StatusModel):
    """An editor's "Regenerate summary" on one story, done by a worker (never in a web request).

    queued   --a worker starts--> running
    running  --summary stored--> done
    running  --LLM failed / not a draft any more--> failed
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    TRANSITIONS = {
        Status.QUEUED: {Status.RUNNING},
        Status.RUNNING: {Status.DONE, Status.FAILED},
    }

    item = models.ForeignKey(DigestItem, on_delete=models.CASCADE, related_name="regenerations")
    requested_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)
    finished_at = models.DateTimeField(null=True, blank=True)


class Delivery(StatusModel):
    """One digest to one subscriber, at most once.

    queued   --claim--> sending
    sending  --SMTP 250--> sent
    sending  --5xx / attempts exhausted (a lost worker's row at the cap: the sweeper)--> failed
    sending  --unsubscribed / paused meanwhile--> skipped
    sending  --4xx, given back untried, or lease expired (sweeper)--> queued
    queued   --digest cancelled--> skipped
    queued   --attempt cap reached (sweeper)--> failed
    failed   --an operator retries the failed rows--> queued
    sent     --bounce report--> bounced

    A row found `sending` with an expired lease may have been accepted by the server
    just before a crash: the sweeper counts it as a possible duplicate when it re-sends.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        SKIPPED = "skipped"
        BOUNCED = "bounced"

    TRANSITIONS = {
        Status.QUEUED: {Status.SENDING, Status.SKIPPED, Status.FAILED},
        Status.SENDING: {Status.SENT, Status.FAILED, Status.SKIPPED, Status.QUEUED},
        Status.FAILED: {Status.QUEUED},
        Status.SENT: {Status.BOUNCED},
    }

    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="deliveries")
    # Indexed with lease_until and with attempts (Meta): the sweeper's questions, at any list size.
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    message_id = models.CharField(max_length=300, blank=True)
    last_error = models.TextField(blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    possible_duplicate = models.BooleanField(default=False)
    # Held until the subscriber's local send time.
    not_before = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["digest", "subscriber"], name="one_delivery_per_subscriber")
        ]
        indexes = [models.Index(fields=["digest", "status"]),
                   models.Index(fields=["status", "lease_until"], name="delivery_status_lease"),
                   models.Index(fields=["status", "attempts"], name="delivery_status_attempts")]


class SuppressionEvent(models.Model):
    """A bounce, complaint or unsubscribe as reported by an ESP webhook, a DSN or a person."""

    class Kind(models.TextChoices):
        HARD_BOUNCE = "hard_bounce"
        SOFT_BOUNCE = "soft_bounce"
        # The receiver refused the sender (spam block, blocklist, DMARC): never suppresses, counts
        # towards the digest's auto-pause.
        POLICY_BOUNCE = "policy"
        COMPLAINT = "complaint"
        UNSUBSCRIBE = "unsubscribe"

    subscriber = models.ForeignKey(Subscriber, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="suppression_events")
    email = models.EmailField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    # The server's words (or the ESP's), and the enhanced status code when there is one.
    detail = models.TextField(blank=True)
    status = models.CharField(max_length=20, blank=True)
    message_id = models.CharField(max_length=300, blank=True)
    # The message this event is about (bounces and complaints are only acted on when known).
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="suppression_events")
    digest = models.ForeignKey(Digest, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="suppression_events")
    created_at = models.DateTimeField(default=now, db_index=True)


class AuditEntry(models.Model):
    """Who changed what, when: every editor and ops action on a digest."""

    digest = models.ForeignKey(Digest, null=True, blank=True, on_delete=models.CASCADE, related_name="audit")
    user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=50)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "audit entries"


class ApiToken(models.Model):
    """A key for the ops JSON API (Authorization: Token <key>), issued by `newsdigest ops token USER`.

    Only its SHA-256 is stored. It stops working when it expires, when it is revoked, when the user is
    deactivated or loses the ops role, and when the user's password changes (the password's session
    hash at issue time is kept and compared).
    """

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    password_marker = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token {self.pk} of {self.user}"


class ClickCount(models.Model):
    """Aggregate clicks on one mailed link of one digest item: readers, and the hits filtered out as
    scanners. Written only by `clicks.flush`, never on the redirect's request path."""

    item = models.ForeignKey(DigestItem, on_delete=models.CASCADE, related_name="click_counts")
    url = models.URLField(max_length=2000)
    clicks = models.PositiveIntegerField(default=0)
    filtered = models.PositiveIntegerField(default=0, help_text="hits judged to be link scanners, not readers")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "url"], name="one_click_count_per_link")]


class ReaderClick(models.Model):
    """Who clicked what: kept only for newsletters with `click_history` on; deleted with the subscriber."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="clicks")
    item = models.ForeignKey(DigestItem, on_delete=models.CASCADE, related_name="reader_clicks")
    url = models.URLField(max_length=2000)
    created_at = models.DateTimeField(default=now, db_index=True)


class PendingClick(models.Model):
    """The click buffer of the embedded default (no Redis): one INSERT per hit, drained by `clicks.flush`."""

    event = models.JSONField()


class StoryRank(models.Model):
    """Why a story got its place: the ranking's terms when the digest was built, for the desk."""

    item = models.OneToOneField(DigestItem, on_delete=models.CASCADE, related_name="rank")
    score = models.FloatField()
    detail = models.JSONField(default=dict)
