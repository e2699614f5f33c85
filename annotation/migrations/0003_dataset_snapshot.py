import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0002_api_tokens"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="DatasetSnapshot",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "fmt",
                    models.CharField(choices=[("parquet", "Parquet"), ("jsonl", "JSON Lines")], max_length=8),
                ),
                (
                    "raw",
                    models.BooleanField(default=False, help_text="One row per judgment instead of per comparison."),
                ),
                ("embed_media", models.BooleanField(default=False)),
                ("file", models.CharField(help_text="Storage name (generated).", max_length=300, unique=True)),
                ("sha256", models.CharField(max_length=64)),
                ("rows", models.BigIntegerField()),
                ("size_bytes", models.BigIntegerField()),
                (
                    "params",
                    models.JSONField(blank=True, default=dict, help_text="Everything the export was made with."),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="snapshots",
                        to="annotation.campaign",
                    ),
                ),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["campaign", "-created_at"], name="snapshot_campaign_recent_idx")
                ],
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("sha256__regex", "^[0-9a-f]{64}$")), name="snapshot_sha256_hex"),
                    models.CheckConstraint(
                        condition=models.Q(("rows__gte", 0), ("size_bytes__gte", 0)), name="snapshot_sizes"
                    ),
                ],
            },
        ),
    ]
