"""
Storing an inbound SMS and its webhook's channel log row in one round trip.

The webhook is the hottest path of the product: an aggregator waits on it, thousands a
minute. The ORM would take eight statements for it (BEGIN, a savepoint, the INSERT, its
release, the same for the log row, COMMIT); on Postgres this is one statement in
autocommit, atomic as every statement is: the message row, unless the provider's id is
stored already, and the log row that points at it, both or neither. Elsewhere (SQLite,
the embedded default) two INSERTs in one transaction do the same.

The SQL is built from the models' own fields, once per process, and the values by the
fields' own conversions (`pre_save`, `get_db_prep_save`), as the ORM's INSERT does.
"""

from functools import cache

from django.db import connection, transaction

from delivery.models import ChannelLog, Message

# The unique index that makes a provider's retry a duplicate (Message.Meta.constraints:
# message_provider_id_unique), spelt so that ON CONFLICT infers that partial index.
_PROVIDER_ID_CONFLICT = "ON CONFLICT (provider, direction, provider_message_id) WHERE provider_message_id IS NOT NULL"


def inbound_insert(message: Message, log_row: ChannelLog | None = None) -> bool:
    """
    INSERT `message` (an inbound row) and `log_row`, pointed at it; False, with nothing
    stored, when the provider's message id is stored already (a duplicate). On success
    `message.id` and `log_row.message_id` are set.
    """
    message_params = _params(message)
    if log_row is not None and connection.vendor == "postgresql":
        log_params = _params(log_row, exclude=("message",))
        with connection.cursor() as cursor:
            cursor.execute(_message_and_log_sql(), [*message_params, *log_params])
            row = cursor.fetchone()
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_message_sql(), message_params)
            row = cursor.fetchone()
            if row is not None and log_row is not None:
                log_row.message_id = row[0]
                log_row.save(force_insert=True)
    if row is None:
        return False
    message.id = row[0]
    if log_row is not None:
        log_row.message_id = row[0]
    return True


def _insert_fields(model, exclude: tuple[str, ...] = ()) -> list:
    return [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in exclude]


def _params(instance, exclude: tuple[str, ...] = ()) -> list:
    return [
        field.get_db_prep_save(field.pre_save(instance, True), connection)
        for field in _insert_fields(type(instance), exclude)
    ]


@cache
def _message_sql() -> str:
    table, columns, placeholders = _insert_parts(Message)
    # Identifiers from the models' meta, quoted; every value is a parameter.
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) {_PROVIDER_ID_CONFLICT} DO NOTHING RETURNING id"  # noqa: S608


@cache
def _message_and_log_sql() -> str:
    # A data-modifying CTE runs whether or not it is read: the log row is inserted from
    # the message's RETURNING, so a duplicate (no row returned) inserts no log row.
    # The casts give the SELECT's parameters their columns' types.
    log_table, log_columns, log_values = _insert_parts(ChannelLog, exclude=("message",), cast=True)
    log_insert = f"INSERT INTO {log_table} ({log_columns}, message_id) SELECT {log_values}, id FROM stored"  # noqa: S608
    return f"WITH stored AS ({_message_sql()}), logged AS ({log_insert}) SELECT id FROM stored"  # noqa: S608


def _insert_parts(model, exclude: tuple[str, ...] = (), cast: bool = False) -> tuple[str, str, str]:
    quote = connection.ops.quote_name
    fields = _insert_fields(model, exclude)
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(f"%s::{f.db_type(connection)}" if cast else "%s" for f in fields)
    return quote(model._meta.db_table), columns, placeholders
