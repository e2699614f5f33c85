"""Training: the Django app (model versions, jobs) plus pure subpackages `algorithms` and `shapes`."""
