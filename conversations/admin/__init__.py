"""The conversations app's admin, one module per concern; Django imports this package."""

from conversations.admin import contacts, flows, tickets

__all__ = ["contacts", "flows", "tickets"]
