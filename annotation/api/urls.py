"""`/api/`: the versioned API under `v1/`, its OpenAPI schema and the interactive docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from annotation.api import views
from annotation.api.docs import DocsView

router = SimpleRouter()
router.register("campaigns", views.CampaignViewSet, basename="campaign")
router.register("rounds", views.RoundViewSet, basename="round")
router.register("prompts", views.PromptViewSet, basename="prompt")
router.register("samples", views.SampleViewSet, basename="sample")
router.register("comparisons", views.ComparisonViewSet, basename="comparison")
router.register("judgments", views.JudgmentViewSet, basename="judgment")
router.register("model-versions", views.ModelVersionViewSet, basename="model-version")
router.register("training-jobs", views.TrainingJobViewSet, basename="training-job")
router.register("assignments", views.AssignmentViewSet, basename="assignment")

v1 = [
    *router.urls,
    # --- export and snapshots (owned by annotation/export.py; not implemented here) ---------------
    # Mount here, as DRF views with `ApiViewMixin`-style auth so they are token-scoped and appear in
    # the schema:
    #   path("campaigns/<int:campaign_id>/export/", <export view>, name="campaign-export"),
    #   path("snapshots/", <snapshot list/create>, name="snapshot-list"),
    #   path("snapshots/<int:pk>/", <snapshot detail/download>, name="snapshot-detail"),
    # --- end export and snapshots -------------------------------------------------------------------
]

app_name = "api"

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(url_name="api:schema"), name="docs"),
]
