from django.contrib import admin, messages

from . import deliver, ops, schedule
from .models import (
    Article,
    AuditEntry,
    Delivery,
    Digest,
    DigestItem,
    IngestRejection,
    LshBucket,
    Newsletter,
    Regeneration,
    Source,
    Story,
    Subscriber,
    Subscription,
    Summary,
    SuppressionEvent,
)


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "url", "newsletter", "active", "error_count", "last_error", "last_polled_at",
                    "next_poll_at"]
    list_filter = ["kind", "newsletter", "active"]
    search_fields = ["name", "url"]
    readonly_fields = ["etag", "last_modified", "error_count", "last_error", "last_polled_at"]


@admin.register(IngestRejection)
class IngestRejectionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "source", "target", "reason"]
    list_filter = ["source"]
    search_fields = ["target", "reason"]
    date_hierarchy = "created_at"


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "source", "status", "published_at", "created_at"]
    list_filter = ["status", "source"]
    search_fields = ["title", "url", "text"]
    readonly_fields = ["content_hash"]


@admin.register(Summary)
class SummaryAdmin(admin.ModelAdmin):
    list_display = ["article", "engine", "model", "prompt_version", "prompt_tokens", "completion_tokens", "created_at"]
    list_filter = ["engine", "model", "prompt_version"]


@admin.register(Newsletter)
class NewsletterAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "cadence", "send_time", "timezone", "approval", "periodic_task"]
    list_filter = ["cadence", "approval", "timezone", "public_archive"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["periodic_task"]
    actions = ["sync_schedules"]

    def save_model(self, request, obj, form, change):
        """Saving a newsletter rewrites its celery beat schedule (see worker/schedule.py)."""
        super().save_model(request, obj, form, change)
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


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["subscriber", "newsletter", "status", "created_at"]
    list_filter = ["status", "newsletter"]


class DigestItemInline(admin.TabularInline):
    model = DigestItem
    extra = 0
    raw_id_fields = ["article", "summary"]


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = ["pk", "newsletter", "subject", "status", "created_at", "approval_deadline", "sent_at"]
    list_filter = ["status", "newsletter", "created_at"]
    search_fields = ["subject"]
    inlines = [DigestItemInline]
    exclude = ["html_template", "text_template"]
    actions = ["approve_drafts", "cancel_digests"]

    @admin.action(description="Approve the selected drafts", permissions=["change"])
    def approve_drafts(self, request, queryset):
        approved = sum(schedule.approve(pk, user=request.user) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{approved} approved (only drafts can be)")

    @admin.action(description="Cancel the selected digests", permissions=["change"])
    def cancel_digests(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            try:
                ops.cancel(pk, request.user)
            except deliver.SendRefused as exc:
                self.message_user(request, str(exc), messages.WARNING)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["digest", "subscriber", "status", "attempts", "sent_at", "last_error"]
    list_filter = ["status", "possible_duplicate", "digest__newsletter"]
    search_fields = ["subscriber__email", "message_id"]
    raw_id_fields = ["digest", "subscriber"]
    actions = ["retry_failed"]

    @admin.action(description="Retry the failed deliveries of the selected rows' digests", permissions=["change"])
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


@admin.register(Story)
class StoryAdmin(admin.ModelAdmin):
    list_display = ["pk", "created_at"]
    date_hierarchy = "created_at"


@admin.register(LshBucket)
class LshBucketAdmin(admin.ModelAdmin):
    list_display = ["article", "band", "bucket"]
    list_filter = ["band"]
    raw_id_fields = ["article"]


@admin.register(SuppressionEvent)
class SuppressionEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "email", "kind", "detail"]
    list_filter = ["kind"]
    search_fields = ["email", "message_id"]
    date_hierarchy = "created_at"


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "digest", "user", "action", "detail"]
    list_filter = ["action", "user"]
    search_fields = ["action"]
    date_hierarchy = "created_at"
    raw_id_fields = ["digest"]

    def has_change_permission(self, request, obj=None):
        return False  # the trail is append-only


@admin.register(Regeneration)
class RegenerationAdmin(admin.ModelAdmin):
    """The desk's "Regenerate summary" jobs (worker/desk.py), to see what failed and why."""

    list_display = ["created_at", "item", "requested_by", "status", "error"]
    list_filter = ["status"]
    raw_id_fields = ["item"]
