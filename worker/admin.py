"""The Django admin: a window on the data, never a way around the pipeline.

Every status field is read-only here. A digest changes state only through the stage functions
(schedule.approve, ops.send/pause/resume/cancel/retry_failed), run as admin actions with the same
permissions the desk and ops console check, and each leaves an audit entry. Only a draft's text can be
edited (as on the desk); what was approved or mailed is immutable. Subscribers and subscriptions
cannot be (re)activated or un-suppressed here: that needs the subscriber's own confirmation.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import audit, deliver, ops, schedule
from .models import (
    ApiToken,
    Article,
    AuditEntry,
    ClickCount,
    Delivery,
    Digest,
    DigestItem,
    IngestRejection,
    LshBucket,
    Newsletter,
    PendingClick,
    ReaderClick,
    Regeneration,
    Source,
    Story,
    StoryRank,
    Subscriber,
    Subscription,
    Summary,
    SuppressionEvent,
)

APPROVAL_FIELDS = ("approval", "send_if_unapproved", "approval_deadline_minutes")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the pipeline (events, rejections, audit): to be read, not forged or erased."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "url", "newsletter", "active", "error_count", "last_error", "last_polled_at",
                    "next_poll_at"]
    list_filter = ["kind", "newsletter", "active"]
    search_fields = ["name", "url"]
    exclude = ["api_token"]  # only its hash is stored; the action below issues a token and shows it once
    readonly_fields = ["etag", "last_modified", "error_count", "last_error", "last_polled_at"]
    actions = ["issue_api_tokens"]

    @admin.action(description="Issue a new API token (shown once; the old one stops working)",
                  permissions=["change"])
    def issue_api_tokens(self, request, queryset):
        for source in queryset:
            self.message_user(request, f"{source.name}: Authorization: Bearer {source.issue_api_token()} "
                                       "(copy it now: it is not stored and will not be shown again)")


@admin.register(IngestRejection)
class IngestRejectionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "source", "target", "reason"]
    list_filter = ["source"]
    search_fields = ["target", "reason"]
    date_hierarchy = "created_at"


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "source", "status", "published_at", "created_at"]
    list_filter = ["status", "source"]
    search_fields = ["title", "url", "text"]
    exclude = ["minhash"]
    readonly_fields = ["status", "content_hash", "last_error", "story", "created_at"]


@admin.register(Summary)
class SummaryAdmin(ReadOnlyAdmin):
    """Engine output; editors override it per digest on the desk, where the change is audited."""

    list_display = ["article", "engine", "model", "prompt_version", "prompt_tokens", "completion_tokens", "created_at"]
    list_filter = ["engine", "model", "prompt_version"]


@admin.register(Newsletter)
class NewsletterAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "cadence", "send_time", "timezone", "approval", "periodic_task"]
    list_filter = ["cadence", "approval", "timezone", "public_archive"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["sync_schedules"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        # Sending without an editor's approval is an editor-in-chief/admin decision, not ops'.
        fields = ["periodic_task"]
        return fields if request.user.has_perm(ops.SET_APPROVAL) else [*fields, *APPROVAL_FIELDS]

    def save_model(self, request, obj, form, change):
        """Saving a newsletter rewrites its celery beat schedule (see worker/schedule.py)."""
        changed = [f for f in APPROVAL_FIELDS if form is not None and f in form.changed_data]
        super().save_model(request, obj, form, change)
        if changed:
            audit.record(None, request.user, "changed approval mode", newsletter=obj.slug,
                         **{f: str(getattr(obj, f)) for f in changed})
        try:
            schedule.sync_schedule(obj)
        except schedule.ScheduleError as exc:
            self.message_user(request, f"saved, but not scheduled: {exc}", messages.ERROR)

    @admin.action(description="Rewrite the beat schedule of the selected newsletters")
    def sync_schedules(self, request, queryset):
        for newsletter in queryset:
            try:
                schedule.sync_schedule(newsletter)
            except schedule.ScheduleError as exc:
                self.message_user(request, str(exc), messages.ERROR)


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "name", "status", "format", "created_at"]
    list_filter = ["status", "format"]
    search_fields = ["email", "name"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        # The address is what was confirmed: changing it would mail someone who never opted in.
        fields = ["status", "soft_bounces", "created_at", "confirmed_at"]
        return fields if obj is None else ["email", *fields]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["subscriber", "newsletter", "status", "created_at"]
    list_filter = ["status", "newsletter"]
    raw_id_fields = ["subscriber"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fields = ["status", "created_at", "unsubscribed_at"]
        return fields if obj is None else ["subscriber", "newsletter", *fields]


def _is_draft(digest: Digest | None) -> bool:
    return digest is not None and digest.status == Digest.Status.DRAFT


class DigestItemInline(admin.TabularInline):
    model = DigestItem
    extra = 0
    raw_id_fields = ["article", "summary"]

    # Only a draft's stories can change, as on the desk; `obj` is the digest.
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return (obj is None or _is_draft(obj)) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return _is_draft(obj) and super().has_delete_permission(request, obj)


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = ["pk", "newsletter", "subject", "status", "created_at", "approval_deadline", "sent_at"]
    list_filter = ["status", "newsletter", "created_at"]
    search_fields = ["subject"]
    inlines = [DigestItemInline]
    exclude = ["html_template", "text_template"]
    readonly_fields = ["status", "rendered_at", "created_at", "approved_at", "approved_by", "approval_deadline",
                       "consecutive_failures", "pause_reason", "send_started_at", "sent_at"]
    actions = ["approve_drafts", "send_digests", "pause_digests", "resume_digests", "cancel_digests"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fields = list(self.readonly_fields)
        return fields if obj is None else ["newsletter", "period_start", "period_end", *fields]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # An approved, sending or sent issue is what was approved or mailed: nobody rewrites it.
        return (obj is None or _is_draft(obj)) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Deleting a sent issue would erase its deliveries and audit trail.
        return (obj is None or _is_draft(obj)) and super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        refused = queryset.exclude(status=Digest.Status.DRAFT).count()
        if refused:
            self.message_user(request, f"{refused} digests are not drafts and were kept", messages.WARNING)
        super().delete_queryset(request, queryset.filter(status=Digest.Status.DRAFT))

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ops.APPROVE)

    def has_send_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ops.SEND)

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            audit.record(obj.pk, request.user, "created in the admin")
            return
        # A guarded UPDATE of the edited fields only: a full save would write back the status read when the
        # form was loaded, undoing an approval (or a send) that happened meanwhile.
        changed = {f: getattr(obj, f) for f in form.changed_data}
        if not Digest.objects.filter(pk=obj.pk, status=Digest.Status.DRAFT).update(**changed, rendered_at=None):
            self.message_user(request, f"digest {obj.pk} is no longer a draft; nothing was changed", messages.ERROR)
            return
        if changed:
            audit.record(obj.pk, request.user, "edited in the admin", fields=sorted(changed))

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.new_objects or formset.changed_objects or formset.deleted_objects:
            Digest.objects.filter(pk=form.instance.pk).update(rendered_at=None)
            audit.record(form.instance.pk, request.user, "edited stories in the admin",
                         added=len(formset.new_objects), changed=len(formset.changed_objects),
                         removed=len(formset.deleted_objects))

    @admin.action(description="Approve the selected drafts", permissions=["approve"])
    def approve_drafts(self, request, queryset):
        approved = sum(schedule.approve(pk, user=request.user) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{approved} approved (only drafts can be)")

    def _perform(self, request, queryset, action: str) -> None:
        for pk in queryset.values_list("pk", flat=True):
            try:
                self.message_user(request, ops.perform(action, pk, request.user))
            except deliver.SendRefused as exc:
                self.message_user(request, str(exc), messages.WARNING)

    @admin.action(description="Send the selected approved digests", permissions=["send"])
    def send_digests(self, request, queryset):
        self._perform(request, queryset, "send")

    @admin.action(description="Pause the selected sending digests", permissions=["send"])
    def pause_digests(self, request, queryset):
        self._perform(request, queryset, "pause")

    @admin.action(description="Resume the selected paused digests", permissions=["send"])
    def resume_digests(self, request, queryset):
        self._perform(request, queryset, "resume")

    @admin.action(description="Cancel the selected digests", permissions=["send"])
    def cancel_digests(self, request, queryset):
        self._perform(request, queryset, "cancel")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Rows of the send stage: read-only, retried only through ops.retry_failed."""

    list_display = ["digest", "subscriber", "status", "attempts", "sent_at", "last_error"]
    list_filter = ["status", "possible_duplicate", "digest__newsletter"]
    search_fields = ["subscriber__email", "message_id"]
    actions = ["retry_failed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # a deleted row would be mailed again by the next send of its digest

    def has_send_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ops.SEND)

    @admin.action(description="Retry the failed deliveries of the selected rows' digests", permissions=["send"])
    def retry_failed(self, request, queryset):
        for digest_id in queryset.filter(status=Delivery.Status.FAILED).values_list("digest_id", flat=True).distinct():
            try:
                self.message_user(request, ops.retry_failed(digest_id, request.user))
            except deliver.SendRefused as exc:
                self.message_user(request, str(exc), messages.WARNING)


@admin.register(DigestItem)
class DigestItemAdmin(admin.ModelAdmin):
    list_display = ["digest", "position", "article", "headline_override"]
    list_filter = ["digest__newsletter", "digest__status"]
    raw_id_fields = ["digest", "article", "summary"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [] if obj is None else ["digest"]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return (obj is None or _is_draft(obj.digest)) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return (obj is None or _is_draft(obj.digest)) and super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().delete_queryset(request, queryset.filter(digest__status=Digest.Status.DRAFT))

    def save_model(self, request, obj, form, change):
        if not _is_draft(Digest.objects.filter(pk=obj.digest_id).first()):
            self.message_user(request, f"digest {obj.digest_id} is not a draft; only a draft's stories can change",
                              messages.ERROR)
            return
        super().save_model(request, obj, form, change)
        Digest.objects.filter(pk=obj.digest_id).update(rendered_at=None)
        audit.record(obj.digest_id, request.user, "edited story in the admin", item=obj.pk,
                     fields=sorted(form.changed_data) if form is not None else [])


@admin.register(Story)
class StoryAdmin(admin.ModelAdmin):
    list_display = ["pk", "created_at"]
    date_hierarchy = "created_at"


@admin.register(LshBucket)
class LshBucketAdmin(ReadOnlyAdmin):
    list_display = ["article", "band", "bucket"]
    list_filter = ["band"]
    raw_id_fields = ["article"]


@admin.register(SuppressionEvent)
class SuppressionEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "email", "kind", "detail"]
    list_filter = ["kind"]
    search_fields = ["email", "message_id"]
    date_hierarchy = "created_at"


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """The trail is append-only, for admins too."""

    list_display = ["created_at", "digest", "user", "action", "detail"]
    list_filter = ["action", "user"]
    search_fields = ["action"]
    date_hierarchy = "created_at"
    raw_id_fields = ["digest"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Ops API keys (only hashes are stored): who has one, until when; revoke here."""

    list_display = ["user", "created_at", "expires_at", "revoked_at"]
    list_filter = ["user"]
    exclude = ["key_hash", "password_marker"]
    actions = ["revoke"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("auth.change_user")

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        from django.utils import timezone

        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{revoked} tokens revoked")


# --- reader signals (issue 20, worker/clicks.py): counts are written by the flush, never by hand ----

@admin.register(ClickCount)
class ClickCountAdmin(ReadOnlyAdmin):
    list_display = ["item", "url", "clicks", "filtered"]
    list_filter = ["item__digest__newsletter"]
    raw_id_fields = ["item"]


@admin.register(ReaderClick)
class ReaderClickAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "subscriber", "item", "url"]
    list_filter = ["item__digest__newsletter"]
    raw_id_fields = ["subscriber", "item"]


@admin.register(PendingClick)
class PendingClickAdmin(ReadOnlyAdmin):
    list_display = ["pk", "event"]


@admin.register(StoryRank)
class StoryRankAdmin(ReadOnlyAdmin):
    list_display = ["item", "score", "detail"]
    raw_id_fields = ["item"]


@admin.register(Regeneration)
class RegenerationAdmin(admin.ModelAdmin):
    """The desk's "Regenerate summary" jobs (worker/web/desk.py), to see what failed and why."""

    list_display = ["created_at", "item", "requested_by", "status", "error"]
    list_filter = ["status"]
    raw_id_fields = ["item"]
