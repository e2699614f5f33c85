from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("rounds/<int:round_id>/generation/", views.round_generation, name="round_generation"),
]
