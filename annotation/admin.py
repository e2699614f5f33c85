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
from django.urls import reverse
from django.utils.html import format_html

from annotation import selectors
from annotation.errors import ServiceError
from annotation.models import ApiToken, Campaign, Comparison, DatasetSnapshot, Judgment, Membership, Round


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


class ApiTokenAdminForm(forms.Form):
    """Create a token for a member of the researcher's campaigns; the plaintext is shown once."""

    user = forms.ModelChoiceField(queryset=None, help_text="Who the token acts as; must be a member of each campaign.")
    name = forms.CharField(max_length=100)
    campaigns = forms.ModelMultipleChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple)
    write = forms.BooleanField(required=False, label="Read-write (may claim pairs and submit judgments)")
    expires_at = forms.DateTimeField(required=False, help_text="Empty: never. Format: YYYY-MM-DD HH:MM (UTC).")

    def __init__(self, *args, request: HttpRequest, **kwargs) -> None:
        from django.contrib.auth import get_user_model

        super().__init__(*args, **kwargs)
        campaigns = Campaign.objects.order_by("name")
        users = get_user_model().objects.filter(is_active=True).order_by("username")
        if not request.user.is_superuser:
            campaigns = campaigns.filter(id__in=_researcher_campaign_ids(request))
            users = users.filter(memberships__campaign__in=campaigns).distinct()
        self.fields["campaigns"].queryset = campaigns
        self.fields["user"].queryset = users


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens touching the researcher's campaigns: list, create (plaintext shown once), revoke.

    Tokens are never edited: a changed scope is a new token. Only the hash is stored.
    """

    list_display = ["name", "user", "prefix_display", "campaign_list", "write", "created_at", "last_used_at", "state"]
    list_filter = ["write"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = [
        "user",
        "name",
        "prefix",
        "campaigns",
        "write",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    exclude = ["secret_sha256"]
    actions = ["revoke_action"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request).select_related("user").prefetch_related("campaigns")
        if request.user.is_superuser:
            return qs
        return qs.filter(campaigns__in=_researcher_campaign_ids(request)).distinct()

    @admin.display(description="Token")
    def prefix_display(self, obj: ApiToken) -> str:
        return f"loupe_{obj.prefix}_…"

    @admin.display(description="Campaigns")
    def campaign_list(self, obj: ApiToken) -> str:
        return ", ".join(c.name for c in obj.campaigns.all())

    @admin.display(description="State")
    def state(self, obj: ApiToken) -> str:
        from django.utils import timezone

        if obj.revoked_at:
            return "revoked"
        if obj.expires_at and obj.expires_at <= timezone.now():
            return "expired"
        return "active"

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return request.user.is_superuser  # researchers revoke; the record stays

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_action(self, request: HttpRequest, queryset: QuerySet) -> None:
        from annotation.tokens import token_revoke

        count = 0
        for token in queryset:  # already limited to tokens of the researcher's campaigns
            if token.revoked_at is None:
                token_revoke(token=token)
                count += 1
        self.message_user(request, f"Revoked {count} token(s).")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        from django.core.exceptions import PermissionDenied

        from annotation.tokens import token_create

        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ApiTokenAdminForm(request.POST or None, request=request)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Create an API token"}
        if request.method == "POST" and form.is_valid():
            try:
                token, plaintext = token_create(
                    user=form.cleaned_data["user"],
                    name=form.cleaned_data["name"],
                    campaigns=form.cleaned_data["campaigns"],
                    write=form.cleaned_data["write"],
                    expires_at=form.cleaned_data["expires_at"],
                )
            except ServiceError as exc:
                form.add_error(None, exc.message)
            else:
                shown = {**context, "token": token, "plaintext": plaintext}
                response = render(request, "admin/annotation/apitoken_created.html", shown)
                response["Cache-Control"] = "no-store"
                return response
        return render(request, "admin/annotation/apitoken_add.html", {**context, "form": form})


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(ScopedAdmin):
    """Frozen exports of the researcher's campaigns (all for superusers): read-only, with a download link.

    Snapshots are made through the API or the researcher's export page and never change.
    """

    list_display = ["id", "campaign", "fmt", "raw", "embed_media", "rows", "size_bytes", "sha256_short", "created_by"]
    list_display += ["created_at", "download"]
    list_filter = ["fmt", "raw", "embed_media"]
    list_select_related = ["campaign", "created_by"]
    search_fields = ["sha256"]
    ordering = ["-created_at", "-id"]
    fields = ["campaign", "fmt", "raw", "embed_media", "sha256", "rows", "size_bytes", "params", "created_by"]
    fields += ["created_at", "file", "download"]
    readonly_fields = fields

    @admin.display(description="SHA-256")
    def sha256_short(self, obj: DatasetSnapshot) -> str:
        return f"{obj.sha256[:12]}…"

    @admin.display(description="Download")
    def download(self, obj: DatasetSnapshot) -> str:
        return format_html('<a href="{}">download</a>', reverse("annotation:snapshot_download", args=[obj.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DatasetSnapshot | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DatasetSnapshot | None = None) -> bool:
        return False  # training jobs record the snapshot they used; the bytes must stay
