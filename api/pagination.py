"""Cursor pagination for message lists: stable under inserts, no COUNT over a large table."""

from rest_framework.pagination import CursorPagination


class MessageCursorPagination(CursorPagination):
    """Newest first, by id (indexed, unique); `?cursor=` from `next`/`previous`, `?page_size=` up to 200."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 200
