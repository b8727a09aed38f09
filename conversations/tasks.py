from celery import shared_task


@shared_task(acks_late=True)
def handle_inbound(message_id: int) -> bool:
    """Turn one stored inbound SMS into its reply; True when a reply was queued."""
    from conversations.services import inbound_handle

    return inbound_handle(message_id=message_id) is not None
