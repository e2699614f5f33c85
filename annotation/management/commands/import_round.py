"""`python manage.py import_round --campaign ID PATH`: a new open round from a manifest or folder."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import ServiceError
from annotation.models import Campaign
from annotation.services.imports import round_import


class Command(BaseCommand):
    help = "Create a round from a JSONL manifest or a folder of media. All or nothing."

    def add_arguments(self, parser):
        parser.add_argument("source", type=Path, help="manifest.jsonl, or a folder")
        parser.add_argument("--campaign", type=int, required=True, help="campaign id")
        parser.add_argument("--max-pairs-per-prompt", type=int, default=10)

    def handle(self, *args, source: Path, campaign: int, max_pairs_per_prompt: int, **options):
        try:
            target = Campaign.objects.get(pk=campaign)
        except Campaign.DoesNotExist:
            raise CommandError(f"No campaign with id {campaign}.")
        try:
            round_ = round_import(campaign=target, source=source, max_pairs_per_prompt=max_pairs_per_prompt)
        except ServiceError as exc:
            raise CommandError(exc.message)
        self.stdout.write(
            f"Imported round {round_.number} of {target.name!r}: {round_.prompts.count()} prompts, "
            f"{round_.samples.count()} samples, {round_.comparisons.count()} comparisons."
        )
