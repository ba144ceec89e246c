import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("worker", "0002_security")]

    operations = [
        migrations.AlterField(
            model_name="suppressionevent",
            name="kind",
            field=models.CharField(choices=[("hard_bounce", "Hard Bounce"), ("soft_bounce", "Soft Bounce"),
                                            ("policy", "Policy Bounce"), ("complaint", "Complaint"),
                                            ("unsubscribe", "Unsubscribe")], max_length=12),
        ),
        migrations.AddField(
            model_name="suppressionevent",
            name="status",
            field=models.CharField(blank=True, max_length=20),
        ),
        migrations.AddField(
            model_name="suppressionevent",
            name="delivery",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="suppression_events", to="worker.delivery"),
        ),
        migrations.AddField(
            model_name="suppressionevent",
            name="digest",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="suppression_events", to="worker.digest"),
        ),
    ]
