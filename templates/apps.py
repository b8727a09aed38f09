from django.apps import AppConfig


class TemplatesConfig(AppConfig):
    name = "templates"
    label = "templates"
    verbose_name = "DLT templates"

    def ready(self):
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from templates.index import index_invalidate
        from templates.models import Header, PrincipalEntity, Template

        # Any change to what the matcher reads makes the cached match index stale.
        for model in (Template, Header, PrincipalEntity):
            name = model._meta.model_name
            post_save.connect(index_invalidate, sender=model, dispatch_uid=f"templates.index.save.{name}")
            post_delete.connect(index_invalidate, sender=model, dispatch_uid=f"templates.index.delete.{name}")
        m2m_changed.connect(
            index_invalidate, sender=Template.headers.through, dispatch_uid="templates.index.template_headers"
        )
