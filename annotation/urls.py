from django.urls import path

from annotation import export_views, media_views, views

app_name = "annotation"

urlpatterns = [
    path("", views.home, name="home"),
    path("rounds/<int:round_id>/annotate/", views.annotate, name="annotate"),
    path("rounds/<int:round_id>/next/", views.pair_next, name="pair_next"),
    path("rounds/<int:round_id>/undo/", views.undo, name="undo"),
    path("rounds/<int:round_id>/progress/", views.progress, name="progress"),
    path("assignments/<int:assignment_id>/judge/", views.judge, name="judge"),
    path("assignments/<int:assignment_id>/skip/", views.skip, name="skip"),
    path("media/<int:sample_id>/<int:index>/", media_views.media, name="media"),
    path("media/<int:sample_id>/poster/", media_views.poster, name="poster"),
    path("campaigns/<int:campaign_id>/export.<str:fmt>", export_views.campaign_export, name="campaign_export"),
    path("campaigns/<int:campaign_id>/snapshots/", export_views.campaign_snapshots, name="campaign_snapshots"),
    path("snapshots/<int:snapshot_id>/download/", export_views.snapshot_download, name="snapshot_download"),
]
