"""An asyncio client for a Bursar server over QUIC (aioquic): one bidirectional stream per request,
the server's certificate trusted exactly (the `server.crt` that `bursar start` wrote), keep-alives
every second so the server's 5 s idle timeout never closes a healthy connection.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from decimal import Decimal

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived

from . import wire
from .wire import Account, Command, Kind, Ledger, Operation, ResultCode, Transfer

ALPN = "bursar/1"
RETRY_PAUSES_S = [0.001 * 2**k for k in range(8)]  # 1 ms doubling to 128 ms, as Bursar's clients


class _Protocol(QuicConnectionProtocol):
    """Collects each stream's bytes until the server finishes it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._replies: dict[int, tuple[bytearray, asyncio.Future]] = {}
        self._streams: dict[int, asyncio.Queue] = {}

    def request(self, frame: bytes) -> asyncio.Future:
        stream_id = self._quic.get_next_available_stream_id()
        future = asyncio.get_running_loop().create_future()
        self._replies[stream_id] = (bytearray(), future)
        self._quic.send_stream_data(stream_id, frame, end_stream=True)
        self.transmit()
        return future

    def open_stream(self, frame: bytes) -> tuple[int, asyncio.Queue]:
        """Sends a request whose reply goes on (a subscription): its bytes arrive on the queue as
        they come, then None when the server finishes the stream."""
        stream_id = self._quic.get_next_available_stream_id()
        queue: asyncio.Queue = asyncio.Queue()
        self._streams[stream_id] = queue
        self._quic.send_stream_data(stream_id, frame, end_stream=True)
        self.transmit()
        return stream_id, queue

    def close_stream(self, stream_id: int) -> None:
        """Stops reading a subscription: the server ends it."""
        if self._streams.pop(stream_id, None) is not None:
            self._quic.stop_stream(stream_id, 0)
            self.transmit()

    def quic_event_received(self, event) -> None:
        if isinstance(event, StreamDataReceived) and event.stream_id in self._streams:
            queue = self._streams[event.stream_id]
            queue.put_nowait(event.data)
            if event.end_stream:
                queue.put_nowait(None)
                del self._streams[event.stream_id]
        elif isinstance(event, StreamDataReceived) and event.stream_id in self._replies:
            data, future = self._replies[event.stream_id]
            data.extend(event.data)
            if event.end_stream:
                del self._replies[event.stream_id]
                if not future.done():
                    future.set_result(bytes(data))
        elif isinstance(event, ConnectionTerminated):
            for _, future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"connection closed: {event.reason_phrase or event.error_code}"))
            self._replies.clear()
            for queue in self._streams.values():
                queue.put_nowait(None)
            self._streams.clear()


def _pem(der: bytes) -> bytes:
    lines = base64.encodebytes(der).decode("ascii").replace("\n", "")
    body = "\n".join(lines[k : k + 64] for k in range(0, len(lines), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode("ascii")


class Client:
    """A connection to one Bursar server. Use `async with Client.connect(...) as client`."""

    def __init__(self, protocol: _Protocol):
        self._protocol = protocol
        self._next_id = 0
        self._ledgers: dict[int, Ledger] = {}
        self._keepalive = asyncio.get_running_loop().create_task(self._ping())

    @staticmethod
    def connect(host: str, port: int, cert_path: str, server_name: str = "localhost") -> "_Connecting":
        """Connects trusting exactly the DER certificate at `cert_path`."""
        with open(cert_path, "rb") as f:
            der = f.read()
        configuration = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], server_name=server_name, idle_timeout=5.0)
        configuration.verify_mode = ssl.CERT_REQUIRED
        configuration.load_verify_locations(cadata=_pem(der))
        return _Connecting(host, port, configuration)

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._protocol._quic.send_ping(0)
            self._protocol.transmit()

    async def _call(self, frame_of) -> wire.Frame:
        """Sends a request; `busy` and `shutting_down` are retried with the same request."""
        for pause in RETRY_PAUSES_S + [None]:
            self._next_id += 1
            reply = await asyncio.wait_for(self._protocol.request(frame_of(self._next_id)), timeout=30)
            try:
                return wire.decode_frame(reply)
            except wire.FrameError as e:
                if pause is None or e.error not in (wire.ProtocolError.BUSY, wire.ProtocolError.SHUTTING_DOWN):
                    raise
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def submit(self, commands: list[Command]) -> list[ResultCode]:
        """Applies the commands in order, in one log entry; one result code each."""
        frame = await self._call(lambda rid: wire.encode_submit(rid, commands))
        return wire.decode_results(frame.body)

    async def lookup_accounts(self, ids: list[int]) -> list[Account | None]:
        frame = await self._call(lambda rid: wire.encode_ids(rid, Operation.LOOKUP_ACCOUNTS, ids))
        return [a if a.id else None for a in map(Account.decode, wire.records(frame.body))]

    async def lookup_transfers(self, ids: list[int]) -> list[Transfer | None]:
        frame = await self._call(lambda rid: wire.encode_ids(rid, Operation.LOOKUP_TRANSFERS, ids))
        return [t if t.id else None for t in map(Transfer.decode, wire.records(frame.body))]

    async def lookup_orders(self, ids: list[int]) -> list[wire.OrderView | None]:
        """Standing orders and triggers by id, with their state and run history."""
        frame = await self._call(lambda rid: wire.encode_ids(rid, Operation.LOOKUP_ORDERS, ids))
        return wire.decode_orders(frame.body)

    async def ledger(self, ledger_id: int) -> Ledger:
        """A registered ledger (its currency and scale), from the ledger totals operation."""
        if ledger_id not in self._ledgers:
            frame = await self._call(lambda rid: wire.encode_ledger_totals(rid, [ledger_id]))
            found = Ledger.decode(wire.records(frame.body)[0])
            if found.id == 0:
                raise LookupError(f"ledger {ledger_id} is not registered")
            self._ledgers[ledger_id] = found
        return self._ledgers[ledger_id]

    async def transfer(self, id: int, debit: int, credit: int, amount: Decimal | str, ledger: int, code: int = 1) -> ResultCode:
        """One posted transfer of an exact decimal amount in the ledger's currency."""
        minor = (await self.ledger(ledger)).minor(amount)
        t = Transfer(id=id, debit_account_id=debit, credit_account_id=credit, amount=minor, ledger=ledger, code=code)
        return (await self.submit([Command(Kind.TRANSFER, t)]))[0]

    async def balance(self, account_id: int) -> Decimal:
        """Posted credits minus posted debits, as an exact decimal in the account's currency."""
        (account,) = await self.lookup_accounts([account_id])
        if account is None:
            raise LookupError(f"account {account_id} not found")
        ledger = await self.ledger(account.ledger)
        return ledger.amount(account.credits_posted) - ledger.amount(account.debits_posted)

    async def subscribe(self, from_seq: int = 0, from_index: int = 0, types: list[wire.EventType] | None = None,
                        ledgers: list[int] | None = None, accounts: list[int] | None = None):
        """The change feed (docs/protocol.md, "Change feed"): yields events in log order from entry
        `from_seq` (0: the next to become durable), skipping that entry's events below
        `from_index`, until the caller stops iterating (the subscription is then closed) or the
        server ends it (an error frame raises `FrameError`)."""
        self._next_id += 1
        stream_id, queue = self._protocol.open_stream(wire.encode_subscribe(self._next_id, from_seq, from_index, types, ledgers, accounts))
        buffer = bytearray()
        try:
            while True:
                chunk = await queue.get()
                if chunk is None:
                    if buffer:
                        raise wire.FrameError("the feed stream ended inside a frame", wire.ProtocolError.TRUNCATED)
                    return
                buffer.extend(chunk)
                while len(buffer) >= wire.HEADER_SIZE:
                    length = int.from_bytes(buffer[20:24], "little")
                    if len(buffer) < wire.HEADER_SIZE + length:
                        break
                    frame = wire.decode_frame(bytes(buffer[: wire.HEADER_SIZE + length]))
                    del buffer[: wire.HEADER_SIZE + length]
                    for event in wire.decode_events(frame):
                        yield event
        finally:
            self._protocol.close_stream(stream_id)

    async def close(self) -> None:
        self._keepalive.cancel()
        self._protocol.close()
        await self._protocol.wait_closed()


class _Connecting:
    """`async with Client.connect(...)`: connects on entry, closes on exit."""

    def __init__(self, host: str, port: int, configuration: QuicConfiguration):
        self._args = (host, port, configuration)
        self._context = None
        self._client: Client | None = None

    async def __aenter__(self) -> Client:
        host, port, configuration = self._args
        self._context = connect(host, port, configuration=configuration, create_protocol=_Protocol)
        protocol = await self._context.__aenter__()
        self._client = Client(protocol)
        return self._client

    async def __aexit__(self, *exc) -> None:
        assert self._client is not None and self._context is not None
        self._client._keepalive.cancel()
        await self._context.__aexit__(*exc)
