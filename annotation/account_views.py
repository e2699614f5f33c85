"""Self sign-up, off unless `LOUPE_SIGNUP_ENABLED` is set. New users belong to no campaign."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render


def signup(request: HttpRequest) -> HttpResponse:
    if not settings.LOUPE_SIGNUP_ENABLED:
        raise Http404("Sign-up is not enabled on this site.")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("annotation:home")
    return render(request, "registration/signup.html", {"form": form})
