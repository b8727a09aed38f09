"""
A small SMSC for tests: a threaded TCP server on 127.0.0.1 speaking SMPP 3.4 through
smpplib's PDU classes (an implementation independent of ours), so what it records is
what another SMPP stack reads from our bytes.

It checks the bind's credentials, records every PDU it receives, answers each submit_sm
as scripted (`answers`: "ok", an SMPP status, "drop" to hang up without answering, or
"hold" to answer only when told; "ok" once the script is spent), accepts each part once under a new message id (hex or
decimal, `id_form`), and pushes deliver_sm (MO, receipts) to the bound session.
"""

import contextlib
import itertools
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from smpplib import smpp

OK = "ok"
DROP = "drop"
HOLD = "hold"  # accept, but answer only on release_held()


class _Sequences:
    """The sequence source smpplib's PDU classes ask for."""

    def __init__(self):
        self.sequence = 0x10000

    def next_sequence(self):
        self.sequence += 1
        return self.sequence


@dataclass
class Submit:
    """One submit_sm as smpplib read it, with the TLVs that follow its mandatory fields."""

    sequence: int
    source_addr: str
    source_addr_ton: int
    dest_addr_ton: int
    destination_addr: str
    esm_class: int
    registered_delivery: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]
    message_id: str = ""  # given when accepted

    @property
    def udh(self) -> bytes:
        return self.short_message[: self.short_message[0] + 1] if self.esm_class & 0x40 else b""

    @property
    def payload(self) -> bytes:
        return self.short_message[len(self.udh) :]

    @property
    def text(self) -> str:
        return self.payload.decode("utf-16-be") if self.data_coding == 8 else self.payload.decode("latin-1")


@dataclass
class Session:
    sock: socket.socket
    bound: bool = False
    write_lock: threading.Lock = field(default_factory=threading.Lock)


def _tlvs_after_mandatory(frame: bytes, parsed) -> dict[int, bytes]:
    """The TLVs of a submit_sm: they start where its mandatory fields, as smpplib read them, end."""
    strings = [parsed.service_type, parsed.source_addr, parsed.destination_addr]
    strings += [parsed.schedule_delivery_time, parsed.validity_period]
    # 11 one-octet fields, sm_length, then the short message.
    mandatory = sum(len(s or b"") + 1 for s in strings) + 11 + 1 + len(parsed.short_message or b"")
    position, tlvs = 16 + mandatory, {}
    while position + 4 <= len(frame):
        tag, size = struct.unpack_from(">HH", frame, position)
        tlvs[tag] = frame[position + 4 : position + 4 + size]
        position += 4 + size
    return tlvs


def _text(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value or "")


class TestSMSC:
    __test__ = False  # not a test class

    def __init__(self, *, password: str, system_id: str = "smsgate", id_form: str = "hex"):
        self.system_id = system_id
        self.password = password
        self.id_form = id_form
        self.answers: deque = deque()
        self.received: list[tuple[str, int]] = []  # (command, sequence) of every PDU received
        self.binds: list[dict] = []  # every bind_transceiver: its fields and our answer
        self.submits: list[Submit] = []  # every submit_sm received
        self.accepted: list[Submit] = []  # those answered ESME_ROK, with their ids
        self.deliver_responses: dict[int, int] = {}  # sequence of what it pushed -> status answered
        self.enquire_links = 0
        self.answer_enquire_link = True
        self.held: list[tuple[Session, Submit]] = []
        self.drops = 0
        self._ids = itertools.count(0x1A2B3C)
        self._sequences = _Sequences()
        self._lock = threading.Lock()
        self._sessions: list[Session] = []
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    # Running -----------------------------------------------------------------------------

    def start(self) -> "TestSMSC":
        self._threads[0].start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for session in list(self._sessions):
            self._hang_up(session)
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            session = Session(sock)
            with self._lock:
                self._sessions.append(session)
            thread = threading.Thread(target=self._serve, args=(session,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, session: Session) -> None:
        buffer = b""
        session.sock.settimeout(0.05)
        while not self._stopping.is_set():
            try:
                chunk = session.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 16 and len(buffer) >= struct.unpack(">I", buffer[:4])[0]:
                length = struct.unpack(">I", buffer[:4])[0]
                frame, buffer = buffer[:length], buffer[length:]
                if not self._handle(session, frame):
                    self._hang_up(session)
                    return
        self._hang_up(session)

    def _hang_up(self, session: Session) -> None:
        session.bound = False
        with contextlib.suppress(OSError):
            session.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            session.sock.close()
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)

    # Answering ---------------------------------------------------------------------------

    def _handle(self, session: Session, frame: bytes) -> bool:
        """Answer one PDU; False to hang up."""
        parsed = smpp.parse_pdu(frame, client=self._sequences, allow_unknown_opt_params=True)
        with self._lock:
            self.received.append((parsed.command, parsed.sequence))
        if parsed.command == "bind_transceiver":
            good = _text(parsed.system_id) == self.system_id and _text(parsed.password) == self.password
            status = 0 if good else 0x0E  # ESME_RINVPASWD
            self.binds.append(
                {
                    "system_id": _text(parsed.system_id),
                    "system_type": _text(parsed.system_type),
                    "interface_version": parsed.interface_version,
                    "status": status,
                }
            )
            session.bound = good
            self._write(
                session,
                self._response("bind_transceiver_resp", parsed.sequence, status=status, system_id="TESTSMSC"),
            )
            return True
        if parsed.command == "submit_sm":
            return self._submit(session, frame, parsed)
        if parsed.command == "enquire_link":
            self.enquire_links += 1
            if self.answer_enquire_link:
                self._write(session, self._response("enquire_link_resp", parsed.sequence))
        elif parsed.command == "unbind":
            self._write(session, self._response("unbind_resp", parsed.sequence))
            return False
        elif parsed.command in ("enquire_link_resp", "unbind_resp") or parsed.command == "deliver_sm_resp":
            with self._lock:
                self.deliver_responses[parsed.sequence] = parsed.status
        return True

    def _submit(self, session: Session, frame: bytes, parsed) -> bool:
        submit = Submit(
            sequence=parsed.sequence,
            source_addr=_text(parsed.source_addr),
            source_addr_ton=parsed.source_addr_ton,
            dest_addr_ton=parsed.dest_addr_ton,
            destination_addr=_text(parsed.destination_addr),
            esm_class=parsed.esm_class or 0,
            registered_delivery=parsed.registered_delivery or 0,
            data_coding=parsed.data_coding or 0,
            short_message=bytes(parsed.short_message or b""),
            tlvs=_tlvs_after_mandatory(frame, parsed),
        )
        with self._lock:
            self.submits.append(submit)
            answer = self.answers.popleft() if self.answers else OK
        if answer == DROP:
            self.drops += 1
            return False
        if answer == HOLD:
            with self._lock:
                self.held.append((session, submit))
            return True
        if answer == OK:
            self._accept_and_answer(session, submit)
        else:
            reply = self._response("submit_sm_resp", parsed.sequence, status=int(answer))
            self._write(session, reply)
        return True

    def release_held(self) -> int:
        """Accept and answer the held submits; how many."""
        with self._lock:
            held, self.held = self.held, []
        for session, submit in held:
            self._accept_and_answer(session, submit)
        return len(held)

    def _accept_and_answer(self, session: Session, submit: Submit) -> None:
        number = next(self._ids)
        submit.message_id = format(number, "X") if self.id_form == "hex" else str(number)
        with self._lock:
            self.accepted.append(submit)
        self._write(session, self._response("submit_sm_resp", submit.sequence, message_id=submit.message_id))

    def _response(self, name: str, sequence: int, *, status: int = 0, **fields):
        # smpplib keeps a default it set over a keyword (sequence, status): set them after.
        command = smpp.make_pdu(name, client=self._sequences, **fields)
        command.sequence = sequence
        command.status = status
        return command

    def _write(self, session: Session, command) -> None:
        with session.write_lock, contextlib.suppress(OSError):
            session.sock.sendall(command.generate())

    # Pushing deliver_sm ------------------------------------------------------------------

    def bound_session(self, timeout: float = 5.0) -> Session:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                bound = [session for session in self._sessions if session.bound]
            if bound:
                return bound[-1]
            time.sleep(0.01)
        raise AssertionError("no ESME is bound")

    def deliver(self, **fields) -> int:
        """Push one deliver_sm (smpplib's field names) to the bound ESME; its sequence number."""
        command = smpp.make_pdu("deliver_sm", client=self._sequences, **fields)
        self._write(self.bound_session(), command)
        return command.sequence

    def push_bytes(self, data: bytes) -> None:
        """Send the bound ESME raw bytes, PDU or not."""
        session = self.bound_session()
        with session.write_lock, contextlib.suppress(OSError):
            session.sock.sendall(data)

    def push(self, name: str) -> int:
        """Send the bound ESME a request without a body (enquire_link, unbind); its sequence number."""
        command = smpp.make_pdu(name, client=self._sequences)
        self._write(self.bound_session(), command)
        return command.sequence

    def mo(self, text: bytes, *, source: str = "919876543210", esm_class: int = 0, data_coding: int = 0, **tlvs):
        return self.deliver(
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr=source,
            dest_addr_ton=3,
            destination_addr="57675",
            esm_class=esm_class,
            data_coding=data_coding,
            short_message=text,
            **tlvs,
        )

    def receipt(self, message_id: str, stat: str, *, form: str = "text", err: str = "000", state: int | None = None):
        """
        A delivery receipt for `message_id`: "text" (esm_class 0x04 and the Appendix B
        text only), "tlv" (receipted_message_id and message_state, no text), "bare" (the
        text alone, esm_class 0: recognised by its text).
        """
        text = (
            f"id:{message_id} sub:001 dlvrd:001 submit date:2612011200 done date:261201120130 "
            f"stat:{stat} err:{err} Text:Your balance is"
        ).encode()
        fields = {"source_addr_ton": 1, "source_addr": "919876543210", "destination_addr": "57675"}
        if form == "tlv":
            return self.deliver(
                **fields, esm_class=0x04, short_message=b"", receipted_message_id=message_id, message_state=state
            )
        return self.deliver(**fields, esm_class=0x04 if form == "text" else 0, short_message=text)
