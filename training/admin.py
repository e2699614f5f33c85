"""Admin for generators, model versions and generation jobs.

"Add generation job" is the researcher's "generate a round" form: campaign, model versions,
prompt set, samples per prompt. It calls `generation_start`, which queues the work for a worker.
"""

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html

from annotation.errors import ServiceError
from annotation.models import Campaign, Membership
from training.models import GenerationJob, Generator, ModelVersion
from training.services import PROMPT_SETS, generation_start, generator_register_builtins


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin):
    list_display = ["name", "modality", "family", "source", "created_at"]
    list_filter = ["modality", "family"]
    search_fields = ["name"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "parent", "checkpoint_sha256", "created_at"]
    list_filter = ["generator"]
    search_fields = ["name", "generator__name"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # immutable once registered


class GenerationForm(forms.Form):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.none())
    model_versions = forms.ModelMultipleChoiceField(
        queryset=ModelVersion.objects.select_related("generator"), widget=forms.CheckboxSelectMultiple
    )
    prompt_set = forms.ChoiceField(choices=[(p, p) for p in PROMPT_SETS])
    prompts_per_task = forms.IntegerField(min_value=1, max_value=200, initial=8)
    samples_per_prompt = forms.IntegerField(min_value=1, max_value=8, initial=2)
    steps = forms.IntegerField(min_value=1, max_value=200, initial=20, help_text="Denoising steps.")
    seed = forms.IntegerField(initial=0)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        campaigns = Campaign.objects.all()
        if not user.is_superuser:
            campaigns = campaigns.filter(memberships__user=user, memberships__role=Membership.Role.RESEARCHER)
        self.fields["campaign"].queryset = campaigns


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["round", "status", "progress", "created_at", "finished_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in GenerationJob._meta.fields] + ["progress"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("round__campaign")
        if request.user.is_superuser:
            return qs
        return qs.filter(
            round__campaign__memberships__user=request.user, round__campaign__memberships__role="researcher"
        )

    @admin.display(description="Progress")
    def progress(self, obj: GenerationJob) -> str:
        url = reverse("training:round_generation", args=[obj.round_id])
        return format_html(
            '<progress max="{}" value="{}"></progress> {}/{} <a href="{}">live page</a>',
            obj.progress_total or 1,
            obj.progress_done,
            obj.progress_done,
            obj.progress_total,
            url,
        )

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        if not self.has_add_permission(request):
            return redirect("admin:index")
        generator_register_builtins()
        form = GenerationForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                job = generation_start(
                    campaign=data["campaign"],
                    model_versions=list(data["model_versions"]),
                    prompt_set=data["prompt_set"],
                    prompts_per_task=data["prompts_per_task"],
                    samples_per_prompt=data["samples_per_prompt"],
                    steps=data["steps"],
                    seed=data["seed"],
                )
            except ServiceError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Generation of {job.round} queued.", messages.SUCCESS)
                return redirect("training:round_generation", job.round_id)
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Generate a round",
            "opts": self.model._meta,
        }
        return render(request, "admin/training/generate_round.html", context)
