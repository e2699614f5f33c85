from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotation.account_views import signup

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", signup, name="signup"),
    path("", include("training.urls")),
    path("", include("annotation.urls")),
]
