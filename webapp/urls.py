from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotation import token_views
from annotation.account_views import signup

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", signup, name="signup"),
    path("api/", include("annotation.api.urls")),
    path("account/tokens/", token_views.tokens, name="api_tokens"),
    path("account/tokens/<int:token_id>/revoke/", token_views.token_revoke_view, name="api_token_revoke"),
    path("", include("training.urls")),
    path("", include("annotation.urls")),
]
