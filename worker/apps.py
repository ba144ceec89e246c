from django.apps import AppConfig


class WorkerConfig(AppConfig):
    name = "worker"
    verbose_name = "Newsdigest"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the anymail tracking receiver in every process (web, workers, CLI), not only
        # where the URLconf happens to be imported.
        from . import bounces  # noqa: F401
        from .web import webhooks  # noqa: F401 - registers its system check
