"""Every edit of the service registry tells the processes' copies of it (commands.services) to read it again."""

from django.db import transaction

from commands.services import registry_changed


def registry_edited(sender, **kwargs) -> None:
    """
    A Shortcode, Command or Alias was saved or deleted: a new registry version now, so this
    process and the others stop using their copies, and again once the edit commits, so that
    none keeps a copy read in between, before the edit was visible.
    """
    registry_changed()
    transaction.on_commit(registry_changed)
