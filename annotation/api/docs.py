"""Interactive API docs from vendored Swagger UI (drf-spectacular-sidecar), under the site's CSP.

The split view serves Swagger UI's initialiser as a separate same-origin script (`?script`), so the
page needs no inline script and the strict `script-src 'self'` policy stays as it is.
"""

from drf_spectacular.views import SpectacularSwaggerSplitView


class DocsView(SpectacularSwaggerSplitView):
    title = "Loupe API"
