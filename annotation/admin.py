"""Researcher pages in the Django admin: campaigns, rounds, members, criteria, overlap, imports.

Staff who are not superusers see only campaigns where they are a researcher member, and only the
rounds, prompts and comparisons of those campaigns.
"""

from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.html import format_html

from annotation import selectors
from annotation.errors import ServiceError
from annotation.models import Campaign, Comparison, Judgment, Membership, Round


def _researcher_campaign_ids(request: HttpRequest) -> QuerySet:
    return Membership.objects.filter(user=request.user, role=Membership.Role.RESEARCHER).values("campaign_id")


class ScopedAdmin(admin.ModelAdmin):
    """Limit a model's admin to the researcher's campaigns; `campaign_path` leads to the campaign id."""

    campaign_path = "campaign_id"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.campaign_path}__in": _researcher_campaign_ids(request)})


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


class RoundInline(admin.TabularInline):
    model = Round
    extra = 0
    fields = ["number", "status", "samples_per_prompt", "progress"]
    readonly_fields = ["progress"]
    show_change_link = True

    @admin.display(description="Progress")
    def progress(self, obj: Round) -> str:
        return _progress_html(obj) if obj.pk else "-"


def _progress_html(round_: Round) -> str:
    p = selectors.round_progress(round_=round_)
    return format_html(
        '<progress max="100" value="{}"></progress> {} / {} judgments ({}%), {} of {} comparisons complete',
        f"{p.percent:.0f}",
        p.judgments,
        p.wanted,
        f"{p.percent:.1f}",
        p.complete,
        p.comparisons,
    )


class ImportForm(forms.Form):
    source = forms.CharField(
        label="Manifest or folder",
        help_text="A JSONL manifest or a folder, relative to the import root on the server.",
        max_length=500,
    )
    max_pairs_per_prompt = forms.IntegerField(min_value=1, max_value=100, initial=10)

    def clean_source(self) -> Path:
        root = Path(settings.LOUPE_IMPORT_ROOT).resolve()
        path = (root / self.cleaned_data["source"]).resolve()
        if not path.is_relative_to(root):
            raise forms.ValidationError(f"The path must stay inside the import root ({root}).")
        if not path.exists():
            raise forms.ValidationError(f"{path} does not exist.")
        return path


@admin.register(Campaign)
class CampaignAdmin(ScopedAdmin):
    campaign_path = "id"
    list_display = ["name", "modality", "overlap", "gold_ratio", "criteria_list", "rounds_count"]
    list_filter = ["modality"]
    search_fields = ["name"]
    inlines = [MembershipInline, RoundInline]
    actions = ["import_round_action"]

    @admin.display(description="Criteria")
    def criteria_list(self, obj: Campaign) -> str:
        return ", ".join(obj.criteria) or "-"

    @admin.display(description="Rounds")
    def rounds_count(self, obj: Campaign) -> int:
        return obj.rounds.count()

    @admin.action(description="Import a round from a manifest or folder")
    def import_round_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one campaign to import into.", messages.ERROR)
            return None
        from annotation.services.imports import round_import  # media checks load only when importing

        campaign = queryset.get()
        form = ImportForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            try:
                round_ = round_import(
                    campaign=campaign,
                    source=form.cleaned_data["source"],
                    max_pairs_per_prompt=form.cleaned_data["max_pairs_per_prompt"],
                )
            except ServiceError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request, f"Imported round {round_.number} with {round_.comparisons.count()} comparisons."
                )
                return redirect("admin:annotation_round_change", round_.pk)
        return render(
            request,
            "admin/annotation/import_round.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "campaign": campaign,
                "ids": [campaign.pk],
                "title": f"Import a round into {campaign.name}",
            },
        )


@admin.register(Round)
class RoundAdmin(ScopedAdmin):
    list_display = ["__str__", "status", "samples_per_prompt", "progress", "created_at"]
    list_filter = ["status", "campaign"]
    readonly_fields = ["progress", "progress_done", "progress_total"]
    filter_horizontal = ["model_versions"]

    @admin.display(description="Progress")
    def progress(self, obj: Round) -> str:
        return _progress_html(obj)


@admin.register(Comparison)
class ComparisonAdmin(ScopedAdmin):
    campaign_path = "round__campaign_id"
    list_display = ["id", "round", "prompt", "priority", "is_gold", "slots_taken", "judgment_count", "overlap"]
    list_filter = ["is_gold", "round__campaign"]
    raw_id_fields = ["prompt", "sample_first", "sample_second", "round"]
    readonly_fields = ["slots_taken", "judgment_count"]


@admin.register(Judgment)
class JudgmentAdmin(ScopedAdmin):
    campaign_path = "comparison__round__campaign_id"
    list_display = ["id", "comparison", "annotator", "choice", "time_on_task_ms", "created_at"]
    list_filter = ["choice"]
    raw_id_fields = ["comparison", "assignment", "left_sample", "annotator"]

    def has_change_permission(self, request: HttpRequest, obj: Judgment | None = None) -> bool:
        return False  # judgments are records, not editable
