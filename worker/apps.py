from django.apps import AppConfig


class WorkerConfig(AppConfig):
    name = "worker"
    verbose_name = "Newsdigest"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # bounces connects the anymail tracking receiver in every process (web, workers, CLI), not only
        # where the URLconf happens to be imported; webhooks registers its system check; tasks register
        # themselves with worker.jobs, the interface stages enqueue through without importing tasks.
        from . import bounces, tasks  # noqa: F401
        from .web import webhooks  # noqa: F401
