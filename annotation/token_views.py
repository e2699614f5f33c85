"""The Tokens page: a user creates API tokens for their campaigns (plaintext shown once) and revokes them."""

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from annotation import selectors
from annotation import tokens as token_service
from annotation.errors import ServiceError


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “export notebook”.")
    campaigns = forms.ModelMultipleChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple)
    write = forms.BooleanField(required=False, label="Read-write (may claim pairs and submit judgments)")
    expires_in_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, label="Expires in (days)", help_text="Empty: never."
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["campaigns"].queryset = selectors.campaigns_for_user(user=user).order_by("name")


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None, user=request.user)
    plaintext = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            days = form.cleaned_data["expires_in_days"]
            try:
                token, plaintext = token_service.token_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    campaigns=form.cleaned_data["campaigns"],
                    write=form.cleaned_data["write"],
                    expires_at=timezone.now() + timedelta(days=days) if days else None,
                )
            except ServiceError as exc:
                form.add_error(None, exc.message)
                status = exc.status
            else:
                form = TokenForm(user=request.user)
        else:
            status = 400
    context = {
        "form": form,
        "plaintext": plaintext,
        "tokens": token_service.tokens_of_user(user=request.user),
        "now": timezone.now(),
    }
    response = render(request, "annotation/tokens.html", context, status=status)
    if plaintext:
        response["Cache-Control"] = "no-store"  # the secret must not linger in a cache
    return response


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = token_service.token_revoke_own(user=request.user, token_id=token_id)
    except ServiceError as exc:
        return render(request, "annotation/error.html", {"message": exc.message}, status=exc.status)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api_tokens")
