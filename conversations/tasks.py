from celery import shared_task


@shared_task(bind=True, acks_late=True, max_retries=None)
def handle_inbound(self, message_id: int) -> bool:
    """Turn one stored inbound SMS into its reply; True when a reply was queued."""
    from conversations.services import PhoneBusy, inbound_handle

    try:
        return inbound_handle(message_id=message_id) is not None
    except PhoneBusy:
        # The same phone's earlier message is being handled: this one follows it.
        raise self.retry(countdown=0.5) from None


@shared_task
def inbound_sweep() -> dict:
    """Queue again inbound messages the broker lost (beat)."""
    from conversations.services import inbound_sweep as sweep

    return sweep()
