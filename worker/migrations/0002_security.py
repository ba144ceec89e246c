import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import worker.models


def hash_source_tokens(apps, schema_editor):
    """Existing plaintext source tokens become their hashes: their holders' keys keep working."""
    Source = apps.get_model("worker", "Source")
    for source in Source.objects.only("pk", "api_token"):
        Source.objects.filter(pk=source.pk).update(api_token=worker.models.hash_token(source.api_token))


class Migration(migrations.Migration):
    dependencies = [
        ("worker", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="source",
            name="api_token",
            field=models.CharField(default=worker.models.unusable_token_hash, max_length=64, unique=True),
        ),
        migrations.RunPython(hash_source_tokens, migrations.RunPython.noop),
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key_hash", models.CharField(max_length=64, unique=True)),
                ("password_marker", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("expires_at", models.DateTimeField()),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="api_tokens",
                                           to=settings.AUTH_USER_MODEL)),
            ],
        ),
    ]
