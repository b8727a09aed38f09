"""
The bind: one long-lived SMPP transceiver session for one shortcode, run by smpp_worker.

    unbound --connect, bind_transceiver--> bound --drop, unbind, no enquire_link_resp--> unbound
       ^  '--refused / unreachable: wait (backoff 1 s, 2 s, ... 60 s), try again--'          |
       '-------------------------------------------------------------------------------------'

While bound, each `step`:
- reads what the SMSC sent: submit_sm_resp settle parts, deliver_sm (MO and receipts) is
  stored and only then answered (an SMSC redelivers what we do not answer), enquire_link
  and unbind are answered;
- keeps the link alive: enquire_link after `enquire_link_seconds` without traffic, and a
  rebind when it or a submit_sm goes unanswered for RESPONSE_TIMEOUT;
- fills the window: claims due `queued` messages of its shortcode (message_bind_claim,
  the same conditional UPDATE as the deliver task) and submits their parts while fewer
  than `window` submits are outstanding, paced by the token bucket of `mps` segments per
  second.

What the SMSC answers a part:
- ESME_ROK: the part's id is stored (SubmittedPart) before anything else is read; when
  every part is in, the message is `sent` with its first part's id (message_bind_sent);
- ESME_RTHROTTLED, ESME_RMSGQFUL: the part goes back to the head of the line and
  submits pause (backoff 1 s doubling to 16 s, reset by the next success);
- anything else: the message is `failed` with the SMPP status as its reason, its other
  parts are dropped.
A dropped connection puts its unanswered parts back in line, resent once bound again.
Messages claimed when the bind stops or dies stay `sending`; the next bind of that
shortcode takes them back at start (`queued`) and resubmits only parts without an id.

Time is read through `clock` and waited through `sleep`, so a test travels instead of waiting.
"""

import contextlib
import logging
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import close_old_connections

from delivery.deliver import message_bind_claim, message_bind_failed, message_bind_sent, messages_release
from delivery.models import Message
from delivery.phones import InvalidPhoneNumber
from delivery.providers.base import HttpExchange, WebhookBadRequest
from delivery.redaction import redact
from delivery.statuses import Direction, Status
from smpp_gateway import pdu
from smpp_gateway.config import PROVIDER, BindConfig, BindConfigError, bind_config_get
from smpp_gateway.inbound import inbound_parts_purge, mo_receive
from smpp_gateway.outbound import PartSubmit, message_parts_build, part_accepted_record, parts_accepted
from smpp_gateway.receipts import is_receipt, receipt_parse, receipt_record

logger = logging.getLogger(__name__)

REBIND_BACKOFF = (1.0, 60.0)  # first wait, cap
THROTTLE_BACKOFF = (1.0, 16.0)
RESPONSE_TIMEOUT = 30.0  # seconds to answer a bind, a submit or an enquire_link
HOUSEKEEPING_SECONDS = 3600.0


class BindLost(Exception):
    """The connection is gone or the SMSC broke the protocol: drop it and bind again."""


@dataclass
class InFlight:
    """A claimed message while its parts are submitted."""

    message: Message
    total: int
    accepted: dict[int, str] = field(default_factory=dict)  # part -> SMSC id
    started: float = 0.0
    exchanges: list[HttpExchange] = field(default_factory=list)  # every submit and its answer, for the channel log


class Bind:
    """One shortcode's SMPP session (see the module docstring); `run` it, or `step` it in tests."""

    def __init__(
        self,
        shortcode: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll_seconds: float = 0.5,
    ):
        self.shortcode = shortcode
        self.clock = clock
        self.sleep = sleep
        self.poll_seconds = poll_seconds
        self.config: BindConfig | None = None
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.bound = False
        self.sequence = 0
        self.outstanding: dict[int, tuple[PartSubmit, float]] = {}  # sequence -> (part, sent at)
        self.pending: deque[PartSubmit] = deque()
        self.in_flight: dict[int, InFlight] = {}
        self.enquire_sent_at: float | None = None
        self.last_traffic = 0.0
        self.paused_until = 0.0
        self.throttle_wait = THROTTLE_BACKOFF[0]
        self.rebind_wait = REBIND_BACKOFF[0]
        self.tokens = 0.0
        self.tokens_at = 0.0
        self.binds = 0  # successful binds so far
        self.housekept_at = 0.0

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Take back what a bind of this shortcode left claimed when it stopped or died."""
        orphans = list(
            Message.objects.filter(
                direction=Direction.OUTBOUND, provider=PROVIDER, shortcode=self.shortcode, status=Status.SENDING
            ).values_list("id", flat=True)
        )
        if orphans:
            logger.warning("bind %s takes back %d messages left sending", self.shortcode, len(orphans))
            messages_release(message_ids=orphans)
        self._housekeeping()

    def _housekeeping(self) -> None:
        """Purge old MO parts, at start and then hourly."""
        inbound_parts_purge(shortcode=self.shortcode)
        self.housekept_at = self.clock()

    def run(self, should_stop: Callable[[], bool]) -> None:
        """Step until `should_stop()`, then unbind and give back what was not sent."""
        self.start()
        try:
            while not should_stop():
                self.step()
                # A long-lived process: a connection the database dropped is replaced, not reused.
                close_old_connections()
        finally:
            self.stop()

    def stop(self, *, drain_seconds: float = 5.0) -> None:
        """Wait a little for answers to what is outstanding, unbind, and give back every claimed message not sent."""
        deadline = time.monotonic() + drain_seconds
        try:
            while self.bound and self.outstanding and time.monotonic() < deadline:
                self._read(timeout=min(self.poll_seconds, 0.2))
            if self.bound:
                self._send(pdu.Pdu(pdu.UNBIND, self._next_sequence()))
        except BindLost:
            pass
        self._drop("stopped", rebind=False)
        released = messages_release(message_ids=list(self.in_flight))
        if released:
            logger.info("bind %s gave back %d unsent messages", self.shortcode, released)
        self.in_flight.clear()
        self.pending.clear()

    def step(self) -> None:
        """One turn: bind if unbound, else read, keep alive and submit."""
        try:
            if not self.bound:
                self._bind()
                return
            ready = bool(self.pending) and self._window_room() and self.clock() >= self.paused_until
            self._read(timeout=0.0 if ready else self.poll_seconds)
            self._keep_alive()
            self._submit()
            if self.clock() - self.housekept_at >= HOUSEKEEPING_SECONDS:
                self._housekeeping()
        except BindLost as lost:
            self._drop(str(lost))

    # Binding ---------------------------------------------------------------------------

    def _bind(self) -> None:
        try:
            self.config = bind_config_get(self.shortcode)
        except BindConfigError as exc:
            logger.error("bind %s cannot start: %s", self.shortcode, exc)
            self._rebind_wait()
            return
        config = self.config
        try:
            self.sock = socket.create_connection((config.host, config.port), timeout=RESPONSE_TIMEOUT)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
            request = pdu.Pdu(
                pdu.BIND_TRANSCEIVER,
                self._next_sequence(),
                fields={
                    "system_id": config.system_id,
                    "password": config.password,
                    "system_type": config.system_type,
                    "interface_version": pdu.INTERFACE_VERSION,
                    "addr_ton": config.bind_ton,
                    "addr_npi": config.bind_npi,
                    "address_range": "",
                },
            )
            self._send(request)
            response = self._await_response(request.sequence)
        except (OSError, BindLost) as exc:
            logger.warning("bind %s to %s:%s failed: %s", self.shortcode, config.host, config.port, redact(str(exc)))
            self._close()
            self._rebind_wait()
            return
        if response.status != pdu.ESME_ROK:
            logger.error("bind %s refused by the SMSC: %s", self.shortcode, pdu.status_name(response.status))
            self._close()
            self._rebind_wait()
            return
        self.bound = True
        self.binds += 1
        self.rebind_wait = REBIND_BACKOFF[0]
        self.last_traffic = self.clock()
        self.tokens, self.tokens_at = min(config.mps, 1.0), self.clock()
        logger.info("bind %s bound to %s:%s as %s", self.shortcode, config.host, config.port, config.system_id)

    def _rebind_wait(self) -> None:
        self.sleep(self.rebind_wait)
        self.rebind_wait = min(self.rebind_wait * 2, REBIND_BACKOFF[1])

    def _await_response(self, sequence: int) -> pdu.Pdu:
        """Read until the response to `sequence` arrives (other PDUs handled meanwhile)."""
        deadline = time.monotonic() + RESPONSE_TIMEOUT
        while time.monotonic() < deadline:
            for received in self._receive(timeout=min(self.poll_seconds, deadline - time.monotonic())):
                if received.is_response and received.sequence == sequence:
                    return received
                self._handle(received)
        raise BindLost("no response to bind_transceiver")

    def _drop(self, reason: str, *, rebind: bool = True) -> None:
        """Close the connection; unanswered parts go back to the head of the line, in order."""
        was_bound = self.bound
        self._close()
        unanswered = sorted((part for part, _at in self.outstanding.values()), key=lambda p: (p.message_id, p.part))
        if self.config is not None:
            for part, sent_at in self.outstanding.values():
                if flight := self.in_flight.get(part.message_id):
                    flight.exchanges.append(self._exchange(part, sent_at, "", error=f"no answer: {reason}"))
        self.outstanding.clear()
        self.enquire_sent_at = None
        self.pending.extendleft(reversed(unanswered))
        if was_bound and rebind:
            logger.warning("bind %s lost (%s); %d parts to resend", self.shortcode, reason, len(unanswered))
            self._rebind_wait()

    def _close(self) -> None:
        self.bound = False
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None
        self.buffer = b""

    # Reading ---------------------------------------------------------------------------

    def _receive(self, *, timeout: float) -> list[pdu.Pdu]:
        """The whole PDUs available within `timeout` seconds; BindLost when the connection ends."""
        if self.sock is None:
            raise BindLost("not connected")
        readable, _, _ = select.select([self.sock], [], [], max(timeout, 0.0))
        if readable:
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                raise BindLost(f"read failed: {exc}") from exc
            if not chunk:
                raise BindLost("the SMSC closed the connection")
            self.buffer += chunk
        received = []
        while len(self.buffer) >= 4:  # the length alone tells a broken stream
            try:
                length = pdu.frame_length(self.buffer)
            except pdu.PduError as exc:
                raise BindLost(str(exc)) from exc
            if len(self.buffer) < length:
                break
            frame, self.buffer = self.buffer[:length], self.buffer[length:]
            try:
                received.append(pdu.decode(frame))
            except pdu.PduError as exc:
                raise BindLost(f"malformed PDU: {exc}") from exc
        if received:
            self.last_traffic = self.clock()
        return received

    def _read(self, *, timeout: float) -> None:
        for received in self._receive(timeout=timeout):
            self._handle(received)

    def _handle(self, received: pdu.Pdu) -> None:
        command = received.command_id
        if command == pdu.SUBMIT_SM | pdu.RESPONSE_BIT or (
            command == pdu.GENERIC_NACK and received.sequence in self.outstanding
        ):
            self._submit_answered(received)
        elif command == pdu.DELIVER_SM:
            self._deliver_sm(received)
        elif command == pdu.ENQUIRE_LINK:
            self._send(pdu.response_to(received))
        elif command == pdu.ENQUIRE_LINK | pdu.RESPONSE_BIT:
            self.enquire_sent_at = None
        elif command == pdu.UNBIND:
            self._send(pdu.response_to(received))
            raise BindLost("the SMSC unbound")
        elif command == pdu.GENERIC_NACK:
            logger.warning("bind %s: generic_nack %s", self.shortcode, pdu.status_name(received.status))
        elif not received.is_response:
            self._send(pdu.Pdu(pdu.GENERIC_NACK, received.sequence, status=pdu.ESME_RINVCMDID))

    def _deliver_sm(self, received: pdu.Pdu) -> None:
        """
        Store an MO or a receipt, then answer: ESME_ROK once it is stored, ESME_RX_P_APPN for
        one that can never be (an invalid number), ESME_RX_T_APPN when storing failed (the
        database is down), so the SMSC delivers it again.
        """
        raw = _raw(received)
        try:
            if is_receipt(received):
                receipt = receipt_parse(received)
                if receipt is None:
                    logger.warning("bind %s: a receipt naming no message ignored: %s", self.shortcode, raw)
                else:
                    receipt_record(shortcode=self.shortcode, receipt=receipt, raw=raw)
            else:
                mo_receive(shortcode=self.shortcode, deliver_sm=received, raw=raw)
        except (InvalidPhoneNumber, WebhookBadRequest) as exc:
            # What can never be stored is refused for good, or the SMSC would deliver it forever.
            logger.warning("bind %s refused a deliver_sm: %s", self.shortcode, exc)
            self._send(pdu.response_to(received, status=pdu.ESME_RX_P_APPN))
            return
        except Exception:
            logger.exception("bind %s could not store a deliver_sm; the SMSC will deliver it again", self.shortcode)
            self._send(pdu.response_to(received, status=pdu.ESME_RX_T_APPN))
            return
        self._send(pdu.response_to(received, message_id=""))

    # Keep-alive ------------------------------------------------------------------------

    def _keep_alive(self) -> None:
        now = self.clock()
        if any(now - sent_at > RESPONSE_TIMEOUT for _part, sent_at in self.outstanding.values()):
            raise BindLost("submit_sm unanswered")
        if self.enquire_sent_at is not None:
            if now - self.enquire_sent_at > RESPONSE_TIMEOUT:
                raise BindLost("enquire_link unanswered")
            return
        if now - self.last_traffic >= self.config.enquire_link_seconds:
            self._send(pdu.Pdu(pdu.ENQUIRE_LINK, self._next_sequence()))
            self.enquire_sent_at = now

    # Submitting ------------------------------------------------------------------------

    def _window_room(self) -> bool:
        return self.config is not None and len(self.outstanding) < self.config.window

    def _submit(self) -> None:
        while self._window_room():
            now = self.clock()
            if now < self.paused_until:
                if not self.outstanding:
                    self.sleep(self.paused_until - now)
                return
            if not self.pending and not self._claim():
                return
            part = self.pending[0]
            if part.message_id not in self.in_flight:  # failed meanwhile
                self.pending.popleft()
                continue
            self._tokens_take()
            self.pending.popleft()
            request = pdu.Pdu(pdu.SUBMIT_SM, self._next_sequence(), fields=part.fields, tlvs=part.tlvs)
            self.outstanding[request.sequence] = (part, self.clock())
            self._send(request)

    def _tokens_take(self) -> None:
        """One segment's token of the bind's throughput; waits (through `sleep`) until there is one."""
        rate = max(self.config.mps, 0.001)
        capacity = max(rate, 1.0)
        now = self.clock()
        self.tokens = min(capacity, self.tokens + (now - self.tokens_at) * rate)
        self.tokens_at = now
        if self.tokens < 1:
            self.sleep((1 - self.tokens) / rate)
            self.tokens, self.tokens_at = 1.0, self.clock()
        self.tokens -= 1

    def _claim(self) -> bool:
        """Claim due queued messages of this shortcode into the line; True when there is something to submit."""
        due = (
            Message.objects.filter(
                direction=Direction.OUTBOUND, provider=PROVIDER, shortcode=self.shortcode, status=Status.QUEUED
            )
            .exclude(id__in=list(self.in_flight))
            .order_by("id")
            .values_list("id", flat=True)[: self.config.window]
        )
        for message_id in due:
            message = message_bind_claim(message_id=message_id)
            if message is None:
                continue
            accepted = parts_accepted(message.id)
            flight = InFlight(message=message, total=0, accepted=accepted, started=self.clock())
            parts = message_parts_build(message, self.config, skip=frozenset(accepted))
            flight.total = len(accepted) + len(parts)
            self.in_flight[message.id] = flight
            if not parts:  # every part was accepted before the last bind stopped
                self._message_sent(flight)
            self.pending.extend(parts)
        return bool(self.pending)

    def _submit_answered(self, response: pdu.Pdu) -> None:
        if response.sequence not in self.outstanding:
            # An answer to nothing outstanding (a submit of an earlier connection, resent since).
            logger.warning("bind %s: %s for no outstanding submit ignored", self.shortcode, response.name)
            return
        part, sent_at = self.outstanding.pop(response.sequence)
        flight = self.in_flight.get(part.message_id)
        status = response.status
        if flight is not None:
            answer = f"{response.name} {pdu.status_name(status)} message_id={response.fields.get('message_id', '')}"
            flight.exchanges.append(self._exchange(part, sent_at, answer))
        if status == pdu.ESME_ROK:
            smsc_id = str(response.fields.get("message_id") or "").strip()
            if not smsc_id:
                status = pdu.ESME_RSYSERR  # accepted without an id: nothing could ever be matched to it
            else:
                self.throttle_wait = THROTTLE_BACKOFF[0]
                part_accepted_record(
                    shortcode=self.shortcode, message_id=part.message_id, part=part.part, smsc_message_id=smsc_id
                )
                if flight is not None:
                    flight.accepted[part.part] = smsc_id
                    if len(flight.accepted) == flight.total:
                        self._message_sent(flight)
                return
        if flight is None:
            return  # its message failed on another part
        if status in pdu.TEMPORARY_STATUSES:
            logger.info("bind %s: %s, backing off %.0f s", self.shortcode, pdu.status_name(status), self.throttle_wait)
            self._pending_return(part)
            self.paused_until = self.clock() + self.throttle_wait
            self.throttle_wait = min(self.throttle_wait * 2, THROTTLE_BACKOFF[1])
            return
        del self.in_flight[part.message_id]
        self.pending = deque(p for p in self.pending if p.message_id != part.message_id)
        code = pdu.STATUS_NAMES.get(status, f"0x{status:08x}")
        message_bind_failed(
            message=flight.message,
            code=code,
            reason=f"SMSC refused: {pdu.status_name(status)}",
            exchanges=tuple(flight.exchanges),
            duration_ms=self._ms_since(flight.started),
        )

    def _exchange(self, part: PartSubmit, sent_at: float, answer: str, error: str = "") -> HttpExchange:
        """One submit as the channel log keeps it: what went (octets in hex) and what came back."""
        fields = {name: value.hex() if isinstance(value, bytes) else value for name, value in part.fields.items()}
        tlvs = {f"0x{tag:04x}": value.decode("latin-1") for tag, value in part.tlvs.items()}
        request = f"submit_sm part {part.part}/{part.total} {fields}" + (f" tlvs {tlvs}" if tlvs else "")
        return HttpExchange(
            method="SMPP",
            url=f"smpp://{self.config.host}:{self.config.port}",
            request_body=request,
            response_body=answer,
            elapsed_ms=max(int(self._ms_since(sent_at)), 0),
            error=error,
        )

    def _ms_since(self, started: float) -> float:
        return round((self.clock() - started) * 1000, 3)

    def _pending_return(self, part: PartSubmit) -> None:
        """Back in line before the parts that came after it."""
        key = (part.message_id, part.part)
        index = next(
            (i for i, waiting in enumerate(self.pending) if (waiting.message_id, waiting.part) > key), len(self.pending)
        )
        self.pending.insert(index, part)

    def _message_sent(self, flight: InFlight) -> None:
        del self.in_flight[flight.message.id]
        message_bind_sent(
            message=flight.message,
            provider_message_id=flight.accepted[1],
            exchanges=tuple(flight.exchanges),
            duration_ms=self._ms_since(flight.started),
        )

    # Writing ---------------------------------------------------------------------------

    def _send(self, request: pdu.Pdu) -> None:
        if self.sock is None:
            raise BindLost("not connected")
        try:
            self.sock.sendall(pdu.encode(request))
        except OSError as exc:
            raise BindLost(f"write failed: {exc}") from exc

    def _next_sequence(self) -> int:
        self.sequence = self.sequence % 0x7FFFFFFF + 1
        return self.sequence


def _raw(received: pdu.Pdu) -> dict:
    """A deliver_sm as its DeliveryReport or Message keeps it: fields, octets in hex, TLVs by tag."""
    fields = {
        name: value.hex() if isinstance(value, bytes) else value
        for name, value in received.fields.items()
        if value not in ("", None)
    }
    return {
        "pdu": received.name,
        **fields,
        "tlvs": {f"0x{tag:04x}": value.hex() for tag, value in received.tlvs.items()},
    }
