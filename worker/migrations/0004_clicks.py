import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("worker", "0003_bounces")]

    operations = [
        migrations.AddField(
            model_name="newsletter", name="click_tracking",
            field=models.BooleanField(
                default=True,
                help_text="count clicks per story through a signed redirect (off: links are mailed bare)"),
        ),
        migrations.AddField(
            model_name="newsletter", name="click_history",
            field=models.BooleanField(
                default=False, help_text="also keep which subscriber clicked what (off: aggregate counts only)"),
        ),
        migrations.CreateModel(
            name="ClickCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("url", models.URLField(max_length=2000)),
                ("clicks", models.PositiveIntegerField(default=0)),
                ("filtered", models.PositiveIntegerField(
                    default=0, help_text="hits judged to be link scanners, not readers")),
                ("item", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                           related_name="click_counts", to="worker.digestitem")),
            ],
            options={"constraints": [models.UniqueConstraint(fields=("item", "url"),
                                                             name="one_click_count_per_link")]},
        ),
        migrations.CreateModel(
            name="ReaderClick",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("url", models.URLField(max_length=2000)),
                ("created_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ("item", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                           related_name="reader_clicks", to="worker.digestitem")),
                ("subscriber", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                 related_name="clicks", to="worker.subscriber")),
            ],
        ),
        migrations.CreateModel(
            name="PendingClick",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("event", models.JSONField()),
            ],
        ),
        migrations.CreateModel(
            name="StoryRank",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("score", models.FloatField()),
                ("detail", models.JSONField(default=dict)),
                ("item", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="rank",
                                              to="worker.digestitem")),
            ],
        ),
    ]
