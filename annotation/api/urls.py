"""`/api/`: the versioned API under `v1/`, its OpenAPI schema and the interactive docs."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from annotation.api import exports, views
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
    # --- export and snapshots (annotation/api/exports.py, on top of annotation/export_views.py) -------
    # Ids match like the router's (`[^/.]+`), so a malformed one is the API's JSON 404, not Django's page.
    re_path(r"^campaigns/(?P<pk>[^/.]+)/export/$", exports.CampaignExportView.as_view(), name="campaign-export"),
    re_path(
        r"^campaigns/(?P<pk>[^/.]+)/snapshots/$", exports.CampaignSnapshotsView.as_view(), name="campaign-snapshots"
    ),
    re_path(r"^snapshots/(?P<pk>[^/.]+)/$", exports.SnapshotDetailView.as_view(), name="snapshot-detail"),
    re_path(r"^snapshots/(?P<pk>[^/.]+)/download/$", exports.SnapshotDownloadView.as_view(), name="snapshot-download"),
    # --- end export and snapshots -------------------------------------------------------------------
]

app_name = "api"

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(url_name="api:schema"), name="docs"),
]
