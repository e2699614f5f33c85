from django.contrib import admin

from training.models import Generator, ModelVersion


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
