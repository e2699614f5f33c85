"""`python manage.py demo_setup`: demo accounts and three demo campaigns (image, video, multi-view).

Passwords are random and printed once. Running it again leaves existing data alone; pass
`--reset-passwords` to print new passwords.
"""

import secrets
import tempfile
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from annotation import demo_media
from annotation.models import Campaign, Membership
from annotation.services.imports import round_import

DEMO_CAMPAIGNS = [
    ("Demo: shapes images", "image", ["prompt_alignment", "visual_quality"]),
    ("Demo: shapes videos", "video", ["prompt_alignment", "motion"]),
    ("Demo: shapes multi-view", "multiview", ["view_consistency"]),
]
ACCOUNTS = [("admin", "superuser"), ("researcher", "researcher"), ("annotator", "annotator")]


class Command(BaseCommand):
    help = "Create demo accounts (passwords printed once) and demo campaigns with generated media."

    def add_arguments(self, parser):
        parser.add_argument("--reset-passwords", action="store_true")
        parser.add_argument("--prompts", type=int, default=12)

    def handle(self, *args, reset_passwords: bool, prompts: int, **options):
        users, passwords = self._accounts(reset_passwords)
        for name, modality, criteria in DEMO_CAMPAIGNS:
            if Campaign.objects.filter(name=name).exists():
                continue
            with transaction.atomic():
                campaign = Campaign.objects.create(
                    name=name,
                    modality=modality,
                    criteria=criteria,
                    overlap=3,
                    instructions="Which sample matches the prompt better? Judge shapes, colours, counts and positions.",
                )
                Membership.objects.create(campaign=campaign, user=users["annotator"], role="annotator")
                Membership.objects.create(campaign=campaign, user=users["researcher"], role="researcher")
            with tempfile.TemporaryDirectory() as tmp:
                manifest = demo_media.build_demo_manifest(
                    Path(tmp), modality=modality, n_prompts=prompts, samples_per_prompt=3
                )
                round_ = round_import(campaign=campaign, source=manifest)
            self.stdout.write(f"{name}: round {round_.number} with {round_.comparisons.count()} comparisons")
        if passwords:
            self.stdout.write("\nDemo accounts (passwords are shown only now):")
            for username, password in passwords.items():
                self.stdout.write(f"  {username:<11} {password}")
        else:
            self.stdout.write("Demo accounts exist already; `manage.py demo_setup --reset-passwords` prints new ones.")

    def _accounts(self, reset: bool):
        User = get_user_model()
        users, passwords = {}, {}
        for username, role in ACCOUNTS:
            user, created = User.objects.get_or_create(username=username)
            if created or reset:
                password = secrets.token_urlsafe(12)
                user.set_password(password)
                passwords[username] = password
            user.is_superuser = role == "superuser"
            user.is_staff = role in ("superuser", "researcher")
            user.save()
            if role == "researcher":
                user.user_permissions.add(
                    *Permission.objects.filter(content_type__app_label__in=["annotation", "training"])
                )
            users[username] = user
        return users, passwords
