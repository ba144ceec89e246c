from django.contrib import admin

from .models import Article, Delivery, Digest, DigestItem, Newsletter, Source, Subscriber, Subscription, Summary


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "url", "newsletter", "error_count", "last_error", "last_polled_at"]
    list_filter = ["kind", "newsletter"]
    search_fields = ["name", "url"]


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
    list_display = ["name", "slug", "cadence", "send_time", "timezone", "approval"]
    prepopulated_fields = {"slug": ["name"]}


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
    list_display = ["pk", "newsletter", "subject", "status", "created_at", "sent_at"]
    list_filter = ["status", "newsletter"]
    inlines = [DigestItemInline]
    exclude = ["html_template", "text_template"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["digest", "subscriber", "status", "attempts", "sent_at", "last_error"]
    list_filter = ["status", "possible_duplicate"]
    raw_id_fields = ["digest", "subscriber"]
