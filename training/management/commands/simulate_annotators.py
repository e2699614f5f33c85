"""`python manage.py simulate_annotators --campaign ID --annotators 8 --accuracy 0.85 --seconds 60`.

Creates (or reuses) simulated annotator accounts as members of the campaign, gives them fresh random
passwords, and lets them judge the campaign's open round over HTTP against a running site.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Campaign, Membership, Round
from training.shapes.raters import RaterConfig
from training.simulate import simulate


class Command(BaseCommand):
    help = "Simulated annotators judge a campaign's open round through the site's HTTP endpoints."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", type=int, required=True)
        parser.add_argument("--round", type=int, help="round id (default: the campaign's newest open round)")
        parser.add_argument("--annotators", type=int, default=8)
        parser.add_argument("--accuracy", type=float, default=0.85)
        parser.add_argument("--tie-rate", type=float, default=0.5)
        parser.add_argument("--seconds", type=float, default=60)
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, campaign, round, annotators, accuracy, tie_rate, seconds, base_url, seed, **options):
        try:
            target = Campaign.objects.get(pk=campaign)
            config = RaterConfig(accuracy=accuracy, tie_rate=tie_rate)
        except Campaign.DoesNotExist:
            raise CommandError(f"No campaign with id {campaign}.")
        except ValueError as exc:
            raise CommandError(str(exc))
        rounds = target.rounds.filter(status=Round.Status.OPEN).order_by("-number")
        round_ = rounds.filter(id=round).first() if round else rounds.first()
        if round_ is None:
            raise CommandError(f"Campaign {target.name!r} has no open round{' with that id' if round else ''}.")
        if not 1 <= annotators <= 64:
            raise CommandError("--annotators must be between 1 and 64.")
        accounts = []
        User = get_user_model()
        for i in range(annotators):
            user, _ = User.objects.get_or_create(username=f"sim-{target.id}-{i}")
            password = secrets.token_urlsafe(16)
            user.set_password(password)
            user.save()
            Membership.objects.get_or_create(campaign=target, user=user, defaults={"role": "annotator"})
            accounts.append((user.username, password))
        self.stdout.write(
            f"{annotators} simulated annotators on round {round_.number} of {target.name!r} for {seconds:g} s"
        )
        stats = simulate(
            base_url=base_url, round_id=round_.id, accounts=accounts, config=config, seconds=seconds, seed=seed
        )
        self.stdout.write(
            f"{stats.judgments} judgments in {stats.seconds:.1f} s ({stats.per_second:.1f}/s); "
            f"{stats.skipped_empty} annotators ran out of pairs; {len(stats.errors)} errors"
        )
        for error in stats.errors[:10]:
            self.stderr.write(error)
        if stats.errors:
            raise CommandError("some simulated annotators failed")
